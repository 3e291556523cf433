/* The CUDA backend's PFGM math ops (backend.h "PFGM math" group, src/backend/cuda/
 * cuda_math.cu) against the cpu-reference backend on the same inputs, op by op, and the
 * field targets and ODE drift on the GPU against the authors' vector file (the checker of
 * tests/field_vectors_check.h). Label gpu: exits 77 (SKIPPED) when pfgm was built without
 * CUDA or no device is visible.
 *
 * Tolerances (each comparison prints its max error, the fraction of the tolerance used and
 * the number of elements that are not bit-equal). The kernels perform the CPU's float and
 * double operations in the CPU's order; what may differ is
 *   (a) double-precision libm: the device's log/exp/pow/sin/cos are within 1-2 ulp of a
 *       double, not always the host's bits, so a float rounded from them may differ by one
 *       float ulp (2^-24 relative ~ 6e-8) in rare cases;
 *   (b) the order of row sums (a block tree instead of a sequential loop): a double sum of
 *       n terms differs by ~n 2^-53 relative, far below a float ulp, but it can still flip
 *       the rounding of a float that depends on it by one ulp.
 * So a float result that depends on (a) or (b) through a few roundings is allowed four
 * float ulps (ULP4 = 4 x 2^-23 relative, the worst-case ulp) unless stated; a layout or
 * formula error is orders of magnitude larger. Results that depend on neither
 * (elementwise double arithmetic: ode_init_state, ode_combine, the loss gradient) must be
 * the same bits; double sums (loss, ode_sumsq) are allowed 1e-12 relative. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "pfgm/backend.h"
#include "pfgm/field.h"
#include "pfgm/ops.h"
#include "pfgm/prior.h"

#include "field_vectors_check.h"
#include "cuda_compare.h"

/* Four float ulps, relative (2^-23 each: the largest relative ulp of a float). */
#define ULP4 4.8e-7

static pfgm_backend *gpu_, *ref_;

/* ---- perturbation kernel ------------------------------------------------------------------ */

static void check_perturb(int64_t B, int64_t N, int restrict_M, uint32_t rank, uint64_t step) {
    const int64_t M = 291;
    const double tau = 0.03, sigma_end = restrict_M ? 0.01 : 0.5;
    float *x = cc_malloc(sizeof(float) * (size_t)(B * N));
    cc_randu(x, B * N, 1, -1.0f, 1.0f);
    float *out0 = cc_malloc(sizeof(float) * (size_t)(B * (N + 1))), *out1 = cc_malloc(sizeof(float) * (size_t)(B * (N + 1)));
    float *xn0 = cc_malloc(sizeof(float) * (size_t)(B * N)), *xn1 = cc_malloc(sizeof(float) * (size_t)(B * N));
    float *zn0 = cc_malloc(sizeof(float) * (size_t)B), *zn1 = cc_malloc(sizeof(float) * (size_t)B);
    pfgm_rng r = {.seed = 2024, .rank = rank, .stream = PFGM_STREAM_PERTURB, .step = step};
    assert_int_equal(ref_->perturb(ref_, &r, B, N, x, M, tau, sigma_end, restrict_M, out0, xn0, zn0), PFGM_OK);
    float *dx = cc_upload(gpu_, x, sizeof(float) * (size_t)(B * N));
    float *dout = cc_upload(gpu_, NULL, sizeof(float) * (size_t)(B * (N + 1)));
    float *dxn = cc_upload(gpu_, NULL, sizeof(float) * (size_t)(B * N)), *dzn = cc_upload(gpu_, NULL, sizeof(float) * (size_t)B);
    assert_int_equal(gpu_->perturb(gpu_, &r, B, N, dx, M, tau, sigma_end, restrict_M, dout, dxn, dzn), PFGM_OK);
    cc_download(gpu_, out1, dout, sizeof(float) * (size_t)(B * (N + 1)));
    cc_download(gpu_, xn1, dxn, sizeof(float) * (size_t)(B * N));
    cc_download(gpu_, zn1, dzn, sizeof(float) * (size_t)B);
    /* x' = x + (float)(scale * u): the perturbation term carries the ulp-level differences of
     * the normal u, of (1+tau)^m rounded to float and of its own rounding (ULP4 of |x' - x|),
     * the sum one float rounding of x' (2^-23 |x'|); z = (float)(z0 * mult) likewise. */
    int64_t bad = 0, differ = 0;
    double worst = 0.0;
    for (int64_t k = 0; k < B; ++k) {
        for (int64_t j = 0; j <= N; ++j) {
            const int64_t i = k * (N + 1) + j;
            double want = out0[i], got = out1[i];
            double base = j < N ? (double)x[k * N + j] : 0.0;
            double tol = ULP4 * fabs(want - base) + 1.2e-7 * fabs(want) + 1e-30;
            double e = fabs(got - want);
            if (memcmp(&out0[i], &out1[i], sizeof(float)) != 0) ++differ;
            if (!(e <= tol)) {
                if (bad < 5) printf("  perturb: sample %lld column %lld: got %.9g want %.9g\n", (long long)k, (long long)j, got, want);
                ++bad;
            }
            if (tol > 0 && e / tol > worst) worst = e / tol;
        }
        /* the network inputs are copies of the GPU's own rows */
        assert_memory_equal(xn1 + k * N, out1 + k * (N + 1), sizeof(float) * (size_t)N);
        float zc = out1[k * (N + 1) + N] > 1e-10f ? out1[k * (N + 1) + N] : 1e-10f;
        assert_memory_equal(&zn1[k], &zc, sizeof(float));
    }
    printf("perturb B=%lld N=%lld restrict_M=%d    max %.1f%% of tol, not bit-equal %lld of %lld%s\n", (long long)B,
           (long long)N, restrict_M, 100.0 * worst, (long long)differ, (long long)(B * (N + 1)), bad ? "  FAIL" : "");
    assert_int_equal(bad, 0);
    /* NULL network outputs are optional */
    assert_int_equal(gpu_->perturb(gpu_, &r, B, N, dx, M, tau, sigma_end, restrict_M, dout, NULL, NULL), PFGM_OK);
    assert_int_equal(pfgm_op_perturb(gpu_, &r, B, 0, dx, M, tau, sigma_end, restrict_M, dout, NULL, NULL),
                     PFGM_ERR_INVALID_ARG);
    gpu_->free(gpu_, dx);
    gpu_->free(gpu_, dout);
    gpu_->free(gpu_, dxn);
    gpu_->free(gpu_, dzn);
    free(x);
    free(out0);
    free(out1);
    free(xn0);
    free(xn1);
    free(zn0);
    free(zn1);
}

