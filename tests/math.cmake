# PFGM math core tests (src/core, the "PFGM math" backend ops): label `math` for
# `ctest -L math`. field_vectors reads $PFGM_TEST_VECTORS when set, else
# $PFGM_SOURCE_DIR/../shared/testvectors/pfgm_vectors.h5.
foreach(t field_vectors field_analytic field_global perturb loss prior ode ode_physics)
  if(TEST ${t})
    set_property(TEST ${t} APPEND PROPERTY LABELS math)
  endif()
endforeach()
