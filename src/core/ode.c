/* Backward ODE of PFGM sampling (spec §1.8-1.9): option checks, the solver's one-time
 * allocation, the drift evaluation shared by every method, the authors' float32 time grid,
 * and the forward Euler and Heun solvers. RK45 is in ode_rk45.c. */
#include "pfgm/ode.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ode_internal.h"
#include "pfgm/ops.h"
#include "util/check.h"

pfgm_ode_options pfgm_ode_options_default(void) {
    return (pfgm_ode_options){.method = PFGM_ODE_RK45,
                              .z_max = 40.0,
                              .z_min = 1e-3,
                              .gamma = 5.0,
                              .z_exp = 5.0,
                              .steps = 100,
                              .rtol = 1e-4,
                              .atol = 1e-4,
                              .z_replicas = 1024,
                              .per_sample_step = 0,
                              .max_attempts = 0};
}

pfgm_status pfgm_ode_drift(pfgm_backend *be, int64_t B, int64_t N, int64_t P, const float *z, double gamma,
                           double z_exp, const float *v_x, const float *v_z, float *k, float *v_z_used,
                           int64_t *guards) {
    if (!be || !z || !v_x || !v_z || !k)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "ode drift: NULL backend or buffer");
    if (B <= 0 || N <= 0 || P < 0)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "ode drift: bad sizes B=%lld N=%lld P=%lld", (long long)B,
                          (long long)N, (long long)P);
    if (!(gamma >= 0.0) || !isfinite(gamma) || isnan(z_exp))
        return pfgm_error(PFGM_ERR_INVALID_ARG, "ode drift: training.gamma = %g must be >= 0, sampling.z_exp = %g",
                          gamma, z_exp);
    return pfgm_op_ode_drift(be, B, N, P, z, gamma, z_exp, v_x, v_z, k, v_z_used, guards);
}

pfgm_status pfgm_ode_time_grid(int64_t steps, double z_max, double z_min, float *t) {
    if (steps < 1 || !t || !(z_min > 0.0) || !(z_min < z_max) || !isfinite(z_max))
        return pfgm_error(PFGM_ERR_INVALID_ARG,
                          "ode time grid: need sampling.N >= 1 and 0 < sampling.z_min < sampling.z_max "
                          "(N=%lld z_min=%g z_max=%g)",
                          (long long)steps, z_min, z_max);
    /* torch.linspace in float32: step in float, the first half from the start, the second
     * half from the end, so both end points are exact. */
    const int64_t n = steps + 1, half = n / 2;
    const float start = (float)log(z_max), end = (float)log(z_min);
    const float step = (end - start) / (float)(n - 1);
    for (int64_t i = 0; i < n; ++i) t[i] = i < half ? start + step * (float)i : end - step * (float)(n - 1 - i);
    return PFGM_OK;
}

static pfgm_status check_options(int64_t B, int64_t N, const pfgm_ode_options *o) {
    if (B <= 0 || N <= 0)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "ode: sizes must be positive (B=%lld N=%lld)", (long long)B,
                          (long long)N);
    if (o->method != PFGM_ODE_EULER && o->method != PFGM_ODE_HEUN && o->method != PFGM_ODE_RK45)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "ode: unknown method %d (rk45, forward_euler, improved_euler)",
                          (int)o->method);
    if (!(o->z_min > 0.0) || !(o->z_min < o->z_max) || !isfinite(o->z_max))
        return pfgm_error(PFGM_ERR_INVALID_ARG, "ode: need 0 < sampling.z_min (%g) < sampling.z_max (%g)", o->z_min,
                          o->z_max);
    if (!(o->gamma >= 0.0) || !isfinite(o->gamma) || isnan(o->z_exp))
        return pfgm_error(PFGM_ERR_INVALID_ARG, "ode: training.gamma = %g must be >= 0 and sampling.z_exp a number",
                          o->gamma);
    if (o->method == PFGM_ODE_RK45) {
        if (!(o->rtol > 0.0) || !(o->atol > 0.0) || !isfinite(o->rtol) || !isfinite(o->atol))
            return pfgm_error(PFGM_ERR_INVALID_ARG, "ode: RK45 rtol = %g and atol = %g must be > 0", o->rtol,
                              o->atol);
        if (o->z_replicas < 1)
            return pfgm_error(PFGM_ERR_INVALID_ARG, "ode: RK45 z_replicas = %lld must be >= 1 (H*W)",
                              (long long)o->z_replicas);
        if (o->max_attempts < 0)
            return pfgm_error(PFGM_ERR_INVALID_ARG, "ode: max_attempts = %lld must be >= 0",
                              (long long)o->max_attempts);
    } else if (o->steps < 1) {
        return pfgm_error(PFGM_ERR_INVALID_ARG, "ode: sampling.N = %lld Euler/Heun steps must be >= 1",
                          (long long)o->steps);
    }
    return PFGM_OK;
}

