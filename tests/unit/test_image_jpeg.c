/* JPEG decoding (pfgm_jpeg_read) and the reader that picks PNG or JPEG by the first bytes
 * (pfgm_image_read): the fixtures of tests/fixtures/images (JPEGs written by PIL and PIL's
 * own decode of each as a PNG; tests/scripts/make_image_fixtures.py) decode to exactly PIL's
 * pixels (both use libjpeg-turbo's accurate integer IDCT and fancy upsampling) for 4:2:0,
 * progressive 4:4:4, gray and Adobe CMYK, and with the fast IDCT exactly TensorFlow's
 * decode_jpeg pixels (its default); gray output of a colour JPEG is the luma plane,
 * within 1 level of PIL's convert("L"); an image written by libjpeg's encoder at quality 100
 * comes back within a few levels, and arithmetic-coded decodes as Huffman-coded; CMYK is
 * read as Adobe-inverted with the APP14 marker and as plain ink without; the reader goes by content, not by the name; truncated
 * and damaged files are one-line errors naming the file, and the process goes on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>

#include "data_fixtures.h"
#include "pfgm/image.h"

typedef struct fixture {
    char dir[256];
    char src[1024];
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    fx_mkdtemp(f->dir, sizeof f->dir);
    const char *root = getenv("PFGM_SOURCE_DIR");
    snprintf(f->src, sizeof f->src, "%s/tests/fixtures/images", root && root[0] ? root : ".");
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    fx_rm_rf(f->dir);
    free(f);
    return 0;
}

static void fixture_file(const fixture *f, const char *name, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/%s", f->src, name);
}

/* Decodes name.jpg with `channels` and compares with png (decoded with the same channels):
 * returns the largest absolute difference. */
static int max_diff_idct(const fixture *f, const char *jpg, const char *png, int channels,
                         pfgm_jpeg_idct idct) {
    char pj[1200], pp[1200];
    fixture_file(f, jpg, pj, sizeof pj);
    fixture_file(f, png, pp, sizeof pp);
    pfgm_image a, b;
    if (pfgm_jpeg_read_idct(pj, channels, idct, &a) != PFGM_OK) fail_msg("%s", pfgm_error_message());
    assert_int_equal(pfgm_png_read(pp, channels, &b), PFGM_OK);
    assert_int_equal(a.width, b.width);
    assert_int_equal(a.height, b.height);
    assert_int_equal(a.channels, channels);
    int worst = 0;
    for (int64_t i = 0; i < a.width * a.height * channels; ++i) {
        const int d = abs((int)a.pixels[i] - (int)b.pixels[i]);
        if (d > worst) worst = d;
    }
    pfgm_image_free(&a);
    pfgm_image_free(&b);
    return worst;
}

static int max_diff(const fixture *f, const char *jpg, const char *png, int channels) {
    return max_diff_idct(f, jpg, png, channels, PFGM_JPEG_IDCT_ACCURATE);
}

static void t_matches_pil(void **state) {
    fixture *f = *state;
    assert_int_equal(max_diff(f, "rgb420.jpg", "rgb420.png", 3), 0);
    assert_int_equal(max_diff(f, "rgb444_progressive.jpg", "rgb444_progressive.png", 3), 0);
    assert_int_equal(max_diff(f, "gray.jpg", "gray.png", 1), 0);
    assert_int_equal(max_diff(f, "gray.jpg", "gray.png", 3), 0); /* gray replicated */
    assert_int_equal(max_diff(f, "cmyk.jpg", "cmyk.png", 3), 0);
    /* gray of a colour JPEG: libjpeg's Y plane vs PIL's L of the decoded RGB; the two
     * can round differently (measured: 0 levels on this fixture; 1 allowed) */
    const int d = max_diff(f, "rgb420.jpg", "rgb420_as_gray.png", 1);
    printf("  rgb420.jpg as gray: max difference from PIL's convert(\"L\"): %d\n", d);
    assert_in_range(d, 0, 1);
}

