/* Reader of the CIFAR-10 binary version (Krizhevsky 2009, "cifar-10-batches-bin"): five
 * training batches data_batch_1.bin .. data_batch_5.bin, each a sequence of 3073-byte
 * records: 1 label byte (0..9), then a 3x32x32 image stored as planes R, G, B, row-major,
 * which is already the dataset's [C, H, W] layout. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include "pfgm/prep.h"
#include "util/check.h"

enum { CIFAR_PIXELS = 3 * 32 * 32, CIFAR_RECORD = 1 + CIFAR_PIXELS, CIFAR_BATCHES = 5 };

/* The size check every reader applies to a batch of `size` bytes. */
static pfgm_status check_batch_size(const char *path, int64_t size) {
    if (size == 0 || size % CIFAR_RECORD != 0)
        return pfgm_error(PFGM_ERR_FORMAT,
                          "%s: truncated or not a CIFAR-10 batch: %lld bytes is not a whole "
                          "number of %d-byte records (a full batch is 10000 records, 30730000 "
                          "bytes)", path, (long long)size, CIFAR_RECORD);
    return PFGM_OK;
}

/* Reads one batch file, appending its records to the growing arrays. */
static pfgm_status read_batch(const char *path, int64_t *count, uint8_t **images,
                              int32_t **labels) {
    pfgm_status st = PFGM_OK;
    FILE *f = fopen(path, "rb");
    if (!f) return pfgm_error(PFGM_ERR_IO, "%s: cannot open CIFAR-10 batch: %s", path,
                              strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) {
        st = pfgm_error(PFGM_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto done;
    }
    const int64_t size = (int64_t)sb.st_size;
    if ((st = check_batch_size(path, size)) != PFGM_OK) goto done;
    const int64_t n = size / CIFAR_RECORD, total = *count + n;
    uint8_t *im = realloc(*images, (size_t)total * CIFAR_PIXELS);
    if (im) *images = im;
    int32_t *lb = realloc(*labels, (size_t)total * sizeof *lb);
    if (lb) *labels = lb;
    if (!im || !lb) {
        st = pfgm_error(PFGM_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    uint8_t rec[CIFAR_RECORD];
    for (int64_t i = 0; i < n; ++i) {
        if (fread(rec, 1, CIFAR_RECORD, f) != CIFAR_RECORD) {
            st = pfgm_error(PFGM_ERR_IO, "%s: read failed at record %lld: %s", path,
                            (long long)i, ferror(f) ? strerror(errno) : "unexpected end of file");
            goto done;
        }
        if (rec[0] > 9) {
            st = pfgm_error(PFGM_ERR_FORMAT,
                            "%s: record %lld has label %u, expected 0..9 (not a CIFAR-10 batch?)",
                            path, (long long)i, rec[0]);
            goto done;
        }
        lb[*count + i] = rec[0];
        memcpy(im + (size_t)(*count + i) * CIFAR_PIXELS, rec + 1, CIFAR_PIXELS);
    }
    *count = total;
done:
    fclose(f);
    return st;
}

static pfgm_status check_dir(const char *dir) {
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return pfgm_error(PFGM_ERR_IO, "%s: cannot open CIFAR-10 folder: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return pfgm_error(PFGM_ERR_IO,
                          "%s: not a folder (expected cifar-10-batches-bin/ with "
                          "data_batch_1.bin .. data_batch_5.bin)", dir);
    return PFGM_OK;
}

pfgm_status pfgm_cifar10_read(const char *dir, int64_t *count, uint8_t **images,
                              int32_t **labels) {
    *count = 0;
    *images = NULL;
    *labels = NULL;
    PFGM_TRY(check_dir(dir));
    for (int b = 1; b <= CIFAR_BATCHES; ++b) {
        char path[4096];
        if ((size_t)snprintf(path, sizeof path, "%s/data_batch_%d.bin", dir, b) >= sizeof path)
            return pfgm_error(PFGM_ERR_INVALID_ARG, "%s: path too long", dir);
        pfgm_status st = read_batch(path, count, images, labels);
        if (st != PFGM_OK) {
            free(*images);
            free(*labels);
            *images = NULL;
            *labels = NULL;
            *count = 0;
            return st;
        }
    }
    return PFGM_OK;
}

/* ---- record access (parallel pfgm-prep) --------------------------------------------------- */

struct pfgm_cifar10_files {
    char path[CIFAR_BATCHES][4096];
    int fd[CIFAR_BATCHES];
    int64_t start[CIFAR_BATCHES + 1]; /* first record of each batch; start[5] = count */
};

void pfgm_cifar10_close(pfgm_cifar10_files *f) {
    if (!f) return;
    for (int b = 0; b < CIFAR_BATCHES; ++b)
        if (f->fd[b] >= 0) close(f->fd[b]);
    free(f);
}

pfgm_status pfgm_cifar10_open(const char *dir, pfgm_cifar10_files **out, int64_t *count) {
    *out = NULL;
    PFGM_TRY(check_dir(dir));
    pfgm_cifar10_files *f = calloc(1, sizeof *f);
    if (!f) return pfgm_error(PFGM_ERR_NOMEM, "%s: out of memory", dir);
    for (int b = 0; b < CIFAR_BATCHES; ++b) f->fd[b] = -1;
    pfgm_status st = PFGM_OK;
    for (int b = 0; b < CIFAR_BATCHES; ++b) {
        if ((size_t)snprintf(f->path[b], sizeof f->path[b], "%s/data_batch_%d.bin", dir, b + 1) >=
            sizeof f->path[b]) {
            st = pfgm_error(PFGM_ERR_INVALID_ARG, "%s: path too long", dir);
            break;
        }
        f->fd[b] = open(f->path[b], O_RDONLY);
        struct stat sb;
        if (f->fd[b] < 0 || fstat(f->fd[b], &sb) != 0) {
            st = pfgm_error(PFGM_ERR_IO, "%s: cannot open CIFAR-10 batch: %s", f->path[b],
                            strerror(errno));
            break;
        }
        if ((st = check_batch_size(f->path[b], (int64_t)sb.st_size)) != PFGM_OK) break;
        f->start[b + 1] = f->start[b] + (int64_t)sb.st_size / CIFAR_RECORD;
    }
    if (st != PFGM_OK) {
        pfgm_cifar10_close(f);
        return st;
    }
    *out = f;
    *count = f->start[CIFAR_BATCHES];
    return PFGM_OK;
}

pfgm_status pfgm_cifar10_record(const pfgm_cifar10_files *f, int64_t i, uint8_t *image,
                                int32_t *label) {
    int b = 0;
    while (b < CIFAR_BATCHES && i >= f->start[b + 1]) ++b;
    if (i < 0 || b == CIFAR_BATCHES)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "CIFAR-10 record %lld out of range", (long long)i);
    const int64_t k = i - f->start[b];
    uint8_t rec[CIFAR_RECORD];
    size_t got = 0;
    while (got < CIFAR_RECORD) {
        ssize_t r = pread(f->fd[b], rec + got, CIFAR_RECORD - got,
                          (off_t)(k * CIFAR_RECORD + (int64_t)got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0)
            return pfgm_error(PFGM_ERR_IO, "%s: read failed at record %lld: %s", f->path[b],
                              (long long)k, r < 0 ? strerror(errno) : "unexpected end of file");
        got += (size_t)r;
    }
    if (rec[0] > 9)
        return pfgm_error(PFGM_ERR_FORMAT,
                          "%s: record %lld has label %u, expected 0..9 (not a CIFAR-10 batch?)",
                          f->path[b], (long long)k, rec[0]);
    *label = rec[0];
    memcpy(image, rec + 1, CIFAR_PIXELS);
    return PFGM_OK;
}
