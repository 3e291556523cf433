# Parallel pfgm-prep (issue 13 §4, docs/data-format.md "Parallel prep"): the pfgm-prep binary
# alone and under `mpiexec -n 2` / `-n 3` writes byte-identical datasets from a folder of
# 200 mixed PNG/JPEG images (four option sets) and from IDX and CIFAR-10 with labels; a bad file in one
# rank's part fails every rank with one line and leaves nothing behind; peak memory does not
# grow with the output (one image vs 300: +3.8 MB for a 14.4 MB file, measured). Labels e2e
# mpi. 7.7 to 10.6 s on the 2-core machine with other jobs running: 24 pfgm-prep runs, 15
# under the launcher, three of them failing (Open MPI takes about 2 s to wind up a job with a
# non-zero exit).
# The test lives in tests/prep/ (not tests/mpi/: it starts the launcher itself, several
# times, rather than being started by it). The unit tests of the pieces under it
# (test_image_jpeg, test_resize_tf) are globbed from tests/unit/.
add_executable(test_prep_parallel ${CMAKE_CURRENT_SOURCE_DIR}/prep/test_prep_parallel.c)
target_include_directories(test_prep_parallel PRIVATE ${CMAKE_SOURCE_DIR}/src ${CMAKE_CURRENT_SOURCE_DIR})
target_compile_options(test_prep_parallel PRIVATE ${PFGM_C_WARNINGS})
target_link_libraries(test_prep_parallel PRIVATE pfgm PkgConfig::CMOCKA)
add_test(NAME prep_parallel COMMAND test_prep_parallel)
set_tests_properties(prep_parallel PROPERTIES LABELS "e2e;mpi" SKIP_RETURN_CODE 77 TIMEOUT 300
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}
  ENVIRONMENT "${PFGM_TEST_ENV};PFGM_PREP_BIN=$<TARGET_FILE:pfgm-prep>;MPIEXEC=${MPIEXEC_EXECUTABLE}")