/* The fast IDCT gives exactly TensorFlow's decode_jpeg (default settings) pixels, which
 * differ from the accurate IDCT's (so the comparison can tell them apart). */
static void t_matches_tf_fast(void **state) {
    fixture *f = *state;
    static const char *names[3][2] = {{"rgb420.jpg", "rgb420_tf.png"},
                                      {"rgb444_progressive.jpg", "rgb444_progressive_tf.png"},
                                      {"gray.jpg", "gray_tf.png"}};
    for (int k = 0; k < 3; ++k) {
        const int ch = k == 2 ? 1 : 3;
        assert_int_equal(max_diff_idct(f, names[k][0], names[k][1], ch, PFGM_JPEG_IDCT_FAST), 0);
        const int acc = max_diff_idct(f, names[k][0], names[k][1], ch, PFGM_JPEG_IDCT_ACCURATE);
        printf("  %s: fast IDCT equals TensorFlow's decode; the accurate one is up to %d off\n",
               names[k][0], acc);
        assert_true(acc > 0);
    }
}

/* libjpeg's encoder at quality 100, 4:4:4: only the DCT quantization loses, a few levels. */
static void t_roundtrip(void **state) {
    fixture *f = *state;
    enum { W = 19, H = 13 };
    uint8_t px[W * H * 3];
    for (int y = 0; y < H; ++y)
        for (int x = 0; x < W; ++x)
            for (int c = 0; c < 3; ++c) px[(y * W + x) * 3 + c] = (uint8_t)(40 + 9 * x + 5 * y + 30 * c);
    char p[400];
    fx_join(p, sizeof p, f->dir, "enc.jpg");
    fx_write_jpeg(p, W, H, 3, px, 100);
    pfgm_image im;
    assert_int_equal(pfgm_image_read(p, 3, &im), PFGM_OK);
    assert_int_equal(im.width, W);
    assert_int_equal(im.height, H);
    int worst = 0;
    for (int i = 0; i < W * H * 3; ++i) {
        const int d = abs((int)im.pixels[i] - (int)px[i]);
        worst = d > worst ? d : worst;
    }
    pfgm_image_free(&im);
    printf("  quality-100 round trip: max difference %d\n", worst);
    assert_in_range(worst, 0, 4);
}

/* Arithmetic entropy coding is lossless like Huffman's: the same pixels encoded both ways
 * (same quantization) decode to the same bytes. */
static void t_arithmetic(void **state) {
    fixture *f = *state;
    enum { W = 17, H = 9 };
    uint8_t px[W * H * 3];
    for (int i = 0; i < W * H * 3; ++i) px[i] = (uint8_t)(i * 13 % 251);
    char a[400], b[400];
    fx_join(a, sizeof a, f->dir, "huffman.jpg");
    fx_join(b, sizeof b, f->dir, "arith.jpg");
    fx_write_jpeg_coding(a, W, H, 3, px, 80, 0);
    fx_write_jpeg_coding(b, W, H, 3, px, 80, 1);
    uint8_t bytes[8192];
    FILE *in = fopen(b, "rb");
    const size_t n = fread(bytes, 1, sizeof bytes, in);
    fclose(in);
    int sof9 = 0; /* FF C9: the frame header of arithmetic-coded sequential DCT */
    for (size_t i = 0; i + 1 < n; ++i) sof9 |= bytes[i] == 0xff && bytes[i + 1] == 0xc9;
    assert_true(sof9);
    pfgm_image ia, ib;
    assert_int_equal(pfgm_jpeg_read(a, 3, &ia), PFGM_OK);
    if (pfgm_jpeg_read(b, 3, &ib) != PFGM_OK) fail_msg("%s", pfgm_error_message());
    assert_memory_equal(ia.pixels, ib.pixels, (size_t)W * H * 3);
    pfgm_image_free(&ia);
    pfgm_image_free(&ib);
}

/* Writes a uniform 16x16 CMYK JPEG of samples s[4] at quality 100 (4:4:4), with or
 * without Adobe's APP14 marker (libjpeg stores the samples as given either way). */
