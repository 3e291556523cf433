/* The optimizer (include/pfgm/optim.h, PFGM_SPEC.md §1.13, docs/optimizer.md): hand-computed
 * Adam/warmup/EMA steps, the warmup and EMA-decay schedules, a double-precision
 * reimplementation of torch.optim.Adam + clip_grad_norm_ + models/ema.py over many steps,
 * clipping on and off, excluded (fixed) ranges, argument and state checks. Backend parity,
 * determinism and exact resume are in test_optim_state.c; the PyTorch trajectory in
 * test_optim_torch.c. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "pfgm/backend.h"
#include "pfgm/ops.h"
#include "pfgm/optim.h"
#include "pfgm/rng.h"

/* |a - b| <= tol in double (cmocka 1.1.5's assert_float_equal rounds to float). */
#define assert_near(a, b, tol) assert_near_((double)(a), (double)(b), (double)(tol), #a, __FILE__, __LINE__)
static void assert_near_(double a, double b, double tol, const char *what, const char *file, int line) {
    if (!(fabs(a - b) <= tol)) {
        print_error("%s = %.17g, expected %.17g (tolerance %g)\n", what, a, b, tol);
        _fail(file, line);
    }
}

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

static pfgm_optim_hparams hparams(double lr, int64_t warmup, double wd, double clip, double rate) {
    pfgm_optim_hparams hp;
    pfgm_optim_hparams_defaults(&hp);
    hp.lr = lr;
    hp.warmup = warmup;
    hp.weight_decay = wd;
    hp.grad_clip = clip;
    hp.ema_rate = rate;
    return hp;
}

/* ---- hand-computed steps ----------------------------------------------------------------- */

/* One parameter p = 1, lr 0.1, no warmup, no clipping, beta1 0.9, beta2 0.999, eps 1e-8.
 * Step 1, g = 0.5:  m = 0.05, v = 2.5e-4, m^ = 0.5, v^ = 0.25,
 *                   p = 1 - 0.1 * 0.5 / (0.5 + 1e-8) = 0.900000002;
 *                   EMA decay (1+1)/(10+1) = 2/11: ema = 2/11 * 1 + 9/11 * p = 0.918181820.
 * Step 2, g = -0.5: m = -0.005, v = 4.9975e-4, 1-b1^2 = 0.19, 1-b2^2 = 0.001999,
 *                   m^ = -0.0263157895, v^ = 0.25, p += 0.1 * 0.0263157895 / 0.5 = p + 0.00526315788;
 *                   decay 3/12: ema = 0.25 * 0.918181820 + 0.75 * 0.905263160 = 0.908492825. */
static void test_hand_computed_steps(void **state) {
    (void)state;
    pfgm_backend *be = make_backend("cpu-reference");
    float *p = dev_alloc(be, 1), *g = dev_alloc(be, 1);
    p[0] = 1.0f;
    pfgm_optim_hparams hp = hparams(0.1, 0, 0.0, 0.0, 0.9999);
    pfgm_optim *opt = NULL;
    assert_int_equal(pfgm_optim_create(be, &hp, 1, p, NULL, 0, &opt), PFGM_OK);
    pfgm_optim_stats st;
    g[0] = 0.5f;
    assert_int_equal(pfgm_optim_step(opt, p, g, 0, &st), PFGM_OK);
    assert_near(pfgm_optim_m(opt)[0], 0.05, 1e-8);
    assert_near(pfgm_optim_v(opt)[0], 2.5e-4, 1e-10);
    assert_near(p[0], 0.900000002, 1e-7);
    assert_near(pfgm_optim_ema(opt)[0], 0.918181820, 1e-7);
    assert_near(st.ema_decay, 2.0 / 11.0, 1e-15);
    assert_near(st.lr, 0.1, 0.0);
    assert_near(st.grad_norm, 0.5, 0.0);
    assert_int_equal(st.clipped, 0);
    g[0] = -0.5f;
    assert_int_equal(pfgm_optim_step(opt, p, g, 1, &st), PFGM_OK);
    assert_near(pfgm_optim_m(opt)[0], -0.005, 1e-8); /* 0.045 - 0.05 in float */
    assert_near(pfgm_optim_v(opt)[0], 4.9975e-4, 1e-10);
    assert_near(p[0], 0.905263160, 1e-7);
    assert_near(pfgm_optim_ema(opt)[0], 0.908492825, 1e-7);
    assert_near(st.ema_decay, 0.25, 1e-15);
    assert_int_equal(pfgm_optim_updates(opt), 2);
    pfgm_optim_destroy(opt);
    be->free(be, p);
    be->free(be, g);
    pfgm_backend_destroy(be);
}

