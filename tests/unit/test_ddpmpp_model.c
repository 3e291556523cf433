/* The assembled DDPM++ model (src/nn/ddpmpp*.c): end-to-end gradient checks of small
 * networks of several shapes (two blocks per level, attention at two resolutions, Fourier
 * embedding, dropout in training) on the cpu-reference backend, which exercise the layer list,
 * the skip stack and the activation plan together; per-sample independence of the batch
 * (a smaller batch gives the same bits as the first rows of a larger one), determinism,
 * inference-only models, the initialisation of spec §3.4, and parameter files (round trip and
 * the one-line errors for missing, extra and mis-shaped datasets).
 *
 * Gradient-check tolerance: central step 1e-2 on O(1) values through ~25 float32 layers; the
 * measured errors are below 5e-4 (printed), MODEL_TOL = 5e-3 leaves a margin of 10 while a
 * miswired skip or a clobbered buffer gives errors of order 1. */
#include <hdf5.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <unistd.h>
#include <cmocka.h>

#include "nn_testutil.h"
#include "pfgm/ddpmpp.h"
#include "pfgm/params_h5.h"

#define MODEL_TOL 5e-3

static pfgm_ddpmpp_desc small_desc(pfgm_embedding_type emb, int64_t nrb, int attn_two, double dropout) {
    pfgm_ddpmpp_desc d;
    memset(&d, 0, sizeof d);
    d.image_size = 8;
    d.channels = 2;
    d.nf = 8;
    d.num_levels = 2;
    d.ch_mult[0] = 1;
    d.ch_mult[1] = 2;
    d.num_res_blocks = nrb;
    d.attn_resolutions[0] = 4;
    d.attn_resolutions[1] = 8;
    d.num_attn = attn_two ? 2 : 1;
    d.dropout = dropout;
    d.embedding_type = emb;
    d.fourier_scale = 2.0;
    d.skip_rescale = 1;
    d.init_scale = 0.0;
    return d;
}

/* O(1) parameters everywhere (the init leaves Conv_1, NIN_3 and the head near zero);
 * GroupNorm weights near 1: the blocks' GroupNorm_k and the head's (tensor n-4). */
static void randomize(pfgm_nn_params *t, uint32_t key) {
    for (int i = 0; i < t->n; ++i) {
        pfgm_nn_param *p = &t->items[i];
        if (!p->trainable) continue;
        int gnw = (strstr(p->name, "GroupNorm") && strstr(p->name, ".weight")) || i == t->n - 4;
        double fan = p->ndim >= 2 ? (double)p->count / (double)p->shape[0] : 1.0;
        if (p->ndim == 2 && strstr(p->name, ".W")) fan = (double)p->shape[0]; /* NIN W [in, out] */
        nt_randn(t->value + p->offset, p->count, key + (uint32_t)i, p->ndim >= 2 ? (float)(1.0 / sqrt(fan)) : 0.2f,
                 gnw ? 1.0f : 0.0f);
    }
}

typedef struct mctx {
    pfgm_backend *be;
    pfgm_ddpmpp *m;
    nt_pool pool;
    int64_t batch, nx;
    float *x, *z, *rx, *rz, *dx;
    pfgm_nn_run run;
} mctx;

static double model_loss(void *p) {
    mctx *c = p;
    const float *nx, *nz;
    pfgm_status st = pfgm_ddpmpp_forward(c->m, c->batch, c->x, c->z, &c->run, &nx, &nz);
    if (st != PFGM_OK) fail_msg("forward: %s", pfgm_error_message());
    return nt_dot(nx, c->rx, c->nx) + nt_dot(nz, c->rz, c->batch);
}

