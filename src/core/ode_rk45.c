/* RK45 for the PFGM backward ODE (spec §1.9a): Dormand-Prince 5(4) with the initial step,
 * step-size controller and RMS error norm of scipy.integrate.solve_ivp (scipy's
 * _ivp/rk.py and _ivp/common.py), so that the NFE matches the authors' (2 + 6 per attempt).
 * Batch-global mode integrates the whole batch as one vector (the authors' setting);
 * per-sample mode runs the same controller on each sample's row with its own t and h, on
 * the rows still integrating only (docs/numerics.md §6, "Per-sample steps"). */
#include <math.h>
#include <string.h>

#include "core/ode_internal.h"
#include "pfgm/ops.h"
#include "util/check.h"

/* Dormand-Prince tableau, as scipy's RK45 class. */
static const double DP_C[6] = {0.0, 1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0, 1.0};
static const double DP_A[6][5] = {
    {0.0, 0.0, 0.0, 0.0, 0.0},
    {1.0 / 5.0, 0.0, 0.0, 0.0, 0.0},
    {3.0 / 40.0, 9.0 / 40.0, 0.0, 0.0, 0.0},
    {44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0, 0.0, 0.0},
    {19372.0 / 6561.0, -25360.0 / 2187.0, 64448.0 / 6561.0, -212.0 / 729.0, 0.0},
    {9017.0 / 3168.0, -355.0 / 33.0, 46732.0 / 5247.0, 49.0 / 176.0, -5103.0 / 18656.0}};
static const double DP_B[6] = {35.0 / 384.0, 0.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0};
static const double DP_E[7] = {-71.0 / 57600.0,  0.0, 71.0 / 16695.0, -71.0 / 1920.0, 17253.0 / 339200.0,
                               -22.0 / 525.0,    1.0 / 40.0};

#define SAFETY 0.9
#define MIN_FACTOR 0.2
#define MAX_FACTOR 10.0
#define ERROR_EXPONENT (-1.0 / 5.0) /* -1 / (error_estimator_order + 1) */
#define DIRECTION (-1.0)            /* from ln z_max down to ln z_min */

/* scipy's _step_impl: min_step = 10 * |nextafter(t, direction * inf) - t|. */
static double min_step(double t) { return 10.0 * fabs(nextafter(t, DIRECTION * INFINITY) - t); }

static double step_factor_accept(double err, int rejected) {
    double f = err == 0.0 ? MAX_FACTOR : fmin(MAX_FACTOR, SAFETY * pow(err, ERROR_EXPONENT));
    return rejected ? fmin(1.0, f) : f;
}

static double step_factor_reject(double err) { return fmax(MIN_FACTOR, SAFETY * pow(err, ERROR_EXPONENT)); }

/* The six stage evaluations after k[0] = f and the candidate y_new, f_new = k[6]
 * (scipy's rk_step). t: per-row times (host) or NULL for the global time tg with step hg;
 * s->h holds the per-row steps on the backend. */
static pfgm_status rk_step(pfgm_ode_solver *s, const double *t, double tg, double hg) {
    pfgm_backend *be = s->be;
    for (int st = 1; st <= 6; ++st) {
        const float *k[6];
        for (int j = 0; j < st; ++j) k[j] = s->k[j];
        const double *coef = st < 6 ? DP_A[st] : DP_B;
        /* stage 6 is y_new itself: y + h (K^T B) */
        PFGM_TRY(pfgm_op_ode_combine(be, s->rows, s->D, s->y, s->h, st, coef, k, st < 6 ? NULL : s->y_new, s->x32,
                                     s->N));
        const double c = st < 6 ? DP_C[st] : 1.0;
        if (t) {
            for (int64_t b = 0; b < s->rows; ++b) s->t_new[b] = t[b] + c * s->h_host[b];
            PFGM_TRY(pfgm_ode_eval(s, s->t_new, 0.0, s->P, s->k[st]));
        } else {
            PFGM_TRY(pfgm_ode_eval(s, NULL, tg + c * hg, s->P, s->k[st]));
        }
    }
    return PFGM_OK;
}

