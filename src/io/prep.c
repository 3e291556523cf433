/* The converters behind pfgm-prep (include/pfgm/prep.h): read a raw dataset (IDX, CIFAR-10
 * batches, a folder of PNG and JPEG images), shuffle it once with the prep seed (Philox
 * stream PFGM_STREAM_PREP), keep the first `limit` images, and write one pfgm dataset file
 * through the atomic dataset writer, here in one process or, with a communicator of more
 * than one rank, through prep_parallel.c. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/prep_internal.h"
#include "pfgm/dataset.h"
#include "pfgm/image.h"
#include "pfgm/prep.h"
#include "pfgm/rng.h"
#include "util/check.h"

static pfgm_status check_options(const char *out, const pfgm_prep_options *opt) {
    if (!out || !out[0]) return pfgm_error(PFGM_ERR_INVALID_ARG, "no output file given (--out)");
    if (opt->limit < 0)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "--limit %lld must be >= 0 (0: all)",
                          (long long)opt->limit);
    return PFGM_OK;
}

static int is_parallel(const pfgm_prep_options *opt) {
    return opt->comm && opt->comm->world_size > 1;
}

/* Shuffles the source with the prep seed and writes the first min(limit, n) images. */
static pfgm_status write_shuffled(const prep_source *src, const char *out, const char *source,
                                  const pfgm_prep_options *opt) {
    if (is_parallel(opt)) return prep_write_parallel(src, out, source, opt);
    pfgm_status st = PFGM_OK;
    pfgm_dataset_writer *w = NULL;
    if (src->n > (int64_t)UINT32_MAX)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "%s: %lld images exceed 2^32 - 1", out,
                          (long long)src->n);
    const int64_t m = opt->limit > 0 && opt->limit < src->n ? opt->limit : src->n;
    int64_t *perm = malloc((size_t)src->n * sizeof *perm);
    uint8_t *image = malloc((size_t)(src->C * src->H * src->W));
    if (!perm || !image) {
        st = pfgm_error(PFGM_ERR_NOMEM, "%s: out of memory", out);
        goto done;
    }
    pfgm_permutation(opt->seed, 0, PFGM_STREAM_PREP, 0, src->n, perm);
    PFGM_TRY_GOTO(pfgm_dataset_writer_create(out, m, src->C, src->H, src->W, src->has_labels,
                                             source, opt->seed, &w), done);
    for (int64_t i = 0; i < m; ++i) {
        int32_t label = -1;
        PFGM_TRY_GOTO(src->get(src->ctx, perm[i], image, &label), done);
        PFGM_TRY_GOTO(pfgm_dataset_writer_append(w, image, label), done);
        if (opt->progress && opt->progress(opt->progress_ctx, i + 1, m)) {
            st = pfgm_error(PFGM_STOPPED, "%s: stopped on request after %lld of %lld images; "
                            "nothing written", out, (long long)(i + 1), (long long)m);
            goto done;
        }
    }
    st = pfgm_dataset_writer_commit(w);
    w = NULL; /* commit frees the writer, also on failure */
done:
    pfgm_dataset_writer_abort(w);
    free(perm);
    free(image);
    return st;
}

/* ---- in-memory sources (IDX, CIFAR-10) ---------------------------------------------------- */

typedef struct memory_source {
    const uint8_t *images; /* [n, dim] */
    const int32_t *labels; /* [n] or NULL */
    const uint8_t *labels_u8; /* [n] or NULL */
    int64_t dim;
} memory_source;

static pfgm_status memory_get(void *ctx, int64_t i, uint8_t *image, int32_t *label) {
    const memory_source *m = ctx;
    memcpy(image, m->images + i * m->dim, (size_t)m->dim);
    *label = m->labels ? m->labels[i] : m->labels_u8 ? (int32_t)m->labels_u8[i] : -1;
    return PFGM_OK;
}

/* ---- record-streaming sources (parallel runs: each rank reads only its part) ---------- */

typedef struct idx_stream_source {
    pfgm_idx_stream *im, *lb; /* lb NULL without labels */
    int64_t n, dim;
} idx_stream_source;

