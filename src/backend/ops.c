/* The op front end (include/pfgm/ops.h): for every op of backend.h, the presence check and
 * the argument checks, made once here for every backend, then the call through the table.
 * The conditions and messages are the ones the CPU and CUDA backends used to repeat. */
#include "pfgm/ops.h"

#include <limits.h>

#include "util/check.h"

/* The backend and its op, or the reason why not. */
static pfgm_status op_missing(const pfgm_backend *be, const char *op) {
    if (!be) return pfgm_error(PFGM_ERR_INVALID_ARG, "%s: NULL backend", op);
    return pfgm_error(PFGM_ERR_UNSUPPORTED, "%s: backend '%s' lacks the op", op, be->name);
}
#define NEED(op)                                               \
    do {                                                       \
        if (!be || !be->op) return op_missing(be, #op);        \
    } while (0)

static pfgm_status negative_or_zero(const char *what) {
    return pfgm_error(PFGM_ERR_INVALID_ARG, "%s: negative or zero size", what);
}

static pfgm_status negative_count(const char *op, int64_t n) {
    return pfgm_error(PFGM_ERR_INVALID_ARG, "%s: negative element count %lld", op, (long long)n);
}

/* ---- dense linear algebra and elementwise ----------------------------------------------- */

pfgm_status pfgm_op_gemm(pfgm_backend *be, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                         const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    NEED(gemm);
    const int64_t wa = trans_a ? m : k, wb = trans_b ? k : n; /* row widths of the stored A and B */
    const int64_t big = INT_MAX;
    if (m < 0 || n < 0 || k < 0 || lda < (wa > 1 ? wa : 1) || ldb < (wb > 1 ? wb : 1) || ldc < (n > 1 ? n : 1) ||
        m > big || n > big || k > big || lda > big || ldb > big || ldc > big)
        return pfgm_error(PFGM_ERR_INVALID_ARG,
                          "gemm: bad shape m=%lld n=%lld k=%lld lda=%lld ldb=%lld ldc=%lld (trans_a=%d trans_b=%d; "
                          "sizes in [0, 2^31), each leading dimension >= max(1, its row width))",
                          (long long)m, (long long)n, (long long)k, (long long)lda, (long long)ldb, (long long)ldc,
                          trans_a ? 1 : 0, trans_b ? 1 : 0);
    return be->gemm(be, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

pfgm_status pfgm_op_axpby(pfgm_backend *be, int64_t n, float alpha, const float *x, float beta, float *y) {
    NEED(axpby);
    return be->axpby(be, n, alpha, x, beta, y);
}

pfgm_status pfgm_op_fill(pfgm_backend *be, int64_t n, float value, float *x) {
    NEED(fill);
    return be->fill(be, n, value, x);
}

pfgm_status pfgm_op_dot(pfgm_backend *be, int64_t n, const float *x, const float *y, double *out) {
    NEED(dot);
    return be->dot(be, n, x, y, out);
}

pfgm_status pfgm_op_row_sumsq(pfgm_backend *be, int64_t rows, int64_t cols, const float *x, int64_t ld, float *out) {
    NEED(row_sumsq);
    if (rows < 0 || cols < 0 || ld < cols)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "row_sumsq: bad shape rows=%lld cols=%lld ld=%lld", (long long)rows,
                          (long long)cols, (long long)ld);
    return be->row_sumsq(be, rows, cols, x, ld, out);
}

pfgm_status pfgm_op_softmax_rows(pfgm_backend *be, int64_t rows, int64_t cols, float *x) {
    NEED(softmax_rows);
    if (rows < 0 || cols <= 0)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "softmax_rows: bad shape rows=%lld cols=%lld", (long long)rows,
                          (long long)cols);
    return be->softmax_rows(be, rows, cols, x);
}

/* ---- random numbers ------------------------------------------------------------------------ */

pfgm_status pfgm_op_fill_uniform(pfgm_backend *be, const pfgm_rng *r, uint64_t offset, int64_t n, float *out) {
    NEED(fill_uniform);
    return be->fill_uniform(be, r, offset, n, out);
}

pfgm_status pfgm_op_fill_normal(pfgm_backend *be, const pfgm_rng *r, uint64_t offset, int64_t n, float *out) {
    NEED(fill_normal);
    return be->fill_normal(be, r, offset, n, out);
}

/* ---- PFGM math ------------------------------------------------------------------------------- */

pfgm_status pfgm_op_perturb(pfgm_backend *be, const pfgm_rng *r, int64_t B, int64_t N, const float *x, int64_t M,
                            double tau, double sigma_end, int restrict_M, float *out, float *x_net, float *z_net) {
    NEED(perturb);
    if (B < 0 || N <= 0 || M <= 0)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "perturb: bad shape B=%lld N=%lld M=%lld", (long long)B,
                          (long long)N, (long long)M);
    return be->perturb(be, r, B, N, x, M, tau, sigma_end, restrict_M, out, x_net, z_net);
}

