/* The perturbation kernel (spec §1.4): every output recomputed from the documented Philox
 * layout (pfgm_perturb_stride), determinism (same key -> same bits on both CPU backends,
 * independent of the batch size), and the statistics against closed forms: the restrict_M
 * fraction P(|N(0,1)| < 0.5) = 0.3829, the distribution of z (KS against the CDF
 * integrated over the |g| and m laws), the radius law r = |eps_x| (1+tau)^m through
 * (r/z)^2 / N ~ F(N, 1), and uniform directions. */
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
#include "pfgm/perturb.h"
#include "unit/math_testutil.h"

/* Runs pfgm_perturb on host arrays through backend `name`. */
static pfgm_status perturb_on(const char *name, const pfgm_rng *r, const pfgm_perturb_params *p, int64_t B,
                              int64_t N, const float *x, float *out, float *x_net, float *z_net) {
    pfgm_backend *be;
    assert_int_equal(pfgm_backend_create(name, &be), PFGM_OK);
    float *dx = tu_upload(be, x, B * N), *dout = tu_upload(be, NULL, B * (N + 1));
    float *dxn = tu_upload(be, NULL, B * N), *dzn = tu_upload(be, NULL, B);
    assert_non_null(dx);
    assert_non_null(dout);
    pfgm_status st = pfgm_perturb(be, r, p, B, N, dx, dout, x_net ? dxn : NULL, z_net ? dzn : NULL);
    if (st == PFGM_OK) {
        pfgm_backend_download(be, out, dout, B * (N + 1));
        if (x_net) pfgm_backend_download(be, x_net, dxn, B * N);
        if (z_net) pfgm_backend_download(be, z_net, dzn, B);
    }
    be->free(be, dx);
    be->free(be, dout);
    be->free(be, dxn);
    be->free(be, dzn);
    pfgm_backend_destroy(be);
    return st;
}

static const pfgm_rng KEY = {.seed = 49, .rank = 2, .stream = PFGM_STREAM_PERTURB, .step = 1234};

static void test_layout_recomputed(void **state) {
    (void)state;
    const int64_t B = 64, N = 10;
    pfgm_perturb_params p = pfgm_perturb_params_default();
    float x[64 * 10], out[64 * 11], xn[64 * 10], zn[64];
    tu_uniform(1, -1.0f, 1.0f, x, (size_t)(B * N));
    assert_int_equal(perturb_on("cpu", &KEY, &p, B, N, x, out, xn, zn), PFGM_OK);
    const uint64_t S = pfgm_perturb_stride(N), n4 = 12;
    assert_int_equal(S, 4 + 2 * n4);
    int restricted = 0;
    for (int64_t k = 0; k < B; ++k) {
        const uint64_t base = (uint64_t)k * S;
        float u[2], gz, ex[10], dir[10];
        pfgm_rng_uniform(&KEY, base, 2, u);
        pfgm_rng_normal(&KEY, base + 2, 1, &gz);
        pfgm_rng_normal(&KEY, base + 4, (size_t)N, ex);
        pfgm_rng_normal(&KEY, base + 4 + n4, (size_t)N, dir);
        float z0 = fabsf(gz * 0.01f);
        double m = (double)u[0] * 291.0;
        if (z0 < 0.005f) {
            m = (double)u[1] * 203.0; /* int(0.7 * 291) */
            ++restricted;
        }
        double mult = (double)(float)pow(1.03, m), ex2 = 0.0, d2 = 0.0;
        for (int j = 0; j < N; ++j) {
            ex2 += (double)ex[j] * ex[j];
            d2 += (double)dir[j] * dir[j];
        }
        double r = 0.01 * sqrt(ex2) * mult;
        assert_true(out[k * (N + 1) + N] == (float)((double)z0 * mult)); /* z = z0 (1+tau)^m */
        double moved = 0.0;
        for (int j = 0; j < N; ++j) {
            float want = x[k * N + j] + (float)(r * dir[j] / sqrt(d2)); /* x + r u */
            assert_true(fabsf(out[k * (N + 1) + j] - want) <= 1e-6f * (fabsf(want) + 1.0f));
            assert_true(xn[k * N + j] == out[k * (N + 1) + j]);
            double d = (double)out[k * (N + 1) + j] - x[k * N + j];
            moved += d * d;
        }
        assert_true(fabs(sqrt(moved) - r) <= 1e-5 * r + 1e-6); /* radius law, per sample */
        float z = out[k * (N + 1) + N];
        assert_true(zn[k] == (z > 1e-10f ? z : 1e-10f));
    }
    printf("restricted %d of %lld samples\n", restricted, (long long)B);
    assert_true(restricted > 0 && restricted < B);
}

