/* pfgm-prep folder through the library API, and the image pieces under it: the center
 * offset and the antialiased resize against hand-computed values (PIL's bilinear
 * ImagingResample weights), PNG decoding of every colour type and bit depth (fixtures
 * written with libpng's writer), PNG write/read round trip, the folder conversion, a folder
 * of PNG and JPEG files through the three pipelines (bilinear, bicubic, LSUN), and the
 * errors (empty folder, a file neither PNG nor JPEG, corrupt PNG, image smaller than the crop or size),
 * none of which leaves an output behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "data_fixtures.h"
#include "pfgm/dataset.h"
#include "pfgm/image.h"
#include "pfgm/prep.h"
#include "pfgm/rng.h"

typedef struct fixture {
    char dir[256], imgs[320], out[320];
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    fx_mkdtemp(f->dir, sizeof f->dir);
    fx_join(f->imgs, sizeof f->imgs, f->dir, "imgs");
    fx_join(f->out, sizeof f->out, f->dir, "out.h5");
    mkdir(f->imgs, 0755);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    fx_rm_rf(f->dir);
    free(f);
    return 0;
}

static void t_center_offset(void **state) {
    (void)state;
    assert_int_equal(pfgm_center_offset(218, 140), 39); /* CelebA 178x218, crop 140 */
    assert_int_equal(pfgm_center_offset(178, 140), 19);
    assert_int_equal(pfgm_center_offset(5, 2), 2);      /* 1.5 -> 2 (ties to even) */
    assert_int_equal(pfgm_center_offset(7, 2), 2);      /* 2.5 -> 2 */
    assert_int_equal(pfgm_center_offset(9, 2), 4);      /* 3.5 -> 4 */
    assert_int_equal(pfgm_center_offset(8, 8), 0);
}

/* 4 -> 2: output 0 is centered at input 1.0 with a triangle of half-width 2; the taps at
 * x = 0, 1, 2 weigh 0.75, 0.75, 0.25 (x = -1 is outside the image and dropped), normalized
 * 3/7, 3/7, 1/7; output 1 mirrors it. So [0, 70, 140, 210] -> [50, 160]. */
static void t_resize_hand_values(void **state) {
    (void)state;
    const uint8_t ramp[4] = {0, 70, 140, 210};
    uint8_t src[16], dst[4];
    for (int y = 0; y < 4; ++y)
        for (int x = 0; x < 4; ++x) src[y * 4 + x] = ramp[x];
    assert_int_equal(pfgm_image_crop_resize(src, 4, 4, 1, 4, 2, dst), PFGM_OK);
    const uint8_t want_x[4] = {50, 160, 50, 160};
    assert_memory_equal(dst, want_x, 4);
    for (int y = 0; y < 4; ++y)
        for (int x = 0; x < 4; ++x) src[y * 4 + x] = ramp[y];
    assert_int_equal(pfgm_image_crop_resize(src, 4, 4, 1, 4, 2, dst), PFGM_OK);
    const uint8_t want_y[4] = {50, 50, 160, 160};
    assert_memory_equal(dst, want_y, 4);

    /* 2 -> 4 is plain bilinear interpolation: [0, 100] -> [0, 25, 75, 100] */
    uint8_t s2[4] = {0, 100, 0, 100}, d4[16];
    assert_int_equal(pfgm_image_crop_resize(s2, 2, 2, 1, 2, 4, d4), PFGM_OK);
    const uint8_t row[4] = {0, 25, 75, 100};
    for (int y = 0; y < 4; ++y) assert_memory_equal(d4 + y * 4, row, 4);

    /* a constant image stays constant (weights sum to one), planar output per channel */
    uint8_t c3[7 * 9 * 3], out[3 * 3 * 3];
    for (int i = 0; i < 7 * 9; ++i) {
        c3[i * 3] = 255;
        c3[i * 3 + 1] = 17;
        c3[i * 3 + 2] = 0;
    }
    assert_int_equal(pfgm_image_crop_resize(c3, 9, 7, 3, 7, 3, out), PFGM_OK);
    for (int p = 0; p < 9; ++p) {
        assert_int_equal(out[p], 255);
        assert_int_equal(out[9 + p], 17);
        assert_int_equal(out[18 + p], 0);
    }
    /* size == crop: an exact centered crop, interleaved -> planar */
    uint8_t wide[3 * 5 * 2], crop[2 * 3 * 3];
    for (int y = 0; y < 3; ++y)
        for (int x = 0; x < 5; ++x)
            for (int c = 0; c < 2; ++c) wide[(y * 5 + x) * 2 + c] = (uint8_t)(100 * c + 10 * y + x);
    assert_int_equal(pfgm_image_crop_resize(wide, 5, 3, 2, 3, 3, crop), PFGM_OK);
    for (int c = 0; c < 2; ++c)
        for (int y = 0; y < 3; ++y)
            for (int x = 0; x < 3; ++x)
                assert_int_equal(crop[(c * 3 + y) * 3 + x], 100 * c + 10 * y + x + 1);
    assert_int_equal(pfgm_image_crop_resize(wide, 5, 3, 2, 4, 2, crop), PFGM_ERR_INVALID_ARG);
}

