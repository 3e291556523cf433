/* The CUDA backend's network-layer ops against the cpu-reference backend (label gpu), forward
 * and backward, on random inputs, with the accumulate flags both ways: SiLU, softmax
 * backward, up/down sampling, broadcast add, channel copy, the z-field mean, the z embedding,
 * dropout, GroupNorm (with and without the fused SiLU); the argument errors of both backends
 * agree. Convolutions and batched gemm: test_cuda_nn_conv.c. Exits 77 (SKIPPED) when pfgm was
 * built without CUDA or no device is visible.
 *
 * Tolerances (max error over the tensor's max magnitude, tests/gpu/cuda_nn_testutil.h):
 *   0 (same bits)  ops with no reduction and no libm call, where the CUDA kernels perform the
 *                  CPU's float operations in the CPU's order (resampling, copies, broadcast
 *                  add, dropout's Philox mask and scale, the channel-mean backward);
 *   1e-6           one double-precision reduction rounded to float (order differs: at most
 *                  an ulp or two) or a libm exp (CUDA expf: 2 ulp; glibc: < 1 ulp);
 *   1e-5           GroupNorm's backward, whose dx = rstd (g - mean g - xhat mean(g xhat))
 *                  cancels: a few ulps of the terms relative to the result;
 *   z embedding    float arguments of sin/cos reach |a| ~ 20 (positional) or ~ 10^3 (Fourier,
 *                  W ~ N(0, 16^2) times 2 pi ln z): one ulp of logf/expf in the argument moves
 *                  sin/cos by |a| x 1.2e-7; the tolerances below are that bound with a margin. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "cuda_nn_testutil.h"
#include "pfgm/ops.h"

#define TOL_REDUCE 1e-6
#define TOL_GN_BWD 1e-5
#define TOL_ZEMB_POS 2e-5
#define TOL_ZEMB_POS_BWD 1e-4
#define TOL_ZEMB_FOURIER 5e-4
#define TOL_ZEMB_FOURIER_BWD 2e-3

static void test_silu(void **state) {
    (void)state;
    const int64_t n = 100003;
    float *x = cg_randn(n, 1, 3.0f, 0.0f), *dy = cg_randn(n, 2, 1.0f, 0.0f), *g0 = cg_randn(n, 3, 1.0f, 0.0f);
    float *y = cg_host(n), *dx = cg_dup(g0, n);
    float *dx_ = cg_dev(x, n), *dy_ = cg_dev(dy, n), *y_ = cg_dev(y, n), *g_ = cg_dev(g0, n);
    assert_int_equal(cg_ref->silu_fwd(cg_ref, n, x, y), PFGM_OK);
    assert_int_equal(cg_gpu->silu_fwd(cg_gpu, n, dx_, y_), PFGM_OK);
    cg_expect_dev("silu_fwd", y_, y, n, TOL_REDUCE);
    for (int acc = 0; acc < 2; ++acc) {
        memcpy(dx, g0, sizeof(float) * (size_t)n);
        assert_int_equal(pfgm_backend_upload(cg_gpu, g_, g0, n), PFGM_OK);
        assert_int_equal(cg_ref->silu_bwd(cg_ref, n, x, dy, dx, acc), PFGM_OK);
        assert_int_equal(cg_gpu->silu_bwd(cg_gpu, n, dx_, dy_, g_, acc), PFGM_OK);
        cg_expect_dev(acc ? "silu_bwd (accumulate)" : "silu_bwd", g_, dx, n, TOL_REDUCE);
    }
    free(x); free(dy); free(g0); free(y); free(dx);
    cg_release();
}

static void test_softmax_rows_bwd(void **state) {
    (void)state;
    const int64_t shapes[][2] = {{70, 256}, {5, 37}, {3, 1000}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; ++s) {
        const int64_t rows = shapes[s][0], cols = shapes[s][1], n = rows * cols;
        float *p = cg_randn(n, 10 + (uint32_t)s, 2.0f, 0.0f), *dp = cg_randn(n, 20 + (uint32_t)s, 1.0f, 0.0f);
        assert_int_equal(cg_ref->softmax_rows(cg_ref, rows, cols, p), PFGM_OK);
        float *p_ = cg_dev(p, n), *dp_ = cg_dev(dp, n);
        assert_int_equal(cg_ref->softmax_rows_bwd(cg_ref, rows, cols, p, dp), PFGM_OK);
        assert_int_equal(cg_gpu->softmax_rows_bwd(cg_gpu, rows, cols, p_, dp_), PFGM_OK);
        char what[64];
        snprintf(what, sizeof what, "softmax_rows_bwd %lldx%lld", (long long)rows, (long long)cols);
        cg_expect_dev(what, dp_, dp, n, TOL_REDUCE);
        free(p); free(dp);
    }
    cg_release();
}

static void test_resampling(void **state) {
    (void)state;
    const int64_t planes = 6, h = 6, w = 4, n = planes * h * w, n2 = 4 * n, nq = n / 4;
    float *x = cg_randn(n, 30, 1.0f, 0.0f), *dy2 = cg_randn(n2, 31, 1.0f, 0.0f), *dyq = cg_randn(nq, 32, 1.0f, 0.0f);
    float *base = cg_randn(n, 33, 1.0f, 0.0f);
    float *x_ = cg_dev(x, n), *dy2_ = cg_dev(dy2, n2), *dyq_ = cg_dev(dyq, nq);
    float *y2 = cg_host(n2), *yq = cg_host(nq), *dx = cg_host(n);
    float *y2_ = nt_alloc(&cg_pool, n2), *yq_ = nt_alloc(&cg_pool, nq), *dx_ = nt_alloc(&cg_pool, n);
    assert_int_equal(cg_ref->upsample2x_fwd(cg_ref, planes, h, w, x, y2), PFGM_OK);
    assert_int_equal(cg_gpu->upsample2x_fwd(cg_gpu, planes, h, w, x_, y2_), PFGM_OK);
    cg_expect_dev("upsample2x_fwd", y2_, y2, n2, 0);
    assert_int_equal(cg_ref->avgpool2x2_fwd(cg_ref, planes, h, w, x, yq), PFGM_OK);
    assert_int_equal(cg_gpu->avgpool2x2_fwd(cg_gpu, planes, h, w, x_, yq_), PFGM_OK);
    cg_expect_dev("avgpool2x2_fwd", yq_, yq, nq, 0);
    for (int acc = 0; acc < 2; ++acc) {
        memcpy(dx, base, sizeof(float) * (size_t)n);
        assert_int_equal(pfgm_backend_upload(cg_gpu, dx_, base, n), PFGM_OK);
        assert_int_equal(cg_ref->upsample2x_bwd(cg_ref, planes, h, w, dy2, dx, acc), PFGM_OK);
        assert_int_equal(cg_gpu->upsample2x_bwd(cg_gpu, planes, h, w, dy2_, dx_, acc), PFGM_OK);
        cg_expect_dev(acc ? "upsample2x_bwd (accumulate)" : "upsample2x_bwd", dx_, dx, n, 0);
        memcpy(dx, base, sizeof(float) * (size_t)n);
        assert_int_equal(pfgm_backend_upload(cg_gpu, dx_, base, n), PFGM_OK);
        assert_int_equal(cg_ref->avgpool2x2_bwd(cg_ref, planes, h, w, dyq, dx, acc), PFGM_OK);
        assert_int_equal(cg_gpu->avgpool2x2_bwd(cg_gpu, planes, h, w, dyq_, dx_, acc), PFGM_OK);
        cg_expect_dev(acc ? "avgpool2x2_bwd (accumulate)" : "avgpool2x2_bwd", dx_, dx, n, 0);
    }
    /* odd sizes through the upsample (pooling needs even ones) */
    const int64_t ho = 5, wo = 3, no = 2 * ho * wo;
    float *xo = cg_randn(no, 34, 1.0f, 0.0f), *yo = cg_host(4 * no);
    float *xo_ = cg_dev(xo, no), *yo_ = nt_alloc(&cg_pool, 4 * no);
    assert_int_equal(cg_ref->upsample2x_fwd(cg_ref, 2, ho, wo, xo, yo), PFGM_OK);
    assert_int_equal(cg_gpu->upsample2x_fwd(cg_gpu, 2, ho, wo, xo_, yo_), PFGM_OK);
    cg_expect_dev("upsample2x_fwd 5x3", yo_, yo, 4 * no, 0);
    free(x); free(dy2); free(dyq); free(base); free(y2); free(yq); free(dx); free(xo); free(yo);
    cg_release();
}

