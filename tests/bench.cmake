# Benchmark programs of tests/bench/ built on bench_common: the comparisons of pfgm with the
# PyTorch reference (tests/bench/run.sh) and step_control, per-sample against batch-global
# RK45 step control (docs/benchmarks.md). Programs that print figures, not tests: nothing
# here is registered with CTest.
set(PFGM_BENCH_DIR ${CMAKE_CURRENT_SOURCE_DIR}/bench)
foreach(b cmp_train cmp_sample cmp_field sgemm_peak step_control)
  add_executable(bench_${b} ${PFGM_BENCH_DIR}/${b}.c ${PFGM_BENCH_DIR}/bench_common.c)
  target_include_directories(bench_${b} PRIVATE ${CMAKE_SOURCE_DIR}/src ${PFGM_BENCH_DIR})
  target_compile_options(bench_${b} PRIVATE ${PFGM_C_WARNINGS})
  target_link_libraries(bench_${b} PRIVATE pfgm)
endforeach()
