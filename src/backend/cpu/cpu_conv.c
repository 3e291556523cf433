/* CPU matrix-product ops of the network layers (backend.h "network layers": conv2d_workspace,
 * conv2d_fwd/bwd and gemm_batched). Convolutions are NCHW, stride 1,
 * 1x1 or 3x3 with zero padding (spec §3.1: Conv_0/1/2 of the residual blocks, the input and
 * output convs).
 *
 * Fast path: per image, im2col (3x3 only) then one OpenBLAS sgemm,
 *   y_b[cout, hw] = W[cout, cin*k*k] . col_b[cin*k*k, hw] (+ bias),
 * with OpenMP over the images of the batch. Each thread owns a slice of the workspace (its
 * im2col buffer and a private weight-gradient accumulator); the private accumulators are
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

static pfgm_status conv_check(int64_t batch, int64_t cin, int64_t cout, int64_t h, int64_t w, int k) {
    if (batch < 0 || cin <= 0 || cout <= 0 || h <= 0 || w <= 0 || (k != 1 && k != 3))
        return pfgm_error(PFGM_ERR_INVALID_ARG,
                          "conv2d: bad shape batch=%lld cin=%lld cout=%lld h=%lld w=%lld k=%d (k must be 1 or 3)",
                          (long long)batch, (long long)cin, (long long)cout, (long long)h, (long long)w, k);
    return PFGM_OK;
}

/* Floats of one thread's workspace slice, rounded up to 64 bytes. */
static size_t conv_thread_floats(int64_t cin, int64_t cout, int64_t h, int64_t w, int k) {
    size_t kk = (size_t)cin * (size_t)(k * k);
    size_t col = k == 3 ? kk * (size_t)(h * w) : 0;
    size_t n = col + (size_t)cout * kk + (size_t)cout;
    return (n + 15) & ~(size_t)15;
}

static size_t cpu_conv2d_workspace(pfgm_backend *be, int64_t batch, int64_t cin, int64_t cout, int64_t h,
                                   int64_t w, int k) {
    if (cpu_reference(be) || conv_check(batch, cin, cout, h, w, k) != PFGM_OK) return 0;
    return (size_t)pfgm_cpu_batch_threads(be) * conv_thread_floats(cin, cout, h, w, k) * sizeof(float);
}

/* Threads the workspace can serve: the wanted count, capped by what ws_bytes holds. */
static int conv_threads_for(pfgm_backend *be, size_t ws_bytes, int64_t cin, int64_t cout, int64_t h, int64_t w,
                            int k, int64_t batch) {
    size_t per = conv_thread_floats(cin, cout, h, w, k) * sizeof(float);
    int64_t fit = (int64_t)(ws_bytes / per);
    int64_t nt = pfgm_cpu_batch_threads(be);
    if (nt > fit) nt = fit;
    if (nt > batch) nt = batch;
    return (int)nt;
}

/* col[(c*3 + ky)*3 + kx, i*w + j] = x[c, i + ky - 1, j + kx - 1] (0 outside the image). */
static void im2col3(const float *x, int64_t cin, int64_t h, int64_t w, float *col, int par) {
#pragma omp parallel for schedule(static) if (par)
    for (int64_t c = 0; c < cin; ++c)
        for (int ky = 0; ky < 3; ++ky)
            for (int kx = 0; kx < 3; ++kx) {
                float *row = col + ((c * 3 + ky) * 3 + kx) * h * w;
                for (int64_t i = 0; i < h; ++i) {
                    int64_t iy = i + ky - 1;
                    float *dst = row + i * w;
                    if (iy < 0 || iy >= h) {
                        memset(dst, 0, (size_t)w * sizeof(float));
                        continue;
                    }
                    const float *src = x + (c * h + iy) * w;
                    int64_t j0 = kx == 0 ? 1 : 0, j1 = kx == 2 ? w - 1 : w;
                    if (kx == 0) dst[0] = 0.0f;
                    if (kx == 2) dst[w - 1] = 0.0f;
                    for (int64_t j = j0; j < j1; ++j) dst[j] = src[j + kx - 1];
                }
            }
}

