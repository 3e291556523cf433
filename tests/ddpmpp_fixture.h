/* The authors' DDPM++ fixture, replayed on any backend: run_fixture(backend name) reads a
 * fixture written by the authors' PyTorch NCSNpp with the PFGM head (layout of
 * ../shared/testvectors/ddpmpp_tiny_reference.h5, described in its README), builds the
 * architecture from the fixture's root attributes alone, loads every parameter by the
 * authors' state_dict name, runs forward and backward on input/x, input/z against `target`
 * with the training loss of spec §1.5 (pfgm_loss, 0.5*sum form), and compares output/net_x,
 * output/net_z, loss, every grads/<name> and grad_input/x. Nothing in here knows the tiny
 * configuration: another fixture of the same layout runs unchanged.
 *
 * Fixture path (fixture_path() fills g_path): $PFGM_DDPMPP_FIXTURE, else
 * $PFGM_SOURCE_DIR/../shared/testvectors/ddpmpp_tiny_reference.h5.
 *
 * Tolerances (testvectors/README.md): the fixture is float64, the C network float32, so
 * outputs agree to ~1e-4 relative and gradients to ~1e-3 relative by tensor norm. Measured
 * on the tiny fixture (CPU): outputs ~2e-7, dL/dx ~2e-6, parameter gradients <= ~1e-5
 * (printed), so the README's bounds leave a wide margin while a wrong layer, name or order
 * gives errors of order 1 (a stale buffer in the activation plan showed up as 1.0 on
 * Dense_0). Users: tests/unit/test_ddpmpp_reference.c (CPU modes), tests/gpu/
 * test_cuda_model.c (CUDA). Header-only: include it once, after cmocka.h. */
#ifndef PFGM_TESTS_DDPMPP_FIXTURE_H
#define PFGM_TESTS_DDPMPP_FIXTURE_H

#include <hdf5.h>

#include "nn_testutil.h"
#include "pfgm/ddpmpp.h"
#include "pfgm/params_h5.h"
#include "pfgm/loss.h"

#define TOL_OUT 1e-4  /* relative, by tensor norm: net_x, net_z, loss */
#define TOL_GRAD 1e-3 /* relative, by tensor norm: every parameter gradient and dL/dx */

static char g_path[4096];

static void fixture_path(void) {
    const char *env = getenv("PFGM_DDPMPP_FIXTURE");
    if (env && *env) {
        snprintf(g_path, sizeof g_path, "%s", env);
    } else {
        const char *src = getenv("PFGM_SOURCE_DIR");
        snprintf(g_path, sizeof g_path, "%s/../shared/testvectors/ddpmpp_tiny_reference.h5", src ? src : ".");
    }
}

/* ---- fixture reading ------------------------------------------------------------------ */

static int attr_exists(hid_t f, const char *name) { return H5Aexists(f, name) > 0; }

static double attr_double(hid_t f, const char *name) {
    double v = 0;
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    if (a < 0) fail_msg("%s: root attribute '%s' missing", g_path, name);
    assert_true(H5Aread(a, H5T_NATIVE_DOUBLE, &v) >= 0);
    H5Aclose(a);
    return v;
}

/* Integer list attribute (ch_mult, attn_resolutions); returns its length. */
static int attr_ints(hid_t f, const char *name, int64_t *out, int cap) {
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    if (a < 0) fail_msg("%s: root attribute '%s' missing", g_path, name);
    hid_t sp = H5Aget_space(a);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    assert_true(n >= 0 && n <= cap);
    long long buf[64];
    if (n > 0) assert_true(H5Aread(a, H5T_NATIVE_LLONG, buf) >= 0);
    for (hssize_t i = 0; i < n; ++i) out[i] = buf[i];
    H5Sclose(sp);
    H5Aclose(a);
    return (int)n;
}

/* A boolean stored as h5py's enum {FALSE, TRUE} over int8 (or any integer). */
static int attr_bool(hid_t f, const char *name) {
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    hid_t ft = H5Aget_type(a);
    size_t sz = H5Tget_size(ft);
    unsigned char raw[16] = {0};
    assert_true(sz <= sizeof raw);
    assert_true(H5Aread(a, ft, raw) >= 0);
    int v = 0;
    for (size_t i = 0; i < sz; ++i) v |= raw[i];
    H5Tclose(ft);
    H5Aclose(a);
    return v != 0;
}