/* v_stride 0 (one bias), c (a per-sample vector), 2c (every other row of a wider buffer). */
static void test_bcast_add(void **state) {
    (void)state;
    const int64_t batch = 5, c = 12, hw = 300, n = batch * c * hw;
    const int64_t strides[] = {0, c, 2 * c};
    float *y0 = cg_randn(n, 40, 1.0f, 0.0f), *dy = cg_randn(n, 41, 1.0f, 0.0f);
    float *y0_ = cg_dev(y0, n), *dy_ = cg_dev(dy, n), *y_ = nt_alloc(&cg_pool, n);
    for (size_t s = 0; s < 3; ++s) {
        const int64_t vs = strides[s], nv = vs ? batch * vs : c;
        float *v = cg_randn(nv, 42 + (uint32_t)s, 1.0f, 0.0f), *y = cg_dup(y0, n), *dv = cg_randn(nv, 45, 1.0f, 0.0f);
        float *v_ = cg_dev(v, nv), *dv_ = cg_dev(dv, nv);
        char what[64];
        assert_int_equal(cg_gpu->copy(cg_gpu, y_, y0_, sizeof(float) * (size_t)n, PFGM_COPY_D2D), PFGM_OK);
        assert_int_equal(cg_ref->bcast_add_fwd(cg_ref, batch, c, hw, v, vs, y), PFGM_OK);
        assert_int_equal(cg_gpu->bcast_add_fwd(cg_gpu, batch, c, hw, v_, vs, y_), PFGM_OK);
        snprintf(what, sizeof what, "bcast_add_fwd v_stride %lld", (long long)vs);
        cg_expect_dev(what, y_, y, n, 0);
        for (int acc = 0; acc < 2; ++acc) {
            float *d = cg_dup(dv, nv);
            assert_int_equal(pfgm_backend_upload(cg_gpu, dv_, dv, nv), PFGM_OK);
            assert_int_equal(cg_ref->bcast_add_bwd(cg_ref, batch, c, hw, dy, vs, d, acc), PFGM_OK);
            assert_int_equal(cg_gpu->bcast_add_bwd(cg_gpu, batch, c, hw, dy_, vs, dv_, acc), PFGM_OK);
            snprintf(what, sizeof what, "bcast_add_bwd v_stride %lld%s", (long long)vs, acc ? " (accumulate)" : "");
            /* rows of 2c: the gaps between the written entries stay as they were */
            cg_expect_dev(what, dv_, d, nv, TOL_REDUCE);
            free(d);
        }
        free(v); free(y); free(dv);
    }
    free(y0); free(dy);
    cg_release();
}

