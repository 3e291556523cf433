/* CPU GroupNorm ops (backend.h "network layers": groupnorm_fwd/bwd), optionally fused with the
 * SiLU that follows every GroupNorm in DDPM++ except the attention block's (spec §3.1).
 * The backward recomputes the normalised value from (x, mean, rstd) instead of storing it,
 * which is what makes the fused form free.
 *
 * Reference (and processors without AVX2): statistics accumulated in double, the plain loops
 * below, (sample, group) pairs and channels in parallel with OpenMP.
 * Fast path (AVX2 + FMA, cpu_simd.h): the same formulas 8 lanes at a time with the SIMD
 * exp/sigmoid; sums run in float lanes over blocks of GN_BLOCK elements that are added in
 * double. The backward makes one pass per (sample, group) for the sums that both dx and the
 * parameter gradients need, and a second for dx; OpenMP runs over groups, each thread
 * summing its groups' parameter gradients over the batch in order, so the bits do not
 * depend on the thread count. */
#include "backend/cpu/cpu_nn.h"
#include "backend/cpu/cpu_simd.h"

#include <math.h>

static inline float sigmoidf(float v) { return 1.0f / (1.0f + expf(-v)); }

#if PFGM_CPU_SIMD
/* ---- fast path: AVX2 ------------------------------------------------------------------- */

#define GN_BLOCK 512     /* floats summed in float lanes before a double addition */
#define GN_MAX_CG 256    /* channels per group the fast backward keeps sums for on the stack */

/* Loads of the first n (< 8) lanes. */
PFGM_AVX2_INLINE __m256 gn_load(const float *p, int64_t n) {
    return n >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, simd_tail_mask(n));
}

PFGM_AVX2_INLINE void gn_store(float *p, __m256 v, int64_t n) {
    if (n >= 8) _mm256_storeu_ps(p, v);
    else _mm256_maskstore_ps(p, simd_tail_mask(n), v);
}

/* Mean and 1/sqrt(var + eps) of n contiguous floats (two passes, the variance about the
 * mean rounded to float). */
PFGM_AVX2 static void gn_stats_avx2(const float *x, int64_t n, float eps, float *mean, float *rstd) {
    double s = 0.0, v = 0.0;
    for (int64_t b0 = 0; b0 < n; b0 += GN_BLOCK) {
        const int64_t b1 = b0 + GN_BLOCK < n ? b0 + GN_BLOCK : n;
        __m256 acc = _mm256_setzero_ps();
        for (int64_t i = b0; i < b1; i += 8) acc = _mm256_add_ps(acc, gn_load(x + i, b1 - i));
        s += simd_hsum_pd(acc);
    }
    const float mu = (float)(s / (double)n);
    const __m256 vm = _mm256_set1_ps(mu);
    for (int64_t b0 = 0; b0 < n; b0 += GN_BLOCK) {
        const int64_t b1 = b0 + GN_BLOCK < n ? b0 + GN_BLOCK : n;
        __m256 acc = _mm256_setzero_ps();
        for (int64_t i = b0; i < b1; i += 8) {
            const int64_t k = b1 - i;
            __m256 d = _mm256_sub_ps(gn_load(x + i, k), vm);
            if (k < 8) d = _mm256_and_ps(d, _mm256_castsi256_ps(simd_tail_mask(k)));
            acc = _mm256_fmadd_ps(d, d, acc);
        }
        v += simd_hsum_pd(acc);
    }
    *mean = mu;
    *rstd = (float)(1.0 / sqrt(v / (double)n + (double)eps));
}

PFGM_AVX2 static void gn_fwd_avx2(int64_t batch, int64_t c, int64_t hw, int64_t groups, float eps, int silu,
                                  const float *x, const float *gamma, const float *beta, float *y, float *mean,
                                  float *rstd, int par) {
    const int64_t cg = c / groups;
#pragma omp parallel for schedule(static) if (par)
    for (int64_t bg = 0; bg < batch * groups; ++bg) {
        const int64_t b = bg / groups, g = bg % groups;
        const float *xs = x + (b * c + g * cg) * hw;
        float *ys = y + (b * c + g * cg) * hw;
        float m, r;
        gn_stats_avx2(xs, cg * hw, eps, &m, &r);
        mean[bg] = m;
        rstd[bg] = r;
        for (int64_t j = 0; j < cg; ++j) {
            const int64_t ch = g * cg + j;
            const float ga = gamma[ch] * r;
            const __m256 vga = _mm256_set1_ps(ga), vbe = _mm256_set1_ps(beta[ch] - m * ga);
            const float *xr = xs + j * hw;
            float *yr = ys + j * hw;
            for (int64_t i = 0; i < hw; i += 8) {
                const int64_t k = hw - i;
                __m256 t = _mm256_fmadd_ps(gn_load(xr + i, k), vga, vbe);
                if (silu) t = _mm256_mul_ps(t, simd_sigmoid(t));
                gn_store(yr + i, t, k);
            }
        }
    }
}

/* dL/d(pre-activation) of 8 lanes, and xhat. */
PFGM_AVX2_INLINE __m256 gn_dpre_avx2(int silu, __m256 xv, __m256 dyv, __m256 vm, __m256 vr, __m256 vg, __m256 vb,
                                     __m256 *xhat) {
    *xhat = _mm256_mul_ps(_mm256_sub_ps(xv, vm), vr);
    if (!silu) return dyv;
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 t = _mm256_fmadd_ps(*xhat, vg, vb), s = simd_sigmoid(t);
    return _mm256_mul_ps(_mm256_mul_ps(dyv, s), _mm256_fmadd_ps(t, _mm256_sub_ps(one, s), one));
}

