# PFGM math core tests (src/core, the "PFGM math" backend ops): label `math` for
# `ctest -L math`. field_vectors reads $PFGM_TEST_VECTORS when set, else
# $PFGM_SOURCE_DIR/../shared/testvectors/pfgm_vectors.h5.
foreach(t field_vectors field_analytic field_global perturb loss prior ode ode_physics)
  if(TEST ${t})
    set_property(TEST ${t} APPEND PROPERTY LABELS math)
  endif()
endforeach()

# The field-target benchmark: a program that prints figures (docs/benchmarks.md), not a test.
add_executable(bench_field ${CMAKE_CURRENT_SOURCE_DIR}/bench/bench_field.c)
target_compile_options(bench_field PRIVATE ${PFGM_C_WARNINGS})
target_link_libraries(bench_field PRIVATE pfgm)
