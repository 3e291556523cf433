/* Private to the CUDA backend: its context, launch helpers, deterministic block reductions,
 * and the functions that fill the op groups of backend.h (cuda_math.cu: PFGM math,
 * cuda_nn.cu: network layers, cuda_optim.cu: optimizer). */
#ifndef PFGM_BACKEND_CUDA_INTERNAL_CUH
#define PFGM_BACKEND_CUDA_INTERNAL_CUH

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdint.h>

extern "C" {
#include "pfgm/backend.h"
#include "util/check.h"
}

struct cuda_ctx {
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    double *partials;      /* device scratch for two-pass reductions */
    double *partials_host; /* pinned host copy */
    int max_blocks;
    int allow_tf32; /* cuBLAS handle in CUBLAS_TF32_TENSOR_OP_MATH (distributed.allow_tf32) */
};

static inline cuda_ctx *ctx_of(const pfgm_backend *be) { return (cuda_ctx *)be->ctx; }
static inline cudaStream_t stream_of(const pfgm_backend *be) { return ctx_of(be)->stream; }

static const int kThreads = 256; /* threads per block of every kernel here */

/* Blocks for n work items, capped (grid-stride loops cover the rest). */
static inline int blocks_for(int64_t n, int cap) {
    int64_t b = (n + kThreads - 1) / kThreads;
    if (b < 1) b = 1;
    return (int)(b < cap ? b : cap);
}

/* Block-level sum in double over a fixed tree: deterministic for a fixed launch shape.
 * Every thread of the block must call it; blockDim.x must be kThreads. */
static __device__ __forceinline__ double block_sum(double v) {
    __shared__ double sh[kThreads];
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = kThreads / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    double r = sh[0];
    __syncthreads();
    return r;
}

static __device__ __forceinline__ float block_max(float v) {
    __shared__ float sh[kThreads];
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = kThreads / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sh[threadIdx.x] = fmaxf(sh[threadIdx.x], sh[threadIdx.x + s]);
        __syncthreads();
    }
    float r = sh[0];
    __syncthreads();
    return r;
}

/* Sum of a device array in double through per-block partials summed on the host in a fixed
 * order (two-pass, no atomics). `partial_kernel` writes one double per block. */
pfgm_status pfgm_cuda_reduce_partials(pfgm_backend *be, int nb, double *out);

/* Launch-error check after a kernel. */
#define PFGM_CUDA_LAUNCH_CHECK() PFGM_CUDA_CHECK(cudaGetLastError())

void pfgm_cuda_math_ops_init(pfgm_backend *be);
void pfgm_cuda_nn_ops_init(pfgm_backend *be);
void pfgm_cuda_optim_ops_init(pfgm_backend *be);

#endif
