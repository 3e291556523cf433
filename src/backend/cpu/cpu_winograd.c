/* Winograd F(2x2, 3x3) convolution for the CPU fast path (Lavin & Gray, "Fast Algorithms for
 * Convolutional Neural Networks", CVPR 2016): the 3x3, stride 1, zero-padding 1 convolution of
 * DDPM++ (spec §3.1) computed on 2x2 output tiles as
 *   Y_tile = A^T [ sum_c (G g_{o,c} G^T) (.) (B^T d_{c,tile} B) ] A
 * with d the 4x4 input patch around the tile, so that the channel sums become 16 independent
 * OpenBLAS sgemm calls M_e[cout, T] = U_e[cout, cin] . V_e[cin, T] over the T tiles of one
 * image (e = 0..15 the transformed positions): 2.25x fewer multiplications than the direct
 * form. One image per product: products over several images' tiles would be longer, but an
 * image's result would then depend on which images share them (sgemm may pick another kernel
 * for another N), and DDPM++ promises per-sample results whatever the batch. Matrices:
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1],
 *   A^T = [1 1 1 0; 0 1 -1 -1].
 * The transforms add and subtract in float32 (measured error against a double direct
 * convolution ~1e-6 relative on O(1) data). Used for the forward, with the flipped and
 * transposed weights for the input gradient of the backward, and in its adjoint form for the
 * weight gradient (cpu_conv.c). The transform loops run over tiles, compiled for AVX2 when
 * the processor has it (cpu_simd.h). */
#include "backend/cpu/cpu_nn.h"
#include "backend/cpu/cpu_simd.h"

#include <cblas.h>
#include <string.h>

static int64_t tiles_per_image(int64_t h, int64_t w) { return ((h + 1) / 2) * ((w + 1) / 2); }

size_t pfgm_cpu_wino_scratch_floats(int64_t cin, int64_t cout, int64_t h, int64_t w) {
    const int64_t T = tiles_per_image(h, w), tw = (w + 1) / 2;
    /* V [16][cin][T + 8], M [16][cout][T + 8] (room for a last vector), the plane
     * transforms' scratch (input: ring, zeros and a padded row; output: S) */
    const int64_t tws = (tw + 7) & ~(int64_t)7;
    return (size_t)(16 * (cin + cout) * (T + 8) + 20 * tws + 2 * tw + 18);
}

void pfgm_cpu_wino_weights(const float *wt, int64_t cin, int64_t cout, int transpose_flip, int64_t o0, int64_t o1,
                           float *U) {
    /* transpose_flip: the input gradient's weights W'[c][o][ky][kx] = W[o][c][2-ky][2-kx],
     * a convolution from cout channels to cin */
    const int64_t no = transpose_flip ? cin : cout, ni = transpose_flip ? cout : cin;
    for (int64_t o = o0; o < o1; ++o)
        for (int64_t c = 0; c < ni; ++c) {
            float g[9], t[4][3];
            for (int k = 0; k < 9; ++k)
                g[k] = transpose_flip ? wt[(c * cin + o) * 9 + (8 - k)] : wt[(o * cin + c) * 9 + k];
            for (int k = 0; k < 3; ++k) { /* G g: rows */
                t[0][k] = g[k];
                t[1][k] = 0.5f * (g[k] + g[3 + k] + g[6 + k]);
                t[2][k] = 0.5f * (g[k] - g[3 + k] + g[6 + k]);
                t[3][k] = g[6 + k];
            }
            for (int r = 0; r < 4; ++r) { /* (G g) G^T: columns */
                const float u[4] = {t[r][0], 0.5f * (t[r][0] + t[r][1] + t[r][2]), 0.5f * (t[r][0] - t[r][1] + t[r][2]),
                                    t[r][2]};
                for (int k = 0; k < 4; ++k) U[((int64_t)(r * 4 + k) * no + o) * ni + c] = u[k];
            }
        }
}

