/* CPU ops of the network layers (backend.h "network layers" group): the elementwise and
 * data-movement ops (SiLU, resampling, broadcast add, channel copy, the z-field mean, the
 * z embedding, dropout, softmax backward), and the init that gathers the group's other files
 * (cpu_conv.c: convolutions and batched gemm; cpu_norm.c: GroupNorm). The reference and the
 * fast path share these loops; the fast path adds OpenMP over independent outputs, so both
 * give the same bits. */
#include "backend/cpu/cpu_nn.h"

#include <math.h>
#include <string.h>

/* These ops move a few bytes per flop: one thread streams a few MB in well under a
 * millisecond, while every OpenMP region is a fork and a barrier, which on a loaded machine
 * can wait a whole scheduler slice for a descheduled partner. They run on one thread below
 * 2M elements (all of DDPM++ at the paper's sizes and batch 16 per thread). */
#define PAR_MIN (1 << 21)
#define PAR(be, n) (!cpu_reference(be) && (n) > PAR_MIN)

static pfgm_status cpu_silu_fwd(pfgm_backend *be, int64_t n, const float *x, float *y) {
#pragma omp parallel for simd schedule(static) if (PAR(be, n))
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] / (1.0f + expf(-x[i]));
    return PFGM_OK;
}

/* d/dx x*s(x) = s(x) * (1 + x * (1 - s(x))), s the logistic sigmoid. */
static pfgm_status cpu_silu_bwd(pfgm_backend *be, int64_t n, const float *x, const float *dy, float *dx,
                                int accumulate) {
#pragma omp parallel for simd schedule(static) if (PAR(be, n))
    for (int64_t i = 0; i < n; ++i) {
        float s = 1.0f / (1.0f + expf(-x[i]));
        float g = dy[i] * s * (1.0f + x[i] * (1.0f - s));
        dx[i] = accumulate ? dx[i] + g : g;
    }
    return PFGM_OK;
}

static pfgm_status cpu_softmax_rows_bwd(pfgm_backend *be, int64_t rows, int64_t cols, const float *p, float *dp) {
#pragma omp parallel for schedule(static) if (PAR(be, rows * cols))
    for (int64_t r = 0; r < rows; ++r) {
        const float *pr = p + r * cols;
        float *dr = dp + r * cols;
        double s = 0.0;
        for (int64_t c = 0; c < cols; ++c) s += (double)pr[c] * dr[c];
        const float sf = (float)s;
        for (int64_t c = 0; c < cols; ++c) dr[c] = pr[c] * (dr[c] - sf);
    }
    return PFGM_OK;
}

/* ---- resampling (BigGAN blocks without FIR, spec §3.1 step 2) --------------------------- */

static pfgm_status cpu_upsample2x_fwd(pfgm_backend *be, int64_t planes, int64_t h, int64_t w, const float *x,
                                      float *y) {
#pragma omp parallel for schedule(static) if (PAR(be, planes * h * w * 4))
    for (int64_t p = 0; p < planes; ++p)
        for (int64_t i = 0; i < 2 * h; ++i) {
            const float *src = x + (p * h + i / 2) * w;
            float *dst = y + (p * 2 * h + i) * 2 * w;
            for (int64_t j = 0; j < 2 * w; ++j) dst[j] = src[j / 2];
        }
    return PFGM_OK;
}

static pfgm_status cpu_upsample2x_bwd(pfgm_backend *be, int64_t planes, int64_t h, int64_t w, const float *dy,
                                      float *dx, int accumulate) {
#pragma omp parallel for schedule(static) if (PAR(be, planes * h * w * 4))
    for (int64_t p = 0; p < planes; ++p)
        for (int64_t i = 0; i < h; ++i)
            for (int64_t j = 0; j < w; ++j) {
                const float *d0 = dy + (p * 2 * h + 2 * i) * 2 * w + 2 * j, *d1 = d0 + 2 * w;
                float g = (d0[0] + d0[1]) + (d1[0] + d1[1]);
                float *o = dx + (p * h + i) * w + j;
                *o = accumulate ? *o + g : g;
            }
    return PFGM_OK;
}

static pfgm_status cpu_avgpool2x2_fwd(pfgm_backend *be, int64_t planes, int64_t h, int64_t w, const float *x,
                                      float *y) {
    const int64_t ho = h / 2, wo = w / 2;
#pragma omp parallel for schedule(static) if (PAR(be, planes * h * w))
    for (int64_t p = 0; p < planes; ++p)
        for (int64_t i = 0; i < ho; ++i)
            for (int64_t j = 0; j < wo; ++j) {
                const float *s0 = x + (p * h + 2 * i) * w + 2 * j, *s1 = s0 + w;
                y[(p * ho + i) * wo + j] = ((s0[0] + s0[1]) + (s1[0] + s1[1])) * 0.25f;
            }
    return PFGM_OK;
}

