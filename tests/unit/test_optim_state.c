/* The optimizer's bits: the fast CPU ops equal the reference ops (Adam and EMA to the bit,
 * sumsq to double rounding), whole trajectories on both backends, the same bits run to run,
 * and export -> import -> continue equal to the uninterrupted run to the bit (the exact
 * resume the checkpoint relies on; docs/optimizer.md). Sizes exceed the ops' threading and
 * block thresholds so the OpenMP and SSE paths and their tails run. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "pfgm/backend.h"
#include "pfgm/optim.h"
#include "pfgm/rng.h"

static pfgm_backend *make_backend(const char *name) {
    pfgm_backend *be = NULL;
    assert_int_equal(pfgm_backend_create(name, &be), PFGM_OK);
    return be;
}

static float *dev_alloc(pfgm_backend *be, int64_t n) {
    void *p = NULL;
    assert_int_equal(be->alloc(be, (size_t)n * sizeof(float), &p), PFGM_OK);
    return p;
}

static float *host_alloc(int64_t n) {
    float *p = malloc((size_t)n * sizeof(float));
    assert_non_null(p);
    return p;
}

static void fill_normal(float *x, int64_t n, uint32_t seed, uint64_t step, float scale) {
    pfgm_rng r = {.seed = seed, .rank = 0, .stream = PFGM_STREAM_USER, .step = step};
    pfgm_rng_normal(&r, 0, (size_t)n, x);
    for (int64_t i = 0; i < n; ++i) x[i] *= scale;
}

/* ---- ops ------------------------------------------------------------------------------------ */

static void test_ops_fast_equal_reference(void **state) {
    (void)state;
    const int64_t n = 300001; /* > the threading threshold, odd: SSE tails on every thread */
    pfgm_backend *be[2] = {make_backend("cpu-reference"), make_backend("cpu")};
    float *h[4], *d[2][4];
    for (int k = 0; k < 4; ++k) h[k] = host_alloc(n);
    fill_normal(h[0], n, 11, 0, 1.0f);  /* p */
    fill_normal(h[1], n, 11, 1, 0.1f);  /* g */
    fill_normal(h[2], n, 11, 2, 0.01f); /* m */
    fill_normal(h[3], n, 11, 3, 0.01f); /* v = square, >= 0 */
    for (int64_t i = 0; i < n; ++i) h[3][i] *= h[3][i];
    const double wds[2] = {0.0, 0.01};
    const int64_t steps[2] = {1, 7};
    for (int c = 0; c < 4; ++c) {
        for (int b = 0; b < 2; ++b) {
            for (int k = 0; k < 4; ++k) {
                d[b][k] = dev_alloc(be[b], n);
                assert_int_equal(pfgm_backend_upload(be[b], d[b][k], h[k], n), PFGM_OK);
            }
            assert_int_equal(be[b]->adam_update(be[b], n, 1e-3, 0.9, 0.999, 1e-8, wds[c & 1], steps[c >> 1], d[b][0],
                                                d[b][1], d[b][2], d[b][3]),
                             PFGM_OK);
            assert_int_equal(be[b]->ema_update(be[b], n, 0.9999, d[b][1], d[b][0]), PFGM_OK);
        }
        for (int k = 0; k < 4; ++k) assert_memory_equal(d[0][k], d[1][k], (size_t)n * sizeof(float));
        for (int b = 0; b < 2; ++b)
            for (int k = 0; k < 4; ++k) be[b]->free(be[b], d[b][k]);
    }
    /* sumsq: the reference adds in index order, the fast op in fixed blocks and lanes; both
     * add exact squares in double, so they agree to ~n * 2^-53 relative. */
    double s_ref, s_fast, s_fast2;
    assert_int_equal(be[0]->sumsq(be[0], n, h[1], &s_ref), PFGM_OK);
    assert_int_equal(be[1]->sumsq(be[1], n, h[1], &s_fast), PFGM_OK);
    assert_int_equal(be[1]->sumsq(be[1], n, h[1], &s_fast2), PFGM_OK);
    assert_true(fabs(s_ref - s_fast) <= 1e-12 * s_ref);
    assert_true(s_fast == s_fast2);
    print_message("sumsq of %lld: reference %.17g fast %.17g\n", (long long)n, s_ref, s_fast);
    double s0 = -1.0;
    assert_int_equal(be[1]->sumsq(be[1], 0, h[1], &s0), PFGM_OK);
    assert_true(s0 == 0.0);
    for (int k = 0; k < 4; ++k) free(h[k]);
    pfgm_backend_destroy(be[0]);
    pfgm_backend_destroy(be[1]);
}

