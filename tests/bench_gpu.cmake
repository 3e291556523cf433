# The training-step benchmark (tests/bench/bench_train_step.c): a program that prints figures
# for docs/benchmarks.md (images/s, phase shares, MFU against the measured GEMM rates), not a
# test. It uses cuBLAS directly for the TF32/bf16 rates when pfgm is built with CUDA; it runs
# on the CPU backend as well. tests/gpu/run_device_checks.sh runs it on a GPU machine.
add_executable(bench_train_step ${CMAKE_CURRENT_SOURCE_DIR}/bench/bench_train_step.c)
target_include_directories(bench_train_step PRIVATE ${CMAKE_SOURCE_DIR}/src)
target_compile_options(bench_train_step PRIVATE ${PFGM_C_WARNINGS})
target_link_libraries(bench_train_step PRIVATE pfgm)
