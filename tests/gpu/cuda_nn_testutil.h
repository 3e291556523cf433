/* Helpers of the CUDA network-op tests (tests/gpu/test_cuda_nn*.c): the two backends under
 * comparison (the CUDA backend and the cpu-reference spec), device buffers freed together,
 * random host tensors from Philox, and the comparison that prints and asserts.
 *
 * Comparison: err = max_i |got_i - want_i| / max(max_i |want_i|, 1e-30), i.e. the largest
 * error in units of the tensor's scale, which is what a float32 result with a given number of
 * good bits achieves whatever the sign pattern; tol 0 demands the same bits (memcmp).
 * Header-only (static inline); include after cmocka.h. */
#ifndef PFGM_TESTS_GPU_CUDA_NN_TESTUTIL_H
#define PFGM_TESTS_GPU_CUDA_NN_TESTUTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn_testutil.h"
#include "pfgm/backend.h"

static pfgm_backend *cg_gpu, *cg_ref;
static nt_pool cg_pool; /* device buffers of the running test, freed by cg_release() */

static inline int cg_setup(void **state) {
    (void)state;
    if (pfgm_backend_create("cuda", &cg_gpu) != PFGM_OK) {
        fprintf(stderr, "cannot create the cuda backend: %s\n", pfgm_error_message());
        return -1;
    }
    if (pfgm_backend_create("cpu-reference", &cg_ref) != PFGM_OK) {
        fprintf(stderr, "cannot create the cpu-reference backend: %s\n", pfgm_error_message());
        return -1;
    }
    cg_pool.be = cg_gpu;
    return 0;
}

static inline int cg_teardown(void **state) {
    (void)state;
    pfgm_backend_destroy(cg_gpu);
    pfgm_backend_destroy(cg_ref);
    return 0;
}

/* 1 (after printing the SKIPPED line) when the tests cannot run here. */
static inline int cg_skip(const char *prog) {
    if (pfgm_backend_cuda_available()) return 0;
    printf("SKIPPED: no CUDA device (or pfgm built without CUDA): %s not run\n", prog);
    return 1;
}

static inline float *cg_host(int64_t n) {
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    assert_non_null(p);
    return p;
}

/* Host tensor: mean + scale * N(0,1), Philox keyed by `key`. */
static inline float *cg_randn(int64_t n, uint32_t key, float scale, float mean) {
    float *p = cg_host(n);
    nt_randn(p, n, key, scale, mean);
    return p;
}

static inline float *cg_dup(const float *h, int64_t n) {
    float *p = cg_host(n);
    memcpy(p, h, (size_t)n * sizeof(float));
    return p;
}

/* Device copy of a host tensor (freed by cg_release). */
static inline float *cg_dev(const float *h, int64_t n) {
    float *d = nt_alloc(&cg_pool, n);
    assert_int_equal(pfgm_backend_upload(cg_gpu, d, h, n), PFGM_OK);
    return d;
}

static inline void cg_release(void) { nt_pool_free(&cg_pool); }

/* Downloads the device tensor d into a new host array. */
static inline float *cg_get(const float *d, int64_t n) {
    float *h = cg_host(n);
    assert_int_equal(pfgm_backend_download(cg_gpu, h, d, n), PFGM_OK);
    return h;
}

/* Compares got (host) with want; prints the error; fails beyond tol (see the file comment). */
static inline void cg_expect(const char *what, const float *got, const float *want, int64_t n, double tol) {
    if (tol == 0.0) {
        int64_t first = -1;
        for (int64_t i = 0; i < n && first < 0; ++i)
            if (memcmp(&got[i], &want[i], sizeof(float)) != 0) first = i;
        printf("  %-40s n=%-8lld %s\n", what, (long long)n, first < 0 ? "same bits" : "DIFFERENT BITS");
        if (first >= 0)
            fail_msg("%s: element %lld is %.9g on the GPU, %.9g on the CPU reference", what, (long long)first,
                     (double)got[first], (double)want[first]);
        return;
    }
    double mx = 0.0, scale = 0.0;
    int64_t at = 0;
    for (int64_t i = 0; i < n; ++i) {
        double e = fabs((double)got[i] - (double)want[i]);
        if (!(e <= mx)) { /* NaN sticks */
            mx = e;
            at = i;
        }
        if (fabs((double)want[i]) > scale) scale = fabs((double)want[i]);
    }
    const double err = mx / (scale > 1e-30 ? scale : 1e-30);
    printf("  %-40s n=%-8lld max.err/max %.2e (tol %.0e)\n", what, (long long)n, err, tol);
    if (!(err <= tol))
        fail_msg("%s: max error %.3e of the scale %.3e at element %lld (GPU %.9g, CPU reference %.9g), tolerance %.0e",
                 what, mx, scale, (long long)at, n ? (double)got[at] : 0.0, n ? (double)want[at] : 0.0, tol);
}

/* Downloads d and compares it with want. */
static inline void cg_expect_dev(const char *what, const float *d, const float *want, int64_t n, double tol) {
    float *h = cg_get(d, n);
    cg_expect(what, h, want, n, tol);
    free(h);
}

#endif /* PFGM_TESTS_GPU_CUDA_NN_TESTUTIL_H */
