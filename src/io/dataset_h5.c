/* The sharded dataset reader (include/pfgm/dataset.h, docs/data-format.md): validates a
 * pfgm dataset file, reads rank r's contiguous hyperslab of /images (and /labels) into
 * memory, reshuffles it every epoch with Philox and hands out large batches as float32 in
 * [-1, 1] with optional horizontal flips. Also the Fisher-Yates permutation shared with
 * pfgm-prep, and probing a file's facts. The writer is in dataset_h5_write.c. HDF5 checks
 * the writer's Fletcher32 chunk checksums on every read; a failed read is diagnosed here
 * so a damaged file is reported as such, with the images of the damaged chunk. */
#include <errno.h>
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/h5util.h"
#include "pfgm/dataset.h"
#include "pfgm/rng.h"
#include "util/check.h"

struct pfgm_dataset {
    int rank, world_size;
    int64_t count;       /* images in the file */
    int64_t per_rank;    /* floor(count / W): images in this shard */
    int64_t steps;       /* floor(per_rank / L) */
    int64_t L;           /* large batch size */
    int64_t C, H, W, dim;
    uint32_t seed;
    int random_flip, has_labels;
    uint8_t *pixels;     /* [per_rank, C, H, W] */
    int32_t *labels;     /* [per_rank], NULL without /labels */
    int64_t *perm;       /* [per_rank]: epoch permutation of the shard */
    int64_t perm_epoch;  /* epoch perm was drawn for, -1 before the first draw */
    pfgm_dataset_position pos;
    float to_unit[256];  /* x -> 2 * (x / 255) - 1 */
};

/* ---- permutation ------------------------------------------------------------------------ */

/* Sequential 32-bit words of one Philox stream, fetched a block of four at a time. */
typedef struct word_stream {
    pfgm_rng rng;
    uint64_t next;   /* index of the next word */
    uint32_t buf[4];
    unsigned avail;  /* words left in buf, taken from the end of the block */
} word_stream;

static uint32_t next_word(word_stream *s) {
    if (s->avail == 0) {
        pfgm_rng_u32(&s->rng, s->next, 4, s->buf);
        s->next += 4;
        s->avail = 4;
    }
    return s->buf[4 - s->avail--];
}

/* Uniform integer in [0, range), range >= 1: Lemire, "Fast random integer generation in an
 * interval" (ACM TOMACS 2019), multiply-and-reject, no modulo bias. */
