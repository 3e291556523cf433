/* The CUDA backend's optimizer ops (backend.h "optimizer" group, src/backend/cuda/
 * cuda_optim.cu) against the cpu-reference backend: the squared norm of gradient clipping,
 * Adam and EMA trajectories op by op, and whole pfgm_optim trajectories (warmup, clipping,
 * Adam, EMA; src/nn/optim.c) run on each backend from the same start. Label gpu: exits 77
 * (SKIPPED) when pfgm was built without CUDA or no device is visible.
 *
 * Tolerances. Adam and EMA perform the CPU's IEEE float operations in the CPU's order with
 * correctly rounded square root and division (cuda_optim.cu), so the expected result is the
 * same bits (each comparison prints how many elements differ); the tolerance allows one
 * float ulp (1.2e-7 relative) per step, should a device round one of them differently.
 * sumsq is a double sum in another order: 1e-12 relative. The pfgm_optim trajectory adds
 * the clipping factor grad_clip / (norm + 1e-6) rounded to float from that sum, which can
 * be one float ulp apart on the two backends and then scales a whole step: 1e-6 relative
 * per step. */
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
#include "pfgm/ops.h"
#include "pfgm/optim.h"

#include "cuda_compare.h"

#define ULP 1.2e-7

static pfgm_backend *gpu_, *ref_;

static void test_sumsq(void **state) {
    (void)state;
    const int64_t sizes[] = {1, 1000, 3000017};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; ++s) {
        const int64_t n = sizes[s];
        float *x = cc_malloc(sizeof(float) * (size_t)n);
        cc_randn(x, n, 30 + (uint32_t)s, 1.0f);
        float *dx = cc_upload(gpu_, x, sizeof(float) * (size_t)n);
        double want = 0, got = 0, again = 0;
        assert_int_equal(ref_->sumsq(ref_, n, x, &want), PFGM_OK);
        assert_int_equal(gpu_->sumsq(gpu_, n, dx, &got), PFGM_OK);
        assert_int_equal(gpu_->sumsq(gpu_, n, dx, &again), PFGM_OK);
        char what[64];
        snprintf(what, sizeof what, "sumsq n=%lld", (long long)n);
        assert_int_equal(cc_compare_f64(what, &want, &got, 1, 1e-12, 0.0), 0);
        assert_memory_equal(&got, &again, sizeof got); /* fixed order: the same bits run to run */
        gpu_->free(gpu_, dx);
        free(x);
    }
    double out = 1.0;
    assert_int_equal(gpu_->sumsq(gpu_, 0, NULL, &out), PFGM_OK);
    assert_true(out == 0.0);
    assert_int_equal(pfgm_op_sumsq(gpu_, -1, NULL, &out), PFGM_ERR_INVALID_ARG);
}

/* sumsq_blocks against the CPU's per block (a double sum in another order: 1e-12 relative),
 * the same bits run to run and from another starting block. */
static void test_sumsq_blocks(void **state) {
    (void)state;
    const int64_t blk = 4096, n = 4096 * 2500 + 77; /* more segments than one launch holds */
    const int64_t nb = (n + blk - 1) / blk;
    float *x = cc_malloc(sizeof(float) * (size_t)n);
    cc_randn(x, n, 41, 1.0f);
    float *dx = cc_upload(gpu_, x, sizeof(float) * (size_t)n);
    double *want = cc_malloc(sizeof(double) * (size_t)nb), *got = cc_malloc(sizeof(double) * (size_t)nb);
    double *again = cc_malloc(sizeof(double) * (size_t)nb);
    assert_int_equal(pfgm_op_sumsq_blocks(ref_, n, x, blk, want), PFGM_OK);
    assert_int_equal(pfgm_op_sumsq_blocks(gpu_, n, dx, blk, got), PFGM_OK);
    assert_int_equal(cc_compare_f64("sumsq_blocks", want, got, nb, 1e-12, 0.0), 0);
    assert_int_equal(pfgm_op_sumsq_blocks(gpu_, n - 5 * blk, dx + 5 * blk, blk, again), PFGM_OK);
    assert_memory_equal(got + 5, again, sizeof(double) * (size_t)(nb - 5));
    gpu_->free(gpu_, dx);
    free(x);
    free(want);
    free(got);
    free(again);
}

/* `steps` Adam updates, then EMA updates toward the new parameters, on both backends from
 * the same start, with a fresh gradient every step. */