static void test_copy_channels(void **state) {
    (void)state;
    const int64_t batch = 3, hw = 49, src_c = 5, dst_c = 7, nc = 3, src_c0 = 1, dst_c0 = 2;
    const int64_t ns = batch * src_c * hw, nd = batch * dst_c * hw;
    float *src = cg_randn(ns, 50, 1.0f, 0.0f), *d0 = cg_randn(nd, 51, 1.0f, 0.0f);
    float *src_ = cg_dev(src, ns), *dst_ = nt_alloc(&cg_pool, nd);
    for (int acc = 0; acc < 2; ++acc) {
        float *dst = cg_dup(d0, nd);
        assert_int_equal(pfgm_backend_upload(cg_gpu, dst_, d0, nd), PFGM_OK);
        assert_int_equal(cg_ref->copy_channels(cg_ref, batch, hw, nc, src, src_c, src_c0, dst, dst_c, dst_c0, acc),
                         PFGM_OK);
        assert_int_equal(cg_gpu->copy_channels(cg_gpu, batch, hw, nc, src_, src_c, src_c0, dst_, dst_c, dst_c0, acc),
                         PFGM_OK);
        cg_expect_dev(acc ? "copy_channels (accumulate)" : "copy_channels", dst_, dst, nd, 0);
        free(dst);
    }
    free(src); free(d0);
    cg_release();
}

