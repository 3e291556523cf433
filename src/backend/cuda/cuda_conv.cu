/* CUDA matrix-product ops of the network layers (backend.h "network layers": conv2d_workspace,
 * conv2d_fwd/bwd and gemm_batched), on cuBLAS through the backend's handle and stream (so the
 * handle's math mode, fp32 by default or TF32 when the backend is told so, applies).
 * Convolutions are NCHW, stride 1, 1x1 or 3x3 with zero padding (spec §3.1).
 *
 * The batch is processed in chunks of G images, G fixed by the workspace (at most
 * kConvChunkBytes of it, see cuda_conv2d_workspace). Per chunk the images' columns sit side
 * by side, col[r, g*hw + p] (r = input channel x kernel tap), so that
 *   forward   y_g[cout, hw] = W[cout, kk] . col[:, g*hw : (g+1)*hw]   (strided batched sgemm;
 *             a 1x1 convolution reads x directly and needs no workspace),
 *   dW       += dyT[cout, G*hw] . col[kk, G*hw]^T                     (one sgemm per chunk,
 *             the images of the chunk summed inside cuBLAS, chunks in order),
 *   dx        3x3: dcol = W^T . dyT, then col2im gathering the 9 taps of each input pixel in
 *             the order of cpu_conv.c's col2im3; 1x1: dx_g = W^T dy_g (strided batched sgemm),
 *   db       += one block per output channel summing dy in double (fixed tree),
 * with dyT[cout, g*hw + p] = dy[g, cout, p]. No atomics: results do not depend on scheduling.
 *
 * gemm_batched maps to cublasSgemmStridedBatched; its reduction form (stride_c = 0) runs the
 * products one after another in batch order into C, as the CPU op does. */
#include <limits.h>

#include "backend/cuda/cuda_nn.cuh"

