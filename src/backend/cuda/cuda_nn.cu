/* CUDA ops of the network-layer group of backend.h (callers: src/nn). Each op matches its
 * CPU counterpart in src/backend/cpu/cpu_nn.c, cpu_conv.c, cpu_norm.c (tests/gpu compares). */
#include "backend/cuda/cuda_internal.cuh"

namespace {

__global__ void k_silu_fwd(int64_t n, const float *x, float *y) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        y[i] = x[i] / (1.0f + expf(-x[i]));
}

__global__ void k_silu_bwd(int64_t n, const float *x, const float *dy, float *dx, int accumulate) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float s = 1.0f / (1.0f + expf(-x[i]));
        float g = dy[i] * s * (1.0f + x[i] * (1.0f - s));
        dx[i] = accumulate ? dx[i] + g : g;
    }
}

pfgm_status cuda_silu_fwd(pfgm_backend *be, int64_t n, const float *x, float *y) {
    if (n <= 0) return PFGM_OK;
    k_silu_fwd<<<blocks_for(n, 65535), kThreads, 0, stream_of(be)>>>(n, x, y);
    PFGM_CUDA_LAUNCH_CHECK();
    return PFGM_OK;
}

pfgm_status cuda_silu_bwd(pfgm_backend *be, int64_t n, const float *x, const float *dy, float *dx, int accumulate) {
    if (n <= 0) return PFGM_OK;
    k_silu_bwd<<<blocks_for(n, 65535), kThreads, 0, stream_of(be)>>>(n, x, dy, dx, accumulate);
    PFGM_CUDA_LAUNCH_CHECK();
    return PFGM_OK;
}

} // namespace

void pfgm_cuda_nn_ops_init(pfgm_backend *be) {
    be->silu_fwd = cuda_silu_fwd;
    be->silu_bwd = cuda_silu_bwd;
}