/* Every PNG colour type and bit depth decodes to the expected 8-bit gray / RGB. */
static void t_png_decode(void **state) {
    fixture *f = *state;
    char p[320];
    pfgm_image im;

    fx_join(p, sizeof p, f->dir, "g8.png");
    const uint8_t g8[6] = {0, 10, 20, 30, 40, 255};
    fx_write_png(p, 3, 2, PNG_COLOR_TYPE_GRAY, 8, g8, 3, NULL, 0);
    assert_int_equal(pfgm_png_read(p, 1, &im), PFGM_OK);
    assert_int_equal(im.width, 3);
    assert_int_equal(im.height, 2);
    assert_memory_equal(im.pixels, g8, 6);
    pfgm_image_free(&im);
    assert_int_equal(pfgm_png_read(p, 3, &im), PFGM_OK);
    for (int i = 0; i < 6; ++i)
        for (int c = 0; c < 3; ++c) assert_int_equal(im.pixels[i * 3 + c], g8[i]);
    pfgm_image_free(&im);

    fx_join(p, sizeof p, f->dir, "g16.png"); /* 16-bit, big-endian samples */
    const uint8_t g16[6] = {0x00, 0x00, 0x80, 0x80, 0xff, 0xff};
    fx_write_png(p, 3, 1, PNG_COLOR_TYPE_GRAY, 16, g16, 6, NULL, 0);
    assert_int_equal(pfgm_png_read(p, 1, &im), PFGM_OK);
    const uint8_t g16_8[3] = {0, 128, 255};
    assert_memory_equal(im.pixels, g16_8, 3);
    pfgm_image_free(&im);

    fx_join(p, sizeof p, f->dir, "g1.png"); /* 1-bit gray: 0b10100000 */
    const uint8_t g1[1] = {0xa0};
    fx_write_png(p, 3, 1, PNG_COLOR_TYPE_GRAY, 1, g1, 1, NULL, 0);
    assert_int_equal(pfgm_png_read(p, 1, &im), PFGM_OK);
    const uint8_t g1_8[3] = {255, 0, 255};
    assert_memory_equal(im.pixels, g1_8, 3);
    pfgm_image_free(&im);

    fx_join(p, sizeof p, f->dir, "rgb.png");
    const uint8_t rgb[12] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255};
    fx_write_png(p, 4, 1, PNG_COLOR_TYPE_RGB, 8, rgb, 12, NULL, 0);
    assert_int_equal(pfgm_png_read(p, 3, &im), PFGM_OK);
    assert_memory_equal(im.pixels, rgb, 12);
    pfgm_image_free(&im);
    assert_int_equal(pfgm_png_read(p, 1, &im), PFGM_OK);
    /* ITU-R 601-2: 0.299 * 255 = 76.2, 0.587 * 255 = 149.7, 0.114 * 255 = 29.1 (libpng's
     * 15-bit fixed point may round either way: +-1) */
    assert_in_range(im.pixels[0], 75, 77);
    assert_in_range(im.pixels[1], 149, 151);
    assert_in_range(im.pixels[2], 28, 30);
    assert_int_equal(im.pixels[3], 255);
    pfgm_image_free(&im);

    fx_join(p, sizeof p, f->dir, "rgba.png"); /* alpha is dropped, colour kept */
    const uint8_t rgba[8] = {10, 20, 30, 0, 40, 50, 60, 255};
    fx_write_png(p, 2, 1, PNG_COLOR_TYPE_RGB_ALPHA, 8, rgba, 8, NULL, 0);
    assert_int_equal(pfgm_png_read(p, 3, &im), PFGM_OK);
    const uint8_t rgba_3[6] = {10, 20, 30, 40, 50, 60};
    assert_memory_equal(im.pixels, rgba_3, 6);
    pfgm_image_free(&im);

    fx_join(p, sizeof p, f->dir, "ga.png");
    const uint8_t ga[4] = {90, 0, 200, 128};
    fx_write_png(p, 2, 1, PNG_COLOR_TYPE_GRAY_ALPHA, 8, ga, 4, NULL, 0);
    assert_int_equal(pfgm_png_read(p, 1, &im), PFGM_OK);
    assert_int_equal(im.pixels[0], 90);
    assert_int_equal(im.pixels[1], 200);
    pfgm_image_free(&im);

    fx_join(p, sizeof p, f->dir, "pal.png"); /* 2-bit palette indices 2, 0, 1, 2 */
    const png_color pal[3] = {{1, 2, 3}, {100, 110, 120}, {250, 240, 230}};
    const uint8_t idx[1] = {(2 << 6) | (0 << 4) | (1 << 2) | 2};
    fx_write_png(p, 4, 1, PNG_COLOR_TYPE_PALETTE, 2, idx, 1, pal, 3);
    assert_int_equal(pfgm_png_read(p, 3, &im), PFGM_OK);
    const uint8_t pal_3[12] = {250, 240, 230, 1, 2, 3, 100, 110, 120, 250, 240, 230};
    assert_memory_equal(im.pixels, pal_3, 12);
    pfgm_image_free(&im);

    assert_int_equal(pfgm_png_read(p, 2, &im), PFGM_ERR_INVALID_ARG);
}