/* ---- trajectories --------------------------------------------------------------------------- */

#define TN 200003
static const pfgm_optim_range traj_ranges[2] = {{0, 100000}, {100016, TN - 100016}};

typedef struct traj {
    float *params, *m, *v, *ema;
    int64_t updates;
    double norm_sum;
} traj;

static void traj_alloc(traj *t) {
    t->params = host_alloc(TN), t->m = host_alloc(TN), t->v = host_alloc(TN), t->ema = host_alloc(TN);
}

static void traj_free(traj *t) { free(t->params), free(t->m), free(t->v), free(t->ema); }

/* Runs steps [s0, s1) from host params (and, when `from` is given, from its state) and
 * stores the result in *out. Gradients are Philox normals keyed by the step, scaled so that
 * the global norm (~sqrt(2e5) * scale) crosses grad_clip = 1 on alternate steps. */
static void run_steps(const char *backend, const pfgm_optim_hparams *hp, const float *p0, const traj *from,
                      int64_t s0, int64_t s1, traj *out) {
    pfgm_backend *be = make_backend(backend);
    float *p = dev_alloc(be, TN), *g = dev_alloc(be, TN), *hg = host_alloc(TN);
    assert_int_equal(pfgm_backend_upload(be, p, p0, TN), PFGM_OK);
    pfgm_optim *opt = NULL;
    assert_int_equal(pfgm_optim_create(be, hp, TN, p, traj_ranges, 2, &opt), PFGM_OK);
    if (from) assert_int_equal(pfgm_optim_import(opt, from->m, from->v, from->ema, from->updates), PFGM_OK);
    out->norm_sum = 0.0;
    for (int64_t s = s0; s < s1; ++s) {
        fill_normal(hg, TN, 5, (uint64_t)s, s % 2 == 0 ? 0.01f : 0.001f);
        assert_int_equal(pfgm_backend_upload(be, g, hg, TN), PFGM_OK);
        pfgm_optim_stats st;
        assert_int_equal(pfgm_optim_step(opt, p, g, s, &st), PFGM_OK);
        out->norm_sum += st.grad_norm;
    }
    assert_int_equal(pfgm_backend_download(be, out->params, p, TN), PFGM_OK);
    assert_int_equal(pfgm_optim_export(opt, out->m, out->v, out->ema, &out->updates), PFGM_OK);
    pfgm_optim_destroy(opt);
    be->free(be, p);
    be->free(be, g);
    free(hg);
    pfgm_backend_destroy(be);
}

static int traj_equal(const traj *a, const traj *b) {
    size_t bytes = TN * sizeof(float);
    return a->updates == b->updates && memcmp(a->params, b->params, bytes) == 0 && memcmp(a->m, b->m, bytes) == 0 &&
           memcmp(a->v, b->v, bytes) == 0 && memcmp(a->ema, b->ema, bytes) == 0;
}

static double max_rel(const float *a, const float *b, int64_t n) {
    double e = 0.0;
    for (int64_t i = 0; i < n; ++i) e = fmax(e, fabs((double)a[i] - b[i]) / (fabs((double)b[i]) + 1e-30));
    return e;
}

static pfgm_optim_hparams traj_hparams(double clip) {
    pfgm_optim_hparams hp;
    pfgm_optim_hparams_defaults(&hp);
    hp.lr = 1e-3, hp.warmup = 3, hp.weight_decay = 0.01, hp.grad_clip = clip, hp.ema_rate = 0.999;
    return hp;
}

/* Without clipping every operation is elementwise and the same on both backends: equal
 * bits. With clipping the scale comes from the norm, which the two backends sum in
 * different orders; the scale is rounded to float, so the runs are equal unless a ~1e-16
 * difference in the norm crosses a float rounding boundary: we require 1e-6 relative. */
