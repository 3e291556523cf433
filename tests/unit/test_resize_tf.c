/* TensorFlow's antialiased resize (pfgm_image_resize_tf) and the authors' LSUN pipeline
 * (pfgm_image_lsun) against TensorFlow's own outputs in tests/fixtures/images/resize_tf.h5
 * (written by tests/scripts/make_image_fixtures.py with tf.image.resize; see its header).
 * Float outputs are compared with |ours - tf| <= 1e-3 + 1e-5 |tf| on the 0..255 scale: both
 * sides compute in float32 the same sums, so the differences are float rounding and
 * summation-order effects (a few ulps of values up to ~300, i.e. ~1e-4); the report gives
 * the largest error and the fraction of the tolerance it uses. uint8 outputs must equal
 * clamp-then-truncate (bicubic) or round-to-nearest (the 128 path) of TensorFlow's float,
 * except where TensorFlow's value is within 1e-3 of a quantization boundary (there float
 * rounding may fall on either side). Hand checks: the Keys kernel's weights for an exact
 * 2x upscale, a constant image staying constant. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pfgm/image.h"

#define ATOL 1e-3
#define RTOL 1e-5

static char g_path[1024];

static const char *fixture_path(void) {
    const char *src = getenv("PFGM_SOURCE_DIR");
    snprintf(g_path, sizeof g_path, "%s/tests/fixtures/images/resize_tf.h5",
             src && src[0] ? src : ".");
    return g_path;
}

/* Reads dataset name (relative to g) into a malloc'ed buffer of the given memory type;
 * dims[0..rank) out. */
