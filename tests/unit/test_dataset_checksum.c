/* Dataset checksums (docs/data-format.md, issue 11): the writer puts HDF5's Fletcher32 filter
 * on /images and /labels; a byte flipped inside a chunk of either makes pfgm_dataset_open
 * fail with one line naming the file, the dataset, the images of the damaged chunk and
 * "checksum" (PFGM_ERR_FORMAT, exit 3 like the other format errors) from the next_batch
 * that reads the chunk (the streaming reader reads no pixels at open); a fresh file reads
 * back bit-identical; a file from an older pfgm-prep (no filter) still opens, with one
 * warning through the caller's logger (rank 0 only). The damaged chunk is found with
 * H5Dget_chunk_info_by_coord (HDF5 >= 1.10.5), so the flip lands in pixel or label bytes,
 * never in HDF5 metadata. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <hdf5.h>

#include "data_fixtures.h"
#include "pfgm/dataset.h"
#include "pfgm/log.h"

/* 300 images of [1, 8, 8]: 64 bytes each, so the writer's chunks hold 256 images
 * (chunk_images: min(256, 1 MiB / 64)) and the file has two chunks per dataset, rows
 * 0..255 and 256..299; the message must name the right one. */
#define N_IMAGES 300
#define SIDE 8

typedef fx_dataset_dir fixture;

static int setup(void **state) { return fx_dataset_dir_setup(state, N_IMAGES, 1, SIDE); }
static int teardown(void **state) { return fx_dataset_dir_teardown(state); }

/* File offset and stored size (data + 4-byte Fletcher32 sum when filtered) of the chunk of
 * dataset `name` that holds row `row`. */
static void chunk_location(const char *path, const char *name, hsize_t row, haddr_t *addr,
                           hsize_t *size) {
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(file >= 0);
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    assert_true(d >= 0);
    hid_t dcpl = H5Dget_create_plist(d);
    hsize_t cdims[4] = {0};
    int rank = H5Pget_chunk(dcpl, 4, cdims);
    assert_true(rank >= 1);
    hsize_t coord[4] = {row - row % cdims[0], 0, 0, 0}; /* the chunk's first row */
    unsigned mask = 0;
    assert_true(H5Dget_chunk_info_by_coord(d, coord, &mask, addr, size) >= 0);
    assert_true(*addr != HADDR_UNDEF && *size > 8);
    H5Pclose(dcpl);
    H5Dclose(d);
    H5Fclose(file);
}

/* XORs 0x5a into the byte at `off` of the file. */
static void flip_byte(const char *path, long off) {
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, off, SEEK_SET), 0);
    int c = fgetc(f);
    assert_true(c != EOF);
    assert_int_equal(fseek(f, off, SEEK_SET), 0);
    fputc(c ^ 0x5a, f);
    fclose(f);
}

/* Opens path as rank `rank` of `world` (L = 10, no flips); *ds left open on success. */
static pfgm_status open_as(const char *path, int rank, int world, const pfgm_logger *lg,
                           pfgm_dataset **ds) {
    pfgm_dataset_options o = {.path = path, .rank = rank, .world_size = world, .channels = 1,
                              .image_size = SIDE, .batch_size = 10, .seed = 3, .log = lg};
    return pfgm_dataset_open(&o, ds);
}

/* Copies the good file, flips one byte in the middle of the chunk of `name` holding `row`,
 * and checks that reading it fails with one line naming the file, the dataset, the
 * damaged chunk's images and "checksum". The streaming reader reads no pixels at open, so
 * the failure comes from the next_batch that first needs the damaged chunk; one epoch
 * (W = 1) needs every chunk. The failure is sticky: the next call returns it again. */