static void t_png_roundtrip(void **state) {
    fixture *f = *state;
    char p[320];
    fx_join(p, sizeof p, f->dir, "rt.png");
    uint8_t px[5 * 3 * 3];
    for (int i = 0; i < 45; ++i) px[i] = (uint8_t)(i * 5 + 1);
    assert_int_equal(pfgm_png_write(p, 5, 3, 3, px), PFGM_OK);
    pfgm_image im;
    assert_int_equal(pfgm_png_read(p, 3, &im), PFGM_OK);
    assert_int_equal(im.width, 5);
    assert_int_equal(im.height, 3);
    assert_memory_equal(im.pixels, px, 45);
    pfgm_image_free(&im);
    assert_int_equal(fx_count_prefix(f->dir, "rt.png"), 1); /* no temporary left */
}

/* Five PNGs of different sizes and types; a subfolder and a dotfile are ignored. */
static void write_folder(const char *dir) {
    char p[400];
    uint8_t buf[16 * 16 * 4];
    for (size_t i = 0; i < sizeof buf; ++i) buf[i] = (uint8_t)(i * 7 + i / 13);
    snprintf(p, sizeof p, "%s/a.png", dir);
    fx_write_png(p, 12, 10, PNG_COLOR_TYPE_RGB, 8, buf, 36, NULL, 0);
    snprintf(p, sizeof p, "%s/b.png", dir);
    fx_write_png(p, 10, 10, PNG_COLOR_TYPE_GRAY, 8, buf + 5, 10, NULL, 0);
    snprintf(p, sizeof p, "%s/c.png", dir);
    fx_write_png(p, 16, 11, PNG_COLOR_TYPE_RGB_ALPHA, 8, buf + 9, 64, NULL, 0);
    snprintf(p, sizeof p, "%s/d.png", dir);
    const png_color pal[4] = {{0, 0, 0}, {255, 0, 0}, {0, 255, 0}, {9, 99, 199}};
    fx_write_png(p, 10, 14, PNG_COLOR_TYPE_PALETTE, 2, buf, 3, pal, 4);
    snprintf(p, sizeof p, "%s/e.png", dir);
    fx_write_png(p, 11, 11, PNG_COLOR_TYPE_GRAY, 16, buf + 3, 22, NULL, 0);
    snprintf(p, sizeof p, "%s/sub", dir);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/.DS_Store", dir);
    fx_write_bytes(p, "junk", 4);
}

/* Image i of the output is file perm[i] (sorted names), decoded, cropped and resized. */
static void check_folder_output(const fixture *f, int64_t size, int64_t crop, int ch,
                                uint32_t seed) {
    static const char *names[5] = {"a.png", "b.png", "c.png", "d.png", "e.png"};
    fx_dataset d;
    assert_true(fx_read_dataset(f->out, &d));
    assert_int_equal(d.count, 5);
    assert_int_equal(d.C, ch);
    assert_int_equal(d.H, size);
    assert_int_equal(d.W, size);
    assert_null(d.labels);
    int64_t perm[5];
    pfgm_permutation(seed, 0, PFGM_STREAM_PREP, 0, 5, perm);
    uint8_t *want = malloc((size_t)(ch * size * size));
    for (int i = 0; i < 5; ++i) {
        char p[400];
        snprintf(p, sizeof p, "%s/%s", f->imgs, names[perm[i]]);
        pfgm_image im;
        assert_int_equal(pfgm_png_read(p, ch, &im), PFGM_OK);
        int64_t side = im.width < im.height ? im.width : im.height;
        assert_int_equal(pfgm_image_crop_resize(im.pixels, im.width, im.height, ch,
                                                crop > 0 ? crop : side, size, want),
                         PFGM_OK);
        assert_memory_equal(d.images + (size_t)i * (size_t)(ch * size * size), want,
                            (size_t)(ch * size * size));
        pfgm_image_free(&im);
    }
    free(want);
    fx_free_dataset(&d);
}

