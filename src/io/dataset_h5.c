/* The dataset file side of the streaming reader (include/pfgm/dataset.h,
 * docs/data-format.md): validates a pfgm dataset file, opens it for the reader, reads one
 * block of rows of /images (and /labels) by hyperslab, and diagnoses a failed read so a
 * damaged file is reported as such, with the images of the damaged chunk (HDF5 checks the
 * writer's Fletcher32 chunk checksums on every read). Also the Fisher-Yates permutation
 * shared with pfgm-prep, probing a file's facts, and mapping a saved position to another
 * world size. The epoch order, the cache and the prefetch thread are in dataset_stream.c;
 * the writer is in dataset_h5_write.c. */
#include <errno.h>
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/dataset_internal.h"
#include "io/h5util.h"
#include "pfgm/dataset.h"
#include "pfgm/rng.h"
#include "util/check.h"

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

/* Reads rows [start, start + n) of dataset `dset` (rank 1 or 4; rows of `row_bytes`) into
 * buf with the default transfer list, which verifies the chunks' Fletcher32 checksums; a
 * failure is diagnosed (diagnose_read). Caller holds the HDF5 lock. */
static pfgm_status read_rows(hid_t dset, const char *path, const char *name, hid_t mem_type,
                             int rank, int64_t start, int64_t n, size_t row_bytes, void *buf) {
    pfgm_status st = PFGM_OK;
    hid_t fspace = -1;
    hsize_t full[4] = {0, 0, 0, 0};
    PFGM_H5_CHECK_GOTO(fspace = H5Dget_space(dset), done);
    PFGM_H5_CHECK_GOTO(H5Sget_simple_extent_dims(fspace, full, NULL), done);
    if (read_slab(dset, mem_type, rank, full, start, n, H5P_DEFAULT, buf) < 0)
        st = diagnose_read(dset, path, name, mem_type, rank, full, start, n, row_bytes, buf);
done:
    if (fspace >= 0) H5Sclose(fspace);
    return st;
}

pfgm_status pfgm_dataset_read_block(pfgm_dataset *ds, int64_t b, uint8_t *pixels, int32_t *labels) {
    const int64_t start = b * ds->B;
    const int64_t n = start + ds->B <= ds->count ? ds->B : ds->count - start;
    pfgm_h5_quiet q;
    pfgm_h5_quiet_begin(&q);
    pfgm_status st = read_rows(ds->images, ds->path, "images", H5T_NATIVE_UINT8, 4, start, n,
                               (size_t)ds->dim, pixels);
    if (st == PFGM_OK && ds->has_labels && labels)
        st = read_rows(ds->labels, ds->path, "labels", H5T_NATIVE_INT32, 1, start, n,
                       sizeof(int32_t), labels);
    st = pfgm_h5_context(st, ds->path);
    pfgm_h5_quiet_end(&q);
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
    return PFGM_OK;
}

/* Rows of one HDF5 chunk of /images, or 256 when it is not chunked (the block size when
 * data.block_images is 0: a block is then exactly the unit HDF5 reads and checksums). */
static int64_t chunk_rows(hid_t dset) {
    int64_t rows = 256;
    hid_t dcpl = H5Dget_create_plist(dset);
    hsize_t cd[4] = {0};
    if (dcpl >= 0 && H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_chunk(dcpl, 4, cd) == 4 &&
        cd[0] >= 1)
        rows = (int64_t)cd[0];
    if (dcpl >= 0) H5Pclose(dcpl);
    return rows;
}