static void test_perturb(void **state) {
    (void)state;
    check_perturb(37, 3072, 1, 0, 5);      /* CIFAR-10 size, restrict_M as the authors */
    check_perturb(16, 7, 0, 3, 1ull << 33); /* odd N (window padding), no restrict_M, large step */
    check_perturb(70001, 2, 1, 1, 9);      /* more samples than the row grid (grid-stride loop) */
}

/* ---- field weights and target ---------------------------------------------------------- */

/* a2, b2, gc of B perturbed points against L charges on the CPU reference (the inputs both
 * backends' field_weights then get). Row 0 of the perturbed points sits on charge 0. */
static void field_inputs(int64_t B, int64_t L, int64_t N, float *pert, float *charges, float *a2, float *b2, float *gc) {
    cc_randu(charges, L * N, 2, -1.0f, 1.0f);
    pfgm_rng r = {.seed = 7, .rank = 0, .stream = PFGM_STREAM_PERTURB, .step = 3};
    assert_int_equal(ref_->perturb(ref_, &r, B, N, charges, 291, 0.03, 0.01, 1, pert, NULL, NULL), PFGM_OK);
    memcpy(pert, charges, sizeof(float) * (size_t)N);
    pert[N] = 0.0f;
    assert_int_equal(ref_->row_sumsq(ref_, B, N + 1, pert, N + 1, a2), PFGM_OK);
    assert_int_equal(ref_->row_sumsq(ref_, L, N, charges, N, b2), PFGM_OK);
    assert_int_equal(ref_->gemm(ref_, 0, 1, B, L, N, 1.0f, pert, N + 1, charges, N, 0.0f, gc, L), PFGM_OK);
}

