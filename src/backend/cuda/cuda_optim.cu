/* CUDA ops of the optimizer group of backend.h (caller: src/nn/optim.c). Each op matches its
 * CPU counterpart in src/backend/cpu/cpu_optim.c (tests/gpu compares them). */
#include "backend/cuda/cuda_internal.cuh"

namespace {

__global__ void k_sumsq_partial(int64_t n, const float *x, double *partials) {
    double acc = 0.0;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        acc += (double)x[i] * (double)x[i];
    double s = block_sum(acc);
    if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

/* *out (host) = sum x[i]^2 in double: per-block partials in a fixed launch shape, summed on
 * the host in block order, so the result is the same run to run. */
pfgm_status cuda_sumsq(pfgm_backend *be, int64_t n, const float *x, double *out) {
    *out = 0.0;
    if (n < 0) return pfgm_error(PFGM_ERR_INVALID_ARG, "sumsq: n = %lld", (long long)n);
    if (n == 0) return PFGM_OK;
    cuda_ctx *c = ctx_of(be);
    int nb = blocks_for(n, c->max_blocks);
    k_sumsq_partial<<<nb, kThreads, 0, c->stream>>>(n, x, c->partials);
    PFGM_CUDA_LAUNCH_CHECK();
    return pfgm_cuda_reduce_partials(be, nb, out);
}

} // namespace

void pfgm_cuda_optim_ops_init(pfgm_backend *be) { be->sumsq = cuda_sumsq; }
