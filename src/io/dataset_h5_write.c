/* The dataset writer used by pfgm-prep (include/pfgm/dataset.h, docs/data-format.md):
 * creates `<out>.tmp.<pid>`, appends images in order through a one-chunk buffer, and on
 * commit closes, fsyncs and renames it to <out>; on any failure the temporary is removed,
 * so a failed conversion never leaves a file that looks like a dataset. Every chunk carries
 * a Fletcher32 checksum, which HDF5 verifies whenever the reader reads it. */
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/h5util.h"
#include "pfgm/dataset.h"
#include "util/atomic_file.h"
#include "util/check.h"

struct pfgm_dataset_writer {
    char *path;         /* final name */
    char *tmp;          /* <path>.tmp.<pid> */
    hid_t file, images, labels;
    int has_labels;
    int64_t count, C, H, W, dim;
    int64_t chunk;      /* images per HDF5 chunk and per write */
    int64_t written;    /* images written to the file */
    int64_t buffered;   /* images waiting in buf */
    uint8_t *buf;       /* [chunk, C, H, W] */
    int32_t *lbuf;      /* [chunk] */
};

/* Images per chunk: about 1 MiB of pixels, 1..256 images, never more than the file holds. */
static int64_t chunk_images(int64_t count, int64_t dim) {
    int64_t n = (int64_t)(1 << 20) / dim;
    if (n < 1) n = 1;
    if (n > 256) n = 256;
    if (n > count) n = count;
    return n;
}

/* A chunked dataset with HDF5's Fletcher32 filter: each chunk is stored with a 4-byte
 * checksum of its bytes, and every read of the chunk (pfgm_dataset_open, h5py, h5dump)
 * recomputes it and fails on a mismatch, so a flipped bit in the pixels or labels is an
 * error instead of a silently different training set (docs/data-format.md). */
static pfgm_status create_dataset(pfgm_dataset_writer *w, const char *name, hid_t type,
                                  int rank, const hsize_t *dims, const hsize_t *chunk,
                                  hid_t *out) {
    pfgm_status st = PFGM_OK;
    hid_t space = -1, dcpl = -1;
    PFGM_H5_CHECK_GOTO(space = H5Screate_simple(rank, dims, NULL), done);
    PFGM_H5_CHECK_GOTO(dcpl = H5Pcreate(H5P_DATASET_CREATE), done);
    PFGM_H5_CHECK_GOTO(H5Pset_chunk(dcpl, rank, chunk), done);
    PFGM_H5_CHECK_GOTO(H5Pset_fletcher32(dcpl), done);
    PFGM_H5_CHECK_GOTO(*out = H5Dcreate2(w->file, name, type, space, H5P_DEFAULT, dcpl,
                                         H5P_DEFAULT), done);
done:
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    return st;
}

/* Closes every HDF5 handle of w (safe to call twice). Returns the first failure. */
static pfgm_status close_handles(pfgm_dataset_writer *w) {
    pfgm_status st = PFGM_OK;
    if (w->labels >= 0 && H5Dclose(w->labels) < 0)
        st = pfgm_error(PFGM_ERR_HDF5, "H5Dclose(/labels) failed");
    if (w->images >= 0 && H5Dclose(w->images) < 0 && st == PFGM_OK)
        st = pfgm_error(PFGM_ERR_HDF5, "H5Dclose(/images) failed");
    if (w->file >= 0 && H5Fclose(w->file) < 0 && st == PFGM_OK)
        st = pfgm_error(PFGM_ERR_HDF5, "H5Fclose failed");
    w->labels = w->images = w->file = -1;
    return st;
}

static void writer_free(pfgm_dataset_writer *w) {
    free(w->path);
    free(w->tmp);
    free(w->buf);
    free(w->lbuf);
    free(w);
}

