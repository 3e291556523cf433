/* Helpers shared by the PFGM math tests (test_field_*, test_perturb*, test_prior*,
 * test_ode*, test_loss*): backend buffers, the regularized incomplete beta function for
 * closed-form CDFs, and the Kolmogorov-Smirnov statistic. Header-only, static functions. */
#ifndef PFGM_TESTS_MATH_TESTUTIL_H
#define PFGM_TESTS_MATH_TESTUTIL_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pfgm/backend.h"

/* A backend buffer of n floats (zeroed), optionally filled from host. NULL on failure. */
static inline float *tu_upload(pfgm_backend *be, const float *host, int64_t n) {
    void *p = NULL;
    if (be->alloc(be, (size_t)n * sizeof(float), &p) != PFGM_OK) return NULL;
    if (host && pfgm_backend_upload(be, p, host, n) != PFGM_OK) {
        be->free(be, p);
        return NULL;
    }
    return p;
}

/* Philox uniforms in [lo, hi) on the host (PFGM_STREAM_USER, the given step). */
static inline void tu_uniform(uint32_t step, float lo, float hi, float *x, size_t n) {
    pfgm_rng r = {.seed = 1234, .rank = 0, .stream = PFGM_STREAM_USER, .step = step};
    pfgm_rng_uniform(&r, 0, n, x);
    for (size_t i = 0; i < n; ++i) x[i] = lo + (hi - lo) * x[i];
}

/* Continued fraction of the incomplete beta (modified Lentz; Numerical Recipes §6.4). */
static inline double tu_betacf(double a, double b, double x) {
    const double tiny = 1e-300;
    double qab = a + b, qap = a + 1.0, qam = a - 1.0, c = 1.0, d = 1.0 - qab * x / qap;
    if (fabs(d) < tiny) d = tiny;
    d = 1.0 / d;
    double h = d;
    for (int m = 1; m <= 100000; ++m) {
        int m2 = 2 * m;
        double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if (fabs(d) < tiny) d = tiny;
        c = 1.0 + aa / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1.0 / d;
        h *= d * c;
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if (fabs(d) < tiny) d = tiny;
        c = 1.0 + aa / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1.0 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1.0) < 1e-15) break;
    }
    return h;
}

/* Regularized incomplete beta I_x(a, b), double precision. */
static inline double tu_betainc(double a, double b, double x) {
    if (x <= 0.0) return 0.0;
    if (x >= 1.0) return 1.0;
    double lbt = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x);
    if (x < (a + 1.0) / (a + b + 2.0)) return exp(lbt) * tu_betacf(a, b, x) / a;
    return 1.0 - exp(lbt) * tu_betacf(b, a, 1.0 - x) / b;
}

/* Complement 1 - I_x(a, b) without cancellation when I is close to 1. */
static inline double tu_betainc_upper(double a, double b, double x) {
    if (x <= 0.0) return 1.0;
    if (x >= 1.0) return 0.0;
    return tu_betainc(b, a, 1.0 - x);
}

static inline int tu_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Kolmogorov-Smirnov statistic of samples v[n] (sorted in place) against cdf(x, arg). */
static inline double tu_ks(double *v, size_t n, double (*cdf)(double, const void *), const void *arg) {
    qsort(v, n, sizeof *v, tu_cmp_double);
    double d = 0.0;
    for (size_t i = 0; i < n; ++i) {
        double f = cdf(v[i], arg);
        double lo = f - (double)i / (double)n, hi = (double)(i + 1) / (double)n - f;
        d = lo > d ? lo : d;
        d = hi > d ? hi : d;
    }
    return d;
}

/* The KS critical value at significance 0.001 (asymptotic): 1.949 / sqrt(n). The tests
 * use fixed seeds, so a pass is deterministic; the level says how unusual a failure is. */
static inline double tu_ks_crit(size_t n) { return 1.949 / sqrt((double)n); }

#endif