pfgm_status pfgm_op_field_weights(pfgm_backend *be, int64_t B, int64_t L, double half_exponent, const float *a2,
                                  const float *b2, float *gc, float *csum) {
    NEED(field_weights);
    if (B < 0 || L <= 0 || !(half_exponent > 0.0))
        return pfgm_error(PFGM_ERR_INVALID_ARG, "field_weights: bad shape B=%lld L=%lld exponent=%g", (long long)B,
                          (long long)L, half_exponent);
    return be->field_weights(be, B, L, half_exponent, a2, b2, gc, csum);
}

pfgm_status pfgm_op_field_finish(pfgm_backend *be, int64_t B, int64_t N, double gamma, const float *csum,
                                 const float *perturbed, float *e) {
    NEED(field_finish);
    if (B < 0 || N <= 0 || !(gamma >= 0.0))
        return pfgm_error(PFGM_ERR_INVALID_ARG, "field_finish: bad arguments B=%lld N=%lld gamma=%g", (long long)B,
                          (long long)N, gamma);
    return be->field_finish(be, B, N, gamma, csum, perturbed, e);
}

pfgm_status pfgm_op_loss_mse(pfgm_backend *be, int64_t B, int64_t N, const float *pred_x, const float *pred_z,
                             const float *target, int reduce_mean, float *grad_x, float *grad_z, double *loss) {
    NEED(loss_mse);
    if (B <= 0 || N <= 0)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "loss: bad shape B=%lld N=%lld", (long long)B, (long long)N);
    return be->loss_mse(be, B, N, pred_x, pred_z, target, reduce_mean, grad_x, grad_z, loss);
}

pfgm_status pfgm_op_sphere_points(pfgm_backend *be, const pfgm_rng *r, uint64_t offset, uint64_t stride, int64_t B,
                                  int64_t N, const double *radii, float *x, int64_t ldx) {
    NEED(sphere_points);
    if (B < 0 || N <= 0 || ldx < N || stride < (uint64_t)N)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "sphere_points: bad shape B=%lld N=%lld ldx=%lld", (long long)B,
                          (long long)N, (long long)ldx);
    return be->sphere_points(be, r, offset, stride, B, N, radii, x, ldx);
}

pfgm_status pfgm_op_ode_drift(pfgm_backend *be, int64_t B, int64_t N, int64_t P, const float *z, double gamma,
                              double z_exp, const float *v_x, const float *v_z, float *k, float *v_z_used,
                              int64_t *guard_count) {
    NEED(ode_drift);
    if (B < 0 || N <= 0 || P < 0 || !(gamma >= 0.0))
        return pfgm_error(PFGM_ERR_INVALID_ARG, "ode_drift: bad arguments B=%lld N=%lld P=%lld gamma=%g",
                          (long long)B, (long long)N, (long long)P, gamma);
    return be->ode_drift(be, B, N, P, z, gamma, z_exp, v_x, v_z, k, v_z_used, guard_count);
}