static void attr_string(hid_t f, const char *name, char *out, size_t cap) {
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    if (a < 0) fail_msg("%s: root attribute '%s' missing", g_path, name);
    hid_t ft = H5Aget_type(a);
    if (H5Tis_variable_str(ft) > 0) {
        char *s = NULL;
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(ft)); /* h5py writes UTF-8 */
        assert_true(H5Aread(a, mt, &s) >= 0);
        snprintf(out, cap, "%s", s);
        H5free_memory(s);
        H5Tclose(mt);
    } else {
        size_t sz = H5Tget_size(ft);
        char *buf = calloc(sz + 1, 1);
        assert_true(H5Aread(a, ft, buf) >= 0);
        snprintf(out, cap, "%s", buf);
        free(buf);
    }
    H5Tclose(ft);
    H5Aclose(a);
}

/* The whole dataset as float32 (malloc'd); *n elements, dims into dims[] (may be NULL). */
static float *read_f32(hid_t f, const char *name, int64_t *n, int *rank, hsize_t *dims) {
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0) fail_msg("%s: dataset '%s' missing", g_path, name);
    hid_t sp = H5Dget_space(d);
    hsize_t dd[8] = {0};
    int r = H5Sget_simple_extent_ndims(sp);
    H5Sget_simple_extent_dims(sp, dd, NULL);
    int64_t cnt = 1;
    for (int i = 0; i < r; ++i) cnt *= (int64_t)dd[i];
    float *v = malloc((size_t)(cnt ? cnt : 1) * sizeof(float));
    assert_true(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    H5Sclose(sp);
    H5Dclose(d);
    if (n) *n = cnt;
    if (rank) *rank = r;
    if (dims)
        for (int i = 0; i < r; ++i) dims[i] = dd[i];
    return v;
}

/* ---- the test ------------------------------------------------------------------------- */

typedef struct worst {
    double grad;
    char name[PFGM_NN_NAME_MAX + 8];
} worst;

static double report(const char *what, const float *got, const float *want, int64_t n) {
    double rel = nt_rel_err(got, want, n), mx = nt_max_err(got, want, n);
    printf("  %-44s rel.err(norm) %.2e  max.err/max %.2e\n", what, rel, mx);
    return rel;
}