/* lr0 * min(step / warmup, 1) with step from 0 (the authors' state['step'] before its
 * increment): the first step has lr 0. warmup 0: lr0 from the first step. */
static void test_warmup_schedule(void **state) {
    (void)state;
    pfgm_optim_hparams hp = hparams(2e-4, 4, 0.0, 1.0, 0.9999);
    const double want[] = {0.0, 0.5e-4, 1e-4, 1.5e-4, 2e-4, 2e-4, 2e-4};
    for (int s = 0; s < 7; ++s) assert_near(pfgm_optim_lr_at(&hp, s), want[s], 1e-18);
    hp.warmup = 5000;
    assert_near(pfgm_optim_lr_at(&hp, 2500), 1e-4, 1e-18);
    assert_near(pfgm_optim_lr_at(&hp, 1300000), 2e-4, 0.0);
    hp.warmup = 0;
    assert_near(pfgm_optim_lr_at(&hp, 0), 2e-4, 0.0);

    /* At step 0 with warmup the parameters do not move, but m, v and the count do. */
    pfgm_backend *be = make_backend("cpu");
    float *p = dev_alloc(be, 3), *g = dev_alloc(be, 3);
    const float p0[3] = {0.25f, -1.5f, 3.0f};
    memcpy(p, p0, sizeof p0);
    g[0] = 1.0f, g[1] = -2.0f, g[2] = 0.5f;
    hp = hparams(0.1, 10, 0.0, 0.0, 0.9999);
    pfgm_optim *opt = NULL;
    assert_int_equal(pfgm_optim_create(be, &hp, 3, p, NULL, 0, &opt), PFGM_OK);
    pfgm_optim_stats st;
    assert_int_equal(pfgm_optim_step(opt, p, g, 0, &st), PFGM_OK);
    assert_memory_equal(p, p0, sizeof p0);
    assert_memory_equal(pfgm_optim_ema(opt), p0, sizeof p0);
    assert_near(st.lr, 0.0, 0.0);
    assert_near(pfgm_optim_m(opt)[1], -0.2, 1e-7);
    assert_int_equal(pfgm_optim_updates(opt), 1);
    assert_int_equal(pfgm_optim_step(opt, p, g, 1, &st), PFGM_OK);
    assert_near(st.lr, 0.01, 1e-17);
    assert_true(p[0] < p0[0] && p[1] > p0[1]);
    pfgm_optim_destroy(opt);
    be->free(be, p);
    be->free(be, g);
    pfgm_backend_destroy(be);
}

/* models/ema.py increments num_updates before using it: update t uses
 * min(rate, (1 + t) / (10 + t)), so 2/11, 3/12, ... until the rate caps it. */
static void test_ema_decay_schedule(void **state) {
    (void)state;
    for (int64_t t = 1; t <= 50; ++t) {
        double warm = (1.0 + (double)t) / (10.0 + (double)t);
        assert_near(pfgm_optim_ema_decay_at(0.9999, t), warm, 0.0);
        assert_near(pfgm_optim_ema_decay_at(0.5, t), warm < 0.5 ? warm : 0.5, 0.0);
    }
    assert_near(pfgm_optim_ema_decay_at(0.9999, 89990), 0.9999, 0.0); /* (1+t)/(10+t) > rate */

    /* Through the optimizer: the decays of consecutive steps and the shadow they produce. */
    pfgm_backend *be = make_backend("cpu");
    const int64_t n = 4;
    float *p = dev_alloc(be, n), *g = dev_alloc(be, n);
    for (int64_t i = 0; i < n; ++i) p[i] = (float)i;
    pfgm_optim_hparams hp = hparams(0.05, 0, 0.0, 0.0, 0.3);
    pfgm_optim *opt = NULL;
    assert_int_equal(pfgm_optim_create(be, &hp, n, p, NULL, 0, &opt), PFGM_OK);
    double shadow[4] = {0, 1, 2, 3};
    for (int64_t s = 0; s < 8; ++s) {
        for (int64_t i = 0; i < n; ++i) g[i] = (float)((i + s) % 3) - 1.0f;
        pfgm_optim_stats st;
        assert_int_equal(pfgm_optim_step(opt, p, g, s, &st), PFGM_OK);
        double warm = (2.0 + (double)s) / (11.0 + (double)s);
        double d = warm < 0.3 ? warm : 0.3;
        assert_near(st.ema_decay, d, 0.0);
        for (int64_t i = 0; i < n; ++i) {
            shadow[i] = d * shadow[i] + (1.0 - d) * (double)p[i];
            assert_near(pfgm_optim_ema(opt)[i], shadow[i], 1e-6);
        }
    }
    pfgm_optim_destroy(opt);
    be->free(be, p);
    be->free(be, g);
    pfgm_backend_destroy(be);
}