static pfgm_status upload_h(pfgm_ode_solver *s) {
    return s->be->copy(s->be, s->h, s->h_host, (size_t)s->rows * sizeof(double), PFGM_COPY_H2D);
}

/* Error sums of squares per row: (h sum_j E_j K_j) / (atol + rtol max(|y|, |y_new|)). */
static pfgm_status error_rows(pfgm_ode_solver *s) {
    const float *k[ODE_STAGES];
    for (int j = 0; j < ODE_STAGES; ++j) k[j] = s->k[j];
    return pfgm_op_ode_sumsq(s->be, s->rows, s->D, NULL, s->h, ODE_STAGES, DP_E, k, s->y, s->y_new, s->opt.rtol,
                             s->opt.atol, s->row);
}

static void swap_state(pfgm_ode_solver *s) {
    double *ty = s->y;
    s->y = s->y_new;
    s->y_new = ty;
    float *tk = s->k[0];
    s->k[0] = s->k[6];
    s->k[6] = tk;
}

/* Hairer's initial step as scipy's select_initial_step, on the norms of `rows` rows
 * (the whole batch: rows = 0 means one norm over everything). Needs f0 in k[0]; uses k[1].
 * Writes the step(s) into h_abs. */
static pfgm_status initial_step(pfgm_ode_solver *s, double t0, double t_bound, int per_sample) {
    pfgm_backend *be = s->be;
    const double rtol = s->opt.rtol, atol = s->opt.atol, interval = fabs(t_bound - t0);
    const int64_t B = s->B, groups = per_sample ? B : 1;
    const double n = per_sample ? (double)s->D : (double)B * (double)s->D;
    const float *k0[1] = {s->k[0]};
    const double one[1] = {1.0};
    /* d0 = |y0 / scale|, d1 = |f0 / scale|, scale = atol + |y0| rtol */
    PFGM_TRY(pfgm_op_ode_sumsq(be, B, s->D, s->y, NULL, 0, NULL, NULL, s->y, NULL, rtol, atol, s->row));
    for (int64_t g = 0; g < groups; ++g) s->d0[g] = per_sample ? sqrt(s->row[g] / n) : 0.0;
    if (!per_sample) {
        double sum = 0.0;
        for (int64_t b = 0; b < B; ++b) sum += s->row[b];
        s->d0[0] = sqrt(sum / n);
    }
    PFGM_TRY(pfgm_op_ode_sumsq(be, B, s->D, NULL, NULL, 1, one, k0, s->y, NULL, rtol, atol, s->row));
    if (per_sample) {
        for (int64_t g = 0; g < B; ++g) s->d1[g] = sqrt(s->row[g] / n);
    } else {
        double sum = 0.0;
        for (int64_t b = 0; b < B; ++b) sum += s->row[b];
        s->d1[0] = sqrt(sum / n);
    }
    for (int64_t g = 0; g < groups; ++g) {
        double h0 = (s->d0[g] < 1e-5 || s->d1[g] < 1e-5) ? 1e-6 : 0.01 * s->d0[g] / s->d1[g];
        s->h_abs[g] = fmin(h0, interval); /* h0 stays in h_abs until h1 is known */
    }
    /* Euler probe y1 = y0 + h0 direction f0, f1 = f(t0 + h0 direction, y1) */
    for (int64_t b = 0; b < B; ++b) s->h_host[b] = s->h_abs[per_sample ? b : 0] * DIRECTION;
    if (per_sample) {
        PFGM_TRY(upload_h(s));
        PFGM_TRY(pfgm_op_ode_combine(be, B, s->D, s->y, s->h, 1, one, k0, NULL, s->x32, s->N));
        for (int64_t b = 0; b < B; ++b) s->t_new[b] = t0 + s->h_host[b];
        PFGM_TRY(pfgm_ode_eval(s, s->t_new, 0.0, s->P, s->k[1]));
    } else {
        const double c[1] = {s->h_host[0]};
        PFGM_TRY(pfgm_op_ode_combine(be, B, s->D, s->y, NULL, 1, c, k0, NULL, s->x32, s->N));
        PFGM_TRY(pfgm_ode_eval(s, NULL, t0 + s->h_host[0], s->P, s->k[1]));
    }
    /* d2 = |(f1 - f0) / scale| / h0 */
    const double pm[2] = {1.0, -1.0};
    const float *k10[2] = {s->k[1], s->k[0]};
    PFGM_TRY(pfgm_op_ode_sumsq(be, B, s->D, NULL, NULL, 2, pm, k10, s->y, NULL, rtol, atol, s->row));
    double total = 0.0;
    for (int64_t b = 0; b < B; ++b) total += s->row[b];
    for (int64_t g = 0; g < groups; ++g) {
        const double h0 = s->h_abs[g], d1 = s->d1[g];
        const double d2 = (per_sample ? sqrt(s->row[g] / n) : sqrt(total / n)) / h0;
        double h1;
        if (d1 <= 1e-15 && d2 <= 1e-15)
            h1 = fmax(1e-6, h0 * 1e-3);
        else
            h1 = pow(0.01 / fmax(d1, d2), 1.0 / 5.0); /* 1 / (error_estimator_order + 1) */
        s->h_abs[g] = fmin(fmin(100.0 * h0, h1), interval);
    }
    return PFGM_OK;
}