static void run_fixture(const char *backend_name) {
    hid_t f = H5Fopen(g_path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) fail_msg("%s: cannot open the fixture (set PFGM_DDPMPP_FIXTURE)", g_path);
    printf("fixture %s, backend %s\n", g_path, backend_name);

    /* architecture from the fixture's attributes */
    pfgm_ddpmpp_desc d;
    memset(&d, 0, sizeof d);
    d.image_size = (int64_t)attr_double(f, "image_size");
    d.channels = (int64_t)attr_double(f, "num_channels");
    d.nf = (int64_t)attr_double(f, "nf");
    d.num_levels = attr_ints(f, "ch_mult", d.ch_mult, PFGM_DDPMPP_MAX_LEVELS);
    d.num_res_blocks = (int64_t)attr_double(f, "num_res_blocks");
    d.num_attn = attr_ints(f, "attn_resolutions", d.attn_resolutions, PFGM_DDPMPP_MAX_ATTN);
    char emb[64];
    attr_string(f, "embedding_type", emb, sizeof emb);
    assert_true(strcmp(emb, "positional") == 0 || strcmp(emb, "fourier") == 0);
    d.embedding_type = strcmp(emb, "fourier") == 0 ? PFGM_EMBEDDING_FOURIER : PFGM_EMBEDDING_POSITIONAL;
    d.fourier_scale = attr_double(f, "fourier_scale");
    d.dropout = attr_exists(f, "dropout") ? attr_double(f, "dropout") : 0.0;
    d.skip_rescale = attr_exists(f, "skip_rescale") ? attr_bool(f, "skip_rescale") : 1;
    d.init_scale = attr_exists(f, "init_scale") ? attr_double(f, "init_scale") : 0.0;
    if (attr_exists(f, "resblock_type")) {
        char rt[64];
        attr_string(f, "resblock_type", rt, sizeof rt);
        assert_string_equal(rt, "biggan");
    }
    printf("  image_size %lld, channels %lld, nf %lld, %d levels, %lld blocks, %d attention resolutions, %s\n",
           (long long)d.image_size, (long long)d.channels, (long long)d.nf, d.num_levels, (long long)d.num_res_blocks,
           d.num_attn, emb);

    int64_t nx, nz, nt;
    int rank;
    hsize_t xd[8];
    float *x = read_f32(f, "input/x", &nx, &rank, xd);
    float *z = read_f32(f, "input/z", &nz, NULL, NULL);
    float *target = read_f32(f, "target", &nt, NULL, NULL);
    float *want_x = read_f32(f, "output/net_x", NULL, NULL, NULL);
    float *want_z = read_f32(f, "output/net_z", NULL, NULL, NULL);
    float *want_loss = read_f32(f, "loss", NULL, NULL, NULL);
    float *want_dx = read_f32(f, "grad_input/x", NULL, NULL, NULL);
    assert_int_equal(rank, 4);
    const int64_t B = (int64_t)xd[0], N = nx / B;
    assert_int_equal((int64_t)xd[1], d.channels);
    assert_int_equal((int64_t)xd[2], d.image_size);
    assert_int_equal(nz, B);
    assert_int_equal(nt, B * (N + 1));

    pfgm_backend *be = NULL;
    assert_int_equal(pfgm_backend_create(backend_name, &be), PFGM_OK);
    pfgm_ddpmpp *m = NULL;
    pfgm_status st = pfgm_ddpmpp_create(be, &d, B, PFGM_DDPMPP_TRAIN, &m);
    if (st != PFGM_OK) fail_msg("model: %s", pfgm_error_message());
    pfgm_nn_params *t = pfgm_ddpmpp_params(m);

    /* names and order: the fixture's param_order is the authors' construction order */
    if (attr_exists(f, "param_count")) {
        int64_t pc = (int64_t)attr_double(f, "param_count");
        printf("  parameters: %lld (fixture %lld)\n", (long long)t->count, (long long)pc);
        assert_int_equal(t->count, pc);
    }
    if (attr_exists(f, "param_order")) {
        hid_t a = H5Aopen(f, "param_order", H5P_DEFAULT);
        hid_t sp = H5Aget_space(a);
        hssize_t n = H5Sget_simple_extent_npoints(sp);
        assert_int_equal(n, t->n);
        char **names = calloc((size_t)n, sizeof *names);
        hid_t ft = H5Aget_type(a);
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(ft));
        H5Tclose(ft);
        assert_true(H5Aread(a, mt, names) >= 0);
        for (hssize_t i = 0; i < n; ++i) assert_string_equal(names[i], t->items[i].name);
        H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, names);
        free(names);
        H5Tclose(mt);
        H5Sclose(sp);
        H5Aclose(a);
    }
    st = pfgm_ddpmpp_load_h5(m, g_path, "params");
    if (st != PFGM_OK) fail_msg("load: %s", pfgm_error_message());

    /* forward */
    nt_pool pool = {.be = be};
    float *bx = nt_alloc(&pool, nx), *bz = nt_alloc(&pool, B), *btarget = nt_alloc(&pool, nt);
    float *dnx = nt_alloc(&pool, nx), *dnz = nt_alloc(&pool, B), *dx = nt_alloc(&pool, nx);
    assert_int_equal(pfgm_backend_upload(be, bx, x, nx), PFGM_OK);
    assert_int_equal(pfgm_backend_upload(be, bz, z, B), PFGM_OK);
    assert_int_equal(pfgm_backend_upload(be, btarget, target, nt), PFGM_OK);
    const float *net_x, *net_z;
    st = pfgm_ddpmpp_forward(m, B, bx, bz, NULL, &net_x, &net_z);
    if (st != PFGM_OK) fail_msg("forward: %s", pfgm_error_message());
    float *hx = malloc((size_t)nx * sizeof(float)), *hz = malloc((size_t)B * sizeof(float));
    assert_int_equal(pfgm_backend_download(be, hx, net_x, nx), PFGM_OK);
    assert_int_equal(pfgm_backend_download(be, hz, net_z, B), PFGM_OK);
    double e_x = report("output/net_x", hx, want_x, nx);
    double e_z = report("output/net_z", hz, want_z, B);

    /* loss of spec §1.5 on pred = [net_x, net_z] per sample, and its gradients in the
     * network's own layout */
    double loss = 0;
    st = pfgm_loss(be, B, N, net_x, net_z, btarget, 0, dnx, dnz, &loss);
    if (st != PFGM_OK) fail_msg("loss: %s", pfgm_error_message());
    float lf = (float)loss;
    double e_l = report("loss", &lf, want_loss, 1);
    printf("  loss %.9g (fixture %.9g)\n", loss, (double)want_loss[0]);

    /* backward */
    assert_int_equal(pfgm_nn_params_zero_grad(t), PFGM_OK);
    st = pfgm_ddpmpp_backward(m, dnx, dnz, dx);
    if (st != PFGM_OK) fail_msg("backward: %s", pfgm_error_message());
    float *hdx = malloc((size_t)nx * sizeof(float));
    assert_int_equal(pfgm_backend_download(be, hdx, dx, nx), PFGM_OK);
    double e_dx = report("grad_input/x", hdx, want_dx, nx);

    /* every grads/<name> against the model's gradient, and no trainable parameter left out */
    float *hgrad = malloc((size_t)t->floats * sizeof(float));
    assert_int_equal(pfgm_backend_download(be, hgrad, t->grad, t->floats), PFGM_OK);
    hid_t g = H5Gopen2(f, "grads", H5P_DEFAULT);
    assert_true(g >= 0);
    H5G_info_t gi;
    assert_true(H5Gget_info(g, &gi) >= 0);
    /* Scale for tensors whose gradient is zero by symmetry: the attention key bias NIN_1.b
     * shifts every score of a softmax row equally, so PyTorch's float64 value is ~1e-17 and
     * ours ~1e-8; a relative error would be meaningless. Their error is taken relative to
     * 1e-4 of the RMS gradient-tensor norm instead (the other tensors are far above it). */
    float **wants = calloc((size_t)gi.nlinks, sizeof *wants);
    int *idx = calloc((size_t)gi.nlinks, sizeof *idx);
    double rms = 0;
    for (hsize_t i = 0; i < gi.nlinks; ++i) {
        char name[PFGM_NN_NAME_MAX + 8];
        assert_true(H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT) > 0);
        int k = pfgm_nn_params_find(t, name);
        if (k < 0) fail_msg("grads/%s is not a parameter of the C model", name);
        assert_true(t->items[k].trainable);
        int64_t n;
        wants[i] = read_f32(g, name, &n, NULL, NULL);
        assert_int_equal(n, t->items[k].count);
        idx[i] = k;
        rms += nt_dot(wants[i], wants[i], n);
    }
    rms = sqrt(rms / (double)(gi.nlinks ? gi.nlinks : 1));
    worst w = {0, ""}, wr = {0, ""};
    int compared = 0;
    for (hsize_t i = 0; i < gi.nlinks; ++i) {
        const pfgm_nn_param *p = &t->items[idx[i]];
        const float *got = hgrad + p->offset, *want = wants[i];
        double dn = 0, wn = sqrt(nt_dot(want, want, p->count));
        for (int64_t e = 0; e < p->count; ++e) dn += ((double)got[e] - want[e]) * ((double)got[e] - want[e]);
        const int zero = wn < 1e-4 * rms;
        double e = sqrt(dn) / (zero ? 1e-4 * rms : wn);
        if (zero) printf("  grads/%-37s zero by symmetry (|grad| %.1e): err/(1e-4 rms) %.2e\n", p->name, wn, e);
        if (e > w.grad || e != e) {
            w.grad = e;
            snprintf(w.name, sizeof w.name, "%s", p->name);
        }
        if (!zero && (e > wr.grad || e != e)) {
            wr.grad = e;
            snprintf(wr.name, sizeof wr.name, "%s", p->name);
        }
        if (!zero && (e > TOL_GRAD || e != e)) {
            char what[160];
            snprintf(what, sizeof what, "grads/%s", p->name);
            report(what, got, want, p->count);
        }
        free(wants[i]);
        ++compared;
    }
    free(wants);
    free(idx);
    H5Gclose(g);
    int trainable = 0;
    for (int i = 0; i < t->n; ++i) trainable += t->items[i].trainable;
    printf("  grads: %d tensors compared, max rel.err(norm) %.2e (%s); all, zero ones included: %.2e (%s)\n",
           compared, wr.grad, wr.name, w.grad, w.name);
    assert_int_equal(compared, trainable);

    assert_true(e_x <= TOL_OUT);
    assert_true(e_z <= TOL_OUT);
    assert_true(e_l <= TOL_OUT);
    assert_true(e_dx <= TOL_GRAD);
    assert_true(w.grad <= TOL_GRAD);

    free(hgrad);
    free(hdx);
    free(hx);
    free(hz);
    free(x);
    free(z);
    free(target);
    free(want_x);
    free(want_z);
    free(want_loss);
    free(want_dx);
    nt_pool_free(&pool);
    pfgm_ddpmpp_destroy(m);
    pfgm_backend_destroy(be);
    H5Fclose(f);
}

#endif /* PFGM_TESTS_DDPMPP_FIXTURE_H */
