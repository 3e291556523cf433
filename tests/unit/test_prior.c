/* The prior (spec §1.7): Gamma draws against their closed-form CDFs and moments, the
 * radius against the Beta-prime law p(R) ~ R^(N-1) / (R^2 + z_max^2)^((N+1)/2) by KS, the
 * CIFAR-10 clip fraction (54 % clipped at z_max 40, upper_norm 3000, N 3072) and 10th
 * percentile (~1346) of spec §1.7's table within Monte-Carlo error, the samples' norms and
 * the clip to [1, upper_norm], determinism on both CPU backends, and bad input. */
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
#include "pfgm/prior.h"
#include "unit/math_testutil.h"

enum { NS = 20000 };

static const pfgm_rng KEY = {.seed = 49, .rank = 0, .stream = PFGM_STREAM_PRIOR, .step = 0};

/* Gamma(1/2): 2X ~ chi2_1, P(X <= x) = erf(sqrt(x)); Gamma(3/2): erf(sqrt x) - 2 sqrt(x/pi) e^-x. */
static double gamma_half_cdf(double x, const void *arg) {
    (void)arg;
    return erf(sqrt(x));
}
static double gamma_three_halves_cdf(double x, const void *arg) {
    (void)arg;
    return erf(sqrt(x)) - 2.0 * sqrt(x / M_PI) * exp(-x);
}

static void test_gamma_draws(void **state) {
    (void)state;
    const double shapes[] = {0.5, 1.5, 3.7, 1536.0};
    double *v = malloc(NS * sizeof(double));
    assert_non_null(v);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; ++s) {
        const double a = shapes[s];
        uint64_t cursor = 0;
        double mean = 0.0, m2 = 0.0;
        for (int i = 0; i < NS; ++i) {
            assert_int_equal(pfgm_gamma_draw(&KEY, a, &cursor, UINT64_C(1) << 32, &v[i]), PFGM_OK);
            assert_true(v[i] > 0.0);
            mean += v[i] / NS;
        }
        for (int i = 0; i < NS; ++i) m2 += (v[i] - mean) * (v[i] - mean) / (NS - 1);
        /* Gamma(a): mean a, variance a; var of the sample variance ~ (2 a^2 + 6 a) / n */
        double se_mean = sqrt(a / NS), se_var = sqrt((2 * a * a + 6 * a) / NS);
        printf("Gamma(%g): mean %.4f (sd %.4f), variance %.4f (sd %.4f), %.3f words per draw\n", a, mean, se_mean,
               m2, se_var, 2.0 * (double)cursor / NS);
        assert_true(fabs(mean - a) <= 5 * se_mean);
        assert_true(fabs(m2 - a) <= 5 * se_var);
        if (a == 0.5 || a == 1.5) {
            double d = tu_ks(v, NS, a == 0.5 ? gamma_half_cdf : gamma_three_halves_cdf, NULL);
            printf("Gamma(%g): KS %.4f (critical %.4f)\n", a, d, tu_ks_crit(NS));
            assert_true(d < tu_ks_crit(NS));
        }
    }
    /* an exhausted window is an error, not a hang */
    uint64_t cursor = 10;
    double g;
    assert_int_equal(pfgm_gamma_draw(&KEY, 2.0, &cursor, 12, &g), PFGM_ERR_NUMERIC);
    assert_int_equal(pfgm_gamma_draw(&KEY, 0.0, &cursor, 1000, &g), PFGM_ERR_INVALID_ARG);
    free(v);
}

typedef struct radius_law {
    double n, z_max;
} radius_law;

/* P(R <= r) = P(B <= r^2 / (r^2 + z^2)) = I_x(N/2, 1/2). */
static double radius_cdf(double r, const void *arg) {
    const radius_law *w = arg;
    double r2 = r * r, z2 = w->z_max * w->z_max;
    return 1.0 - tu_betainc_upper(0.5 * w->n, 0.5, r2 / (r2 + z2));
}

