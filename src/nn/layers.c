/* Primitive layers of DDPM++ (spec §3.1): conv2d 1x1/3x3, Linear ("Dense"), NIN and GroupNorm.
 * Each is a thin composition of backend ops; the math lives in the backend (reference loops
 * and fast paths, src/backend/cpu/). */
#include "pfgm/nn.h"

#include <stdio.h>

#include "pfgm/ops.h"
#include "util/check.h"

static pfgm_status name2(char *out, size_t n, const char *prefix, const char *leaf) {
    int w = snprintf(out, n, "%s.%s", prefix, leaf);
    if (w < 0 || (size_t)w >= n)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "parameter name '%s.%s' is too long", prefix, leaf);
    return PFGM_OK;
}

/* ---- conv2d --------------------------------------------------------------------------- */

pfgm_status pfgm_conv2d_setup(pfgm_conv2d *c, pfgm_nn_params *t, const char *prefix, int64_t in_ch, int64_t out_ch,
                              int kernel, int64_t height, int64_t width, double init_scale) {
    if (in_ch <= 0 || out_ch <= 0 || height <= 0 || width <= 0 || (kernel != 1 && kernel != 3))
        return pfgm_error(PFGM_ERR_INVALID_ARG, "%s: conv %lld -> %lld, kernel %d at %lldx%lld is not supported",
                          prefix, (long long)in_ch, (long long)out_ch, kernel, (long long)height, (long long)width);
    *c = (pfgm_conv2d){.in_ch = in_ch, .out_ch = out_ch, .height = height, .width = width, .kernel = kernel};
    char name[PFGM_NN_NAME_MAX];
    const int64_t ws[4] = {out_ch, in_ch, kernel, kernel}, bs[1] = {out_ch};
    PFGM_TRY(name2(name, sizeof name, prefix, "weight"));
    PFGM_TRY(pfgm_nn_params_add(t, name, 4, ws, 1, PFGM_INIT_DEFAULT, init_scale, &c->w, &c->dw));
    PFGM_TRY(name2(name, sizeof name, prefix, "bias"));
    return pfgm_nn_params_add(t, name, 1, bs, 1, PFGM_INIT_ZEROS, 0.0, &c->b, &c->db);
}

size_t pfgm_conv2d_workspace(pfgm_backend *be, const pfgm_conv2d *c, int64_t batch) {
    return pfgm_op_conv2d_workspace(be, batch, c->in_ch, c->out_ch, c->height, c->width, c->kernel);
}

pfgm_status pfgm_conv2d_forward(pfgm_backend *be, const pfgm_conv2d *c, int64_t batch, const float *x, float *y,
                                void *ws, size_t ws_bytes) {
    return pfgm_op_conv2d_fwd(be, batch, c->in_ch, c->out_ch, c->height, c->width, c->kernel, x, c->w, c->b, y, ws,
                              ws_bytes);
}

pfgm_status pfgm_conv2d_backward(pfgm_backend *be, const pfgm_conv2d *c, int64_t batch, const float *x,
                                 const float *dy, float *dx, int accumulate, void *ws, size_t ws_bytes) {
    return pfgm_op_conv2d_bwd(be, batch, c->in_ch, c->out_ch, c->height, c->width, c->kernel, x, c->w, dy, dx,
                              accumulate, c->dw, c->db, ws, ws_bytes);
}

/* ---- Linear --------------------------------------------------------------------------- */

pfgm_status pfgm_linear_setup(pfgm_linear *l, pfgm_nn_params *t, const char *prefix, int64_t in, int64_t out,
                              double init_scale) {
    if (in <= 0 || out <= 0)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "%s: Linear %lld -> %lld", prefix, (long long)in, (long long)out);
    *l = (pfgm_linear){.in = in, .out = out};
    char name[PFGM_NN_NAME_MAX];
    const int64_t ws[2] = {out, in}, bs[1] = {out};
    PFGM_TRY(name2(name, sizeof name, prefix, "weight"));
    PFGM_TRY(pfgm_nn_params_add(t, name, 2, ws, 1, PFGM_INIT_DEFAULT, init_scale, &l->w, &l->dw));
    PFGM_TRY(name2(name, sizeof name, prefix, "bias"));
    return pfgm_nn_params_add(t, name, 1, bs, 1, PFGM_INIT_ZEROS, 0.0, &l->b, &l->db);
}

pfgm_status pfgm_linear_forward(pfgm_backend *be, const pfgm_linear *l, int64_t batch, const float *x, float *y) {
    if (batch == 0) return PFGM_OK;
    /* y [batch, out] = x [batch, in] . W^T */
    PFGM_TRY(pfgm_op_gemm(be, 0, 1, batch, l->out, l->in, 1.0f, x, l->in, l->w, l->in, 0.0f, y, l->out));
    return pfgm_op_bcast_add_fwd(be, batch, l->out, 1, l->b, 0, y);
}

pfgm_status pfgm_linear_backward(pfgm_backend *be, const pfgm_linear *l, int64_t batch, const float *x,
                                 const float *dy, float *dx, int accumulate) {
    if (batch == 0) return PFGM_OK;
    /* dW [out, in] += dy^T x; db += column sums of dy; dx = dy W */
    PFGM_TRY(pfgm_op_gemm(be, 1, 0, l->out, l->in, batch, 1.0f, dy, l->out, x, l->in, 1.0f, l->dw, l->in));
    PFGM_TRY(pfgm_op_bcast_add_bwd(be, batch, l->out, 1, dy, 0, l->db, 1));
    if (!dx) return PFGM_OK;
    return pfgm_op_gemm(be, 0, 0, batch, l->in, l->out, 1.0f, dy, l->out, l->w, l->in, accumulate ? 1.0f : 0.0f, dx,
                        l->in);
}