static pfgm_status cpu_avgpool2x2_bwd(pfgm_backend *be, int64_t planes, int64_t h, int64_t w, const float *dy,
                                      float *dx, int accumulate) {
    const int64_t ho = h / 2, wo = w / 2;
#pragma omp parallel for schedule(static) if (PAR(be, planes * h * w))
    for (int64_t p = 0; p < planes; ++p)
        for (int64_t i = 0; i < h; ++i)
            for (int64_t j = 0; j < w; ++j) {
                float g = 0.25f * dy[(p * ho + i / 2) * wo + j / 2];
                float *o = dx + (p * h + i) * w + j;
                *o = accumulate ? *o + g : g;
            }
    return PFGM_OK;
}

/* ---- broadcast add, channel copy, z-field mean ------------------------------------------ */

static pfgm_status cpu_bcast_add_fwd(pfgm_backend *be, int64_t batch, int64_t c, int64_t hw, const float *v,
                                     int64_t v_stride, float *y) {
#pragma omp parallel for schedule(static) if (PAR(be, batch * c * hw))
    for (int64_t bc = 0; bc < batch * c; ++bc) {
        const float a = v[(bc / c) * v_stride + bc % c];
        float *row = y + bc * hw;
        for (int64_t i = 0; i < hw; ++i) row[i] += a;
    }
    return PFGM_OK;
}

static pfgm_status cpu_bcast_add_bwd(pfgm_backend *be, int64_t batch, int64_t c, int64_t hw, const float *dy,
                                     int64_t v_stride, float *dv, int accumulate) {
    if (v_stride == 0) {
#pragma omp parallel for schedule(static) if (PAR(be, batch * c * hw))
        for (int64_t ch = 0; ch < c; ++ch) {
            double s = 0.0;
            for (int64_t b = 0; b < batch; ++b) {
                const float *row = dy + (b * c + ch) * hw;
                for (int64_t i = 0; i < hw; ++i) s += row[i];
            }
            dv[ch] = accumulate ? dv[ch] + (float)s : (float)s;
        }
        return PFGM_OK;
    }
#pragma omp parallel for schedule(static) if (PAR(be, batch * c * hw))
    for (int64_t bc = 0; bc < batch * c; ++bc) {
        const float *row = dy + bc * hw;
        double s = 0.0;
        for (int64_t i = 0; i < hw; ++i) s += row[i];
        float *o = dv + (bc / c) * v_stride + bc % c;
        *o = accumulate ? *o + (float)s : (float)s;
    }
    return PFGM_OK;
}

static pfgm_status cpu_copy_channels(pfgm_backend *be, int64_t batch, int64_t hw, int64_t nc, const float *src,
                                     int64_t src_c, int64_t src_c0, float *dst, int64_t dst_c, int64_t dst_c0,
                                     int accumulate) {
#pragma omp parallel for schedule(static) if (PAR(be, batch * nc * hw))
    for (int64_t b = 0; b < batch; ++b) {
        const float *s = src + (b * src_c + src_c0) * hw;
        float *d = dst + (b * dst_c + dst_c0) * hw;
        if (!accumulate) {
            memcpy(d, s, (size_t)(nc * hw) * sizeof(float));
        } else {
            for (int64_t i = 0; i < nc * hw; ++i) d[i] += s[i];
        }
    }
    return PFGM_OK;
}

static pfgm_status cpu_channel_mean_fwd(pfgm_backend *be, int64_t batch, int64_t c, int64_t hw, int64_t ch,
                                        const float *x, float *out) {
    for (int64_t b = 0; b < batch; ++b) {
        const float *row = x + (b * c + ch) * hw;
        double s = 0.0;
        for (int64_t i = 0; i < hw; ++i) s += row[i];
        out[b] = (float)(s / (double)hw);
    }
    return PFGM_OK;
}

static pfgm_status cpu_channel_mean_bwd(pfgm_backend *be, int64_t batch, int64_t c, int64_t hw, int64_t ch,
                                        const float *dout, float *dx, int accumulate) {
    for (int64_t b = 0; b < batch; ++b) {
        float *row = dx + (b * c + ch) * hw;
        const float g = (float)((double)dout[b] / (double)hw);
        for (int64_t i = 0; i < hw; ++i) row[i] = accumulate ? row[i] + g : g;
    }
    return PFGM_OK;
}

/* ---- z embedding (spec §3.1): float32 in the authors' order of operations --------------- */

/* Frequencies of get_timestep_embedding: exp(k * -(ln(10000) / (half - 1))), in float. */
static inline float pos_freq(int64_t k, int64_t half) {
    const float step = (float)(-log(10000.0) / (double)(half - 1));
    return expf((float)k * step);
}