static void test_channel_mean(void **state) {
    (void)state;
    const int64_t batch = 4, c = 3, hw = 1024, ch = 2, n = batch * c * hw;
    float *x = cg_randn(n, 60, 1.0f, 0.5f), *dout = cg_randn(batch, 61, 1.0f, 0.0f), *base = cg_randn(n, 62, 1.0f, 0.0f);
    float *x_ = cg_dev(x, n), *dout_ = cg_dev(dout, batch), *out_ = nt_alloc(&cg_pool, batch), *dx_ = nt_alloc(&cg_pool, n);
    float out[4];
    assert_int_equal(cg_ref->channel_mean_fwd(cg_ref, batch, c, hw, ch, x, out), PFGM_OK);
    assert_int_equal(cg_gpu->channel_mean_fwd(cg_gpu, batch, c, hw, ch, x_, out_), PFGM_OK);
    cg_expect_dev("channel_mean_fwd", out_, out, batch, TOL_REDUCE);
    for (int acc = 0; acc < 2; ++acc) {
        float *dx = cg_dup(base, n);
        assert_int_equal(pfgm_backend_upload(cg_gpu, dx_, base, n), PFGM_OK);
        assert_int_equal(cg_ref->channel_mean_bwd(cg_ref, batch, c, hw, ch, dout, dx, acc), PFGM_OK);
        assert_int_equal(cg_gpu->channel_mean_bwd(cg_gpu, batch, c, hw, ch, dout_, dx_, acc), PFGM_OK);
        cg_expect_dev(acc ? "channel_mean_bwd (accumulate)" : "channel_mean_bwd", dx_, dx, n, 0);
        free(dx);
    }
    free(x); free(dout); free(base);
    cg_release();
}

/* z in [0.05, 20] (the range of the network input z below z_max), both embeddings. */
static void test_zembed(void **state) {
    (void)state;
    const int64_t batch = 37;
    float *z = cg_host(batch);
    for (int64_t b = 0; b < batch; ++b) z[b] = 0.05f * powf(400.0f, (float)b / (float)(batch - 1));
    float *z_ = cg_dev(z, batch);
    for (int fourier = 0; fourier < 2; ++fourier) {
        const int64_t half = fourier ? 8 : 16, n = batch * 2 * half;
        float *w = cg_randn(half, 70, 16.0f, 0.0f), *dout = cg_randn(n, 71, 1.0f, 0.0f);
        float *out = cg_host(n), *dz0 = cg_randn(batch, 72, 1.0f, 0.0f);
        float *w_ = cg_dev(w, half), *dout_ = cg_dev(dout, n), *out_ = nt_alloc(&cg_pool, n);
        float *dz_ = nt_alloc(&cg_pool, batch);
        assert_int_equal(cg_ref->zembed_fwd(cg_ref, batch, half, fourier, z, w, out), PFGM_OK);
        assert_int_equal(cg_gpu->zembed_fwd(cg_gpu, batch, half, fourier, z_, w_, out_), PFGM_OK);
        cg_expect_dev(fourier ? "zembed_fwd fourier" : "zembed_fwd positional", out_, out, n,
                      fourier ? TOL_ZEMB_FOURIER : TOL_ZEMB_POS);
        for (int acc = 0; acc < 2; ++acc) {
            float *dz = cg_dup(dz0, batch);
            assert_int_equal(pfgm_backend_upload(cg_gpu, dz_, dz0, batch), PFGM_OK);
            assert_int_equal(cg_ref->zembed_bwd(cg_ref, batch, half, fourier, z, w, dout, dz, acc), PFGM_OK);
            assert_int_equal(cg_gpu->zembed_bwd(cg_gpu, batch, half, fourier, z_, w_, dout_, dz_, acc), PFGM_OK);
            char what[64];
            snprintf(what, sizeof what, "zembed_bwd %s%s", fourier ? "fourier" : "positional",
                     acc ? " (accumulate)" : "");
            cg_expect_dev(what, dz_, dz, batch, fourier ? TOL_ZEMB_FOURIER_BWD : TOL_ZEMB_POS_BWD);
            free(dz);
        }
        free(w); free(dout); free(out); free(dz0);
    }
    free(z);
    cg_release();
}

