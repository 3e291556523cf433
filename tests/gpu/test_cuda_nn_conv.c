/* The CUDA backend's matrix-product network ops against the cpu-reference backend (label gpu):
 * conv2d forward and backward (1x1 and 3x3, with and without bias, dx written, accumulated or
 * not wanted, weight/bias gradients accumulated onto non-zero values, the batch split into
 * chunks by a small workspace, too small a workspace refused, the same bits run to run) and
 * the strided batched gemm (every transpose pair, padded leading dimensions, a broadcast A,
 * and the stride_c = 0 reduction). Exits 77 (SKIPPED) without a CUDA device.
 *
 * Tolerance (max error over the tensor's max magnitude, tests/gpu/cuda_nn_testutil.h): the
 * GPU sums K products in float32 (cuBLAS, default fp32 math: no TF32 unless the backend is
 * told so), the reference in double. Rounding errors grow like eps * sqrt(K) * |term| while
 * the outputs are ~ sqrt(K) * |term|, so the expected error is a few eps (~1e-7) for the
 * sizes here (K <= 4096); 2e-5 leaves a hundredfold margin yet catches any wrong tap, offset,
 * transpose or chunk (errors of order 1). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "cuda_nn_testutil.h"

#define TOL_GEMM 2e-5

typedef struct conv_shape {
    int64_t batch, cin, cout, h, w;
    int k;
} conv_shape;

static void conv_case(const conv_shape *s, int bias, int small_ws, uint32_t key) {
    const int64_t hw = s->h * s->w, nx = s->batch * s->cin * hw, ny = s->batch * s->cout * hw;
    const int64_t nw = s->cout * s->cin * s->k * s->k;
    float *x = cg_randn(nx, key, 1.0f, 0.0f), *wt = cg_randn(nw, key + 1, 0.3f, 0.0f);
    float *b = cg_randn(s->cout, key + 2, 1.0f, 0.0f), *dy = cg_randn(ny, key + 3, 1.0f, 0.0f);
    float *dx0 = cg_randn(nx, key + 4, 1.0f, 0.0f), *dw0 = cg_randn(nw, key + 5, 1.0f, 0.0f);
    float *db0 = cg_randn(s->cout, key + 6, 1.0f, 0.0f), *y = cg_host(ny);
    float *x_ = cg_dev(x, nx), *wt_ = cg_dev(wt, nw), *b_ = cg_dev(b, s->cout), *dy_ = cg_dev(dy, ny);
    float *y_ = nt_alloc(&cg_pool, ny), *dx_ = nt_alloc(&cg_pool, nx), *dw_ = nt_alloc(&cg_pool, nw);
    float *db_ = nt_alloc(&cg_pool, s->cout);
    /* the workspace for the whole batch, or for 2 images: the batch then runs in chunks */
    const int64_t ws_batch = small_ws ? 2 : s->batch;
    size_t wsb = cg_gpu->conv2d_workspace(cg_gpu, ws_batch, s->cin, s->cout, s->h, s->w, s->k);
    assert_true(wsb > 0);
    void *ws = nt_alloc(&cg_pool, (int64_t)(wsb / sizeof(float)) + 1);
    char tag[128], what[192];
    snprintf(tag, sizeof tag, "conv%dx%d b%lld %lld->%lld %lldx%lld%s%s", s->k, s->k, (long long)s->batch,
             (long long)s->cin, (long long)s->cout, (long long)s->h, (long long)s->w, bias ? " bias" : "",
             small_ws ? " chunks of 2" : "");

    assert_int_equal(cg_ref->conv2d_fwd(cg_ref, s->batch, s->cin, s->cout, s->h, s->w, s->k, x, wt, bias ? b : NULL, y,
                                        NULL, 0),
                     PFGM_OK);
    assert_int_equal(cg_gpu->conv2d_fwd(cg_gpu, s->batch, s->cin, s->cout, s->h, s->w, s->k, x_, wt_, bias ? b_ : NULL,
                                        y_, ws, wsb),
                     PFGM_OK);
    snprintf(what, sizeof what, "%s fwd", tag);
    cg_expect_dev(what, y_, y, ny, TOL_GEMM);

    for (int mode = 0; mode < 3; ++mode) { /* dx written + db, dx accumulated without db, no dx */
        float *dx = cg_dup(dx0, nx), *dw = cg_dup(dw0, nw), *db = cg_dup(db0, s->cout);
        assert_int_equal(pfgm_backend_upload(cg_gpu, dx_, dx0, nx), PFGM_OK);
        assert_int_equal(pfgm_backend_upload(cg_gpu, dw_, dw0, nw), PFGM_OK);
        assert_int_equal(pfgm_backend_upload(cg_gpu, db_, db0, s->cout), PFGM_OK);
        float *rdx = mode == 2 ? NULL : dx, *gdx = mode == 2 ? NULL : dx_;
        float *rdb = mode == 1 ? NULL : db, *gdb = mode == 1 ? NULL : db_;
        assert_int_equal(cg_ref->conv2d_bwd(cg_ref, s->batch, s->cin, s->cout, s->h, s->w, s->k, x, wt, dy, rdx,
                                            mode == 1, dw, rdb, NULL, 0),
                         PFGM_OK);
        assert_int_equal(cg_gpu->conv2d_bwd(cg_gpu, s->batch, s->cin, s->cout, s->h, s->w, s->k, x_, wt_, dy_, gdx,
                                            mode == 1, dw_, gdb, ws, wsb),
                         PFGM_OK);
        const char *m = mode == 0 ? "" : mode == 1 ? " (dx accumulate, no db)" : " (no dx)";
        snprintf(what, sizeof what, "%s bwd dx%s", tag, m);
        cg_expect_dev(what, dx_, dx, nx, TOL_GEMM);
        snprintf(what, sizeof what, "%s bwd dw%s", tag, m);
        cg_expect_dev(what, dw_, dw, nw, TOL_GEMM);
        snprintf(what, sizeof what, "%s bwd db%s", tag, m);
        cg_expect_dev(what, db_, db, s->cout, TOL_GEMM);
        if (mode == 0) { /* deterministic: the same call again gives the same bits */
            float *first_dx = cg_get(dx_, nx), *first_dw = cg_get(dw_, nw), *first_db = cg_get(db_, s->cout);
            assert_int_equal(pfgm_backend_upload(cg_gpu, dw_, dw0, nw), PFGM_OK);
            assert_int_equal(pfgm_backend_upload(cg_gpu, db_, db0, s->cout), PFGM_OK);
            assert_int_equal(cg_gpu->conv2d_bwd(cg_gpu, s->batch, s->cin, s->cout, s->h, s->w, s->k, x_, wt_, dy_, dx_,
                                                0, dw_, db_, ws, wsb),
                             PFGM_OK);
            snprintf(what, sizeof what, "%s bwd, second run: dx", tag);
            cg_expect_dev(what, dx_, first_dx, nx, 0);
            snprintf(what, sizeof what, "%s bwd, second run: dw", tag);
            cg_expect_dev(what, dw_, first_dw, nw, 0);
            snprintf(what, sizeof what, "%s bwd, second run: db", tag);
            cg_expect_dev(what, db_, first_db, s->cout, 0);
            free(first_dx); free(first_dw); free(first_db);
        }
        free(dx); free(dw); free(db);
    }
    free(x); free(wt); free(b); free(dy); free(dx0); free(dw0); free(db0); free(y);
    cg_release();
}

