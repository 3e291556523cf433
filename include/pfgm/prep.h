/* Dataset preparation (the library behind pfgm-prep, docs/data-format.md): readers for the
 * raw formats the paper's datasets come in (MNIST/Fashion-MNIST IDX, CIFAR-10 binary
 * batches, folders of PNG and JPEG images) and the converters that shuffle them once with a
 * seed and write one pfgm dataset file (include/pfgm/dataset.h), in one process or split
 * over the ranks of an MPI job. */
#ifndef PFGM_PREP_H
#define PFGM_PREP_H

#include <stddef.h>
#include <stdint.h>

#include "pfgm/comm.h"
#include "pfgm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- raw readers ------------------------------------------------------------------------- */

#define PFGM_IDX_MAGIC_IMAGES 0x00000803u /* unsigned bytes, 3 dims [N, H, W] */
#define PFGM_IDX_MAGIC_LABELS 0x00000801u /* unsigned bytes, 1 dim [N] */

/* An IDX file (LeCun's MNIST format, also Fashion-MNIST): unsigned-byte data of `ndim` dims. */
typedef struct pfgm_idx {
    int ndim;
    int64_t dims[3];
    int64_t size;   /* product of dims: bytes of data */
    uint8_t *data;  /* [dims...], row-major */
} pfgm_idx;

/* Reads the IDX file `path`, gzipped or plain (zlib's gzread reads both), whose big-endian
 * magic number must be `magic` (PFGM_IDX_MAGIC_IMAGES or PFGM_IDX_MAGIC_LABELS); the
 * big-endian int32 dims follow, then the data. Every dim must be >= 1.
 * Errors: PFGM_ERR_IO (missing, unreadable), PFGM_ERR_FORMAT ("wrong magic number",
 * "truncated" header or data, "trailing bytes" after the data, a corrupt gzip stream),
 * PFGM_ERR_NOMEM. Free with pfgm_idx_free. */
pfgm_status pfgm_idx_read(const char *path, uint32_t magic, pfgm_idx *out);
void pfgm_idx_free(pfgm_idx *idx);

/* Reads the CIFAR-10 binary training batches DIR/data_batch_1.bin .. data_batch_5.bin
 * (each record: 1 label byte 0..9, then 3072 bytes of a 3x32x32 image, planes R, G, B).
 * *images: malloc'ed [count, 3, 32, 32]; *labels: malloc'ed [count].
 * Errors: PFGM_ERR_IO (a batch missing/unreadable), PFGM_ERR_FORMAT (a file whose size is
 * not a whole number of 3073-byte records, e.g. truncated; a label outside 0..9),
 * PFGM_ERR_NOMEM. */
pfgm_status pfgm_cifar10_read(const char *dir, int64_t *count, uint8_t **images,
                              int32_t **labels);

/* Record access without reading the whole input (what each rank of a parallel pfgm-prep
 * uses on its part). IDX: pfgm_idx_stream_open reads and checks the header as pfgm_idx_read
 * does (same errors) and fills header->ndim, dims, size (header->data stays NULL);
 * pfgm_idx_stream_read reads data bytes [offset, offset + n) moving forward only (a
 * gzipped file is decompressed, not held, up to there; offset below the bytes already read
 * is PFGM_ERR_INVALID_ARG; a file that ends early is "truncated" PFGM_ERR_FORMAT);
 * pfgm_idx_stream_check_end makes sure the file holds exactly the declared data ("truncated"
 * / "trailing bytes" as pfgm_idx_read). */
typedef struct pfgm_idx_stream pfgm_idx_stream;
pfgm_status pfgm_idx_stream_open(const char *path, uint32_t magic, pfgm_idx *header,
                                 pfgm_idx_stream **out);
pfgm_status pfgm_idx_stream_read(pfgm_idx_stream *s, int64_t offset, uint8_t *buf, int64_t n);
pfgm_status pfgm_idx_stream_check_end(pfgm_idx_stream *s);
void pfgm_idx_stream_close(pfgm_idx_stream *s);

/* CIFAR-10 by record: pfgm_cifar10_open opens the five batches and checks their sizes as
 * pfgm_cifar10_read does (*count: records in all); pfgm_cifar10_record reads record i
 * (0 <= i < count, batches in order) with pread: image [3, 32, 32], label 0..9 (else
 * PFGM_ERR_FORMAT "record k has label L"). */
typedef struct pfgm_cifar10_files pfgm_cifar10_files;
pfgm_status pfgm_cifar10_open(const char *dir, pfgm_cifar10_files **out, int64_t *count);
pfgm_status pfgm_cifar10_record(const pfgm_cifar10_files *f, int64_t i, uint8_t *image,
                                int32_t *label);
void pfgm_cifar10_close(pfgm_cifar10_files *f);

/* ---- converters ---------------------------------------------------------------------- */

/* Progress of a conversion: `done` of `total` images written. A non-zero return asks the
 * converter to stop; it then removes its temporary file and returns PFGM_STOPPED. */