/* The mask comes from the Philox stream: the same bits as the CPU for any offset (here not a
 * multiple of the Philox block of 4) and any p, including 0 and 1. */
static void test_dropout(void **state) {
    (void)state;
    const int64_t n = 100001;
    const uint64_t offset = 6;
    const float ps[] = {0.1f, 0.5f, 0.0f, 1.0f};
    pfgm_rng r = {.seed = 5, .rank = 1, .stream = PFGM_STREAM_DROPOUT, .step = 77};
    float *x = cg_randn(n, 80, 1.0f, 0.0f), *base = cg_randn(n, 81, 1.0f, 0.0f);
    float *x_ = cg_dev(x, n), *y_ = nt_alloc(&cg_pool, n);
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; ++i) {
        float *y = cg_host(n);
        char what[64];
        assert_int_equal(cg_ref->dropout_fwd(cg_ref, n, ps[i], &r, offset, x, y), PFGM_OK);
        assert_int_equal(cg_gpu->dropout_fwd(cg_gpu, n, ps[i], &r, offset, x_, y_), PFGM_OK);
        snprintf(what, sizeof what, "dropout_fwd p=%g", (double)ps[i]);
        cg_expect_dev(what, y_, y, n, 0);
        for (int acc = 0; acc < 2; ++acc) {
            memcpy(y, base, sizeof(float) * (size_t)n);
            assert_int_equal(pfgm_backend_upload(cg_gpu, y_, base, n), PFGM_OK);
            assert_int_equal(cg_ref->dropout_bwd(cg_ref, n, ps[i], &r, offset, x, y, acc), PFGM_OK);
            assert_int_equal(cg_gpu->dropout_bwd(cg_gpu, n, ps[i], &r, offset, x_, y_, acc), PFGM_OK);
            snprintf(what, sizeof what, "dropout_bwd p=%g%s", (double)ps[i], acc ? " (accumulate)" : "");
            cg_expect_dev(what, y_, y, n, 0);
        }
        free(y);
    }
    free(x); free(base);
    cg_release();
}

/* GroupNorm at DDPM++'s shapes (32 groups, 1 to 4 channels each) and at groups of more than a
 * block of elements; forward outputs and statistics, backward with dx written, accumulated and
 * not wanted, gamma/beta gradients accumulated onto non-zero values; twice on the GPU for the
 * same bits. */