pfgm_status pfgm_op_ode_init_state(pfgm_backend *be, int64_t B, int64_t N, int64_t P, const float *x, double z,
                                   double *y) {
    NEED(ode_init_state);
    if (B < 0 || N <= 0 || P < 0)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "ode_init_state: bad shape B=%lld N=%lld P=%lld", (long long)B,
                          (long long)N, (long long)P);
    return be->ode_init_state(be, B, N, P, x, z, y);
}

pfgm_status pfgm_op_ode_combine(pfgm_backend *be, int64_t rows, int64_t cols, const double *y, const double *h,
                                int nk, const double *coef, const float *const *k, double *y_out, float *x_out,
                                int64_t nx) {
    NEED(ode_combine);
    if (rows < 0 || cols <= 0 || nk < 0 || nk > PFGM_OP_MAX_TERMS || (x_out && (nx < 0 || nx > cols)))
        return pfgm_error(PFGM_ERR_INVALID_ARG, "ode_combine: bad arguments rows=%lld cols=%lld nk=%d nx=%lld",
                          (long long)rows, (long long)cols, nk, (long long)nx);
    return be->ode_combine(be, rows, cols, y, h, nk, coef, k, y_out, x_out, nx);
}

pfgm_status pfgm_op_ode_sumsq(pfgm_backend *be, int64_t rows, int64_t cols, const double *num_y, const double *h,
                              int nk, const double *coef, const float *const *k, const double *ya, const double *yb,
                              double rtol, double atol, double *row_out) {
    NEED(ode_sumsq);
    if (rows < 0 || cols <= 0 || nk < 0 || nk > PFGM_OP_MAX_TERMS)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "ode_sumsq: bad arguments rows=%lld cols=%lld nk=%d", (long long)rows,
                          (long long)cols, nk);
    return be->ode_sumsq(be, rows, cols, num_y, h, nk, coef, k, ya, yb, rtol, atol, row_out);
}

/* ---- network layers -------------------------------------------------------------------------- */

pfgm_status pfgm_op_silu_fwd(pfgm_backend *be, int64_t n, const float *x, float *y) {
    NEED(silu_fwd);
    return be->silu_fwd(be, n, x, y);
}

pfgm_status pfgm_op_silu_bwd(pfgm_backend *be, int64_t n, const float *x, const float *dy, float *dx, int accumulate) {
    NEED(silu_bwd);
    return be->silu_bwd(be, n, x, dy, dx, accumulate);
}

static pfgm_status conv_check(int64_t batch, int64_t cin, int64_t cout, int64_t h, int64_t w, int k) {
    if (batch < 0 || cin <= 0 || cout <= 0 || h <= 0 || w <= 0 || (k != 1 && k != 3))
        return pfgm_error(PFGM_ERR_INVALID_ARG,
                          "conv2d: bad shape batch=%lld cin=%lld cout=%lld h=%lld w=%lld k=%d (k must be 1 or 3)",
                          (long long)batch, (long long)cin, (long long)cout, (long long)h, (long long)w, k);
    return PFGM_OK;
}

size_t pfgm_op_conv2d_workspace(pfgm_backend *be, int64_t batch, int64_t cin, int64_t cout, int64_t h, int64_t w,
                                int k) {
    if (!be || !be->conv2d_workspace) {
        op_missing(be, "conv2d_workspace");
        return 0;
    }
    if (conv_check(batch, cin, cout, h, w, k) != PFGM_OK) return 0;
    return be->conv2d_workspace(be, batch, cin, cout, h, w, k);
}

pfgm_status pfgm_op_conv2d_fwd(pfgm_backend *be, int64_t batch, int64_t cin, int64_t cout, int64_t h, int64_t w,
                               int k, const float *x, const float *weight, const float *bias, float *y, void *ws,
                               size_t ws_bytes) {
    NEED(conv2d_fwd);
    PFGM_TRY(conv_check(batch, cin, cout, h, w, k));
    return be->conv2d_fwd(be, batch, cin, cout, h, w, k, x, weight, bias, y, ws, ws_bytes);
}