static pfgm_status too_many(pfgm_ode_solver *s, int64_t cap) {
    return pfgm_error(PFGM_ERR_NUMERIC, "ode RK45: more than %lld step attempts (NFE %lld); the field is too stiff "
                      "or not smooth", (long long)cap, (long long)s->stats.nfe);
}

static pfgm_status rk45_global(pfgm_ode_solver *s, double t0, double t_bound, int64_t cap) {
    const double n = (double)s->B * (double)s->D;
    double t = t0, h_abs = s->h_abs[0];
    while (t != t_bound) {
        const double hmin = min_step(t);
        if (h_abs < hmin) h_abs = hmin;
        int rejected = 0;
        double t_new, err;
        for (;;) {
            if (h_abs < hmin)
                return pfgm_error(PFGM_ERR_NUMERIC, "ode RK45: step size %g below the minimum at t = %g", h_abs, t);
            if (s->stats.attempts >= cap) return too_many(s, cap);
            s->stats.attempts += 1;
            t_new = t + h_abs * DIRECTION;
            if (DIRECTION * (t_new - t_bound) > 0) t_new = t_bound;
            const double h = t_new - t;
            h_abs = fabs(h);
            for (int64_t b = 0; b < s->B; ++b) s->h_host[b] = h;
            PFGM_TRY(upload_h(s));
            PFGM_TRY(rk_step(s, NULL, t, h));
            PFGM_TRY(error_rows(s));
            double sum = 0.0;
            for (int64_t b = 0; b < s->B; ++b) sum += s->row[b];
            err = sqrt(sum / n);
            if (!isfinite(err))
                return pfgm_error(PFGM_ERR_NUMERIC, "ode RK45: non-finite error norm at z = %g (the field returned "
                                  "NaN or Inf)", exp(t));
            if (err < 1.0) {
                h_abs *= step_factor_accept(err, rejected);
                break;
            }
            h_abs *= step_factor_reject(err);
            rejected = 1;
            s->stats.rejected += 1;
        }
        s->stats.accepted += 1;
        t = t_new;
        swap_state(s);
        if (DIRECTION * (t - t_bound) >= 0) break;
    }
    return PFGM_OK;
}

/* dst rows p (< n) where sel[p] is set <- the same rows of src (backend buffers of rows of
 * row_bytes): one copy per run of consecutive selected rows, so a step that accepts every
 * row costs one copy. */
