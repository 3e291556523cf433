/* CPU matrix-product ops of the network layers (backend.h "network layers": conv2d_workspace,
 * conv2d_fwd/bwd and gemm_batched). Convolutions are NCHW, stride 1,
 * 1x1 or 3x3 with zero padding (spec §3.1: Conv_0/1/2 of the residual blocks, the input and
 * output convs).
 *
 * Fast path, 3x3: no im2col. Each image is copied once into a zero-padded plane per channel,
 * P(x): a zero row, then each image row behind one zero, then a zero row and one more zero,
 * (h+2)(w+1)+1 floats; the zero in front of row i+1 is also the right neighbour of row i. In
 * that layout the input pixel under tap (ky, kx) of the output pixel at padded position p is
 * at p + s with s = (ky-1)(w+1) + (kx-1), so a tap is a plain strided matrix and the
 * convolution is 9 OpenBLAS sgemm calls accumulating into one output grid (the one pad
 * column per row is computed and dropped):
 *   forward  Y[cout, p]    = sum_t W_t [cout, cin] . P(x)[cin, p + s_t]      (per image)
 *   dX       dX[cin, p]    = sum_t W_t^T [cin, cout] . P(dy)[cout, p - s_t]
 *   dW_t     [cout, cin]  += P(dy)[cout, p] . P(x)[cin, p + s_t]^T  (p over all pixels)
 with W_t the tap's [cout, cin] slice of the weights, packed once per call, and p over the
 * padded positions of one image. Compared with im2col + one sgemm over K = 9 cin, this skips
 * writing and re-packing the 9x larger column matrix (measured 1.0-1.4x faster per
 * convolution, forward and backward, on the DDPM++ shapes at one thread).
 * Where both channel counts are >= 16 and an image has >= 32 2x2 tiles, the forward, dX and
 * dW use Winograd F(2x2, 3x3) instead (cpu_winograd.c: 16 products on transformed tiles,
 * 2.25x fewer multiplications; measured 1.2-1.3x faster DDPM++ forward passes).
 * Every product covers one image, so an image's result never depends on the rest of the
 * batch.
 * Fast path, 1x1: one sgemm per image, y_b[cout, hw] = W[cout, cin] . x_b[cin, hw] (+ bias).
 * OpenMP runs over the images of the batch. Each thread owns a slice of the workspace (its
 * padded planes and a private weight-gradient accumulator); the private accumulators are
 * summed in thread order afterwards, so results do not depend on scheduling.
 * Reference path: the definition as loop nests with double accumulators. */
#include "backend/cpu/cpu_nn.h"
#include "util/check.h"

#include <cblas.h>
#include <omp.h>
#include <string.h>

int pfgm_cpu_batch_threads(const pfgm_backend *be) {
    if (cpu_reference(be)) return 1;
    if (openblas_get_num_threads() > 1) return 1;
    const cpu_ctx *ctx = be->ctx;
    int nt = ctx->threads > 0 ? ctx->threads : omp_get_max_threads();
    return nt > 0 ? nt : 1;
}

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

/* Floats of one zero-padded plane of an h x w image (module comment). */
static inline int64_t pad_plane(int64_t h, int64_t w) { return (h + 2) * (w + 1) + 1; }

/* Winograd F(2x2, 3x3) (cpu_winograd.c) for the 3x3 forward and input gradient when both
 * channel counts are at least WINO_MIN_CH (below, its 16 products over K = cin are too thin)
 * and an image has at least WINO_MIN_TILES 2x2 tiles (the products run over one image's
 * tiles; 8x8 and smaller images go the padded-plane way). */
#define WINO_MIN_CH 16
#define WINO_MIN_TILES 32

static int conv_wino(int64_t cin, int64_t cout, int64_t h, int64_t w, int k) {
    return k == 3 && cin >= WINO_MIN_CH && cout >= WINO_MIN_CH && ((h + 1) / 2) * ((w + 1) / 2) >= WINO_MIN_TILES;
}

/* How a call splits its workspace: `shared` floats (the packed 3x3 weights: tap matrices or
 * Winograd transforms), then nt slices of `per` floats. */
typedef struct conv_plan {
    int nt;
    size_t shared, per;
} conv_plan;

