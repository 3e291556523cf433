/* Central-difference gradient checks of the composite blocks of DDPM++ (spec §3.1) on the
 * cpu-reference backend: the BigGAN residual block (identity skip, Conv_2 skip, up, down, with
 * a concatenated skip input, with dropout in training), the attention block, the z embedding
 * with its MLP (positional and Fourier), and the PFGM head. Every input and every parameter
 * of each block is checked.
 *
 * Tolerance: as test_layers_gradcheck.c (central step 1e-2 on O(1) values, float32); a block
 * chains GroupNorm, convolutions and softmax, and the worst measured error is 2.3e-4
 * (printed); GC_TOL = 3e-3 keeps a margin above 10 while real mistakes give order-1 errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "nn_testutil.h"

#define GC_TOL 3e-3
#define MAX_T 40

static void randomize_params(pfgm_nn_params *t, uint32_t key) {
    for (int i = 0; i < t->n; ++i) {
        pfgm_nn_param *p = &t->items[i];
        float *v = t->value + p->offset;
        int is_gn_weight = strstr(p->name, "GroupNorm") && strstr(p->name, ".weight");
        double fan = p->ndim >= 2 ? (double)p->count / (double)p->shape[0] : 1.0;
        if (p->ndim == 2 && strstr(p->name, ".W")) fan = (double)p->shape[0]; /* NIN W [in, out] */
        nt_randn(v, p->count, key + (uint32_t)i, p->ndim >= 2 ? (float)(1.0 / sqrt(fan)) : 0.2f,
                 is_gn_weight ? 1.0f : 0.0f);
    }
}

typedef enum { K_RES, K_ATTN, K_EMB, K_HEAD } blk_kind;

typedef struct blk_ctx {
    pfgm_backend *be;
    nt_pool pool;
    pfgm_nn_params t;
    blk_kind kind;
    pfgm_resblock rb;
    pfgm_attn at;
    pfgm_zembed em;
    pfgm_head hd;
    pfgm_nn_run run;
    int64_t batch, n_x, n_skip, n_temb, n_out, n_out2;
    float *x, *skip, *temb, *out, *out2, *r, *r2, *dout, *dout2;
    float *dx, *dskip, *dtemb;
    float *slots[PFGM_RB_SLOTS + PFGM_ATTN_SLOTS + 8];
} blk_ctx;

static void blk_forward(blk_ctx *c) {
    pfgm_status st = PFGM_OK;
    switch (c->kind) {
    case K_RES: st = pfgm_resblock_forward(c->be, &c->rb, c->batch, &c->run, c->x, c->skip, c->temb, c->slots, c->out); break;
    case K_ATTN: st = pfgm_attn_forward(c->be, &c->at, c->batch, c->x, c->slots, c->out); break;
    case K_EMB: st = pfgm_zembed_forward(c->be, &c->em, c->batch, c->x, c->slots, c->out); break;
    case K_HEAD: st = pfgm_head_forward(c->be, &c->hd, c->batch, c->x, c->slots, c->out, c->out2); break;
    }
    if (st != PFGM_OK) fprintf(stderr, "forward: %s\n", pfgm_error_message());
    assert_int_equal(st, PFGM_OK);
}

static double blk_loss(void *p) {
    blk_ctx *c = p;
    blk_forward(c);
    double l = nt_dot(c->out, c->r, c->n_out);
    if (c->out2) l += nt_dot(c->out2, c->r2, c->n_out2);
    return l;
}