/* ---- the double-precision reimplementation ------------------------------------------------ */

/* torch.optim.Adam (L2 weight decay), clip_grad_norm_ and models/ema.py in double, on the
 * trainable ranges only; g is this step's gradient (copied, clipped here). */
typedef struct ref_run {
    int64_t n;
    double *p, *m, *v, *ema;
    int64_t updates;
} ref_run;

static void ref_step(ref_run *r, const pfgm_optim_hparams *hp, const pfgm_optim_range *rg, int nr,
                     const float *g32, int64_t step, double *norm_out, int *clipped) {
    double lr = hp->warmup > 0 ? hp->lr * fmin((double)step / (double)hp->warmup, 1.0) : hp->lr;
    double ss = 0.0;
    for (int k = 0; k < nr; ++k)
        for (int64_t i = rg[k].offset; i < rg[k].offset + rg[k].count; ++i) ss += (double)g32[i] * g32[i];
    double norm = sqrt(ss), scale = 1.0;
    *clipped = 0;
    if (hp->grad_clip > 0 && hp->grad_clip / (norm + 1e-6) < 1.0) {
        scale = hp->grad_clip / (norm + 1e-6);
        *clipped = 1;
    }
    int64_t t = ++r->updates;
    double bc1 = 1.0 - pow(hp->beta1, (double)t), bc2 = 1.0 - pow(hp->beta2, (double)t);
    double decay = fmin(hp->ema_rate, (1.0 + (double)t) / (10.0 + (double)t));
    for (int k = 0; k < nr; ++k)
        for (int64_t i = rg[k].offset; i < rg[k].offset + rg[k].count; ++i) {
            double g = scale * g32[i] + hp->weight_decay * r->p[i];
            r->m[i] = hp->beta1 * r->m[i] + (1.0 - hp->beta1) * g;
            r->v[i] = hp->beta2 * r->v[i] + (1.0 - hp->beta2) * g * g;
            r->p[i] -= lr / bc1 * r->m[i] / (sqrt(r->v[i]) / sqrt(bc2) + hp->eps);
            r->ema[i] = decay * r->ema[i] + (1.0 - decay) * r->p[i];
        }
    *norm_out = norm;
}

/* max |a - b| / (atol + rtol * max|b|) over n: the fraction of the allowed error used. */
static double used(const float *a, const double *b, int64_t n, double atol, double rtol) {
    double bmax = 0.0, emax = 0.0;
    for (int64_t i = 0; i < n; ++i) bmax = fmax(bmax, fabs(b[i]));
    for (int64_t i = 0; i < n; ++i) emax = fmax(emax, fabs((double)a[i] - b[i]));
    return emax / (atol + rtol * bmax);
}

/* 30 steps on 1000 parameters with a fixed hole [400, 450); gradients from Philox normals,
 * scaled by 0.1 on even steps (global norm ~3: clipped at 1) and 0.01 on odd ones (~0.3).
 * Tolerances: the float path rounds each of ~10 operations per element and step to 2^-24
 * relative; over 30 steps with |p| <= 5 that bounds |dp| by ~30 * 10 * 3e-7 ≈ 1e-4 in the
 * worst case and ~1e-6 in practice (errors do not align). We allow atol 1e-6 + rtol 2e-6 of
 * the array's magnitude for p and the EMA and rtol 1e-5 for m and v (small entries of
 * exp_avg round to relatively more); a wrong bias-correction step, decay index or clip rule
 * moves the result by more than 1e-3. */
