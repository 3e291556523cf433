/* Winograd F(2x2, 3x3) convolution for the CPU fast path (Lavin & Gray, "Fast Algorithms for
 * Convolutional Neural Networks", CVPR 2016): the 3x3, stride 1, zero-padding 1 convolution of
 * DDPM++ (spec §3.1) computed on 2x2 output tiles as
 *   Y_tile = A^T [ sum_c (G g_{o,c} G^T) (.) (B^T d_{c,tile} B) ] A
 * with d the 4x4 input patch around the tile, so that the channel sums become 16 independent
 * OpenBLAS sgemm calls M_e[cout, T] = U_e[cout, cin] . V_e[cin, T] over the T tiles of a chunk
 * of images (e = 0..15 the transformed positions): 2.25x fewer multiplications than the
 * direct form. Matrices:
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1],
 *   A^T = [1 1 1 0; 0 1 -1 -1].
 * The transforms add and subtract in float32 (measured error against a double direct
 * convolution ~1e-6 relative on O(1) data). Used for the forward and, with the flipped and
 * transposed weights, for the input gradient of the backward (cpu_conv.c). The transform
 * loops run over tiles, compiled for AVX2 when the processor has it (cpu_simd.h). */
#include "backend/cpu/cpu_nn.h"
#include "backend/cpu/cpu_simd.h"

#include <cblas.h>
#include <string.h>

static int64_t tiles_per_image(int64_t h, int64_t w) { return ((h + 1) / 2) * ((w + 1) / 2); }

/* One image per chunk: products over several images' tiles would be longer, but an image's
 * result would then depend on which images share its products (sgemm may pick another
 * kernel for another N), and DDPM++ guarantees per-sample results whatever the batch. */
int64_t pfgm_cpu_wino_chunk(int64_t h, int64_t w) {
    (void)h;
    (void)w;
    return 1;
}

size_t pfgm_cpu_wino_scratch_floats(int64_t cin, int64_t cout, int64_t h, int64_t w) {
    const int64_t tpi = tiles_per_image(h, w), T = pfgm_cpu_wino_chunk(h, w) * tpi, tw = (w + 1) / 2;
    /* V [16][cin][T], M [16][cout][T], one plane's row transforms [16][tpi] (input) or
     * [8][tpi] (output), a padded row */
    return (size_t)(16 * (cin + cout) * T + 16 * tpi + 2 * tw + 18);
}

void pfgm_cpu_wino_weights(const float *wt, int64_t cin, int64_t cout, int transpose_flip, float *U) {
    /* transpose_flip: the input gradient's weights W'[c][o][ky][kx] = W[o][c][2-ky][2-kx],
     * a convolution from cout channels to cin */
    const int64_t no = transpose_flip ? cin : cout, ni = transpose_flip ? cout : cin;
    for (int64_t o = 0; o < no; ++o)
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

/* The row transforms, portable and AVX2. Input: a padded row p[k] = input column k - 1
 * (2 tw + 2 floats, zero outside the image) -> for each tile j its 4 values d . B,
 *   h0 = p[2j] - p[2j+2], h1 = p[2j+1] + p[2j+2], h2 = p[2j+2] - p[2j+1], h3 = p[2j+1] - p[2j+3].
 * Output: the 4 column sums of a tile row's A^T m -> the row's 2 outputs per tile,
 *   y[2j] = s0 + s1 + s2 + b, y[2j+1] = s1 - s2 - s3 + b (= or += by acc; odd w: the last
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

static void orow_plain(const float *s0, const float *s1, const float *s2, const float *s3, int64_t tw, int64_t w,
                       float b, int acc, float *y) {
    for (int64_t j = 0; j < tw; ++j) {
        const float a = s0[j] + s1[j] + s2[j] + b, c = s1[j] - s2[j] - s3[j] + b;
        y[2 * j] = acc ? y[2 * j] + a : a;
        if (2 * j + 1 < w) y[2 * j + 1] = acc ? y[2 * j + 1] + c : c;
    }
}

#if PFGM_CPU_SIMD
/* Even and odd elements of p[0..15]. */
PFGM_AVX2_INLINE void deinterleave16(const float *p, __m256 *ev, __m256 *od) {
    const __m256 lo = _mm256_loadu_ps(p), hi = _mm256_loadu_ps(p + 8);
    *ev = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0))),
                                                 _MM_SHUFFLE(3, 1, 2, 0)));
    *od = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1))),
                                                 _MM_SHUFFLE(3, 1, 2, 0)));
}

