# Two simulated nodes on one machine (issue 13 §2, tests/scripts/two_nodes.sh): two network
# namespaces joined by a veth pair shaped to 1 Gbit/s, a 2x2-rank training under mpirun over
# Open MPI's TCP transport (daemons started in each namespace by tests/scripts/netns_rsh.sh),
# equal bitwise to the same training with 4 ranks on one node. 3-7 s here; SKIPPED (77) where
# namespaces cannot be created (not root) or without Fashion-MNIST. Benchmark: `two_nodes.sh
# --bench` (docs/benchmarks.md). Same environment as the train tests (tests/train.cmake),
# defined here as well since fragments are included in name order.
add_test(NAME two_nodes COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/scripts/two_nodes.sh 1gbit)
set_tests_properties(two_nodes PROPERTIES
  ENVIRONMENT "${PFGM_TEST_ENV};PFGM_TRAIN=$<TARGET_FILE:pfgm-train>;PFGM_PREP=$<TARGET_FILE:pfgm-prep>;MPIEXEC=${MPIEXEC_EXECUTABLE}"
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR} SKIP_RETURN_CODE 77 TIMEOUT 300 LABELS "e2e;mpi;multinode")
