/* The core backend ops on the CPU: the fast path (OpenBLAS/OpenMP) against the plain-loop
 * reference, and the reference against the definitions. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "pfgm/backend.h"
#include "pfgm/ops.h"

typedef struct { pfgm_backend *fast, *ref; } fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    if (pfgm_backend_create("cpu", &f->fast) != PFGM_OK) return -1;
    if (pfgm_backend_create("cpu-reference", &f->ref) != PFGM_OK) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    pfgm_backend_destroy(f->fast);
    pfgm_backend_destroy(f->ref);
    free(f);
    return 0;
}

static void randn(float *x, int64_t n, uint32_t stream) {
    pfgm_rng r = {.seed = 5, .rank = 0, .stream = PFGM_STREAM_USER + stream, .step = 0};
    pfgm_rng_normal(&r, 0, (size_t)n, x);
}

static void test_caps_and_names(void **state) {
    fixture *f = *state;
    assert_string_equal(f->fast->name, "cpu");
    assert_string_equal(f->ref->name, "cpu-reference");
    assert_true(f->ref->caps(f->ref) & PFGM_CAP_REFERENCE);
    assert_true(f->fast->caps(f->fast) & PFGM_CAP_BLAS);
    assert_false(f->fast->caps(f->fast) & PFGM_CAP_DEVICE_MEMORY);
    pfgm_backend *be = NULL;
    assert_int_equal(pfgm_backend_create("tpu", &be), PFGM_ERR_INVALID_ARG);
    assert_null(be);
    assert_non_null(strstr(pfgm_error_message(), "tpu"));
}

static void test_alloc_copy(void **state) {
    fixture *f = *state;
    float *d = NULL;
    assert_int_equal(f->fast->alloc(f->fast, 1000 * sizeof(float), (void **)&d), PFGM_OK);
    assert_non_null(d);
    assert_int_equal((uintptr_t)d % 64, 0);
    for (int i = 0; i < 1000; ++i) assert_true(d[i] == 0.0f); /* zeroed */
    float h[1000], back[1000];
    randn(h, 1000, 1);
    assert_int_equal(pfgm_backend_upload(f->fast, d, h, 1000), PFGM_OK);
    assert_int_equal(pfgm_backend_download(f->fast, back, d, 1000), PFGM_OK);
    assert_memory_equal(h, back, sizeof h);
    assert_int_equal(f->fast->memzero(f->fast, d, 10 * sizeof(float)), PFGM_OK);
    assert_true(d[9] == 0.0f && d[10] == h[10]);
    f->fast->free(f->fast, d);
    void *z = (void *)1;
    assert_int_equal(f->fast->alloc(f->fast, 0, &z), PFGM_OK);
    assert_null(z);
}

/* The argument check of gemm, made once for every backend by the front end (pfgm_op_gemm,
 * ops.c): leading dimensions of at least 1 even for k = 0 (cuBLAS refuses 0), sizes and
 * leading dimensions that a 32-bit BLAS index holds, negative sizes; refused before any
 * memory is touched (NULL pointers here), on both CPU modes. A valid k = 0 product scales C
 * by beta. A backend without the op is refused with PFGM_ERR_UNSUPPORTED naming both. */
static void test_gemm_argument_check(void **state) {
    fixture *f = *state;
    pfgm_backend *bes[2] = {f->fast, f->ref};
    const int64_t big = (int64_t)1 << 31;
    struct { int ta, tb; int64_t m, n, k, lda, ldb, ldc; } bad[] = {
        {0, 0, 2, 2, 0, 0, 2, 2},        /* k = 0: lda 0 < 1 */
        {0, 0, 2, 2, 0, 1, 0, 2},        /* k = 0, trans_b = 0: ldb 0 < n */
        {0, 1, 2, 2, 0, 1, 0, 2},        /* k = 0, trans_b: ldb 0 < 1 */
        {0, 0, 0, 0, 0, 1, 1, 0},        /* n = 0: ldc 0 < 1 */
        {0, 0, -1, 2, 2, 2, 2, 2},       /* negative m */
        {0, 0, big, 1, 1, 1, 1, 1},      /* m beyond a 32-bit index */
        {0, 0, 1, 1, big, big, 1, 1},    /* k and lda beyond it */
        {1, 0, 4, 4, 4, 3, 4, 4},        /* trans_a: lda 3 < m */
    };
    for (int b = 0; b < 2; ++b)
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
            pfgm_status st = pfgm_op_gemm(bes[b], bad[i].ta, bad[i].tb, bad[i].m, bad[i].n, bad[i].k, 1.0f, NULL,
                                          bad[i].lda, NULL, bad[i].ldb, 0.0f, NULL, bad[i].ldc);
            if (st != PFGM_ERR_INVALID_ARG) fail_msg("%s case %zu: status %d", bes[b]->name, i, (int)st);
            assert_non_null(strstr(pfgm_error_message(), "gemm: bad shape"));
        }
    for (int b = 0; b < 2; ++b) {
        float c[4] = {1, 2, 3, 4};
        assert_int_equal(pfgm_op_gemm(bes[b], 0, 0, 2, 2, 0, 1.0f, NULL, 1, NULL, 2, 0.5f, c, 2), PFGM_OK);
        assert_true(c[0] == 0.5f && c[3] == 2.0f);
    }
    pfgm_backend bare = *f->ref; /* a copy of the table without the op */
    bare.gemm = NULL;
    float c[4] = {0};
    assert_int_equal(pfgm_op_gemm(&bare, 0, 0, 2, 2, 0, 1.0f, NULL, 1, NULL, 2, 0.5f, c, 2), PFGM_ERR_UNSUPPORTED);
    assert_non_null(strstr(pfgm_error_message(), "gemm: backend 'cpu-reference' lacks the op"));
}