/* The transforms one row of tiles at a time, portable and AVX2 (8 tiles per vector, masked
 * tails). Horizontal, input: a padded row p[k] = input column k - 1 (zero outside the image)
 * -> for each tile j its 4 values d . B,
 *   h0 = p[2j] - p[2j+2], h1 = p[2j+1] + p[2j+2], h2 = p[2j+2] - p[2j+1], h3 = p[2j+1] - p[2j+3].
 * Vertical, input: B^T over the 4 rows' values, v0 = a0 - a2, v1 = a1 + a2, v2 = a2 - a1,
 * v3 = a1 - a3. Vertical, output: s0 = m0 + m1 + m2, s1 = m1 - m2 - m3. Horizontal, output:
 * y[2j] = s0 + s1 + s2 + b, y[2j+1] = s1 - s2 - s3 + b (= or += by acc; odd w: the last
 * tile's second output falls outside). */
static void hrow_plain(const float *p, int64_t tw, float *h0, float *h1, float *h2, float *h3) {
    for (int64_t j = 0; j < tw; ++j) {
        const float c0 = p[2 * j], c1 = p[2 * j + 1], c2 = p[2 * j + 2], c3 = p[2 * j + 3];
        h0[j] = c0 - c2;
        h1[j] = c1 + c2;
        h2[j] = c2 - c1;
        h3[j] = c1 - c3;
    }
}

static void vin_plain(const float *a0, const float *a1, const float *a2, const float *a3, int64_t n, float *v0,
                      float *v1, float *v2, float *v3) {
    for (int64_t j = 0; j < n; ++j) {
        v0[j] = a0[j] - a2[j];
        v1[j] = a1[j] + a2[j];
        v2[j] = a2[j] - a1[j];
        v3[j] = a1[j] - a3[j];
    }
}

static void vout_plain(const float *m0, const float *m1, const float *m2, const float *m3, int64_t n, float *s0,
                       float *s1) {
    for (int64_t j = 0; j < n; ++j) {
        s0[j] = m0[j] + m1[j] + m2[j];
        s1[j] = m1[j] - m2[j] - m3[j];
    }
}

static void orow_plain(const float *s0, const float *s1, const float *s2, const float *s3, int64_t tw, int64_t w,
                       float b, int acc, float *y) {
    for (int64_t j = 0; j < tw; ++j) {
        const float a = s0[j] + s1[j] + s2[j] + b, c = s1[j] - s2[j] - s3[j] + b;
        y[2 * j] = acc ? y[2 * j] + a : a;
        if (2 * j + 1 < w) y[2 * j + 1] = acc ? y[2 * j + 1] + c : c;
    }
}

#if PFGM_CPU_SIMD
/* Loads and stores of the first n lanes (n >= 8: all). */
PFGM_AVX2_INLINE __m256 ld(const float *p, int64_t n) {
    return n >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, simd_tail_mask(n));
}

PFGM_AVX2_INLINE void st(float *p, __m256 v, int64_t n) {
    if (n >= 8) _mm256_storeu_ps(p, v);
    else if (n > 0) _mm256_maskstore_ps(p, simd_tail_mask(n), v);
}

/* Even and odd elements of p[0..15]. */
PFGM_AVX2_INLINE void deinterleave16(const float *p, __m256 *ev, __m256 *od) {
    const __m256 lo = _mm256_loadu_ps(p), hi = _mm256_loadu_ps(p + 8);
    *ev = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0))),
                                                 _MM_SHUFFLE(3, 1, 2, 0)));
    *od = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1))),
                                                 _MM_SHUFFLE(3, 1, 2, 0)));
}

/* The AVX2 forms work in whole vectors: every array they read or write (the padded row,
 * the ring, the V and M streams, S) has room for the last vector past its tw values, which
 * are either never read or overwritten later; only the image rows y get masked stores. */
/* p must hold 2 tw + 18 floats (the last vector reads past the row's zeros). */
PFGM_AVX2_INLINE void hrow_avx2(const float *p, int64_t tw, float *h0, float *h1, float *h2, float *h3) {
    for (int64_t j = 0; j < tw; j += 8) {
        __m256 c0, c1, c2, c3;
        deinterleave16(p + 2 * j, &c0, &c1);
        deinterleave16(p + 2 * j + 2, &c2, &c3);
        _mm256_storeu_ps(h0 + j, _mm256_sub_ps(c0, c2));
        _mm256_storeu_ps(h1 + j, _mm256_add_ps(c1, c2));
        _mm256_storeu_ps(h2 + j, _mm256_sub_ps(c2, c1));
        _mm256_storeu_ps(h3 + j, _mm256_sub_ps(c1, c3));
    }
}