/* Forward, backward with dout = r, then the check of inputs and all parameters. */
static void blk_check(blk_ctx *c, const char *what) {
    pfgm_backend *be = c->be;
    c->out = nt_alloc(&c->pool, c->n_out);
    c->r = nt_alloc(&c->pool, c->n_out);
    c->dout = nt_alloc(&c->pool, c->n_out);
    nt_randn(c->r, c->n_out, 21, 1.0f, 0.0f);
    if (c->n_out2) {
        c->out2 = nt_alloc(&c->pool, c->n_out2);
        c->r2 = nt_alloc(&c->pool, c->n_out2);
        nt_randn(c->r2, c->n_out2, 22, 3.0f, 0.0f);
    }
    c->dx = nt_alloc(&c->pool, c->n_x);
    if (c->n_skip) c->dskip = nt_alloc(&c->pool, c->n_skip);
    if (c->n_temb) c->dtemb = nt_alloc(&c->pool, c->n_temb);
    assert_int_equal(pfgm_nn_params_zero_grad(&c->t), PFGM_OK);
    blk_forward(c);
    memcpy(c->dout, c->r, (size_t)c->n_out * sizeof(float));
    pfgm_status st = PFGM_OK;
    switch (c->kind) {
    case K_RES:
        st = pfgm_resblock_backward(be, &c->rb, c->batch, &c->run, c->x, c->temb, c->slots, c->dout, c->dx, 0,
                                    c->dskip, 0, c->dtemb, 0);
        break;
    case K_ATTN: st = pfgm_attn_backward(be, &c->at, c->batch, c->x, c->slots, c->dout, c->dx, 0); break;
    case K_EMB: st = pfgm_zembed_backward(be, &c->em, c->batch, c->x, c->slots, c->out, c->dout, c->dx, 0); break;
    case K_HEAD: st = pfgm_head_backward(be, &c->hd, c->batch, c->x, c->slots, c->dout, c->r2, c->dx, 0); break;
    }
    if (st != PFGM_OK) fprintf(stderr, "backward: %s\n", pfgm_error_message());
    assert_int_equal(st, PFGM_OK);

    nt_tensor ts[MAX_T];
    int n = 0;
    /* z of the embedding: raw z ~ 5 (positional) or ln z ~ 0.2 (Fourier), smaller steps */
    double xeps = c->kind == K_EMB ? 1e-3 : 1e-2;
    ts[n++] = (nt_tensor){"x", c->x, c->dx, c->n_x, xeps, 0};
    if (c->n_skip) ts[n++] = (nt_tensor){"skip", c->skip, c->dskip, c->n_skip, 1e-2, 0};
    if (c->n_temb) ts[n++] = (nt_tensor){"act_temb", c->temb, c->dtemb, c->n_temb, 1e-2, 0};
    for (int i = 0; i < c->t.n && n < MAX_T; ++i) {
        pfgm_nn_param *p = &c->t.items[i];
        if (!p->trainable) continue;
        /* the key bias adds q.b to every score of a row: softmax is invariant, gradient 0 */
        int zero = c->kind == K_ATTN && strstr(p->name, "NIN_1.b") != NULL;
        ts[n++] = (nt_tensor){p->name, c->t.value + p->offset, c->t.grad + p->offset, p->count, 1e-2, zero};
    }
    assert_true(nt_gradcheck(c, blk_loss, ts, n, what) < GC_TOL);
}

static void blk_free(blk_ctx *c) {
    pfgm_nn_params_release(&c->t);
    nt_pool_free(&c->pool);
    pfgm_backend_destroy(c->be);
}

/* ---- residual blocks ------------------------------------------------------------------ */