static uint32_t uniform_below(word_stream *s, uint32_t range) {
    uint64_t m = (uint64_t)next_word(s) * range;
    uint32_t low = (uint32_t)m;
    if (low < range) {
        uint32_t threshold = (uint32_t)(-range) % range;
        while (low < threshold) {
            m = (uint64_t)next_word(s) * range;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

void pfgm_permutation(uint32_t seed, uint32_t rank, uint32_t stream, uint64_t step, int64_t n,
                      int64_t *perm) {
    word_stream s = {.rng = {.seed = seed, .rank = rank, .stream = stream, .step = step}};
    for (int64_t i = 0; i < n; ++i) perm[i] = i;
    for (int64_t i = n - 1; i > 0; --i) {
        int64_t j = (int64_t)uniform_below(&s, (uint32_t)(i + 1));
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

/* ---- validation ------------------------------------------------------------------------- */

/* 1 when dataset dset carries the Fletcher32 filter. Walks the filter list instead of
 * asking for the filter by id, which would leave an error on the HDF5 stack when absent. */
static int has_fletcher32(hid_t dset) {
    int found = 0;
    hid_t dcpl = H5Dget_create_plist(dset);
    if (dcpl < 0) return 0;
    int n = H5Pget_nfilters(dcpl);
    for (int i = 0; i < n && !found; ++i) {
        unsigned flags = 0, config = 0;
        size_t nelem = 0;
        found = H5Pget_filter2(dcpl, (unsigned)i, &flags, &nelem, NULL, 0, NULL, &config) ==
                H5Z_FILTER_FLETCHER32;
    }
    H5Pclose(dcpl);
    return found;
}

/* Checks that `path` exists and is an HDF5 file, and opens it read-only. */
static pfgm_status open_file(const char *path, hid_t *file) {
    struct stat sb;
    *file = -1;
    if (stat(path, &sb) != 0)
        return pfgm_error(PFGM_ERR_IO, "%s: cannot open dataset: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return pfgm_error(PFGM_ERR_IO, "%s: not a regular file", path);
    if (H5Fis_hdf5(path) <= 0)
        return pfgm_error(PFGM_ERR_FORMAT,
                          "%s: not an HDF5 file (expected a dataset written by pfgm-prep)", path);
    *file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (*file < 0)
        return pfgm_error(PFGM_ERR_HDF5, "H5Fopen failed: cannot open the HDF5 file");
    return PFGM_OK;
}

/* Validates attributes, /images and /labels of an open file; fills *info. */
static pfgm_status validate(hid_t file, const char *path, pfgm_dataset_info *info) {
    pfgm_status st = PFGM_OK;
    hid_t dset = -1, type = -1, space = -1;
    char format[64];
    int64_t v = 0;
    memset(info, 0, sizeof *info);

    st = pfgm_h5_read_str_attr(file, path, "format", format, sizeof format);
    if (st == PFGM_ERR_FORMAT)
        return pfgm_error(st, "%s: root attribute 'format' missing or not a string: not a pfgm "
                              "dataset (write one with pfgm-prep)", path);
    PFGM_TRY(st);
    if (strcmp(format, PFGM_DATASET_FORMAT) != 0)
        return pfgm_error(PFGM_ERR_FORMAT, "%s: format is '%s', expected '%s'", path, format,
                          PFGM_DATASET_FORMAT);
    PFGM_TRY(pfgm_h5_read_int_attr(file, path, "version", &v));
    if (v < 1 || v > PFGM_DATASET_VERSION)
        return pfgm_error(PFGM_ERR_FORMAT,
                          "%s: dataset version %lld, this build reads versions 1..%d", path,
                          (long long)v, PFGM_DATASET_VERSION);
    info->version = (int)v;
    if (H5Aexists(file, "seed") > 0) {
        PFGM_TRY(pfgm_h5_read_int_attr(file, path, "seed", &v));
        info->seed = (uint32_t)v;
    }
    if (H5Aexists(file, "source") > 0)
        PFGM_TRY(pfgm_h5_read_str_attr(file, path, "source", info->source, sizeof info->source));

    /* /images: uint8 [count, C, H, W] */
    if (H5Lexists(file, "images", H5P_DEFAULT) <= 0)
        return pfgm_error(PFGM_ERR_FORMAT, "%s: dataset /images missing", path);
    PFGM_H5_CHECK_GOTO(dset = H5Dopen2(file, "images", H5P_DEFAULT), done);
    PFGM_H5_CHECK_GOTO(type = H5Dget_type(dset), done);
    PFGM_H5_CHECK_GOTO(space = H5Dget_space(dset), done);
    if (H5Tget_class(type) != H5T_INTEGER || H5Tget_size(type) != 1 ||
        H5Tget_sign(type) != H5T_SGN_NONE) {
        st = pfgm_error(PFGM_ERR_FORMAT, "%s: /images has the wrong dtype (%s of %zu bytes), "
                        "expected uint8", path,
                        H5Tget_class(type) == H5T_FLOAT     ? "float"
                        : H5Tget_class(type) == H5T_INTEGER ? "integer"
                                                            : "non-numeric",
                        H5Tget_size(type));
        goto done;
    }
    int ndims = H5Sget_simple_extent_ndims(space);
    if (ndims != 4) {
        st = pfgm_error(PFGM_ERR_FORMAT, "%s: /images has rank %d, expected 4 ([count, C, H, W])",
                        path, ndims);
        goto done;
    }
    hsize_t d[4];
    PFGM_H5_CHECK_GOTO(H5Sget_simple_extent_dims(space, d, NULL), done);
    if (d[0] < 1 || d[1] < 1 || d[2] < 1 || d[3] < 1) {
        st = pfgm_error(PFGM_ERR_FORMAT, "%s: /images is empty ([%llu, %llu, %llu, %llu])", path,
                        (unsigned long long)d[0], (unsigned long long)d[1],
                        (unsigned long long)d[2], (unsigned long long)d[3]);
        goto done;
    }
    info->count = (int64_t)d[0];
    info->channels = (int64_t)d[1];
    info->height = (int64_t)d[2];
    info->width = (int64_t)d[3];
    info->checksum = has_fletcher32(dset);
    H5Sclose(space);
    H5Tclose(type);
    H5Dclose(dset);
    space = type = dset = -1;

    /* /labels (optional): int32 [count] */
    if (H5Lexists(file, "labels", H5P_DEFAULT) > 0) {
        PFGM_H5_CHECK_GOTO(dset = H5Dopen2(file, "labels", H5P_DEFAULT), done);
        PFGM_H5_CHECK_GOTO(type = H5Dget_type(dset), done);
        PFGM_H5_CHECK_GOTO(space = H5Dget_space(dset), done);
        hsize_t n = 0;
        if (H5Tget_class(type) != H5T_INTEGER || H5Tget_size(type) != 4 ||
            H5Tget_sign(type) != H5T_SGN_2 || H5Sget_simple_extent_ndims(space) != 1 ||
            H5Sget_simple_extent_dims(space, &n, NULL) < 0 || (int64_t)n != info->count) {
            st = pfgm_error(PFGM_ERR_FORMAT, "%s: /labels must be int32 [%lld]", path,
                            (long long)info->count);
            goto done;
        }
        info->has_labels = 1;
        info->checksum = info->checksum && has_fletcher32(dset);
    }
done:
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    if (dset >= 0) H5Dclose(dset);
    return st;
}

pfgm_status pfgm_dataset_probe(const char *path, pfgm_dataset_info *info) {
    pfgm_status st;
    pfgm_h5_quiet q;
    hid_t file = -1;
    pfgm_h5_quiet_begin(&q);
    st = open_file(path, &file);
    if (st == PFGM_OK) st = validate(file, path, info);
    st = pfgm_h5_context(st, path);
    if (file >= 0) H5Fclose(file);
    pfgm_h5_quiet_end(&q);
    return st;
}

/* ---- reading the shard ---------------------------------------------------------------------- */

/* Rows [off, off + k) of dset (rank 1 or 4, file extent `full`) into dst through the
 * transfer property list dxpl. Returns HDF5's result; on failure the HDF5 error stack
 * holds the reason. */
static herr_t read_slab(hid_t dset, hid_t mem_type, int rank, const hsize_t *full, int64_t off,
                        int64_t k, hid_t dxpl, void *dst) {
    herr_t r = -1;
    hid_t fspace = -1, mspace = -1;
    hsize_t start[4] = {(hsize_t)off, 0, 0, 0};
    hsize_t cnt[4] = {(hsize_t)k, 0, 0, 0};
    for (int d = 1; d < rank; ++d) cnt[d] = full[d];
    if ((fspace = H5Dget_space(dset)) >= 0 &&
        H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, cnt, NULL) >= 0 &&
        (mspace = H5Screate_simple(rank, cnt, NULL)) >= 0)
        r = H5Dread(dset, mem_type, mspace, fspace, dxpl, dst);
    if (mspace >= 0) H5Sclose(mspace);
    if (fspace >= 0) H5Sclose(fspace);
    return r;
}

/* Called when reading rows [off, off + k) of dataset `name` failed, with HDF5's error
 * stack still current. When the dataset carries Fletcher32, the failing chunk is found by
 * reading chunk by chunk, and read again without error detection (H5Z_DISABLE_EDC): when
 * that succeeds the bytes are there but do not match their checksum, so the file is
 * corrupt, and the message names the chunk's rows (PFGM_ERR_FORMAT). The search comes
 * first because HDF5 caches a chunk read without detection, and a cached chunk is not
 * verified again. Any other failure is returned as PFGM_ERR_HDF5 with the original error
 * stack restored for pfgm_h5_context. dst: scratch of k rows. */
static pfgm_status diagnose_read(hid_t dset, const char *path, const char *name,
                                 hid_t mem_type, int rank, const hsize_t *full, int64_t off,
                                 int64_t k, size_t row_bytes, void *dst) {
    hid_t saved = H5Eget_current_stack();
    hid_t dxpl = -1, dcpl = -1;
    hsize_t cdims[4] = {0};
    int corrupt = 0;
    int64_t lo = off, hi = off + k; /* the failing rows: the damaged chunk once found */
    if (has_fletcher32(dset)) {
        if ((dcpl = H5Dget_create_plist(dset)) >= 0 && H5Pget_chunk(dcpl, 4, cdims) >= 1 &&
            cdims[0] >= 1) {
            const int64_t c = (int64_t)cdims[0];
            for (int64_t r0 = off - off % c; r0 < off + k; r0 += c) {
                int64_t a = r0 > off ? r0 : off;
                int64_t b = r0 + c < off + k ? r0 + c : off + k;
                if (read_slab(dset, mem_type, rank, full, a, b - a, H5P_DEFAULT, dst) < 0) {
                    lo = a;
                    hi = b;
                    break;
                }
            }
        }
        if ((dxpl = H5Pcreate(H5P_DATASET_XFER)) >= 0 &&
            H5Pset_edc_check(dxpl, H5Z_DISABLE_EDC) >= 0 &&
            read_slab(dset, mem_type, rank, full, lo, hi - lo, dxpl, dst) >= 0)
            corrupt = 1;
        if (corrupt && cdims[0] >= 1 && hi - lo <= (int64_t)cdims[0]) {
            /* name the whole damaged chunk, not just the part of it this rank reads */
            lo -= lo % (int64_t)cdims[0];
            hi = lo + (int64_t)cdims[0] < (int64_t)full[0] ? lo + (int64_t)cdims[0]
                                                          : (int64_t)full[0];
        }
    }
    if (dcpl >= 0) H5Pclose(dcpl);
    if (dxpl >= 0) H5Pclose(dxpl);
    if (corrupt) {
        if (saved >= 0) H5Eclose_stack(saved);
        return pfgm_error(PFGM_ERR_FORMAT,
                          "%s: checksum mismatch in /%s, %simages %lld..%lld (Fletcher32): the "
                          "file is corrupt ---> HINT: write it again with pfgm-prep",
                          path, name, strcmp(name, "images") ? "labels of " : "",
                          (long long)lo, (long long)hi - 1);
    }
    if (saved >= 0) H5Eset_current_stack(saved);
    return pfgm_error(PFGM_ERR_HDF5, "H5Dread(/%s rows %lld..%lld) failed", name,
                      (long long)off, (long long)(off + k - 1));
}

/* Reads rows [start, start + n) of a dataset whose rows are `row` elements of mem_type into
 * buf, in slabs of at most ~64 MiB so no single transfer is huge. HDF5 verifies the
 * chunks' Fletcher32 checksums as it reads them (the default transfer list detects
 * errors); a mismatch becomes PFGM_ERR_FORMAT naming the damaged rows (diagnose_read). */
static pfgm_status read_rows(hid_t file, const char *path, const char *name, hid_t mem_type,
                             int rank, int64_t start, int64_t n, int64_t row, size_t elem,
                             void *buf) {
    pfgm_status st = PFGM_OK;
    hid_t dset = -1, fspace = -1;
    hsize_t full[4] = {0, 0, 0, 0};
    PFGM_H5_CHECK_GOTO(dset = H5Dopen2(file, name, H5P_DEFAULT), done);
    PFGM_H5_CHECK_GOTO(fspace = H5Dget_space(dset), done);
    PFGM_H5_CHECK_GOTO(H5Sget_simple_extent_dims(fspace, full, NULL), done);
    const size_t row_bytes = (size_t)row * elem;
    int64_t slab = (int64_t)((64u << 20) / row_bytes);
    if (slab < 1) slab = 1;
    for (int64_t done_rows = 0; done_rows < n; done_rows += slab) {
        int64_t k = n - done_rows < slab ? n - done_rows : slab;
        char *dst = (char *)buf + (size_t)done_rows * row_bytes;
        if (read_slab(dset, mem_type, rank, full, start + done_rows, k, H5P_DEFAULT, dst) < 0) {
            st = diagnose_read(dset, path, name, mem_type, rank, full, start + done_rows, k,
                               row_bytes, dst);
            goto done;
        }
    }
done:
    if (fspace >= 0) H5Sclose(fspace);
    if (dset >= 0) H5Dclose(dset);
    return st;
}

/* Checks the requested geometry against the file. */
static pfgm_status check_request(const pfgm_dataset_options *opt, const pfgm_dataset_info *in) {
    const char *p = opt->path;
    if (in->height != in->width)
        return pfgm_error(PFGM_ERR_FORMAT, "%s: images are %lldx%lld, expected square images",
                          p, (long long)in->height, (long long)in->width);
    if (opt->channels > 0 && in->channels != opt->channels)
        return pfgm_error(PFGM_ERR_CONFIG,
                          "%s: images have %lld channels, data.channels is %lld", p,
                          (long long)in->channels, (long long)opt->channels);
    if (opt->image_size > 0 && in->height < opt->image_size)
        return pfgm_error(PFGM_ERR_CONFIG,
                          "%s: images are %lldx%lld, smaller than data.image_size %lld "
                          "---> HINT: prepare the data at that size (pfgm-prep ... --size %lld)",
                          p, (long long)in->height, (long long)in->width,
                          (long long)opt->image_size, (long long)opt->image_size);
    if (opt->image_size > 0 && in->height > opt->image_size)
        return pfgm_error(PFGM_ERR_CONFIG,
                          "%s: images are %lldx%lld, larger than data.image_size %lld (the "
                          "reader does not resize) ---> HINT: pfgm-prep ... --size %lld",
                          p, (long long)in->height, (long long)in->width,
                          (long long)opt->image_size, (long long)opt->image_size);
    int64_t per_rank = in->count / opt->world_size;
    if (per_rank < opt->batch_size)
        return pfgm_error(PFGM_ERR_CONFIG,
                          "%s: %lld images over %d ranks leave %lld per rank, fewer than "
                          "training.batch_size %lld: no full batch",
                          p, (long long)in->count, opt->world_size, (long long)per_rank,
                          (long long)opt->batch_size);
    if (per_rank > (int64_t)UINT32_MAX)
        return pfgm_error(PFGM_ERR_CONFIG, "%s: %lld images per rank exceeds 2^32 - 1", p,
                          (long long)per_rank);
    return PFGM_OK;
}

pfgm_status pfgm_dataset_open(const pfgm_dataset_options *opt, pfgm_dataset **out) {
    pfgm_status st = PFGM_OK;
    pfgm_dataset *ds = NULL;
    pfgm_dataset_info info;
    hid_t file = -1;
    pfgm_h5_quiet q;
    *out = NULL;
    if (!opt || !opt->path)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "dataset: no path given (data.path)");
    if (opt->world_size < 1 || opt->rank < 0 || opt->rank >= opt->world_size)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "%s: rank %d of world size %d is impossible",
                          opt->path, opt->rank, opt->world_size);
    if (opt->batch_size < 1)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "%s: batch size %lld must be >= 1", opt->path,
                          (long long)opt->batch_size);

    pfgm_h5_quiet_begin(&q);
    PFGM_TRY_GOTO(open_file(opt->path, &file), fail);
    PFGM_TRY_GOTO(validate(file, opt->path, &info), fail);
    PFGM_TRY_GOTO(check_request(opt, &info), fail);

    ds = calloc(1, sizeof *ds);
    if (!ds) {
        st = pfgm_error(PFGM_ERR_NOMEM, "dataset: out of memory");
        goto fail;
    }
    ds->rank = opt->rank;
    ds->world_size = opt->world_size;
    ds->count = info.count;
    ds->per_rank = info.count / opt->world_size;
    ds->L = opt->batch_size;
    ds->steps = ds->per_rank / ds->L;
    ds->C = info.channels;
    ds->H = info.height;
    ds->W = info.width;
    ds->dim = ds->C * ds->H * ds->W;
    ds->seed = opt->seed;
    ds->random_flip = opt->random_flip != 0;
    ds->has_labels = info.has_labels;
    ds->perm_epoch = -1;
    for (int x = 0; x < 256; ++x) ds->to_unit[x] = 2.0f * ((float)x / 255.0f) - 1.0f;

    size_t npix = (size_t)ds->per_rank * (size_t)ds->dim;
    ds->pixels = malloc(npix);
    ds->perm = malloc((size_t)ds->per_rank * sizeof *ds->perm);
    if (ds->has_labels) ds->labels = malloc((size_t)ds->per_rank * sizeof *ds->labels);
    if (!ds->pixels || !ds->perm || (ds->has_labels && !ds->labels)) {
        st = pfgm_error(PFGM_ERR_NOMEM, "%s: cannot allocate the shard (%zu bytes)", opt->path,
                        npix);
        goto fail;
    }
    int64_t start = (int64_t)opt->rank * ds->per_rank;
    PFGM_TRY_GOTO(read_rows(file, opt->path, "images", H5T_NATIVE_UINT8, 4, start, ds->per_rank,
                            ds->dim, 1, ds->pixels), fail);
    if (ds->has_labels)
        PFGM_TRY_GOTO(read_rows(file, opt->path, "labels", H5T_NATIVE_INT32, 1, start,
                                ds->per_rank, 1, sizeof(int32_t), ds->labels), fail);
    H5Fclose(file);
    pfgm_h5_quiet_end(&q);
    /* Files from a pfgm-prep older than the checksums are still read (they hold the user's
     * data), but nothing guards them against a flipped bit: say so once, from rank 0 (every
     * rank opens the same file), after the open has succeeded. */
    if (!info.checksum && opt->log && opt->rank == 0)
        pfgm_log_warn(opt->log,
                      "%s: no checksum on /images%s (written by an older pfgm-prep): a damaged "
                      "byte would go unnoticed ---> HINT: write it again with pfgm-prep",
                      opt->path, ds->has_labels ? " and /labels" : "");
    *out = ds;
    return PFGM_OK;

fail:
    st = pfgm_h5_context(st, opt->path);
    if (file >= 0) H5Fclose(file);
    pfgm_h5_quiet_end(&q);
    pfgm_dataset_close(ds);
    return st;
}

void pfgm_dataset_close(pfgm_dataset *ds) {
    if (!ds) return;
    free(ds->pixels);
    free(ds->labels);
    free(ds->perm);
    free(ds);
}

int64_t pfgm_dataset_count(const pfgm_dataset *ds) { return ds->count; }
int64_t pfgm_dataset_per_rank(const pfgm_dataset *ds) { return ds->per_rank; }
int64_t pfgm_dataset_steps_per_epoch(const pfgm_dataset *ds) { return ds->steps; }

/* ---- batches -------------------------------------------------------------------------- */

pfgm_status pfgm_dataset_next_batch(pfgm_dataset *ds, float *images, int32_t *labels) {
    if (!ds || !images)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "dataset_next_batch: NULL dataset or buffer");
    const int64_t epoch = ds->pos.epoch, index = ds->pos.index;
    if (ds->perm_epoch != epoch) {
        pfgm_permutation(ds->seed, (uint32_t)ds->rank, PFGM_STREAM_DATA_SHUFFLE,
                         (uint64_t)epoch, ds->per_rank, ds->perm);
        ds->perm_epoch = epoch;
    }
    /* One flip word per image of the batch, keyed by the global batch counter so a resumed
     * run draws the same flips. */
    const pfgm_rng flip_rng = {.seed = ds->seed, .rank = (uint32_t)ds->rank,
                               .stream = PFGM_STREAM_DATA_FLIP,
                               .step = (uint64_t)(epoch * ds->steps + index)};
    const int64_t C = ds->C, H = ds->H, W = ds->W, dim = ds->dim;
    for (int64_t k = 0; k < ds->L; ++k) {
        const int64_t src = ds->perm[index * ds->L + k];
        const uint8_t *x = ds->pixels + src * dim;     /* [C, H, W] uint8 */
        float *y = images + k * dim;                   /* [C, H, W] float32 */
        int flip = 0;
        if (ds->random_flip) {
            uint32_t wd;
            pfgm_rng_u32(&flip_rng, (uint64_t)k, 1, &wd);
            flip = (int)(wd >> 31);
        }
        for (int64_t r = 0; r < C * H; ++r) {
            const uint8_t *xr = x + r * W;
            float *yr = y + r * W;
            if (flip)
                for (int64_t w = 0; w < W; ++w) yr[w] = ds->to_unit[xr[W - 1 - w]];
            else
                for (int64_t w = 0; w < W; ++w) yr[w] = ds->to_unit[xr[w]];
        }
        if (labels) labels[k] = ds->has_labels ? ds->labels[src] : -1;
    }
    if (index + 1 < ds->steps) {
        ds->pos.index = index + 1;
    } else {
        ds->pos.epoch = epoch + 1;
        ds->pos.index = 0;
    }
    return PFGM_OK;
}

void pfgm_dataset_get_position(const pfgm_dataset *ds, pfgm_dataset_position *pos) {
    *pos = ds->pos;
}

pfgm_status pfgm_dataset_set_position(pfgm_dataset *ds, const pfgm_dataset_position *pos) {
    if (pos->epoch < 0 || pos->index < 0 || pos->index >= ds->steps)
        return pfgm_error(PFGM_ERR_INVALID_ARG,
                          "dataset position (epoch %lld, index %lld) is outside epochs >= 0, "
                          "index 0..%lld",
                          (long long)pos->epoch, (long long)pos->index, (long long)ds->steps - 1);
    ds->pos = *pos;
    return PFGM_OK;
}

pfgm_dataset_position pfgm_dataset_position_map(pfgm_dataset_position pos, int64_t old_images_per_step,
                                                int64_t new_images_per_step, int64_t new_steps_per_epoch) {
    pfgm_dataset_position p = {pos.epoch, 0};
    if (old_images_per_step > 0 && new_images_per_step > 0 && new_steps_per_epoch > 0 && pos.index > 0) {
        /* images of the epoch consumed: index < 2^32 steps of < 2^31 images (a checked
         * checkpoint and config), so the product fits in 64 bits */
        const uint64_t consumed = (uint64_t)pos.index * (uint64_t)old_images_per_step;
        p.index = (int64_t)(consumed / (uint64_t)new_images_per_step);
        if (p.index >= new_steps_per_epoch) {
            p.epoch += 1;
            p.index = 0;
        }
    }
    return p;
}
