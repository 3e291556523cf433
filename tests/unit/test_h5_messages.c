/* HDF5 failure messages (issue 11): a failed HDF5 call reads, on one line, the file, the call
 * and HDF5's own description from its error stack (the outermost and the innermost entry,
 * e.g. "unable to open file: file signature not found"); never a pfgm source path such as
 * "src/io/h5util.c:123" and never "see the HDF5 error stack" (the stack is cleared by the
 * next HDF5 call, so it could not be seen). Exercised through the public dataset reader on a
 * text file, a truncated file and a file whose chunk index is damaged, through
 * src/io/h5util.c on a write into a read-only file, and through the checked-call macros. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "data_fixtures.h"
#include "io/h5util.h"
#include "pfgm/dataset.h"
#include "util/check.h"

typedef fx_dataset_dir fixture;

/* 64 images of [1, 16, 16]: big enough that /images has several chunks */
static int setup(void **state) { return fx_dataset_dir_setup(state, 64, 1, 16); }
static int teardown(void **state) { return fx_dataset_dir_teardown(state); }

/* The rules every HDF5-related message follows; `needle` (may be NULL) is HDF5's text. */
static void check_message(const char *msg, const char *path, const char *needle) {
    if (!strstr(msg, path) || strstr(msg, ".c:") || strstr(msg, "error stack") ||
        strchr(msg, '\n') || (needle && !strstr(msg, needle)))
        fail_msg("message '%s': wanted the file '%s', '%s', no '.c:', no 'error stack', one line",
                 msg, path, needle ? needle : "");
}

/* Opens path with the dataset reader (rank 0 of 1) and expects status want. */
static void open_fails(const char *path, pfgm_status want, const char *needle) {
    pfgm_dataset_options o = {.path = path, .rank = 0, .world_size = 1, .batch_size = 4,
                              .seed = 1};
    pfgm_dataset *ds = NULL;
    pfgm_status st = pfgm_dataset_open(&o, &ds);
    if (st != want) fail_msg("status %d (want %d): %s", (int)st, (int)want, pfgm_error_message());
    assert_null(ds);
    check_message(pfgm_error_message(), path, needle);
}

/* Opens path (which must open: the reader reads no pixels at open) and reads one epoch,
 * expecting a batch to fail with status want; the failure is the reader's one line. */
static void read_fails(const char *path, pfgm_status want, const char *needle) {
    pfgm_dataset_options o = {.path = path, .rank = 0, .world_size = 1, .batch_size = 4,
                              .seed = 1};
    pfgm_dataset *ds = NULL;
    if (pfgm_dataset_open(&o, &ds) != PFGM_OK) fail_msg("open: %s", pfgm_error_message());
    float *img = malloc((size_t)(4 * 16 * 16) * sizeof *img); /* L = 4 images of [1, 16, 16] */
    pfgm_status st = PFGM_OK;
    for (int64_t i = 0; i < pfgm_dataset_steps_per_epoch(ds) && st == PFGM_OK; ++i)
        st = pfgm_dataset_next_batch(ds, img, NULL);
    free(img);
    pfgm_dataset_close(ds);
    if (st != want) fail_msg("status %d (want %d): %s", (int)st, (int)want, pfgm_error_message());
    check_message(pfgm_error_message(), path, needle);
}

static void test_not_hdf5(void **state) {
    fixture *f = *state;
    char p[320];
    fx_join(p, sizeof p, f->dir, "text.h5");
    fx_write_bytes(p, "training:\n  batch_size: 5\n", 26);
    open_fails(p, PFGM_ERR_FORMAT, "not an HDF5 file");
}

static void test_truncated(void **state) {
    fixture *f = *state;
    char p[320];
    fx_join(p, sizeof p, f->dir, "truncated.h5");
    assert_int_equal(fx_copy_file(f->good, p), 0);
    fx_truncate(p, 2048); /* the superblock survives; HDF5 sees the end of file is missing */
    open_fails(p, PFGM_ERR_HDF5, "truncated file");
}

/* Damages the signature of every v1 B-tree node of type 1 (the chunk index of a chunked
 * dataset, Format Spec. III.A.1; type 0 indexes groups), so that the file opens, the
 * attributes and shapes read, and the first read of pixels fails inside HDF5. */
static void test_damaged_chunk_index(void **state) {
    fixture *f = *state;
    char p[320];
    fx_join(p, sizeof p, f->dir, "damaged.h5");
    assert_int_equal(fx_copy_file(f->good, p), 0);
    FILE *io = fopen(p, "r+b");
    assert_non_null(io);
    fseek(io, 0, SEEK_END);
    long n = ftell(io);
    rewind(io);
    unsigned char *b = malloc((size_t)n);
    assert_int_equal(fread(b, 1, (size_t)n, io), (size_t)n);
    int hits = 0;
    for (long i = 0; i + 5 <= n; ++i)
        if (memcmp(b + i, "TREE", 4) == 0 && b[i + 4] == 1) {
            memcpy(b + i, "XXXX", 4);
            hits++;
        }
    assert_true(hits >= 1);
    rewind(io);
    assert_int_equal(fwrite(b, 1, (size_t)n, io), (size_t)n);
    fclose(io);
    free(b);
    pfgm_dataset_info info; /* the probe reads no pixels: the damage is not seen */
    assert_int_equal(pfgm_dataset_probe(p, &info), PFGM_OK);
    /* nor does the streaming reader's open: the first batch that reads a chunk does */
    read_fails(p, PFGM_ERR_HDF5, "B-tree");
}

/* h5util directly: an attribute written into a file opened read-only. */
static void test_h5util_write_refused(void **state) {
    fixture *f = *state;
    pfgm_h5_quiet q;
    pfgm_h5_quiet_begin(&q);
    hid_t file = H5Fopen(f->good, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(file >= 0);
    pfgm_status st = pfgm_h5_context(pfgm_h5_write_str_attr(file, "note", "x"), f->good);
    H5Fclose(file);
    pfgm_h5_quiet_end(&q);
    assert_int_equal(st, PFGM_ERR_HDF5);
    const char *msg = pfgm_error_message();
    check_message(msg, f->good, "no write intent on file");
    assert_non_null(strstr(msg, "H5Acreate2")); /* the operation */
    /* the file is named once, at the front */
    assert_true(strncmp(msg, f->good, strlen(f->good)) == 0);
    assert_null(strstr(msg + strlen(f->good), f->good));
}

/* The checked-call macros: the HDF5 alias gives the statement and HDF5's reason without a
 * source location; the other aliases keep "(file:line)". */
static int fails_negative(void) { return -1; }
static int fails_zero(void) { return 0; }

static pfgm_status h5_checked(void) {
    PFGM_H5_CHECK(fails_negative());
    return PFGM_OK;
}

static pfgm_status yaml_checked(void) {
    PFGM_YAML_CHECK(fails_zero());
    return PFGM_OK;
}

static void test_check_macros(void **state) {
    (void)state;
    H5Eclear2(H5E_DEFAULT); /* no HDF5 call failed: nothing on the stack */
    assert_int_equal(h5_checked(), PFGM_ERR_HDF5);
    assert_string_equal(pfgm_error_message(), "fails_negative() failed: HDF5 reported no reason");
    assert_int_equal(yaml_checked(), PFGM_ERR_YAML);
    assert_non_null(strstr(pfgm_error_message(), "fails_zero() failed: libyaml error ("));
    assert_non_null(strstr(pfgm_error_message(), "test_h5_messages.c:"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_not_hdf5),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_damaged_chunk_index),
        cmocka_unit_test(test_h5util_write_refused),
        cmocka_unit_test(test_check_macros),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