static void check_resblock(int64_t in_ch, int64_t skip_ch, int64_t out_ch, int up, int down, float dropout,
                           const char *what) {
    blk_ctx c = {.kind = K_RES, .batch = 2};
    c.be = nt_backend(1);
    c.pool.be = c.be;
    const int64_t h = 4, w = 6, temb = 16;
    c.run = (pfgm_nn_run){.train = dropout > 0.0f,
                          .dropout_rng = {.seed = 3, .rank = 0, .stream = PFGM_STREAM_DROPOUT, .step = 1}};
    assert_int_equal(pfgm_resblock_setup(&c.rb, &c.t, "all_modules.3", in_ch, skip_ch, out_ch, h, w, up, down, dropout,
                                         1, temb, 0.0, 1ull << 40),
                     PFGM_OK);
    assert_int_equal(pfgm_nn_params_alloc(&c.t, c.be), PFGM_OK);
    randomize_params(&c.t, 500);
    pfgm_slot_spec spec[PFGM_RB_SLOTS];
    pfgm_resblock_slots(c.be, &c.rb, c.batch, 1, spec);
    nt_slots(&c.pool, spec, PFGM_RB_SLOTS, c.batch, c.slots);
    c.n_x = c.batch * in_ch * h * w;
    c.n_skip = c.batch * skip_ch * h * w;
    c.n_temb = c.batch * temb;
    c.n_out = c.batch * out_ch * c.rb.out_height * c.rb.out_width;
    c.x = nt_alloc(&c.pool, c.n_x);
    c.skip = skip_ch ? nt_alloc(&c.pool, c.n_skip) : NULL;
    c.temb = nt_alloc(&c.pool, c.n_temb);
    nt_randn(c.x, c.n_x, 31, 1.0f, 0.3f);
    if (skip_ch) nt_randn(c.skip, c.n_skip, 32, 1.5f, -0.2f);
    nt_randn(c.temb, c.n_temb, 33, 1.0f, 0.0f);
    blk_check(&c, what);
    blk_free(&c);
}

static void test_resblock_identity(void **state) {
    (void)state;
    check_resblock(8, 0, 8, 0, 0, 0.0f, "resblock 8->8");
}
static void test_resblock_conv2(void **state) {
    (void)state;
    check_resblock(8, 0, 12, 0, 0, 0.0f, "resblock 8->12");
}
static void test_resblock_up(void **state) {
    (void)state;
    check_resblock(8, 0, 8, 1, 0, 0.0f, "resblock up");
}
static void test_resblock_down(void **state) {
    (void)state;
    check_resblock(8, 0, 8, 0, 1, 0.0f, "resblock down");
}
static void test_resblock_skip_concat(void **state) {
    (void)state;
    check_resblock(8, 4, 8, 0, 0, 0.0f, "resblock [8|4]->8");
}
static void test_resblock_skip_identity(void **state) {
    (void)state;
    /* in + skip = out: no Conv_2, the identity path carries the concatenation */
    check_resblock(8, 4, 12, 0, 0, 0.0f, "resblock [8|4]->12");
}
static void test_resblock_dropout(void **state) {
    (void)state;
    check_resblock(8, 0, 12, 0, 0, 0.25f, "resblock dropout");
}

/* ---- attention ------------------------------------------------------------------------ */

static void test_attention(void **state) {
    (void)state;
    blk_ctx c = {.kind = K_ATTN, .batch = 2};
    c.be = nt_backend(1);
    c.pool.be = c.be;
    const int64_t ch = 8, h = 3, w = 4;
    assert_int_equal(pfgm_attn_setup(&c.at, &c.t, "all_modules.6", ch, h, w, 1, 0.0), PFGM_OK);
    assert_int_equal(pfgm_nn_params_alloc(&c.t, c.be), PFGM_OK);
    randomize_params(&c.t, 600);
    pfgm_slot_spec spec[PFGM_ATTN_SLOTS];
    pfgm_attn_slots(&c.at, 1, spec);
    nt_slots(&c.pool, spec, PFGM_ATTN_SLOTS, c.batch, c.slots);
    c.n_x = c.n_out = c.batch * ch * h * w;
    c.x = nt_alloc(&c.pool, c.n_x);
    nt_randn(c.x, c.n_x, 41, 1.0f, 0.1f);
    blk_check(&c, "attention");
    blk_free(&c);
}

/* ---- z embedding with its MLP ---------------------------------------------------------- */