static pfgm_status copy_selected_rows(pfgm_backend *be, void *dst, const void *src, size_t row_bytes, int64_t n,
                                      const unsigned char *sel) {
    for (int64_t p = 0; p < n;) {
        if (!sel[p]) {
            ++p;
            continue;
        }
        int64_t q = p + 1;
        while (q < n && sel[q]) ++q;
        PFGM_TRY(be->copy(be, (char *)dst + (size_t)p * row_bytes, (const char *)src + (size_t)p * row_bytes,
                          (size_t)(q - p) * row_bytes, PFGM_COPY_D2D));
        p = q;
    }
    return PFGM_OK;
}

/* Row `from` of buf (rows of row_bytes) to row `to`. */
static pfgm_status move_row(pfgm_backend *be, void *buf, size_t row_bytes, int64_t from, int64_t to) {
    return be->copy(be, (char *)buf + (size_t)to * row_bytes, (const char *)buf + (size_t)from * row_bytes,
                    row_bytes, PFGM_COPY_D2D);
}

/* The finished sample at position p leaves the active prefix [0, A): it trades places with
 * the last active position q = A - 1 (state rows swapped through the free row p of y_new,
 * the FSAL stage of q moved to p, the host scalars and perm swapped). */
static pfgm_status retire_row(pfgm_ode_solver *s, int64_t p, int64_t A) {
    pfgm_backend *be = s->be;
    const int64_t q = A - 1;
    if (p == q) return PFGM_OK;
    const size_t yb = (size_t)s->D * sizeof(double), kb = (size_t)s->D * sizeof(float);
    PFGM_TRY(be->copy(be, (char *)s->y_new + (size_t)p * yb, (char *)s->y + (size_t)p * yb, yb, PFGM_COPY_D2D));
    PFGM_TRY(move_row(be, s->y, yb, q, p));
    PFGM_TRY(be->copy(be, (char *)s->y + (size_t)q * yb, (char *)s->y_new + (size_t)p * yb, yb, PFGM_COPY_D2D));
    PFGM_TRY(move_row(be, s->k[0], kb, q, p)); /* a finished row needs no f */
    double td = s->t_row[p];
    s->t_row[p] = s->t_row[q];
    s->t_row[q] = td;
    td = s->h_abs[p];
    s->h_abs[p] = s->h_abs[q];
    s->h_abs[q] = td;
    unsigned char c = s->rejected[p];
    s->rejected[p] = s->rejected[q];
    s->rejected[q] = c;
    c = s->accept[p];
    s->accept[p] = s->accept[q];
    s->accept[q] = c;
    const int64_t i = s->perm[p];
    s->perm[p] = s->perm[q];
    s->perm[q] = i;
    return PFGM_OK;
}

/* y back into the caller's row order: y_new[perm[p]] <- y[p] (one copy per run of
 * consecutive targets), then the two buffers trade names. */
static pfgm_status unpermute(pfgm_ode_solver *s) {
    const size_t yb = (size_t)s->D * sizeof(double);
    for (int64_t p = 0; p < s->B;) {
        int64_t q = p + 1;
        while (q < s->B && s->perm[q] == s->perm[q - 1] + 1) ++q;
        PFGM_TRY(s->be->copy(s->be, (char *)s->y_new + (size_t)s->perm[p] * yb, (char *)s->y + (size_t)p * yb,
                             (size_t)(q - p) * yb, PFGM_COPY_D2D));
        p = q;
    }
    double *ty = s->y;
    s->y = s->y_new;
    s->y_new = ty;
    return PFGM_OK;
}

/* Per-sample step control: scipy's controller (the loop of rk45_global) run on each row
 * with its own t, h_abs, rejection flag and RMS error norm over its D values. The active
 * samples are the prefix [0, A) of the state; every attempt integrates and evaluates only
 * them (batch A), each at its own t; a sample that reaches t_bound leaves the prefix
 * (retire_row). With B = 1 the arithmetic is rk45_global's, operation for operation. */
