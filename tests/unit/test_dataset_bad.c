/* Dataset file validation and the atomic writer: missing file, not HDF5, wrong format
 * attribute, wrong dtype, wrong rank, bad labels, images smaller / larger than asked, wrong
 * channel count, too few images for one batch each give the documented status and a
 * one-line message naming the file; a writer that fails or is aborted leaves nothing. The
 * malformed HDF5 files are written here with the HDF5 API. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <hdf5.h>

#include "data_fixtures.h"
#include "pfgm/dataset.h"

typedef fx_dataset_dir fixture;

static int setup(void **state) { return fx_dataset_dir_setup(state, 30, 1, 8); }
static int teardown(void **state) { return fx_dataset_dir_teardown(state); }

/* Opens path as rank 0 of 1 with the given request; returns the status and checks that a
 * failure left no reader and a one-line message naming the file that contains `needle`. */
static pfgm_status try_open(const char *path, int64_t ch, int64_t size, int64_t L,
                            const char *needle) {
    pfgm_dataset_options o = {.path = path, .rank = 0, .world_size = 1, .channels = ch,
                              .image_size = size, .batch_size = L, .seed = 1};
    pfgm_dataset *ds = (pfgm_dataset *)&o; /* must be reset to NULL on failure */
    pfgm_status st = pfgm_dataset_open(&o, &ds);
    if (st == PFGM_OK) {
        pfgm_dataset_close(ds);
        return st;
    }
    const char *msg = pfgm_error_message();
    assert_null(ds);
    assert_non_null(strstr(msg, path));
    assert_null(strchr(msg, '\n'));
    if (needle && !strstr(msg, needle)) fail_msg("message '%s' lacks '%s'", msg, needle);
    return st;
}

/* Writes an HDF5 file with /images of the given type and dims, and the format attributes
 * unless format is NULL. */