static void check_flip(fixture *f, const char *name, hsize_t row, const char *range) {
    char p[320];
    fx_join(p, sizeof p, f->dir, "flipped.h5");
    assert_int_equal(fx_copy_file(f->good, p), 0);
    haddr_t addr;
    hsize_t size;
    chunk_location(p, name, row, &addr, &size);
    flip_byte(p, (long)(addr + size / 3)); /* inside the data, before the trailing sum */

    pfgm_dataset *ds = NULL;
    assert_int_equal(open_as(p, 0, 1, NULL, &ds), PFGM_OK);
    float img[10 * SIDE * SIDE];
    int32_t lab[10];
    pfgm_status st = PFGM_OK;
    for (int64_t i = 0; i < pfgm_dataset_steps_per_epoch(ds) && st == PFGM_OK; ++i)
        st = pfgm_dataset_next_batch(ds, img, lab);
    if (st == PFGM_OK) {
        pfgm_dataset_close(ds);
        fail_msg("%s: a byte flipped in the /%s chunk of %s was read without error", p, name,
                 range);
    }
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", pfgm_error_message());
    assert_int_equal(st, PFGM_ERR_FORMAT);
    assert_int_equal(pfgm_status_exit_code(st), 3);
    assert_null(strchr(msg, '\n'));
    char want_name[32];
    snprintf(want_name, sizeof want_name, "/%s", name);
    const char *needles[] = {p, want_name, range, "checksum", "corrupt"};
    for (size_t k = 0; k < sizeof needles / sizeof *needles; ++k)
        if (!strstr(msg, needles[k])) fail_msg("message '%s' lacks '%s'", msg, needles[k]);
    assert_int_equal(pfgm_dataset_next_batch(ds, img, lab), PFGM_ERR_FORMAT);
    assert_string_equal(pfgm_error_message(), msg);
    pfgm_dataset_close(ds);
    unlink(p);
}

static int has_fletcher32(const char *path, const char *name) {
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    hid_t dcpl = H5Dget_create_plist(d);
    unsigned flags = 0;
    size_t nelem = 0;
    unsigned config = 0;
    int found = H5Pget_filter_by_id2(dcpl, H5Z_FILTER_FLETCHER32, &flags, &nelem, NULL, 0, NULL,
                                     &config) >= 0;
    H5Pclose(dcpl);
    H5Dclose(d);
    H5Fclose(file);
    return found;
}

/* The writer's datasets carry the filter, the probe says so, and the reader hands out
 * exactly the bytes that were written. */
static void t_fresh_file_reads_back(void **state) {
    fixture *f = *state;
    {
        H5E_auto2_t fn;
        void *data;
        H5Eget_auto2(H5E_DEFAULT, &fn, &data);
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* H5Pget_filter_by_id2 fails loudly when absent */
        int on_images = has_fletcher32(f->good, "images");
        int on_labels = has_fletcher32(f->good, "labels");
        H5Eset_auto2(H5E_DEFAULT, fn, data);
        assert_true(on_images);
        assert_true(on_labels);
    }
    pfgm_dataset_info info;
    assert_int_equal(pfgm_dataset_probe(f->good, &info), PFGM_OK);
    assert_int_equal(info.checksum, 1);

    fx_dataset d;
    assert_true(fx_read_dataset(f->good, &d));
    for (int64_t i = 0; i < N_IMAGES; ++i) {
        assert_int_equal(d.labels[i], i);
        for (int64_t h = 0; h < SIDE; ++h)
            for (int64_t w = 0; w < SIDE; ++w)
                assert_int_equal(d.images[(i * SIDE + h) * SIDE + w], fx_pixel(i, 0, h, w));
    }
    fx_free_dataset(&d);

    /* Through the reader: one epoch visits every image once; label = source index, and
     * each float is exactly the documented 2 * (x / 255) - 1 of the written byte. */
    pfgm_dataset *ds = NULL;
    assert_int_equal(open_as(f->good, 0, 1, NULL, &ds), PFGM_OK);
    assert_int_equal(pfgm_dataset_count(ds), N_IMAGES);
    int seen[N_IMAGES] = {0};
    float img[10 * SIDE * SIDE];
    int32_t lab[10];
    for (int64_t s = 0; s < pfgm_dataset_steps_per_epoch(ds); ++s) {
        assert_int_equal(pfgm_dataset_next_batch(ds, img, lab), PFGM_OK);
        for (int k = 0; k < 10; ++k) {
            assert_true(lab[k] >= 0 && lab[k] < N_IMAGES);
            seen[lab[k]]++;
            for (int64_t h = 0; h < SIDE; ++h)
                for (int64_t w = 0; w < SIDE; ++w) {
                    float want = 2.0f * ((float)fx_pixel(lab[k], 0, h, w) / 255.0f) - 1.0f;
                    assert_true(img[(k * SIDE + h) * SIDE + w] == want);
                }
        }
    }
    for (int i = 0; i < N_IMAGES; ++i) assert_int_equal(seen[i], 1);
    pfgm_dataset_close(ds);
}

