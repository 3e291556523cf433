/* Sample files: the authors' uint8 conversion, the grid layout (read back through libpng),
 * the HDF5 samples file and its datasets' describing attributes. */
#include <hdf5.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "io/h5util.h"
#include "pfgm/image.h"
#include "pfgm/samples.h"

static void test_uint8(void **state) {
    (void)state;
    const float x[] = {-1.0f, 1.0f, 0.0f, -2.0f, 3.0f, 0.999f, -0.999f, 0.0f / 0.0f};
    uint8_t u[8];
    pfgm_samples_to_uint8(8, x, u);
    assert_int_equal(u[0], 0);
    assert_int_equal(u[1], 255);
    assert_int_equal(u[2], 127); /* 127.5 truncates */
    assert_int_equal(u[3], 0);
    assert_int_equal(u[4], 255);
    assert_int_equal(u[5], 254); /* 254.87 truncates */
    assert_int_equal(u[6], 0);   /* 0.1275 truncates */
    assert_int_equal(u[7], 0);
}

static void test_grid_and_h5(void **state) {
    (void)state;
    char dir[] = "/tmp/pfgm_samples_XXXXXX";
    assert_non_null(mkdtemp(dir));
    enum { n = 5, C = 3, H = 4, W = 3 };
    uint8_t imgs[n * C * H * W];
    for (int i = 0; i < n * C * H * W; ++i) imgs[i] = (uint8_t)(i % 251);
    char path[256];
    snprintf(path, sizeof path, "%s/grid.png", dir);
    assert_int_equal(pfgm_samples_write_png_grid(path, imgs, n, C, H, W, 2, 2), PFGM_OK);
    pfgm_image g;
    assert_int_equal(pfgm_png_read(path, 3, &g), PFGM_OK);
    /* 2 columns, 3 rows: width 2*(3+2)+2 = 12, height 3*(4+2)+2 = 20 */
    assert_int_equal(g.width, 12);
    assert_int_equal(g.height, 20);
    /* image 3 sits in row 1, column 1: top-left at (x = 2+5, y = 2+6) */
    for (int c = 0; c < C; ++c)
        for (int y = 0; y < H; ++y)
            for (int x = 0; x < W; ++x)
                assert_int_equal(g.pixels[((8 + y) * 12 + 7 + x) * 3 + c], imgs[3 * C * H * W + (c * H + y) * W + x]);
    assert_int_equal(g.pixels[0], 0); /* padding */
    pfgm_image_free(&g);
    unlink(path);

    snprintf(path, sizeof path, "%s/samples.h5", dir);
    pfgm_samples_meta meta = {.checkpoint = "ckpt_00000100.h5", .step = 100, .solver = "rk45", .nfe = 110, .seed = 7};
    assert_int_equal(pfgm_samples_write_h5(path, imgs, n, C, H, W, &meta), PFGM_OK);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t ds = H5Dopen2(f, "samples", H5P_DEFAULT);
    uint8_t back[n * C * H * W];
    assert_true(H5Dread(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, back) >= 0);
    assert_memory_equal(back, imgs, sizeof imgs);
    H5Dclose(ds);
    H5Fclose(f);
    unlink(path);
    snprintf(path, sizeof path, "%s/missing/samples.h5", dir);
    assert_int_not_equal(pfgm_samples_write_h5(path, imgs, n, C, H, W, &meta), PFGM_OK);
    assert_int_equal(pfgm_samples_write_png_grid(path, imgs, n, 2, H, W, 2, 2), PFGM_ERR_INVALID_ARG);
    rmdir(dir);
}

static void read_f64_attr(hid_t obj, const char *name, double *v, int count) {
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    assert_true(a >= 0);
    hid_t sp = H5Aget_space(a);
    assert_int_equal(H5Sget_simple_extent_npoints(sp), count);
    assert_true(H5Aread(a, H5T_NATIVE_DOUBLE, v) >= 0);
    H5Sclose(sp);
    H5Aclose(a);
}

/* The datasets describe themselves: layout, nominal range, centering / conversion, and for
 * the float samples the measured extremes and the counts outside [-1, 1] and non-finite,
 * read back from a file whose values run from -5.9 to 3.1 with one NaN. */
static void test_h5_attributes(void **state) {
    (void)state;
    char dir[] = "/tmp/pfgm_samples_XXXXXX";
    assert_non_null(mkdtemp(dir));
    enum { n = 2, C = 1, H = 2, W = 3, K = n * C * H * W };
    const float x[K] = {-5.9f, -1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 1.0001f, 3.1f, -1.25f, 0.25f, 0.0f / 0.0f, 0.75f};
    uint8_t u[K];
    pfgm_samples_to_uint8(K, x, u);
    char path[256];
    snprintf(path, sizeof path, "%s/samples.h5", dir);
    pfgm_samples_meta meta = {.checkpoint = "c.h5", .step = 1, .solver = "rk45", .nfe = 8, .seed = 1};
    assert_int_equal(pfgm_samples_write_h5_float(path, x, u, n, C, H, W, &meta), PFGM_OK);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    char text[512];
    double v[2];
    int64_t count = -1;

    hid_t ds = H5Dopen2(f, "samples_float", H5P_DEFAULT);
    assert_int_equal(pfgm_h5_read_str_attr(ds, path, "layout", text, sizeof text), PFGM_OK);
    assert_string_equal(text, "NCHW");
    read_f64_attr(ds, "range", v, 2);
    assert_true(v[0] == -1.0 && v[1] == 1.0);
    assert_int_equal(pfgm_h5_read_str_attr(ds, path, "centering", text, sizeof text), PFGM_OK);
    assert_non_null(strstr(text, "x = 2 v - 1"));
    read_f64_attr(ds, "min_max", v, 2);
    assert_true(v[0] == (double)-5.9f && v[1] == (double)3.1f);
    assert_int_equal(pfgm_h5_read_int_attr(ds, path, "outside_range", &count), PFGM_OK);
    assert_int_equal(count, 4); /* -5.9, 1.0001, 3.1, -1.25 */
    assert_int_equal(pfgm_h5_read_int_attr(ds, path, "nonfinite", &count), PFGM_OK);
    assert_int_equal(count, 1);
    H5Dclose(ds);

    ds = H5Dopen2(f, "samples", H5P_DEFAULT);
    assert_int_equal(pfgm_h5_read_str_attr(ds, path, "layout", text, sizeof text), PFGM_OK);
    assert_string_equal(text, "NCHW");
    read_f64_attr(ds, "range", v, 2);
    assert_true(v[0] == 0.0 && v[1] == 255.0);
    assert_int_equal(pfgm_h5_read_str_attr(ds, path, "conversion", text, sizeof text), PFGM_OK);
    assert_non_null(strstr(text, "trunc(clip(255 * (x + 1) / 2, 0, 255))"));
    H5Dclose(ds);
    H5Fclose(f);
    unlink(path);
    rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_uint8), cmocka_unit_test(test_grid_and_h5),
                                       cmocka_unit_test(test_h5_attributes)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