static void t_folder_convert(void **state) {
    fixture *f = *state;
    write_folder(f->imgs);
    pfgm_prep_options o = {.seed = 3};
    assert_int_equal(pfgm_prep_folder(f->imgs, 5, 0, 3, f->out, &o), PFGM_OK);
    check_folder_output(f, 5, 0, 3, 3);
    assert_int_equal(pfgm_prep_folder(f->imgs, 4, 10, 1, f->out, &o), PFGM_OK);
    check_folder_output(f, 4, 10, 1, 3);
    assert_int_equal(pfgm_prep_folder(f->imgs, 10, 0, 3, f->out, &o), PFGM_OK); /* no resize */
    check_folder_output(f, 10, 0, 3, 3);
    remove(f->out);
}

/* A mixed folder: three JPEGs (one named .png) and two PNGs (one named .jpg); each
 * pipeline's output image i is that pipeline's function applied to file perm[i] as
 * pfgm_image_read_idct decodes it (the LSUN pipeline with the fast IDCT, as TensorFlow),
 * and the source attribute counts the formats. */
static void t_folder_jpeg_pipelines(void **state) {
    fixture *f = *state;
    static const char *names[5] = {"a.jpg", "b.png", "c.png", "d.jpg", "e.jpg"};
    static const int is_jpeg[5] = {1, 1, 0, 0, 1};
    char dir[320];
    fx_join(dir, sizeof dir, f->dir, "jpeg_mixed"); /* the group's imgs/ holds other PNGs */
    mkdir(dir, 0755);
    uint8_t px[30 * 24 * 3];
    for (int k = 0; k < 5; ++k) {
        const uint32_t w = 24 + (uint32_t)k, h = 20 + (uint32_t)(2 * k % 5);
        for (size_t i = 0; i < (size_t)w * h * 3; ++i) px[i] = (uint8_t)(i * (3 + (size_t)k) / 7 + 40 * (size_t)k);
        char p[400];
        snprintf(p, sizeof p, "%s/%s", dir, names[k]);
        if (is_jpeg[k])
            fx_write_jpeg(p, w, h, 3, px, 90);
        else
            fx_write_png(p, w, h, PNG_COLOR_TYPE_RGB, 8, px, (size_t)w * 3, NULL, 0);
    }
    const int64_t S = 8;
    for (int mode = 0; mode < 3; ++mode) {
        pfgm_prep_options o = {.seed = 11};
        o.resize = mode == 1 ? PFGM_PREP_BICUBIC : PFGM_PREP_BILINEAR;
        o.pipeline = mode == 2 ? PFGM_PREP_LSUN : PFGM_PREP_CENTER;
        const int64_t crop = mode == 1 ? 17 : 0;
        if (pfgm_prep_folder(dir, S, crop, 3, f->out, &o) != PFGM_OK)
            fail_msg("mode %d: %s", mode, pfgm_error_message());
        pfgm_dataset_info info;
        assert_int_equal(pfgm_dataset_probe(f->out, &info), PFGM_OK);
        assert_non_null(strstr(info.source, "(2 PNG, 3 JPEG files)"));
        fx_dataset d;
        assert_true(fx_read_dataset(f->out, &d));
        assert_int_equal(d.count, 5);
        int64_t perm[5];
        pfgm_permutation(11, 0, PFGM_STREAM_PREP, 0, 5, perm);
        uint8_t want[3 * 8 * 8];
        for (int i = 0; i < 5; ++i) {
            char p[400];
            snprintf(p, sizeof p, "%s/%s", dir, names[perm[i]]);
            pfgm_image im;
            assert_int_equal(pfgm_image_read_idct(p, 3, mode == 2 ? PFGM_JPEG_IDCT_FAST
                                                                  : PFGM_JPEG_IDCT_ACCURATE,
                                                  &im), PFGM_OK);
            const int64_t side = im.width < im.height ? im.width : im.height;
            if (mode == 0)
                assert_int_equal(pfgm_image_crop_resize(im.pixels, im.width, im.height, 3, side, S, want), PFGM_OK);
            else if (mode == 1)
                assert_int_equal(pfgm_image_crop_resize_bicubic(im.pixels, im.width, im.height, 3, crop, S, want), PFGM_OK);
            else
                assert_int_equal(pfgm_image_lsun(im.pixels, im.width, im.height, 3, S, want), PFGM_OK);
            assert_memory_equal(d.images + (size_t)i * sizeof want, want, sizeof want);
            pfgm_image_free(&im);
        }
        fx_free_dataset(&d);
    }
    remove(f->out);
    /* the LSUN pipeline crops by itself, and does not upsample */
    pfgm_prep_options o = {.seed = 1, .pipeline = PFGM_PREP_LSUN};
    assert_int_equal(pfgm_prep_folder(dir, S, 12, 3, f->out, &o), PFGM_ERR_INVALID_ARG);
    assert_int_equal(pfgm_prep_folder(dir, 21, 0, 3, f->out, &o), PFGM_ERR_FORMAT);
    assert_non_null(strstr(pfgm_error_message(), "short side is smaller than --size 21"));
    assert_int_equal(fx_count_prefix(f->dir, "out.h5"), 0);
}