static void test_determinism(void **state) {
    (void)state;
    const int64_t B = 10, N = 37;
    pfgm_perturb_params p = pfgm_perturb_params_default();
    float x[10 * 37], a[10 * 38], b[10 * 38], c[5 * 38];
    tu_uniform(2, -1.0f, 1.0f, x, sizeof x / sizeof x[0]);
    assert_int_equal(perturb_on("cpu", &KEY, &p, B, N, x, a, NULL, NULL), PFGM_OK);
    assert_int_equal(perturb_on("cpu", &KEY, &p, B, N, x, b, NULL, NULL), PFGM_OK);
    assert_memory_equal(a, b, sizeof a);
    assert_int_equal(perturb_on("cpu-reference", &KEY, &p, B, N, x, b, NULL, NULL), PFGM_OK);
    assert_memory_equal(a, b, sizeof a); /* the same bits on both CPU backends */
    assert_int_equal(perturb_on("cpu", &KEY, &p, 5, N, x, c, NULL, NULL), PFGM_OK);
    assert_memory_equal(a, c, sizeof c); /* sample k's draws do not depend on B */
    pfgm_rng other[3] = {KEY, KEY, KEY};
    other[0].step += 1;
    other[1].rank += 1;
    other[2].seed += 1;
    for (int i = 0; i < 3; ++i) {
        assert_int_equal(perturb_on("cpu", &other[i], &p, B, N, x, b, NULL, NULL), PFGM_OK);
        int same = 0;
        for (int64_t k = 0; k < B; ++k) same += a[k * (N + 1) + N] == b[k * (N + 1) + N];
        assert_int_equal(same, 0);
    }
}

/* ---- statistics ---------------------------------------------------------------------- */

enum { SB = 20000, SN = 8 };

typedef struct zlaw {
    double sigma, tau;
    double M, Mr; /* m ~ U[0, M), redrawn from U[0, Mr) when sigma |g| < 0.005 */
} zlaw;

/* P(m <= mu) for m ~ U[0, Mx). */
static double clamp01(double v) { return v < 0.0 ? 0.0 : (v > 1.0 ? 1.0 : v); }

static double z_integrand(double g, double lnq, const zlaw *w) {
    double mx = w->sigma * g < 0.005 ? w->Mr : w->M;
    double mu = (lnq - log(w->sigma * g)) / log1p(w->tau);
    return 2.0 * exp(-0.5 * g * g) / sqrt(2.0 * M_PI) * clamp01(mu / mx);
}

/* Composite Simpson of z_integrand over [a, b], n (even) intervals. */
static double simpson(double a, double b, int n, double lnq, const zlaw *w) {
    double h = (b - a) / n, s = z_integrand(a + 1e-300, lnq, w) + z_integrand(b, lnq, w);
    for (int i = 1; i < n; ++i) s += (i % 2 ? 4.0 : 2.0) * z_integrand(a + i * h, lnq, w);
    return s * h / 3.0;
}

/* P(z <= q): E over g = |N(0,1)| of P(sigma g (1+tau)^m <= q); split at the restrict edge. */
static double z_cdf(double q, const void *arg) {
    const zlaw *w = arg;
    double edge = 0.005 / w->sigma, lnq = log(q);
    return simpson(0.0, edge, 2000, lnq, w) + simpson(edge, 9.0, 4000, lnq, w);
}

/* F(N, 1) CDF: X = (chi2_N / N) / chi2_1 -> I_{N x / (N x + 1)}(N/2, 1/2). */
static double f_cdf(double x, const void *arg) {
    double n = *(const double *)arg;
    return tu_betainc(0.5 * n, 0.5, n * x / (n * x + 1.0));
}