PFGM_AVX2_INLINE void vin_avx2(const float *a0, const float *a1, const float *a2, const float *a3, int64_t n, float *v0,
                               float *v1, float *v2, float *v3) {
    for (int64_t j = 0; j < n; j += 8) {
        const __m256 x0 = _mm256_loadu_ps(a0 + j), x1 = _mm256_loadu_ps(a1 + j), x2 = _mm256_loadu_ps(a2 + j),
                     x3 = _mm256_loadu_ps(a3 + j);
        _mm256_storeu_ps(v0 + j, _mm256_sub_ps(x0, x2));
        _mm256_storeu_ps(v1 + j, _mm256_add_ps(x1, x2));
        _mm256_storeu_ps(v2 + j, _mm256_sub_ps(x2, x1));
        _mm256_storeu_ps(v3 + j, _mm256_sub_ps(x1, x3));
    }
}

PFGM_AVX2_INLINE void vout_avx2(const float *m0, const float *m1, const float *m2, const float *m3, int64_t n,
                                float *s0, float *s1) {
    for (int64_t j = 0; j < n; j += 8) {
        const __m256 x1 = _mm256_loadu_ps(m1 + j), x2 = _mm256_loadu_ps(m2 + j);
        _mm256_storeu_ps(s0 + j, _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(m0 + j), x1), x2));
        _mm256_storeu_ps(s1 + j, _mm256_sub_ps(_mm256_sub_ps(x1, x2), _mm256_loadu_ps(m3 + j)));
    }
}

PFGM_AVX2_INLINE void orow_avx2(const float *s0, const float *s1, const float *s2, const float *s3, int64_t tw,
                                int64_t w, float b, int acc, float *y) {
    const __m256 vb = _mm256_set1_ps(b);
    for (int64_t j = 0; j < tw; j += 8) {
        const int64_t out = w - 2 * j; /* outputs left in the row */
        const __m256 a1 = _mm256_loadu_ps(s1 + j), a2 = _mm256_loadu_ps(s2 + j);
        const __m256 a = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(s0 + j), a1), a2), vb);
        const __m256 c = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(a1, a2), _mm256_loadu_ps(s3 + j)), vb);
        const __m256 t0 = _mm256_unpacklo_ps(a, c), t1 = _mm256_unpackhi_ps(a, c);
        __m256 y0 = _mm256_permute2f128_ps(t0, t1, 0x20), y1 = _mm256_permute2f128_ps(t0, t1, 0x31);
        const int64_t n0 = out < 8 ? out : 8, n1 = out - 8 < 8 ? out - 8 : 8;
        if (acc) {
            y0 = _mm256_add_ps(y0, ld(y + 2 * j, n0));
            if (n1 > 0) y1 = _mm256_add_ps(y1, ld(y + 2 * j + 8, n1));
        }
        st(y + 2 * j, y0, n0);
        st(y + 2 * j + 8, y1, n1);
    }
}
#endif

/* B^T d B of every tile of one channel plane x [h, w] into the 16 streams out_e = V_e + t0,
 * one row of tiles at a time: each image row's horizontal transform is computed once, kept
 * in a ring of 4 (rows 2ti-1 .. 2ti+2 of tile row ti; rows outside the image are zeros), and
 * combined vertically into the row of tiles. Scratch: ring [4][4][tw], zeros [4 tw], a
 * padded row of 2 tw + 18 floats. */
