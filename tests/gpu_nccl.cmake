# The NCCL communicator (src/comm/comm_nccl.c): tests/gpu_mpi/test_nccl.c under mpirun -np 2,
# labels unit, gpu and mpi. It reports SKIPPED (exit 77) without NCCL or a GPU, and with one GPU for
# the two ranks after checking that the communicator refuses that assignment.
# nccl_one_rank: the same program under mpirun -np 1, so that a machine with one GPU runs every
# call (blocking and non-blocking, the stream ordering) on a one-rank NCCL communicator;
# SKIPPED without NCCL or a GPU.
# nccl_timeout: rank 0 enters an all-reduce that rank 1 never joins (blocking, then non-blocking);
# with PFGM_NCCL_TIMEOUT_S=3 each job must end with the timeout message
# (tests/gpu_mpi/nccl_timeout.sh).
# Without an MPI launcher all three report SKIPPED with the reason (tests/scripts/mpi_launch_or_skip.sh).
set(PFGM_MPI_GPU ON)
pfgm_add_test(${CMAKE_CURRENT_SOURCE_DIR}/gpu_mpi/test_nccl.c mpi)
set(PFGM_MPI_GPU OFF)
set_property(TEST nccl APPEND PROPERTY LABELS gpu)
add_test(NAME nccl_one_rank COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/scripts/mpi_launch_or_skip.sh
         "${MPIEXEC_EXECUTABLE}" ${MPIEXEC_NUMPROC_FLAG} 1 ${MPIEXEC_PREFLAGS} $<TARGET_FILE:test_nccl>
         ${MPIEXEC_POSTFLAGS})
set_tests_properties(nccl_one_rank PROPERTIES LABELS "unit;gpu;mpi" SKIP_RETURN_CODE 77 TIMEOUT 300
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR} ENVIRONMENT "${PFGM_TEST_ENV}")
add_test(NAME nccl_timeout COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/gpu_mpi/nccl_timeout.sh)
set_tests_properties(nccl_timeout PROPERTIES LABELS "unit;gpu;mpi" SKIP_RETURN_CODE 77 TIMEOUT 180
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}
  ENVIRONMENT "${PFGM_TEST_ENV};PFGM_TEST_NCCL=$<TARGET_FILE:test_nccl>;MPIEXEC=${MPIEXEC_EXECUTABLE}")
