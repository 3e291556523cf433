# Network tests (src/nn, the CPU network ops): label "nn" so `ctest -L nn` runs them together.
# ddpmpp_reference reads the authors' fixture from $PFGM_DDPMPP_FIXTURE at run time, default
# $PFGM_SOURCE_DIR/../shared/testvectors/ddpmpp_tiny_reference.h5 (so another fixture of the
# same layout is checked with `PFGM_DDPMPP_FIXTURE=other.h5 ctest -R ddpmpp_reference`).
foreach(t layers_gradcheck layers_blocks layers_parity ddpmpp_reference ddpmpp_param_counts ddpmpp_model)
  if(TEST ${t})
    set_property(TEST ${t} APPEND PROPERTY LABELS nn)
  endif()
endforeach()
