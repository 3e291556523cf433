/* The op front end: one function per op of backend.h, pfgm_op_<name>(be, <the op's
 * arguments>), through which src/core, src/nn, src/train and src/io call every op. Each
 * checks, once for every backend, that the backend has the op and that the arguments are
 * possible, then calls be-><name>; the backends are kernels only. What each op computes,
 * its shapes and its memory are in backend.h; what each refuses is listed here.
 *
 * Every function returns PFGM_ERR_UNSUPPORTED ("<op>: backend '<name>' lacks the op") when
 * be-><name> is NULL, PFGM_ERR_INVALID_ARG for the arguments listed with it (message naming
 * the op and the values; nothing is touched), else what the backend returns. Pointers are
 * not checked. The lifetime and memory functions of backend.h (alloc, free, copy, memzero,
 * sync, caps, destroy) have no checks to make and are called through the table directly.
 *
 * Adding an op: its pointer and contract in backend.h, one table entry per backend, and one
 * function here with its checks (docs/architecture.md, "Backends"). */
#ifndef PFGM_OPS_H
#define PFGM_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "pfgm/backend.h"
#include "pfgm/rng.h"
#include "pfgm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- dense linear algebra and elementwise ----------------------------------------------- */

/* Refuses m, n or k < 0, a leading dimension below max(1, the row width of its row-major
 * matrix) (also when k = 0, as BLAS and cuBLAS require), and m, n, k or a leading
 * dimension above INT_MAX (the most a 32-bit BLAS or cuBLAS index holds). */
pfgm_status pfgm_op_gemm(pfgm_backend *be, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                         const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);
pfgm_status pfgm_op_axpby(pfgm_backend *be, int64_t n, float alpha, const float *x, float beta, float *y);
pfgm_status pfgm_op_fill(pfgm_backend *be, int64_t n, float value, float *x);
pfgm_status pfgm_op_dot(pfgm_backend *be, int64_t n, const float *x, const float *y, double *out);
/* Refuses rows < 0, cols < 0, ld < cols. */
pfgm_status pfgm_op_row_sumsq(pfgm_backend *be, int64_t rows, int64_t cols, const float *x, int64_t ld, float *out);
/* Refuses rows < 0, cols <= 0. */
pfgm_status pfgm_op_softmax_rows(pfgm_backend *be, int64_t rows, int64_t cols, float *x);

/* ---- random numbers ------------------------------------------------------------------------ */

pfgm_status pfgm_op_fill_uniform(pfgm_backend *be, const pfgm_rng *r, uint64_t offset, int64_t n, float *out);
pfgm_status pfgm_op_fill_normal(pfgm_backend *be, const pfgm_rng *r, uint64_t offset, int64_t n, float *out);

/* ---- PFGM math ------------------------------------------------------------------------------- */

/* Refuses B < 0, N <= 0, M <= 0. */
pfgm_status pfgm_op_perturb(pfgm_backend *be, const pfgm_rng *r, int64_t B, int64_t N, const float *x, int64_t M,
                            double tau, double sigma_end, int restrict_M, float *out, float *x_net, float *z_net);
/* Refuses B < 0, L <= 0, half_exponent not > 0. (A non-finite a2 or b2 is the backend's
 * PFGM_ERR_NUMERIC: it reads the buffers.) */
pfgm_status pfgm_op_field_weights(pfgm_backend *be, int64_t B, int64_t L, double half_exponent, const float *a2,
                                  const float *b2, float *gc, float *csum);
/* Refuses B < 0, N <= 0, gamma not >= 0. */
pfgm_status pfgm_op_field_finish(pfgm_backend *be, int64_t B, int64_t N, double gamma, const float *csum,
                                 const float *perturbed, float *e);
/* Refuses B <= 0, N <= 0. */
pfgm_status pfgm_op_loss_mse(pfgm_backend *be, int64_t B, int64_t N, const float *pred_x, const float *pred_z,
                             const float *target, int reduce_mean, float *grad_x, float *grad_z, double *loss);
/* Refuses B < 0, N <= 0, ldx < N, stride < N (overlapping rows of normals). */
pfgm_status pfgm_op_sphere_points(pfgm_backend *be, const pfgm_rng *r, uint64_t offset, uint64_t stride, int64_t B,
                                  int64_t N, const double *radii, float *x, int64_t ldx);