static void draw_radii(int64_t N, double z_max, double *R, int n) {
    for (int k = 0; k < n; ++k) {
        pfgm_rng r = KEY;
        r.step = (uint64_t)(k / PFGM_PRIOR_MAX_BATCH); /* batches of 2^14, as a sampler would */
        assert_int_equal(pfgm_prior_radius(&r, k % PFGM_PRIOR_MAX_BATCH, N, z_max, &R[k]), PFGM_OK);
    }
}

static void test_radius_law(void **state) {
    (void)state;
    double *R = malloc(NS * sizeof(double));
    assert_non_null(R);
    const int64_t dims[] = {1, 3, 784, 3072};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; ++i) {
        radius_law w = {.n = (double)dims[i], .z_max = 40.0};
        draw_radii(dims[i], w.z_max, R, NS);
        double d = tu_ks(R, NS, radius_cdf, &w);
        printf("N=%lld: KS of R against the Beta-prime law %.4f (critical %.4f)\n", (long long)dims[i], d,
               tu_ks_crit(NS));
        assert_true(d < tu_ks_crit(NS));
    }
    free(R);
}

static void test_cifar_clip_table(void **state) {
    (void)state;
    const double z_max = 40.0, upper = 3000.0;
    radius_law w = {.n = 3072.0, .z_max = z_max};
    double *R = malloc(NS * sizeof(double));
    assert_non_null(R);
    draw_radii(3072, z_max, R, NS);
    int clipped = 0;
    for (int k = 0; k < NS; ++k) clipped += R[k] > upper;
    const double p = 1.0 - radius_cdf(upper, &w), frac = (double)clipped / NS, sd = sqrt(p * (1 - p) / NS);
    /* the 10th percentile of R exactly, by bisection of the CDF */
    double lo = 1.0, hi = 1e5;
    for (int it = 0; it < 200; ++it) {
        double mid = 0.5 * (lo + hi);
        if (radius_cdf(mid, &w) < 0.1) lo = mid;
        else hi = mid;
    }
    const double q10 = 0.5 * (lo + hi), dens = (radius_cdf(q10 + 1.0, &w) - radius_cdf(q10 - 1.0, &w)) / 2.0;
    qsort(R, NS, sizeof *R, tu_cmp_double);
    const double q10_mc = R[NS / 10 - 1], q10_se = sqrt(0.1 * 0.9 / NS) / dens;
    printf("CIFAR prior: clipped %.4f (exact %.4f, spec 54%%), 10th percentile %.1f (exact %.1f +- %.1f, spec "
           "~1346)\n",
           frac, p, q10_mc, q10, q10_se);
    assert_true(fabs(p - 0.54) < 0.01);
    assert_true(fabs(frac - p) <= 4 * sd);
    assert_true(fabs(q10 - 1346.0) / 1346.0 < 0.01);
    assert_true(fabs(q10_mc - q10) <= 4 * q10_se);
    free(R);
}

static void sample_on(const char *name, const pfgm_rng *r, int64_t B, int64_t N, double z_max, double upper, float *x,
                      double *radii) {
    pfgm_backend *be;
    assert_int_equal(pfgm_backend_create(name, &be), PFGM_OK);
    float *dx = tu_upload(be, NULL, B * N);
    assert_non_null(dx);
    assert_int_equal(pfgm_prior_sample(be, r, B, N, z_max, upper, dx, radii), PFGM_OK);
    pfgm_backend_download(be, x, dx, B * N);
    be->free(be, dx);
    pfgm_backend_destroy(be);
}

