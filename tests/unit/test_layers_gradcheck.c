/* Central-difference gradient checks of the primitive layers of DDPM++ (spec §3.1) on the
 * cpu-reference backend: conv2d 3x3 and 1x1, GroupNorm (plain and fused with SiLU), SiLU,
 * Linear, NIN, nearest 2x upsample, 2x2 average pool, dropout, and the positional and Fourier
 * z embeddings (d/dz). Composite blocks are in test_layers_blocks.c.
 *
 * Tolerance: float32 storage with a central step of 1e-2 (inputs and parameters are O(1))
 * leaves a truncation error of O(eps^2) ~ 1e-4 relative and a rounding error of
 * ~1e-7 * sqrt(outputs touched) / eps ~ 1e-5 to 1e-4; measured errors are below 3e-4
 * (printed by the test). GC_TOL = 2e-3 keeps a 5x margin while any wrong term (a missing
 * factor, a transposed index, a dropped accumulation) gives errors of order 1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "nn_testutil.h"

#define GC_TOL 2e-3

/* Parameters drawn at random (not the near-zero init) so every path carries gradient. */
static void randomize_params(pfgm_nn_params *t, uint32_t key) {
    for (int i = 0; i < t->n; ++i) {
        pfgm_nn_param *p = &t->items[i];
        float *v = t->value + p->offset;
        int is_gn_weight = strstr(p->name, "GroupNorm") && strstr(p->name, ".weight");
        double fan = p->ndim >= 2 ? (double)p->count / (double)p->shape[0] : 1.0;
        if (strstr(p->name, ".W") && p->ndim == 2) fan = (double)p->shape[0]; /* NIN W [in, out] */
        nt_randn(v, p->count, key + (uint32_t)i, p->ndim >= 2 ? (float)(1.0 / sqrt(fan)) : 0.2f,
                 is_gn_weight ? 1.0f : 0.0f);
    }
}

/* ---- conv2d --------------------------------------------------------------------------- */

typedef struct conv_ctx {
    pfgm_backend *be;
    pfgm_conv2d c;
    int64_t batch, n_out;
    float *x, *y, *r;
} conv_ctx;

static double conv_loss(void *p) {
    conv_ctx *c = p;
    assert_int_equal(pfgm_conv2d_forward(c->be, &c->c, c->batch, c->x, c->y, NULL, 0), PFGM_OK);
    return nt_dot(c->y, c->r, c->n_out);
}

static void check_conv(int k) {
    pfgm_backend *be = nt_backend(1);
    nt_pool pool = {.be = be};
    pfgm_nn_params t = {0};
    conv_ctx c = {.be = be, .batch = 2};
    const int64_t cin = 3, cout = 4, h = 5, w = 6;
    assert_int_equal(pfgm_conv2d_setup(&c.c, &t, "conv", cin, cout, k, h, w, 1.0), PFGM_OK);
    assert_int_equal(pfgm_nn_params_alloc(&t, be), PFGM_OK);
    randomize_params(&t, 100);
    c.n_out = c.batch * cout * h * w;
    c.x = nt_alloc(&pool, c.batch * cin * h * w);
    c.y = nt_alloc(&pool, c.n_out);
    c.r = nt_alloc(&pool, c.n_out);
    float *dx = nt_alloc(&pool, c.batch * cin * h * w);
    nt_randn(c.x, c.batch * cin * h * w, 1, 1.0f, 0.0f);
    nt_randn(c.r, c.n_out, 2, 1.0f, 0.0f);
    conv_loss(&c);
    assert_int_equal(pfgm_conv2d_backward(be, &c.c, c.batch, c.x, c.r, dx, 0, NULL, 0), PFGM_OK);
    nt_tensor ts[] = {{"x", c.x, dx, c.batch * cin * h * w, 1e-2, 0},
                      {"weight", c.c.w, c.c.dw, cout * cin * k * k, 1e-2, 0},
                      {"bias", c.c.b, c.c.db, cout, 1e-2, 0}};
    assert_true(nt_gradcheck(&c, conv_loss, ts, 3, k == 3 ? "conv3x3" : "conv1x1") < GC_TOL);
    pfgm_nn_params_release(&t);
    nt_pool_free(&pool);
    pfgm_backend_destroy(be);
}

static void test_conv3x3(void **state) {
    (void)state;
    check_conv(3);
}

static void test_conv1x1(void **state) {
    (void)state;
    check_conv(1);
}

/* ---- GroupNorm (+ SiLU) --------------------------------------------------------------- */