PFGM_AVX2_INLINE void hrow_avx2(const float *p, int64_t tw, float *h0, float *h1, float *h2, float *h3) {
    int64_t j = 0;
    for (; j + 8 <= tw; j += 8) { /* reads p[2j .. 2j+17]: the padded row has 2 tw + 2 floats */
        __m256 c0, c1, c2, c3;
        deinterleave16(p + 2 * j, &c0, &c1);
        deinterleave16(p + 2 * j + 2, &c2, &c3);
        _mm256_storeu_ps(h0 + j, _mm256_sub_ps(c0, c2));
        _mm256_storeu_ps(h1 + j, _mm256_add_ps(c1, c2));
        _mm256_storeu_ps(h2 + j, _mm256_sub_ps(c2, c1));
        _mm256_storeu_ps(h3 + j, _mm256_sub_ps(c1, c3));
    }
    if (j < tw) hrow_plain(p + 2 * j, tw - j, h0 + j, h1 + j, h2 + j, h3 + j);
}

PFGM_AVX2_INLINE void orow_avx2(const float *s0, const float *s1, const float *s2, const float *s3, int64_t tw,
                                int64_t w, float b, int acc, float *y) {
    const __m256 vb = _mm256_set1_ps(b);
    int64_t j = 0;
    for (; j + 8 <= tw && 2 * j + 16 <= w; j += 8) {
        const __m256 a0 = _mm256_loadu_ps(s0 + j), a1 = _mm256_loadu_ps(s1 + j), a2 = _mm256_loadu_ps(s2 + j),
                     a3 = _mm256_loadu_ps(s3 + j);
        const __m256 a = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), a2), vb);
        const __m256 c = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(a1, a2), a3), vb);
        const __m256 t0 = _mm256_unpacklo_ps(a, c), t1 = _mm256_unpackhi_ps(a, c);
        __m256 y0 = _mm256_permute2f128_ps(t0, t1, 0x20), y1 = _mm256_permute2f128_ps(t0, t1, 0x31);
        if (acc) {
            y0 = _mm256_add_ps(y0, _mm256_loadu_ps(y + 2 * j));
            y1 = _mm256_add_ps(y1, _mm256_loadu_ps(y + 2 * j + 8));
        }
        _mm256_storeu_ps(y + 2 * j, y0);
        _mm256_storeu_ps(y + 2 * j + 8, y1);
    }
    if (j < tw) orow_plain(s0 + j, s1 + j, s2 + j, s3 + j, tw - j, w - 2 * j, b, acc, y + 2 * j);
}
#endif

/* B^T d B of every tile of one channel plane x [h, w] into the 16 streams out_e = V_e + t0:
 * each image row's horizontal transform is stored in H[k][q][tile row][tile column] for
 * both tile rows that read it (q its place among their 4 rows), then the vertical
 * combination runs over all tiles of the plane at once. */