static void write_cmyk(const char *path, const uint8_t s[4], int adobe) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = 16;
    c.image_height = 16;
    c.input_components = 4;
    c.in_color_space = JCS_CMYK;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 100, TRUE);
    c.write_Adobe_marker = adobe ? TRUE : FALSE;
    for (int k = 0; k < 4; ++k) c.comp_info[k].h_samp_factor = c.comp_info[k].v_samp_factor = 1;
    jpeg_start_compress(&c, TRUE);
    uint8_t row[16 * 4];
    for (int x = 0; x < 16; ++x) memcpy(row + 4 * x, s, 4);
    for (int y = 0; y < 16; ++y) {
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(f);
}

/* CMYK: with the Adobe marker the samples are read as inverted (s = 255 - ink), so
 * R = s_c s_k / 255; without it as plain ink, R = (255 - s_c)(255 - s_k) / 255. A uniform
 * image at quality 100 decodes within a level or two of the samples written. */
static void t_cmyk_adobe_or_not(void **state) {
    fixture *f = *state;
    const uint8_t s[4] = {200, 120, 40, 180};
    for (int adobe = 0; adobe <= 1; ++adobe) {
        char p[400];
        fx_join(p, sizeof p, f->dir, adobe ? "adobe.jpg" : "plain.jpg");
        write_cmyk(p, s, adobe);
        pfgm_image im;
        assert_int_equal(pfgm_jpeg_read(p, 3, &im), PFGM_OK);
        for (int k = 0; k < 3; ++k) {
            const double a = adobe ? s[k] : 255 - s[k], kk = adobe ? s[3] : 255 - s[3];
            const double want = a * kk / 255.0;
            for (int i = 0; i < 16 * 16; ++i)
                if (fabs((double)im.pixels[3 * i + k] - want) > 2.0)
                    fail_msg("%s: channel %d pixel %d is %d, expected %.1f", adobe ? "Adobe" : "plain",
                             k, i, im.pixels[3 * i + k], want);
        }
        pfgm_image_free(&im);
    }
}

/* The name plays no part: a JPEG called .png and a PNG called .jpg are both read. */
static void t_dispatch_by_content(void **state) {
    fixture *f = *state;
    char src[1200], a[400], b[400];
    fixture_file(f, "gray.jpg", src, sizeof src);
    fx_join(a, sizeof a, f->dir, "really_jpeg.png");
    assert_int_equal(fx_copy_file(src, a), 0);
    fixture_file(f, "gray.png", src, sizeof src);
    fx_join(b, sizeof b, f->dir, "really_png.jpg");
    assert_int_equal(fx_copy_file(src, b), 0);
    pfgm_image_kind k;
    assert_int_equal(pfgm_image_sniff(a, &k), PFGM_OK);
    assert_int_equal(k, PFGM_IMAGE_JPEG);
    assert_int_equal(pfgm_image_sniff(b, &k), PFGM_OK);
    assert_int_equal(k, PFGM_IMAGE_PNG);
    pfgm_image ia, ib;
    assert_int_equal(pfgm_image_read(a, 1, &ia), PFGM_OK);
    assert_int_equal(pfgm_image_read(b, 1, &ib), PFGM_OK);
    assert_memory_equal(ia.pixels, ib.pixels, (size_t)(ia.width * ia.height));
    pfgm_image_free(&ia);
    pfgm_image_free(&ib);

    char t[400];
    fx_join(t, sizeof t, f->dir, "notes.jpg");
    fx_write_bytes(t, "hello, world", 12);
    assert_int_equal(pfgm_image_read(t, 3, &ia), PFGM_ERR_FORMAT);
    assert_non_null(strstr(pfgm_error_message(), t));
    assert_non_null(strstr(pfgm_error_message(), "not a PNG or JPEG file"));
    assert_int_equal(pfgm_jpeg_read(b, 3, &ia), PFGM_ERR_FORMAT); /* a PNG is not a JPEG */
    assert_non_null(strstr(pfgm_error_message(), "not a JPEG file"));
}

