# The layer check (tests/scripts/layer_includes.sh): the includes of include/pfgm/*.h and
# src/<layer>/ against the layer order of docs/architecture.md, and library headers (HDF5,
# libyaml, libpng, MPI, NCCL, CUDA) only in their layer. Reads files only: about 1 s.
add_test(NAME layer_includes COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/scripts/layer_includes.sh)
set_tests_properties(layer_includes PROPERTIES ENVIRONMENT "PFGM_SOURCE_DIR=${CMAKE_SOURCE_DIR}"
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR} TIMEOUT 60 LABELS "unit")