static void check_adam_ema(int64_t n, double wd, int steps) {
    const size_t bytes = sizeof(float) * (size_t)n;
    float *p0 = cc_malloc(bytes), *m0 = cc_malloc(bytes), *v0 = cc_malloc(bytes), *e0 = cc_malloc(bytes);
    float *p1 = cc_malloc(bytes), *m1 = cc_malloc(bytes), *v1 = cc_malloc(bytes), *e1 = cc_malloc(bytes);
    float *g = cc_malloc(bytes);
    cc_randn(p0, n, 40, 0.5f);
    memcpy(e0, p0, bytes);
    float *dp = cc_upload(gpu_, p0, bytes), *dm = cc_upload(gpu_, NULL, bytes), *dv = cc_upload(gpu_, NULL, bytes);
    float *de = cc_upload(gpu_, p0, bytes), *dg = cc_upload(gpu_, NULL, bytes);
    for (int t = 1; t <= steps; ++t) {
        cc_randn(g, n, 100 + (uint32_t)t, t % 5 == 0 ? 30.0f : 0.01f); /* some steps with large gradients */
        assert_int_equal(pfgm_backend_upload(gpu_, dg, g, n), PFGM_OK);
        const double lr = 2e-4 * (t < 10 ? t / 10.0 : 1.0), decay = t % 2 ? 0.9999 : 0.5;
        assert_int_equal(ref_->adam_update(ref_, n, lr, 0.9, 0.999, 1e-8, wd, t, p0, g, m0, v0), PFGM_OK);
        assert_int_equal(gpu_->adam_update(gpu_, n, lr, 0.9, 0.999, 1e-8, wd, t, dp, dg, dm, dv), PFGM_OK);
        assert_int_equal(ref_->ema_update(ref_, n, decay, e0, p0), PFGM_OK);
        assert_int_equal(gpu_->ema_update(gpu_, n, decay, de, dp), PFGM_OK);
    }
    cc_download(gpu_, p1, dp, bytes);
    cc_download(gpu_, m1, dm, bytes);
    cc_download(gpu_, v1, dv, bytes);
    cc_download(gpu_, e1, de, bytes);
    const double rel = ULP * steps;
    char what[80];
    snprintf(what, sizeof what, "adam params n=%lld wd=%g steps=%d", (long long)n, wd, steps);
    assert_int_equal(cc_compare_f32(what, p0, p1, n, rel, 1e-30), 0);
    assert_int_equal(cc_compare_f32("adam exp_avg", m0, m1, n, rel, 1e-30), 0);
    assert_int_equal(cc_compare_f32("adam exp_avg_sq", v0, v1, n, rel, 1e-30), 0);
    assert_int_equal(cc_compare_f32("ema shadow", e0, e1, n, rel, 1e-30), 0);
    /* argument checks: the front end's, the same for every backend */
    assert_int_equal(pfgm_op_adam_update(gpu_, n, 1e-3, 0.9, 0.999, 1e-8, wd, 0, dp, dg, dm, dv),
                     PFGM_ERR_INVALID_ARG);
    assert_int_equal(pfgm_op_adam_update(gpu_, -1, 1e-3, 0.9, 0.999, 1e-8, wd, 1, dp, dg, dm, dv),
                     PFGM_ERR_INVALID_ARG);
    assert_int_equal(pfgm_op_ema_update(gpu_, -1, 0.9, de, dp), PFGM_ERR_INVALID_ARG);
    assert_int_equal(gpu_->adam_update(gpu_, 0, 1e-3, 0.9, 0.999, 1e-8, wd, 1, dp, dg, dm, dv), PFGM_OK);
    float *ptrs[] = {dp, dm, dv, de, dg};
    for (size_t i = 0; i < 5; ++i) gpu_->free(gpu_, ptrs[i]);
    free(p0);
    free(m0);
    free(v0);
    free(e0);
    free(p1);
    free(m1);
    free(v1);
    free(e1);
    free(g);
}

static void test_adam_ema_ops(void **state) {
    (void)state;
    check_adam_ema(100003, 0.0, 30);
    check_adam_ema(4099, 1e-2, 12); /* torch's L2 weight decay path */
}

/* pfgm_optim on both backends: two trainable ranges around a frozen one, warmup,
 * clipping on some steps and not on others, EMA with the models/ema.py decay. */
