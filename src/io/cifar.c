/* Reader of the CIFAR-10 binary version (Krizhevsky 2009, "cifar-10-batches-bin"): five
 * training batches data_batch_1.bin .. data_batch_5.bin, each a sequence of 3073-byte
 * records: 1 label byte (0..9), then a 3x32x32 image stored as planes R, G, B, row-major,
 * which is already the dataset's [C, H, W] layout. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pfgm/prep.h"

enum { CIFAR_PIXELS = 3 * 32 * 32, CIFAR_RECORD = 1 + CIFAR_PIXELS, CIFAR_BATCHES = 5 };

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
    if (size == 0 || size % CIFAR_RECORD != 0) {
        st = pfgm_error(PFGM_ERR_FORMAT,
                        "%s: truncated or not a CIFAR-10 batch: %lld bytes is not a whole "
                        "number of %d-byte records (a full batch is 10000 records, 30730000 "
                        "bytes)", path, (long long)size, CIFAR_RECORD);
        goto done;
    }
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

pfgm_status pfgm_cifar10_read(const char *dir, int64_t *count, uint8_t **images,
                              int32_t **labels) {
    *count = 0;
    *images = NULL;
    *labels = NULL;
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return pfgm_error(PFGM_ERR_IO, "%s: cannot open CIFAR-10 folder: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return pfgm_error(PFGM_ERR_IO,
                          "%s: not a folder (expected cifar-10-batches-bin/ with "
                          "data_batch_1.bin .. data_batch_5.bin)", dir);
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