static const float PI_F = 3.14159265358979323846f;

static pfgm_status cpu_zembed_fwd(pfgm_backend *be, int64_t batch, int64_t half, int fourier, const float *z,
                                  const float *w, float *out) {
    for (int64_t b = 0; b < batch; ++b) {
        float *o = out + b * 2 * half;
        const float lz = fourier ? logf(z[b]) : 0.0f;
        for (int64_t k = 0; k < half; ++k) {
            /* Fourier: x_proj = ln(z) * W * 2 * pi, left to right as in layerspp.py */
            float a = fourier ? lz * w[k] * 2.0f * PI_F : z[b] * pos_freq(k, half);
            o[k] = sinf(a);
            o[half + k] = cosf(a);
        }
    }
    return PFGM_OK;
}

static pfgm_status cpu_zembed_bwd(pfgm_backend *be, int64_t batch, int64_t half, int fourier, const float *z,
                                  const float *w, const float *dout, float *dz, int accumulate) {
    for (int64_t b = 0; b < batch; ++b) {
        const float *d = dout + b * 2 * half;
        const float lz = fourier ? logf(z[b]) : 0.0f;
        double s = 0.0;
        for (int64_t k = 0; k < half; ++k) {
            /* da/dz: f_k (positional), 2 pi W_k / z (Fourier of ln z) */
            float a, dadz;
            if (fourier) {
                a = lz * w[k] * 2.0f * PI_F;
                dadz = w[k] * 2.0f * PI_F / z[b];
            } else {
                dadz = pos_freq(k, half);
                a = z[b] * dadz;
            }
            s += ((double)d[k] * cosf(a) - (double)d[half + k] * sinf(a)) * dadz;
        }
        dz[b] = accumulate ? dz[b] + (float)s : (float)s;
    }
    return PFGM_OK;
}

/* ---- dropout from the Philox stream ------------------------------------------------------ */

#define DROP_CHUNK 2048
static pfgm_status dropout_apply(pfgm_backend *be, int64_t n, float p, const pfgm_rng *r, uint64_t offset,
                                 const float *x, float *y, int accumulate) {
    const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    const int64_t chunks = (n + DROP_CHUNK - 1) / DROP_CHUNK;
#pragma omp parallel for schedule(static) if (!cpu_reference(be) && chunks > 4)
    for (int64_t ci = 0; ci < chunks; ++ci) {
        float u[DROP_CHUNK];
        const int64_t s = ci * DROP_CHUNK, len = n - s < DROP_CHUNK ? n - s : DROP_CHUNK;
        pfgm_rng_uniform(r, offset + (uint64_t)s, (size_t)len, u);
        for (int64_t i = 0; i < len; ++i) {
            float v = u[i] >= p ? x[s + i] * scale : 0.0f;
            y[s + i] = accumulate ? y[s + i] + v : v;
        }
    }
    return PFGM_OK;
}

static pfgm_status cpu_dropout_fwd(pfgm_backend *be, int64_t n, float p, const pfgm_rng *r, uint64_t offset,
                                   const float *x, float *y) {
    return dropout_apply(be, n, p, r, offset, x, y, 0);
}

static pfgm_status cpu_dropout_bwd(pfgm_backend *be, int64_t n, float p, const pfgm_rng *r, uint64_t offset,
                                   const float *dy, float *dx, int accumulate) {
    return dropout_apply(be, n, p, r, offset, dy, dx, accumulate);
}

void pfgm_cpu_nn_ops_init(pfgm_backend *be) {
    be->silu_fwd = cpu_silu_fwd;
    be->silu_bwd = cpu_silu_bwd;
    be->softmax_rows_bwd = cpu_softmax_rows_bwd;
    be->upsample2x_fwd = cpu_upsample2x_fwd;
    be->upsample2x_bwd = cpu_upsample2x_bwd;
    be->avgpool2x2_fwd = cpu_avgpool2x2_fwd;
    be->avgpool2x2_bwd = cpu_avgpool2x2_bwd;
    be->bcast_add_fwd = cpu_bcast_add_fwd;
    be->bcast_add_bwd = cpu_bcast_add_bwd;
    be->copy_channels = cpu_copy_channels;
    be->channel_mean_fwd = cpu_channel_mean_fwd;
    be->channel_mean_bwd = cpu_channel_mean_bwd;
    be->zembed_fwd = cpu_zembed_fwd;
    be->zembed_bwd = cpu_zembed_bwd;
    be->dropout_fwd = cpu_dropout_fwd;
    be->dropout_bwd = cpu_dropout_bwd;
    pfgm_cpu_conv_ops_init(be);
    pfgm_cpu_norm_ops_init(be);
}