static void mctx_open(mctx *c, pfgm_backend *be, const pfgm_ddpmpp_desc *d, int64_t batch, int train_dropout) {
    memset(c, 0, sizeof *c);
    c->be = be;
    c->pool.be = be;
    c->batch = batch;
    pfgm_status st = pfgm_ddpmpp_create(be, d, batch, PFGM_DDPMPP_TRAIN, &c->m);
    if (st != PFGM_OK) fail_msg("create: %s", pfgm_error_message());
    c->nx = batch * d->channels * d->image_size * d->image_size;
    c->x = nt_alloc(&c->pool, c->nx);
    c->z = nt_alloc(&c->pool, batch);
    c->rx = nt_alloc(&c->pool, c->nx);
    c->rz = nt_alloc(&c->pool, batch);
    c->dx = nt_alloc(&c->pool, c->nx);
    nt_randn(c->x, c->nx, 71, 1.0f, 0.0f);
    nt_randn(c->rx, c->nx, 72, 1.0f, 0.0f);
    nt_randn(c->rz, batch, 73, 3.0f, 0.0f);
    /* z: raw values 0.5 .. 30 for the positional embedding, positive for ln z */
    const float zs[6] = {0.7f, 12.0f, 3.5f, 29.0f, 1.3f, 6.0f};
    for (int64_t b = 0; b < batch; ++b) c->z[b] = zs[b % 6];
    c->run = (pfgm_nn_run){.train = train_dropout,
                           .dropout_rng = {.seed = 17, .rank = 0, .stream = PFGM_STREAM_DROPOUT, .step = 5}};
}

static void mctx_close(mctx *c) {
    pfgm_ddpmpp_destroy(c->m);
    nt_pool_free(&c->pool);
}

static void check_model_grad(const pfgm_ddpmpp_desc *d, int train_dropout, const char *what) {
    pfgm_backend *be = nt_backend(1);
    mctx c;
    mctx_open(&c, be, d, 2, train_dropout);
    pfgm_nn_params *t = pfgm_ddpmpp_params(c.m);
    randomize(t, 400);
    assert_int_equal(pfgm_nn_params_zero_grad(t), PFGM_OK);
    model_loss(&c);
    assert_int_equal(pfgm_ddpmpp_backward(c.m, c.rx, c.rz, c.dx), PFGM_OK);
    /* the input and one tensor of every kind of layer, first and last included */
    nt_tensor ts[20];
    int n = 0;
    ts[n++] = (nt_tensor){"x", c.x, c.dx, c.nx, 1e-2, 0};
    const char *pick[] = {"all_modules.0.weight", "Dense_0.weight", "GroupNorm_0.bias", "Conv_0.weight",
                          "Conv_1.weight", "Conv_2.weight", "NIN_0.W", "NIN_3.W", "NIN_2.b"};
    for (size_t k = 0; k < sizeof pick / sizeof pick[0]; ++k) {
        /* the last tensor whose name contains the pattern: deep in the up path */
        int found = -1;
        for (int i = 0; i < t->n; ++i)
            if (strstr(t->items[i].name, pick[k]) && t->items[i].trainable) found = i;
        if (found < 0) continue;
        pfgm_nn_param *p = &t->items[found];
        ts[n++] = (nt_tensor){p->name, t->value + p->offset, t->grad + p->offset, p->count, 1e-2, 0};
    }
    /* and the first of some: the input conv (after the embedding) and the down path */
    const char *first[] = {"Conv_0.weight", "NIN_1.W", "GroupNorm_1.weight"};
    for (size_t k = 0; k < sizeof first / sizeof first[0]; ++k)
        for (int i = 0; i < t->n; ++i)
            if (strstr(t->items[i].name, first[k])) {
                pfgm_nn_param *p = &t->items[i];
                ts[n++] = (nt_tensor){p->name, t->value + p->offset, t->grad + p->offset, p->count, 1e-2, 0};
                break;
            }
    const int conv_in = d->embedding_type == PFGM_EMBEDDING_FOURIER ? 5 : 4; /* W?, 2 Dense, then conv */
    pfgm_nn_param *cin = &t->items[conv_in];
    assert_non_null(strstr(cin->name, "weight"));
    assert_int_equal(cin->shape[1], d->channels);
    ts[n++] = (nt_tensor){cin->name, t->value + cin->offset, t->grad + cin->offset, cin->count, 1e-2, 0};
    pfgm_nn_param *last = &t->items[t->n - 2]; /* head conv weight */
    ts[n++] = (nt_tensor){last->name, t->value + last->offset, t->grad + last->offset, last->count, 1e-2, 0};
    double e = nt_gradcheck(&c, model_loss, ts, n, what);
    assert_true(e < MODEL_TOL);
    mctx_close(&c);
    pfgm_backend_destroy(be);
}