static void test_samples(void **state) {
    (void)state;
    const int64_t B = 200, N = 3;
    const double z_max = 2.0, upper = 20.0; /* both ends of the clip are hit */
    float x[200 * 3], x2[200 * 3];
    double radii[200], radii2[200];
    sample_on("cpu", &KEY, B, N, z_max, upper, x, radii);
    int low = 0, high = 0;
    for (int64_t k = 0; k < B; ++k) {
        double R;
        assert_int_equal(pfgm_prior_radius(&KEY, k, N, z_max, &R), PFGM_OK);
        double want = R < 1.0 ? 1.0 : (R > upper ? upper : R); /* clip to [1, upper_norm] */
        low += R < 1.0;
        high += R > upper;
        assert_true(radii[k] == want);
        double n2 = 0.0;
        for (int64_t j = 0; j < N; ++j) n2 += (double)x[k * N + j] * x[k * N + j];
        assert_true(fabs(sqrt(n2) - want) <= 1e-6 * want);
    }
    printf("N=3, z_max 2, upper_norm 20: %d clipped to 1, %d to upper_norm of %lld\n", low, high, (long long)B);
    assert_true(low > 0 && high > 0);
    /* determinism: same bits again, on the reference backend, and for a smaller batch */
    sample_on("cpu", &KEY, B, N, z_max, upper, x2, radii2);
    assert_memory_equal(x, x2, sizeof x);
    sample_on("cpu-reference", &KEY, B, N, z_max, upper, x2, radii2);
    assert_memory_equal(x, x2, sizeof x);
    sample_on("cpu", &KEY, 50, N, z_max, upper, x2, radii2);
    assert_memory_equal(x, x2, 50 * N * sizeof(float));
    pfgm_rng next = KEY;
    next.step = 1;
    sample_on("cpu", &next, B, N, z_max, upper, x2, radii2);
    assert_true(memcmp(x, x2, sizeof x) != 0);
}

static void test_directions_uniform(void **state) {
    (void)state;
    /* the mean of the unit vectors is ~0 (sd 1/sqrt(N B) per component) */
    const int64_t B = 4000, N = 16;
    float *x = malloc((size_t)(B * N) * sizeof(float));
    double *radii = malloc((size_t)B * sizeof(double));
    assert_non_null(x);
    assert_non_null(radii);
    sample_on("cpu", &KEY, B, N, 40.0, 1e9, x, radii);
    for (int64_t j = 0; j < N; ++j) {
        double m = 0.0;
        for (int64_t k = 0; k < B; ++k) m += x[k * N + j] / radii[k] / (double)B;
        assert_true(fabs(m) < 5.0 / sqrt((double)(N * B)));
    }
    free(x);
    free(radii);
}

static void test_bad_input(void **state) {
    (void)state;
    pfgm_backend *be;
    assert_int_equal(pfgm_backend_create("cpu", &be), PFGM_OK);
    float x[8];
    for (int i = 0; i < 8; ++i) x[i] = 42.0f;
    double R;
    assert_int_equal(pfgm_prior_sample(be, &KEY, 0, 4, 40.0, 3000.0, x, NULL), PFGM_ERR_INVALID_ARG);
    assert_int_equal(pfgm_prior_sample(be, &KEY, PFGM_PRIOR_MAX_BATCH + 1, 4, 40.0, 3000.0, x, NULL),
                     PFGM_ERR_INVALID_ARG);
    assert_int_equal(pfgm_prior_sample(be, &KEY, 2, 0, 40.0, 3000.0, x, NULL), PFGM_ERR_INVALID_ARG);
    assert_int_equal(pfgm_prior_sample(be, &KEY, 2, 4, 0.0, 3000.0, x, NULL), PFGM_ERR_INVALID_ARG);
    assert_int_equal(pfgm_prior_sample(be, &KEY, 2, 4, 40.0, 0.5, x, NULL), PFGM_ERR_INVALID_ARG);
    assert_int_equal(pfgm_prior_sample(be, &KEY, 2, 4, NAN, 3000.0, x, NULL), PFGM_ERR_INVALID_ARG);
    pfgm_rng wrong = KEY;
    wrong.stream = PFGM_STREAM_PERTURB;
    assert_int_equal(pfgm_prior_sample(be, &wrong, 2, 4, 40.0, 3000.0, x, NULL), PFGM_ERR_INVALID_ARG);
    for (int i = 0; i < 8; ++i) assert_true(x[i] == 42.0f);
    assert_int_equal(pfgm_prior_radius(&KEY, -1, 4, 40.0, &R), PFGM_ERR_INVALID_ARG);
    assert_int_equal(pfgm_prior_radius(&KEY, 0, 4, -40.0, &R), PFGM_ERR_INVALID_ARG);
    pfgm_backend_destroy(be);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gamma_draws),  cmocka_unit_test(test_radius_law),
        cmocka_unit_test(test_cifar_clip_table), cmocka_unit_test(test_samples),
        cmocka_unit_test(test_directions_uniform), cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
