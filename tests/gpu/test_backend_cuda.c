/* The CUDA backend's core ops against the CPU reference (label gpu). Exits 77, which CTest
 * reports as SKIPPED, when pfgm was built without CUDA or no device is visible. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "pfgm/backend.h"
#include "pfgm/config.h"

static pfgm_backend *gpu_, *ref_;

static float *dev_upload(const float *h, int64_t n) {
    float *d = NULL;
    assert_int_equal(gpu_->alloc(gpu_, (size_t)n * sizeof(float), (void **)&d), PFGM_OK);
    assert_int_equal(pfgm_backend_upload(gpu_, d, h, n), PFGM_OK);
    return d;
}

static void dev_download(float *h, const float *d, int64_t n) {
    assert_int_equal(pfgm_backend_download(gpu_, h, d, n), PFGM_OK);
}

static void randn(float *x, int64_t n, uint32_t s) {
    pfgm_rng r = {.seed = 11, .rank = 0, .stream = PFGM_STREAM_USER + s, .step = 0};
    pfgm_rng_normal(&r, 0, (size_t)n, x);
}

static void test_gemm(void **state) {
    (void)state;
    const int64_t m = 67, n = 45, k = 129;
    for (int ta = 0; ta < 2; ++ta)
        for (int tb = 0; tb < 2; ++tb) {
            int64_t lda = ta ? m : k, ldb = tb ? k : n;
            float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * k * n);
            float *c0 = malloc(sizeof(float) * m * n), *c1 = malloc(sizeof(float) * m * n);
            randn(a, m * k, 1);
            randn(b, k * n, 2);
            randn(c0, m * n, 3);
            memcpy(c1, c0, sizeof(float) * m * n);
            float *da = dev_upload(a, m * k), *db = dev_upload(b, k * n), *dc = dev_upload(c1, m * n);
            assert_int_equal(ref_->gemm(ref_, ta, tb, m, n, k, 1.5f, a, lda, b, ldb, 0.5f, c0, n), PFGM_OK);
            assert_int_equal(gpu_->gemm(gpu_, ta, tb, m, n, k, 1.5f, da, lda, db, ldb, 0.5f, dc, n), PFGM_OK);
            dev_download(c1, dc, m * n);
            /* fp32 accumulation over k = 129 terms of unit normals: ~1e-5 relative */
            for (int64_t i = 0; i < m * n; ++i) assert_float_equal(c0[i], c1[i], 1e-3);
            gpu_->free(gpu_, da); gpu_->free(gpu_, db); gpu_->free(gpu_, dc);
            free(a); free(b); free(c0); free(c1);
        }
}

/* distributed.allow_tf32 reaches cuBLAS through the config mapping: false (the default)
 * keeps fp32 (no PFGM_CAP_TF32; a k = 2048 product of unit normals within ~1e-4 of the
 * reference), true sets TF32 math (PFGM_CAP_TF32; inputs rounded to 10 mantissa bits, an
 * error of ~1e-2 at that k: at least 10x the fp32 one). */
static double gemm_max_err(pfgm_backend *be, int64_t m, int64_t k) {
    float *a = malloc(sizeof(float) * m * k), *c0 = malloc(sizeof(float) * m * m), *c1 = malloc(sizeof(float) * m * m);
    randn(a, m * k, 7);
    float *da = NULL, *dc = NULL;
    assert_int_equal(be->alloc(be, sizeof(float) * m * k, (void **)&da), PFGM_OK);
    assert_int_equal(be->alloc(be, sizeof(float) * m * m, (void **)&dc), PFGM_OK);
    assert_int_equal(pfgm_backend_upload(be, da, a, m * k), PFGM_OK);
    assert_int_equal(ref_->gemm(ref_, 0, 1, m, m, k, 1.0f, a, k, a, k, 0.0f, c0, m), PFGM_OK);
    assert_int_equal(be->gemm(be, 0, 1, m, m, k, 1.0f, da, k, da, k, 0.0f, dc, m), PFGM_OK);
    assert_int_equal(pfgm_backend_download(be, c1, dc, m * m), PFGM_OK);
    double err = 0.0;
    for (int64_t i = 0; i < m * m; ++i) err = fmax(err, fabs((double)c0[i] - (double)c1[i]));
    be->free(be, da); be->free(be, dc);
    free(a); free(c0); free(c1);
    return err;
}

static void test_allow_tf32(void **state) {
    (void)state;
    pfgm_config cfg;
    pfgm_config_defaults(&cfg);
    cfg.distributed.backend = PFGM_BACKEND_CUDA;
    pfgm_backend *fp32 = NULL, *tf32 = NULL;
    assert_int_equal(pfgm_config_backend_create(&cfg, 0, &fp32), PFGM_OK);
    cfg.distributed.allow_tf32 = true;
    assert_int_equal(pfgm_config_backend_create(&cfg, 0, &tf32), PFGM_OK);
    assert_false(fp32->caps(fp32) & PFGM_CAP_TF32);
    assert_true(tf32->caps(tf32) & PFGM_CAP_TF32);
    const double e32 = gemm_max_err(fp32, 256, 2048), etf = gemm_max_err(tf32, 256, 2048);
    printf("k = 2048 product: max |error| fp32 %.3g, TF32 %.3g\n", e32, etf);
    assert_true(e32 < 1e-3);
    assert_true(etf > 10.0 * e32);
    pfgm_backend_destroy(fp32);
    pfgm_backend_destroy(tf32);
}