static void expect_fail(const fixture *f, const char *dir, int64_t size, int64_t crop,
                        pfgm_status want, const char *names, const char *needle) {
    pfgm_prep_options o = {.seed = 1};
    assert_int_equal(pfgm_prep_folder(dir, size, crop, 3, f->out, &o), want);
    const char *msg = pfgm_error_message();
    if (!strstr(msg, names)) fail_msg("message '%s' does not name %s", msg, names);
    if (!strstr(msg, needle)) fail_msg("message '%s' lacks '%s'", msg, needle);
    assert_null(strchr(msg, '\n'));
    assert_int_equal(fx_count_prefix(f->dir, "out.h5"), 0);
}

static void t_folder_errors(void **state) {
    fixture *f = *state;
    char dir[320], p[400];
    fx_join(dir, sizeof dir, f->dir, "empty");
    mkdir(dir, 0755);
    expect_fail(f, dir, 4, 0, PFGM_ERR_FORMAT, dir, "empty folder");
    snprintf(p, sizeof p, "%s/.hidden", dir); /* only dotfiles: still empty */
    fx_write_bytes(p, "x", 1);
    expect_fail(f, dir, 4, 0, PFGM_ERR_FORMAT, dir, "empty folder");

    fx_join(dir, sizeof dir, f->dir, "mixed");
    mkdir(dir, 0755);
    write_folder(dir);
    snprintf(p, sizeof p, "%s/notes.txt", dir);
    fx_write_bytes(p, "these are my notes\n", 19);
    expect_fail(f, dir, 4, 0, PFGM_ERR_FORMAT, p, "not a PNG or JPEG file");
    remove(p);

    snprintf(p, sizeof p, "%s/c.png", dir); /* signature intact, data cut off */
    fx_truncate(p, 60);
    expect_fail(f, dir, 4, 0, PFGM_ERR_FORMAT, p, "corrupt PNG");
    remove(p);

    snprintf(p, sizeof p, "%s/b.png", dir); /* 10x10 cannot give an 11x11 image */
    expect_fail(f, dir, 11, 0, PFGM_ERR_FORMAT, p, "smaller than --size 11");
    expect_fail(f, dir, 4, 12, PFGM_ERR_FORMAT, p, "smaller than --crop 12");

    fx_join(dir, sizeof dir, f->dir, "no-such-folder");
    expect_fail(f, dir, 4, 0, PFGM_ERR_IO, dir, "No such file");
    pfgm_prep_options o = {.seed = 1};
    assert_int_equal(pfgm_prep_folder(f->imgs, 0, 0, 3, f->out, &o), PFGM_ERR_INVALID_ARG);
    assert_int_equal(pfgm_prep_folder(f->imgs, 4, 0, 2, f->out, &o), PFGM_ERR_INVALID_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_center_offset),
        cmocka_unit_test(t_resize_hand_values),
        cmocka_unit_test(t_png_decode),
        cmocka_unit_test(t_png_roundtrip),
        cmocka_unit_test(t_folder_convert),
        cmocka_unit_test(t_folder_errors),
        cmocka_unit_test(t_folder_jpeg_pipelines),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