static void run_vs_double(pfgm_backend *be, double wd, int64_t warmup, double clip) {
    const int64_t n = 1000, T = 30;
    const pfgm_optim_range rg[2] = {{0, 400}, {450, 550}};
    pfgm_optim_hparams hp = hparams(1e-2, warmup, wd, clip, 0.999);
    float *p = dev_alloc(be, n), *g = dev_alloc(be, n);
    float *host = malloc((size_t)n * sizeof(float));
    ref_run r = {.n = n};
    r.p = calloc((size_t)n, sizeof(double)), r.m = calloc((size_t)n, sizeof(double));
    r.v = calloc((size_t)n, sizeof(double)), r.ema = calloc((size_t)n, sizeof(double));
    assert_non_null(host);
    assert_true(r.p && r.m && r.v && r.ema);
    pfgm_rng rng = {.seed = 7, .rank = 0, .stream = PFGM_STREAM_USER, .step = 0};
    pfgm_rng_normal(&rng, 0, (size_t)n, host);
    for (int64_t i = 0; i < n; ++i) r.p[i] = r.ema[i] = host[i];
    assert_int_equal(pfgm_backend_upload(be, p, host, n), PFGM_OK);
    pfgm_optim *opt = NULL;
    assert_int_equal(pfgm_optim_create(be, &hp, n, p, rg, 2, &opt), PFGM_OK);
    int clipped_steps = 0;
    for (int64_t s = 0; s < T; ++s) {
        rng.step = (uint64_t)s + 1;
        pfgm_rng_normal(&rng, 0, (size_t)n, host);
        float sc = s % 2 == 0 ? 0.1f : 0.01f;
        for (int64_t i = 0; i < n; ++i) host[i] *= sc;
        double ref_norm;
        int ref_clipped;
        ref_step(&r, &hp, rg, 2, host, s, &ref_norm, &ref_clipped);
        assert_int_equal(pfgm_backend_upload(be, g, host, n), PFGM_OK);
        pfgm_optim_stats st;
        assert_int_equal(pfgm_optim_step(opt, p, g, s, &st), PFGM_OK);
        assert_near(st.grad_norm, ref_norm, 1e-12 * ref_norm);
        assert_int_equal(st.clipped, ref_clipped);
        clipped_steps += st.clipped;
    }
    assert_int_equal(clipped_steps, clip > 0 ? T / 2 : 0);
    float *out = malloc((size_t)n * sizeof(float));
    assert_non_null(out);
    double u;
    assert_int_equal(pfgm_backend_download(be, out, p, n), PFGM_OK);
    assert_true((u = used(out, r.p, n, 1e-6, 2e-6)) <= 1.0);
    print_message("  wd=%g warmup=%lld clip=%g: params %.3f of tolerance", wd, (long long)warmup, clip, u);
    assert_int_equal(pfgm_optim_export(opt, out, NULL, NULL, NULL), PFGM_OK);
    assert_true((u = used(out, r.m, n, 1e-9, 1e-5)) <= 1.0);
    print_message(", m %.3f", u);
    assert_int_equal(pfgm_optim_export(opt, NULL, out, NULL, NULL), PFGM_OK);
    assert_true((u = used(out, r.v, n, 1e-12, 1e-5)) <= 1.0);
    print_message(", v %.3f", u);
    assert_int_equal(pfgm_optim_export(opt, NULL, NULL, out, NULL), PFGM_OK);
    assert_true((u = used(out, r.ema, n, 1e-6, 2e-6)) <= 1.0);
    print_message(", ema %.3f\n", u);
    pfgm_optim_destroy(opt);
    be->free(be, p);
    be->free(be, g);
    free(host), free(out), free(r.p), free(r.m), free(r.v), free(r.ema);
}