/* Sets the block geometry and checks that the cache holds what the shuffle window needs. */
static pfgm_status plan_blocks(pfgm_dataset *ds, const pfgm_dataset_options *opt) {
    ds->B = opt->block_images > 0 ? opt->block_images : chunk_rows(ds->images);
    if (ds->B > ds->count) ds->B = ds->count;
    ds->nblocks = (ds->count + ds->B - 1) / ds->B;
    ds->K = opt->shuffle_window > 0 ? opt->shuffle_window : PFGM_DATASET_DEFAULT_WINDOW;
    if (ds->K > ds->nblocks) ds->K = ds->nblocks; /* a window never needs more than the file */
    ds->Q = ds->K * ds->B;
    ds->nwindows = (ds->per_rank + ds->Q - 1) / ds->Q;
    if (ds->nblocks > (int64_t)UINT32_MAX || ds->Q > (int64_t)UINT32_MAX)
        return pfgm_error(PFGM_ERR_CONFIG, "%s: %lld blocks of %lld images, windows of %lld "
                          "images: permutations are limited to 2^32 - 1 elements",
                          opt->path, (long long)ds->nblocks, (long long)ds->B, (long long)ds->Q);
    const int64_t cache = opt->cache_bytes > 0 ? opt->cache_bytes
                                               : (int64_t)PFGM_DATASET_DEFAULT_CACHE_MB << 20;
    const int64_t block_bytes = ds->B * (ds->dim + (ds->has_labels ? 4 : 0));
    const int64_t fit = cache / block_bytes;
    const int64_t need = ds->K + 2 < ds->nblocks ? ds->K + 2 : ds->nblocks;
    if (fit < need)
        return pfgm_error(PFGM_ERR_CONFIG,
                          "%s: data.cache_mb %.4g MiB holds %lld blocks of %lld images (%lld bytes "
                          "each); data.shuffle_window %lld needs %lld ---> HINT: raise "
                          "data.cache_mb to %lld or lower data.shuffle_window (or "
                          "data.block_images)",
                          opt->path, (double)cache / 1048576.0, (long long)fit, (long long)ds->B,
                          (long long)block_bytes, (long long)ds->K, (long long)need,
                          (long long)((need * block_bytes + 1048575) >> 20));
    ds->nslots = fit < ds->nblocks ? fit : ds->nblocks;
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
    if (strlen(opt->path) >= sizeof ds->path)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "%s: path too long", opt->path);

    ds = calloc(1, sizeof *ds);
    if (!ds) return pfgm_error(PFGM_ERR_NOMEM, "dataset: out of memory");
    ds->file = ds->images = ds->labels = -1;
    pfgm_h5_quiet_begin(&q);
    PFGM_TRY_GOTO(open_file(opt->path, &file), fail);
    ds->file = file;
    PFGM_TRY_GOTO(validate(file, opt->path, &info), fail);
    PFGM_TRY_GOTO(check_request(opt, &info), fail);
    PFGM_H5_CHECK_GOTO(ds->images = H5Dopen2(file, "images", H5P_DEFAULT), fail);
    if (info.has_labels) PFGM_H5_CHECK_GOTO(ds->labels = H5Dopen2(file, "labels", H5P_DEFAULT), fail);

    snprintf(ds->path, sizeof ds->path, "%s", opt->path);
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
    ds->prefetch = !opt->no_prefetch;
    for (int x = 0; x < 256; ++x) ds->to_unit[x] = 2.0f * ((float)x / 255.0f) - 1.0f;
    PFGM_TRY_GOTO(plan_blocks(ds, opt), fail);
    pfgm_h5_quiet_end(&q);

    st = pfgm_dataset_stream_start(ds);
    if (st != PFGM_OK) {
        pfgm_dataset_close(ds);
        return st;
    }
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
    pfgm_h5_quiet_end(&q);
    pfgm_dataset_close(ds);
    return st;
}

void pfgm_dataset_close(pfgm_dataset *ds) {
    if (!ds) return;
    pfgm_dataset_stream_stop(ds);
    pfgm_h5_lock();
    if (ds->labels >= 0) H5Dclose(ds->labels);
    if (ds->images >= 0) H5Dclose(ds->images);
    if (ds->file >= 0) H5Fclose(ds->file);
    pfgm_h5_unlock();
    free(ds);
}

int64_t pfgm_dataset_count(const pfgm_dataset *ds) { return ds->count; }
int64_t pfgm_dataset_per_rank(const pfgm_dataset *ds) { return ds->per_rank; }
int64_t pfgm_dataset_steps_per_epoch(const pfgm_dataset *ds) { return ds->steps; }

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