static void test_groupnorm(void **state) {
    (void)state;
    const int64_t shapes[][4] = {{3, 8, 25, 4}, {2, 32, 16, 32}, {2, 128, 64, 32}, {2, 64, 300, 16}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; ++s)
        for (int silu = 0; silu < 2; ++silu) {
            const int64_t batch = shapes[s][0], c = shapes[s][1], hw = shapes[s][2], groups = shapes[s][3];
            const int64_t n = batch * c * hw, ng = batch * groups;
            const uint32_t key = 100 + 10 * (uint32_t)s + (uint32_t)silu;
            float *x = cg_randn(n, key, 2.0f, 0.3f), *gamma = cg_randn(c, key + 1, 0.2f, 1.0f);
            float *beta = cg_randn(c, key + 2, 0.2f, 0.0f), *dy = cg_randn(n, key + 3, 1.0f, 0.0f);
            float *dx0 = cg_randn(n, key + 4, 1.0f, 0.0f), *dg0 = cg_randn(c, key + 5, 1.0f, 0.0f);
            float *db0 = cg_randn(c, key + 6, 1.0f, 0.0f);
            float *y = cg_host(n), *mean = cg_host(ng), *rstd = cg_host(ng);
            float *x_ = cg_dev(x, n), *gamma_ = cg_dev(gamma, c), *beta_ = cg_dev(beta, c), *dy_ = cg_dev(dy, n);
            float *y_ = nt_alloc(&cg_pool, n), *mean_ = nt_alloc(&cg_pool, ng), *rstd_ = nt_alloc(&cg_pool, ng);
            float *dx_ = nt_alloc(&cg_pool, n), *dg_ = nt_alloc(&cg_pool, c), *db_ = nt_alloc(&cg_pool, c);
            char what[96];
            const float eps = 1e-6f;
            assert_int_equal(cg_ref->groupnorm_fwd(cg_ref, batch, c, hw, groups, eps, silu, x, gamma, beta, y, mean, rstd),
                             PFGM_OK);
            assert_int_equal(
                cg_gpu->groupnorm_fwd(cg_gpu, batch, c, hw, groups, eps, silu, x_, gamma_, beta_, y_, mean_, rstd_),
                PFGM_OK);
            printf(" groupnorm batch %lld c %lld hw %lld groups %lld silu %d\n", (long long)batch, (long long)c,
                   (long long)hw, (long long)groups, silu);
            cg_expect_dev("groupnorm_fwd y", y_, y, n, TOL_REDUCE);
            cg_expect_dev("groupnorm_fwd mean", mean_, mean, ng, TOL_REDUCE);
            cg_expect_dev("groupnorm_fwd rstd", rstd_, rstd, ng, TOL_REDUCE);
            /* the backward from the reference's statistics on both sides */
            assert_int_equal(pfgm_backend_upload(cg_gpu, mean_, mean, ng), PFGM_OK);
            assert_int_equal(pfgm_backend_upload(cg_gpu, rstd_, rstd, ng), PFGM_OK);
            for (int mode = 0; mode < 3; ++mode) { /* dx written, accumulated, not wanted */
                float *dx = cg_dup(dx0, n), *dg = cg_dup(dg0, c), *db = cg_dup(db0, c);
                assert_int_equal(pfgm_backend_upload(cg_gpu, dx_, dx0, n), PFGM_OK);
                assert_int_equal(pfgm_backend_upload(cg_gpu, dg_, dg0, c), PFGM_OK);
                assert_int_equal(pfgm_backend_upload(cg_gpu, db_, db0, c), PFGM_OK);
                assert_int_equal(cg_ref->groupnorm_bwd(cg_ref, batch, c, hw, groups, silu, x, gamma, beta, mean, rstd,
                                                       dy, mode == 2 ? NULL : dx, mode == 1, dg, db),
                                 PFGM_OK);
                assert_int_equal(cg_gpu->groupnorm_bwd(cg_gpu, batch, c, hw, groups, silu, x_, gamma_, beta_, mean_,
                                                       rstd_, dy_, mode == 2 ? NULL : dx_, mode == 1, dg_, db_),
                                 PFGM_OK);
                const char *m = mode == 0 ? "" : mode == 1 ? " (accumulate)" : " (no dx)";
                snprintf(what, sizeof what, "groupnorm_bwd dx%s", m);
                cg_expect_dev(what, dx_, dx, n, TOL_GN_BWD); /* mode 2: dx untouched on both */
                snprintf(what, sizeof what, "groupnorm_bwd dgamma%s", m);
                cg_expect_dev(what, dg_, dg, c, TOL_GN_BWD);
                snprintf(what, sizeof what, "groupnorm_bwd dbeta%s", m);
                cg_expect_dev(what, db_, db, c, TOL_GN_BWD);
                if (mode == 0) { /* deterministic: the same call again gives the same bits */
                    float *first = cg_get(dx_, n), *firstg = cg_get(dg_, c);
                    assert_int_equal(pfgm_backend_upload(cg_gpu, dg_, dg0, c), PFGM_OK);
                    assert_int_equal(cg_gpu->groupnorm_bwd(cg_gpu, batch, c, hw, groups, silu, x_, gamma_, beta_,
                                                           mean_, rstd_, dy_, dx_, 0, dg_, db_),
                                     PFGM_OK);
                    cg_expect_dev("groupnorm_bwd dx, second run", dx_, first, n, 0);
                    cg_expect_dev("groupnorm_bwd dgamma, second run", dg_, firstg, c, 0);
                    free(first);
                    free(firstg);
                }
                free(dx); free(dg); free(db);
            }
            free(x); free(gamma); free(beta); free(dy); free(dx0); free(dg0); free(db0);
            free(y); free(mean); free(rstd);
            cg_release();
        }
}