static void test_against_double_reference(void **state) {
    (void)state;
    const char *names[2] = {"cpu-reference", "cpu"};
    for (int b = 0; b < 2; ++b) {
        pfgm_backend *be = make_backend(names[b]);
        print_message("%s\n", names[b]);
        for (int c = 0; c < 8; ++c) run_vs_double(be, (c & 1) ? 0.01 : 0.0, (c & 2) ? 5 : 0, (c & 4) ? 1.0 : 0.0);
        pfgm_backend_destroy(be);
    }
}

/* ---- clipping and excluded ranges --------------------------------------------------------- */

/* 16 trainable gradients of 0.5 (norm 2) and a fixed range holding 100 (and NaN): the norm
 * and the clip ignore the fixed range; grad_clip 1 scales by (float)(1 / (2 + 1e-6));
 * grad_clip 0, -1 and 3 leave the gradients alone. */
static void test_clipping(void **state) {
    (void)state;
    pfgm_backend *be = make_backend("cpu");
    const int64_t n = 20;
    const pfgm_optim_range rg[2] = {{0, 8}, {12, 8}};
    float *p = dev_alloc(be, n), *g = dev_alloc(be, n);
    const double clips[4] = {1.0, 0.0, -1.0, 3.0};
    for (int c = 0; c < 4; ++c) {
        for (int64_t i = 0; i < n; ++i) {
            p[i] = 0.0f;
            g[i] = (i >= 8 && i < 12) ? (i == 9 ? NAN : 100.0f) : 0.5f;
        }
        pfgm_optim_hparams hp = hparams(1e-3, 0, 0.0, clips[c], 0.9999);
        pfgm_optim *opt = NULL;
        assert_int_equal(pfgm_optim_create(be, &hp, n, p, rg, 2, &opt), PFGM_OK);
        pfgm_optim_stats st;
        assert_int_equal(pfgm_optim_step(opt, p, g, 0, &st), PFGM_OK);
        assert_near(st.grad_norm, 2.0, 0.0);
        float want = c == 0 ? 0.5f * (float)(1.0 / (2.0 + 1e-6)) : 0.5f;
        assert_int_equal(st.clipped, c == 0);
        for (int64_t i = 0; i < n; ++i) {
            if (i >= 8 && i < 12) {
                assert_true(i == 9 ? isnan(g[i]) : g[i] == 100.0f); /* fixed: untouched */
                assert_true(p[i] == 0.0f && pfgm_optim_m(opt)[i] == 0.0f && pfgm_optim_v(opt)[i] == 0.0f);
            } else {
                assert_true(g[i] == want);
                assert_near(pfgm_optim_m(opt)[i], 0.1 * want, 1e-8);
            }
        }
        pfgm_optim_destroy(opt);
    }
    be->free(be, p);
    be->free(be, g);
    pfgm_backend_destroy(be);
}

/* Parameters outside the trainable ranges: no Adam step, no EMA (their EMA entries keep the
 * values of creation, which equal the parameters), whatever their gradient holds. */
static void test_excluded_ranges(void **state) {
    (void)state;
    pfgm_backend *be = make_backend("cpu");
    const int64_t n = 100;
    const pfgm_optim_range rg[3] = {{3, 20}, {30, 1}, {64, 36}};
    float *p = dev_alloc(be, n), *g = dev_alloc(be, n), p0[100];
    pfgm_rng rng = {.seed = 3, .stream = PFGM_STREAM_USER};
    pfgm_rng_normal(&rng, 0, (size_t)n, p0);
    memcpy(p, p0, sizeof p0);
    pfgm_optim_hparams hp = hparams(1e-2, 0, 0.1, 1.0, 0.9999);
    pfgm_optim *opt = NULL;
    assert_int_equal(pfgm_optim_create(be, &hp, n, p, rg, 3, &opt), PFGM_OK);
    for (int64_t s = 0; s < 5; ++s) {
        rng.step = (uint64_t)s + 1;
        pfgm_rng_normal(&rng, 0, (size_t)n, g);
        assert_int_equal(pfgm_optim_step(opt, p, g, s, NULL), PFGM_OK);
    }
    for (int64_t i = 0; i < n; ++i) {
        int trainable = (i >= 3 && i < 23) || i == 30 || i >= 64;
        if (trainable) {
            assert_true(p[i] != p0[i]);
            assert_true(pfgm_optim_v(opt)[i] > 0.0f);
            assert_true(pfgm_optim_ema(opt)[i] != p0[i]);
        } else {
            assert_true(p[i] == p0[i] && pfgm_optim_ema(opt)[i] == p0[i]);
            assert_true(pfgm_optim_m(opt)[i] == 0.0f && pfgm_optim_v(opt)[i] == 0.0f);
        }
    }
    pfgm_optim_destroy(opt);
    be->free(be, p);
    be->free(be, g);
    pfgm_backend_destroy(be);
}