static void check_field_weights(int64_t B, int64_t L, int64_t N) {
    float *pert = cc_malloc(sizeof(float) * (size_t)(B * (N + 1))), *charges = cc_malloc(sizeof(float) * (size_t)(L * N));
    float *a2 = cc_malloc(sizeof(float) * (size_t)B), *b2 = cc_malloc(sizeof(float) * (size_t)L);
    float *gc0 = cc_malloc(sizeof(float) * (size_t)(B * L)), *gc1 = cc_malloc(sizeof(float) * (size_t)(B * L));
    float *cs0 = cc_malloc(sizeof(float) * (size_t)B), *cs1 = cc_malloc(sizeof(float) * (size_t)B);
    field_inputs(B, L, N, pert, charges, a2, b2, gc0);
    float *da2 = cc_upload(gpu_, a2, sizeof(float) * (size_t)B), *db2 = cc_upload(gpu_, b2, sizeof(float) * (size_t)L);
    float *dgc = cc_upload(gpu_, gc0, sizeof(float) * (size_t)(B * L)), *dcs = cc_upload(gpu_, NULL, sizeof(float) * (size_t)B);
    const double h = 0.5 * (double)(N + 1);
    assert_int_equal(ref_->field_weights(ref_, B, L, h, a2, b2, gc0, cs0), PFGM_OK);
    assert_int_equal(gpu_->field_weights(gpu_, B, L, h, da2, db2, dgc, dcs), PFGM_OK);
    cc_download(gpu_, gc1, dgc, sizeof(float) * (size_t)(B * L));
    cc_download(gpu_, cs1, dcs, sizeof(float) * (size_t)B);
    char what[64];
    /* weights: exp/log in double (a) and the order of the normalising sum (b); weights
     * below 1e-37 are within a subnormal's ulp and weigh nothing against the sum >= 1 */
    snprintf(what, sizeof what, "field_weights c  B=%lld L=%lld N=%lld", (long long)B, (long long)L, (long long)N);
    assert_int_equal(cc_compare_f32(what, gc0, gc1, B * L, ULP4, 1e-37), 0);
    snprintf(what, sizeof what, "field_weights csum");
    assert_int_equal(cc_compare_f32(what, cs0, cs1, B, 1e-6, 0.0), 0);

    /* a non-finite norm: PFGM_ERR_NUMERIC naming the first one, and nothing written */
    float bad = NAN;
    assert_int_equal(pfgm_backend_upload(gpu_, dgc, gc0, B * L), PFGM_OK);
    assert_int_equal(pfgm_backend_upload(gpu_, da2 + (B > 3 ? 3 : 0), &bad, 1), PFGM_OK);
    assert_int_equal(gpu_->field_weights(gpu_, B, L, h, da2, db2, dgc, dcs), PFGM_ERR_NUMERIC);
    snprintf(what, sizeof what, "perturbed point %d has a non-finite norm", B > 3 ? 3 : 0);
    assert_non_null(strstr(pfgm_error_message(), what));
    assert_int_equal(pfgm_backend_upload(gpu_, da2, a2, B), PFGM_OK);
    bad = INFINITY;
    assert_int_equal(pfgm_backend_upload(gpu_, db2 + (L - 1), &bad, 1), PFGM_OK);
    assert_int_equal(gpu_->field_weights(gpu_, B, L, h, da2, db2, dgc, dcs), PFGM_ERR_NUMERIC);
    snprintf(what, sizeof what, "charge %lld has a non-finite norm", (long long)(L - 1));
    assert_non_null(strstr(pfgm_error_message(), what));
    cc_download(gpu_, gc1, dgc, sizeof(float) * (size_t)(B * L));
    assert_memory_equal(gc1, gc0, sizeof(float) * (size_t)(B * L));
    assert_int_equal(pfgm_op_field_weights(gpu_, B, 0, h, da2, db2, dgc, dcs), PFGM_ERR_INVALID_ARG);

    gpu_->free(gpu_, da2);
    gpu_->free(gpu_, db2);
    gpu_->free(gpu_, dgc);
    gpu_->free(gpu_, dcs);
    free(pert);
    free(charges);
    free(a2);
    free(b2);
    free(gc0);
    free(gc1);
    free(cs0);
    free(cs1);
}

static void test_field_weights(void **state) {
    (void)state;
    check_field_weights(64, 512, 3072);
    check_field_weights(5, 3000, 2); /* rows longer than a block, toy N */
}