static pfgm_status rk45_per_sample(pfgm_ode_solver *s, double t0, double t_bound, int64_t cap) {
    pfgm_backend *be = s->be;
    const int64_t B = s->B;
    const double n = (double)s->D;
    const size_t yb = (size_t)s->D * sizeof(double), kb = (size_t)s->D * sizeof(float);
    int64_t A = B;
    for (int64_t b = 0; b < B; ++b) {
        s->t_row[b] = t0;
        s->rejected[b] = 0;
        s->perm[b] = b;
    }
    while (A > 0) {
        s->rows = A;
        for (int64_t p = 0; p < A; ++p) {
            const double hmin = min_step(s->t_row[p]);
            if (!s->rejected[p] && s->h_abs[p] < hmin) s->h_abs[p] = hmin; /* a new step starts */
            if (s->h_abs[p] < hmin)
                return pfgm_error(PFGM_ERR_NUMERIC, "ode RK45: sample %lld step size %g below the minimum at t = %g",
                                  (long long)s->perm[p], s->h_abs[p], s->t_row[p]);
            double t_new = s->t_row[p] + s->h_abs[p] * DIRECTION;
            if (DIRECTION * (t_new - t_bound) > 0) t_new = t_bound;
            s->t_next[p] = t_new;
            s->h_host[p] = t_new - s->t_row[p];
            s->h_abs[p] = fabs(s->h_host[p]);
        }
        if (s->stats.attempts >= cap) return too_many(s, cap);
        s->stats.attempts += 1;
        PFGM_TRY(upload_h(s));
        PFGM_TRY(rk_step(s, s->t_row, 0.0, 0.0));
        PFGM_TRY(error_rows(s));
        for (int64_t p = 0; p < A; ++p) {
            const double err = sqrt(s->row[p] / n);
            if (!isfinite(err))
                return pfgm_error(PFGM_ERR_NUMERIC, "ode RK45: sample %lld non-finite error norm at z = %g",
                                  (long long)s->perm[p], exp(s->t_row[p]));
            s->accept[p] = err < 1.0;
            if (s->accept[p]) {
                s->h_abs[p] *= step_factor_accept(err, s->rejected[p]);
                s->rejected[p] = 0;
                s->t_row[p] = s->t_next[p];
                s->stats.accepted += 1;
            } else {
                s->h_abs[p] *= step_factor_reject(err);
                s->rejected[p] = 1;
                s->stats.rejected += 1;
            }
        }
        /* accepted rows: y <- y_new, f <- f_new */
        PFGM_TRY(copy_selected_rows(be, s->y, s->y_new, yb, A, s->accept));
        PFGM_TRY(copy_selected_rows(be, s->k[0], s->k[6], kb, A, s->accept));
        for (int64_t p = 0; p < A;) {
            if (s->accept[p] && DIRECTION * (s->t_row[p] - t_bound) >= 0) {
                PFGM_TRY(retire_row(s, p, A));
                --A; /* position p now holds the former last row: look at it again */
            } else {
                ++p;
            }
        }
    }
    s->rows = B;
    return unpermute(s);
}

pfgm_status pfgm_ode_rk45(pfgm_ode_solver *s) {
    const double t0 = log(s->opt.z_max), t_bound = log(s->opt.z_min);
    const int64_t cap = s->opt.max_attempts > 0 ? s->opt.max_attempts : 100000;
    /* scipy raises rtol below 100 eps to 100 eps (validate_tol) */
    if (s->opt.rtol < 100.0 * 2.220446049250313e-16) s->opt.rtol = 100.0 * 2.220446049250313e-16;
    PFGM_TRY(pfgm_ode_eval(s, NULL, t0, s->P, s->k[0])); /* f0 = f(t0, y0) */
    PFGM_TRY(initial_step(s, t0, t_bound, s->opt.per_sample_step));
    if (s->opt.per_sample_step)
        PFGM_TRY(rk45_per_sample(s, t0, t_bound, cap));
    else
        PFGM_TRY(rk45_global(s, t0, t_bound, cap));
    /* x32 = float32(x part of the final state) */
    return pfgm_op_ode_combine(s->be, s->B, s->D, s->y, NULL, 0, NULL, NULL, NULL, s->x32, s->N);
}