namespace {

/* Largest workspace a convolution asks for: the chunk G shrinks to fit (at least one image). */
const size_t kConvChunkBytes = (size_t)128 << 20;

/* Rows of the column matrix: input channel x kernel tap. */
int64_t conv_col_rows(int64_t cin, int k) { return cin * k * k; }

/* Floats of the column part of a G-image chunk, rounded up to 64 floats so the dyT part that
 * follows it stays 256-byte aligned. */
int64_t conv_col_floats(int64_t G, int64_t cin, int64_t hw, int k) {
    return (conv_col_rows(cin, k) * G * hw + 63) & ~(int64_t)63;
}

/* Workspace bytes of a G-image chunk: columns, then dyT; a multiple of 256 bytes. */
size_t conv_chunk_bytes(int64_t G, int64_t cin, int64_t cout, int64_t hw, int k) {
    size_t floats = (size_t)conv_col_floats(G, cin, hw, k) + (size_t)(cout * G * hw);
    return (floats * sizeof(float) + 255) & ~(size_t)255;
}

/* Images per chunk that ws_bytes holds, at most batch (0 when not even one fits). */
int64_t conv_chunk_images(size_t ws_bytes, int64_t batch, int64_t cin, int64_t cout, int64_t hw, int k) {
    const size_t per = (size_t)((conv_col_rows(cin, k) + cout) * hw) * sizeof(float);
    int64_t G = (int64_t)(ws_bytes / per);
    if (G > batch) G = batch;
    while (G > 0 && conv_chunk_bytes(G, cin, cout, hw, k) > ws_bytes) --G;
    return G;
}

size_t cuda_conv2d_workspace(pfgm_backend *be, int64_t batch, int64_t cin, int64_t cout, int64_t h, int64_t w,
                             int k) {
    if (batch <= 0) return 0;
    const int64_t hw = h * w;
    int64_t G = conv_chunk_images(kConvChunkBytes, batch, cin, cout, hw, k);
    if (G < 1) G = 1;
    return conv_chunk_bytes(G, cin, cout, hw, k);
}

/* cuBLAS takes int sizes: a check of this backend's own (the front end bounds the sizes of
 * gemm and gemm_batched, but the convolutions' products have sizes of their own, such as
 * images x pixels, and cuBLAS's batch count is an int too). */
bool fits_int(int64_t v) { return v >= 0 && v <= INT_MAX; }

/* Row-major C_i = alpha op(A_i) op(B_i) + beta C_i, i < batch (X_i = X + i * stride_x), as the
 * column-major C^T = op(B)^T op(A)^T: the operands swap. One cublasSgemm when batch is 1. */
pfgm_status rm_sgemm(pfgm_backend *be, int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                     int64_t lda, int64_t sa, const float *b, int64_t ldb, int64_t sb, float beta, float *c,
                     int64_t ldc, int64_t sc, int64_t batch) {
    if (!fits_int(m) || !fits_int(n) || !fits_int(k) || !fits_int(lda) || !fits_int(ldb) || !fits_int(ldc) ||
        !fits_int(batch))
        return pfgm_error(PFGM_ERR_INVALID_ARG,
                          "cuda gemm: m=%lld n=%lld k=%lld lda=%lld ldb=%lld ldc=%lld batch=%lld exceed cuBLAS's int",
                          (long long)m, (long long)n, (long long)k, (long long)lda, (long long)ldb, (long long)ldc,
                          (long long)batch);
    if (batch == 0 || m == 0 || n == 0) return PFGM_OK;
    cublasHandle_t h = ctx_of(be)->blas;
    const cublasOperation_t opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N, opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (batch == 1) {
        PFGM_CUBLAS_CHECK(cublasSgemm(h, opb, opa, (int)n, (int)m, (int)k, &alpha, b, (int)ldb, a, (int)lda, &beta, c,
                                      (int)ldc));
    } else {
        PFGM_CUBLAS_CHECK(cublasSgemmStridedBatched(h, opb, opa, (int)n, (int)m, (int)k, &alpha, b, (int)ldb,
                                                    (long long)sb, a, (int)lda, (long long)sa, &beta, c, (int)ldc,
                                                    (long long)sc, (int)batch));
    }
    return PFGM_OK;
}

/* ---- data movement kernels -------------------------------------------------------------- */

/* col[(c*3 + ky)*3 + kx, g*hw + i*w + j] = x[g, c, i + ky - 1, j + kx - 1] (0 outside). */
template <typename I>
__global__ void k_im2col3(I G, I cin, I h, I w, const float *x, float *col) {
    const I hw = h * w, ghw = G * hw;
    PFGM_GRID_STRIDE(I, e, cin * 9 * ghw) {
        const I q = e % ghw, r = e / ghw;
        const I g = q / hw, p = q - g * hw;
        const I i = p / w, j = p - i * w;
        const I c = r / 9, tap = r - c * 9, ky = tap / 3, kx = tap - ky * 3;
        const I iy = i + ky - 1, ix = j + kx - 1;
        col[e] = (iy >= 0 && iy < h && ix >= 0 && ix < w) ? x[((g * cin + c) * h + iy) * w + ix] : 0.0f;
    }
}

/* dst[r, g*hw + p] = src[g, r, p] for r < C: images side by side (1x1 columns, dyT). */
template <typename I>
__global__ void k_pack(I G, I C, I hw, const float *src, float *dst) {
    const I ghw = G * hw;
    PFGM_GRID_STRIDE(I, e, C * ghw) {
        const I q = e % ghw, r = e / ghw;
        const I g = q / hw, p = q - g * hw;
        dst[e] = src[(g * C + r) * hw + p];
    }
}

/* The adjoint of k_im2col3: dx[g, c, iy, ix] (+)= the 9 column entries that read it, taps in
 * (ky, kx) order starting from 0 (or from dx when accumulating), as cpu_conv.c's col2im3. */
template <typename I>
__global__ void k_col2im3(I G, I cin, I h, I w, const float *col, float *dx, int accumulate) {
    const I hw = h * w, ghw = G * hw;
    PFGM_GRID_STRIDE(I, e, G * cin * hw) {
        const I ix = e % w, t = e / w, iy = t % h, t2 = t / h, c = t2 % cin, g = t2 / cin;
        float s = accumulate ? dx[e] : 0.0f;
        for (int ky = 0; ky < 3; ++ky) {
            const I i = iy - ky + 1;
            if (i < 0 || i >= h) continue;
            for (int kx = 0; kx < 3; ++kx) {
                const I j = ix - kx + 1;
                if (j < 0 || j >= w) continue;
                s += col[(c * 9 + ky * 3 + kx) * ghw + g * hw + i * w + j];
            }
        }
        dx[e] = s;
    }
}

/* y[n, o, p] = b[o]: the bias, before a beta = 1 product adds W x (as cpu_conv.c). */
template <typename I>
__global__ void k_bias_fill(I batch, I cout, I hw, const float *b, float *y) {
    PFGM_GRID_STRIDE(I, e, batch * cout * hw) y[e] = b[(e / hw) % cout];
}

/* db[o] += sum over n, p of dy[n, o, p]: one block per output channel, in double. */
__global__ void k_bias_grad(int64_t batch, int64_t cout, int64_t hw, const float *dy, float *db) {
    for (int64_t o = blockIdx.x; o < cout; o += gridDim.x) {
        double s = 0.0;
        for (int64_t t = threadIdx.x; t < batch * hw; t += blockDim.x) {
            const int64_t n = t / hw, p = t - n * hw;
            s += dy[(n * cout + o) * hw + p];
        }
        s = block_sum(s);
        if (threadIdx.x == 0) db[o] += (float)s;
    }
}

pfgm_status launch_im2col3(cudaStream_t s, int64_t G, int64_t cin, int64_t h, int64_t w, const float *x, float *col) {
    const int64_t n = cin * 9 * G * h * w;
    PFGM_LAUNCH_IDX(k_im2col3, n, n, s, G, cin, h, w, x, col);
    PFGM_CUDA_LAUNCH_CHECK();
    return PFGM_OK;
}

pfgm_status launch_pack(cudaStream_t s, int64_t G, int64_t C, int64_t hw, const float *src, float *dst) {
    const int64_t n = C * G * hw;
    PFGM_LAUNCH_IDX(k_pack, n, n, s, G, C, hw, src, dst);
    PFGM_CUDA_LAUNCH_CHECK();
    return PFGM_OK;
}

pfgm_status launch_col2im3(cudaStream_t s, int64_t G, int64_t cin, int64_t h, int64_t w, const float *col, float *dx,
                           int accumulate) {
    const int64_t n = G * cin * h * w;
    PFGM_LAUNCH_IDX(k_col2im3, n, 9 * n, s, G, cin, h, w, col, dx, accumulate);
    PFGM_CUDA_LAUNCH_CHECK();
    return PFGM_OK;
}

/* ---- convolution ------------------------------------------------------------------------- */

pfgm_status cuda_conv2d_fwd(pfgm_backend *be, int64_t batch, int64_t cin, int64_t cout, int64_t h, int64_t w, int k,
                            const float *x, const float *wt, const float *b, float *y, void *ws, size_t ws_bytes) {
    if (batch == 0) return PFGM_OK;
    cudaStream_t s = stream_of(be);
    const int64_t hw = h * w, kk = conv_col_rows(cin, k);
    float beta = 0.0f;
    if (b) {
        const int64_t n = batch * cout * hw;
        PFGM_LAUNCH_IDX(k_bias_fill, n, n, s, batch, cout, hw, b, y);
        PFGM_CUDA_LAUNCH_CHECK();
        beta = 1.0f;
    }
    if (k == 1) /* y_n [cout, hw] = W [cout, cin] . x_n [cin, hw] */
        return rm_sgemm(be, 0, 0, cout, hw, cin, 1.0f, wt, cin, 0, x, hw, cin * hw, beta, y, hw, cout * hw, batch);
    const int64_t G = conv_chunk_images(ws_bytes, batch, cin, cout, hw, k);
    if (G < 1 || !ws) /* this backend's own check (its need); the shape is the front end's (ops.c) */
        return pfgm_error(PFGM_ERR_INVALID_ARG, "conv2d_fwd: workspace of %zu bytes is below the %zu needed", ws_bytes,
                          conv_chunk_bytes(1, cin, cout, hw, k));
    float *col = (float *)ws;
    for (int64_t n0 = 0; n0 < batch; n0 += G) {
        const int64_t g = batch - n0 < G ? batch - n0 : G;
        PFGM_TRY(launch_im2col3(s, g, cin, h, w, x + n0 * cin * hw, col));
        PFGM_TRY(rm_sgemm(be, 0, 0, cout, hw, kk, 1.0f, wt, kk, 0, col, g * hw, hw, beta, y + n0 * cout * hw, hw,
                          cout * hw, g));
    }
    return PFGM_OK;
}

pfgm_status cuda_conv2d_bwd(pfgm_backend *be, int64_t batch, int64_t cin, int64_t cout, int64_t h, int64_t w, int k,
                            const float *x, const float *wt, const float *dy, float *dx, int acc_dx, float *dw,
                            float *db, void *ws, size_t ws_bytes) {
    if (batch == 0) return PFGM_OK;
    cudaStream_t s = stream_of(be);
    const int64_t hw = h * w, kk = conv_col_rows(cin, k);
    const int64_t G = conv_chunk_images(ws_bytes, batch, cin, cout, hw, k);
    if (G < 1 || !ws) /* this backend's own check (its need), as in conv2d_fwd */
        return pfgm_error(PFGM_ERR_INVALID_ARG, "conv2d_bwd: workspace of %zu bytes is below the %zu needed", ws_bytes,
                          conv_chunk_bytes(1, cin, cout, hw, k));
    if (db) {
        k_bias_grad<<<row_blocks(cout), kThreads, 0, s>>>(batch, cout, hw, dy, db);
        PFGM_CUDA_LAUNCH_CHECK();
    }
    float *col = (float *)ws, *dyT = col + conv_col_floats(G, cin, hw, k);
    for (int64_t n0 = 0; n0 < batch; n0 += G) {
        const int64_t g = batch - n0 < G ? batch - n0 : G, ghw = g * hw;
        const float *xn = x + n0 * cin * hw;
        if (k == 3)
            PFGM_TRY(launch_im2col3(s, g, cin, h, w, xn, col));
        else
            PFGM_TRY(launch_pack(s, g, cin, hw, xn, col));
        PFGM_TRY(launch_pack(s, g, cout, hw, dy + n0 * cout * hw, dyT));
        /* dW [cout, kk] += dyT [cout, g*hw] . col [kk, g*hw]^T */
        PFGM_TRY(rm_sgemm(be, 0, 1, cout, kk, ghw, 1.0f, dyT, ghw, 0, col, ghw, 0, 1.0f, dw, kk, 0, 1));
        if (dx && k == 3) {
            /* dcol [kk, g*hw] = W^T . dyT reuses the column buffer (stream order: after dW) */
            PFGM_TRY(rm_sgemm(be, 1, 0, kk, ghw, cout, 1.0f, wt, kk, 0, dyT, ghw, 0, 0.0f, col, ghw, 0, 1));
            PFGM_TRY(launch_col2im3(s, g, cin, h, w, col, dx + n0 * cin * hw, acc_dx));
        }
    }
    if (dx && k == 1) /* dx_n [cin, hw] = W^T [cin, cout] . dy_n [cout, hw] */
        PFGM_TRY(rm_sgemm(be, 1, 0, cin, hw, cout, 1.0f, wt, cin, 0, dy, hw, cout * hw, acc_dx ? 1.0f : 0.0f, dx, hw,
                          cin * hw, batch));
    return PFGM_OK;
}

/* ---- strided batched gemm (NIN layers and attention) ------------------------------------ */

pfgm_status cuda_gemm_batched(pfgm_backend *be, int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha,
                              const float *a, int64_t lda, int64_t sa, const float *b, int64_t ldb, int64_t sb,
                              float beta, float *c, int64_t ldc, int64_t sc, int64_t batch) {
    if (batch == 0 || m == 0 || n == 0) return PFGM_OK;
    if (sc == 0) {
        /* The reduction: C = alpha sum_i op(A_i) op(B_i) + beta C, in batch order. */
        for (int64_t i = 0; i < batch; ++i)
            PFGM_TRY(rm_sgemm(be, ta, tb, m, n, k, alpha, a + i * sa, lda, 0, b + i * sb, ldb, 0, i > 0 ? 1.0f : beta,
                              c, ldc, 0, 1));
        return PFGM_OK;
    }
    return rm_sgemm(be, ta, tb, m, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c, ldc, sc, batch);
}

} // namespace

void pfgm_cuda_conv_ops_init(pfgm_backend *be) {
    be->gemm_batched = cuda_gemm_batched;
    be->conv2d_workspace = cuda_conv2d_workspace;
    be->conv2d_fwd = cuda_conv2d_fwd;
    be->conv2d_bwd = cuda_conv2d_bwd;
}
