/* pfgm-prep idx through the library API: plain and gzipped IDX fixtures written here become a
 * dataset whose image i is source image perm[i] (the documented prep shuffle) with its
 * label; --limit keeps the first N; and bad IDX input (missing, empty, truncated header or
 * data, truncated gzip stream, wrong magic, trailing bytes, label count mismatch) gives a
 * one-line error naming the file and leaves no output behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "data_fixtures.h"
#include "pfgm/dataset.h"
#include "pfgm/prep.h"
#include "pfgm/rng.h"

enum { N = 23, H = 6, W = 5 };

typedef struct fixture {
    char dir[256];
    char img[320], img_gz[320], lab[320], lab_gz[320], out[320];
    uint8_t pixels[N * H * W];
    uint8_t labels[N];
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    fx_mkdtemp(f->dir, sizeof f->dir);
    fx_join(f->img, sizeof f->img, f->dir, "img-idx3-ubyte");
    fx_join(f->img_gz, sizeof f->img_gz, f->dir, "img-idx3-ubyte.gz");
    fx_join(f->lab, sizeof f->lab, f->dir, "lab-idx1-ubyte");
    fx_join(f->lab_gz, sizeof f->lab_gz, f->dir, "lab-idx1-ubyte.gz");
    fx_join(f->out, sizeof f->out, f->dir, "out.h5");
    for (int i = 0; i < N; ++i) {
        f->labels[i] = (uint8_t)(i % 10);
        for (int p = 0; p < H * W; ++p) f->pixels[i * H * W + p] = (uint8_t)(i * 11 + p);
    }
    const uint32_t di[3] = {N, H, W}, dl[1] = {N};
    fx_write_idx(f->img, PFGM_IDX_MAGIC_IMAGES, 3, di, f->pixels, sizeof f->pixels, 0);
    fx_write_idx(f->img_gz, PFGM_IDX_MAGIC_IMAGES, 3, di, f->pixels, sizeof f->pixels, 1);
    fx_write_idx(f->lab, PFGM_IDX_MAGIC_LABELS, 1, dl, f->labels, sizeof f->labels, 0);
    fx_write_idx(f->lab_gz, PFGM_IDX_MAGIC_LABELS, 1, dl, f->labels, sizeof f->labels, 1);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    fx_rm_rf(f->dir);
    free(f);
    return 0;
}

/* Checks out.h5 holds the first m images of the seed's shuffle of the fixture. */
static void check_output(const fixture *f, uint32_t seed, int64_t m, int with_labels) {
    fx_dataset d;
    assert_true(fx_read_dataset(f->out, &d));
    assert_int_equal(d.count, m);
    assert_int_equal(d.C, 1);
    assert_int_equal(d.H, H);
    assert_int_equal(d.W, W);
    assert_int_equal(d.seed, seed);
    assert_int_equal(d.labels != NULL, with_labels);
    int64_t perm[N];
    pfgm_permutation(seed, 0, PFGM_STREAM_PREP, 0, N, perm);
    int moved = 0;
    for (int64_t i = 0; i < m; ++i) {
        assert_memory_equal(d.images + i * H * W, f->pixels + perm[i] * H * W, H * W);
        if (with_labels) assert_int_equal(d.labels[i], f->labels[perm[i]]);
        moved += perm[i] != i;
    }
    assert_true(moved > 0); /* the file is shuffled */
    fx_free_dataset(&d);
}

static void t_plain_and_gz(void **state) {
    fixture *f = *state;
    pfgm_prep_options o = {.seed = 42};
    assert_int_equal(pfgm_prep_idx(f->img, f->lab, f->out, &o), PFGM_OK);
    check_output(f, 42, N, 1);
    remove(f->out);
    assert_int_equal(pfgm_prep_idx(f->img_gz, f->lab_gz, f->out, &o), PFGM_OK);
    check_output(f, 42, N, 1);
    o.seed = 5;
    assert_int_equal(pfgm_prep_idx(f->img_gz, NULL, f->out, &o), PFGM_OK); /* replaces it */
    check_output(f, 5, N, 0);
    o.limit = 10;
    assert_int_equal(pfgm_prep_idx(f->img, f->lab_gz, f->out, &o), PFGM_OK);
    check_output(f, 5, 10, 1);
    o.limit = 1000; /* more than there are: all */
    assert_int_equal(pfgm_prep_idx(f->img, f->lab, f->out, &o), PFGM_OK);
    check_output(f, 5, N, 1);
    pfgm_dataset_info info;
    assert_int_equal(pfgm_dataset_probe(f->out, &info), PFGM_OK);
    assert_non_null(strstr(info.source, "img-idx3-ubyte"));
    remove(f->out);
}

/* A stop request from the progress callback removes the temporary. */
static int stop_at_5(void *ctx, int64_t done, int64_t total) {
    (void)ctx;
    (void)total;
    return done >= 5;
}