#define WINO_BODY_INPUT(HROW, VIN)                                                                               \
    const int64_t th = (h + 1) / 2, tw = (w + 1) / 2, tws = (tw + 7) & ~(int64_t)7;                              \
    float *ring = scratch, *zero = ring + 16 * tws, *prow = zero + 4 * tws;                                       \
    memset(zero, 0, (size_t)(4 * tws) * sizeof(float));                                                         \
    prow[0] = 0.0f;                                                                                              \
    for (int64_t k = w + 1; k < 2 * tw + 18; ++k) prow[k] = 0.0f;                                                \
    const float *rows[4];                                                                                        \
    for (int64_t ti = 0; ti < th; ++ti) {                                                                        \
        for (int64_t iy = ti ? 2 * ti + 1 : 2 * ti - 1; iy <= 2 * ti + 2; ++iy) {                                \
            float *set = ring + ((iy + 1) & 3) * 4 * tws;                                                         \
            if (iy < 0 || iy >= h) {                                                                             \
                memcpy(set, zero, (size_t)(4 * tws) * sizeof(float));                                            \
                continue;                                                                                        \
            }                                                                                                    \
            memcpy(prow + 1, x + iy * w, (size_t)w * sizeof(float));                                             \
            HROW(prow, tw, set, set + tws, set + 2 * tws, set + 3 * tws);                                        \
        }                                                                                                        \
        for (int q = 0; q < 4; ++q) rows[q] = ring + ((2 * ti + q) & 3) * 4 * tws;                               \
        for (int k = 0; k < 4; ++k)                                                                              \
            VIN(rows[0] + k * tws, rows[1] + k * tws, rows[2] + k * tws, rows[3] + k * tws, tw, out[k] + ti * tw,  \
                out[4 + k] + ti * tw, out[8 + k] + ti * tw, out[12 + k] + ti * tw);                               \
    }

/* A^T m A of every tile of one output channel plane: in_e = M_e + t0 -> y [h, w] (+ bias,
 * = or += by acc), one row of tiles at a time. Scratch: S [2][4][tw]. */
#define WINO_BODY_OUTPUT(VOUT, OROW)                                                                             \
    const int64_t th = (h + 1) / 2, tw = (w + 1) / 2, tws = (tw + 7) & ~(int64_t)7;                              \
    float *S = scratch;                                                                                          \
    for (int64_t ti = 0; ti < th; ++ti) {                                                                        \
        const int64_t u = ti * tw;                                                                               \
        for (int k = 0; k < 4; ++k)                                                                              \
            VOUT(in[k] + u, in[4 + k] + u, in[8 + k] + u, in[12 + k] + u, tw, S + k * tws, S + (4 + k) * tws);     \
        for (int r = 0; r < 2 && 2 * ti + r < h; ++r) {                                                          \
            const float *sr = S + (int64_t)r * 4 * tws;                                                          \
            OROW(sr, sr + tws, sr + 2 * tws, sr + 3 * tws, tw, w, bias, acc, y + (2 * ti + r) * w);              \
        }                                                                                                        \
    }

static void input_plane_plain(const float *x, int64_t h, int64_t w, float *scratch, float *const out[16]) {
    WINO_BODY_INPUT(hrow_plain, vin_plain)
}

static void output_plane_plain(float *const in[16], int64_t h, int64_t w, float bias, int acc, float *scratch,
                               float *y) {
    WINO_BODY_OUTPUT(vout_plain, orow_plain)
}

#if PFGM_CPU_SIMD
PFGM_AVX2 static void input_plane_avx2(const float *x, int64_t h, int64_t w, float *scratch, float *const out[16]) {
    WINO_BODY_INPUT(hrow_avx2, vin_avx2)
}

PFGM_AVX2 static void output_plane_avx2(float *const in[16], int64_t h, int64_t w, float bias, int acc, float *scratch,
                                        float *y) {
    WINO_BODY_OUTPUT(vout_avx2, orow_avx2)
}
#endif

/* ---- weight gradient --------------------------------------------------------------------
 * With M_e[o,t] = sum_c U_e[o,c] V_e[c,t] and Y_tile = A^T M A, the gradient of U_e is
 *   dU_e[o,c] = sum_t Z_e[o,t] V_e[c,t],   Z_tile = A dY_tile A^T (the adjoint of A^T . A),
 * and that of the 3x3 weights dW = G^T dU G (the adjoint of U = G g G^T). Z of a 2x2 tile
 * [a b; c d] of dY: rows A [a b; c d] = [a b; a+c b+d; a-c b-d; -c -d], then the same on the
 * columns, each row [p q] -> [p, p+q, p-q, -q]; dY is zero past the image. */
static void zrow_plain(const float *p, int64_t tw, float *h0, float *h1, float *h2, float *h3) {
    for (int64_t j = 0; j < tw; ++j) {
        const float a = p[2 * j], b = p[2 * j + 1];
        h0[j] = a;
        h1[j] = a + b;
        h2[j] = a - b;
        h3[j] = -b;
    }
}