typedef struct gn_ctx {
    pfgm_backend *be;
    pfgm_groupnorm g;
    int silu;
    int64_t batch, n;
    float *x, *y, *stats, *r;
} gn_ctx;

static double gn_loss(void *p) {
    gn_ctx *c = p;
    assert_int_equal(pfgm_groupnorm_forward(c->be, &c->g, c->batch, c->silu, c->x, c->y, c->stats), PFGM_OK);
    return nt_dot(c->y, c->r, c->n);
}

static void check_groupnorm(int silu) {
    pfgm_backend *be = nt_backend(1);
    nt_pool pool = {.be = be};
    pfgm_nn_params t = {0};
    gn_ctx c = {.be = be, .silu = silu, .batch = 2};
    const int64_t ch = 12, hw = 10; /* 3 groups of 4 channels */
    assert_int_equal(pfgm_groupnorm_setup(&c.g, &t, "gn", ch, hw), PFGM_OK);
    assert_int_equal(c.g.groups, 3);
    assert_int_equal(pfgm_nn_params_alloc(&t, be), PFGM_OK);
    randomize_params(&t, 200);
    c.n = c.batch * ch * hw;
    c.x = nt_alloc(&pool, c.n);
    c.y = nt_alloc(&pool, c.n);
    c.r = nt_alloc(&pool, c.n);
    c.stats = nt_alloc(&pool, c.batch * pfgm_groupnorm_stats_per_image(&c.g));
    float *dx = nt_alloc(&pool, c.n);
    nt_randn(c.x, c.n, 3, 2.0f, 0.5f);
    nt_randn(c.r, c.n, 4, 1.0f, 0.0f);
    gn_loss(&c);
    assert_int_equal(pfgm_groupnorm_backward(be, &c.g, c.batch, silu, c.x, c.stats, c.r, dx, 0), PFGM_OK);
    nt_tensor ts[] = {{"x", c.x, dx, c.n, 1e-2, 0},
                      {"weight", c.g.gamma, c.g.dgamma, ch, 1e-2, 0},
                      {"bias", c.g.beta, c.g.dbeta, ch, 1e-2, 0}};
    assert_true(nt_gradcheck(&c, gn_loss, ts, 3, silu ? "groupnorm+silu" : "groupnorm") < GC_TOL);
    pfgm_nn_params_release(&t);
    nt_pool_free(&pool);
    pfgm_backend_destroy(be);
}

static void test_groupnorm(void **state) {
    (void)state;
    check_groupnorm(0);
    check_groupnorm(1);
}

static void test_groupnorm_rejects_bad_channels(void **state) {
    (void)state;
    pfgm_nn_params t = {0};
    pfgm_groupnorm g;
    assert_int_equal(pfgm_groupnorm_setup(&g, &t, "gn", 3, 4), PFGM_ERR_INVALID_ARG); /* C/4 = 0 groups */
    assert_int_equal(pfgm_groupnorm_setup(&g, &t, "gn", 18, 4), PFGM_ERR_INVALID_ARG); /* 4 groups, 18 % 4 */
    assert_non_null(strstr(pfgm_error_message(), "gn"));
    assert_int_equal(pfgm_groupnorm_setup(&g, &t, "gn2", 256, 4), PFGM_OK);
    assert_int_equal(g.groups, 32);
    pfgm_nn_params_release(&t);
}

/* ---- elementwise and linear maps -------------------------------------------------------- */

typedef enum { EW_SILU, EW_LINEAR, EW_NIN, EW_UP, EW_DOWN, EW_DROPOUT, EW_POS, EW_FOURIER } ew_kind;

typedef struct ew_ctx {
    pfgm_backend *be;
    ew_kind kind;
    pfgm_linear lin;
    pfgm_nin nin;
    pfgm_rng rng;
    int64_t batch, n_in, n_out, planes, h, w, half;
    float *x, *y, *r, *fw;
} ew_ctx;