pfgm_status pfgm_op_conv2d_bwd(pfgm_backend *be, int64_t batch, int64_t cin, int64_t cout, int64_t h, int64_t w,
                               int k, const float *x, const float *weight, const float *dy, float *dx,
                               int accumulate_dx, float *dweight, float *dbias, void *ws, size_t ws_bytes) {
    NEED(conv2d_bwd);
    PFGM_TRY(conv_check(batch, cin, cout, h, w, k));
    return be->conv2d_bwd(be, batch, cin, cout, h, w, k, x, weight, dy, dx, accumulate_dx, dweight, dbias, ws,
                          ws_bytes);
}

pfgm_status pfgm_op_gemm_batched(pfgm_backend *be, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                                 float alpha, const float *a, int64_t lda, int64_t stride_a, const float *b,
                                 int64_t ldb, int64_t stride_b, float beta, float *c, int64_t ldc, int64_t stride_c,
                                 int64_t batch) {
    NEED(gemm_batched);
    const int64_t big = INT_MAX; /* each product is one BLAS or cuBLAS call: 32-bit sizes */
    if (batch < 0 || m < 0 || n < 0 || k <= 0 || lda < (trans_a ? m : k) || ldb < (trans_b ? k : n) || ldc < n ||
        stride_a < 0 || stride_b < 0 || stride_c < 0 || m > big || n > big || k > big || lda > big || ldb > big ||
        ldc > big)
        return pfgm_error(PFGM_ERR_INVALID_ARG,
                          "gemm_batched: bad shape m=%lld n=%lld k=%lld lda=%lld ldb=%lld ldc=%lld batch=%lld",
                          (long long)m, (long long)n, (long long)k, (long long)lda, (long long)ldb, (long long)ldc,
                          (long long)batch);
    return be->gemm_batched(be, trans_a, trans_b, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta, c, ldc,
                            stride_c, batch);
}

pfgm_status pfgm_op_softmax_rows_bwd(pfgm_backend *be, int64_t rows, int64_t cols, const float *p, float *dp) {
    NEED(softmax_rows_bwd);
    if (rows < 0 || cols <= 0) return negative_or_zero("softmax_rows_bwd");
    return be->softmax_rows_bwd(be, rows, cols, p, dp);
}

static pfgm_status gn_check(const char *op, int64_t batch, int64_t c, int64_t hw, int64_t groups) {
    if (batch < 0 || c <= 0 || hw <= 0 || groups <= 0 || c % groups != 0)
        return pfgm_error(PFGM_ERR_INVALID_ARG,
                          "%s: bad shape batch=%lld c=%lld hw=%lld groups=%lld (c must be a multiple of groups)", op,
                          (long long)batch, (long long)c, (long long)hw, (long long)groups);
    return PFGM_OK;
}

pfgm_status pfgm_op_groupnorm_fwd(pfgm_backend *be, int64_t batch, int64_t c, int64_t hw, int64_t groups, float eps,
                                  int silu, const float *x, const float *gamma, const float *beta, float *y,
                                  float *mean, float *rstd) {
    NEED(groupnorm_fwd);
    PFGM_TRY(gn_check("groupnorm_fwd", batch, c, hw, groups));
    return be->groupnorm_fwd(be, batch, c, hw, groups, eps, silu, x, gamma, beta, y, mean, rstd);
}

pfgm_status pfgm_op_groupnorm_bwd(pfgm_backend *be, int64_t batch, int64_t c, int64_t hw, int64_t groups, int silu,
                                  const float *x, const float *gamma, const float *beta, const float *mean,
                                  const float *rstd, const float *dy, float *dx, int accumulate_dx, float *dgamma,
                                  float *dbeta) {
    NEED(groupnorm_bwd);
    PFGM_TRY(gn_check("groupnorm_bwd", batch, c, hw, groups));
    return be->groupnorm_bwd(be, batch, c, hw, groups, silu, x, gamma, beta, mean, rstd, dy, dx, accumulate_dx, dgamma,
                             dbeta);
}