static void t_flip_in_images(void **state) {
    fixture *f = *state;
    check_flip(f, "images", 0, "images 0..255");
    check_flip(f, "images", 270, "images 256..299");
}

static void t_flip_in_labels(void **state) {
    fixture *f = *state;
    check_flip(f, "labels", 0, "images 0..255");
    check_flip(f, "labels", 299, "images 256..299");
}

/* A damaged chunk is found by whichever rank's slice holds it in the epoch (the block order
 * deals blocks to ranks afresh every epoch); that rank fails with the chunk's images, every
 * other rank reads its epoch without error. W = 3 and blocks of 50 rows: each rank's slice
 * is exactly two whole blocks, and the damaged byte (row 266) is in block 5 (rows
 * 250..299), so exactly one rank reads it; the message names the whole damaged chunk. */
static void t_flip_found_by_its_rank(void **state) {
    fixture *f = *state;
    char p[320];
    fx_join(p, sizeof p, f->dir, "shard.h5");
    assert_int_equal(fx_copy_file(f->good, p), 0);
    haddr_t addr;
    hsize_t size;
    chunk_location(p, "images", 256, &addr, &size);
    flip_byte(p, (long)(addr + 10 * SIDE * SIDE));
    int failed = 0;
    for (int r = 0; r < 3; ++r) {
        pfgm_dataset_options o = {.path = p, .rank = r, .world_size = 3, .channels = 1,
                                  .image_size = SIDE, .batch_size = 10, .seed = 3,
                                  .block_images = 50, .shuffle_window = 2};
        pfgm_dataset *ds = NULL;
        assert_int_equal(pfgm_dataset_open(&o, &ds), PFGM_OK);
        float img[10 * SIDE * SIDE];
        int32_t lab[10];
        pfgm_status st = PFGM_OK;
        for (int64_t i = 0; i < pfgm_dataset_steps_per_epoch(ds) && st == PFGM_OK; ++i)
            st = pfgm_dataset_next_batch(ds, img, lab);
        if (st != PFGM_OK) {
            assert_int_equal(st, PFGM_ERR_FORMAT);
            assert_non_null(strstr(pfgm_error_message(), "images 256..299"));
            ++failed;
        }
        pfgm_dataset_close(ds);
    }
    assert_int_equal(failed, 1);
}