static void test_trajectory_fast_equals_reference(void **state) {
    (void)state;
    float *p0 = host_alloc(TN);
    fill_normal(p0, TN, 5, 1000, 1.0f);
    traj t[2];
    traj_alloc(&t[0]), traj_alloc(&t[1]);
    pfgm_optim_hparams hp = traj_hparams(0.0);
    run_steps("cpu-reference", &hp, p0, NULL, 0, 5, &t[0]);
    run_steps("cpu", &hp, p0, NULL, 0, 5, &t[1]);
    assert_true(traj_equal(&t[0], &t[1]));
    hp = traj_hparams(1.0);
    run_steps("cpu-reference", &hp, p0, NULL, 0, 5, &t[0]);
    run_steps("cpu", &hp, p0, NULL, 0, 5, &t[1]);
    double e = fmax(max_rel(t[1].params, t[0].params, TN), max_rel(t[1].ema, t[0].ema, TN));
    e = fmax(e, fmax(max_rel(t[1].m, t[0].m, TN), max_rel(t[1].v, t[0].v, TN)));
    print_message("clipped run: max relative difference fast vs reference %.3g (%s)\n", e,
                  traj_equal(&t[0], &t[1]) ? "bitwise equal" : "not bitwise");
    assert_true(e <= 1e-6);
    assert_true(fabs(t[0].norm_sum - t[1].norm_sum) <= 1e-12 * t[0].norm_sum);
    traj_free(&t[0]), traj_free(&t[1]);
    free(p0);
}

static void test_deterministic_run_to_run(void **state) {
    (void)state;
    float *p0 = host_alloc(TN);
    fill_normal(p0, TN, 5, 1000, 1.0f);
    traj t[2];
    traj_alloc(&t[0]), traj_alloc(&t[1]);
    pfgm_optim_hparams hp = traj_hparams(1.0);
    run_steps("cpu", &hp, p0, NULL, 0, 6, &t[0]);
    run_steps("cpu", &hp, p0, NULL, 0, 6, &t[1]);
    assert_true(traj_equal(&t[0], &t[1]));
    assert_true(t[0].norm_sum == t[1].norm_sum);
    traj_free(&t[0]), traj_free(&t[1]);
    free(p0);
}

/* Train 0..3, export (params, m, v, EMA, count), train 3..6 = the uninterrupted run; a new
 * optimizer imports the export and trains 3..6 from the exported params: the same bits.
 * The warmup (3) ends at the cut, so the step index and the count are both exercised. */
static void test_export_import_resume_exact(void **state) {
    (void)state;
    const char *names[2] = {"cpu", "cpu-reference"};
    for (int b = 0; b < 2; ++b) {
        float *p0 = host_alloc(TN);
        fill_normal(p0, TN, 5, 1000, 1.0f);
        traj half, whole, resumed, direct;
        traj_alloc(&half), traj_alloc(&whole), traj_alloc(&resumed), traj_alloc(&direct);
        pfgm_optim_hparams hp = traj_hparams(1.0);
        run_steps(names[b], &hp, p0, NULL, 0, 6, &direct);
        run_steps(names[b], &hp, p0, NULL, 0, 3, &half);
        assert_int_equal(half.updates, 3);
        run_steps(names[b], &hp, half.params, &half, 3, 6, &resumed);
        assert_int_equal(resumed.updates, 6);
        assert_true(traj_equal(&direct, &resumed));
        /* Importing a fresh state instead is a different run: the test can tell. */
        traj fresh = half;
        fresh.updates = 0;
        run_steps(names[b], &hp, half.params, &fresh, 3, 6, &whole);
        assert_false(traj_equal(&direct, &whole));
        traj_free(&half), traj_free(&whole), traj_free(&resumed), traj_free(&direct);
        free(p0);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ops_fast_equal_reference),
        cmocka_unit_test(test_trajectory_fast_equals_reference),
        cmocka_unit_test(test_deterministic_run_to_run),
        cmocka_unit_test(test_export_import_resume_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