static void *read_ds(hid_t g, const char *name, hid_t memtype, size_t elem, hsize_t *dims, int *rank) {
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    assert_true(d >= 0);
    hid_t s = H5Dget_space(d);
    *rank = H5Sget_simple_extent_ndims(s);
    H5Sget_simple_extent_dims(s, dims, NULL);
    hssize_t n = H5Sget_simple_extent_npoints(s);
    void *buf = malloc((size_t)n * elem);
    assert_non_null(buf);
    assert_true(H5Dread(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
    H5Sclose(s);
    H5Dclose(d);
    return buf;
}

static int64_t read_int_attr(hid_t g, const char *name) {
    long long v = 0;
    hid_t a = H5Aopen(g, name, H5P_DEFAULT);
    assert_true(a >= 0);
    assert_true(H5Aread(a, H5T_NATIVE_LLONG, &v) >= 0);
    H5Aclose(a);
    return v;
}

static void read_str_attr(hid_t g, const char *name, char *buf, size_t cap) {
    hid_t a = H5Aopen(g, name, H5P_DEFAULT);
    assert_true(a >= 0);
    hid_t t = H5Aget_type(a);
    buf[0] = '\0';
    if (H5Tis_variable_str(t) > 0) {
        char *s = NULL; /* h5py writes UTF-8 variable-length strings: read in the file's type */
        assert_true(H5Aread(a, t, &s) >= 0);
        snprintf(buf, cap, "%s", s);
        H5free_memory(s);
    } else {
        size_t n = H5Tget_size(t);
        char *s = calloc(n + 1, 1);
        assert_true(H5Aread(a, t, s) >= 0);
        snprintf(buf, cap, "%s", s);
        free(s);
    }
    H5Tclose(t);
    H5Aclose(a);
}

typedef struct walk {
    hid_t group;
    int cases;
    double worst_used; /* largest |err| / tolerance over all cases */
    int lsun;
} walk;

static herr_t check_case(hid_t parent, const char *name, const H5L_info_t *info, void *op) {
    (void)info;
    walk *wk = op;
    hid_t g = H5Gopen2(parent, name, H5P_DEFAULT);
    assert_true(g >= 0);
    hsize_t idims[4], odims[4];
    int irank, orank;
    uint8_t *in = read_ds(g, "input", H5T_NATIVE_UINT8, 1, idims, &irank);
    float *want = read_ds(g, "output", H5T_NATIVE_FLOAT, sizeof(float), odims, &orank);
    assert_int_equal(irank, 3);
    assert_int_equal(orank, 3);
    const int64_t h = (int64_t)idims[0], w = (int64_t)idims[1], c = (int64_t)idims[2];
    const int64_t oh = (int64_t)odims[0], ow = (int64_t)odims[1];
    assert_int_equal(odims[2], c);
    const size_t n = (size_t)(oh * ow * c);
    if (!wk->lsun) {
        char kernel[32];
        read_str_attr(g, "kernel", kernel, sizeof kernel);
        assert_int_equal(read_int_attr(g, "out_h"), oh);
        assert_int_equal(read_int_attr(g, "out_w"), ow);
        pfgm_tf_kernel k = !strcmp(kernel, "keyscubic") ? PFGM_TF_KEYS_CUBIC : PFGM_TF_TRIANGLE;
        float *got = malloc(n * sizeof *got);
        assert_int_equal(pfgm_image_resize_tf(in, w, h, c, 0, 0, w, h, ow, oh, 0, 0, ow, oh, k, got),
                         PFGM_OK);
        double worst = 0.0, worst_err = 0.0;
        for (size_t i = 0; i < n; ++i) {
            const double err = fabs((double)got[i] - (double)want[i]);
            const double tol = ATOL + RTOL * fabs((double)want[i]);
            if (err > tol)
                fail_msg("%s: element %zu: ours %.6f, TensorFlow %.6f (err %.3g > tol %.3g)", name,
                         i, got[i], want[i], err, tol);
            if (err / tol > worst) worst = err / tol;
            if (err > worst_err) worst_err = err;
        }
        /* a window of the result is the same window of the whole */
        if (ow > 3 && oh > 3) {
            float win[3 * 2 * 4];
            assert_int_equal(pfgm_image_resize_tf(in, w, h, c, 0, 0, w, h, ow, oh, 1, 2, 2, 3, k, win),
                             PFGM_OK);
            for (int64_t j = 0; j < 3; ++j)
                for (int64_t i = 0; i < 2; ++i)
                    for (int64_t ch = 0; ch < c; ++ch)
                        assert_true(win[(j * 2 + i) * c + ch] == got[((j + 2) * ow + i + 1) * c + ch]);
        }
        printf("  resize %-18s %lldx%lld -> %lldx%lld %-9s max err %.3g (%.1f%% of tolerance)\n",
               name, (long long)w, (long long)h, (long long)ow, (long long)oh, kernel, worst_err,
               100.0 * worst);
        if (worst > wk->worst_used) wk->worst_used = worst;
        free(got);
    } else {
        const int64_t size = read_int_attr(g, "size");
        assert_int_equal(oh, size);
        assert_int_equal(ow, size);
        uint8_t *got = malloc(n);
        assert_int_equal(pfgm_image_lsun(in, w, h, c, size, got), PFGM_OK);
        int boundary = 0;
        for (int64_t ch = 0; ch < c; ++ch)
            for (int64_t y = 0; y < size; ++y)
                for (int64_t x = 0; x < size; ++x) {
                    const double f = want[(y * size + x) * c + ch];
                    const double cl = f < 0 ? 0 : f > 255 ? 255 : f;
                    const double q = size != 128 ? floor(cl) : floor(cl + 0.5);
                    const double edge = size != 128 ? cl : cl + 0.5; /* where q jumps */
                    const uint8_t g8 = got[(ch * size + y) * size + x];
                    if (fabs(edge - floor(edge + 0.5)) < 1e-3 && edge > 0.5 && edge < 254.5) {
                        ++boundary;
                        assert_true(fabs((double)g8 - q) <= 1.0);
                        continue;
                    }
                    if ((double)g8 != q)
                        fail_msg("%s: pixel (c %lld, y %lld, x %lld): ours %d, TensorFlow %.5f -> %d",
                                 name, (long long)ch, (long long)y, (long long)x, g8, f, (int)q);
                }
        printf("  lsun   %-18s %lldx%lld -> %lld: uint8 equal (%d value(s) within 1e-3 of a "
               "level boundary allowed +-1)\n", name, (long long)w, (long long)h, (long long)size,
               boundary);
        free(got);
    }
    free(in);
    free(want);
    H5Gclose(g);
    wk->cases++;
    return 0;
}

static void t_tf_fixture(void **state) {
    (void)state;
    hid_t f = H5Fopen(fixture_path(), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) fail_msg("cannot open %s (run from the repository root or set PFGM_SOURCE_DIR)", g_path);
    char ver[64];
    read_str_attr(f, "tensorflow", ver, sizeof ver);
    printf("  fixture written with TensorFlow %s\n", ver);
    walk wk = {.lsun = 0};
    hid_t g = H5Gopen2(f, "resize", H5P_DEFAULT);
    assert_true(H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, check_case, &wk) >= 0);
    H5Gclose(g);
    assert_int_equal(wk.cases, 6);
    printf("  worst resize case used %.1f%% of the tolerance\n", 100.0 * wk.worst_used);
    walk wl = {.lsun = 1};
    g = H5Gopen2(f, "lsun", H5P_DEFAULT);
    assert_true(H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, check_case, &wl) >= 0);
    H5Gclose(g);
    assert_int_equal(wl.cases, 4);
    H5Fclose(f);
}

