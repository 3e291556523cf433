/* Helpers of the CUDA-vs-CPU op tests (tests/gpu/test_cuda_*.c): device buffers from host
 * arrays and back, deterministic random inputs, and comparisons that print the largest
 * error, the fraction of the tolerance it uses and how many elements differ in any bit
 * (so a run shows how close to bit-equal each op is). Header-only; include after cmocka.h. */
#ifndef PFGM_TESTS_GPU_CUDA_COMPARE_H
#define PFGM_TESTS_GPU_CUDA_COMPARE_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pfgm/backend.h"

/* bytes of backend memory holding a copy of host[bytes] (zeroed when host is NULL). */
static inline void *cc_upload(pfgm_backend *be, const void *host, size_t bytes) {
    void *d = NULL;
    assert_int_equal(be->alloc(be, bytes, &d), PFGM_OK);
    if (host && bytes) assert_int_equal(be->copy(be, d, host, bytes, PFGM_COPY_H2D), PFGM_OK);
    return d;
}

static inline void cc_download(pfgm_backend *be, void *host, const void *dev, size_t bytes) {
    if (bytes) assert_int_equal(be->copy(be, host, dev, bytes, PFGM_COPY_D2H), PFGM_OK);
}

static inline void *cc_malloc(size_t bytes) {
    void *p = calloc(1, bytes ? bytes : 1);
    assert_non_null(p);
    return p;
}

/* Standard normals (stream PFGM_STREAM_USER + s) scaled by `scale`. */
static inline void cc_randn(float *x, int64_t n, uint32_t s, float scale) {
    pfgm_rng r = {.seed = 1234, .rank = 0, .stream = PFGM_STREAM_USER + s, .step = 0};
    pfgm_rng_normal(&r, 0, (size_t)n, x);
    for (int64_t i = 0; i < n; ++i) x[i] *= scale;
}

/* Uniforms in [lo, hi) (stream PFGM_STREAM_USER + s). */
static inline void cc_randu(float *x, int64_t n, uint32_t s, float lo, float hi) {
    pfgm_rng r = {.seed = 1234, .rank = 0, .stream = PFGM_STREAM_USER + s, .step = 1};
    pfgm_rng_uniform(&r, 0, (size_t)n, x);
    for (int64_t i = 0; i < n; ++i) x[i] = lo + (hi - lo) * x[i];
}

/* |got - want| <= rel |want| + abs_tol element by element (NaN fails unless both are NaN).
 * Prints one line; returns the number of elements outside the tolerance. */
static inline int64_t cc_compare_f64(const char *what, const double *want, const double *got, int64_t n, double rel,
                                     double abs_tol) {
    int64_t bad = 0, differ = 0;
    double worst = 0.0, worst_frac = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        if (memcmp(&want[i], &got[i], sizeof(double)) != 0) ++differ;
        if (isnan(want[i]) && isnan(got[i])) continue;
        double e = fabs(got[i] - want[i]), tol = rel * fabs(want[i]) + abs_tol;
        if (!(e <= tol)) {
            if (bad < 5) printf("  %s: element %lld: got %.17g, want %.17g\n", what, (long long)i, got[i], want[i]);
            ++bad;
        }
        if (e > worst || isnan(e)) worst = e;
        if (tol > 0 && e / tol > worst_frac) worst_frac = e / tol;
    }
    printf("%-34s n=%-8lld max|err|=%.3e (%5.1f%% of tol) not bit-equal %lld%s\n", what, (long long)n, worst,
           100.0 * worst_frac, (long long)differ, bad ? "  FAIL" : "");
    return bad;
}

/* The same for floats (widened exactly to double, so "bit-equal" is the floats'). */
static inline int64_t cc_compare_f32(const char *what, const float *want, const float *got, int64_t n, double rel,
                                     double abs_tol) {
    size_t cap = (size_t)(n > 0 ? n : 1);
    double *w = cc_malloc(sizeof(double) * cap), *g = cc_malloc(sizeof(double) * cap);
    for (int64_t i = 0; i < n; ++i) {
        w[i] = want[i];
        g[i] = got[i];
    }
    int64_t bad = cc_compare_f64(what, w, g, n, rel, abs_tol);
    free(w);
    free(g);
    return bad;
}

#endif /* PFGM_TESTS_GPU_CUDA_COMPARE_H */