void pfgm_dataset_writer_abort(pfgm_dataset_writer *w) {
    if (!w) return;
    pfgm_h5_quiet q;
    pfgm_h5_quiet_begin(&q);
    close_handles(w);
    pfgm_h5_quiet_end(&q);
    if (w->tmp) unlink(w->tmp);
    writer_free(w);
}

pfgm_status pfgm_dataset_writer_create(const char *path, int64_t count, int64_t channels,
                                       int64_t height, int64_t width, int has_labels,
                                       const char *source, uint32_t seed,
                                       pfgm_dataset_writer **out) {
    pfgm_status st = PFGM_OK;
    pfgm_h5_quiet q;
    hid_t fapl = -1;
    *out = NULL;
    if (count < 1 || channels < 1 || height < 1 || width < 1)
        return pfgm_error(PFGM_ERR_INVALID_ARG,
                          "%s: cannot write %lld images of [%lld, %lld, %lld]", path,
                          (long long)count, (long long)channels, (long long)height,
                          (long long)width);
    pfgm_dataset_writer *w = calloc(1, sizeof *w);
    if (!w) return pfgm_error(PFGM_ERR_NOMEM, "%s: out of memory", path);
    w->file = w->images = w->labels = -1;
    w->count = count;
    w->C = channels;
    w->H = height;
    w->W = width;
    w->dim = channels * height * width;
    w->has_labels = has_labels != 0;
    w->chunk = chunk_images(count, w->dim);
    size_t tlen = strlen(path) + 32;
    w->path = strdup(path);
    w->tmp = malloc(tlen);
    w->buf = malloc((size_t)w->chunk * (size_t)w->dim);
    w->lbuf = malloc((size_t)w->chunk * sizeof *w->lbuf);
    if (!w->path || !w->tmp || !w->buf || !w->lbuf) {
        writer_free(w);
        return pfgm_error(PFGM_ERR_NOMEM, "%s: out of memory", path);
    }
    pfgm_atomic_tmp_name(path, w->tmp, tlen);

    /* Create the temporary with open(2) first: a missing directory or a read-only place
     * then gets the system's reason instead of a generic HDF5 failure. */
    int fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        st = pfgm_error(PFGM_ERR_IO, "%s: cannot create output: %s", w->tmp, strerror(errno));
        free(w->tmp);
        w->tmp = NULL; /* nothing to remove */
        pfgm_dataset_writer_abort(w);
        return st;
    }
    close(fd);

    pfgm_h5_quiet_begin(&q);
    PFGM_H5_CHECK_GOTO(fapl = H5Pcreate(H5P_FILE_ACCESS), fail);
    PFGM_H5_CHECK_GOTO(H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG), fail);
    PFGM_H5_CHECK_GOTO(w->file = H5Fcreate(w->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl), fail);
    PFGM_TRY_GOTO(pfgm_h5_write_str_attr(w->file, "format", PFGM_DATASET_FORMAT), fail);
    PFGM_TRY_GOTO(pfgm_h5_write_int_attr(w->file, "version", PFGM_DATASET_VERSION), fail);
    PFGM_TRY_GOTO(pfgm_h5_write_str_attr(w->file, "source", source ? source : ""), fail);
    PFGM_TRY_GOTO(pfgm_h5_write_int_attr(w->file, "seed", (int64_t)seed), fail);
    {
        hsize_t dims[4] = {(hsize_t)count, (hsize_t)channels, (hsize_t)height, (hsize_t)width};
        hsize_t chunk[4] = {(hsize_t)w->chunk, dims[1], dims[2], dims[3]};
        PFGM_TRY_GOTO(create_dataset(w, "images", H5T_STD_U8LE, 4, dims, chunk, &w->images), fail);
        if (w->has_labels)
            PFGM_TRY_GOTO(create_dataset(w, "labels", H5T_STD_I32LE, 1, dims, chunk, &w->labels),
                          fail);
    }
    H5Pclose(fapl);
    pfgm_h5_quiet_end(&q);
    *out = w;
    return PFGM_OK;