static pfgm_status idx_stream_get(void *ctx, int64_t i, uint8_t *image, int32_t *label) {
    idx_stream_source *s = ctx;
    PFGM_TRY(pfgm_idx_stream_read(s->im, i * s->dim, image, s->dim));
    *label = -1;
    if (s->lb) {
        uint8_t l;
        PFGM_TRY(pfgm_idx_stream_read(s->lb, i, &l, 1));
        *label = l;
    }
    return PFGM_OK;
}

/* The rank whose part ends the input checks that both files end where their headers say. */
static pfgm_status idx_stream_finish(void *ctx, int64_t lo, int64_t hi) {
    idx_stream_source *s = ctx;
    (void)lo;
    if (hi != s->n) return PFGM_OK;
    PFGM_TRY(pfgm_idx_stream_check_end(s->im));
    return s->lb ? pfgm_idx_stream_check_end(s->lb) : PFGM_OK;
}

static pfgm_status prep_idx_parallel(const char *images_path, const char *labels_path,
                                     const char *out, const char *source,
                                     const pfgm_prep_options *opt) {
    idx_stream_source ss = {0};
    pfgm_idx hi = {0}, hl = {0};
    pfgm_status st = pfgm_idx_stream_open(images_path, PFGM_IDX_MAGIC_IMAGES, &hi, &ss.im);
    if (st == PFGM_OK && labels_path) {
        st = pfgm_idx_stream_open(labels_path, PFGM_IDX_MAGIC_LABELS, &hl, &ss.lb);
        if (st == PFGM_OK && hl.dims[0] != hi.dims[0])
            st = pfgm_error(PFGM_ERR_FORMAT, "%s: %lld labels for the %lld images of %s",
                            labels_path, (long long)hl.dims[0], (long long)hi.dims[0],
                            images_path);
    }
    if ((st = prep_agree(opt->comm, st)) == PFGM_OK) {
        ss.n = hi.dims[0];
        ss.dim = hi.dims[1] * hi.dims[2];
        prep_source src = {.n = ss.n, .C = 1, .H = hi.dims[1], .W = hi.dims[2],
                           .has_labels = labels_path != NULL, .get = idx_stream_get,
                           .finish = idx_stream_finish, .ctx = &ss};
        st = write_shuffled(&src, out, source, opt);
    }
    pfgm_idx_stream_close(ss.im);
    pfgm_idx_stream_close(ss.lb);
    return st;
}

static pfgm_status cifar_record_get(void *ctx, int64_t i, uint8_t *image, int32_t *label) {
    return pfgm_cifar10_record(ctx, i, image, label);
}

pfgm_status pfgm_prep_idx(const char *images_path, const char *labels_path, const char *out,
                          const pfgm_prep_options *opt) {
    pfgm_status st;
    pfgm_idx im = {0}, lb = {0};
    PFGM_TRY(check_options(out, opt));
    if (!images_path) return pfgm_error(PFGM_ERR_INVALID_ARG, "no IDX images file given (--images)");
    if (is_parallel(opt)) {
        char source[1024];
        snprintf(source, sizeof source, "idx: images %s%s%s", images_path,
                 labels_path ? ", labels " : "", labels_path ? labels_path : "");
        return prep_idx_parallel(images_path, labels_path, out, source, opt);
    }
    PFGM_TRY_GOTO(pfgm_idx_read(images_path, PFGM_IDX_MAGIC_IMAGES, &im), done);
    if (labels_path) {
        PFGM_TRY_GOTO(pfgm_idx_read(labels_path, PFGM_IDX_MAGIC_LABELS, &lb), done);
        if (lb.dims[0] != im.dims[0]) {
            st = pfgm_error(PFGM_ERR_FORMAT, "%s: %lld labels for the %lld images of %s",
                            labels_path, (long long)lb.dims[0], (long long)im.dims[0],
                            images_path);
            goto done;
        }
    }
    memory_source ms = {.images = im.data, .labels_u8 = labels_path ? lb.data : NULL,
                        .dim = im.dims[1] * im.dims[2]};
    prep_source src = {.n = im.dims[0], .C = 1, .H = im.dims[1], .W = im.dims[2],
                       .has_labels = labels_path != NULL, .get = memory_get, .ctx = &ms};
    char source[1024];
    snprintf(source, sizeof source, "idx: images %s%s%s", images_path,
             labels_path ? ", labels " : "", labels_path ? labels_path : "");
    st = write_shuffled(&src, out, source, opt);
done:
    pfgm_idx_free(&im);
    pfgm_idx_free(&lb);
    return st;
}