static void test_gradcheck_positional_two_blocks(void **state) {
    (void)state;
    pfgm_ddpmpp_desc d = small_desc(PFGM_EMBEDDING_POSITIONAL, 2, 1, 0.0);
    check_model_grad(&d, 0, "model pos nrb2 attn8+4");
}

static void test_gradcheck_fourier_dropout(void **state) {
    (void)state;
    pfgm_ddpmpp_desc d = small_desc(PFGM_EMBEDDING_FOURIER, 1, 0, 0.2);
    check_model_grad(&d, 1, "model fourier dropout");
}

/* ---- batch independence, determinism, inference models ---------------------------------- */

static void test_batch_prefix_and_determinism(void **state) {
    (void)state;
    pfgm_backend *be = nt_backend(0);
    pfgm_ddpmpp_desc d = small_desc(PFGM_EMBEDDING_POSITIONAL, 1, 1, 0.0);
    mctx c;
    mctx_open(&c, be, &d, 5, 0);
    pfgm_nn_params *t = pfgm_ddpmpp_params(c.m);
    assert_int_equal(pfgm_ddpmpp_init_params(c.m, 3), PFGM_OK);
    randomize(t, 500);
    const int64_t per = c.nx / 5;
    const float *nx, *nz;
    float full_x[5 * 2 * 64], full_z[5], part_x[3 * 2 * 64], part_z[3];
    assert_int_equal(pfgm_ddpmpp_forward(c.m, 5, c.x, c.z, NULL, &nx, &nz), PFGM_OK);
    memcpy(full_x, nx, sizeof full_x);
    memcpy(full_z, nz, sizeof full_z);
    assert_int_equal(pfgm_ddpmpp_forward(c.m, 3, c.x, c.z, NULL, &nx, &nz), PFGM_OK);
    memcpy(part_x, nx, sizeof part_x);
    memcpy(part_z, nz, sizeof part_z);
    /* every op is per sample: the first three rows do not depend on the other two */
    assert_memory_equal(part_x, full_x, (size_t)(3 * per) * sizeof(float));
    assert_memory_equal(part_z, full_z, 3 * sizeof(float));
    /* two forward+backward passes give the same gradient bits */
    float *g1 = malloc((size_t)t->floats * sizeof(float));
    for (int rep = 0; rep < 2; ++rep) {
        assert_int_equal(pfgm_nn_params_zero_grad(t), PFGM_OK);
        assert_int_equal(pfgm_ddpmpp_forward(c.m, 5, c.x, c.z, NULL, &nx, &nz), PFGM_OK);
        assert_int_equal(pfgm_ddpmpp_backward(c.m, c.rx, c.rz, NULL), PFGM_OK);
        if (rep == 0) memcpy(g1, t->grad, (size_t)t->floats * sizeof(float));
        else assert_memory_equal(g1, t->grad, (size_t)t->floats * sizeof(float));
    }
    /* backward needs a fresh forward; batch limits */
    assert_int_equal(pfgm_ddpmpp_backward(c.m, c.rx, c.rz, NULL), PFGM_ERR_INVALID_ARG);
    assert_int_equal(pfgm_ddpmpp_forward(c.m, 6, c.x, c.z, NULL, &nx, &nz), PFGM_ERR_INVALID_ARG);
    assert_non_null(strstr(pfgm_error_message(), "batch 6"));
    assert_int_equal(pfgm_ddpmpp_forward(c.m, 0, c.x, c.z, NULL, &nx, &nz), PFGM_ERR_INVALID_ARG);

    /* an inference-only model: same outputs, smaller arena, no backward */
    pfgm_ddpmpp *inf = NULL;
    assert_int_equal(pfgm_ddpmpp_create(be, &d, 5, PFGM_DDPMPP_INFER, &inf), PFGM_OK);
    pfgm_nn_params *ti = pfgm_ddpmpp_params(inf);
    assert_int_equal(ti->floats, t->floats);
    memcpy(ti->value, t->value, (size_t)t->floats * sizeof(float));
    assert_int_equal(pfgm_ddpmpp_forward(inf, 5, c.x, c.z, NULL, &nx, &nz), PFGM_OK);
    assert_memory_equal(nx, full_x, sizeof full_x);
    assert_memory_equal(nz, full_z, sizeof full_z);
    assert_int_equal(pfgm_ddpmpp_backward(inf, c.rx, c.rz, NULL), PFGM_ERR_INVALID_ARG);
    pfgm_ddpmpp_info it, ii;
    pfgm_ddpmpp_get_info(c.m, &it);
    pfgm_ddpmpp_get_info(inf, &ii);
    printf("  arena at batch 5: train %zu bytes, inference %zu bytes (no reuse: %zu)\n", it.activation_bytes,
           ii.activation_bytes, it.unshared_bytes);
    assert_true(ii.activation_bytes < it.activation_bytes);
    size_t b5, b1;
    assert_int_equal(pfgm_ddpmpp_activation_bytes(c.m, 5, &b5), PFGM_OK);
    assert_int_equal(pfgm_ddpmpp_activation_bytes(c.m, 1, &b1), PFGM_OK);
    assert_int_equal(b5, it.activation_bytes);
    assert_true(b1 < b5);
    pfgm_ddpmpp_destroy(inf);
    free(g1);
    mctx_close(&c);
    pfgm_backend_destroy(be);
}