/* A file as pfgm-prep wrote it before checksums (same layout, no filter). */
static void write_unchecked(const char *path) {
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(file >= 0);
    hid_t scalar = H5Screate(H5S_SCALAR);
    hid_t st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, sizeof PFGM_DATASET_FORMAT);
    hid_t a = H5Acreate2(file, "format", st, scalar, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, st, PFGM_DATASET_FORMAT);
    H5Aclose(a);
    H5Tclose(st);
    int64_t v = 1;
    a = H5Acreate2(file, "version", H5T_STD_I64LE, scalar, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT64, &v);
    H5Aclose(a);
    H5Sclose(scalar);

    hsize_t dims[4] = {N_IMAGES, 1, SIDE, SIDE}, chunk[4] = {256, 1, SIDE, SIDE};
    uint8_t *px = malloc(N_IMAGES * SIDE * SIDE);
    int32_t lab[N_IMAGES];
    for (int64_t i = 0; i < N_IMAGES; ++i) {
        lab[i] = (int32_t)i;
        for (int64_t h = 0; h < SIDE; ++h)
            for (int64_t w = 0; w < SIDE; ++w) px[(i * SIDE + h) * SIDE + w] = fx_pixel(i, 0, h, w);
    }
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 4, chunk);
    hid_t space = H5Screate_simple(4, dims, NULL);
    hid_t d = H5Dcreate2(file, "images", H5T_STD_U8LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    assert_true(H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, px) >= 0);
    H5Dclose(d);
    H5Sclose(space);
    H5Pclose(dcpl);
    dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 1, chunk);
    space = H5Screate_simple(1, dims, NULL);
    d = H5Dcreate2(file, "labels", H5T_STD_I32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    assert_true(H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, lab) >= 0);
    H5Dclose(d);
    H5Sclose(space);
    H5Pclose(dcpl);
    H5Fclose(file);
    free(px);
}

/* Number of lines in f (rewound first) that contain needle. */
static int count_lines(FILE *f, const char *needle) {
    char line[2048];
    int n = 0;
    rewind(f);
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle)) ++n;
    return n;
}

/* An older file has no checksum: it still opens and reads the same images, the probe
 * reports checksum 0, and rank 0 (only) warns once through the logger; without a logger
 * nothing is printed. */
static void t_unchecked_file_still_reads(void **state) {
    fixture *f = *state;
    char p[320];
    fx_join(p, sizeof p, f->dir, "old.h5");
    write_unchecked(p);

    pfgm_dataset_info info;
    assert_int_equal(pfgm_dataset_probe(p, &info), PFGM_OK);
    assert_int_equal(info.checksum, 0);

    FILE *out = tmpfile(), *err = tmpfile();
    assert_non_null(out);
    assert_non_null(err);
    pfgm_logger lg;
    pfgm_logger_init(&lg, 0);
    lg.out = out;
    lg.err = err;
    pfgm_dataset *ds = NULL;
    assert_int_equal(open_as(p, 0, 1, &lg, &ds), PFGM_OK);
    float img[10 * SIDE * SIDE];
    int32_t lab[10];
    assert_int_equal(pfgm_dataset_next_batch(ds, img, lab), PFGM_OK);
    for (int k = 0; k < 10; ++k)
        assert_true(img[k * SIDE * SIDE + 1] ==
                    2.0f * ((float)fx_pixel(lab[k], 0, 0, 1) / 255.0f) - 1.0f);
    pfgm_dataset_close(ds);
    fflush(err);
    assert_int_equal(count_lines(err, "warning"), 1);
    assert_int_equal(count_lines(err, p), 1);
    assert_int_equal(count_lines(err, "no checksum"), 1);
    assert_int_equal(count_lines(out, "checksum"), 0);

    /* rank 1 of 2 reads the same file silently (rank 0 has said it) */
    fclose(err);
    err = tmpfile();
    lg.rank = 1;
    lg.err = err;
    ds = NULL;
    assert_int_equal(open_as(p, 1, 2, &lg, &ds), PFGM_OK);
    pfgm_dataset_close(ds);
    fflush(err);
    assert_int_equal(count_lines(err, "checksum"), 0);

    /* a checksummed file gives no warning */
    lg.rank = 0;
    ds = NULL;
    assert_int_equal(open_as(f->good, 0, 1, &lg, &ds), PFGM_OK);
    pfgm_dataset_close(ds);
    fflush(err);
    assert_int_equal(count_lines(err, "checksum"), 0);
    fclose(out);
    fclose(err);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_fresh_file_reads_back),
        cmocka_unit_test(t_flip_in_images),
        cmocka_unit_test(t_flip_in_labels),
        cmocka_unit_test(t_flip_found_by_its_rank),
        cmocka_unit_test(t_unchecked_file_still_reads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