static conv_plan conv_plan_for(int64_t batch, int64_t cin, int64_t cout, int64_t h, int64_t w, int k, int nt) {
    conv_plan p = {.nt = nt};
    const size_t nw = (size_t)(cout * cin * k * k);
    if (k == 1) {
        p.per = round16(nw + (size_t)cout);
        return p;
    }
    const int64_t plane = pad_plane(h, w);
    size_t fwd = round16((size_t)(cin * plane)) + round16((size_t)(cout * plane));
    size_t bwd = 2 * round16((size_t)(cin * plane)) + round16((size_t)(cout * plane)) + round16(nw + (size_t)cout);
    p.shared = round16(nw);
    if (conv_wino(cin, cout, h, w, k)) { /* the Winograd scratch is the same for cin <-> cout */
        fwd = round16(pfgm_cpu_wino_scratch_floats(cin, cout, h, w));
        bwd = round16((size_t)(16 * cout * cin + cout)) + fwd;
        p.shared = round16((size_t)(16 * cout * cin));
    }
    p.per = fwd > bwd ? fwd : bwd;
    return p;
}

static size_t conv_plan_bytes(const conv_plan *p) { return (p->shared + (size_t)p->nt * p->per) * sizeof(float); }

static int conv_wanted_threads(pfgm_backend *be, int64_t batch) {
    int64_t nt = pfgm_cpu_batch_threads(be);
    if (nt > batch) nt = batch;
    return nt > 0 ? (int)nt : 1;
}

static size_t cpu_conv2d_workspace(pfgm_backend *be, int64_t batch, int64_t cin, int64_t cout, int64_t h,
                                   int64_t w, int k) {
    if (cpu_reference(be)) return 0;
    if (batch < 1) batch = 1;
    conv_plan p = conv_plan_for(batch, cin, cout, h, w, k, conv_wanted_threads(be, batch));
    return conv_plan_bytes(&p);
}

/* The plan for the threads the workspace can serve: the wanted count, fewer when ws_bytes
 * is smaller than their share. Returns 0 when not even one thread fits. */
static int conv_plan_fit(pfgm_backend *be, size_t ws_bytes, int64_t batch, int64_t cin, int64_t cout, int64_t h,
                         int64_t w, int k, conv_plan *out) {
    for (int nt = conv_wanted_threads(be, batch); nt >= 1; --nt) {
        *out = conv_plan_for(batch, cin, cout, h, w, k, nt);
        if (conv_plan_bytes(out) <= ws_bytes) return 1;
    }
    return 0;
}

/* The workspace check is this backend's own (the shape checks are the front end's, ops.c):
 * how much scratch a convolution needs depends on the backend's plan. */
static pfgm_status conv_ws_error(const char *op, size_t ws_bytes, int64_t batch, int64_t cin, int64_t cout,
                                 int64_t h, int64_t w, int k) {
    conv_plan p = conv_plan_for(batch, cin, cout, h, w, k, 1);
    return pfgm_error(PFGM_ERR_INVALID_ARG, "%s: workspace of %zu bytes is below the %zu needed", op, ws_bytes,
                      conv_plan_bytes(&p));
}

/* The 3x3 weights [cout, cin, 3, 3] as 9 tap matrices Wt[t][cout][cin], t = 3 ky + kx. */
static void pack_taps(const float *wt, int64_t cin, int64_t cout, float *taps) {
    for (int64_t o = 0; o < cout; ++o)
        for (int64_t c = 0; c < cin; ++c)
            for (int t = 0; t < 9; ++t) taps[((int64_t)t * cout + o) * cin + c] = wt[(o * cin + c) * 9 + t];
}

/* Zero-padded planes (module comment): src [ch, h, w] -> dst[c * ld + (i+1)(w+1) + (j+1)]
 * = src[c, i, j], every other float of the plane 0 (only those are written besides the copy). */
static void pad_planes(const float *src, int64_t ch, int64_t h, int64_t w, int64_t ld, float *dst) {
    const int64_t wp = w + 1;
    for (int64_t c = 0; c < ch; ++c) {
        float *d = dst + c * ld;
        const float *s0 = src + c * h * w;
        memset(d, 0, (size_t)wp * sizeof(float));
        for (int64_t i = 0; i < h; ++i) {
            float *row = d + (i + 1) * wp;
            row[0] = 0.0f;
            memcpy(row + 1, s0 + i * w, (size_t)w * sizeof(float));
        }
        memset(d + (h + 1) * wp, 0, (size_t)(wp + 1) * sizeof(float));
    }
}