fail:
    st = pfgm_h5_context(st, w->tmp);
    if (fapl >= 0) H5Pclose(fapl);
    pfgm_h5_quiet_end(&q);
    pfgm_dataset_writer_abort(w);
    return st;
}

/* Writes the buffered images (and labels) at rows [written, written + buffered). */
static pfgm_status flush_buffer(pfgm_dataset_writer *w) {
    pfgm_status st = PFGM_OK;
    hid_t fspace = -1, mspace = -1;
    if (w->buffered == 0) return PFGM_OK;
    hsize_t off[4] = {(hsize_t)w->written, 0, 0, 0};
    hsize_t cnt[4] = {(hsize_t)w->buffered, (hsize_t)w->C, (hsize_t)w->H, (hsize_t)w->W};
    PFGM_H5_CHECK_GOTO(fspace = H5Dget_space(w->images), done);
    PFGM_H5_CHECK_GOTO(H5Sselect_hyperslab(fspace, H5S_SELECT_SET, off, NULL, cnt, NULL), done);
    PFGM_H5_CHECK_GOTO(mspace = H5Screate_simple(4, cnt, NULL), done);
    PFGM_H5_CHECK_GOTO(H5Dwrite(w->images, H5T_NATIVE_UINT8, mspace, fspace, H5P_DEFAULT, w->buf),
                       done);
    if (w->has_labels) {
        H5Sclose(fspace);
        H5Sclose(mspace);
        fspace = mspace = -1;
        PFGM_H5_CHECK_GOTO(fspace = H5Dget_space(w->labels), done);
        PFGM_H5_CHECK_GOTO(H5Sselect_hyperslab(fspace, H5S_SELECT_SET, off, NULL, cnt, NULL),
                           done);
        PFGM_H5_CHECK_GOTO(mspace = H5Screate_simple(1, cnt, NULL), done);
        PFGM_H5_CHECK_GOTO(
            H5Dwrite(w->labels, H5T_NATIVE_INT32, mspace, fspace, H5P_DEFAULT, w->lbuf), done);
    }
    w->written += w->buffered;
    w->buffered = 0;
done:
    if (mspace >= 0) H5Sclose(mspace);
    if (fspace >= 0) H5Sclose(fspace);
    return st;
}

pfgm_status pfgm_dataset_writer_append(pfgm_dataset_writer *w, const uint8_t *image,
                                       int32_t label) {
    if (w->written + w->buffered >= w->count)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "%s: more than the %lld images declared",
                          w->path, (long long)w->count);
    memcpy(w->buf + (size_t)w->buffered * (size_t)w->dim, image, (size_t)w->dim);
    w->lbuf[w->buffered] = label;
    w->buffered++;
    if (w->buffered == w->chunk) {
        pfgm_h5_quiet q;
        pfgm_h5_quiet_begin(&q);
        pfgm_status st = pfgm_h5_context(flush_buffer(w), w->tmp);
        pfgm_h5_quiet_end(&q);
        return st;
    }
    return PFGM_OK;
}

pfgm_status pfgm_dataset_writer_commit(pfgm_dataset_writer *w) {
    pfgm_status st = PFGM_OK;
    pfgm_h5_quiet q;
    pfgm_h5_quiet_begin(&q);
    st = flush_buffer(w);
    if (st == PFGM_OK && w->written != w->count)
        st = pfgm_error(PFGM_ERR_INVALID_ARG, "only %lld of the %lld declared images were written",
                        (long long)w->written, (long long)w->count);
    if (st == PFGM_OK) st = close_handles(w);
    st = pfgm_h5_context(st, w->tmp);
    pfgm_h5_quiet_end(&q);
    if (st == PFGM_OK) st = pfgm_atomic_publish(w->tmp, w->path);
    if (st != PFGM_OK) {
        pfgm_dataset_writer_abort(w);
        return st;
    }
    writer_free(w);
    return st;
}
