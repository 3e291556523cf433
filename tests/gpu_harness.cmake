# cuda_fmad_off (label unit, CUDA builds only): the kernels promise the CPU's separately rounded
# products, so the CUDA sources compile with PFGM_CUDA_FLAGS (--fmad=false, CMakeLists.txt).
# The files below use no single-precision CUDA transcendental (whose own implementations
# contain fma instructions; backend_cuda.cu's Box-Muller is in double, hence f32 only); their
# PTX, compiled with the library's flags, must hold no fma.rn.f32 at all: without
# --fmad=false backend_cuda.cu alone has five. It runs without a GPU (nvcc only).
if(PFGM_HAVE_CUDA)
  add_library(pfgm_cuda_ptx OBJECT ${CMAKE_SOURCE_DIR}/src/backend/cuda/backend_cuda.cu
                                   ${CMAKE_SOURCE_DIR}/src/backend/cuda/cuda_optim.cu
                                   ${CMAKE_SOURCE_DIR}/src/backend/cuda/cuda_conv.cu)
  set_target_properties(pfgm_cuda_ptx PROPERTIES CUDA_PTX_COMPILATION ON)
  target_include_directories(pfgm_cuda_ptx PRIVATE ${CMAKE_SOURCE_DIR}/include ${CMAKE_SOURCE_DIR}/src)
  target_link_libraries(pfgm_cuda_ptx PRIVATE CUDA::cudart CUDA::cublas)
  target_compile_options(pfgm_cuda_ptx PRIVATE ${PFGM_CUDA_FLAGS})
  add_test(NAME cuda_fmad_off COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/scripts/no_fma_in_ptx.sh
                                      "$<TARGET_OBJECTS:pfgm_cuda_ptx>")
  set_tests_properties(cuda_fmad_off PROPERTIES LABELS unit TIMEOUT 60)
endif()

# gpu_harness (label unit): the scripts around the gpu tests, without a GPU
# (tests/scripts/gpu_harness.sh: the MPI-launcher skip, nccl_timeout.sh's verdicts against
# stand-in launchers, run_device_checks.sh --plan).
add_test(NAME gpu_harness COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/scripts/gpu_harness.sh)
set_tests_properties(gpu_harness PROPERTIES LABELS unit TIMEOUT 120 ENVIRONMENT "${PFGM_TEST_ENV}")