pfgm_status pfgm_prep_cifar10(const char *dir, const char *out, const pfgm_prep_options *opt) {
    int64_t n = 0;
    uint8_t *images = NULL;
    int32_t *labels = NULL;
    PFGM_TRY(check_options(out, opt));
    if (!dir) return pfgm_error(PFGM_ERR_INVALID_ARG, "no CIFAR-10 folder given (--input)");
    if (is_parallel(opt)) {
        pfgm_cifar10_files *files = NULL;
        pfgm_status st = prep_agree(opt->comm, pfgm_cifar10_open(dir, &files, &n));
        if (st == PFGM_OK) {
            prep_source src = {.n = n, .C = 3, .H = 32, .W = 32, .has_labels = 1,
                               .get = cifar_record_get, .ctx = files};
            char source[1024];
            snprintf(source, sizeof source, "cifar10: %s/data_batch_{1..5}.bin", dir);
            st = write_shuffled(&src, out, source, opt);
        }
        pfgm_cifar10_close(files);
        return st;
    }
    PFGM_TRY(pfgm_cifar10_read(dir, &n, &images, &labels));
    memory_source ms = {.images = images, .labels = labels, .dim = 3 * 32 * 32};
    prep_source src = {.n = n, .C = 3, .H = 32, .W = 32, .has_labels = 1, .get = memory_get,
                       .ctx = &ms};
    char source[1024];
    snprintf(source, sizeof source, "cifar10: %s/data_batch_{1..5}.bin", dir);
    pfgm_status st = write_shuffled(&src, out, source, opt);
    free(images);
    free(labels);
    return st;
}

/* ---- folder of PNG and JPEG images --------------------------------------------------- */

typedef struct folder_source {
    char **files;   /* [n] full paths, sorted by name */
    int64_t n;
    int64_t size, crop;
    int channels;
    pfgm_prep_pipeline pipeline;
    pfgm_prep_resize resize;
} folder_source;