static void ew_forward(ew_ctx *c) {
    pfgm_backend *be = c->be;
    pfgm_status st = PFGM_OK;
    switch (c->kind) {
    case EW_SILU: st = be->silu_fwd(be, c->n_in, c->x, c->y); break;
    case EW_LINEAR: st = pfgm_linear_forward(be, &c->lin, c->batch, c->x, c->y); break;
    case EW_NIN: st = pfgm_nin_forward(be, &c->nin, c->batch, c->x, c->y); break;
    case EW_UP: st = be->upsample2x_fwd(be, c->planes, c->h, c->w, c->x, c->y); break;
    case EW_DOWN: st = be->avgpool2x2_fwd(be, c->planes, c->h, c->w, c->x, c->y); break;
    case EW_DROPOUT: st = be->dropout_fwd(be, c->n_in, 0.3f, &c->rng, 77, c->x, c->y); break;
    case EW_POS: st = be->zembed_fwd(be, c->batch, c->half, 0, c->x, NULL, c->y); break;
    case EW_FOURIER: st = be->zembed_fwd(be, c->batch, c->half, 1, c->x, c->fw, c->y); break;
    }
    assert_int_equal(st, PFGM_OK);
}

static double ew_loss(void *p) {
    ew_ctx *c = p;
    ew_forward(c);
    return nt_dot(c->y, c->r, c->n_out);
}

static void check_ew(ew_kind kind, const char *what) {
    pfgm_backend *be = nt_backend(1);
    nt_pool pool = {.be = be};
    pfgm_nn_params t = {0};
    ew_ctx c = {.be = be, .kind = kind, .batch = 3, .planes = 6, .h = 4, .w = 6, .half = 8};
    c.rng = (pfgm_rng){.seed = 5, .rank = 0, .stream = PFGM_STREAM_DROPOUT, .step = 9};
    double eps = 1e-2;
    float xscale = 2.0f, xmean = 0.0f;
    switch (kind) {
    case EW_SILU:
    case EW_DROPOUT: c.n_in = c.n_out = 200; break;
    case EW_LINEAR:
        assert_int_equal(pfgm_linear_setup(&c.lin, &t, "dense", 7, 5, 1.0), PFGM_OK);
        c.n_in = c.batch * 7;
        c.n_out = c.batch * 5;
        break;
    case EW_NIN:
        assert_int_equal(pfgm_nin_setup(&c.nin, &t, "nin", 6, 4, 10, 0.1), PFGM_OK);
        c.n_in = c.batch * 6 * 10;
        c.n_out = c.batch * 4 * 10;
        break;
    case EW_UP:
        c.n_in = c.planes * c.h * c.w;
        c.n_out = 4 * c.n_in;
        break;
    case EW_DOWN:
        c.n_in = c.planes * c.h * c.w;
        c.n_out = c.n_in / 4;
        break;
    case EW_POS: /* raw z in [1, 9] (positional embedding of raw z) */
        c.n_in = c.batch;
        c.n_out = c.batch * 2 * c.half;
        xscale = 2.0f;
        xmean = 5.0f;
        eps = 1e-3;
        break;
    case EW_FOURIER: /* z near e^0: the embedding of ln z, W ~ N(0, 2^2) */
        c.n_in = c.batch;
        c.n_out = c.batch * 2 * c.half;
        xscale = 0.1f;
        xmean = 1.2f;
        eps = 1e-4;
        break;
    }
    if (t.n) {
        assert_int_equal(pfgm_nn_params_alloc(&t, be), PFGM_OK);
        randomize_params(&t, 300);
    }
    c.x = nt_alloc(&pool, c.n_in);
    c.y = nt_alloc(&pool, c.n_out);
    c.r = nt_alloc(&pool, c.n_out);
    c.fw = nt_alloc(&pool, c.half);
    float *dx = nt_alloc(&pool, c.n_in);
    nt_randn(c.x, c.n_in, 6, xscale, xmean);
    nt_randn(c.r, c.n_out, 7, 1.0f, 0.0f);
    nt_randn(c.fw, c.half, 8, 2.0f, 0.0f);
    ew_forward(&c);
    pfgm_status st = PFGM_OK;
    switch (kind) {
    case EW_SILU: st = be->silu_bwd(be, c.n_in, c.x, c.r, dx, 0); break;
    case EW_LINEAR: st = pfgm_linear_backward(be, &c.lin, c.batch, c.x, c.r, dx, 0); break;
    case EW_NIN: st = pfgm_nin_backward(be, &c.nin, c.batch, c.x, c.r, dx, 0); break;
    case EW_UP: st = be->upsample2x_bwd(be, c.planes, c.h, c.w, c.r, dx, 0); break;
    case EW_DOWN: st = be->avgpool2x2_bwd(be, c.planes, c.h, c.w, c.r, dx, 0); break;
    case EW_DROPOUT: st = be->dropout_bwd(be, c.n_in, 0.3f, &c.rng, 77, c.r, dx, 0); break;
    case EW_POS: st = be->zembed_bwd(be, c.batch, c.half, 0, c.x, NULL, c.r, dx, 0); break;
    case EW_FOURIER: st = be->zembed_bwd(be, c.batch, c.half, 1, c.x, c.fw, c.r, dx, 0); break;
    }
    assert_int_equal(st, PFGM_OK);
    nt_tensor ts[3] = {{"x", c.x, dx, c.n_in, eps, 0}};
    int nts = 1;
    if (kind == EW_LINEAR) {
        ts[nts++] = (nt_tensor){"weight", c.lin.w, c.lin.dw, 35, eps, 0};
        ts[nts++] = (nt_tensor){"bias", c.lin.b, c.lin.db, 5, eps, 0};
    } else if (kind == EW_NIN) {
        ts[nts++] = (nt_tensor){"W", c.nin.w, c.nin.dw, 24, eps, 0};
        ts[nts++] = (nt_tensor){"b", c.nin.b, c.nin.db, 4, eps, 0};
    }
    assert_true(nt_gradcheck(&c, ew_loss, ts, nts, what) < GC_TOL);
    if (kind == EW_DROPOUT) {
        /* the mask drops about p of the entries and scales the rest by 1/(1-p) */
        ew_forward(&c);
        int dropped = 0;
        for (int64_t i = 0; i < c.n_in; ++i) {
            if (c.y[i] == 0.0f) ++dropped;
            else assert_float_equal(c.y[i], c.x[i] / 0.7f, 1e-5f * fabsf(c.x[i]) + 1e-7f);
        }
        assert_true(dropped > 35 && dropped < 85); /* 200 draws at p = 0.3: mean 60, sd 6.5 */
    }
    pfgm_nn_params_release(&t);
    nt_pool_free(&pool);
    pfgm_backend_destroy(be);
}

