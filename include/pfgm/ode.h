/* The backward ODE of PFGM sampling (spec §1.8-1.9; paper §3.3 and Appendix B.2):
 * dx/dz = v_x / v_z, integrated in t = ln z from ln z_max down to ln z_min, with the drift
 *   dx/dt = z v_x / (v_z + 1e-5)
 * and the z_exp substitution of v_z below sampling.z_exp (Appendix B.2.3). Solvers:
 *   forward Euler and Heun on the float32 log-spaced grid of the authors (§1.9b, c): Euler
 *   and Heun in z on a log grid; NFE = steps and 2 steps - 1;
 *   RK45 (Dormand-Prince 5(4)) with scipy.integrate.solve_ivp's initial step, controller
 *   and RMS error norm (§1.9a), on the authors' state: per sample the N values of x then
 *   z_max replicated P = H*W times (the (B, C+1, H, W) tensor flattened), float64, one
 *   step size for the whole batch; NFE = 2 + 6 * attempts. The per-sample mode
 *   (sampling.rk45_step_control: per_sample) runs the same controller on each sample's
 *   own state, t, step size and RMS error norm: each batched network call evaluates the
 *   samples still integrating, each at its own z, and a sample that reaches z_min leaves
 *   the batch. Its cost is the sample evaluations (stats.sample_evals), not the batched
 *   calls, and it does not reproduce the authors' NFE (spec §3.6).
 * The network is a callback; the state and all stages stay in backend memory, and only
 * scalars (z, step sizes, per-sample error norms) cross to the host per evaluation.
 * Guards and precision: docs/numerics.md. */
#ifndef PFGM_ODE_H
#define PFGM_ODE_H

#include <stdint.h>

#include "pfgm/backend.h"
#include "pfgm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The network (or any normalized field): for the B points x [B, N] at heights z [B]
 * (backend memory, z > 0), writes the predicted normalized field v_x [B, N] and v_z [B]
 * (backend memory; spec §1.6: v_z is the spatial mean of the extra channel). Each row's
 * output must depend on that row's (x, z) alone: with per-sample step control B is the
 * number of samples still integrating and row b is not the caller's sample b. A non-OK
 * status stops the solver and is returned unchanged. */
typedef pfgm_status (*pfgm_field_fn)(void *user, int64_t B, const float *x, const float *z, float *v_x,
                                     float *v_z);

typedef enum { PFGM_ODE_EULER = 0, PFGM_ODE_HEUN = 1, PFGM_ODE_RK45 = 2 } pfgm_ode_method;

/* Solver options under the authors' config names. */
typedef struct pfgm_ode_options {
    pfgm_ode_method method; /* sampling.ode_solver: rk45 (default), forward_euler, improved_euler */
    double z_max;           /* sampling.z_max: start plane (40 CIFAR) */
    double z_min;           /* sampling.z_min: end point eps (1e-3) */
    double gamma;           /* training.gamma (5); 0 switches the z_exp substitution off */
    double z_exp;           /* sampling.z_exp (5 CIFAR, 1 CelebA, 0.1 bedroom) */
    int64_t steps;          /* sampling.N: Euler/Heun steps (100) */
    double rtol, atol;      /* RK45 tolerances (1e-4, 1e-4: the code defaults) */
    int64_t z_replicas;     /* P: copies of z in the RK45 state, H*W as the authors (>= 1) */
    int per_sample_step;    /* RK45: 1 = per-sample step control; 0 = batch-global (the authors') */
    int64_t max_attempts;   /* RK45: fail after this many step attempts (0: 100000) */
} pfgm_ode_options;

/* The CIFAR-10 defaults: RK45, z_max 40, z_min 1e-3, gamma 5, z_exp 5, steps 100,
 * rtol = atol = 1e-4, z_replicas 1024 (32 x 32), batch-global step. */
pfgm_ode_options pfgm_ode_options_default(void);

