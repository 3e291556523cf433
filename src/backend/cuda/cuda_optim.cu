/* CUDA ops of the optimizer group of backend.h (caller: src/nn/optim.c): the squared L2 norm
 * of global gradient clipping, the fused Adam update and the EMA update (PFGM_SPEC.md §1.13,
 * docs/optimizer.md). Each op matches its CPU counterpart in src/backend/cpu/cpu_optim.c
 * (tests/gpu/test_cuda_optim.c compares them). Adam and EMA are elementwise: the per-step
 * constants are computed on the host exactly as the CPU does, and every element performs
 * the CPU's IEEE single-precision operations in the same order (the CUDA sources compile
 * with --fmad=false, so nothing is contracted into a fused multiply-add; the __f*_rn
 * intrinsics keep square root and division correctly rounded), so the updates are the
 * CPU's bits. */
#include <math.h>

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
    if (n == 0) return PFGM_OK;
    cuda_ctx *c = ctx_of(be);
    int nb = blocks_for(n, c->max_blocks);
    k_sumsq_partial<<<nb, kThreads, 0, c->stream>>>(n, x, c->partials);
    PFGM_CUDA_LAUNCH_CHECK();
    return pfgm_cuda_reduce_partials(be, nb, out);
}

/* One CUDA block per segment of `block` elements: segment base + blockIdx.x. */
__global__ void k_sumsq_segments(int64_t n, const float *x, int64_t block, int64_t base, double *partials) {
    const int64_t s = (base + blockIdx.x) * block;
    const int64_t e = s + block < n ? s + block : n;
    double acc = 0.0;
    for (int64_t i = s + threadIdx.x; i < e; i += blockDim.x) acc += (double)x[i] * (double)x[i];
    double r = block_sum(acc);
    if (threadIdx.x == 0) partials[blockIdx.x] = r;
}

/* out[k] (host) = the sum of squares of segment k: a fixed launch shape per segment (one
 * block of kThreads, a fixed tree), so a segment's sum depends on its elements only. */
pfgm_status cuda_sumsq_blocks(pfgm_backend *be, int64_t n, const float *x, int64_t block, double *out) {
    cuda_ctx *c = ctx_of(be);
    const int64_t nb = (n + block - 1) / block;
    for (int64_t base = 0; base < nb; base += c->max_blocks) {
        const int64_t cnt = nb - base < c->max_blocks ? nb - base : c->max_blocks;
        k_sumsq_segments<<<(unsigned)cnt, kThreads, 0, c->stream>>>(n, x, block, base, c->partials);
        PFGM_CUDA_LAUNCH_CHECK();
        PFGM_CUDA_CHECK(cudaMemcpyAsync(c->partials_host, c->partials, sizeof(double) * (size_t)cnt,
                                        cudaMemcpyDeviceToHost, c->stream));
        PFGM_CUDA_CHECK(cudaStreamSynchronize(c->stream));
        for (int64_t k = 0; k < cnt; ++k) out[base + k] = c->partials_host[k];
    }
    return PFGM_OK;
}

/* The per-step constants of torch.optim.Adam, rounded to float as cpu_optim.c rounds them. */
struct adam_coef {
    float b1, omb1, b2, omb2; /* beta1, 1-beta1, beta2, 1-beta2 */
    float neg_step_size;      /* -lr / (1 - beta1^step) */
    float bc2_sqrt;           /* sqrt(1 - beta2^step) */
    float eps, wd;
    int use_wd;
};

/* torch's order: grad.add(param, alpha=wd); exp_avg.mul_(b1).add_(grad, alpha=1-b1);
 * exp_avg_sq.mul_(b2).addcmul_(grad, grad, value=1-b2); denom = exp_avg_sq.sqrt() / bc2_sqrt
 * + eps; param.addcdiv_(exp_avg, denom, value=-step_size). */
__global__ void k_adam(int64_t n, adam_coef c, float *p, const float *g, float *m, float *v) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const float pi = p[i];
        float gi = g[i];
        if (c.use_wd) gi = __fadd_rn(gi, __fmul_rn(c.wd, pi));
        const float mi = __fadd_rn(__fmul_rn(m[i], c.b1), __fmul_rn(c.omb1, gi));
        const float vi = __fadd_rn(__fmul_rn(v[i], c.b2), __fmul_rn(__fmul_rn(c.omb2, gi), gi));
        const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), c.bc2_sqrt), c.eps);
        m[i] = mi;
        v[i] = vi;
        p[i] = __fadd_rn(pi, __fdiv_rn(__fmul_rn(c.neg_step_size, mi), denom));
    }
}

pfgm_status cuda_adam_update(pfgm_backend *be, int64_t n, double lr, double beta1, double beta2, double eps,
                             double wd, int64_t step, float *p, const float *g, float *m, float *v) {
    if (n == 0) return PFGM_OK;
    const double bc1 = 1.0 - pow(beta1, (double)step), bc2 = 1.0 - pow(beta2, (double)step);
    adam_coef c;
    c.b1 = (float)beta1;
    c.omb1 = (float)(1.0 - beta1);
    c.b2 = (float)beta2;
    c.omb2 = (float)(1.0 - beta2);
    c.neg_step_size = (float)(-(lr / bc1));
    c.bc2_sqrt = (float)sqrt(bc2);
    c.eps = (float)eps;
    c.wd = (float)wd;
    c.use_wd = wd != 0.0;
    k_adam<<<blocks_for(n, 65535), kThreads, 0, stream_of(be)>>>(n, c, p, g, m, v);
    PFGM_CUDA_LAUNCH_CHECK();
    return PFGM_OK;
}

/* models/ema.py: s_param.sub_(one_minus_decay * (s_param - param)). */
__global__ void k_ema(int64_t n, float omd, float *shadow, const float *p) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const float s = shadow[i];
        shadow[i] = __fsub_rn(s, __fmul_rn(omd, __fsub_rn(s, p[i])));
    }
}

pfgm_status cuda_ema_update(pfgm_backend *be, int64_t n, double decay, float *shadow, const float *p) {
    if (n == 0) return PFGM_OK;
    k_ema<<<blocks_for(n, 65535), kThreads, 0, stream_of(be)>>>(n, (float)(1.0 - decay), shadow, p);
    PFGM_CUDA_LAUNCH_CHECK();
    return PFGM_OK;
}

} // namespace

void pfgm_cuda_optim_ops_init(pfgm_backend *be) {
    be->sumsq = cuda_sumsq;
    be->sumsq_blocks = cuda_sumsq_blocks;
    be->adam_update = cuda_adam_update;
    be->ema_update = cuda_ema_update;
}