/* ---- errors ---------------------------------------------------------------------------------- */

static void test_bad_arguments(void **state) {
    (void)state;
    pfgm_backend *be = make_backend("cpu");
    float *p = dev_alloc(be, 10), *g = dev_alloc(be, 10);
    pfgm_optim *opt = NULL;
    pfgm_optim_hparams hp;
    pfgm_optim_hparams_defaults(&hp);
    assert_int_equal(pfgm_optim_hparams_check(&hp), PFGM_OK);
    pfgm_optim_hparams bad = hp;
    bad.beta1 = 1.0;
    assert_int_equal(pfgm_optim_create(be, &bad, 10, p, NULL, 0, &opt), PFGM_ERR_INVALID_ARG);
    assert_non_null(strstr(pfgm_error_message(), "optim.beta1"));
    assert_null(opt);
    bad = hp, bad.lr = 0.0;
    assert_int_equal(pfgm_optim_hparams_check(&bad), PFGM_ERR_INVALID_ARG);
    bad = hp, bad.warmup = -1;
    assert_int_equal(pfgm_optim_hparams_check(&bad), PFGM_ERR_INVALID_ARG);
    bad = hp, bad.ema_rate = 1.5;
    assert_int_equal(pfgm_optim_hparams_check(&bad), PFGM_ERR_INVALID_ARG);
    assert_non_null(strstr(pfgm_error_message(), "model.ema_rate"));
    bad = hp, bad.eps = -1e-8;
    assert_int_equal(pfgm_optim_hparams_check(&bad), PFGM_ERR_INVALID_ARG);
    bad = hp, bad.grad_clip = NAN;
    assert_int_equal(pfgm_optim_hparams_check(&bad), PFGM_ERR_INVALID_ARG);

    const pfgm_optim_range overlap[2] = {{0, 5}, {4, 2}}, outside[1] = {{8, 3}}, empty[1] = {{2, 0}},
                           unordered[2] = {{5, 2}, {0, 2}};
    assert_int_equal(pfgm_optim_create(be, &hp, 10, p, overlap, 2, &opt), PFGM_ERR_INVALID_ARG);
    assert_non_null(strstr(pfgm_error_message(), "range 1"));
    assert_int_equal(pfgm_optim_create(be, &hp, 10, p, outside, 1, &opt), PFGM_ERR_INVALID_ARG);
    assert_int_equal(pfgm_optim_create(be, &hp, 10, p, empty, 1, &opt), PFGM_ERR_INVALID_ARG);
    assert_int_equal(pfgm_optim_create(be, &hp, 10, p, unordered, 2, &opt), PFGM_ERR_INVALID_ARG);
    assert_int_equal(pfgm_optim_create(be, &hp, 0, p, NULL, 0, &opt), PFGM_ERR_INVALID_ARG);
    assert_int_equal(pfgm_optim_create(be, &hp, 10, NULL, NULL, 0, &opt), PFGM_ERR_INVALID_ARG);
    assert_null(opt);

    /* A NaN or Inf gradient: PFGM_ERR_NUMERIC and nothing changes. */
    for (int i = 0; i < 10; ++i) p[i] = (float)i, g[i] = 0.1f;
    assert_int_equal(pfgm_optim_create(be, &hp, 10, p, NULL, 0, &opt), PFGM_OK);
    assert_int_equal(pfgm_optim_step(opt, p, g, 0, NULL), PFGM_OK);
    assert_int_equal(pfgm_optim_step(opt, p, g, 1, NULL), PFGM_OK);
    float before[4][10];
    memcpy(before[0], p, sizeof before[0]);
    assert_int_equal(pfgm_optim_export(opt, before[1], before[2], before[3], NULL), PFGM_OK);
    const float nonfinite[2] = {NAN, INFINITY};
    for (int k = 0; k < 2; ++k) {
        g[7] = nonfinite[k];
        assert_int_equal(pfgm_optim_step(opt, p, g, 2, NULL), PFGM_ERR_NUMERIC);
        assert_non_null(strstr(pfgm_error_message(), "gradient norm"));
        float after[3][10];
        assert_memory_equal(p, before[0], sizeof before[0]);
        assert_int_equal(pfgm_optim_export(opt, after[0], after[1], after[2], NULL), PFGM_OK);
        assert_memory_equal(after, before[1], sizeof after);
        assert_int_equal(pfgm_optim_updates(opt), 2);
        assert_true(g[0] == 0.1f);
    }
    assert_int_equal(pfgm_optim_step(opt, p, g, -1, NULL), PFGM_ERR_INVALID_ARG);

    /* Import checks before it changes anything. */
    float m[10] = {0}, v[10] = {0}, e[10] = {0};
    v[3] = -1.0f;
    assert_int_equal(pfgm_optim_import(opt, m, v, e, 5), PFGM_ERR_NUMERIC);
    assert_non_null(strstr(pfgm_error_message(), "adam v[3]"));
    v[3] = 0.0f, e[9] = NAN;
    assert_int_equal(pfgm_optim_import(opt, m, v, e, 5), PFGM_ERR_NUMERIC);
    assert_non_null(strstr(pfgm_error_message(), "ema[9]"));
    e[9] = 0.0f;
    assert_int_equal(pfgm_optim_import(opt, m, v, e, -1), PFGM_ERR_INVALID_ARG);
    assert_int_equal(pfgm_optim_import(opt, m, NULL, e, 1), PFGM_ERR_INVALID_ARG);
    assert_int_equal(pfgm_optim_updates(opt), 2);
    assert_true(pfgm_optim_v(opt)[0] == before[2][0]);
    pfgm_optim_destroy(opt);

    /* The op front end rejects impossible arguments. */
    assert_int_equal(pfgm_op_adam_update(be, 10, 1e-3, 0.9, 0.999, 1e-8, 0.0, 0, p, g, p, p), PFGM_ERR_INVALID_ARG);
    double s;
    assert_int_equal(pfgm_op_sumsq(be, -1, g, &s), PFGM_ERR_INVALID_ARG);
    be->free(be, p);
    be->free(be, g);
    pfgm_backend_destroy(be);
}