static void folder_free(folder_source *fs) {
    for (int64_t i = 0; i < fs->n; ++i) free(fs->files[i]);
    free(fs->files);
    fs->files = NULL;
    fs->n = 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists the folder's regular files (no dotfiles), sorted by name. */
static pfgm_status folder_list(const char *dir, folder_source *fs) {
    pfgm_status st = PFGM_OK;
    DIR *d = opendir(dir);
    if (!d) return pfgm_error(PFGM_ERR_IO, "%s: cannot open folder: %s", dir, strerror(errno));
    int64_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        char *p = malloc(len);
        if (!p) {
            st = pfgm_error(PFGM_ERR_NOMEM, "%s: out of memory", dir);
            goto done;
        }
        snprintf(p, len, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (stat(p, &sb) != 0 || !S_ISREG(sb.st_mode)) {
            free(p); /* subfolders and special files are not images */
            continue;
        }
        if (fs->n == cap) {
            cap = cap ? cap * 2 : 1024;
            char **nf = realloc(fs->files, (size_t)cap * sizeof *nf);
            if (!nf) {
                free(p);
                st = pfgm_error(PFGM_ERR_NOMEM, "%s: out of memory", dir);
                goto done;
            }
            fs->files = nf;
        }
        fs->files[fs->n++] = p;
    }
    if (fs->n == 0) {
        st = pfgm_error(PFGM_ERR_FORMAT, "%s: empty folder: no image files in it", dir);
        goto done;
    }
    qsort(fs->files, (size_t)fs->n, sizeof *fs->files, cmp_str);
done:
    closedir(d);
    if (st != PFGM_OK) folder_free(fs);
    return st;
}

/* Checks the signatures of files [lo, hi) (a bad file fails before anything is decoded)
 * and counts PNGs (counts[0]) and JPEGs (counts[1]). */
static pfgm_status folder_sniff(const folder_source *fs, int64_t lo, int64_t hi, int64_t counts[2]) {
    counts[0] = counts[1] = 0;
    for (int64_t i = lo; i < hi; ++i) {
        pfgm_image_kind k;
        PFGM_TRY(pfgm_image_sniff(fs->files[i], &k));
        counts[k == PFGM_IMAGE_JPEG]++;
    }
    return PFGM_OK;
}

/* FNV-1a over the sorted names (with their terminating NULs): ranks compare it to know
 * they listed the same files in the same order. */
static uint64_t folder_hash(const folder_source *fs) {
    uint64_t h = 1469598103934665603ull;
    for (int64_t i = 0; i < fs->n; ++i)
        for (const unsigned char *c = (const unsigned char *)fs->files[i];; ++c) {
            h = (h ^ *c) * 1099511628211ull;
            if (!*c) break;
        }
    return h;
}

static pfgm_status folder_get(void *ctx, int64_t i, uint8_t *image, int32_t *label) {
    const folder_source *fs = ctx;
    const char *path = fs->files[i];
    pfgm_image img;
    *label = -1;
    /* the LSUN pipeline decodes JPEGs as the authors' tensorflow_datasets input did */
    PFGM_TRY(pfgm_image_read_idct(path, fs->channels,
                                  fs->pipeline == PFGM_PREP_LSUN ? PFGM_JPEG_IDCT_FAST
                                                                 : PFGM_JPEG_IDCT_ACCURATE,
                                  &img));
    const int64_t side = img.width < img.height ? img.width : img.height;
    const int64_t crop = fs->crop > 0 ? fs->crop : side;
    pfgm_status st = PFGM_OK;
    if (fs->pipeline == PFGM_PREP_LSUN) {
        if (side < fs->size)
            st = pfgm_error(PFGM_ERR_FORMAT,
                            "%s: image is %lldx%lld, its short side is smaller than --size %lld "
                            "(pfgm-prep does not upsample)",
                            path, (long long)img.width, (long long)img.height, (long long)fs->size);
        else
            st = pfgm_image_lsun(img.pixels, img.width, img.height, img.channels, fs->size, image);
    } else if (crop > side)
        st = pfgm_error(PFGM_ERR_FORMAT, "%s: image is %lldx%lld, smaller than --crop %lld",
                        path, (long long)img.width, (long long)img.height, (long long)crop);
    else if (crop < fs->size)
        st = pfgm_error(PFGM_ERR_FORMAT,
                        "%s: image is %lldx%lld, its %lldx%lld crop is smaller than --size %lld "
                        "(pfgm-prep does not upsample)",
                        path, (long long)img.width, (long long)img.height, (long long)crop,
                        (long long)crop, (long long)fs->size);
    else if (fs->resize == PFGM_PREP_BICUBIC)
        st = pfgm_image_crop_resize_bicubic(img.pixels, img.width, img.height, img.channels, crop,
                                            fs->size, image);
    else
        st = pfgm_image_crop_resize(img.pixels, img.width, img.height, img.channels, crop,
                                    fs->size, image);
    pfgm_image_free(&img);
    return st;
}

/* Lists and checks the folder. Parallel: every rank lists it and they compare what they
 * saw, and each checks the signatures of its own part; the counts are summed. */
static pfgm_status folder_prepare(const char *dir, folder_source *fs, const pfgm_prep_options *opt,
                                  int64_t counts[2]) {
    if (!is_parallel(opt)) {
        PFGM_TRY(folder_list(dir, fs));
        pfgm_status st = folder_sniff(fs, 0, fs->n, counts);
        if (st != PFGM_OK) folder_free(fs);
        return st;
    }
    pfgm_comm *c = opt->comm;
    pfgm_status st = prep_agree(c, folder_list(dir, fs));
    if (st != PFGM_OK) return st;
    uint64_t mine[2] = {(uint64_t)fs->n, folder_hash(fs)}, lo[2], hi[2];
    memcpy(lo, mine, sizeof lo);
    memcpy(hi, mine, sizeof hi);
    if ((st = c->allreduce(c, lo, 2, PFGM_U64, PFGM_REDUCE_MIN)) != PFGM_OK ||
        (st = c->allreduce(c, hi, 2, PFGM_U64, PFGM_REDUCE_MAX)) != PFGM_OK)
        goto fail;
    if (lo[0] != hi[0] || lo[1] != hi[1]) {
        st = pfgm_error(PFGM_ERR_IO,
                        "%s: the ranks list different files (%llu to %llu files): the folder "
                        "changed while pfgm-prep read it, or is not the same on every node",
                        dir, (unsigned long long)lo[0], (unsigned long long)hi[0]);
        goto fail;
    }
    st = folder_sniff(fs, prep_part_start(fs->n, c->rank, c->world_size),
                      prep_part_start(fs->n, c->rank + 1, c->world_size), counts);
    if ((st = prep_agree(c, st)) != PFGM_OK) goto fail;
    if ((st = c->allreduce(c, counts, 2, PFGM_I64, PFGM_REDUCE_SUM)) != PFGM_OK) goto fail;
    return PFGM_OK;
fail:
    folder_free(fs);
    return st;
}

pfgm_status pfgm_prep_folder(const char *dir, int64_t size, int64_t crop, int channels,
                             const char *out, const pfgm_prep_options *opt) {
    PFGM_TRY(check_options(out, opt));
    if (!dir) return pfgm_error(PFGM_ERR_INVALID_ARG, "no image folder given (--input)");
    if (size < 1) return pfgm_error(PFGM_ERR_INVALID_ARG, "--size %lld must be >= 1", (long long)size);
    if (channels != 1 && channels != 3)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "--channels %d must be 1 or 3", channels);
    if (opt->pipeline == PFGM_PREP_LSUN && crop > 0)
        return pfgm_error(PFGM_ERR_INVALID_ARG,
                          "--crop %lld with --pipeline lsun: the LSUN pipeline crops by itself",
                          (long long)crop);
    folder_source fs = {.size = size, .crop = crop, .channels = channels,
                        .pipeline = opt->pipeline, .resize = opt->resize};
    int64_t counts[2];
    PFGM_TRY(folder_prepare(dir, &fs, opt, counts));
    prep_source src = {.n = fs.n, .C = channels, .H = size, .W = size, .has_labels = 0,
                       .get = folder_get, .ctx = &fs};
    char source[1024], how[200], cropdesc[32];
    if (crop > 0)
        snprintf(cropdesc, sizeof cropdesc, "%lld", (long long)crop);
    else
        snprintf(cropdesc, sizeof cropdesc, "largest square");
    if (opt->pipeline == PFGM_PREP_LSUN)
        snprintf(how, sizeof how, "the authors' LSUN pipeline to %lldx%lld (JPEG fast IDCT as "
                 "TensorFlow; %s)", (long long)size,
                 (long long)size,
                 size == 128 ? "resize_small antialiased bilinear + central_crop"
                             : "central square + antialiased bicubic, truncated");
    else
        snprintf(how, sizeof how, "center crop %s, resize to %lldx%lld (%s)", cropdesc,
                 (long long)size, (long long)size,
                 opt->resize == PFGM_PREP_BICUBIC ? "antialiased bicubic, TensorFlow's"
                                                  : "antialiased bilinear");
    snprintf(source, sizeof source, "folder: %s (%lld PNG, %lld JPEG files), %s, %d channel(s)",
             dir, (long long)counts[0], (long long)counts[1], how, channels);
    pfgm_status st = write_shuffled(&src, out, source, opt);
    folder_free(&fs);
    return st;
}