/* ---- initialisation (spec §3.4) ------------------------------------------------------------ */

static void test_init(void **state) {
    (void)state;
    pfgm_backend *be = nt_backend(0);
    pfgm_ddpmpp_desc d = small_desc(PFGM_EMBEDDING_FOURIER, 1, 1, 0.0);
    d.nf = 32;
    d.fourier_scale = 16.0;
    pfgm_ddpmpp *m = NULL, *m2 = NULL;
    assert_int_equal(pfgm_ddpmpp_create(be, &d, 1, PFGM_DDPMPP_TRAIN, &m), PFGM_OK);
    assert_int_equal(pfgm_ddpmpp_create(be, &d, 1, PFGM_DDPMPP_TRAIN, &m2), PFGM_OK);
    assert_int_equal(pfgm_ddpmpp_init_params(m, 42), PFGM_OK);
    assert_int_equal(pfgm_ddpmpp_init_params(m2, 42), PFGM_OK);
    pfgm_nn_params *t = pfgm_ddpmpp_params(m), *t2 = pfgm_ddpmpp_params(m2);
    assert_memory_equal(t->value, t2->value, (size_t)t->floats * sizeof(float));
    assert_int_equal(pfgm_ddpmpp_init_params(m2, 43), PFGM_OK);
    assert_memory_not_equal(t->value, t2->value, (size_t)t->floats * sizeof(float));
    for (int i = 0; i < t->n; ++i) {
        const pfgm_nn_param *p = &t->items[i];
        const float *v = t->value + p->offset;
        double s = 0, s2 = 0, mx = 0;
        for (int64_t e = 0; e < p->count; ++e) {
            s += v[e];
            s2 += (double)v[e] * v[e];
            mx = fabs(v[e]) > mx ? fabs(v[e]) : mx;
        }
        const double var = s2 / (double)p->count;
        if (p->init == PFGM_INIT_ZEROS) {
            assert_true(mx == 0.0);
        } else if (p->init == PFGM_INIT_ONES) {
            assert_true(s == (double)p->count && s2 == (double)p->count);
        } else if (p->init == PFGM_INIT_NORMAL) {
            /* fixed Fourier W ~ N(0, 16^2): nf = 32 draws */
            assert_false(p->trainable);
            assert_true(var > 16.0 * 16.0 * 0.4 && var < 16.0 * 16.0 * 2.0);
        } else {
            /* U(-a, a), a = sqrt(3 scale / fan_avg); variance a^2/3; scale 0 -> 1e-10 */
            double rf = 1;
            for (int k = 2; k < p->ndim; ++k) rf *= (double)p->shape[k];
            double fan_avg = 0.5 * ((double)p->shape[0] + (double)p->shape[1]) * rf;
            double scale = p->init_scale == 0.0 ? 1e-10 : p->init_scale;
            double a = sqrt(3.0 * scale / fan_avg);
            assert_true(mx <= a * (1 + 1e-6));
            if (p->count >= 256) {
                double rel = var / (a * a / 3.0);
                if (rel < 0.8 || rel > 1.2) fail_msg("%s: variance %.3g vs %.3g", p->name, var, a * a / 3.0);
            }
        }
        /* the scales of spec §3.4, by the authors' module names */
        if (strstr(p->name, "Conv_1.weight") || strstr(p->name, "NIN_3.W")) assert_true(p->init_scale == 0.0);
        if (strstr(p->name, "NIN_0.W")) assert_true(p->init_scale == 0.1);
        if (strstr(p->name, "Conv_0.weight") || strstr(p->name, "Conv_2.weight") || strstr(p->name, "Dense_0.weight"))
            assert_true(p->init_scale == 1.0);
    }
    /* the head conv is init_scale too: all_modules.<last>.weight */
    assert_true(t->items[t->n - 2].init_scale == 0.0);
    assert_int_equal(t->items[t->n - 2].shape[0], d.channels + 1);
    pfgm_ddpmpp_destroy(m);
    pfgm_ddpmpp_destroy(m2);
    pfgm_backend_destroy(be);
}