/* What a solve did. */
typedef struct pfgm_ode_stats {
    int64_t nfe;       /* network evaluations (batched calls of the field callback) */
    int64_t sample_evals; /* samples evaluated, summed over the calls: nfe * B, or fewer in
                           * per-sample mode; network evaluations per image = sample_evals / B */
    int64_t attempts;  /* RK45 step attempts (batched), Euler/Heun steps */
    int64_t accepted;  /* RK45 accepted steps (per-sample mode: summed over samples) */
    int64_t rejected;  /* RK45 rejected steps (per-sample mode: summed over samples) */
    int64_t rho_guard; /* rows whose rho = |v_x|/sqrt(N) was within 4 ulp of the singular
                        * rho = 1 (v_z = -0 there; summed over NFE) */
} pfgm_ode_stats;

/* The drift of spec §1.8 on backend buffers, float32 as the authors' code: v_x [B, N],
 * v_z [B], z [B] -> k [B, N+P] (x drift, then z repeated P times: the drift of the state's
 * z channel), v_z_used [B] (the v_z applied after the z_exp rule; may be NULL), *guards
 * (rows at the singular rho = 1, |1 - rho| <= 4 DBL_EPSILON, given v_z = -0; may be NULL).
 * The substitution follows the authors' methods.py::Poisson.ode for every other rho,
 * rho > 1 included (docs/numerics.md §6). Errors: PFGM_ERR_INVALID_ARG for
 * B or N <= 0, P < 0, gamma < 0 or NULL buffers; PFGM_ERR_UNSUPPORTED without the op. */
pfgm_status pfgm_ode_drift(pfgm_backend *be, int64_t B, int64_t N, int64_t P, const float *z, double gamma,
                           double z_exp, const float *v_x, const float *v_z, float *k, float *v_z_used,
                           int64_t *guards);

/* The authors' time grid, torch.linspace(ln z_max, ln z_min, steps + 1) in float32
 * (symmetric evaluation from both ends): t[steps + 1] on the host.
 * Errors: PFGM_ERR_INVALID_ARG for steps < 1 or 0 < z_min < z_max violated. */
pfgm_status pfgm_ode_time_grid(int64_t steps, double z_max, double z_min, float *t);

typedef struct pfgm_ode_solver pfgm_ode_solver;

/* Allocates every buffer a solve of B samples of dimension N needs (backend: state,
 * stages, network input/output; host: per-sample scalars), so that solves allocate
 * nothing. Errors: PFGM_ERR_INVALID_ARG for B or N <= 0, z_min <= 0, z_min >= z_max,
 * rtol or atol <= 0, steps < 1 (Euler/Heun), z_replicas < 1 (RK45), gamma < 0, an unknown
 * method or a non-finite option; PFGM_ERR_NOMEM; PFGM_ERR_UNSUPPORTED when the backend
 * lacks the ODE ops. */
pfgm_status pfgm_ode_create(pfgm_backend *be, int64_t B, int64_t N, const pfgm_ode_options *opt,
                            pfgm_ode_solver **out);

/* Integrates x [B, N] (backend memory; in: samples on the plane z = z_max, e.g. from
 * pfgm_prior_sample; out: the samples at z = z_min, the z channel dropped, no clamping,
 * spec §1.10) backwards through the field. stats may be NULL.
 * Errors: PFGM_ERR_INVALID_ARG for NULL arguments; PFGM_ERR_NUMERIC when the field
 * returns non-finite values (RK45: a non-finite error norm), the step size falls below
 * scipy's minimum (10 ulp of t), or max_attempts is exceeded; the callback's status; the
 * backend's errors. On error x is unchanged. */
pfgm_status pfgm_ode_solve(pfgm_ode_solver *s, float *x, pfgm_field_fn field, void *user, pfgm_ode_stats *stats);

/* Releases the solver's buffers (NULL is a no-op). */
void pfgm_ode_destroy(pfgm_ode_solver *s);

#ifdef __cplusplus
}
#endif
#endif /* PFGM_ODE_H */