static void test_conv2d(void **state) {
    (void)state;
    const conv_shape shapes[] = {
        {3, 4, 5, 7, 5, 3},    /* odd sizes, every border case of the 3x3 taps */
        {2, 3, 8, 4, 4, 3},    /* DDPM++'s lowest resolution */
        {5, 8, 6, 6, 6, 3},    /* 5 images: chunks of 2, 2, 1 with the small workspace */
        {2, 32, 64, 16, 16, 3},/* K = 288, wider outputs */
        {4, 16, 8, 8, 8, 1},   /* 1x1 (NIN-like skip convs) */
        {3, 5, 7, 3, 5, 1},
        {1, 64, 32, 8, 8, 3},  /* one image */
    };
    uint32_t key = 200;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; ++i)
        for (int bias = 0; bias < 2; ++bias)
            for (int small = 0; small < 2; ++small) {
                if (small && shapes[i].batch <= 2) continue;
                conv_case(&shapes[i], bias, small, key);
                key += 10;
            }
}

/* Too small a workspace is refused with PFGM_ERR_INVALID_ARG, as on the CPU fast path. */
static void test_conv2d_workspace_refused(void **state) {
    (void)state;
    float *d = nt_alloc(&cg_pool, 4096);
    for (int k = 1; k <= 3; k += 2) {
        size_t need = cg_gpu->conv2d_workspace(cg_gpu, 2, 4, 4, 8, 8, k);
        printf("  conv%dx%d 2 images 4->4 8x8: workspace %zu bytes\n", k, k, need);
        assert_true(need > 0);
        if (k == 3)
            assert_int_equal(cg_gpu->conv2d_fwd(cg_gpu, 2, 4, 4, 8, 8, k, d, d, NULL, d, d, 16), PFGM_ERR_INVALID_ARG);
        assert_int_equal(cg_gpu->conv2d_bwd(cg_gpu, 2, 4, 4, 8, 8, k, d, d, d, d, 0, d, d, d, 16), PFGM_ERR_INVALID_ARG);
        assert_non_null(strstr(pfgm_error_message(), "workspace"));
    }
    assert_int_equal(cg_gpu->conv2d_workspace(cg_gpu, 0, 4, 4, 8, 8, 3), 0);
    cg_release();
}