static void test_optim_trajectory(void **state) {
    (void)state;
    const int64_t n = 50021;
    const int steps = 20;
    const size_t bytes = sizeof(float) * (size_t)n;
    pfgm_optim_hparams hp;
    pfgm_optim_hparams_defaults(&hp);
    hp.warmup = 5;
    hp.grad_clip = 1.0;
    hp.ema_rate = 0.999;
    const pfgm_optim_range ranges[2] = {{.offset = 0, .count = 30000}, {.offset = 30100, .count = n - 30100}};
    float *p0 = cc_malloc(bytes), *p1 = cc_malloc(bytes), *g = cc_malloc(bytes);
    cc_randn(p0, n, 50, 0.1f);
    float *dp = cc_upload(gpu_, p0, bytes), *dg = cc_upload(gpu_, NULL, bytes);
    pfgm_optim *o0 = NULL, *o1 = NULL;
    assert_int_equal(pfgm_optim_create(ref_, &hp, n, p0, ranges, 2, &o0), PFGM_OK);
    assert_int_equal(pfgm_optim_create(gpu_, &hp, n, dp, ranges, 2, &o1), PFGM_OK);
    int clipped = 0, unclipped = 0;
    for (int t = 0; t < steps; ++t) {
        /* gradient norms ~ sqrt(n) * scale: 2.2 (clipped to 1) or 0.022 (not clipped) */
        cc_randn(g, n, 200 + (uint32_t)t, t % 3 == 0 ? 0.01f : 1e-4f);
        assert_int_equal(pfgm_backend_upload(gpu_, dg, g, n), PFGM_OK);
        pfgm_optim_stats s0, s1;
        assert_int_equal(pfgm_optim_step(o0, p0, g, t, &s0), PFGM_OK);
        assert_int_equal(pfgm_optim_step(o1, dp, dg, t, &s1), PFGM_OK);
        assert_int_equal(s0.clipped, s1.clipped);
        assert_true(fabs(s0.grad_norm - s1.grad_norm) <= 1e-12 * s0.grad_norm);
        assert_true(s0.lr == s1.lr && s0.ema_decay == s1.ema_decay);
        clipped += s1.clipped;
        unclipped += !s1.clipped;
    }
    assert_true(clipped > 0 && unclipped > 0);
    float *m0 = cc_malloc(bytes), *v0 = cc_malloc(bytes), *e0 = cc_malloc(bytes);
    float *m1 = cc_malloc(bytes), *v1 = cc_malloc(bytes), *e1 = cc_malloc(bytes);
    int64_t u0 = 0, u1 = 0;
    assert_int_equal(pfgm_optim_export(o0, m0, v0, e0, &u0), PFGM_OK);
    assert_int_equal(pfgm_optim_export(o1, m1, v1, e1, &u1), PFGM_OK);
    assert_int_equal(u0, u1);
    cc_download(gpu_, p1, dp, bytes);
    const double rel = 1e-6 * steps;
    assert_int_equal(cc_compare_f32("pfgm_optim params (20 steps)", p0, p1, n, rel, 1e-30), 0);
    assert_int_equal(cc_compare_f32("pfgm_optim exp_avg", m0, m1, n, rel, 1e-30), 0);
    assert_int_equal(cc_compare_f32("pfgm_optim exp_avg_sq", v0, v1, n, rel, 1e-30), 0);
    assert_int_equal(cc_compare_f32("pfgm_optim ema", e0, e1, n, rel, 1e-30), 0);
    /* the frozen range is untouched on the GPU */
    assert_memory_equal(p1 + 30000, p0 + 30000, sizeof(float) * 100);
    pfgm_optim_destroy(o0);
    pfgm_optim_destroy(o1);
    gpu_->free(gpu_, dp);
    gpu_->free(gpu_, dg);
    free(p0);
    free(p1);
    free(g);
    free(m0);
    free(v0);
    free(e0);
    free(m1);
    free(v1);
    free(e1);
}

int main(void) {
    if (!pfgm_backend_cuda_available()) {
        printf("SKIPPED: no CUDA device (or pfgm built without CUDA)\n");
        return 77;
    }
    if (pfgm_backend_create("cuda", &gpu_) != PFGM_OK || pfgm_backend_create("cpu-reference", &ref_) != PFGM_OK) {
        fprintf(stderr, "test_cuda_optim: %s\n", pfgm_error_message());
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sumsq),
        cmocka_unit_test(test_sumsq_blocks),
        cmocka_unit_test(test_adam_ema_ops),
        cmocka_unit_test(test_optim_trajectory),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    pfgm_backend_destroy(gpu_);
    pfgm_backend_destroy(ref_);
    return rc;
}