static void test_field_finish(void **state) {
    (void)state;
    const int64_t B = 41, N = 3072;
    float *e0 = cc_malloc(sizeof(float) * (size_t)(B * (N + 1))), *e1 = cc_malloc(sizeof(float) * (size_t)(B * (N + 1)));
    float *pert = cc_malloc(sizeof(float) * (size_t)(B * (N + 1))), *cs = cc_malloc(sizeof(float) * (size_t)B);
    cc_randn(e0, B * (N + 1), 3, 0.3f);
    cc_randn(pert, B * (N + 1), 4, 1.0f);
    cc_randu(cs, B, 5, 0.5f, 1.5f);
    /* row 1: C.Y = 0, csum = 0: |E| = 0, so with gamma = 0 the target is 0 (not NaN) */
    memset(e0 + (N + 1), 0, sizeof(float) * (size_t)(N + 1));
    cs[1] = 0.0f;
    for (int g = 0; g < 2; ++g) {
        const double gamma = g ? 5.0 : 0.0;
        float *de = cc_upload(gpu_, e0, sizeof(float) * (size_t)(B * (N + 1)));
        float *dp = cc_upload(gpu_, pert, sizeof(float) * (size_t)(B * (N + 1))), *dc = cc_upload(gpu_, cs, sizeof(float) * (size_t)B);
        memcpy(e1, e0, sizeof(float) * (size_t)(B * (N + 1)));
        assert_int_equal(ref_->field_finish(ref_, B, N, gamma, cs, pert, e1), PFGM_OK);
        assert_int_equal(gpu_->field_finish(gpu_, B, N, gamma, dc, dp, de), PFGM_OK);
        float *got = cc_malloc(sizeof(float) * (size_t)(B * (N + 1)));
        cc_download(gpu_, got, de, sizeof(float) * (size_t)(B * (N + 1)));
        /* E is the same double per element; only 1/(|E| + gamma) depends on a sum (b) */
        assert_int_equal(cc_compare_f32(gamma > 0 ? "field_finish gamma=5" : "field_finish gamma=0", e1, got,
                                        B * (N + 1), ULP4, 0.0),
                         0);
        for (int64_t j = 0; j <= N; ++j) assert_true(got[(N + 1) + j] == 0.0f);
        gpu_->free(gpu_, de);
        gpu_->free(gpu_, dp);
        gpu_->free(gpu_, dc);
        free(got);
    }
    free(e0);
    free(e1);
    free(pert);
    free(cs);
}

/* pfgm_field_targets end to end (row norms, two cuBLAS GEMMs, weights, finish) against the
 * CPU reference on the same points: the GEMMs round differently, so the budget is the
 * vector file's (1e-5 sqrt(N) per component, tests/field_vectors_check.h). */
static void test_field_targets_end_to_end(void **state) {
    (void)state;
    const int64_t B = 64, L = 256, N = 3072;
    float *pert = cc_malloc(sizeof(float) * (size_t)(B * (N + 1))), *charges = cc_malloc(sizeof(float) * (size_t)(L * N));
    float *a2 = cc_malloc(sizeof(float) * (size_t)B), *b2 = cc_malloc(sizeof(float) * (size_t)L);
    float *gc = cc_malloc(sizeof(float) * (size_t)(B * L));
    field_inputs(B, L, N, pert, charges, a2, b2, gc);
    size_t wsb = pfgm_field_workspace_bytes(B, L);
    void *ws0 = cc_malloc(wsb), *ws1 = cc_upload(gpu_, NULL, wsb);
    float *t0 = cc_malloc(sizeof(float) * (size_t)(B * (N + 1))), *t1 = cc_malloc(sizeof(float) * (size_t)(B * (N + 1)));
    float *dp = cc_upload(gpu_, pert, sizeof(float) * (size_t)(B * (N + 1))), *dc = cc_upload(gpu_, charges, sizeof(float) * (size_t)(L * N));
    float *dt = cc_upload(gpu_, NULL, sizeof(float) * (size_t)(B * (N + 1)));
    assert_int_equal(pfgm_field_targets(ref_, B, L, N, pert, charges, 1.0, ws0, wsb, t0), PFGM_OK);
    assert_int_equal(pfgm_field_targets(gpu_, B, L, N, dp, dc, 1.0, ws1, wsb, dt), PFGM_OK);
    cc_download(gpu_, t1, dt, sizeof(float) * (size_t)(B * (N + 1)));
    assert_int_equal(cc_compare_f32("field targets (GEMM path)", t0, t1, B * (N + 1), 0.0, 1e-5 * sqrt((double)N)), 0);
    gpu_->free(gpu_, ws1);
    gpu_->free(gpu_, dp);
    gpu_->free(gpu_, dc);
    gpu_->free(gpu_, dt);
    free(ws0);
    free(pert);
    free(charges);
    free(a2);
    free(b2);
    free(gc);
    free(t0);
    free(t1);
}

/* The authors' vector file on the GPU: targets and drift groups, the same checker and
 * tolerances as the CPU backends' test (field_vectors). */
static void test_vector_file(void **state) {
    (void)state;
    char path[4096];
    fv_default_path(path, sizeof path);
    printf("vector file %s\n", path);
    const char *const names[] = {"cuda"};
    assert_int_equal(fv_check_file(path, names, 1), 0);
}

/* Drift vectors with rho above 1 (the authors' unguarded formula) on the GPU: the same
 * checker and tolerance as field_vectors' test_rho_above_one_vectors. */