/* Offset of tap t's input from an output position in the padded layout. */
static inline int64_t tap_shift(int t, int64_t wp) { return (int64_t)(t / 3 - 1) * wp + (t % 3 - 1); }

/* ---- reference: the definition ------------------------------------------------------- */

static void conv_fwd_ref(int64_t batch, int64_t cin, int64_t cout, int64_t h, int64_t w, int k, const float *x,
                         const float *wt, const float *b, float *y) {
    int p = (k - 1) / 2;
    for (int64_t n = 0; n < batch; ++n)
        for (int64_t o = 0; o < cout; ++o)
            for (int64_t i = 0; i < h; ++i)
                for (int64_t j = 0; j < w; ++j) {
                    double acc = b ? b[o] : 0.0;
                    for (int64_t c = 0; c < cin; ++c)
                        for (int ky = 0; ky < k; ++ky)
                            for (int kx = 0; kx < k; ++kx) {
                                int64_t iy = i + ky - p, ix = j + kx - p;
                                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                                acc += (double)wt[((o * cin + c) * k + ky) * k + kx] *
                                       (double)x[((n * cin + c) * h + iy) * w + ix];
                            }
                    y[((n * cout + o) * h + i) * w + j] = (float)acc;
                }
}

static void conv_bwd_ref(int64_t batch, int64_t cin, int64_t cout, int64_t h, int64_t w, int k, const float *x,
                         const float *wt, const float *dy, float *dx, int acc_dx, float *dw, float *db) {
    int p = (k - 1) / 2;
    for (int64_t o = 0; o < cout; ++o) {
        if (db) {
            double s = 0.0;
            for (int64_t n = 0; n < batch; ++n)
                for (int64_t i = 0; i < h * w; ++i) s += dy[(n * cout + o) * h * w + i];
            db[o] += (float)s;
        }
        for (int64_t c = 0; c < cin; ++c)
            for (int ky = 0; ky < k; ++ky)
                for (int kx = 0; kx < k; ++kx) {
                    double s = 0.0;
                    for (int64_t n = 0; n < batch; ++n)
                        for (int64_t i = 0; i < h; ++i)
                            for (int64_t j = 0; j < w; ++j) {
                                int64_t iy = i + ky - p, ix = j + kx - p;
                                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                                s += (double)dy[((n * cout + o) * h + i) * w + j] *
                                     (double)x[((n * cin + c) * h + iy) * w + ix];
                            }
                    dw[((o * cin + c) * k + ky) * k + kx] += (float)s;
                }
    }
    if (!dx) return;
    for (int64_t n = 0; n < batch; ++n)
        for (int64_t c = 0; c < cin; ++c)
            for (int64_t iy = 0; iy < h; ++iy)
                for (int64_t ix = 0; ix < w; ++ix) {
                    double s = 0.0;
                    for (int64_t o = 0; o < cout; ++o)
                        for (int ky = 0; ky < k; ++ky)
                            for (int kx = 0; kx < k; ++kx) {
                                int64_t i = iy - ky + p, j = ix - kx + p;
                                if (i < 0 || i >= h || j < 0 || j >= w) continue;
                                s += (double)wt[((o * cin + c) * k + ky) * k + kx] *
                                     (double)dy[((n * cout + o) * h + i) * w + j];
                            }
                    float *d = &dx[((n * cin + c) * h + iy) * w + ix];
                    *d = acc_dx ? *d + (float)s : (float)s;
                }
}

/* ---- fast path ------------------------------------------------------------------------ */

/* sum of x[0..n) in 8 interleaved float accumulators added in a fixed order (vectorisable,
 * unlike one running sum). */
static float sum8(const float *x, int64_t n) {
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; ++j) acc[j] += x[i + j];
    for (int j = 0; i < n; ++i, ++j) acc[j] += x[i];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

static void sgemm(int ta, int tb, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b,
                  int64_t ldb, float beta, float *c, int64_t ldc) {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (blasint)m, (blasint)n,
                (blasint)k, 1.0f, a, (blasint)lda, b, (blasint)ldb, beta, c, (blasint)ldc);
}