/* Refuses B < 0, N <= 0, P < 0, gamma not >= 0. */
pfgm_status pfgm_op_ode_drift(pfgm_backend *be, int64_t B, int64_t N, int64_t P, const float *z, double gamma,
                              double z_exp, const float *v_x, const float *v_z, float *k, float *v_z_used,
                              int64_t *guard_count);
/* Refuses B < 0, N <= 0, P < 0. */
pfgm_status pfgm_op_ode_init_state(pfgm_backend *be, int64_t B, int64_t N, int64_t P, const float *x, double z,
                                   double *y);
/* Refuses rows < 0, cols <= 0, nk outside [0, PFGM_OP_MAX_TERMS], and with x_out, nx
 * outside [0, cols]. */
pfgm_status pfgm_op_ode_combine(pfgm_backend *be, int64_t rows, int64_t cols, const double *y, const double *h,
                                int nk, const double *coef, const float *const *k, double *y_out, float *x_out,
                                int64_t nx);
/* Refuses rows < 0, cols <= 0, nk outside [0, PFGM_OP_MAX_TERMS]. */
pfgm_status pfgm_op_ode_sumsq(pfgm_backend *be, int64_t rows, int64_t cols, const double *num_y, const double *h,
                              int nk, const double *coef, const float *const *k, const double *ya, const double *yb,
                              double rtol, double atol, double *row_out);

/* ---- network layers -------------------------------------------------------------------------- */

pfgm_status pfgm_op_silu_fwd(pfgm_backend *be, int64_t n, const float *x, float *y);
pfgm_status pfgm_op_silu_bwd(pfgm_backend *be, int64_t n, const float *x, const float *dy, float *dx, int accumulate);
/* The convolutions refuse batch < 0, cin, cout, h or w <= 0, and k other than 1 or 3. A
 * workspace below what conv2d_workspace() asked for is the backend's PFGM_ERR_INVALID_ARG
 * (the need is the backend's). pfgm_op_conv2d_workspace returns 0 for a refused shape or a
 * backend without the op (the error message says which). */
size_t pfgm_op_conv2d_workspace(pfgm_backend *be, int64_t batch, int64_t cin, int64_t cout, int64_t h, int64_t w,
                                int k);
pfgm_status pfgm_op_conv2d_fwd(pfgm_backend *be, int64_t batch, int64_t cin, int64_t cout, int64_t h, int64_t w,
                               int k, const float *x, const float *weight, const float *bias, float *y, void *ws,
                               size_t ws_bytes);
pfgm_status pfgm_op_conv2d_bwd(pfgm_backend *be, int64_t batch, int64_t cin, int64_t cout, int64_t h, int64_t w,
                               int k, const float *x, const float *weight, const float *dy, float *dx,
                               int accumulate_dx, float *dweight, float *dbias, void *ws, size_t ws_bytes);
/* Refuses batch, m, n < 0, k <= 0, a leading dimension below its row width, a negative
 * stride, and m, n, k or a leading dimension above INT_MAX (each product is one 32-bit BLAS
 * or cuBLAS call). */
pfgm_status pfgm_op_gemm_batched(pfgm_backend *be, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                                 float alpha, const float *a, int64_t lda, int64_t stride_a, const float *b,
                                 int64_t ldb, int64_t stride_b, float beta, float *c, int64_t ldc, int64_t stride_c,
                                 int64_t batch);
/* Refuses rows < 0, cols <= 0. */
pfgm_status pfgm_op_softmax_rows_bwd(pfgm_backend *be, int64_t rows, int64_t cols, const float *p, float *dp);
/* Refuses batch < 0, c, hw or groups <= 0, c not a multiple of groups. */
pfgm_status pfgm_op_groupnorm_fwd(pfgm_backend *be, int64_t batch, int64_t c, int64_t hw, int64_t groups, float eps,
                                  int silu, const float *x, const float *gamma, const float *beta, float *y,
                                  float *mean, float *rstd);
