/* CUDA GroupNorm ops (backend.h "network layers": groupnorm_fwd/bwd), optionally fused with
 * the SiLU that follows every GroupNorm in DDPM++ except the attention block's (spec §3.1).
 * Matches src/backend/cpu/cpu_norm.c: statistics in double (mean, then the centred biased
 * variance), rstd = 1/sqrt(var + eps) in double rounded to float, products rounded before
 * adds (--fmad=false for every CUDA source; the __f*_rn intrinsics mark them), and a backward that
 * recomputes the normalised value from (x, mean, rstd). Reductions run one block per
 * (sample, group) or per channel through the fixed tree of block_sum: deterministic, no
 * atomics; the gamma/beta gradients sum over the batch inside one block. */
#include "backend/cuda/cuda_nn.cuh"

namespace {

__device__ __forceinline__ float sigmoidf_dev(float v) { return 1.0f / (1.0f + expf(-v)); }

/* One block per (sample, group): mean, centred variance, then y. */
__global__ void k_gn_fwd(int64_t batch, int64_t c, int64_t hw, int64_t groups, float eps, int silu, const float *x,
                         const float *gamma, const float *beta, float *y, float *mean, float *rstd) {
    const int64_t cg = c / groups, n = cg * hw;
    for (int64_t bg = blockIdx.x; bg < batch * groups; bg += gridDim.x) {
        const int64_t b = bg / groups, g = bg - b * groups;
        const float *xs = x + (b * c + g * cg) * hw;
        float *ys = y + (b * c + g * cg) * hw;
        double s = 0.0;
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += xs[i];
        const double mu = block_sum(s) / (double)n;
        double v = 0.0;
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
            const double d = (double)xs[i] - mu;
            v += d * d;
        }
        v = block_sum(v);
        const float m = (float)mu, r = (float)(1.0 / sqrt(v / (double)n + (double)eps));
        if (threadIdx.x == 0) {
            mean[bg] = m;
            rstd[bg] = r;
        }
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
            const int64_t ch = g * cg + i / hw;
            const float ga = __fmul_rn(gamma[ch], r), be0 = __fsub_rn(beta[ch], __fmul_rn(m, ga));
            const float t = __fadd_rn(__fmul_rn(xs[i], ga), be0);
            ys[i] = silu ? t * sigmoidf_dev(t) : t;
        }
    }
}

/* dL/d(pre-activation) of an element for the fused SiLU, or dy itself (as cpu_norm.c). */
__device__ __forceinline__ float gn_dpre(int silu, float dy, float xhat, float ga, float be0) {
    if (!silu) return dy;
    const float t = __fadd_rn(__fmul_rn(xhat, ga), be0), s = sigmoidf_dev(t);
    return dy * s * (1.0f + t * (1.0f - s));
}

/* Parameter gradients: one block per channel, summed over the batch and pixels in double. */
__global__ void k_gn_bwd_params(int64_t batch, int64_t c, int64_t hw, int64_t groups, int silu, const float *x,
                                const float *gamma, const float *beta, const float *mean, const float *rstd,
                                const float *dy, float *dgamma, float *dbeta) {
    const int64_t cg = c / groups;
    for (int64_t ch = blockIdx.x; ch < c; ch += gridDim.x) {
        const int64_t g = ch / cg;
        const float ga = gamma[ch], bb = beta[ch];
        double sg = 0.0, sb = 0.0;
        for (int64_t t = threadIdx.x; t < batch * hw; t += blockDim.x) {
            const int64_t b = t / hw, i = t - b * hw;
            const float m = mean[b * groups + g], r = rstd[b * groups + g];
            const int64_t at = (b * c + ch) * hw + i;
            const float xhat = __fmul_rn(x[at] - m, r);
            const float d = gn_dpre(silu, dy[at], xhat, ga, bb);
            sg += (double)d * (double)xhat;
            sb += d;
        }
        sg = block_sum(sg);
        sb = block_sum(sb);
        if (threadIdx.x == 0) {
            dgamma[ch] += (float)sg;
            dbeta[ch] += (float)sb;
        }
    }
}