PFGM_AVX2 static void gn_bwd_avx2(int64_t batch, int64_t c, int64_t hw, int64_t groups, int silu, const float *x,
                                  const float *gamma, const float *beta, const float *mean, const float *rstd,
                                  const float *dy, float *dx, int acc_dx, float *dgamma, float *dbeta, int par) {
    const int64_t cg = c / groups, n = cg * hw;
#pragma omp parallel for schedule(static) if (par)
    for (int64_t g = 0; g < groups; ++g) {
        double pg[GN_MAX_CG], pb[GN_MAX_CG]; /* parameter gradients of the group, over the batch */
        for (int64_t j = 0; j < cg; ++j) pg[j] = pb[j] = 0.0;
        for (int64_t b = 0; b < batch; ++b) {
            const int64_t bg = b * groups + g;
            const __m256 vm = _mm256_set1_ps(mean[bg]), vr = _mm256_set1_ps(rstd[bg]);
            const float *xs = x + (b * c + g * cg) * hw, *dys = dy + (b * c + g * cg) * hw;
            /* with SiLU and a fresh dx, the first pass keeps dL/d(pre-activation) in dx, so the
             * second does not evaluate the sigmoid again */
            float *keep = silu && dx && !acc_dx ? dx + (b * c + g * cg) * hw : NULL;
            double s1 = 0.0, s2 = 0.0;
            for (int64_t j = 0; j < cg; ++j) {
                const int64_t ch = g * cg + j;
                const __m256 vg = _mm256_set1_ps(gamma[ch]), vb = _mm256_set1_ps(beta[ch]);
                double db = 0.0, dg = 0.0;
                for (int64_t b0 = 0; b0 < hw; b0 += GN_BLOCK) {
                    const int64_t b1 = b0 + GN_BLOCK < hw ? b0 + GN_BLOCK : hw;
                    __m256 ab = _mm256_setzero_ps(), ag = _mm256_setzero_ps();
                    for (int64_t i = b0; i < b1; i += 8) {
                        const int64_t k = b1 - i;
                        __m256 xhat, d = gn_dpre_avx2(silu, gn_load(xs + j * hw + i, k), gn_load(dys + j * hw + i, k),
                                                      vm, vr, vg, vb, &xhat);
                        if (k < 8) d = _mm256_and_ps(d, _mm256_castsi256_ps(simd_tail_mask(k)));
                        if (keep) gn_store(keep + j * hw + i, d, k);
                        ab = _mm256_add_ps(ab, d);
                        ag = _mm256_fmadd_ps(d, xhat, ag);
                    }
                    db += simd_hsum_pd(ab);
                    dg += simd_hsum_pd(ag);
                }
                pb[j] += db;
                pg[j] += dg;
                s1 += (double)gamma[ch] * db; /* sum of gamma * dpre over the group */
                s2 += (double)gamma[ch] * dg; /* sum of gamma * dpre * xhat */
            }
            if (!dx) continue;
            /* dx = rstd (g - mean(g) - xhat mean(g xhat)), g = gamma * dpre */
            const __m256 vm1 = _mm256_set1_ps((float)(s1 / (double)n)), vm2 = _mm256_set1_ps((float)(s2 / (double)n));
            float *dxs = dx + (b * c + g * cg) * hw;
            for (int64_t j = 0; j < cg; ++j) {
                const int64_t ch = g * cg + j;
                const __m256 vg = _mm256_set1_ps(gamma[ch]), vb = _mm256_set1_ps(beta[ch]);
                for (int64_t i = 0; i < hw; i += 8) {
                    const int64_t k = hw - i;
                    __m256 xhat, d;
                    if (keep) {
                        xhat = _mm256_mul_ps(_mm256_sub_ps(gn_load(xs + j * hw + i, k), vm), vr);
                        d = gn_load(keep + j * hw + i, k);
                    } else {
                        d = gn_dpre_avx2(silu, gn_load(xs + j * hw + i, k), gn_load(dys + j * hw + i, k), vm, vr, vg, vb,
                                         &xhat);
                    }
                    __m256 v = _mm256_mul_ps(vr, _mm256_fnmadd_ps(xhat, vm2, _mm256_sub_ps(_mm256_mul_ps(vg, d), vm1)));
                    if (acc_dx) v = _mm256_add_ps(v, gn_load(dxs + j * hw + i, k));
                    gn_store(dxs + j * hw + i, v, k);
                }
            }
        }
        for (int64_t j = 0; j < cg; ++j) {
            dgamma[g * cg + j] += (float)pg[j];
            dbeta[g * cg + j] += (float)pb[j];
        }
    }
}
#endif

static pfgm_status cpu_groupnorm_fwd(pfgm_backend *be, int64_t batch, int64_t c, int64_t hw, int64_t groups, float eps,
                                     int silu, const float *x, const float *gamma, const float *beta, float *y,
                                     float *mean, float *rstd) {
    const int64_t cg = c / groups, n = cg * hw;
#if PFGM_CPU_SIMD
    if (!cpu_reference(be) && cpu_have_avx2()) {
        gn_fwd_avx2(batch, c, hw, groups, eps, silu, x, gamma, beta, y, mean, rstd, batch * c * hw > 32768);
        return PFGM_OK;
    }
#endif
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
    const int64_t cg = c / groups, n = cg * hw;
    const int par = !cpu_reference(be) && batch * c * hw > 32768;
#if PFGM_CPU_SIMD
    if (!cpu_reference(be) && cpu_have_avx2() && cg <= GN_MAX_CG) {
        gn_bwd_avx2(batch, c, hw, groups, silu, x, gamma, beta, mean, rstd, dy, dx, acc_dx, dgamma, dbeta, par);
        return PFGM_OK;
    }
#endif
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