#define WINO_BODY_INPUT(HROW)                                                                                    \
    const int64_t th = (h + 1) / 2, tw = (w + 1) / 2, tpi = th * tw;                                              \
    for (int64_t ti = 0; ti < th; ++ti) /* rows above and below the image are zero */                            \
        for (int q = 0; q < 4; ++q) {                                                                            \
            const int64_t iy = 2 * ti - 1 + q;                                                                   \
            if (iy >= 0 && iy < h) continue;                                                                     \
            for (int k = 0; k < 4; ++k) memset(H + ((int64_t)(k * 4 + q) * th + ti) * tw, 0, (size_t)tw * sizeof(float)); \
        }                                                                                                        \
    prow[0] = 0.0f;                                                                                              \
    for (int64_t k = w + 1; k < 2 * tw + 18; ++k) prow[k] = 0.0f;                                                \
    for (int64_t iy = 0; iy < h; ++iy) {                                                                         \
        memcpy(prow + 1, x + iy * w, (size_t)w * sizeof(float));                                                 \
        /* tile rows ti with iy = 2 ti - 1 + q, q in 0..3 */                                                     \
        int64_t tis[2], qs[2], n = 0;                                                                            \
        for (int64_t ti = (iy - 1) / 2; ti < th && n < 2; ++ti) { /* (-1)/2 = 0 */                     \
            const int64_t q = iy + 1 - 2 * ti;                                                                   \
            if (q < 0) break;                                                                                    \
            if (q > 3) continue;                                                                                 \
            tis[n] = ti;                                                                                         \
            qs[n++] = q;                                                                                         \
        }                                                                                                        \
        float *d0 = H + ((int64_t)(0 * 4 + qs[0]) * th + tis[0]) * tw, *d1 = H + ((int64_t)(1 * 4 + qs[0]) * th + tis[0]) * tw; \
        float *d2 = H + ((int64_t)(2 * 4 + qs[0]) * th + tis[0]) * tw, *d3 = H + ((int64_t)(3 * 4 + qs[0]) * th + tis[0]) * tw; \
        HROW(prow, tw, d0, d1, d2, d3);                                                                          \
        if (n == 2) {                                                                                            \
            const int64_t off = ((int64_t)(qs[1] - qs[0]) * th + (tis[1] - tis[0])) * tw;                        \
            memcpy(d0 + off, d0, (size_t)tw * sizeof(float));                                                    \
            memcpy(d1 + off, d1, (size_t)tw * sizeof(float));                                                    \
            memcpy(d2 + off, d2, (size_t)tw * sizeof(float));                                                    \
            memcpy(d3 + off, d3, (size_t)tw * sizeof(float));                                                    \
        }                                                                                                        \
    }                                                                                                            \
    for (int k = 0; k < 4; ++k) {                                                                                \
        const float *a0 = H + (int64_t)(k * 4 + 0) * tpi, *a1 = a0 + tpi, *a2 = a1 + tpi, *a3 = a2 + tpi;        \
        float *v0 = out[k], *v1 = out[4 + k], *v2 = out[8 + k], *v3 = out[12 + k];                               \
        for (int64_t u = 0; u < tpi; ++u) {                                                                      \
            v0[u] = a0[u] - a2[u];                                                                               \
            v1[u] = a1[u] + a2[u];                                                                               \
            v2[u] = a2[u] - a1[u];                                                                               \
            v3[u] = a1[u] - a3[u];                                                                               \
        }                                                                                                        \
    }

/* A^T m A of every tile of one output channel plane: in_e = M_e + t0 -> y [h, w] (+ bias,
 * = or += by acc). The vertical combination over all tiles first (S [2][4][tpi]), then the
 * horizontal one row of outputs at a time. */