typedef int (*pfgm_prep_progress_fn)(void *ctx, int64_t done, int64_t total);

/* How pfgm_prep_folder crops and resizes (docs/data-format.md, "folder"). */
typedef enum pfgm_prep_pipeline {
    PFGM_PREP_CENTER = 0, /* --crop C square at torchvision's centered offset, then --resize */
    PFGM_PREP_LSUN = 1    /* the authors' LSUN preprocessing (pfgm_image_lsun); no --crop */
} pfgm_prep_pipeline;

typedef enum pfgm_prep_resize {
    PFGM_PREP_BILINEAR = 0, /* PIL's antialiased bilinear, rounded (pfgm_image_crop_resize) */
    PFGM_PREP_BICUBIC = 1   /* TensorFlow's antialiased Keys bicubic, clamped and truncated
                               (pfgm_image_crop_resize_bicubic) */
} pfgm_prep_resize;

typedef struct pfgm_prep_options {
    uint32_t seed;                  /* shuffle seed, stored as the file's `seed` attribute */
    int64_t limit;                  /* keep the first `limit` images after shuffling; 0: all */
    pfgm_prep_progress_fn progress; /* may be NULL; in a parallel run it is called on every
                                       rank (a non-zero return stops them all): for this
                                       rank's part first, then on rank 0 for the writing */
    void *progress_ctx;
    pfgm_prep_pipeline pipeline;    /* folder only; default PFGM_PREP_CENTER */
    pfgm_prep_resize resize;        /* folder with PFGM_PREP_CENTER; default bilinear */
    pfgm_comm *comm;                /* NULL or 1 rank: serial. More ranks: every rank calls
                                       the converter with the same arguments; each converts
                                       its part of the input (source images
                                       [floor(r n / W), floor((r + 1) n / W))) into a part
                                       file beside `out`, and rank 0 writes `out` in the
                                       shuffled order from the parts (docs/data-format.md,
                                       "Parallel prep"); the file is identical to the serial
                                       one; every rank returns the same status */
} pfgm_prep_options;

/* Every converter: draws the permutation perm of 0..n-1 with
 * pfgm_permutation(seed, 0, PFGM_STREAM_PREP, 0, n, perm), and writes source image perm[i]
 * as image i, for i < min(limit, n), to `out` through pfgm_dataset_writer (temporary name,
 * renamed when complete; nothing is left behind on failure, part files included). Memory:
 * the folder converter holds one decoded image at a time (the IDX and CIFAR-10 readers
 * hold their input), plus 8 bytes per source image for the permutation. Errors: those of
 * the readers, PFGM_ERR_INVALID_ARG (bad option), PFGM_ERR_IO/PFGM_ERR_HDF5 writing `out`,
 * PFGM_STOPPED when the progress callback asks to stop; in a parallel run the same
 * status and message on every rank (the lowest failing rank's). */

/* IDX images [N, H, W] -> /images uint8 [N, 1, H, W]; with labels_path (may be NULL),
 * /labels int32 [N] (the label file must have the same N). */
pfgm_status pfgm_prep_idx(const char *images_path, const char *labels_path, const char *out,
                          const pfgm_prep_options *opt);

/* CIFAR-10 batches -> /images uint8 [50000, 3, 32, 32], /labels int32. */
pfgm_status pfgm_prep_cifar10(const char *dir, const char *out, const pfgm_prep_options *opt);

/* Folder of PNG and JPEG images -> /images uint8 [N, channels, size, size], no labels.
 * The folder's regular files (names starting with '.' skipped, sorted by name) must all be
 * PNG or JPEG files, told apart by their first bytes (pfgm_image_sniff); each is decoded
 * (pfgm_image_read_idct) and then, by opt->pipeline:
 *   PFGM_PREP_CENTER: center-cropped to crop x crop (crop <= 0: the largest centered
 *     square, min(width, height)) and resized to size x size with opt->resize
 *     (pfgm_image_crop_resize, PIL bilinear; or pfgm_image_crop_resize_bicubic, TF bicubic);
 *   PFGM_PREP_LSUN: pfgm_image_lsun (crop must be <= 0), JPEGs decoded with the fast IDCT
 *     (PFGM_JPEG_IDCT_FAST, TensorFlow's default, as the authors' input was decoded).
 * Errors also: PFGM_ERR_FORMAT for "empty folder" (no files), "not a PNG or JPEG file"
 * naming the file, a corrupt PNG or JPEG, an image smaller than the crop, or a crop (LSUN:
 * a short side) smaller than `size` (the converter never upsamples); PFGM_ERR_INVALID_ARG
 * for size < 1, channels not 1 or 3, or --crop with the LSUN pipeline; in a parallel run,
 * PFGM_ERR_IO when the ranks list different files (the folder changed, or is not the same
 * folder on every node). */
pfgm_status pfgm_prep_folder(const char *dir, int64_t size, int64_t crop, int channels,
                             const char *out, const pfgm_prep_options *opt);

#ifdef __cplusplus
}
#endif
#endif /* PFGM_PREP_H */