static void gemm_case(int ta, int tb, int64_t m, int64_t n, int64_t k, int64_t pad, int64_t batch, int broadcast_a,
                      int reduce, float beta, uint32_t key) {
    const int64_t lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
    const int64_t rows_a = ta ? k : m, rows_b = tb ? n : k;
    const int64_t sa = broadcast_a ? 0 : rows_a * lda + pad, sb = rows_b * ldb + pad, sc = reduce ? 0 : m * ldc + pad;
    const int64_t na = (broadcast_a ? 1 : batch) * (rows_a * lda + pad), nb = batch * sb;
    const int64_t nc = reduce ? m * ldc : batch * sc;
    float *a = cg_randn(na, key, 1.0f, 0.0f), *b = cg_randn(nb, key + 1, 1.0f, 0.0f), *c = cg_randn(nc, key + 2, 1.0f, 0.0f);
    float *a_ = cg_dev(a, na), *b_ = cg_dev(b, nb), *c_ = cg_dev(c, nc);
    assert_int_equal(cg_ref->gemm_batched(cg_ref, ta, tb, m, n, k, 0.75f, a, lda, sa, b, ldb, sb, beta, c, ldc, sc, batch),
                     PFGM_OK);
    assert_int_equal(
        cg_gpu->gemm_batched(cg_gpu, ta, tb, m, n, k, 0.75f, a_, lda, sa, b_, ldb, sb, beta, c_, ldc, sc, batch), PFGM_OK);
    char what[160];
    snprintf(what, sizeof what, "gemm_batched %c%c %lldx%lldx%lld pad %lld batch %lld%s%s beta %g", ta ? 'T' : 'N',
             tb ? 'T' : 'N', (long long)m, (long long)n, (long long)k, (long long)pad, (long long)batch,
             broadcast_a ? " A shared" : "", reduce ? " reduce" : "", (double)beta);
    /* the padding between and beside the matrices is compared too: it must stay untouched */
    cg_expect_dev(what, c_, c, nc, TOL_GEMM);
    free(a); free(b); free(c);
    cg_release();
}

static void test_gemm_batched(void **state) {
    (void)state;
    uint32_t key = 400;
    for (int ta = 0; ta < 2; ++ta)
        for (int tb = 0; tb < 2; ++tb) {
            gemm_case(ta, tb, 17, 23, 31, 0, 5, 0, 0, 0.0f, key += 3);
            gemm_case(ta, tb, 17, 23, 31, 3, 5, 0, 0, 0.5f, key += 3);
            gemm_case(ta, tb, 17, 23, 31, 2, 4, 1, 0, 0.0f, key += 3);
            gemm_case(ta, tb, 17, 23, 31, 0, 6, 0, 1, 1.0f, key += 3);
            gemm_case(ta, tb, 9, 5, 64, 1, 3, 0, 1, 0.5f, key += 3);
        }
    /* attention's shapes (spec §3.1): scores q^T k over 64 pixels of 32 channels, and back */
    gemm_case(1, 0, 64, 64, 32, 0, 4, 0, 0, 0.0f, key += 3);
    gemm_case(0, 1, 32, 64, 64, 0, 4, 0, 0, 0.0f, key += 3);
    /* a NIN weight gradient: the reduction over 8 images of 256 pixels */
    gemm_case(0, 1, 48, 40, 256, 0, 8, 0, 1, 1.0f, key += 3);
}

int main(void) {
    if (cg_skip("test_cuda_nn_conv")) return 77;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv2d),
        cmocka_unit_test(test_conv2d_workspace_refused),
        cmocka_unit_test(test_gemm_batched),
    };
    return cmocka_run_group_tests(tests, cg_setup, cg_teardown);
}