static void test_rho_vector_file(void **state) {
    (void)state;
    char path[4096];
    fv_rho_fixture_path(path, sizeof path);
    printf("vector file %s\n", path);
    const char *const names[] = {"cuda"};
    assert_int_equal(fv_check_file(path, names, 1), 0);
}

/* ---- loss ---------------------------------------------------------------------------------- */

static void check_loss(int64_t B, int64_t D, int reduce_mean) {
    float *p = cc_malloc(sizeof(float) * (size_t)(B * D)), *t = cc_malloc(sizeof(float) * (size_t)(B * D));
    float *g0 = cc_malloc(sizeof(float) * (size_t)(B * D)), *g1 = cc_malloc(sizeof(float) * (size_t)(B * D));
    cc_randn(p, B * D, 6, 1.0f);
    cc_randn(t, B * D, 7, 1.0f);
    float *dp = cc_upload(gpu_, p, sizeof(float) * (size_t)(B * D)), *dt = cc_upload(gpu_, t, sizeof(float) * (size_t)(B * D));
    float *dg = cc_upload(gpu_, NULL, sizeof(float) * (size_t)(B * D));
    /* p and the gradients hold the network's two outputs back to back: x [B, N], then z [B] */
    const int64_t N = D - 1;
    double l0 = 0, l1 = 0, l2 = 0;
    assert_int_equal(ref_->loss_mse(ref_, B, N, p, p + B * N, t, reduce_mean, g0, g0 + B * N, &l0), PFGM_OK);
    assert_int_equal(gpu_->loss_mse(gpu_, B, N, dp, dp + B * N, dt, reduce_mean, dg, dg + B * N, &l1), PFGM_OK);
    assert_int_equal(gpu_->loss_mse(gpu_, B, N, dp, dp + B * N, dt, reduce_mean, NULL, NULL, &l2), PFGM_OK);
    cc_download(gpu_, g1, dg, sizeof(float) * (size_t)(B * D));
    char what[64];
    snprintf(what, sizeof what, "loss_mse B=%lld D=%lld mean=%d", (long long)B, (long long)D, reduce_mean);
    assert_int_equal(cc_compare_f64(what, &l0, &l1, 1, 1e-12, 0.0), 0);
    assert_memory_equal(&l1, &l2, sizeof(double)); /* the same launch shape: the same bits */
    /* the gradient is elementwise double arithmetic rounded once: the same bits */
    assert_int_equal(cc_compare_f32("loss_mse gradient", g0, g1, B * D, 0.0, 0.0), 0);
    assert_int_equal(pfgm_op_loss_mse(gpu_, 0, N, dp, dp, dt, reduce_mean, dg, dg, &l1), PFGM_ERR_INVALID_ARG);
    gpu_->free(gpu_, dp);
    gpu_->free(gpu_, dt);
    gpu_->free(gpu_, dg);
    free(p);
    free(t);
    free(g0);
    free(g1);
}

static void test_loss(void **state) {
    (void)state;
    check_loss(128, 3073, 0);
    check_loss(3001, 5, 1); /* more rows than the partials scratch: the grid-stride loop */
}

/* ---- prior directions ------------------------------------------------------------------- */

static void check_sphere(int64_t B, int64_t N, uint64_t offset, uint64_t stride) {
    const int64_t ldx = N + 3;
    double *radii = cc_malloc(sizeof(double) * (size_t)B);
    for (int64_t k = 0; k < B; ++k) radii[k] = 1.0 + 37.5 * (double)k;
    float *x0 = cc_malloc(sizeof(float) * (size_t)(B * ldx)), *x1 = cc_malloc(sizeof(float) * (size_t)(B * ldx));
    for (int64_t i = 0; i < B * ldx; ++i) x0[i] = -7.0f; /* padding columns must stay untouched */
    float *dx = cc_upload(gpu_, x0, sizeof(float) * (size_t)(B * ldx));
    double *dr = cc_upload(gpu_, radii, sizeof(double) * (size_t)B);
    pfgm_rng r = {.seed = 99, .rank = 1, .stream = PFGM_STREAM_PRIOR, .step = 12};
    assert_int_equal(ref_->sphere_points(ref_, &r, offset, stride, B, N, radii, x0, ldx), PFGM_OK);
    assert_int_equal(gpu_->sphere_points(gpu_, &r, offset, stride, B, N, dr, dx, ldx), PFGM_OK);
    cc_download(gpu_, x1, dx, sizeof(float) * (size_t)(B * ldx));
    char what[80];
    /* normals (a) and the norm (b), then one product rounded to float */
    snprintf(what, sizeof what, "sphere_points B=%lld N=%lld off=%llu", (long long)B, (long long)N,
             (unsigned long long)offset);
    assert_int_equal(cc_compare_f32(what, x0, x1, B * ldx, ULP4, 0.0), 0);
    assert_int_equal(pfgm_op_sphere_points(gpu_, &r, offset, (uint64_t)N - 1, B, N, dr, dx, ldx), PFGM_ERR_INVALID_ARG);
    gpu_->free(gpu_, dx);
    gpu_->free(gpu_, dr);
    free(radii);
    free(x0);
    free(x1);
}