/* Exact 2x upscale of a 1-D impulse: output o samples at s = (o + 0.5) / 2, kernel not
 * widened; the taps' distances are 0.25/0.75/1.25/1.75 and Keys(a = -0.5) gives
 * k(0.25) = 0.8671875, k(0.75) = 0.2265625, k(1.25) = -0.0703125, k(1.75) = -0.0234375
 * (sum 1). An impulse of 128 at input 3 of 8 reaches outputs 4..9 with those weights. */
static void t_keys_weights(void **state) {
    (void)state;
    uint8_t in[8] = {0, 0, 0, 128, 0, 0, 0, 0};
    float out[16];
    assert_int_equal(pfgm_image_resize_tf(in, 8, 1, 1, 0, 0, 8, 1, 16, 1, 0, 0, 16, 1,
                                          PFGM_TF_KEYS_CUBIC, out), PFGM_OK);
    const float want[16] = {0, 0, 0, -0.0234375f * 128, -0.0703125f * 128, 0.2265625f * 128,
                            0.8671875f * 128, 0.8671875f * 128, 0.2265625f * 128,
                            -0.0703125f * 128, -0.0234375f * 128, 0, 0, 0, 0, 0};
    for (int i = 0; i < 16; ++i) assert_float_equal(out[i], want[i], 1e-4);
    /* a constant image stays constant through both kernels */
    uint8_t c[9 * 7 * 2];
    for (int i = 0; i < 9 * 7; ++i) c[2 * i] = 200, c[2 * i + 1] = 3;
    float o[4 * 3 * 2];
    for (int k = 0; k < 2; ++k) {
        assert_int_equal(pfgm_image_resize_tf(c, 9, 7, 2, 0, 0, 9, 7, 4, 3, 0, 0, 4, 3,
                                              (pfgm_tf_kernel)k, o), PFGM_OK);
        for (int i = 0; i < 12; ++i) {
            assert_float_equal(o[2 * i], 200.0f, 1e-3);
            assert_float_equal(o[2 * i + 1], 3.0f, 1e-4);
        }
    }
    assert_int_equal(pfgm_image_resize_tf(c, 9, 7, 2, 0, 0, 10, 7, 4, 3, 0, 0, 4, 3,
                                          PFGM_TF_KEYS_CUBIC, o), PFGM_ERR_INVALID_ARG);
    uint8_t d[2 * 4 * 4];
    assert_int_equal(pfgm_image_lsun(c, 9, 7, 2, 8, d), PFGM_ERR_INVALID_ARG); /* no upsampling */
    /* resize_small's long side: 150 * 128 / 133 = 144.36 -> 144; 129 * 128 / 256 = 64.5 -> 64 */
    assert_int_equal(pfgm_lsun_short_side_length(150, 133, 128), 144);
    assert_int_equal(pfgm_lsun_short_side_length(129, 256, 128), 64);
    assert_int_equal(pfgm_lsun_short_side_length(133, 133, 128), 128);
}

/* Overshoot is clamped before truncation: a hard edge upscaled goes below 0 and above 255
 * in float (checked), and the uint8 result holds 0 and 255 there, never a wrapped value. */
static void t_bicubic_clamps(void **state) {
    (void)state;
    uint8_t in[6 * 6];
    for (int y = 0; y < 6; ++y)
        for (int x = 0; x < 6; ++x) in[y * 6 + x] = x < 3 ? 0 : 255;
    float f[6 * 6];
    assert_int_equal(pfgm_image_resize_tf(in, 6, 6, 1, 1, 1, 4, 4, 6, 6, 0, 0, 6, 6,
                                          PFGM_TF_KEYS_CUBIC, f), PFGM_OK);
    float lo = 1e9f, hi = -1e9f;
    for (int i = 0; i < 36; ++i) lo = f[i] < lo ? f[i] : lo, hi = f[i] > hi ? f[i] : hi;
    assert_true(lo < 0.0f);
    assert_true(hi > 255.0f);
    uint8_t q[36];
    assert_int_equal(pfgm_image_crop_resize_bicubic(in, 6, 6, 1, 4, 6, q), PFGM_OK);
    for (int y = 0; y < 6; ++y) {
        assert_int_equal(q[y * 6 + 0], 0);
        assert_int_equal(q[y * 6 + 5], 255);
        for (int x = 0; x < 6; ++x) {
            const float v = f[y * 6 + x];
            const int want = v < 0 ? 0 : v > 255 ? 255 : (int)v;
            assert_int_equal(q[y * 6 + x], want);
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_tf_fixture),
        cmocka_unit_test(t_keys_weights),
        cmocka_unit_test(t_bicubic_clamps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