void pfgm_ode_destroy(pfgm_ode_solver *s) {
    if (!s) return;
    pfgm_backend *be = s->be;
    void *dev[] = {s->y, s->y_new, s->x32, s->v_x, s->v_z, s->z, s->h};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; ++i)
        if (dev[i]) be->free(be, dev[i]);
    for (int j = 0; j < ODE_STAGES; ++j)
        if (s->k[j]) be->free(be, s->k[j]);
    free(s->row);
    free(s->t_row);
    free(s->t_next);
    free(s->tgrid);
    free(s->h_abs);
    free(s->t_new);
    free(s->h_host);
    free(s->d0);
    free(s->d1);
    free(s->z_host);
    free(s->rejected);
    free(s->accept);
    free(s->perm);
    free(s);
}

pfgm_status pfgm_ode_create(pfgm_backend *be, int64_t B, int64_t N, const pfgm_ode_options *opt,
                            pfgm_ode_solver **out) {
    if (!be || !opt || !out) return pfgm_error(PFGM_ERR_INVALID_ARG, "ode: NULL backend, options or output");
    *out = NULL;
    PFGM_TRY(check_options(B, N, opt));
    if (!be->ode_drift || !be->ode_init_state || !be->ode_combine || !be->ode_sumsq || !be->fill || !be->copy)
        return pfgm_error(PFGM_ERR_UNSUPPORTED, "ode: backend '%s' lacks the ODE ops", be->name);
    pfgm_ode_solver *s = calloc(1, sizeof *s);
    if (!s) return pfgm_error(PFGM_ERR_NOMEM, "ode: cannot allocate the solver");
    s->be = be;
    s->opt = *opt;
    s->B = B;
    s->N = N;
    s->P = opt->method == PFGM_ODE_RK45 ? opt->z_replicas : 0; /* Euler/Heun carry no z channel */
    s->D = N + s->P;
    s->rows = B;
    const size_t bd = (size_t)B * (size_t)s->D, bn = (size_t)B * (size_t)N, b = (size_t)B;
    const int nstages = opt->method == PFGM_ODE_RK45 ? ODE_STAGES : 2;
    pfgm_status st = PFGM_OK;
    PFGM_TRY_GOTO(be->alloc(be, bd * sizeof(double), (void **)&s->y), fail);
    if (opt->method == PFGM_ODE_RK45) PFGM_TRY_GOTO(be->alloc(be, bd * sizeof(double), (void **)&s->y_new), fail);
    for (int j = 0; j < nstages; ++j) PFGM_TRY_GOTO(be->alloc(be, bd * sizeof(float), (void **)&s->k[j]), fail);
    PFGM_TRY_GOTO(be->alloc(be, bn * sizeof(float), (void **)&s->x32), fail);
    PFGM_TRY_GOTO(be->alloc(be, bn * sizeof(float), (void **)&s->v_x), fail);
    PFGM_TRY_GOTO(be->alloc(be, b * sizeof(float), (void **)&s->v_z), fail);
    PFGM_TRY_GOTO(be->alloc(be, b * sizeof(float), (void **)&s->z), fail);
    PFGM_TRY_GOTO(be->alloc(be, b * sizeof(double), (void **)&s->h), fail);
    s->row = calloc(b, sizeof(double));
    s->t_row = calloc(b, sizeof(double));
    s->t_next = calloc(b, sizeof(double));
    s->tgrid = calloc((size_t)(opt->method == PFGM_ODE_RK45 ? 1 : opt->steps + 1), sizeof(float));
    s->h_abs = calloc(b, sizeof(double));
    s->t_new = calloc(b, sizeof(double));
    s->h_host = calloc(b, sizeof(double));
    s->d0 = calloc(b, sizeof(double));
    s->d1 = calloc(b, sizeof(double));
    s->z_host = calloc(b, sizeof(float));
    s->rejected = calloc(b, 1);
    s->accept = calloc(b, 1);
    s->perm = calloc(b, sizeof(int64_t));
    if (!s->row || !s->t_row || !s->t_next || !s->tgrid || !s->h_abs || !s->t_new || !s->h_host || !s->d0 || !s->d1 ||
        !s->z_host || !s->rejected || !s->accept || !s->perm) {
        st = pfgm_error(PFGM_ERR_NOMEM, "ode: cannot allocate the per-sample scalars (B=%lld)", (long long)B);
        goto fail;
    }
    *out = s;
    return PFGM_OK;
fail:
    pfgm_ode_destroy(s);
    return st;
}

static pfgm_status eval_common(pfgm_ode_solver *s, int64_t p, float *k) {
    pfgm_backend *be = s->be;
    PFGM_TRY(s->field(s->user, s->rows, s->x32, s->z, s->v_x, s->v_z));
    int64_t guards = 0;
    PFGM_TRY(pfgm_op_ode_drift(be, s->rows, s->N, p, s->z, s->opt.gamma, s->opt.z_exp, s->v_x, s->v_z, k, NULL, &guards));
    s->stats.nfe += 1;
    s->stats.sample_evals += s->rows;
    s->stats.rho_guard += guards;
    return PFGM_OK;
}

pfgm_status pfgm_ode_eval_zf(pfgm_ode_solver *s, float zf, int64_t p, float *k) {
    PFGM_TRY(pfgm_op_fill(s->be, s->rows, zf, s->z));
    return eval_common(s, p, k);
}