/* The adjoint of im2col3: dx[c, iy, ix] (+)= sum of the col entries that read it. */
static void col2im3(const float *col, int64_t cin, int64_t h, int64_t w, float *dx, int accumulate, int par) {
#pragma omp parallel for schedule(static) if (par)
    for (int64_t c = 0; c < cin; ++c) {
        float *plane = dx + c * h * w;
        if (!accumulate) memset(plane, 0, (size_t)(h * w) * sizeof(float));
        for (int ky = 0; ky < 3; ++ky)
            for (int kx = 0; kx < 3; ++kx) {
                const float *row = col + ((c * 3 + ky) * 3 + kx) * h * w;
                for (int64_t i = 0; i < h; ++i) {
                    int64_t iy = i + ky - 1;
                    if (iy < 0 || iy >= h) continue;
                    const float *src = row + i * w;
                    float *dst = plane + iy * w;
                    int64_t j0 = kx == 0 ? 1 : 0, j1 = kx == 2 ? w - 1 : w;
                    for (int64_t j = j0; j < j1; ++j) dst[j + kx - 1] += src[j];
                }
            }
    }
}

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

static pfgm_status cpu_conv2d_fwd(pfgm_backend *be, int64_t batch, int64_t cin, int64_t cout, int64_t h, int64_t w,
                                  int k, const float *x, const float *wt, const float *b, float *y, void *ws,
                                  size_t ws_bytes) {
    PFGM_TRY(conv_check(batch, cin, cout, h, w, k));
    if (batch == 0) return PFGM_OK;
    if (cpu_reference(be)) {
        conv_fwd_ref(batch, cin, cout, h, w, k, x, wt, b, y);
        return PFGM_OK;
    }
    int nt = conv_threads_for(be, ws_bytes, cin, cout, h, w, k, batch);
    if (nt < 1)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "conv2d_fwd: workspace of %zu bytes is below the %zu needed",
                          ws_bytes, conv_thread_floats(cin, cout, h, w, k) * sizeof(float));
    const int64_t hw = h * w, kk = cin * k * k;
    const size_t per = conv_thread_floats(cin, cout, h, w, k);
    const int inner_par = nt == 1;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int t = omp_get_thread_num();
        float *col = (float *)ws + (size_t)t * per;
        int64_t n0 = batch * t / nt, n1 = batch * (t + 1) / nt;
        for (int64_t n = n0; n < n1; ++n) {
            const float *xn = x + n * cin * hw;
            float *yn = y + n * cout * hw;
            const float *src = xn;
            if (k == 3) {
                im2col3(xn, cin, h, w, col, inner_par);
                src = col;
            }
            float beta = 0.0f;
            if (b) {
                for (int64_t o = 0; o < cout; ++o)
                    for (int64_t i = 0; i < hw; ++i) yn[o * hw + i] = b[o];
                beta = 1.0f;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)cout, (blasint)hw, (blasint)kk, 1.0f,
                        wt, (blasint)kk, src, (blasint)hw, beta, yn, (blasint)hw);
        }
    }
    return PFGM_OK;
}