/* Every transpose combination, odd sizes, leading dimensions larger than the width. */
static void test_gemm(void **state) {
    fixture *f = *state;
    const int64_t m = 37, n = 29, k = 53, pad = 3;
    for (int ta = 0; ta < 2; ++ta)
        for (int tb = 0; tb < 2; ++tb) {
            int64_t lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
            int64_t arows = ta ? k : m, brows = tb ? n : k;
            float *a = malloc(sizeof(float) * arows * lda), *b = malloc(sizeof(float) * brows * ldb);
            float *c0 = malloc(sizeof(float) * m * ldc), *c1 = malloc(sizeof(float) * m * ldc);
            randn(a, arows * lda, 2);
            randn(b, brows * ldb, 3);
            randn(c0, m * ldc, 4);
            memcpy(c1, c0, sizeof(float) * m * ldc);
            const float alpha = 0.75f, beta = -0.5f;
            assert_int_equal(f->ref->gemm(f->ref, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c0, ldc), PFGM_OK);
            assert_int_equal(f->fast->gemm(f->fast, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c1, ldc), PFGM_OK);
            for (int64_t i = 0; i < m; ++i)
                for (int64_t j = 0; j < n; ++j) assert_float_equal(c0[i * ldc + j], c1[i * ldc + j], 1e-4);
            free(a); free(b); free(c0); free(c1);
        }
    float dummy = 0;
    assert_int_equal(pfgm_op_gemm(f->fast, 0, 0, 2, 2, 2, 1, &dummy, 1, &dummy, 2, 0, &dummy, 2), PFGM_ERR_INVALID_ARG);
}

/* The reference gemm against a hand-computed product. */
static void test_gemm_definition(void **state) {
    fixture *f = *state;
    const float a[6] = {1, 2, 3, 4, 5, 6};     /* [2,3] */
    const float b[6] = {7, 8, 9, 10, 11, 12};  /* [3,2] */
    float c[4] = {1, 1, 1, 1};
    assert_int_equal(f->ref->gemm(f->ref, 0, 0, 2, 2, 3, 1.0f, a, 3, b, 2, 2.0f, c, 2), PFGM_OK);
    assert_float_equal(c[0], 58 + 2, 0);
    assert_float_equal(c[1], 64 + 2, 0);
    assert_float_equal(c[2], 139 + 2, 0);
    assert_float_equal(c[3], 154 + 2, 0);
}

