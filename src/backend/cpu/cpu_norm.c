/* CPU GroupNorm ops (backend.h "network layers": groupnorm_fwd/bwd), optionally fused with the
 * SiLU that follows every GroupNorm in DDPM++ except the attention block's (spec §3.1).
 * Statistics are accumulated in double in both modes; the fast path runs (sample, group)
 * pairs and channels in parallel with OpenMP. The backward recomputes the normalised value
 * from (x, mean, rstd) instead of storing it, which is what makes the fused form free. */
#include "backend/cpu/cpu_nn.h"

#include <math.h>

static pfgm_status gn_check(const char *op, int64_t batch, int64_t c, int64_t hw, int64_t groups) {
    if (batch < 0 || c <= 0 || hw <= 0 || groups <= 0 || c % groups != 0)
        return pfgm_error(PFGM_ERR_INVALID_ARG,
                          "%s: bad shape batch=%lld c=%lld hw=%lld groups=%lld (c must be a multiple of groups)", op,
                          (long long)batch, (long long)c, (long long)hw, (long long)groups);
    return PFGM_OK;
}

static inline float sigmoidf(float v) { return 1.0f / (1.0f + expf(-v)); }

static pfgm_status cpu_groupnorm_fwd(pfgm_backend *be, int64_t batch, int64_t c, int64_t hw, int64_t groups, float eps,
                                     int silu, const float *x, const float *gamma, const float *beta, float *y,
                                     float *mean, float *rstd) {
    pfgm_status st = gn_check("groupnorm_fwd", batch, c, hw, groups);
    if (st != PFGM_OK) return st;
    const int64_t cg = c / groups, n = cg * hw;
#pragma omp parallel for schedule(static) if (!cpu_reference(be) && batch * c * hw > 32768)
    for (int64_t bg = 0; bg < batch * groups; ++bg) {
        const int64_t b = bg / groups, g = bg % groups;
        const float *xs = x + (b * c + g * cg) * hw;
        float *ys = y + (b * c + g * cg) * hw;
        double s = 0.0;
        for (int64_t i = 0; i < n; ++i) s += xs[i];
        const double mu = s / (double)n;
        double v = 0.0;
        for (int64_t i = 0; i < n; ++i) v += ((double)xs[i] - mu) * ((double)xs[i] - mu);
        const float m = (float)mu, r = (float)(1.0 / sqrt(v / (double)n + (double)eps));
        mean[bg] = m;
        rstd[bg] = r;
        for (int64_t j = 0; j < cg; ++j) {
            const int64_t ch = g * cg + j;
            const float ga = gamma[ch] * r, be0 = beta[ch] - m * ga;
            for (int64_t i = 0; i < hw; ++i) {
                float t = xs[j * hw + i] * ga + be0;
                ys[j * hw + i] = silu ? t * sigmoidf(t) : t;
            }
        }
    }
    return PFGM_OK;
}

/* dL/d(pre-activation) of element (x, channel gains) for the fused SiLU, or dy itself. */
static inline float gn_dpre(int silu, float dy, float xhat, float ga, float be0) {
    if (!silu) return dy;
    float t = xhat * ga + be0, s = sigmoidf(t);
    return dy * s * (1.0f + t * (1.0f - s));
}

static pfgm_status cpu_groupnorm_bwd(pfgm_backend *be, int64_t batch, int64_t c, int64_t hw, int64_t groups, int silu,
                                     const float *x, const float *gamma, const float *beta, const float *mean,
                                     const float *rstd, const float *dy, float *dx, int acc_dx, float *dgamma,
                                     float *dbeta) {
    pfgm_status st = gn_check("groupnorm_bwd", batch, c, hw, groups);
    if (st != PFGM_OK) return st;
    const int64_t cg = c / groups, n = cg * hw;
    const int par = !cpu_reference(be) && batch * c * hw > 32768;
    /* Parameter gradients: one channel per iteration, summed over the batch in order. */
#pragma omp parallel for schedule(static) if (par)
    for (int64_t ch = 0; ch < c; ++ch) {
        const int64_t g = ch / cg;
        double sg = 0.0, sb = 0.0;
        for (int64_t b = 0; b < batch; ++b) {
            const float m = mean[b * groups + g], r = rstd[b * groups + g];
            const float *xs = x + (b * c + ch) * hw, *dys = dy + (b * c + ch) * hw;
            for (int64_t i = 0; i < hw; ++i) {
                float xhat = (xs[i] - m) * r;
                float d = gn_dpre(silu, dys[i], xhat, gamma[ch], beta[ch]);
                sg += (double)d * xhat;
                sb += d;
            }
        }
        dgamma[ch] += (float)sg;
        dbeta[ch] += (float)sb;
    }
    if (!dx) return PFGM_OK;
    /* dx = rstd (g - mean(g) - xhat mean(g xhat)), g = gamma * dL/d(pre-activation). */
#pragma omp parallel for schedule(static) if (par)
    for (int64_t bg = 0; bg < batch * groups; ++bg) {
        const int64_t b = bg / groups, g = bg % groups;
        const float m = mean[bg], r = rstd[bg];
        const float *xs = x + (b * c + g * cg) * hw, *dys = dy + (b * c + g * cg) * hw;
        float *dxs = dx + (b * c + g * cg) * hw;
        double s1 = 0.0, s2 = 0.0;
        for (int64_t j = 0; j < cg; ++j) {
            const int64_t ch = g * cg + j;
            for (int64_t i = 0; i < hw; ++i) {
                float xhat = (xs[j * hw + i] - m) * r;
                float gd = gn_dpre(silu, dys[j * hw + i], xhat, gamma[ch], beta[ch]) * gamma[ch];
                s1 += gd;
                s2 += (double)gd * xhat;
            }
        }
        const float m1 = (float)(s1 / (double)n), m2 = (float)(s2 / (double)n);
        for (int64_t j = 0; j < cg; ++j) {
            const int64_t ch = g * cg + j;
            for (int64_t i = 0; i < hw; ++i) {
                float xhat = (xs[j * hw + i] - m) * r;
                float gd = gn_dpre(silu, dys[j * hw + i], xhat, gamma[ch], beta[ch]) * gamma[ch];
                float v = r * (gd - m1 - xhat * m2);
                dxs[j * hw + i] = acc_dx ? dxs[j * hw + i] + v : v;
            }
        }
    }
    return PFGM_OK;
}

void pfgm_cpu_norm_ops_init(pfgm_backend *be) {
    be->groupnorm_fwd = cpu_groupnorm_fwd;
    be->groupnorm_bwd = cpu_groupnorm_bwd;
}