/* Impossible arguments: the op front end (ops.c) refuses them for either backend, with the
 * same status, before a kernel runs. */
static void test_argument_errors(void **state) {
    (void)state;
    float *d = nt_alloc(&cg_pool, 64);
    float h[64] = {0};
    pfgm_rng r = {.seed = 1};
    pfgm_backend *bes[2] = {cg_ref, cg_gpu};
    for (int i = 0; i < 2; ++i) {
        pfgm_backend *be = bes[i];
        float *p = i ? d : h;
        printf("  %s\n", be->name);
        assert_int_equal(pfgm_op_avgpool2x2_fwd(be, 1, 3, 4, p, p), PFGM_ERR_INVALID_ARG);
        assert_int_equal(pfgm_op_avgpool2x2_bwd(be, 1, 4, 5, p, p, 0), PFGM_ERR_INVALID_ARG);
        assert_int_equal(pfgm_op_upsample2x_fwd(be, 1, 0, 4, p, p), PFGM_ERR_INVALID_ARG);
        assert_int_equal(pfgm_op_copy_channels(be, 1, 4, 3, p, 2, 0, p, 4, 0, 0), PFGM_ERR_INVALID_ARG);
        assert_int_equal(pfgm_op_groupnorm_fwd(be, 1, 6, 4, 4, 1e-6f, 0, p, p, p, p, p, p), PFGM_ERR_INVALID_ARG);
        assert_int_equal(pfgm_op_groupnorm_bwd(be, 1, 6, 4, 4, 0, p, p, p, p, p, p, p, 0, p, p), PFGM_ERR_INVALID_ARG);
        assert_int_equal(pfgm_op_dropout_fwd(be, 4, 1.5f, &r, 0, p, p), PFGM_ERR_INVALID_ARG);
        assert_int_equal(pfgm_op_dropout_bwd(be, 4, -0.1f, &r, 0, p, p, 0), PFGM_ERR_INVALID_ARG);
        assert_int_equal(pfgm_op_zembed_fwd(be, 1, 1, 0, p, p, p), PFGM_ERR_INVALID_ARG);
        assert_int_equal(pfgm_op_softmax_rows_bwd(be, 2, 0, p, p), PFGM_ERR_INVALID_ARG);
        assert_int_equal(pfgm_op_bcast_add_fwd(be, 1, 2, 2, p, -1, p), PFGM_ERR_INVALID_ARG);
        assert_int_equal(pfgm_op_channel_mean_fwd(be, 1, 2, 2, 2, p, p), PFGM_ERR_INVALID_ARG);
        assert_int_equal(pfgm_op_conv2d_fwd(be, 1, 2, 2, 2, 2, 2, p, p, NULL, p, p, 256), PFGM_ERR_INVALID_ARG);
        assert_int_equal(pfgm_op_gemm_batched(be, 0, 0, 2, 2, 2, 1.0f, p, 1, 4, p, 2, 4, 0.0f, p, 2, 4, 2),
                         PFGM_ERR_INVALID_ARG);
    }
    cg_release();
}

int main(void) {
    if (cg_skip("test_cuda_nn")) return 77;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_silu),
        cmocka_unit_test(test_softmax_rows_bwd),
        cmocka_unit_test(test_resampling),
        cmocka_unit_test(test_bcast_add),
        cmocka_unit_test(test_copy_channels),
        cmocka_unit_test(test_channel_mean),
        cmocka_unit_test(test_zembed),
        cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_groupnorm),
        cmocka_unit_test(test_argument_errors),
    };
    return cmocka_run_group_tests(tests, cg_setup, cg_teardown);
}