static void test_elementwise_and_reductions(void **state) {
    fixture *f = *state;
    enum { n = 200003 };
    float *x = malloc(n * sizeof(float)), *y0 = malloc(n * sizeof(float)), *y1 = malloc(n * sizeof(float));
    randn(x, n, 5);
    randn(y0, n, 6);
    memcpy(y1, y0, n * sizeof(float));
    assert_int_equal(f->ref->axpby(f->ref, n, 2.0f, x, -0.5f, y0), PFGM_OK);
    assert_int_equal(f->fast->axpby(f->fast, n, 2.0f, x, -0.5f, y1), PFGM_OK);
    assert_memory_equal(y0, y1, n * sizeof(float));
    double d0, d1, dd = 0;
    for (int i = 0; i < n; ++i) dd += (double)x[i] * y0[i];
    assert_int_equal(f->ref->dot(f->ref, n, x, y0, &d0), PFGM_OK);
    assert_int_equal(f->fast->dot(f->fast, n, x, y0, &d1), PFGM_OK);
    assert_float_equal(d0, dd, 1e-9 * fabs(dd) + 1e-9);
    assert_float_equal(d1, dd, 1e-9 * fabs(dd) + 1e-9);
    assert_int_equal(f->fast->fill(f->fast, n, 3.5f, y1), PFGM_OK);
    assert_true(y1[0] == 3.5f && y1[n - 1] == 3.5f);

    /* row_sumsq with a leading dimension */
    const int64_t rows = 13, cols = 1000, ld = 1003;
    float out0[13], out1[13];
    assert_int_equal(f->ref->row_sumsq(f->ref, rows, cols, x, ld, out0), PFGM_OK);
    assert_int_equal(f->fast->row_sumsq(f->fast, rows, cols, x, ld, out1), PFGM_OK);
    for (int r = 0; r < rows; ++r) {
        double s = 0;
        for (int c = 0; c < cols; ++c) s += (double)x[r * ld + c] * x[r * ld + c];
        assert_float_equal(out0[r], s, 1e-5 * s);
        assert_float_equal(out1[r], s, 1e-5 * s);
    }
    free(x); free(y0); free(y1);
}

static void test_softmax_rows(void **state) {
    fixture *f = *state;
    /* large magnitudes: exp would overflow without max subtraction (log-domain weights) */
    float x[2][4] = {{1000.0f, 999.0f, -1e30f, 1000.0f}, {-3000.0f, -3001.0f, -3002.0f, -3003.0f}};
    assert_int_equal(f->fast->softmax_rows(f->fast, 2, 4, &x[0][0]), PFGM_OK);
    double e1 = exp(-1.0);
    assert_float_equal(x[0][0], 1 / (2 + e1), 1e-6);
    assert_float_equal(x[0][1], e1 / (2 + e1), 1e-6);
    assert_float_equal(x[0][2], 0.0, 0);
    double z = 1 + e1 + exp(-2.0) + exp(-3.0);
    assert_float_equal(x[1][0], 1 / z, 1e-6);
    assert_float_equal(x[1][3], exp(-3.0) / z, 1e-6);
}

static void test_rng_fills_match_rng_h(void **state) {
    fixture *f = *state;
    enum { n = 10007 };
    pfgm_rng r = {.seed = 49, .rank = 3, .stream = PFGM_STREAM_PERTURB, .step = 12};
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
    assert_int_equal(f->fast->fill_normal(f->fast, &r, 17, n, a), PFGM_OK);
    pfgm_rng_normal(&r, 17, n, b);
    assert_memory_equal(a, b, n * sizeof(float));
    assert_int_equal(f->ref->fill_uniform(f->ref, &r, 5, n, a), PFGM_OK);
    pfgm_rng_uniform(&r, 5, n, b);
    assert_memory_equal(a, b, n * sizeof(float));
    free(a); free(b);
}

static void test_silu(void **state) {
    fixture *f = *state;
    enum { n = 64 };
    float x[n], y[n], dy[n], dx[n];
    for (int i = 0; i < n; ++i) {
        x[i] = -8.0f + 0.25f * i;
        dy[i] = 1.0f;
    }
    assert_int_equal(f->ref->silu_fwd(f->ref, n, x, y), PFGM_OK);
    assert_int_equal(f->ref->silu_bwd(f->ref, n, x, dy, dx, 0), PFGM_OK);
    for (int i = 0; i < n; ++i) {
        double xd = x[i], s = 1 / (1 + exp(-xd));
        assert_float_equal(y[i], xd * s, 1e-6);
        double h = 1e-3, fd = ((xd + h) / (1 + exp(-(xd + h))) - (xd - h) / (1 + exp(-(xd - h)))) / (2 * h);
        assert_float_equal(dx[i], fd, 1e-5);
    }
    assert_int_equal(f->ref->silu_bwd(f->ref, n, x, dy, dx, 1), PFGM_OK); /* accumulate doubles it */
    for (int i = 0; i < n; ++i) {
        double xd = x[i], s = 1 / (1 + exp(-xd));
        assert_float_equal(dx[i], 2 * s * (1 + xd * (1 - s)), 1e-5);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_caps_and_names),
        cmocka_unit_test(test_alloc_copy),
        cmocka_unit_test(test_gemm),
        cmocka_unit_test(test_gemm_argument_check),
        cmocka_unit_test(test_gemm_definition),
        cmocka_unit_test(test_elementwise_and_reductions),
        cmocka_unit_test(test_softmax_rows),
        cmocka_unit_test(test_rng_fills_match_rng_h),
        cmocka_unit_test(test_silu),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
