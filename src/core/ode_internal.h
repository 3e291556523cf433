/* Private to src/core/ode*.c: the solver's buffers and the shared field evaluation. */
#ifndef PFGM_CORE_ODE_INTERNAL_H
#define PFGM_CORE_ODE_INTERNAL_H

#include "pfgm/ode.h"

#define ODE_STAGES 7 /* Dormand-Prince: 6 stages + f(t+h, y_new) (FSAL) */

struct pfgm_ode_solver {
    pfgm_backend *be;
    pfgm_ode_options opt;
    int64_t B, N, P, D; /* D = N + P values per sample in the state */
    int64_t rows;       /* rows of the state that are integrated and evaluated: B, or in
                         * per-sample RK45 the active rows, kept as the prefix [0, rows) */
    /* backend memory */
    double *y, *y_new;  /* [B, D] state and candidate */
    float *k[ODE_STAGES]; /* [B, D] stages (float32: the drift is float32, spec §1.9a) */
    float *x32;         /* [B, N] network input (float32 cast of the state's x part) */
    float *v_x, *v_z;   /* [B, N], [B] network output */
    float *z;           /* [B] network height input */
    double *h;          /* [B] per-row step sizes */
    /* host memory */
    double *row;        /* [B] per-row sums of squares */
    double *t_row, *t_next, *h_abs, *t_new, *h_host, *d0, *d1; /* [B] per-sample controller */
    float *tgrid;       /* [steps + 1] Euler/Heun time grid */
    float *z_host;      /* [B] */
    unsigned char *rejected, *accept; /* [B] per position: rejected in this step, accepted in this attempt */
    int64_t *perm;      /* [B] per-sample RK45: position -> the caller's row */
    /* current solve */
    pfgm_field_fn field;
    void *user;
    pfgm_ode_stats stats;
};

/* Evaluates the field on the first s->rows rows of x32 with heights z_b = (float)exp(t_b)
 * and writes the drift into k [rows, N + p] (p = the state's z copies). t: host array of
 * rows times, or NULL to use t0 for every row (one fill, no upload). Counts one NFE,
 * rows sample evaluations and the rho guards. */
pfgm_status pfgm_ode_eval(pfgm_ode_solver *s, const double *t, double t0, int64_t p, float *k);

/* Same, with the float32 height given directly (Euler/Heun grid; every row). */
pfgm_status pfgm_ode_eval_zf(pfgm_ode_solver *s, float zf, int64_t p, float *k);

/* The RK45 solve (ode_rk45.c), batch-global or per-sample; x32 holds float(x) on entry
 * and float(x at z_min) on success. */
pfgm_status pfgm_ode_rk45(pfgm_ode_solver *s);

#endif