pfgm_status pfgm_op_upsample2x_fwd(pfgm_backend *be, int64_t planes, int64_t h, int64_t w, const float *x, float *y) {
    NEED(upsample2x_fwd);
    if (planes < 0 || h <= 0 || w <= 0) return negative_or_zero("upsample2x_fwd");
    return be->upsample2x_fwd(be, planes, h, w, x, y);
}

pfgm_status pfgm_op_upsample2x_bwd(pfgm_backend *be, int64_t planes, int64_t h, int64_t w, const float *dy, float *dx,
                                   int accumulate) {
    NEED(upsample2x_bwd);
    if (planes < 0 || h <= 0 || w <= 0) return negative_or_zero("upsample2x_bwd");
    return be->upsample2x_bwd(be, planes, h, w, dy, dx, accumulate);
}

static pfgm_status pool_check(const char *op, int64_t planes, int64_t h, int64_t w) {
    if (planes < 0 || h <= 0 || w <= 0 || h % 2 || w % 2)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "%s: h=%lld w=%lld must be positive and even", op, (long long)h,
                          (long long)w);
    return PFGM_OK;
}

pfgm_status pfgm_op_avgpool2x2_fwd(pfgm_backend *be, int64_t planes, int64_t h, int64_t w, const float *x, float *y) {
    NEED(avgpool2x2_fwd);
    PFGM_TRY(pool_check("avgpool2x2_fwd", planes, h, w));
    return be->avgpool2x2_fwd(be, planes, h, w, x, y);
}

pfgm_status pfgm_op_avgpool2x2_bwd(pfgm_backend *be, int64_t planes, int64_t h, int64_t w, const float *dy, float *dx,
                                   int accumulate) {
    NEED(avgpool2x2_bwd);
    PFGM_TRY(pool_check("avgpool2x2_bwd", planes, h, w));
    return be->avgpool2x2_bwd(be, planes, h, w, dy, dx, accumulate);
}

pfgm_status pfgm_op_bcast_add_fwd(pfgm_backend *be, int64_t batch, int64_t c, int64_t hw, const float *v,
                                  int64_t v_stride, float *y) {
    NEED(bcast_add_fwd);
    if (batch < 0 || c <= 0 || hw <= 0 || v_stride < 0) return negative_or_zero("bcast_add_fwd");
    return be->bcast_add_fwd(be, batch, c, hw, v, v_stride, y);
}

pfgm_status pfgm_op_bcast_add_bwd(pfgm_backend *be, int64_t batch, int64_t c, int64_t hw, const float *dy,
                                  int64_t v_stride, float *dv, int accumulate) {
    NEED(bcast_add_bwd);
    if (batch < 0 || c <= 0 || hw <= 0 || v_stride < 0) return negative_or_zero("bcast_add_bwd");
    return be->bcast_add_bwd(be, batch, c, hw, dy, v_stride, dv, accumulate);
}

pfgm_status pfgm_op_copy_channels(pfgm_backend *be, int64_t batch, int64_t hw, int64_t nc, const float *src,
                                  int64_t src_c, int64_t src_c0, float *dst, int64_t dst_c, int64_t dst_c0,
                                  int accumulate) {
    NEED(copy_channels);
    if (batch < 0 || hw <= 0 || nc < 0 || src_c0 < 0 || dst_c0 < 0 || src_c0 + nc > src_c || dst_c0 + nc > dst_c)
        return pfgm_error(PFGM_ERR_INVALID_ARG,
                          "copy_channels: channels [%lld, %lld) of %lld -> [%lld, %lld) of %lld out of range",
                          (long long)src_c0, (long long)(src_c0 + nc), (long long)src_c, (long long)dst_c0,
                          (long long)(dst_c0 + nc), (long long)dst_c);
    return be->copy_channels(be, batch, hw, nc, src, src_c, src_c0, dst, dst_c, dst_c0, accumulate);
}

pfgm_status pfgm_op_channel_mean_fwd(pfgm_backend *be, int64_t batch, int64_t c, int64_t hw, int64_t ch,
                                     const float *x, float *out) {
    NEED(channel_mean_fwd);
    if (batch < 0 || c <= 0 || hw <= 0 || ch < 0 || ch >= c) return negative_or_zero("channel_mean_fwd");
    return be->channel_mean_fwd(be, batch, c, hw, ch, x, out);
}