/* dx = rstd (g - mean(g) - xhat mean(g xhat)), g = gamma * dL/d(pre-activation); one block
 * per (sample, group). */
__global__ void k_gn_bwd_dx(int64_t batch, int64_t c, int64_t hw, int64_t groups, int silu, const float *x,
                            const float *gamma, const float *beta, const float *mean, const float *rstd,
                            const float *dy, float *dx, int accumulate) {
    const int64_t cg = c / groups, n = cg * hw;
    for (int64_t bg = blockIdx.x; bg < batch * groups; bg += gridDim.x) {
        const int64_t b = bg / groups, g = bg - b * groups;
        const float m = mean[bg], r = rstd[bg];
        const int64_t base = (b * c + g * cg) * hw;
        const float *xs = x + base, *dys = dy + base;
        float *dxs = dx + base;
        double s1 = 0.0, s2 = 0.0;
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
            const int64_t ch = g * cg + i / hw;
            const float xhat = __fmul_rn(xs[i] - m, r);
            const float gd = __fmul_rn(gn_dpre(silu, dys[i], xhat, gamma[ch], beta[ch]), gamma[ch]);
            s1 += gd;
            s2 += (double)gd * (double)xhat;
        }
        s1 = block_sum(s1);
        s2 = block_sum(s2);
        const float m1 = (float)(s1 / (double)n), m2 = (float)(s2 / (double)n);
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
            const int64_t ch = g * cg + i / hw;
            const float xhat = __fmul_rn(xs[i] - m, r);
            const float gd = __fmul_rn(gn_dpre(silu, dys[i], xhat, gamma[ch], beta[ch]), gamma[ch]);
            const float v = __fmul_rn(r, __fsub_rn(__fsub_rn(gd, m1), __fmul_rn(xhat, m2)));
            dxs[i] = accumulate ? dxs[i] + v : v;
        }
    }
}

pfgm_status cuda_groupnorm_fwd(pfgm_backend *be, int64_t batch, int64_t c, int64_t hw, int64_t groups, float eps,
                               int silu, const float *x, const float *gamma, const float *beta, float *y, float *mean,
                               float *rstd) {
    if (batch == 0) return PFGM_OK;
    k_gn_fwd<<<row_blocks(batch * groups), kThreads, 0, stream_of(be)>>>(batch, c, hw, groups, eps, silu, x, gamma,
                                                                          beta, y, mean, rstd);
    PFGM_CUDA_LAUNCH_CHECK();
    return PFGM_OK;
}

pfgm_status cuda_groupnorm_bwd(pfgm_backend *be, int64_t batch, int64_t c, int64_t hw, int64_t groups, int silu,
                               const float *x, const float *gamma, const float *beta, const float *mean,
                               const float *rstd, const float *dy, float *dx, int accumulate_dx, float *dgamma,
                               float *dbeta) {
    /* batch 0 adds zero to dgamma/dbeta and leaves dx empty, as the CPU op */
    if (batch == 0) return PFGM_OK;
    cudaStream_t s = stream_of(be);
    k_gn_bwd_params<<<row_blocks(c), kThreads, 0, s>>>(batch, c, hw, groups, silu, x, gamma, beta, mean, rstd, dy,
                                                       dgamma, dbeta);
    PFGM_CUDA_LAUNCH_CHECK();
    if (!dx) return PFGM_OK;
    k_gn_bwd_dx<<<row_blocks(batch * groups), kThreads, 0, s>>>(batch, c, hw, groups, silu, x, gamma, beta, mean, rstd,
                                                                dy, dx, accumulate_dx);
    PFGM_CUDA_LAUNCH_CHECK();
    return PFGM_OK;
}

} // namespace

void pfgm_cuda_norm_ops_init(pfgm_backend *be) {
    be->groupnorm_fwd = cuda_groupnorm_fwd;
    be->groupnorm_bwd = cuda_groupnorm_bwd;
}