static void test_sphere_points(void **state) {
    (void)state;
    check_sphere(19, 3072, 0, PFGM_PRIOR_WINDOW);
    check_sphere(23, 7, 3, 13); /* windows that start inside a Philox block */
}

/* ---- backward ODE ------------------------------------------------------------------------- */

static void check_drift(int64_t B, int64_t N, int64_t P, double gamma) {
    const double z_exp = 1.0;
    float *vx = cc_malloc(sizeof(float) * (size_t)(B * N)), *vz = cc_malloc(sizeof(float) * (size_t)B);
    float *z = cc_malloc(sizeof(float) * (size_t)B);
    cc_randu(vx, B * N, 8, -1.0f, 1.0f); /* |v_x|/sqrt(N) ~ 0.58 */
    cc_randu(vz, B, 9, -4.0f, -0.5f);
    cc_randu(z, B, 10, 0.01f, 2.0f); /* rows on both sides of z_exp */
    for (int64_t j = 0; j < N; ++j) {
        vx[j] = 1.5f;     /* row 0: rho = 1.5 > 1, the authors' formula, no guard */
        vx[N + j] = 1.0f; /* row 1: rho = 1 exactly, the singular point: the guard */
    }
    z[0] = z[1] = 0.5f;
    const int64_t D = N + P;
    float *k0 = cc_malloc(sizeof(float) * (size_t)(B * D)), *k1 = cc_malloc(sizeof(float) * (size_t)(B * D));
    float *u0 = cc_malloc(sizeof(float) * (size_t)B), *u1 = cc_malloc(sizeof(float) * (size_t)B);
    float *dvx = cc_upload(gpu_, vx, sizeof(float) * (size_t)(B * N)), *dvz = cc_upload(gpu_, vz, sizeof(float) * (size_t)B);
    float *dz = cc_upload(gpu_, z, sizeof(float) * (size_t)B), *dk = cc_upload(gpu_, NULL, sizeof(float) * (size_t)(B * D));
    float *du = cc_upload(gpu_, NULL, sizeof(float) * (size_t)B);
    int64_t g0 = -1, g1 = -1;
    assert_int_equal(ref_->ode_drift(ref_, B, N, P, z, gamma, z_exp, vx, vz, k0, u0, &g0), PFGM_OK);
    assert_int_equal(gpu_->ode_drift(gpu_, B, N, P, dz, gamma, z_exp, dvx, dvz, dk, du, &g1), PFGM_OK);
    cc_download(gpu_, k1, dk, sizeof(float) * (size_t)(B * D));
    cc_download(gpu_, u1, du, sizeof(float) * (size_t)B);
    assert_int_equal(g0, g1);
    assert_true(gamma == 0.0 ? g1 == 0 : g1 == 1);
    assert_true(gamma == 0.0 || (u1[0] < 0.0f && u1[1] == 0.0f && signbit(u1[1]))); /* rho > 1: finite v_z < 0 */
    char what[80];
    /* the substituted v_z depends on |v_x| (b) and double sqrt; the drift on v_z through
     * three float roundings; rows above z_exp are the same bits */
    snprintf(what, sizeof what, "ode_drift v_z B=%lld N=%lld gamma=%g", (long long)B, (long long)N, gamma);
    assert_int_equal(cc_compare_f32(what, u0, u1, B, ULP4, 0.0), 0);
    assert_int_equal(cc_compare_f32("ode_drift k", k0, k1, B * D, 2 * ULP4, 0.0), 0);
    for (int64_t b = 0; b < B; ++b)
        if ((double)z[b] >= z_exp || gamma == 0.0) assert_memory_equal(k0 + b * D, k1 + b * D, sizeof(float) * (size_t)D);
    /* without the optional outputs */
    assert_int_equal(gpu_->ode_drift(gpu_, B, N, P, dz, gamma, z_exp, dvx, dvz, dk, NULL, NULL), PFGM_OK);
    float *k2 = cc_malloc(sizeof(float) * (size_t)(B * D));
    cc_download(gpu_, k2, dk, sizeof(float) * (size_t)(B * D));
    assert_memory_equal(k1, k2, sizeof(float) * (size_t)(B * D));
    gpu_->free(gpu_, dvx);
    gpu_->free(gpu_, dvz);
    gpu_->free(gpu_, dz);
    gpu_->free(gpu_, dk);
    gpu_->free(gpu_, du);
    free(vx);
    free(vz);
    free(z);
    free(k0);
    free(k1);
    free(k2);
    free(u0);
    free(u1);
}