static void zcol_plain(const float *r0, const float *r1, int64_t n, float *z0, float *z1, float *z2, float *z3) {
    for (int64_t j = 0; j < n; ++j) {
        z0[j] = r0[j];
        z1[j] = r0[j] + r1[j];
        z2[j] = r0[j] - r1[j];
        z3[j] = -r1[j];
    }
}

#if PFGM_CPU_SIMD
PFGM_AVX2_INLINE void zrow_avx2(const float *p, int64_t tw, float *h0, float *h1, float *h2, float *h3) {
    for (int64_t j = 0; j < tw; j += 8) {
        __m256 a, b;
        deinterleave16(p + 2 * j, &a, &b);
        _mm256_storeu_ps(h0 + j, a);
        _mm256_storeu_ps(h1 + j, _mm256_add_ps(a, b));
        _mm256_storeu_ps(h2 + j, _mm256_sub_ps(a, b));
        _mm256_storeu_ps(h3 + j, _mm256_sub_ps(_mm256_setzero_ps(), b));
    }
}

PFGM_AVX2_INLINE void zcol_avx2(const float *r0, const float *r1, int64_t n, float *z0, float *z1, float *z2,
                                float *z3) {
    for (int64_t j = 0; j < n; j += 8) {
        const __m256 a = _mm256_loadu_ps(r0 + j), b = _mm256_loadu_ps(r1 + j);
        _mm256_storeu_ps(z0 + j, a);
        _mm256_storeu_ps(z1 + j, _mm256_add_ps(a, b));
        _mm256_storeu_ps(z2 + j, _mm256_sub_ps(a, b));
        _mm256_storeu_ps(z3 + j, _mm256_sub_ps(_mm256_setzero_ps(), b));
    }
}
#endif

/* Z of every tile of one plane dy [h, w] into the 16 streams out_e, one row of tiles at a
 * time. Scratch: 2 row sets [4][tws], a padded row of 2 tw + 18 floats. */
#define WINO_BODY_GRAD(ZROW, ZCOL)                                                                               \
    const int64_t th = (h + 1) / 2, tw = (w + 1) / 2, tws = (tw + 7) & ~(int64_t)7;                              \
    float *r0 = scratch, *r1 = r0 + 4 * tws, *prow = r1 + 4 * tws;                                               \
    for (int64_t k = w; k < 2 * tw + 18; ++k) prow[k] = 0.0f;                                                    \
    for (int64_t ti = 0; ti < th; ++ti) {                                                                        \
        memcpy(prow, dy + 2 * ti * w, (size_t)w * sizeof(float));                                                \
        ZROW(prow, tw, r0, r0 + tws, r0 + 2 * tws, r0 + 3 * tws);                                                \
        if (2 * ti + 1 < h) {                                                                                    \
            memcpy(prow, dy + (2 * ti + 1) * w, (size_t)w * sizeof(float));                                      \
            ZROW(prow, tw, r1, r1 + tws, r1 + 2 * tws, r1 + 3 * tws);                                            \
        } else {                                                                                                 \
            memset(r1, 0, (size_t)(4 * tws) * sizeof(float));                                                   \
        }                                                                                                        \
        for (int k = 0; k < 4; ++k)                                                                              \
            ZCOL(r0 + k * tws, r1 + k * tws, tw, out[k] + ti * tw, out[4 + k] + ti * tw, out[8 + k] + ti * tw,    \
                 out[12 + k] + ti * tw);                                                                         \
    }

static void grad_plane_plain(const float *dy, int64_t h, int64_t w, float *scratch, float *const out[16]) {
    WINO_BODY_GRAD(zrow_plain, zcol_plain)
}

#if PFGM_CPU_SIMD
PFGM_AVX2 static void grad_plane_avx2(const float *dy, int64_t h, int64_t w, float *scratch, float *const out[16]) {
    WINO_BODY_GRAD(zrow_avx2, zcol_avx2)
}
#endif