/* 3x3 forward of one image: y_n [cout, h, w] from x_n [cin, h, w] (module comment). */
static void conv3_fwd_image(const float *xn, const float *taps, const float *b, int64_t cin, int64_t cout, int64_t h,
                            int64_t w, float *xp, float *grid, float *yn) {
    const int64_t wp = w + 1, plane = pad_plane(h, w), nq = h * wp - 1, p0 = wp + 1;
    pad_planes(xn, cin, h, w, plane, xp);
    for (int t = 0; t < 9; ++t)
        sgemm(0, 0, cout, nq, cin, taps + (int64_t)t * cout * cin, cin, xp + p0 + tap_shift(t, wp), plane,
              t ? 1.0f : 0.0f, grid, nq);
    for (int64_t o = 0; o < cout; ++o) {
        const float bo = b ? b[o] : 0.0f;
        for (int64_t i = 0; i < h; ++i) {
            const float *g = grid + o * nq + i * wp;
            float *yr = yn + (o * h + i) * w;
            for (int64_t j = 0; j < w; ++j) yr[j] = g[j] + bo;
        }
    }
}

static pfgm_status cpu_conv2d_fwd(pfgm_backend *be, int64_t batch, int64_t cin, int64_t cout, int64_t h, int64_t w,
                                  int k, const float *x, const float *wt, const float *b, float *y, void *ws,
                                  size_t ws_bytes) {
    if (batch == 0) return PFGM_OK;
    if (cpu_reference(be)) {
        conv_fwd_ref(batch, cin, cout, h, w, k, x, wt, b, y);
        return PFGM_OK;
    }
    conv_plan pl;
    if (!ws || !conv_plan_fit(be, ws_bytes, batch, cin, cout, h, w, k, &pl))
        return conv_ws_error("conv2d_fwd", ws_bytes, batch, cin, cout, h, w, k);
    const int64_t hw = h * w;
    const int wino = conv_wino(cin, cout, h, w, k);
    float *taps = ws;
    if (k == 3 && !wino) pack_taps(wt, cin, cout, taps);
    const int nt = pl.nt;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        const int t = omp_get_thread_num();
        if (wino) { /* the weights' transform, split by output channel, before any thread uses it */
            pfgm_cpu_wino_weights(wt, cin, cout, 0, cout * t / nt, cout * (t + 1) / nt, taps);
#pragma omp barrier
        }
        float *xp = (float *)ws + pl.shared + (size_t)t * pl.per;
        float *grid = xp + round16((size_t)(cin * pad_plane(h, w)));
        const int64_t n0 = batch * t / nt, n1 = batch * (t + 1) / nt;
        if (wino && n1 > n0) pfgm_cpu_wino_conv(x + n0 * cin * hw, n1 - n0, cin, cout, h, w, taps, b, y + n0 * cout * hw, 0, xp);
        for (int64_t n = wino ? n1 : n0; n < n1; ++n) {
            const float *xn = x + n * cin * hw;
            float *yn = y + n * cout * hw;
            if (k == 3) {
                conv3_fwd_image(xn, taps, b, cin, cout, h, w, xp, grid, yn);
                continue;
            }
            float beta = 0.0f;
            if (b) {
                for (int64_t o = 0; o < cout; ++o)
                    for (int64_t i = 0; i < hw; ++i) yn[o * hw + i] = b[o];
                beta = 1.0f;
            }
            sgemm(0, 0, cout, hw, cin, wt, cin, xn, hw, beta, yn, hw);
        }
    }
    return PFGM_OK;
}

/* 3x3 backward of image n: dW_t (+= into dwt[9][cout][cin]) and, when dx is given, dx_n
 * (= or +=). xp, dyp, grid: [channels][(h+2)(w+2)] scratch. One image at a time: laying
 * several side by side makes longer products but measured slower (their operands leave the
 * caches). */
static void conv3_bwd_image(const float *x, const float *dy, const float *taps, int64_t n, int64_t cin, int64_t cout,
                            int64_t h, int64_t w, float *xp, float *dyp, float *grid, float *dwt, float *dx,
                            int acc_dx) {
    const int64_t wp = w + 1, L = pad_plane(h, w), hw = h * w, p0 = wp + 1, K = h * wp - 1;
    pad_planes(x + n * cin * hw, cin, h, w, L, xp);
    pad_planes(dy + n * cout * hw, cout, h, w, L, dyp);
    /* dW_t += P(dy) . P(x)_shifted^T over every position; pad positions of P(dy) are 0 */
    for (int t = 0; t < 9; ++t)
        sgemm(0, 1, cout, cin, K, dyp + p0, L, xp + p0 + tap_shift(t, wp), L, 1.0f, dwt + (int64_t)t * cout * cin, cin);
    if (!dx) return;
    for (int t = 0; t < 9; ++t)
        sgemm(1, 0, cin, K, cout, taps + (int64_t)t * cout * cin, cin, dyp + p0 - tap_shift(t, wp), L, t ? 1.0f : 0.0f,
              grid + p0, L);
    for (int64_t c = 0; c < cin; ++c)
        for (int64_t i = 0; i < h; ++i) {
            const float *g = grid + c * L + (i + 1) * wp + 1;
            float *d = dx + ((n * cin + c) * h + i) * w;
            if (acc_dx)
                for (int64_t j = 0; j < w; ++j) d[j] += g[j];
            else
                memcpy(d, g, (size_t)w * sizeof(float));
        }
}