static void test_ode_drift(void **state) {
    (void)state;
    check_drift(9, 784, 784, 5.0);
    check_drift(9, 784, 0, 0.0);
    check_drift(2500, 12, 3, 5.0); /* more rows than the guard partials: the grid-stride loop */
}

static void test_ode_state_combine_sumsq(void **state) {
    (void)state;
    enum { NK = 7 };
    const int64_t rows = 1500, N = 37, P = 4, cols = N + P; /* rows > the partials scratch (1024) */
    const int64_t n = rows * cols;
    float *x = cc_malloc(sizeof(float) * (size_t)(rows * N));
    cc_randn(x, rows * N, 11, 1.0f);
    double *y0 = cc_malloc(sizeof(double) * (size_t)n), *y1 = cc_malloc(sizeof(double) * (size_t)n);
    float *dxs = cc_upload(gpu_, x, sizeof(float) * (size_t)(rows * N));
    double *dy = cc_upload(gpu_, NULL, sizeof(double) * (size_t)n);
    assert_int_equal(ref_->ode_init_state(ref_, rows, N, P, x, 40.0, y0), PFGM_OK);
    assert_int_equal(gpu_->ode_init_state(gpu_, rows, N, P, dxs, 40.0, dy), PFGM_OK);
    cc_download(gpu_, y1, dy, sizeof(double) * (size_t)n);
    assert_memory_equal(y0, y1, sizeof(double) * (size_t)n);

    /* stages, coefficients (the Dormand-Prince error row) and per-row step sizes */
    const double coef[NK] = {71.0 / 57600, 0.0, -71.0 / 16695, 71.0 / 1920, -17253.0 / 339200, 22.0 / 525, -1.0 / 40};
    float *kh[NK];
    const float *kd[NK];
    for (int j = 0; j < NK; ++j) {
        kh[j] = cc_malloc(sizeof(float) * (size_t)n);
        cc_randn(kh[j], n, 20 + (uint32_t)j, 3.0f);
        kd[j] = cc_upload(gpu_, kh[j], sizeof(float) * (size_t)n);
    }
    double *h = cc_malloc(sizeof(double) * (size_t)rows);
    for (int64_t r = 0; r < rows; ++r) h[r] = -0.01 - 1e-4 * (double)r;
    double *dh = cc_upload(gpu_, h, sizeof(double) * (size_t)rows);
    const float *const *khc = (const float *const *)kh;

    /* ode_combine: elementwise double arithmetic in the CPU's order: the same bits */
    float *xo0 = cc_malloc(sizeof(float) * (size_t)(rows * N)), *xo1 = cc_malloc(sizeof(float) * (size_t)(rows * N));
    float *dxo = cc_upload(gpu_, NULL, sizeof(float) * (size_t)(rows * N));
    double *yo0 = cc_malloc(sizeof(double) * (size_t)n), *yo1 = cc_malloc(sizeof(double) * (size_t)n);
    double *dyo = cc_upload(gpu_, NULL, sizeof(double) * (size_t)n);
    const int nks[] = {0, 1, 2, NK};
    for (size_t t = 0; t < sizeof nks / sizeof nks[0]; ++t) {
        for (int with_h = 0; with_h < 2; ++with_h) {
            assert_int_equal(ref_->ode_combine(ref_, rows, cols, y0, with_h ? h : NULL, nks[t], coef, khc, yo0, xo0, N),
                             PFGM_OK);
            assert_int_equal(gpu_->ode_combine(gpu_, rows, cols, dy, with_h ? dh : NULL, nks[t], coef, kd, dyo, dxo, N),
                             PFGM_OK);
            cc_download(gpu_, yo1, dyo, sizeof(double) * (size_t)n);
            cc_download(gpu_, xo1, dxo, sizeof(float) * (size_t)(rows * N));
            assert_memory_equal(yo0, yo1, sizeof(double) * (size_t)n);
            assert_memory_equal(xo0, xo1, sizeof(float) * (size_t)(rows * N));
        }
    }
    /* in place (y_out = y) and x_out alone */
    assert_int_equal(ref_->ode_combine(ref_, rows, cols, y0, h, NK, coef, khc, y0, NULL, 0), PFGM_OK);
    assert_int_equal(gpu_->ode_combine(gpu_, rows, cols, dy, dh, NK, coef, kd, dy, NULL, 0), PFGM_OK);
    cc_download(gpu_, y1, dy, sizeof(double) * (size_t)n);
    assert_memory_equal(y0, y1, sizeof(double) * (size_t)n);
    assert_int_equal(pfgm_op_ode_combine(gpu_, rows, cols, dy, dh, 9, coef, kd, dy, NULL, 0), PFGM_ERR_INVALID_ARG);
    printf("ode_init_state, ode_combine                 bit-equal to the CPU reference\n");

    /* ode_sumsq: the three forms the solvers use; a double sum per row (b) */
    double *r0 = cc_malloc(sizeof(double) * (size_t)rows), *r1 = cc_malloc(sizeof(double) * (size_t)rows);
    assert_int_equal(gpu_->ode_combine(gpu_, rows, cols, dy, dh, 3, coef, kd, dyo, NULL, 0), PFGM_OK);
    assert_int_equal(ref_->ode_combine(ref_, rows, cols, y0, h, 3, coef, khc, yo0, NULL, 0), PFGM_OK);
    assert_int_equal(ref_->ode_sumsq(ref_, rows, cols, y0, NULL, 0, NULL, NULL, y0, NULL, 0.0, 1.0, r0), PFGM_OK);
    assert_int_equal(gpu_->ode_sumsq(gpu_, rows, cols, dy, NULL, 0, NULL, NULL, dy, NULL, 0.0, 1.0, r1), PFGM_OK);
    assert_int_equal(cc_compare_f64("ode_sumsq |y|^2", r0, r1, rows, 1e-12, 0.0), 0);
    assert_int_equal(ref_->ode_sumsq(ref_, rows, cols, NULL, h, NK, coef, khc, y0, yo0, 1e-5, 1e-5, r0), PFGM_OK);
    assert_int_equal(gpu_->ode_sumsq(gpu_, rows, cols, NULL, dh, NK, coef, kd, dy, dyo, 1e-5, 1e-5, r1), PFGM_OK);
    assert_int_equal(cc_compare_f64("ode_sumsq error estimate", r0, r1, rows, 1e-12, 0.0), 0);
    assert_int_equal(ref_->ode_sumsq(ref_, rows, cols, y0, NULL, 1, coef + 3, khc, y0, NULL, 1e-3, 1e-6, r0), PFGM_OK);
    assert_int_equal(gpu_->ode_sumsq(gpu_, rows, cols, dy, NULL, 1, coef + 3, kd, dy, NULL, 1e-3, 1e-6, r1), PFGM_OK);
    assert_int_equal(cc_compare_f64("ode_sumsq y + k", r0, r1, rows, 1e-12, 0.0), 0);

    for (int j = 0; j < NK; ++j) {
        gpu_->free(gpu_, (void *)kd[j]);
        free(kh[j]);
    }
    gpu_->free(gpu_, dxs);
    gpu_->free(gpu_, dy);
    gpu_->free(gpu_, dh);
    gpu_->free(gpu_, dxo);
    gpu_->free(gpu_, dyo);
    free(x);
    free(y0);
    free(y1);
    free(h);
    free(xo0);
    free(xo1);
    free(yo0);
    free(yo1);
    free(r0);
    free(r1);
}

int main(void) {
    if (!pfgm_backend_cuda_available()) {
        printf("SKIPPED: no CUDA device (or pfgm built without CUDA)\n");
        return 77;
    }
    if (pfgm_backend_create("cuda", &gpu_) != PFGM_OK || pfgm_backend_create("cpu-reference", &ref_) != PFGM_OK) {
        fprintf(stderr, "test_cuda_math: %s\n", pfgm_error_message());
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_perturb),
        cmocka_unit_test(test_field_weights),
        cmocka_unit_test(test_field_finish),
        cmocka_unit_test(test_field_targets_end_to_end),
        cmocka_unit_test(test_vector_file),
        cmocka_unit_test(test_rho_vector_file),
        cmocka_unit_test(test_loss),
        cmocka_unit_test(test_sphere_points),
        cmocka_unit_test(test_ode_drift),
        cmocka_unit_test(test_ode_state_combine_sumsq),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    pfgm_backend_destroy(gpu_);
    pfgm_backend_destroy(ref_);
    return rc;
}