static void check_zembed(pfgm_embedding_type type, const char *what) {
    blk_ctx c = {.kind = K_EMB, .batch = 3};
    c.be = nt_backend(1);
    c.pool.be = c.be;
    int module = 0;
    const int64_t nf = 8;
    assert_int_equal(pfgm_zembed_setup(&c.em, &c.t, &module, type, nf, 2.0), PFGM_OK);
    assert_int_equal(module, type == PFGM_EMBEDDING_FOURIER ? 3 : 2);
    assert_int_equal(pfgm_nn_params_alloc(&c.t, c.be), PFGM_OK);
    randomize_params(&c.t, 700);
    pfgm_slot_spec spec[PFGM_ZEMB_SLOTS];
    pfgm_zembed_slots(&c.em, 1, spec);
    nt_slots(&c.pool, spec, PFGM_ZEMB_SLOTS, c.batch, c.slots);
    c.n_x = c.batch;
    c.n_out = c.batch * 4 * nf;
    c.x = nt_alloc(&c.pool, c.n_x);
    if (type == PFGM_EMBEDDING_FOURIER) nt_randn(c.x, c.n_x, 51, 0.1f, 1.2f);
    else nt_randn(c.x, c.n_x, 51, 1.0f, 5.0f);
    blk_check(&c, what);
    if (type == PFGM_EMBEDDING_FOURIER) {
        /* the fixed W has no gradient and is not trainable */
        int i = pfgm_nn_params_find(&c.t, "all_modules.0.W");
        assert_true(i >= 0);
        assert_int_equal(c.t.items[i].trainable, 0);
        assert_null(c.t.items[i].bind_grad);
        assert_true(c.t.items[i].offset >= c.t.trainable_floats);
    }
    blk_free(&c);
}

static void test_zembed_positional_mlp(void **state) {
    (void)state;
    check_zembed(PFGM_EMBEDDING_POSITIONAL, "zembed positional");
}
static void test_zembed_fourier_mlp(void **state) {
    (void)state;
    check_zembed(PFGM_EMBEDDING_FOURIER, "zembed fourier");
}

/* ---- PFGM head ------------------------------------------------------------------------ */

static void test_head(void **state) {
    (void)state;
    blk_ctx c = {.kind = K_HEAD, .batch = 2};
    c.be = nt_backend(1);
    c.pool.be = c.be;
    int module = 16;
    const int64_t in_ch = 8, ch = 2, h = 4, w = 5;
    assert_int_equal(pfgm_head_setup(&c.hd, &c.t, &module, in_ch, ch, h, w, 0.0), PFGM_OK);
    assert_int_equal(module, 18);
    assert_true(pfgm_nn_params_find(&c.t, "all_modules.16.weight") >= 0);
    assert_true(pfgm_nn_params_find(&c.t, "all_modules.17.bias") >= 0);
    assert_int_equal(pfgm_nn_params_alloc(&c.t, c.be), PFGM_OK);
    randomize_params(&c.t, 800);
    pfgm_slot_spec spec[PFGM_HEAD_SLOTS];
    pfgm_head_slots(c.be, &c.hd, c.batch, 1, spec);
    nt_slots(&c.pool, spec, PFGM_HEAD_SLOTS, c.batch, c.slots);
    c.n_x = c.batch * in_ch * h * w;
    c.n_out = c.batch * ch * h * w;
    c.n_out2 = c.batch;
    c.x = nt_alloc(&c.pool, c.n_x);
    nt_randn(c.x, c.n_x, 61, 1.0f, 0.0f);
    blk_check(&c, "head");
    blk_free(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resblock_identity),
        cmocka_unit_test(test_resblock_conv2),
        cmocka_unit_test(test_resblock_up),
        cmocka_unit_test(test_resblock_down),
        cmocka_unit_test(test_resblock_skip_concat),
        cmocka_unit_test(test_resblock_skip_identity),
        cmocka_unit_test(test_resblock_dropout),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_zembed_positional_mlp),
        cmocka_unit_test(test_zembed_fourier_mlp),
        cmocka_unit_test(test_head),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