pfgm_status pfgm_op_channel_mean_bwd(pfgm_backend *be, int64_t batch, int64_t c, int64_t hw, int64_t ch,
                                     const float *dout, float *dx, int accumulate) {
    NEED(channel_mean_bwd);
    if (batch < 0 || c <= 0 || hw <= 0 || ch < 0 || ch >= c) return negative_or_zero("channel_mean_bwd");
    return be->channel_mean_bwd(be, batch, c, hw, ch, dout, dx, accumulate);
}

pfgm_status pfgm_op_zembed_fwd(pfgm_backend *be, int64_t batch, int64_t half, int fourier, const float *z,
                               const float *w, float *out) {
    NEED(zembed_fwd);
    if (batch < 0 || half < 2) return negative_or_zero("zembed_fwd (half must be at least 2)");
    return be->zembed_fwd(be, batch, half, fourier, z, w, out);
}

pfgm_status pfgm_op_zembed_bwd(pfgm_backend *be, int64_t batch, int64_t half, int fourier, const float *z,
                               const float *w, const float *dout, float *dz, int accumulate) {
    NEED(zembed_bwd);
    if (batch < 0 || half < 2) return negative_or_zero("zembed_bwd (half must be at least 2)");
    return be->zembed_bwd(be, batch, half, fourier, z, w, dout, dz, accumulate);
}

static pfgm_status dropout_check(int64_t n, float p) {
    if (n < 0 || !(p >= 0.0f) || p > 1.0f)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "dropout: n=%lld p=%g (p must be in [0, 1])", (long long)n, (double)p);
    return PFGM_OK;
}

pfgm_status pfgm_op_dropout_fwd(pfgm_backend *be, int64_t n, float p, const pfgm_rng *r, uint64_t offset,
                                const float *x, float *y) {
    NEED(dropout_fwd);
    PFGM_TRY(dropout_check(n, p));
    return be->dropout_fwd(be, n, p, r, offset, x, y);
}

pfgm_status pfgm_op_dropout_bwd(pfgm_backend *be, int64_t n, float p, const pfgm_rng *r, uint64_t offset,
                                const float *dy, float *dx, int accumulate) {
    NEED(dropout_bwd);
    PFGM_TRY(dropout_check(n, p));
    return be->dropout_bwd(be, n, p, r, offset, dy, dx, accumulate);
}

/* ---- optimizer ------------------------------------------------------------------------------- */

pfgm_status pfgm_op_sumsq(pfgm_backend *be, int64_t n, const float *x, double *out) {
    NEED(sumsq);
    if (n < 0) return negative_count("sumsq", n);
    return be->sumsq(be, n, x, out);
}

pfgm_status pfgm_op_sumsq_blocks(pfgm_backend *be, int64_t n, const float *x, int64_t block, double *out) {
    NEED(sumsq_blocks);
    if (n < 0) return negative_count("sumsq_blocks", n);
    if (block < 1) return pfgm_error(PFGM_ERR_INVALID_ARG, "sumsq_blocks: block = %lld < 1", (long long)block);
    return be->sumsq_blocks(be, n, x, block, out);
}

pfgm_status pfgm_op_adam_update(pfgm_backend *be, int64_t n, double lr, double beta1, double beta2, double eps,
                                double wd, int64_t step, float *p, const float *g, float *m, float *v) {
    NEED(adam_update);
    if (n < 0) return negative_count("adam_update", n);
    if (step < 1)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "adam_update: step %lld, the bias correction needs step >= 1",
                          (long long)step);
    return be->adam_update(be, n, lr, beta1, beta2, eps, wd, step, p, g, m, v);
}

pfgm_status pfgm_op_ema_update(pfgm_backend *be, int64_t n, double decay, float *shadow, const float *p) {
    NEED(ema_update);
    if (n < 0) return negative_count("ema_update", n);
    return be->ema_update(be, n, decay, shadow, p);
}
