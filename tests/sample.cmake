# Process-level tests of pfgm-sample (tests/unit/test_sampler_cli.c, label e2e): the binary
# and its files; with --mpi, `mpirun -np 2 pfgm-sample` against a single-process run (labels
# e2e mpi). The sampler's library tests (sampler, sampler_mpi) train their checkpoint with
# pfgm_train first, so they are e2e too.
set(PFGM_SAMPLE_TEST_ENV "PFGM_SAMPLE=$<TARGET_FILE:pfgm-sample>" "MPIEXEC=${MPIEXEC_EXECUTABLE}")
set_property(TEST sampler_cli APPEND PROPERTY ENVIRONMENT ${PFGM_SAMPLE_TEST_ENV})
add_test(NAME sampler_cli_mpi COMMAND test_sampler_cli --mpi)
set_tests_properties(sampler_cli_mpi PROPERTIES ENVIRONMENT "${PFGM_TEST_ENV};${PFGM_SAMPLE_TEST_ENV}"
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR} SKIP_RETURN_CODE 77 TIMEOUT 600 LABELS "e2e;mpi")
pfgm_label_e2e(sampler_cli sampler sampler_mpi)