pfgm_status pfgm_ode_eval(pfgm_ode_solver *s, const double *t, double t0, int64_t p, float *k) {
    if (!t) return pfgm_ode_eval_zf(s, (float)exp(t0), p, k); /* z = exp(t), then float32 */
    for (int64_t b = 0; b < s->rows; ++b) s->z_host[b] = (float)exp(t[b]);
    PFGM_TRY(s->be->copy(s->be, s->z, s->z_host, (size_t)s->rows * sizeof(float), PFGM_COPY_H2D));
    return eval_common(s, p, k);
}

/* Forward Euler (spec §1.9b) and Heun (§1.9c) in z on the authors' log-spaced float32 grid:
 * at step i, z_i = exp(t_i) and the drift is z dx/dz, so with dt = exp(t_{i+1} - t_i) - 1
 * the update x += drift dt is x += (dx/dz)(z_{i+1} - z_i). Heun re-evaluates at
 * (x_pred, t_{i+1}) with dt' = 1 - exp(t_i - t_{i+1}) and averages; its last step is Euler.
 * The grid scalars are float32 as torch computes them; the state is double. */
static pfgm_status solve_euler_heun(pfgm_ode_solver *s) {
    pfgm_backend *be = s->be;
    const int64_t n = s->opt.steps;
    const int heun = s->opt.method == PFGM_ODE_HEUN;
    float *t = s->tgrid;
    pfgm_status st = pfgm_ode_time_grid(n, s->opt.z_max, s->opt.z_min, t);
    for (int64_t i = 0; i < n && st == PFGM_OK; ++i) {
        const float dt = expf(t[i + 1] - t[i]) - 1.0f; /* -(1 - e^(t_{i+1} - t_i)) */
        PFGM_TRY_GOTO(pfgm_ode_eval_zf(s, expf(t[i]), 0, s->k[0]), done);
        s->stats.attempts += 1;
        if (!heun || i == n - 1) {
            const double c[1] = {(double)dt};
            const float *k[1] = {s->k[0]};
            PFGM_TRY_GOTO(pfgm_op_ode_combine(be, s->B, s->D, s->y, NULL, 1, c, k, s->y, s->x32, s->N), done);
            continue;
        }
        const double cp[1] = {(double)dt};
        const float *kp[1] = {s->k[0]};
        PFGM_TRY_GOTO(pfgm_op_ode_combine(be, s->B, s->D, s->y, NULL, 1, cp, kp, NULL, s->x32, s->N), done);
        PFGM_TRY_GOTO(pfgm_ode_eval_zf(s, expf(t[i + 1]), 0, s->k[1]), done);
        const float dt2 = 1.0f - expf(t[i] - t[i + 1]);
        const double c[2] = {0.5 * (double)dt, 0.5 * (double)dt2};
        const float *k[2] = {s->k[0], s->k[1]};
        PFGM_TRY_GOTO(pfgm_op_ode_combine(be, s->B, s->D, s->y, NULL, 2, c, k, s->y, s->x32, s->N), done);
    }
done:
    return st;
}

pfgm_status pfgm_ode_solve(pfgm_ode_solver *s, float *x, pfgm_field_fn field, void *user, pfgm_ode_stats *stats) {
    if (!s || !x || !field) return pfgm_error(PFGM_ERR_INVALID_ARG, "ode solve: NULL solver, samples or field");
    pfgm_backend *be = s->be;
    s->field = field;
    s->user = user;
    memset(&s->stats, 0, sizeof s->stats);
    s->rows = s->B;
    PFGM_TRY(pfgm_op_ode_init_state(be, s->B, s->N, s->P, x, s->opt.z_max, s->y));
    PFGM_TRY(be->copy(be, s->x32, x, (size_t)s->B * (size_t)s->N * sizeof(float), PFGM_COPY_D2D));
    if (s->opt.method == PFGM_ODE_RK45)
        PFGM_TRY(pfgm_ode_rk45(s));
    else
        PFGM_TRY(solve_euler_heun(s));
    /* A non-finite field poisons the state silently in Euler/Heun (RK45 stops at its error
     * norm): check the final state (B sums to the host) before x is overwritten. */
    PFGM_TRY(pfgm_op_ode_sumsq(be, s->B, s->D, s->y, NULL, 0, NULL, NULL, s->y, NULL, 0.0, 1.0, s->row));
    for (int64_t b = 0; b < s->B; ++b)
        if (!isfinite(s->row[b]))
            return pfgm_error(PFGM_ERR_NUMERIC, "ode solve: sample %lld is not finite at z_min (the field returned "
                              "NaN or Inf)", (long long)b);
    /* x32 holds float32(x at z_min) after the last update (spec §1.10: no clamping). */
    PFGM_TRY(be->copy(be, x, s->x32, (size_t)s->B * (size_t)s->N * sizeof(float), PFGM_COPY_D2D));
    if (be->sync) PFGM_TRY(be->sync(be));
    if (stats) *stats = s->stats;
    return PFGM_OK;
}
