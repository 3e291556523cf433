# The streaming dataset reader (docs/data-format.md "Streaming"): the C tests
# tests/unit/test_dataset_stream.c (the epoch order with W ranks simulated in one process,
# exact resume, prefetch, the cache bound) and test_dataset_stream_rss.c (a 154 MB file read
# for one epoch with a 16 MiB cache: peak RSS bounded) are registered by tests/CMakeLists.txt
# with label unit; train_stream_rss runs pfgm-train on a file 9 times its reader cache and
# compares the peak RSS with a small file's (label e2e). Measured on the 2-core machine in
# the whole suite at -j2: 0.75 s, 0.57 s and 2.1 s.
add_test(NAME train_stream_rss COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/scripts/train_stream_rss.sh)
set_tests_properties(train_stream_rss PROPERTIES
  ENVIRONMENT "${PFGM_TEST_ENV};PFGM_TRAIN=$<TARGET_FILE:pfgm-train>;PFGM_PREP=$<TARGET_FILE:pfgm-prep>"
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR} SKIP_RETURN_CODE 77 TIMEOUT 300 LABELS "e2e")
# The reader's throughput benchmark (docs/benchmarks.md "Dataset reader"): a program that
# prints figures, not a test.
add_executable(bench_reader ${CMAKE_CURRENT_SOURCE_DIR}/bench/bench_reader.c)
target_compile_options(bench_reader PRIVATE ${PFGM_C_WARNINGS})
target_link_libraries(bench_reader PRIVATE pfgm)