static pfgm_status cpu_conv2d_bwd(pfgm_backend *be, int64_t batch, int64_t cin, int64_t cout, int64_t h, int64_t w,
                                  int k, const float *x, const float *wt, const float *dy, float *dx, int acc_dx,
                                  float *dw, float *db, void *ws, size_t ws_bytes) {
    PFGM_TRY(conv_check(batch, cin, cout, h, w, k));
    if (batch == 0) return PFGM_OK;
    if (cpu_reference(be)) {
        conv_bwd_ref(batch, cin, cout, h, w, k, x, wt, dy, dx, acc_dx, dw, db);
        return PFGM_OK;
    }
    int nt = conv_threads_for(be, ws_bytes, cin, cout, h, w, k, batch);
    if (nt < 1)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "conv2d_bwd: workspace of %zu bytes is below the %zu needed",
                          ws_bytes, conv_thread_floats(cin, cout, h, w, k) * sizeof(float));
    const int64_t hw = h * w, kk = cin * k * k;
    const size_t per = conv_thread_floats(cin, cout, h, w, k);
    const size_t col_floats = k == 3 ? (size_t)(kk * hw) : 0;
    const int inner_par = nt == 1;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int t = omp_get_thread_num();
        float *col = (float *)ws + (size_t)t * per;
        float *dwp = col + col_floats, *dbp = dwp + cout * kk;
        memset(dwp, 0, (size_t)(cout * kk + cout) * sizeof(float));
        int64_t n0 = batch * t / nt, n1 = batch * (t + 1) / nt;
        for (int64_t n = n0; n < n1; ++n) {
            const float *xn = x + n * cin * hw, *dyn = dy + n * cout * hw;
            const float *src = xn;
            if (k == 3) {
                im2col3(xn, cin, h, w, col, inner_par);
                src = col;
            }
            /* dW += dy_n . col_n^T: summed over the images of this thread */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)cout, (blasint)kk, (blasint)hw, 1.0f, dyn,
                        (blasint)hw, src, (blasint)hw, 1.0f, dwp, (blasint)kk);
            for (int64_t o = 0; o < cout; ++o) {
                float s = 0.0f;
                for (int64_t i = 0; i < hw; ++i) s += dyn[o * hw + i];
                dbp[o] += s;
            }
            if (!dx) continue;
            float *dxn = dx + n * cin * hw;
            if (k == 3) {
                /* dcol = W^T dy_n reuses the im2col buffer (dW is done with it) */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)kk, (blasint)hw, (blasint)cout, 1.0f,
                            wt, (blasint)kk, dyn, (blasint)hw, 0.0f, col, (blasint)hw);
                col2im3(col, cin, h, w, dxn, acc_dx, inner_par);
            } else {
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)cin, (blasint)hw, (blasint)cout, 1.0f,
                            wt, (blasint)cin, dyn, (blasint)hw, acc_dx ? 1.0f : 0.0f, dxn, (blasint)hw);
            }
        }
    }
    /* Sum the private accumulators in thread order: the same bits for any scheduling. */
    const int64_t nw = cout * kk;
#pragma omp parallel for schedule(static) if (nw > 65536)
    for (int64_t i = 0; i < nw; ++i) {
        float s = 0.0f;
        for (int t = 0; t < nt; ++t) s += ((const float *)ws + (size_t)t * per + col_floats)[i];
        dw[i] += s;
    }
    if (db)
        for (int64_t o = 0; o < cout; ++o) {
            float s = 0.0f;
            for (int t = 0; t < nt; ++t) s += ((const float *)ws + (size_t)t * per + col_floats + nw)[o];
            db[o] += s;
        }
    return PFGM_OK;
}

/* ---- strided batched gemm (NIN layers and attention) ------------------------------------ */

static pfgm_status cpu_gemm_batched(pfgm_backend *be, int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha,
                                    const float *a, int64_t lda, int64_t sa, const float *b, int64_t ldb, int64_t sb,
                                    float beta, float *c, int64_t ldc, int64_t sc, int64_t batch) {
    if (batch < 0 || m < 0 || n < 0 || k <= 0 || lda < (ta ? m : k) || ldb < (tb ? k : n) || ldc < n || sa < 0 ||
        sb < 0 || sc < 0)
        return pfgm_error(PFGM_ERR_INVALID_ARG,
                          "gemm_batched: bad shape m=%lld n=%lld k=%lld lda=%lld ldb=%lld ldc=%lld batch=%lld",
                          (long long)m, (long long)n, (long long)k, (long long)lda, (long long)ldb, (long long)ldc,
                          (long long)batch);
    if (batch == 0 || m == 0 || n == 0) return PFGM_OK;
    if (cpu_reference(be) || sc == 0) {
        /* The reduction (stride_c = 0) runs in batch order whatever the mode. */
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