static void run_stats(int restrict_M, int64_t M) {
    pfgm_perturb_params p = pfgm_perturb_params_default();
    p.restrict_M = restrict_M;
    p.M = M;
    float *x = calloc((size_t)SB * SN, sizeof(float)), *out = malloc((size_t)SB * (SN + 1) * sizeof(float));
    double *v = malloc((size_t)SB * sizeof(double));
    assert_non_null(x);
    assert_non_null(out);
    assert_non_null(v);
    pfgm_rng key = {.seed = 3, .rank = 0, .stream = PFGM_STREAM_PERTURB, .step = 77};
    assert_int_equal(perturb_on("cpu", &key, &p, SB, SN, x, out, NULL, NULL), PFGM_OK);
    const int64_t Mr = (int64_t)((double)M * 0.7);

    /* restrict_M fraction from the layout's eps_z, and the m each sample received */
    int64_t n_restricted = 0, n_low_m = 0;
    double max_m_restricted = 0.0, max_m_free = 0.0;
    for (int64_t k = 0; k < SB; ++k) {
        float gz;
        pfgm_rng_normal(&key, (uint64_t)k * pfgm_perturb_stride(SN) + 2, 1, &gz);
        double z0 = fabsf(gz * 0.01f), z = out[k * (SN + 1) + SN];
        double m = log(z / z0) / log(1.03);
        int restricted = z0 < 0.005;
        n_restricted += restricted;
        n_low_m += m < (double)Mr;
        if (restricted) max_m_restricted = fmax(max_m_restricted, m);
        else max_m_free = fmax(max_m_free, m);
    }
    const double p_r = erf(0.5 / sqrt(2.0)); /* P(|N(0,1)| < 0.5) = 0.38292 */
    const double frac = (double)n_restricted / SB, sd = sqrt(p_r * (1 - p_r) / SB);
    const double p_low = restrict_M ? p_r + (1 - p_r) * (double)Mr / (double)M : (double)Mr / (double)M;
    const double frac_low = (double)n_low_m / SB, sd_low = sqrt(p_low * (1 - p_low) / SB);
    printf("restrict_M=%d: z0 < 0.005 in %.4f (expect %.4f); m < %lld in %.4f (expect %.4f); max m restricted "
           "%.2f, free %.2f\n",
           restrict_M, frac, p_r, (long long)Mr, frac_low, p_low, max_m_restricted, max_m_free);
    assert_true(fabs(frac - p_r) <= 4 * sd);
    assert_true(fabs(frac_low - p_low) <= 4 * sd_low);
    if (restrict_M) assert_true(max_m_restricted < (double)Mr + 1e-3);
    else assert_true(max_m_restricted > (double)Mr);
    assert_true(max_m_free > (double)Mr);

    /* z against its closed-form CDF */
    zlaw w = {.sigma = 0.01, .tau = 0.03, .M = (double)M, .Mr = restrict_M ? (double)Mr : (double)M};
    for (int64_t k = 0; k < SB; ++k) v[k] = out[k * (SN + 1) + SN];
    double dz = tu_ks(v, SB, z_cdf, &w);
    /* (r/z)^2 / N ~ F(N, 1): r = |eps_x| s and z = |eps_z| s share s */
    for (int64_t k = 0; k < SB; ++k) {
        double r2 = 0.0;
        for (int64_t j = 0; j < SN; ++j) r2 += (double)out[k * (SN + 1) + j] * out[k * (SN + 1) + j];
        double z = out[k * (SN + 1) + SN];
        v[k] = r2 / (z * z) / SN;
    }
    double n = SN, dr = tu_ks(v, SB, f_cdf, &n);
    printf("restrict_M=%d: KS z %.4f, KS (r/z)^2/N %.4f, critical %.4f\n", restrict_M, dz, dr, tu_ks_crit(SB));
    assert_true(dz < tu_ks_crit(SB));
    assert_true(dr < tu_ks_crit(SB));

    /* uniform directions: the mean unit vector is ~0 (sd 1/sqrt(N SB) per component) */
    double mean[SN] = {0};
    for (int64_t k = 0; k < SB; ++k) {
        double r2 = 0.0;
        for (int64_t j = 0; j < SN; ++j) r2 += (double)out[k * (SN + 1) + j] * out[k * (SN + 1) + j];
        for (int64_t j = 0; j < SN; ++j) mean[j] += out[k * (SN + 1) + j] / sqrt(r2) / SB;
    }
    for (int64_t j = 0; j < SN; ++j) assert_true(fabs(mean[j]) < 5.0 / sqrt((double)SN * SB));
    free(x);
    free(out);
    free(v);
}

static void test_statistics_restricted(void **state) {
    (void)state;
    run_stats(1, 291);
}

static void test_statistics_unrestricted(void **state) {
    (void)state;
    run_stats(0, 356);
}

static void test_bad_input(void **state) {
    (void)state;
    pfgm_backend *be;
    assert_int_equal(pfgm_backend_create("cpu", &be), PFGM_OK);
    float x[8] = {0}, out[10];
    for (int i = 0; i < 10; ++i) out[i] = 42.0f;
    pfgm_perturb_params ok = pfgm_perturb_params_default(), bad = ok;
    assert_int_equal(pfgm_perturb(be, &KEY, &ok, 0, 4, x, out, NULL, NULL), PFGM_ERR_INVALID_ARG);
    assert_int_equal(pfgm_perturb(be, &KEY, &ok, 2, 0, x, out, NULL, NULL), PFGM_ERR_INVALID_ARG);
    bad.M = 0;
    assert_int_equal(pfgm_perturb(be, &KEY, &bad, 2, 4, x, out, NULL, NULL), PFGM_ERR_INVALID_ARG);
    bad = ok;
    bad.tau = -0.03;
    assert_int_equal(pfgm_perturb(be, &KEY, &bad, 2, 4, x, out, NULL, NULL), PFGM_ERR_INVALID_ARG);
    bad = ok;
    bad.sigma_end = NAN;
    assert_int_equal(pfgm_perturb(be, &KEY, &bad, 2, 4, x, out, NULL, NULL), PFGM_ERR_INVALID_ARG);
    pfgm_rng wrong = KEY;
    wrong.stream = PFGM_STREAM_PRIOR;
    assert_int_equal(pfgm_perturb(be, &wrong, &ok, 2, 4, x, out, NULL, NULL), PFGM_ERR_INVALID_ARG);
    assert_int_equal(pfgm_perturb(be, &KEY, &ok, 2, 4, NULL, out, NULL, NULL), PFGM_ERR_INVALID_ARG);
    assert_int_equal(pfgm_perturb(be, &KEY, &ok, INT64_C(1) << 33, 4, x, out, NULL, NULL), PFGM_ERR_INVALID_ARG);
    for (int i = 0; i < 10; ++i) assert_true(out[i] == 42.0f);
    pfgm_backend_destroy(be);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_recomputed),     cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_statistics_restricted), cmocka_unit_test(test_statistics_unrestricted),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