static void write_h5(const char *path, hid_t type, int rank, const hsize_t *dims,
                     const char *format, int labels_len) {
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(file >= 0);
    hid_t scalar = H5Screate(H5S_SCALAR);
    if (format) {
        hid_t st = H5Tcopy(H5T_C_S1);
        H5Tset_size(st, strlen(format) + 1);
        hid_t a = H5Acreate2(file, "format", st, scalar, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, st, format);
        H5Aclose(a);
        H5Tclose(st);
        int v = 1;
        a = H5Acreate2(file, "version", H5T_STD_I32LE, scalar, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, H5T_NATIVE_INT, &v);
        H5Aclose(a);
    }
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(file, "images", type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(d >= 0);
    H5Dclose(d);
    H5Sclose(space);
    if (labels_len > 0) {
        hsize_t n = (hsize_t)labels_len;
        space = H5Screate_simple(1, &n, NULL);
        d = H5Dcreate2(file, "labels", H5T_STD_I32LE, space, H5P_DEFAULT, H5P_DEFAULT,
                       H5P_DEFAULT);
        H5Dclose(d);
        H5Sclose(space);
    }
    H5Sclose(scalar);
    H5Fclose(file);
}

static void t_good_file(void **state) {
    fixture *f = *state;
    assert_int_equal(try_open(f->good, 1, 8, 10, NULL), PFGM_OK);
    assert_int_equal(try_open(f->good, 0, 0, 30, NULL), PFGM_OK); /* <= 0: take the file's */
    pfgm_dataset_info info;
    assert_int_equal(pfgm_dataset_probe(f->good, &info), PFGM_OK);
    assert_int_equal(info.count, 30);
    assert_int_equal(info.channels, 1);
    assert_int_equal(info.height, 8);
    assert_int_equal(info.width, 8);
    assert_int_equal(info.has_labels, 1);
    assert_int_equal(info.version, PFGM_DATASET_VERSION);
    assert_int_equal(info.seed, 7);
    assert_string_equal(info.source, "test fixture");
}

static void t_missing_and_not_hdf5(void **state) {
    fixture *f = *state;
    char p[320];
    fx_join(p, sizeof p, f->dir, "missing.h5");
    assert_int_equal(try_open(p, 1, 8, 1, "No such file"), PFGM_ERR_IO);
    fx_join(p, sizeof p, f->dir, "text.h5");
    fx_write_bytes(p, "hello, not hdf5\n", 16);
    assert_int_equal(try_open(p, 1, 8, 1, "not an HDF5 file"), PFGM_ERR_FORMAT);
    /* a truncated dataset file */
    fx_join(p, sizeof p, f->dir, "trunc.h5");
    FILE *in = fopen(f->good, "rb");
    char buf[1200];
    size_t n = fread(buf, 1, sizeof buf, in);
    fclose(in);
    fx_write_bytes(p, buf, n);
    pfgm_status st = try_open(p, 1, 8, 1, NULL);
    assert_true(st == PFGM_ERR_FORMAT || st == PFGM_ERR_HDF5);
}

static void t_wrong_format_attr(void **state) {
    fixture *f = *state;
    char p[320];
    hsize_t dims[4] = {10, 1, 8, 8};
    fx_join(p, sizeof p, f->dir, "noattr.h5");
    write_h5(p, H5T_STD_U8LE, 4, dims, NULL, 0);
    assert_int_equal(try_open(p, 1, 8, 1, "'format'"), PFGM_ERR_FORMAT);
    fx_join(p, sizeof p, f->dir, "ckpt.h5");
    write_h5(p, H5T_STD_U8LE, 4, dims, "pfgm-checkpoint", 0);
    assert_int_equal(try_open(p, 1, 8, 1, "pfgm-checkpoint"), PFGM_ERR_FORMAT);
}

static void t_wrong_dtype(void **state) {
    fixture *f = *state;
    char p[320];
    hsize_t dims[4] = {10, 1, 8, 8};
    fx_join(p, sizeof p, f->dir, "float.h5");
    write_h5(p, H5T_IEEE_F32LE, 4, dims, PFGM_DATASET_FORMAT, 0);
    assert_int_equal(try_open(p, 1, 8, 1, "dtype"), PFGM_ERR_FORMAT);
    fx_join(p, sizeof p, f->dir, "int8.h5");
    write_h5(p, H5T_STD_I8LE, 4, dims, PFGM_DATASET_FORMAT, 0);
    assert_int_equal(try_open(p, 1, 8, 1, "uint8"), PFGM_ERR_FORMAT);
    fx_join(p, sizeof p, f->dir, "u16.h5");
    write_h5(p, H5T_STD_U16LE, 4, dims, PFGM_DATASET_FORMAT, 0);
    assert_int_equal(try_open(p, 1, 8, 1, "dtype"), PFGM_ERR_FORMAT);
    /* the probe (pfgm-prep info) applies the same checks */
    pfgm_dataset_info info;
    assert_int_equal(pfgm_dataset_probe(p, &info), PFGM_ERR_FORMAT);
}

static void t_wrong_rank(void **state) {
    fixture *f = *state;
    char p[320];
    hsize_t dims3[3] = {10, 8, 8};
    fx_join(p, sizeof p, f->dir, "rank3.h5");
    write_h5(p, H5T_STD_U8LE, 3, dims3, PFGM_DATASET_FORMAT, 0);
    assert_int_equal(try_open(p, 1, 8, 1, "rank 3"), PFGM_ERR_FORMAT);
}

static void t_bad_labels(void **state) {
    fixture *f = *state;
    char p[320];
    hsize_t dims[4] = {10, 1, 8, 8};
    fx_join(p, sizeof p, f->dir, "labels9.h5");
    write_h5(p, H5T_STD_U8LE, 4, dims, PFGM_DATASET_FORMAT, 9);
    assert_int_equal(try_open(p, 1, 8, 1, "/labels"), PFGM_ERR_FORMAT);
}

static void t_geometry_mismatch(void **state) {
    fixture *f = *state;
    assert_int_equal(try_open(f->good, 1, 16, 1, "smaller than data.image_size 16"),
                     PFGM_ERR_CONFIG);
    assert_int_equal(try_open(f->good, 1, 4, 1, "larger than data.image_size 4"),
                     PFGM_ERR_CONFIG);
    assert_int_equal(try_open(f->good, 3, 8, 1, "channels"), PFGM_ERR_CONFIG);
    assert_int_equal(try_open(f->good, 1, 8, 31, "no full batch"), PFGM_ERR_CONFIG);
    /* 30 images on 4 ranks: 7 per rank, fewer than 8 */
    pfgm_dataset_options o = {.path = f->good, .rank = 3, .world_size = 4, .channels = 1,
                              .image_size = 8, .batch_size = 8};
    pfgm_dataset *ds = NULL;
    assert_int_equal(pfgm_dataset_open(&o, &ds), PFGM_ERR_CONFIG);
    o.rank = 4;
    assert_int_equal(pfgm_dataset_open(&o, &ds), PFGM_ERR_INVALID_ARG);
    hsize_t dims[4] = {10, 1, 8, 6};
    char p[320];
    fx_join(p, sizeof p, f->dir, "nonsquare.h5");
    write_h5(p, H5T_STD_U8LE, 4, dims, PFGM_DATASET_FORMAT, 0);
    assert_int_equal(try_open(p, 1, 8, 1, "square"), PFGM_ERR_FORMAT);
}

/* A failed or aborted write leaves neither the output nor a temporary file. */
static void t_writer_atomic(void **state) {
    fixture *f = *state;
    char p[320];
    fx_join(p, sizeof p, f->dir, "partial.h5");
    pfgm_dataset_writer *w = NULL;
    assert_int_equal(pfgm_dataset_writer_create(p, 5, 1, 4, 4, 0, "t", 1, &w), PFGM_OK);
    uint8_t img[16] = {0};
    assert_int_equal(pfgm_dataset_writer_append(w, img, 0), PFGM_OK);
    assert_int_equal(fx_count_prefix(f->dir, "partial.h5"), 1); /* the temporary */
    assert_int_equal(pfgm_dataset_writer_commit(w), PFGM_ERR_INVALID_ARG);
    assert_int_equal(fx_count_prefix(f->dir, "partial.h5"), 0);

    assert_int_equal(pfgm_dataset_writer_create(p, 2, 1, 4, 4, 0, "t", 1, &w), PFGM_OK);
    assert_int_equal(pfgm_dataset_writer_append(w, img, 0), PFGM_OK);
    assert_int_equal(pfgm_dataset_writer_append(w, img, 0), PFGM_OK);
    assert_int_equal(pfgm_dataset_writer_append(w, img, 0), PFGM_ERR_INVALID_ARG);
    pfgm_dataset_writer_abort(w);
    assert_int_equal(fx_count_prefix(f->dir, "partial.h5"), 0);

    fx_join(p, sizeof p, f->dir, "no/such/dir/out.h5");
    assert_int_equal(pfgm_dataset_writer_create(p, 2, 1, 4, 4, 0, "t", 1, &w), PFGM_ERR_IO);
    assert_non_null(strstr(pfgm_error_message(), "no/such/dir/out.h5"));
    assert_null(w);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_good_file),
        cmocka_unit_test(t_missing_and_not_hdf5),
        cmocka_unit_test(t_wrong_format_attr),
        cmocka_unit_test(t_wrong_dtype),
        cmocka_unit_test(t_wrong_rank),
        cmocka_unit_test(t_bad_labels),
        cmocka_unit_test(t_geometry_mismatch),
        cmocka_unit_test(t_writer_atomic),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