/* sumsq_blocks: each block's sum is the same bits as a sumsq call on that block alone and as
 * the same block reached from another starting block (a shard), on both CPU backends. */
static void test_sumsq_blocks(void **state) {
    (void)state;
    const char *names[] = {"cpu", "cpu-reference"};
    for (int b = 0; b < 2; ++b) {
        pfgm_backend *be = make_backend(names[b]);
        enum { blk = 4096, nb = 9 };
        const int64_t n = (int64_t)blk * nb - 123; /* a short last block */
        float *x = malloc(sizeof(float) * (size_t)n);
        double all[nb], tail[nb];
        assert_non_null(x);
        for (int64_t i = 0; i < n; ++i) x[i] = (float)sin(0.37 * (double)i) * (float)(1 + i % 7);
        assert_int_equal(pfgm_op_sumsq_blocks(be, n, x, blk, all), PFGM_OK);
        assert_int_equal(pfgm_op_sumsq_blocks(be, n - 3 * blk, x + 3 * blk, blk, tail), PFGM_OK);
        for (int k = 0; k < nb; ++k) {
            const int64_t len = k == nb - 1 ? n - (int64_t)k * blk : blk;
            double one = 0.0, exact = 0.0;
            assert_int_equal(pfgm_op_sumsq(be, len, x + (int64_t)k * blk, &one), PFGM_OK);
            for (int64_t i = 0; i < len; ++i) exact += (double)x[k * blk + i] * (double)x[k * blk + i];
            assert_memory_equal(&all[k], &one, sizeof one);
            assert_true(fabs(all[k] - exact) <= 1e-12 * exact);
            if (k >= 3) assert_memory_equal(&all[k], &tail[k - 3], sizeof one);
        }
        double s;
        assert_int_equal(pfgm_op_sumsq_blocks(be, n, x, 0, &s), PFGM_ERR_INVALID_ARG);
        free(x);
        pfgm_backend_destroy(be);
    }
}