void pfgm_cpu_wino_grad_image(const float *xn, const float *dyn, int64_t cin, int64_t cout, int64_t h, int64_t w,
                              float *dU, float *scratch) {
    const int64_t tpi = tiles_per_image(h, w), hw = h * w, Tp = tpi + 8;
    float *V = scratch, *Z = V + 16 * cin * Tp, *rest = Z + 16 * cout * Tp;
#if PFGM_CPU_SIMD
    const int simd = cpu_have_avx2();
#endif
    float *out[16];
    for (int64_t c = 0; c < cin; ++c) {
        for (int e = 0; e < 16; ++e) out[e] = V + ((int64_t)e * cin + c) * Tp;
#if PFGM_CPU_SIMD
        if (simd) input_plane_avx2(xn + c * hw, h, w, rest, out);
        else
#endif
            input_plane_plain(xn + c * hw, h, w, rest, out);
    }
    for (int64_t o = 0; o < cout; ++o) {
        for (int e = 0; e < 16; ++e) out[e] = Z + ((int64_t)e * cout + o) * Tp;
#if PFGM_CPU_SIMD
        if (simd) grad_plane_avx2(dyn + o * hw, h, w, rest, out);
        else
#endif
            grad_plane_plain(dyn + o * hw, h, w, rest, out);
    }
    for (int e = 0; e < 16; ++e) /* dU_e += Z_e . V_e^T over the image's tiles */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)cout, (blasint)cin, (blasint)tpi, 1.0f,
                    Z + (int64_t)e * cout * Tp, (blasint)Tp, V + (int64_t)e * cin * Tp, (blasint)Tp, 1.0f,
                    dU + (int64_t)e * cout * cin, (blasint)cin);
}

void pfgm_cpu_wino_grad_finish(const float *dU, int64_t cin, int64_t cout, float *dw) {
    for (int64_t o = 0; o < cout; ++o)
        for (int64_t c = 0; c < cin; ++c) {
            float d[4][4], t[4][3];
            for (int e = 0; e < 16; ++e) d[e / 4][e % 4] = dU[((int64_t)e * cout + o) * cin + c];
            for (int r = 0; r < 4; ++r) { /* D G */
                t[r][0] = d[r][0] + 0.5f * (d[r][1] + d[r][2]);
                t[r][1] = 0.5f * (d[r][1] - d[r][2]);
                t[r][2] = 0.5f * (d[r][1] + d[r][2]) + d[r][3];
            }
            float *g = dw + (o * cin + c) * 9;
            for (int k = 0; k < 3; ++k) { /* G^T (D G) */
                g[k] += t[0][k] + 0.5f * (t[1][k] + t[2][k]);
                g[3 + k] += 0.5f * (t[1][k] - t[2][k]);
                g[6 + k] += 0.5f * (t[1][k] + t[2][k]) + t[3][k];
            }
        }
}

void pfgm_cpu_wino_conv(const float *x, int64_t nimg, int64_t cin, int64_t cout, int64_t h, int64_t w, const float *U,
                        const float *bias, float *y, int acc, float *scratch) {
    const int64_t T = tiles_per_image(h, w), hw = h * w, Tp = T + 8;
    float *V = scratch, *M = V + 16 * cin * Tp, *rest = M + 16 * cout * Tp;
#if PFGM_CPU_SIMD
    const int simd = cpu_have_avx2();
#endif
    for (int64_t n = 0; n < nimg; ++n) {
        float *s[16];
        for (int64_t c = 0; c < cin; ++c) { /* V_e[c][t], t = (tile row, tile column) */
            for (int e = 0; e < 16; ++e) s[e] = V + ((int64_t)e * cin + c) * Tp;
            const float *xc = x + (n * cin + c) * hw;
#if PFGM_CPU_SIMD
            if (simd) input_plane_avx2(xc, h, w, rest, s);
            else
#endif
                input_plane_plain(xc, h, w, rest, s);
        }
        for (int e = 0; e < 16; ++e)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)cout, (blasint)T, (blasint)cin, 1.0f,
                        U + (int64_t)e * cout * cin, (blasint)cin, V + (int64_t)e * cin * Tp, (blasint)Tp, 0.0f,
                        M + (int64_t)e * cout * Tp, (blasint)Tp);
        for (int64_t o = 0; o < cout; ++o) {
            for (int e = 0; e < 16; ++e) s[e] = M + ((int64_t)e * cout + o) * Tp;
            float *yo = y + (n * cout + o) * hw;
            const float b = bias ? bias[o] : 0.0f;
#if PFGM_CPU_SIMD
            if (simd) output_plane_avx2(s, h, w, b, acc, rest, yo);
            else
#endif
                output_plane_plain(s, h, w, b, acc, rest, yo);
        }
    }
}
