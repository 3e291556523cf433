/* The converters behind pfgm-prep (include/pfgm/prep.h): read a raw dataset (IDX, CIFAR-10
 * batches, a folder of PNGs), shuffle it once with the prep seed (Philox stream
 * PFGM_STREAM_PREP), keep the first `limit` images, and write one pfgm dataset file through
 * the atomic dataset writer. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <png.h>

#include "pfgm/dataset.h"
#include "pfgm/image.h"
#include "pfgm/prep.h"
#include "pfgm/rng.h"
#include "util/check.h"

/* Where the images come from: n images of [C, H, W], fetched by source index. */
typedef struct prep_source {
    int64_t n, C, H, W;
    int has_labels;
    /* Writes image i ([C, H, W] uint8) and its label. */
    pfgm_status (*get)(void *ctx, int64_t i, uint8_t *image, int32_t *label);
    void *ctx;
} prep_source;

static pfgm_status check_options(const char *out, const pfgm_prep_options *opt) {
    if (!out || !out[0]) return pfgm_error(PFGM_ERR_INVALID_ARG, "no output file given (--out)");
    if (opt->limit < 0)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "--limit %lld must be >= 0 (0: all)",
                          (long long)opt->limit);
    return PFGM_OK;
}

/* Shuffles the source with the prep seed and writes the first min(limit, n) images. */
static pfgm_status write_shuffled(const prep_source *src, const char *out, const char *source,
                                  const pfgm_prep_options *opt) {
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

pfgm_status pfgm_prep_idx(const char *images_path, const char *labels_path, const char *out,
                          const pfgm_prep_options *opt) {
    pfgm_status st;
    pfgm_idx im = {0}, lb = {0};
    PFGM_TRY(check_options(out, opt));
    if (!images_path) return pfgm_error(PFGM_ERR_INVALID_ARG, "no IDX images file given (--images)");
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

/* ---- folder of PNG images -------------------------------------------------------------- */

typedef struct folder_source {
    char **files;   /* [n] full paths, sorted by name */
    int64_t n;
    int64_t size, crop;
    int channels;
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

/* Checks the 8-byte PNG signature of one file. */
static pfgm_status check_png_signature(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return pfgm_error(PFGM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char sig[8];
    size_t n = fread(sig, 1, sizeof sig, f);
    fclose(f);
    if (n < sizeof sig || png_sig_cmp(sig, 0, sizeof sig) != 0)
        return pfgm_error(PFGM_ERR_FORMAT,
                          "%s: not a PNG file (bad signature); the folder must hold only PNG "
                          "images", path);
    return PFGM_OK;
}

/* Lists the folder's regular files (no dotfiles), sorted, each checked to be a PNG. */
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
    for (int64_t i = 0; i < fs->n; ++i) PFGM_TRY_GOTO(check_png_signature(fs->files[i]), done);
done:
    closedir(d);
    if (st != PFGM_OK) folder_free(fs);
    return st;
}

static pfgm_status folder_get(void *ctx, int64_t i, uint8_t *image, int32_t *label) {
    const folder_source *fs = ctx;
    const char *path = fs->files[i];
    pfgm_image img;
    PFGM_TRY(pfgm_png_read(path, fs->channels, &img));
    const int64_t side = img.width < img.height ? img.width : img.height;
    const int64_t crop = fs->crop > 0 ? fs->crop : side;
    pfgm_status st = PFGM_OK;
    if (crop > side)
        st = pfgm_error(PFGM_ERR_FORMAT, "%s: image is %lldx%lld, smaller than --crop %lld",
                        path, (long long)img.width, (long long)img.height, (long long)crop);
    else if (crop < fs->size)
        st = pfgm_error(PFGM_ERR_FORMAT,
                        "%s: image is %lldx%lld, its %lldx%lld crop is smaller than --size %lld "
                        "(pfgm-prep does not upsample)",
                        path, (long long)img.width, (long long)img.height, (long long)crop,
                        (long long)crop, (long long)fs->size);
    else
        st = pfgm_image_crop_resize(img.pixels, img.width, img.height, img.channels, crop,
                                    fs->size, image);
    pfgm_image_free(&img);
    *label = -1;
    return st;
}

pfgm_status pfgm_prep_folder(const char *dir, int64_t size, int64_t crop, int channels,
                             const char *out, const pfgm_prep_options *opt) {
    PFGM_TRY(check_options(out, opt));
    if (!dir) return pfgm_error(PFGM_ERR_INVALID_ARG, "no image folder given (--input)");
    if (size < 1) return pfgm_error(PFGM_ERR_INVALID_ARG, "--size %lld must be >= 1", (long long)size);
    if (channels != 1 && channels != 3)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "--channels %d must be 1 or 3", channels);
    folder_source fs = {.size = size, .crop = crop, .channels = channels};
    PFGM_TRY(folder_list(dir, &fs));
    prep_source src = {.n = fs.n, .C = channels, .H = size, .W = size, .has_labels = 0,
                       .get = folder_get, .ctx = &fs};
    char source[1024];
    char cropdesc[32];
    if (crop > 0)
        snprintf(cropdesc, sizeof cropdesc, "%lld", (long long)crop);
    else
        snprintf(cropdesc, sizeof cropdesc, "largest square");
    snprintf(source, sizeof source,
             "folder: %s (%lld PNG files), center crop %s, resize to %lldx%lld (antialiased "
             "bilinear), %d channel(s)",
             dir, (long long)fs.n, cropdesc, (long long)size, (long long)size, channels);
    pfgm_status st = write_shuffled(&src, out, source, opt);
    folder_free(&fs);
    return st;
}