/* ---- parameter files ---------------------------------------------------------------------- */

static void tmp_path(char *buf, size_t cap, const char *leaf) {
    snprintf(buf, cap, "/tmp/pfgm_test_ddpmpp_%d_%s.h5", (int)getpid(), leaf);
}

static void test_h5_roundtrip_and_errors(void **state) {
    (void)state;
    pfgm_backend *be = nt_backend(0);
    pfgm_ddpmpp_desc d = small_desc(PFGM_EMBEDDING_FOURIER, 1, 1, 0.0);
    pfgm_ddpmpp *a = NULL, *b = NULL;
    assert_int_equal(pfgm_ddpmpp_create(be, &d, 1, PFGM_DDPMPP_INFER, &a), PFGM_OK);
    assert_int_equal(pfgm_ddpmpp_create(be, &d, 1, PFGM_DDPMPP_INFER, &b), PFGM_OK);
    assert_int_equal(pfgm_ddpmpp_init_params(a, 9), PFGM_OK);
    randomize(pfgm_ddpmpp_params(a), 600);
    char path[256], bad[256];
    tmp_path(path, sizeof path, "ok");
    assert_int_equal(pfgm_ddpmpp_save_h5(a, path, "params"), PFGM_OK);
    assert_int_equal(pfgm_ddpmpp_load_h5(b, path, "params"), PFGM_OK);
    pfgm_nn_params *ta = pfgm_ddpmpp_params(a), *tb = pfgm_ddpmpp_params(b);
    assert_memory_equal(ta->value, tb->value, (size_t)ta->floats * sizeof(float));
    /* nested groups (e.g. an EMA copy) work as well */
    tmp_path(bad, sizeof bad, "nested");
    assert_int_equal(pfgm_nn_params_write_h5(ta, bad, "ema/weights", ta->value), PFGM_OK);
    assert_int_equal(pfgm_nn_params_read_h5(tb, bad, "ema/weights", tb->grad), PFGM_OK);
    assert_memory_equal(ta->value, tb->grad, (size_t)ta->floats * sizeof(float));
    unlink(bad);

    /* missing file, not HDF5, missing group */
    assert_int_equal(pfgm_ddpmpp_load_h5(b, "/nonexistent/dir/w.h5", "params"), PFGM_ERR_IO);
    assert_non_null(strstr(pfgm_error_message(), "/nonexistent/dir/w.h5"));
    tmp_path(bad, sizeof bad, "text");
    FILE *fp = fopen(bad, "w");
    fputs("not hdf5\n", fp);
    fclose(fp);
    assert_int_equal(pfgm_ddpmpp_load_h5(b, bad, "params"), PFGM_ERR_FORMAT);
    assert_non_null(strstr(pfgm_error_message(), "not an HDF5 file"));
    unlink(bad);
    assert_int_equal(pfgm_ddpmpp_load_h5(b, path, "ema"), PFGM_ERR_FORMAT);
    assert_non_null(strstr(pfgm_error_message(), "no group 'ema'"));

    /* a missing, an extra and a mis-shaped dataset; each named in one line */
    const char *victim = ta->items[5].name;
    char full[160];
    for (int kind = 0; kind < 3; ++kind) {
        tmp_path(bad, sizeof bad, "edit");
        assert_int_equal(pfgm_ddpmpp_save_h5(a, bad, "params"), PFGM_OK);
        hid_t f = H5Fopen(bad, H5F_ACC_RDWR, H5P_DEFAULT);
        hid_t g = H5Gopen2(f, "params", H5P_DEFAULT);
        hsize_t dims[1] = {3};
        hid_t sp = H5Screate_simple(1, dims, NULL);
        if (kind == 0) {
            assert_true(H5Ldelete(g, victim, H5P_DEFAULT) >= 0);
        } else if (kind == 1) {
            hid_t ds = H5Dcreate2(g, "all_modules.99.bias", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            H5Dclose(ds);
        } else {
            assert_true(H5Ldelete(g, victim, H5P_DEFAULT) >= 0);
            hid_t ds = H5Dcreate2(g, victim, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            H5Dclose(ds);
        }
        H5Sclose(sp);
        H5Gclose(g);
        H5Fclose(f);
        assert_int_equal(pfgm_ddpmpp_load_h5(b, bad, "params"), PFGM_ERR_FORMAT);
        const char *msg = pfgm_error_message();
        printf("  expected error: %s\n", msg);
        assert_null(strchr(msg, '\n'));
        assert_non_null(strstr(msg, bad));
        snprintf(full, sizeof full, "params/%s", kind == 1 ? "all_modules.99.bias" : victim);
        assert_non_null(strstr(msg, full));
        assert_non_null(strstr(msg, kind == 0 ? "missing" : kind == 1 ? "not a parameter" : "shape [3]"));
        unlink(bad);
    }
    /* float64 datasets are accepted and converted (the authors' fixture is float64) */
    tmp_path(bad, sizeof bad, "f64");
    {
        hid_t f = H5Fcreate(bad, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
        hid_t g = H5Gcreate2(f, "params", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        for (int i = 0; i < ta->n; ++i) {
            const pfgm_nn_param *p = &ta->items[i];
            hsize_t dims[4];
            for (int k = 0; k < p->ndim; ++k) dims[k] = (hsize_t)p->shape[k];
            double *v = malloc((size_t)p->count * sizeof(double));
            for (int64_t e = 0; e < p->count; ++e) v[e] = ta->value[p->offset + e];
            hid_t sp = H5Screate_simple(p->ndim, dims, NULL);
            hid_t ds = H5Dcreate2(g, p->name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            assert_true(H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
            H5Dclose(ds);
            H5Sclose(sp);
            free(v);
        }
        H5Gclose(g);
        H5Fclose(f);
    }
    memset(tb->value, 0, (size_t)tb->floats * sizeof(float));
    assert_int_equal(pfgm_ddpmpp_load_h5(b, bad, "params"), PFGM_OK);
    assert_memory_equal(ta->value, tb->value, (size_t)ta->floats * sizeof(float));
    unlink(bad);
    unlink(path);
    pfgm_ddpmpp_destroy(a);
    pfgm_ddpmpp_destroy(b);
    pfgm_backend_destroy(be);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradcheck_positional_two_blocks),
        cmocka_unit_test(test_gradcheck_fourier_dropout),
        cmocka_unit_test(test_batch_prefix_and_determinism),
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_h5_roundtrip_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
