# Gradient buckets and ZeRO-1 through whole trainings (tests/mpi/test_train_zero.c): the
# np 2 run (test train_zero, registered by tests/CMakeLists.txt) checks bitwise equality of
# the bucketed, unbucketed and sharded paths; the np 3 run checks determinism and exact
# restarts at a world size where the sums of three ranks need not associate alike.
add_test(NAME train_zero_np3 COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 3 --oversubscribe
         ${MPIEXEC_PREFLAGS} $<TARGET_FILE:test_train_zero> ${MPIEXEC_POSTFLAGS})
set_tests_properties(train_zero_np3 PROPERTIES LABELS "unit;mpi" SKIP_RETURN_CODE 77
  ENVIRONMENT "${PFGM_TEST_ENV}" WORKING_DIRECTORY ${CMAKE_SOURCE_DIR} TIMEOUT 600)
pfgm_label_e2e(train_zero train_zero_np3)