static void test_silu(void **state) {
    (void)state;
    check_ew(EW_SILU, "silu");
}
static void test_linear(void **state) {
    (void)state;
    check_ew(EW_LINEAR, "linear");
}
static void test_nin(void **state) {
    (void)state;
    check_ew(EW_NIN, "nin");
}
static void test_upsample(void **state) {
    (void)state;
    check_ew(EW_UP, "upsample2x");
}
static void test_avgpool(void **state) {
    (void)state;
    check_ew(EW_DOWN, "avgpool2x2");
}
static void test_dropout(void **state) {
    (void)state;
    check_ew(EW_DROPOUT, "dropout");
}
static void test_zembed_positional(void **state) {
    (void)state;
    check_ew(EW_POS, "positional(z)");
}
static void test_zembed_fourier(void **state) {
    (void)state;
    check_ew(EW_FOURIER, "fourier(ln z)");
}

/* The embeddings' values against the formulas of spec §3.1, in double. */
static void test_zembed_values(void **state) {
    (void)state;
    pfgm_backend *be = nt_backend(1);
    const int64_t half = 16;
    float z[2] = {0.37f, 41.0f}, w[16], out[2 * 32];
    nt_randn(w, half, 9, 16.0f, 0.0f);
    assert_int_equal(be->zembed_fwd(be, 2, half, 0, z, NULL, out), PFGM_OK);
    for (int b = 0; b < 2; ++b)
        for (int k = 0; k < half; ++k) {
            double f = exp(-(double)k * log(10000.0) / (double)(half - 1));
            assert_float_equal(out[b * 32 + k], sin(z[b] * f), 2e-5);
            assert_float_equal(out[b * 32 + half + k], cos(z[b] * f), 2e-5);
        }
    assert_int_equal(be->zembed_fwd(be, 2, half, 1, z, w, out), PFGM_OK);
    for (int b = 0; b < 2; ++b)
        for (int k = 0; k < half; ++k) {
            double a = log((double)z[b]) * w[k] * 2.0 * M_PI;
            /* |a| reaches ~400: float32 carries ~4e-5 absolute error in the argument */
            assert_float_equal(out[b * 32 + k], sin(a), 2e-4);
            assert_float_equal(out[b * 32 + half + k], cos(a), 2e-4);
        }
    pfgm_backend_destroy(be);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv3x3),
        cmocka_unit_test(test_conv1x1),
        cmocka_unit_test(test_groupnorm),
        cmocka_unit_test(test_groupnorm_rejects_bad_channels),
        cmocka_unit_test(test_silu),
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_nin),
        cmocka_unit_test(test_upsample),
        cmocka_unit_test(test_avgpool),
        cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_zembed_positional),
        cmocka_unit_test(test_zembed_fourier),
        cmocka_unit_test(test_zembed_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