static void expect_corrupt(const char *path) {
    pfgm_image im;
    assert_int_equal(pfgm_image_read(path, 3, &im), PFGM_ERR_FORMAT);
    assert_null(im.pixels);
    const char *m = pfgm_error_message();
    printf("  %s\n", m);
    assert_non_null(strstr(m, path));
    assert_non_null(strstr(m, "corrupt JPEG: "));
    assert_null(strchr(m, '\n'));
}

/* Truncation (libjpeg would warn and fill the rest with grey), a file cut inside the
 * headers, a damaged frame header and a marker inside the scan data are errors naming the file; the process lives on
 * (libjpeg's default error_exit would have ended it). */
static void t_corrupt(void **state) {
    fixture *f = *state;
    char src[1200], p[400];
    fixture_file(f, "rgb444_progressive.jpg", src, sizeof src);
    struct stat sb;
    assert_int_equal(stat(src, &sb), 0);

    fx_join(p, sizeof p, f->dir, "cut_half.jpg");
    assert_int_equal(fx_copy_file(src, p), 0);
    fx_truncate(p, sb.st_size / 2);
    expect_corrupt(p);

    fixture_file(f, "rgb420.jpg", src, sizeof src);
    assert_int_equal(stat(src, &sb), 0);
    fx_join(p, sizeof p, f->dir, "cut_late.jpg");
    assert_int_equal(fx_copy_file(src, p), 0);
    fx_truncate(p, sb.st_size - 40); /* inside the entropy-coded data of a baseline scan */
    expect_corrupt(p);

    fx_join(p, sizeof p, f->dir, "cut_header.jpg");
    assert_int_equal(fx_copy_file(src, p), 0);
    fx_truncate(p, 30);
    expect_corrupt(p);

    /* a damaged frame header: the SOF0 byte that should give the component count zeroed */
    FILE *in = fopen(src, "rb");
    uint8_t buf[4096];
    size_t n = fread(buf, 1, sizeof buf, in);
    fclose(in);
    size_t sof = 0;
    for (size_t i = 2; i + 9 < n; ++i)
        if (buf[i] == 0xff && buf[i + 1] == 0xc0) {
            sof = i;
            break;
        }
    assert_true(sof > 0);
    buf[sof + 9] = 0; /* FF C0, length(2), precision(1), height(2), width(2), components */
    fx_join(p, sizeof p, f->dir, "bad_sof.jpg");
    fx_write_bytes(p, buf, n);
    expect_corrupt(p);
    buf[sof + 9] = 3;

    /* an EOI marker planted inside the entropy-coded data: libjpeg would warn "premature
     * end of data segment" and fill the rest of the image with grey */
    size_t sos = 0;
    for (size_t i = 2; i + 4 < n; ++i)
        if (buf[i] == 0xff && buf[i + 1] == 0xda) {
            sos = i;
            break;
        }
    assert_true(sos > 0);
    const size_t data = sos + 2 + ((size_t)buf[sos + 2] << 8 | buf[sos + 3]);
    assert_true(data + 40 < n);
    buf[data + 30] = 0xff;
    buf[data + 31] = 0xd9;
    fx_join(p, sizeof p, f->dir, "eoi_in_scan.jpg");
    fx_write_bytes(p, buf, n);
    expect_corrupt(p);
    pfgm_image im;
    assert_int_equal(pfgm_jpeg_read(p, 2, &im), PFGM_ERR_INVALID_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(t_matches_pil, setup, teardown),
        cmocka_unit_test_setup_teardown(t_matches_tf_fast, setup, teardown),
        cmocka_unit_test_setup_teardown(t_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(t_arithmetic, setup, teardown),
        cmocka_unit_test_setup_teardown(t_cmyk_adobe_or_not, setup, teardown),
        cmocka_unit_test_setup_teardown(t_dispatch_by_content, setup, teardown),
        cmocka_unit_test_setup_teardown(t_corrupt, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