static void t_stop_request(void **state) {
    fixture *f = *state;
    pfgm_prep_options o = {.seed = 1, .progress = stop_at_5};
    assert_int_equal(pfgm_prep_idx(f->img, f->lab, f->out, &o), PFGM_STOPPED);
    assert_int_equal(fx_count_prefix(f->dir, "out.h5"), 0);
}

/* Runs prep on (images, labels), expects status st, a one-line message naming `names` and
 * containing `needle`, and no out.h5* left. */
static void expect_fail(const fixture *f, const char *images, const char *labels,
                        pfgm_status want, const char *names, const char *needle) {
    pfgm_prep_options o = {.seed = 42};
    assert_int_equal(pfgm_prep_idx(images, labels, f->out, &o), want);
    const char *msg = pfgm_error_message();
    if (!strstr(msg, names)) fail_msg("message '%s' does not name %s", msg, names);
    if (!strstr(msg, needle)) fail_msg("message '%s' lacks '%s'", msg, needle);
    assert_null(strchr(msg, '\n'));
    assert_int_equal(fx_count_prefix(f->dir, "out.h5"), 0);
}

static void t_bad_input(void **state) {
    fixture *f = *state;
    char p[320], q[320];
    const uint32_t di[3] = {N, H, W}, dl[1] = {N - 1};

    fx_join(p, sizeof p, f->dir, "missing-idx3-ubyte.gz");
    expect_fail(f, p, NULL, PFGM_ERR_IO, p, "No such file");

    fx_join(p, sizeof p, f->dir, "empty");
    fx_write_bytes(p, "", 0);
    expect_fail(f, p, NULL, PFGM_ERR_FORMAT, p, "truncated");

    fx_join(p, sizeof p, f->dir, "short-header");
    fx_write_idx(p, PFGM_IDX_MAGIC_IMAGES, 3, di, NULL, 0, 0);
    fx_truncate(p, 9);
    expect_fail(f, p, NULL, PFGM_ERR_FORMAT, p, "truncated IDX header");

    fx_join(p, sizeof p, f->dir, "short-data");
    fx_write_idx(p, PFGM_IDX_MAGIC_IMAGES, 3, di, f->pixels, sizeof f->pixels - 7, 0);
    expect_fail(f, p, NULL, PFGM_ERR_FORMAT, p, "truncated");

    fx_join(p, sizeof p, f->dir, "short-data.gz");
    fx_write_idx(p, PFGM_IDX_MAGIC_IMAGES, 3, di, f->pixels, sizeof f->pixels - 7, 1);
    expect_fail(f, p, NULL, PFGM_ERR_FORMAT, p, "truncated");

    /* a gzip stream cut in the middle */
    fx_join(p, sizeof p, f->dir, "cut.gz");
    FILE *in = fopen(f->img_gz, "rb");
    uint8_t buf[4096];
    size_t n = fread(buf, 1, sizeof buf, in);
    fclose(in);
    fx_write_bytes(p, buf, n / 2);
    expect_fail(f, p, NULL, PFGM_ERR_FORMAT, p, "truncated");

    fx_join(p, sizeof p, f->dir, "trailing");
    uint8_t more[N * H * W + 3] = {0};
    memcpy(more, f->pixels, sizeof f->pixels);
    fx_write_idx(p, PFGM_IDX_MAGIC_IMAGES, 3, di, more, sizeof more, 0);
    expect_fail(f, p, NULL, PFGM_ERR_FORMAT, p, "trailing bytes");

    /* wrong magic: labels given as images, images as labels, and garbage */
    expect_fail(f, f->lab, NULL, PFGM_ERR_FORMAT, f->lab, "wrong magic number 0x00000801");
    expect_fail(f, f->img, f->img_gz, PFGM_ERR_FORMAT, f->img_gz, "wrong magic number");
    fx_join(p, sizeof p, f->dir, "garbage");
    fx_write_bytes(p, "GIF89a-not-an-idx-file", 22);
    expect_fail(f, p, NULL, PFGM_ERR_FORMAT, p, "wrong magic number");

    fx_join(q, sizeof q, f->dir, "lab-short");
    fx_write_idx(q, PFGM_IDX_MAGIC_LABELS, 1, dl, f->labels, N - 1, 0);
    expect_fail(f, f->img, q, PFGM_ERR_FORMAT, q, "22 labels for the 23 images");

    /* nothing is written into a folder that does not exist */
    pfgm_prep_options o = {.seed = 1};
    fx_join(p, sizeof p, f->dir, "nodir/out.h5");
    assert_int_equal(pfgm_prep_idx(f->img, NULL, p, &o), PFGM_ERR_IO);
    assert_non_null(strstr(pfgm_error_message(), "nodir/out.h5"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_plain_and_gz),
        cmocka_unit_test(t_stop_request),
        cmocka_unit_test(t_bad_input),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