/* A sharded optimizer over owned ranges with the full optimizer's norm updates exactly what
 * the full optimizer updates on those ranges (parameters, m, v, EMA) and nothing else; its
 * state is packed (the owned count), and export/import move the owned ranges. */
static void test_sharded(void **state) {
    (void)state;
    pfgm_backend *be = make_backend("cpu");
    enum { n = 1000 };
    float p0[n], g0[n];
    for (int i = 0; i < n; ++i) {
        p0[i] = 0.01f * (float)(i % 17) - 0.05f;
        g0[i] = (float)cos(0.1 * i);
    }
    pfgm_optim_hparams hp;
    pfgm_optim_hparams_defaults(&hp);
    hp.warmup = 0;
    hp.grad_clip = 1.0; /* the norm is ~22: clipping is active */
    const pfgm_optim_range all = {0, 960}, owned[2] = {{100, 200}, {600, 50}};
    float pf[n], ps[n], gf[n], gs[n];
    memcpy(pf, p0, sizeof pf);
    memcpy(ps, p0, sizeof ps);
    pfgm_optim *full = NULL, *shard = NULL;
    assert_int_equal(pfgm_optim_create(be, &hp, n, pf, &all, 1, &full), PFGM_OK);
    assert_int_equal(pfgm_optim_create_sharded(be, &hp, n, ps, owned, 2, &shard), PFGM_OK);
    assert_int_equal(pfgm_optim_state_floats(shard), 250);
    assert_int_equal(pfgm_optim_state_floats(full), n);
    for (int64_t step = 0; step < 3; ++step) {
        memcpy(gf, g0, sizeof gf);
        memcpy(gs, g0, sizeof gs);
        pfgm_optim_stats st;
        assert_int_equal(pfgm_optim_step(full, pf, gf, step, &st), PFGM_OK);
        assert_int_equal(pfgm_optim_step_norm(shard, ps, gs, step, st.grad_norm, NULL), PFGM_OK);
    }
    float fm[n], fv[n], fe[n], sm[n], sv[n], se[n];
    assert_int_equal(pfgm_optim_export(full, fm, fv, fe, NULL), PFGM_OK);
    for (int i = 0; i < n; ++i) sm[i] = sv[i] = se[i] = -7.0f; /* untouched outside the shard */
    assert_int_equal(pfgm_optim_export(shard, sm, sv, se, NULL), PFGM_OK);
    for (int i = 0; i < n; ++i) {
        const int mine = (i >= 100 && i < 300) || (i >= 600 && i < 650);
        if (mine) {
            assert_memory_equal(&pf[i], &ps[i], sizeof(float));
            assert_memory_equal(&fm[i], &sm[i], sizeof(float));
            assert_memory_equal(&fv[i], &sv[i], sizeof(float));
            assert_memory_equal(&fe[i], &se[i], sizeof(float));
        } else {
            assert_memory_equal(&ps[i], &p0[i], sizeof(float));
            assert_true(sm[i] == -7.0f && sv[i] == -7.0f && se[i] == -7.0f);
        }
    }
    /* import reads the owned ranges only: garbage elsewhere is not checked */
    sm[0] = NAN;
    for (int i = 0; i < n; ++i) sv[i] = sv[i] == -7.0f ? 0.0f : sv[i];
    assert_int_equal(pfgm_optim_import(shard, sm, sv, se, 3), PFGM_OK);
    sv[150] = -1.0f;
    assert_int_equal(pfgm_optim_import(shard, sm, sv, se, 3), PFGM_ERR_NUMERIC);
    assert_non_null(strstr(pfgm_error_message(), "adam v[150]"));
    pfgm_optim_destroy(full);
    pfgm_optim_destroy(shard);
    pfgm_backend_destroy(be);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_computed_steps), cmocka_unit_test(test_warmup_schedule),
        cmocka_unit_test(test_ema_decay_schedule),  cmocka_unit_test(test_against_double_reference),
        cmocka_unit_test(test_clipping),            cmocka_unit_test(test_excluded_ranges),
        cmocka_unit_test(test_bad_arguments),      cmocka_unit_test(test_sumsq_blocks),
        cmocka_unit_test(test_sharded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