pfgm_status pfgm_op_groupnorm_bwd(pfgm_backend *be, int64_t batch, int64_t c, int64_t hw, int64_t groups, int silu,
                                  const float *x, const float *gamma, const float *beta, const float *mean,
                                  const float *rstd, const float *dy, float *dx, int accumulate_dx, float *dgamma,
                                  float *dbeta);
/* Refuse planes < 0, h or w <= 0. */
pfgm_status pfgm_op_upsample2x_fwd(pfgm_backend *be, int64_t planes, int64_t h, int64_t w, const float *x, float *y);
pfgm_status pfgm_op_upsample2x_bwd(pfgm_backend *be, int64_t planes, int64_t h, int64_t w, const float *dy, float *dx,
                                   int accumulate);
/* Refuse planes < 0, h or w not positive and even. */
pfgm_status pfgm_op_avgpool2x2_fwd(pfgm_backend *be, int64_t planes, int64_t h, int64_t w, const float *x, float *y);
pfgm_status pfgm_op_avgpool2x2_bwd(pfgm_backend *be, int64_t planes, int64_t h, int64_t w, const float *dy, float *dx,
                                   int accumulate);
/* Refuse batch < 0, c or hw <= 0, v_stride < 0. */
pfgm_status pfgm_op_bcast_add_fwd(pfgm_backend *be, int64_t batch, int64_t c, int64_t hw, const float *v,
                                  int64_t v_stride, float *y);
pfgm_status pfgm_op_bcast_add_bwd(pfgm_backend *be, int64_t batch, int64_t c, int64_t hw, const float *dy,
                                  int64_t v_stride, float *dv, int accumulate);
/* Refuses batch < 0, hw <= 0, nc < 0, and channel ranges outside src or dst. */
pfgm_status pfgm_op_copy_channels(pfgm_backend *be, int64_t batch, int64_t hw, int64_t nc, const float *src,
                                  int64_t src_c, int64_t src_c0, float *dst, int64_t dst_c, int64_t dst_c0,
                                  int accumulate);
/* Refuse batch < 0, c or hw <= 0, ch outside [0, c). */
pfgm_status pfgm_op_channel_mean_fwd(pfgm_backend *be, int64_t batch, int64_t c, int64_t hw, int64_t ch,
                                     const float *x, float *out);
pfgm_status pfgm_op_channel_mean_bwd(pfgm_backend *be, int64_t batch, int64_t c, int64_t hw, int64_t ch,
                                     const float *dout, float *dx, int accumulate);
/* Refuse batch < 0, half < 2. */
pfgm_status pfgm_op_zembed_fwd(pfgm_backend *be, int64_t batch, int64_t half, int fourier, const float *z,
                               const float *w, float *out);
pfgm_status pfgm_op_zembed_bwd(pfgm_backend *be, int64_t batch, int64_t half, int fourier, const float *z,
                               const float *w, const float *dout, float *dz, int accumulate);
/* Refuse n < 0, p outside [0, 1] (NaN included). */
pfgm_status pfgm_op_dropout_fwd(pfgm_backend *be, int64_t n, float p, const pfgm_rng *r, uint64_t offset,
                                const float *x, float *y);
pfgm_status pfgm_op_dropout_bwd(pfgm_backend *be, int64_t n, float p, const pfgm_rng *r, uint64_t offset,
                                const float *dy, float *dx, int accumulate);

/* ---- optimizer ------------------------------------------------------------------------------- */

/* Refuses n < 0. */
pfgm_status pfgm_op_sumsq(pfgm_backend *be, int64_t n, const float *x, double *out);
/* Refuses n < 0, block < 1. */
pfgm_status pfgm_op_sumsq_blocks(pfgm_backend *be, int64_t n, const float *x, int64_t block, double *out);
/* Refuses n < 0, step < 1 (the bias correction divides by 1 - beta^step). */
pfgm_status pfgm_op_adam_update(pfgm_backend *be, int64_t n, double lr, double beta1, double beta2, double eps,
                                double wd, int64_t step, float *p, const float *g, float *m, float *v);
/* Refuses n < 0. */
pfgm_status pfgm_op_ema_update(pfgm_backend *be, int64_t n, double decay, float *shadow, const float *p);

#ifdef __cplusplus
}
#endif
#endif /* PFGM_OPS_H */