static void test_reductions_softmax_silu(void **state) {
    (void)state;
    const int64_t rows = 33, cols = 4099, n = rows * cols;
    float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n), *g = malloc(sizeof(float) * n);
    randn(x, n, 4);
    randn(y, n, 5);
    float *dx = dev_upload(x, n), *dy = dev_upload(y, n);
    double d0, d1;
    assert_int_equal(ref_->dot(ref_, n, x, y, &d0), PFGM_OK);
    assert_int_equal(gpu_->dot(gpu_, n, dx, dy, &d1), PFGM_OK);
    assert_float_equal(d0, d1, 1e-9 * (fabs(d0) + 1));
    float r0[33], r1[33], *dr = NULL;
    assert_int_equal(gpu_->alloc(gpu_, sizeof r1, (void **)&dr), PFGM_OK);
    assert_int_equal(ref_->row_sumsq(ref_, rows, cols, x, cols, r0), PFGM_OK);
    assert_int_equal(gpu_->row_sumsq(gpu_, rows, cols, dx, cols, dr), PFGM_OK);
    dev_download(r1, dr, rows);
    for (int i = 0; i < rows; ++i) assert_float_equal(r0[i], r1[i], 1e-5 * r0[i]);
    assert_int_equal(ref_->softmax_rows(ref_, rows, cols, x), PFGM_OK);
    assert_int_equal(gpu_->softmax_rows(gpu_, rows, cols, dx), PFGM_OK);
    dev_download(g, dx, n);
    for (int64_t i = 0; i < n; ++i) assert_float_equal(x[i], g[i], 1e-6 * fabs(x[i]) + 1e-9);
    randn(x, n, 6);
    assert_int_equal(pfgm_backend_upload(gpu_, dx, x, n), PFGM_OK);
    assert_int_equal(gpu_->silu_fwd(gpu_, n, dx, dy), PFGM_OK);
    assert_int_equal(ref_->silu_fwd(ref_, n, x, y), PFGM_OK);
    dev_download(g, dy, n);
    for (int64_t i = 0; i < n; ++i) assert_float_equal(y[i], g[i], 1e-6 * fabs(y[i]) + 1e-7);
    gpu_->free(gpu_, dx); gpu_->free(gpu_, dy); gpu_->free(gpu_, dr);
    free(x); free(y); free(g);
}

/* Philox fills: the same bits as the host for uniforms; normals within one float ulp
 * (double-precision libm on both sides, rounded to float). */
static void test_philox_same_bits(void **state) {
    (void)state;
    const int64_t n = 100003;
    float *h = malloc(sizeof(float) * n), *g = malloc(sizeof(float) * n), *d = NULL;
    assert_int_equal(gpu_->alloc(gpu_, sizeof(float) * n, (void **)&d), PFGM_OK);
    pfgm_rng r = {.seed = 49, .rank = 2, .stream = PFGM_STREAM_PERTURB, .step = 123456789012ull};
    assert_int_equal(gpu_->fill_uniform(gpu_, &r, 7, n, d), PFGM_OK);
    dev_download(g, d, n);
    pfgm_rng_uniform(&r, 7, (size_t)n, h);
    assert_memory_equal(h, g, sizeof(float) * n);
    assert_int_equal(gpu_->fill_normal(gpu_, &r, 3, n, d), PFGM_OK);
    dev_download(g, d, n);
    pfgm_rng_normal(&r, 3, (size_t)n, h);
    int64_t differ = 0;
    for (int64_t i = 0; i < n; ++i) {
        if (h[i] != g[i]) ++differ;
        assert_float_equal(h[i], g[i], 2e-7 * fabs(h[i]) + 1e-12);
    }
    printf("philox normals: %lld of %lld differ from the host in the last bit\n", (long long)differ, (long long)n);
    gpu_->free(gpu_, d);
    free(h); free(g);
}

int main(void) {
    if (!pfgm_backend_cuda_available()) {
        printf("SKIPPED: no CUDA device (or pfgm built without CUDA)\n");
        return 77;
    }
    if (pfgm_backend_create("cuda", &gpu_) != PFGM_OK || pfgm_backend_create("cpu-reference", &ref_) != PFGM_OK) {
        fprintf(stderr, "test_backend_cuda: %s\n", pfgm_error_message());
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm),
        cmocka_unit_test(test_allow_tf32),
        cmocka_unit_test(test_reductions_softmax_silu),
        cmocka_unit_test(test_philox_same_bits),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    pfgm_backend_destroy(gpu_);
    pfgm_backend_destroy(ref_);
    return rc;
}