/* 3x3 backward with Winograd (cpu_winograd.c): per image, dU += the transformed weight
 * gradient and dX = the convolution of dy with the flipped, transposed weights (their
 * transform into `taps` first); then the threads' dU summed in thread order and turned into
 * dW. */
static pfgm_status conv3_bwd_wino(const conv_plan *pl, int64_t batch, int64_t cin, int64_t cout, int64_t h, int64_t w,
                                  const float *x, const float *wt, float *taps, const float *dy, float *dx, int acc_dx,
                                  float *dw, float *db, void *ws) {
    const int64_t hw = h * w, nu = 16 * cout * cin;
    const size_t acc_floats = round16((size_t)(nu + cout));
    const int nt = pl->nt;
#define SLICE(u) ((float *)ws + pl->shared + (size_t)(u) * pl->per)
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        const int t = omp_get_thread_num();
        float *du = SLICE(t), *dbp = du + nu, *scr = du + acc_floats;
        if (dx) {
            pfgm_cpu_wino_weights(wt, cin, cout, 1, cin * t / nt, cin * (t + 1) / nt, taps);
#pragma omp barrier
        }
        memset(du, 0, (size_t)(nu + cout) * sizeof(float));
        const int64_t n0 = batch * t / nt, n1 = batch * (t + 1) / nt;
        for (int64_t n = n0; n < n1; ++n) {
            const float *dyn = dy + n * cout * hw;
            for (int64_t o = 0; o < cout; ++o) dbp[o] += sum8(dyn + o * hw, hw);
            pfgm_cpu_wino_grad_image(x + n * cin * hw, dyn, cin, cout, h, w, du, scr);
            if (dx) pfgm_cpu_wino_conv(dyn, 1, cout, cin, h, w, taps, NULL, dx + n * cin * hw, acc_dx, scr);
        }
    }
    /* thread order, into thread 0's accumulators */
    float *du0 = SLICE(0);
    for (int u = 1; u < nt; ++u) {
        const float *du = SLICE(u);
        for (int64_t i = 0; i < nu + cout; ++i) du0[i] += du[i];
    }
#undef SLICE
    pfgm_cpu_wino_grad_finish(du0, cin, cout, dw);
    if (db)
        for (int64_t o = 0; o < cout; ++o) db[o] += du0[nu + o];
    return PFGM_OK;
}