#define WINO_BODY_OUTPUT(OROW)                                                                                   \
    const int64_t th = (h + 1) / 2, tw = (w + 1) / 2, tpi = th * tw;                                              \
    for (int k = 0; k < 4; ++k) {                                                                                \
        const float *m0 = in[k], *m1 = in[4 + k], *m2 = in[8 + k], *m3 = in[12 + k];                             \
        float *s0 = S + (int64_t)k * tpi, *s1 = S + (int64_t)(4 + k) * tpi;                                      \
        for (int64_t u = 0; u < tpi; ++u) {                                                                      \
            s0[u] = m0[u] + m1[u] + m2[u];                                                                       \
            s1[u] = m1[u] - m2[u] - m3[u];                                                                       \
        }                                                                                                        \
    }                                                                                                            \
    for (int64_t ti = 0; ti < th; ++ti)                                                                          \
        for (int r = 0; r < 2 && 2 * ti + r < h; ++r) {                                                          \
            const float *s = S + (int64_t)r * 4 * tpi + ti * tw;                                                 \
            OROW(s, s + tpi, s + 2 * tpi, s + 3 * tpi, tw, w, bias, acc, y + (2 * ti + r) * w);                  \
        }

static void input_plane_plain(const float *x, int64_t h, int64_t w, float *H, float *prow, float *const out[16]) {
    WINO_BODY_INPUT(hrow_plain)
}

static void output_plane_plain(float *const in[16], int64_t h, int64_t w, float bias, int acc, float *S, float *y) {
    WINO_BODY_OUTPUT(orow_plain)
}

#if PFGM_CPU_SIMD
PFGM_AVX2 static void input_plane_avx2(const float *x, int64_t h, int64_t w, float *H, float *prow,
                                       float *const out[16]) {
    WINO_BODY_INPUT(hrow_avx2)
}

PFGM_AVX2 static void output_plane_avx2(float *const in[16], int64_t h, int64_t w, float bias, int acc, float *S,
                                        float *y) {
    WINO_BODY_OUTPUT(orow_avx2)
}
#endif

void pfgm_cpu_wino_conv(const float *x, int64_t nimg, int64_t cin, int64_t cout, int64_t h, int64_t w, const float *U,
                        const float *bias, float *y, int acc, float *scratch) {
    const int64_t tpi = tiles_per_image(h, w), hw = h * w, chunk = pfgm_cpu_wino_chunk(h, w), Tmax = chunk * tpi;
    float *V = scratch, *M = V + 16 * cin * Tmax, *H = M + 16 * cout * Tmax, *prow = H + 16 * tpi;
#if PFGM_CPU_SIMD
    const int simd = cpu_have_avx2();
#endif
    for (int64_t n0 = 0; n0 < nimg; n0 += chunk) {
        const int64_t nb = nimg - n0 < chunk ? nimg - n0 : chunk, T = nb * tpi;
        /* V_e[c][t] for the chunk's tiles, t = (image, tile row, tile column) */
        for (int64_t m = 0; m < nb; ++m)
            for (int64_t c = 0; c < cin; ++c) {
                float *out[16];
                for (int e = 0; e < 16; ++e) out[e] = V + ((int64_t)e * cin + c) * T + m * tpi;
                const float *xc = x + ((n0 + m) * cin + c) * hw;
#if PFGM_CPU_SIMD
                if (simd) input_plane_avx2(xc, h, w, H, prow, out);
                else
#endif
                    input_plane_plain(xc, h, w, H, prow, out);
            }
        for (int e = 0; e < 16; ++e)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)cout, (blasint)T, (blasint)cin, 1.0f,
                        U + (int64_t)e * cout * cin, (blasint)cin, V + (int64_t)e * cin * T, (blasint)T, 0.0f,
                        M + (int64_t)e * cout * T, (blasint)T);
        for (int64_t m = 0; m < nb; ++m)
            for (int64_t o = 0; o < cout; ++o) {
                float *in[16];
                for (int e = 0; e < 16; ++e) in[e] = M + ((int64_t)e * cout + o) * T + m * tpi;
                float *yo = y + ((n0 + m) * cout + o) * hw;
                const float b = bias ? bias[o] : 0.0f;
#if PFGM_CPU_SIMD
                if (simd) output_plane_avx2(in, h, w, b, acc, H, yo);
                else
#endif
                    output_plane_plain(in, h, w, b, acc, H, yo);
            }
    }
}