/* ---- NIN ------------------------------------------------------------------------------ */

pfgm_status pfgm_nin_setup(pfgm_nin *l, pfgm_nn_params *t, const char *prefix, int64_t in, int64_t out, int64_t hw,
                           double init_scale) {
    if (in <= 0 || out <= 0 || hw <= 0)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "%s: NIN %lld -> %lld over %lld pixels", prefix, (long long)in,
                          (long long)out, (long long)hw);
    *l = (pfgm_nin){.in = in, .out = out, .hw = hw};
    char name[PFGM_NN_NAME_MAX];
    const int64_t ws[2] = {in, out}, bs[1] = {out};
    PFGM_TRY(name2(name, sizeof name, prefix, "W"));
    PFGM_TRY(pfgm_nn_params_add(t, name, 2, ws, 1, PFGM_INIT_DEFAULT, init_scale, &l->w, &l->dw));
    PFGM_TRY(name2(name, sizeof name, prefix, "b"));
    return pfgm_nn_params_add(t, name, 1, bs, 1, PFGM_INIT_ZEROS, 0.0, &l->b, &l->db);
}

pfgm_status pfgm_nin_forward(pfgm_backend *be, const pfgm_nin *l, int64_t batch, const float *x, float *y) {
    if (batch == 0) return PFGM_OK;
    /* y_b [out, hw] = W^T [out, in] . x_b [in, hw] */
    PFGM_TRY(pfgm_op_gemm_batched(be, 1, 0, l->out, l->hw, l->in, 1.0f, l->w, l->out, 0, x, l->hw, l->in * l->hw, 0.0f,
                                  y, l->hw, l->out * l->hw, batch));
    return pfgm_op_bcast_add_fwd(be, batch, l->out, l->hw, l->b, 0, y);
}

pfgm_status pfgm_nin_backward(pfgm_backend *be, const pfgm_nin *l, int64_t batch, const float *x, const float *dy,
                              float *dx, int accumulate) {
    if (batch == 0) return PFGM_OK;
    /* dW [in, out] += sum_b x_b dy_b^T (a reduction over the batch) */
    PFGM_TRY(pfgm_op_gemm_batched(be, 0, 1, l->in, l->out, l->hw, 1.0f, x, l->hw, l->in * l->hw, dy, l->hw,
                                  l->out * l->hw, 1.0f, l->dw, l->out, 0, batch));
    PFGM_TRY(pfgm_op_bcast_add_bwd(be, batch, l->out, l->hw, dy, 0, l->db, 1));
    if (!dx) return PFGM_OK;
    /* dx_b [in, hw] = W [in, out] . dy_b [out, hw] */
    return pfgm_op_gemm_batched(be, 0, 0, l->in, l->hw, l->out, 1.0f, l->w, l->out, 0, dy, l->hw, l->out * l->hw,
                                accumulate ? 1.0f : 0.0f, dx, l->hw, l->in * l->hw, batch);
}

/* ---- GroupNorm ------------------------------------------------------------------------ */

pfgm_status pfgm_groupnorm_setup(pfgm_groupnorm *g, pfgm_nn_params *t, const char *prefix, int64_t channels,
                                 int64_t hw) {
    int64_t groups = channels / 4 < 32 ? channels / 4 : 32;
    if (groups < 1 || channels % groups != 0 || hw <= 0)
        return pfgm_error(PFGM_ERR_INVALID_ARG,
                          "%s: GroupNorm of %lld channels: min(C/4, 32) = %lld groups must divide C (C >= 4)", prefix,
                          (long long)channels, (long long)groups);
    *g = (pfgm_groupnorm){.channels = channels, .groups = groups, .hw = hw, .eps = 1e-6f};
    char name[PFGM_NN_NAME_MAX];
    const int64_t s[1] = {channels};
    PFGM_TRY(name2(name, sizeof name, prefix, "weight"));
    PFGM_TRY(pfgm_nn_params_add(t, name, 1, s, 1, PFGM_INIT_ONES, 0.0, &g->gamma, &g->dgamma));
    PFGM_TRY(name2(name, sizeof name, prefix, "bias"));
    return pfgm_nn_params_add(t, name, 1, s, 1, PFGM_INIT_ZEROS, 0.0, &g->beta, &g->dbeta);
}

int64_t pfgm_groupnorm_stats_per_image(const pfgm_groupnorm *g) { return 2 * g->groups; }

/* stats: mean [batch * groups] then rstd [batch * groups]. */
pfgm_status pfgm_groupnorm_forward(pfgm_backend *be, const pfgm_groupnorm *g, int64_t batch, int silu,
                                   const float *x, float *y, float *stats) {
    if (batch == 0) return PFGM_OK;
    return pfgm_op_groupnorm_fwd(be, batch, g->channels, g->hw, g->groups, g->eps, silu, x, g->gamma, g->beta, y, stats,
                                 stats + batch * g->groups);
}

pfgm_status pfgm_groupnorm_backward(pfgm_backend *be, const pfgm_groupnorm *g, int64_t batch, int silu,
                                    const float *x, const float *stats, const float *dy, float *dx, int accumulate) {
    if (batch == 0) return PFGM_OK;
    return pfgm_op_groupnorm_bwd(be, batch, g->channels, g->hw, g->groups, silu, x, g->gamma, g->beta, stats,
                                 stats + batch * g->groups, dy, dx, accumulate, g->dgamma, g->dbeta);
}