static pfgm_status cpu_conv2d_bwd(pfgm_backend *be, int64_t batch, int64_t cin, int64_t cout, int64_t h, int64_t w,
                                  int k, const float *x, const float *wt, const float *dy, float *dx, int acc_dx,
                                  float *dw, float *db, void *ws, size_t ws_bytes) {
    if (batch == 0) return PFGM_OK;
    if (cpu_reference(be)) {
        conv_bwd_ref(batch, cin, cout, h, w, k, x, wt, dy, dx, acc_dx, dw, db);
        return PFGM_OK;
    }
    conv_plan pl;
    if (!ws || !conv_plan_fit(be, ws_bytes, batch, cin, cout, h, w, k, &pl))
        return conv_ws_error("conv2d_bwd", ws_bytes, batch, cin, cout, h, w, k);
    const int64_t hw = h * w, nw = cout * cin * k * k;
    const int wino = conv_wino(cin, cout, h, w, k);
    float *taps = ws;
    if (wino) return conv3_bwd_wino(&pl, batch, cin, cout, h, w, x, wt, taps, dy, dx, acc_dx, dw, db, ws);
    if (k == 3) pack_taps(wt, cin, cout, taps);
    const size_t cat = round16((size_t)(cin * pad_plane(h, w)));    /* P(x), the dX grid */
    const size_t dycat = round16((size_t)(cout * pad_plane(h, w))); /* P(dy) */
    const size_t dwoff = k == 3 ? 2 * cat + dycat : 0;
    const int nt = pl.nt;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        const int t = omp_get_thread_num();
        float *slice = (float *)ws + pl.shared + (size_t)t * pl.per;
        float *dwp = slice + dwoff, *dbp = dwp + nw;
        memset(dwp, 0, (size_t)(nw + cout) * sizeof(float));
        const int64_t n0 = batch * t / nt, n1 = batch * (t + 1) / nt;
        for (int64_t n = n0; n < n1; ++n) {
            const float *dyn = dy + n * cout * hw;
            for (int64_t o = 0; o < cout; ++o) dbp[o] += sum8(dyn + o * hw, hw);
        }
        if (k == 3) {
            for (int64_t n = n0; n < n1; ++n)
                conv3_bwd_image(x, dy, taps, n, cin, cout, h, w, slice, slice + cat, slice + cat + dycat, dwp, dx, acc_dx);
        } else {
            for (int64_t n = n0; n < n1; ++n) {
                const float *xn = x + n * cin * hw, *dyn = dy + n * cout * hw;
                /* dW += dy_n . x_n^T: summed over the images of this thread */
                sgemm(0, 1, cout, cin, hw, dyn, hw, xn, hw, 1.0f, dwp, cin);
                if (dx) sgemm(1, 0, cin, hw, cout, wt, cin, dyn, hw, acc_dx ? 1.0f : 0.0f, dx + n * cin * hw, hw);
            }
        }
    }
    /* Sum the private accumulators in thread order: the same bits for any scheduling. The 3x3
     * accumulators hold the taps [9][cout][cin]; dw is [cout][cin][3][3]. */
    const int kk = k * k;
#pragma omp parallel for schedule(static) if (nw > 65536)
    for (int64_t o = 0; o < cout; ++o)
        for (int64_t c = 0; c < cin; ++c)
            for (int t = 0; t < kk; ++t) {
                const int64_t src = ((int64_t)t * cout + o) * cin + c; /* k = 1: t = 0, src = o cin + c */
                float s = 0.0f;
                for (int u = 0; u < nt; ++u) s += ((const float *)ws + pl.shared + (size_t)u * pl.per + dwoff)[src];
                dw[(o * cin + c) * kk + t] += s;
            }
    if (db)
        for (int64_t o = 0; o < cout; ++o) {
            float s = 0.0f;
            for (int u = 0; u < nt; ++u) s += ((const float *)ws + pl.shared + (size_t)u * pl.per + dwoff + nw)[o];
            db[o] += s;
        }
    return PFGM_OK;
}

/* ---- strided batched gemm (NIN layers and attention) ------------------------------------ */

static pfgm_status cpu_gemm_batched(pfgm_backend *be, int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha,
                                    const float *a, int64_t lda, int64_t sa, const float *b, int64_t ldb, int64_t sb,
                                    float beta, float *c, int64_t ldc, int64_t sc, int64_t batch) {
    if (batch == 0 || m == 0 || n == 0) return PFGM_OK;
    if (cpu_reference(be) || sc == 0) {
        /* The reduction (stride_c = 0) runs in batch order whatever the mode. Kernel to kernel:
         * gemm_batched's checks in the front end (ops.c) imply gemm's. */
        for (int64_t i = 0; i < batch; ++i)
            PFGM_TRY(be->gemm(be, ta, tb, m, n, k, alpha, a + i * sa, lda, b + i * sb, ldb,
                              sc == 0 && i > 0 ? 1.0f : beta, c + i * sc, ldc));
        return PFGM_OK;
    }
    int nt = pfgm_cpu_batch_threads(be);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1 && batch > 1)
    for (int64_t i = 0; i < batch; ++i)
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (blasint)m,
                    (blasint)n, (blasint)k, alpha, a + i * sa, (blasint)lda, b + i * sb, (blasint)ldb, beta,
                    c + i * sc, (blasint)ldc);
    return PFGM_OK;
}

void pfgm_cpu_conv_ops_init(pfgm_backend *be) {
    be->gemm_batched = cpu_gemm_batched;
    be->conv2d_workspace = cpu_conv2d_workspace;
    be->conv2d_fwd = cpu_conv2d_fwd;
    be->conv2d_bwd = cpu_conv2d_bwd;
}
