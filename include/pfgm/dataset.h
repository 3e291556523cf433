/* The pfgm dataset file (one HDF5 file written by pfgm-prep, docs/data-format.md) and the
 * streaming reader every training rank uses:
 *   /images  uint8 [count, C, H, W], chunked          (required)
 *   /labels  int32 [count], chunked                    (optional)
 *   both with HDF5's Fletcher32 checksum filter (files from an older pfgm-prep lack it)
 *   root attributes format="pfgm-dataset", version, source, seed.
 * The reader never holds the file in memory. The file's rows are cut into blocks of
 * B rows (the file's chunk rows by default). Each epoch e:
 *   1. the blocks are put in the order of one seeded permutation shared by every rank
 *      (stream PFGM_STREAM_DATA_BLOCKS, step e), giving a sequence of all `count` images;
 *   2. rank r of W takes the slice [r * per_rank, (r + 1) * per_rank) of that sequence,
 *      per_rank = floor(count / W) (the last count - W * per_rank images of the sequence,
 *      different ones each epoch, are dropped on every rank alike);
 *   3. the rank shuffles its slice inside windows of K * B images (the shuffle buffer;
 *      stream PFGM_STREAM_DATA_SHUFFLE keyed (seed, r), step e * windows + window);
 *   4. the result is cut into steps_per_epoch = floor(per_rank / L) large batches of L
 *      images (the rest of the slice is dropped, as the authors' loaders drop incomplete
 *      batches, PFGM_SPEC.md §1.12).
 * So every image is used at most once per epoch across all ranks, exactly W * L *
 * steps_per_epoch of them are, and every rank runs the same number of steps. Rows are read
 * a block at a time by hyperslab into a bounded cache of whole blocks (data.cache_mb), by a
 * prefetch thread that prepares batch k + 1 while the caller trains on batch k. */
#ifndef PFGM_DATASET_H
#define PFGM_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "pfgm/log.h"
#include "pfgm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PFGM_DATASET_FORMAT "pfgm-dataset"
#define PFGM_DATASET_VERSION 1
/* Defaults of the streaming options (data.cache_mb, data.shuffle_window) when the caller
 * passes 0. */
#define PFGM_DATASET_DEFAULT_CACHE_MB 256
#define PFGM_DATASET_DEFAULT_WINDOW 32

/* ---- reading ------------------------------------------------------------------------- */

/* What the caller (the trainer, from its config) asks of the dataset. */
typedef struct pfgm_dataset_options {
    const char *path;    /* data.path: the HDF5 dataset file */
    int rank;            /* this rank r, 0 <= r < world_size */
    int world_size;      /* W >= 1 */
    int64_t channels;    /* data.channels: C required of the file; <= 0 accepts the file's */
    int64_t image_size;  /* data.image_size: H = W required of the file; <= 0 accepts the file's */
    int64_t batch_size;  /* training.batch_size: L images per large batch, >= 1 */
    uint32_t seed;       /* run seed (config `seed`): keys the epoch shuffle and the flips */
    int random_flip;     /* data.random_flip: mirror each image left-right with probability 1/2 */
    int64_t block_images;   /* data.block_images: rows per block B; <= 0: the rows of one HDF5
                               chunk of /images (256 when the dataset is not chunked) */
    int64_t shuffle_window; /* data.shuffle_window: K blocks per shuffle window; <= 0: 32 */
    int64_t cache_bytes;    /* data.cache_mb * 2^20: bound on the cached blocks (pixels and
                               labels); <= 0: 256 MiB */
    int no_prefetch;        /* 1 (data.prefetch: false): read in the caller's thread */
    const pfgm_logger *log; /* optional (NULL: silent): rank 0 warns here, once per open,
                               when the file has no checksums (an older pfgm-prep) */
} pfgm_dataset_options;

/* Where the reader stands: `index` large batches of epoch `epoch` have been delivered,
 * 0 <= index < steps_per_epoch. The next batch is batch `index` of epoch `epoch`. Two
 * integers are the whole reader state (the shuffle and flips are pure functions of them),
 * so a checkpoint that stores them resumes the exact sequence of batches. */
typedef struct pfgm_dataset_position {
    int64_t epoch;
    int64_t index;
} pfgm_dataset_position;

typedef struct pfgm_dataset pfgm_dataset;

/* Opens opt->path and validates it, reading no pixels; allocates the block cache and the
 * staging batch and, unless opt->no_prefetch, starts the prefetch thread, which begins on
 * batch 0 at once. Position starts at (0, 0).
 * Memory (pfgm_dataset_get_stats): min(floor(cache_bytes / block_bytes), blocks) cache
 * slots of block_bytes = B * (C*H*W + 4 if labels) bytes, plus the staging batch
 * (L * (C*H*W * 4 + 4) bytes), the block order and index (16 bytes a block) and two
 * window orders (8 * K * B bytes each). The cache must hold K + 2 blocks (or the whole
 * file): every block is then read from the file at most once per epoch on each rank.
 * Checksums: HDF5 verifies the Fletcher32 sum of every chunk as a block is read, so a
 * damaged chunk is reported by the next_batch that first needs it (chunks no rank reads
 * in an epoch are not checked in it). A file without the filter (an older pfgm-prep) is
 * still read, and rank 0 says so once through opt->log.
 * Errors (the message names the file and what is wrong):
 *   PFGM_ERR_IO       file missing or unreadable;
 *   PFGM_ERR_FORMAT   not HDF5, format attribute missing or not "pfgm-dataset", version
 *                     newer than PFGM_DATASET_VERSION, /images missing, not uint8, not 4-D,
 *                     H != W, /labels not int32 [count];
 *   PFGM_ERR_CONFIG   C differs from opt->channels, or H differs from opt->image_size
 *                     (smaller: the images cannot be used; larger: re-run pfgm-prep with
 *                     --size; the reader never resizes), or per_rank < batch_size (no batch),
 *                     or the cache cannot hold K + 2 blocks ("data.cache_mb ... holds N
 *                     blocks ..., data.shuffle_window K needs K + 2");
 *   PFGM_ERR_INVALID_ARG  rank/world_size/batch_size impossible;
 *   PFGM_ERR_NOMEM, PFGM_ERR_HDF5, PFGM_ERR_INTERNAL (the thread could not start). */
pfgm_status pfgm_dataset_open(const pfgm_dataset_options *opt, pfgm_dataset **out);
void pfgm_dataset_close(pfgm_dataset *ds);

int64_t pfgm_dataset_count(const pfgm_dataset *ds);           /* images in the file */
int64_t pfgm_dataset_per_rank(const pfgm_dataset *ds);        /* floor(count / W) */
int64_t pfgm_dataset_steps_per_epoch(const pfgm_dataset *ds); /* floor(per_rank / L) */

/* What the reader holds and has read (pfgm-train's start-up table, tests, benchmarks). */
typedef struct pfgm_dataset_stats {
    int64_t block_images;   /* B: rows per block */
    int64_t blocks;         /* ceil(count / B) */
    int64_t window_blocks;  /* K */
    int64_t cache_slots;    /* blocks the cache holds */
    int64_t cache_bytes;    /* bytes of the cache slots (pixels and labels) */
    int64_t staging_bytes;  /* bytes of the staging batch (floats and labels) */
    int64_t blocks_read;    /* blocks read from the file since open */
    int prefetch;           /* 1 when a prefetch thread prepares the next batch */
} pfgm_dataset_stats;

/* Fills *st. blocks_read is exact once the caller's last next_batch has returned, but may
 * already count the block reads of the batch the thread is preparing. */
void pfgm_dataset_get_stats(const pfgm_dataset *ds, pfgm_dataset_stats *st);

/* Writes the next large batch and advances the position by one batch (to (epoch + 1, 0)
 * after the last batch of an epoch).
 *   images: [L, C, H, W] float32 (caller-provided, L * C*H*W floats), pixel x in 0..255
 *           becomes 2 * (x / 255) - 1 in [-1, 1] (data.centered, PFGM_SPEC.md §1.12);
 *           with random_flip, image k of the batch is mirrored along W when bit 31 of word k
 *           of Philox stream PFGM_STREAM_DATA_FLIP keyed (seed, rank), step = epoch *
 *           steps_per_epoch + index, is set;
 *   labels: [L] int32, or NULL; -1 for every image when the file has no /labels.
 * Batch i holds images j in [i*L, (i+1)*L) of the rank's epoch order (the header comment
 * above; docs/data-format.md "Epoch order"). With prefetch, the batch was prepared while the
 * caller worked on the previous one: this call waits for it, copies it out and asks for the
 * next. Allocates nothing.
 * Errors: PFGM_ERR_INVALID_ARG for a NULL images pointer; a failure reading the batch's
 * blocks: PFGM_ERR_FORMAT for a chunk whose checksum does not match ("<file>: checksum
 * mismatch in /images, images a..b (Fletcher32): the file is corrupt", a..b the damaged
 * chunk's rows; "/labels, labels of images a..b" for the labels), PFGM_ERR_HDF5 otherwise.
 * After a failure the position does not move and every later call returns the same error
 * (HDF5 may have cached the damaged chunk): close the reader. */
pfgm_status pfgm_dataset_next_batch(pfgm_dataset *ds, float *images, int32_t *labels);

void pfgm_dataset_get_position(const pfgm_dataset *ds, pfgm_dataset_position *pos);
/* Restores a position read by get_position (same file, seed, W, L, B and K); a batch being
 * prefetched for the old position is waited for and dropped. Errors: PFGM_ERR_INVALID_ARG
 * when epoch < 0 or index is outside [0, steps_per_epoch). */
pfgm_status pfgm_dataset_set_position(pfgm_dataset *ds, const pfgm_dataset_position *pos);

/* Maps a position saved by a job that consumed old_images_per_step images per step (W_old *
 * L_old: another world size or per-rank batch size) onto a reader whose job consumes
 * new_images_per_step (W_new * L_new) in batches of new_steps_per_epoch per epoch: the epoch
 * is kept and so is the number of images the whole job consumed in it, rounded down to whole
 * new steps:
 *   index_new = floor(index_old * old_images_per_step / new_images_per_step),
 * and when that is past the new epoch's last batch, the next epoch's start (epoch + 1, 0).
 * Slices and permutations change with W and L, so within the interrupted epoch a few
 * images may be seen twice or not at all; from the next epoch on the sequence is exact. A
 * non-positive argument leaves the epoch's start (epoch, 0). */
pfgm_dataset_position pfgm_dataset_position_map(pfgm_dataset_position pos, int64_t old_images_per_step,
                                                int64_t new_images_per_step, int64_t new_steps_per_epoch);

/* The Fisher-Yates permutation of 0..n-1 drawn from Philox stream `stream` keyed (seed,
 * rank) at `step` (the prep shuffle: PFGM_STREAM_PREP, rank 0, step 0; the epoch's block
 * order: PFGM_STREAM_DATA_BLOCKS, rank 0, step = epoch; a shuffle window:
 * PFGM_STREAM_DATA_SHUFFLE, rank r, step = epoch * windows + window). For i = n-1 down to 1 it swaps perm[i]
 * with perm[j], j uniform in [0, i] by Lemire's unbiased multiply-and-reject on the
 * stream's 32-bit words taken in order. perm: [n]; n < 2^32. Allocates nothing. */
void pfgm_permutation(uint32_t seed, uint32_t rank, uint32_t stream, uint64_t step, int64_t n,
                      int64_t *perm);

/* Facts about a dataset file without reading its images (pfgm-prep info, scripts). */
typedef struct pfgm_dataset_info {
    int64_t count, channels, height, width;
    int has_labels;
    int version;
    uint32_t seed;
    char source[512];
    int checksum;  /* 1 when /images (and /labels, if present) carry Fletcher32 checksums */
} pfgm_dataset_info;

/* Validates the file as pfgm_dataset_open does (format, version, dtype, rank, labels) and
 * fills *info. Reads no pixels, so checksums are reported (info->checksum) but not
 * verified. Errors: PFGM_ERR_IO, PFGM_ERR_FORMAT, PFGM_ERR_HDF5 as for open. */
pfgm_status pfgm_dataset_probe(const char *path, pfgm_dataset_info *info);

/* ---- writing (pfgm-prep) ---------------------------------------------------------------- */

typedef struct pfgm_dataset_writer pfgm_dataset_writer;

/* Creates `<path>.tmp.<pid>` for `count` images of [C, H, W] (and labels when has_labels),
 * with root attributes format, version, source, seed; both datasets are chunked with the
 * Fletcher32 checksum filter. Images are then appended in order.
 * Errors: PFGM_ERR_INVALID_ARG (count < 1, C/H/W < 1), PFGM_ERR_IO (directory missing or
 * unwritable), PFGM_ERR_HDF5, PFGM_ERR_NOMEM. */
pfgm_status pfgm_dataset_writer_create(const char *path, int64_t count, int64_t channels,
                                       int64_t height, int64_t width, int has_labels,
                                       const char *source, uint32_t seed,
                                       pfgm_dataset_writer **out);

/* Appends one image (uint8 [C, H, W]) and its label (ignored without labels). Errors:
 * PFGM_ERR_INVALID_ARG when `count` images were already appended, PFGM_ERR_HDF5. */
pfgm_status pfgm_dataset_writer_append(pfgm_dataset_writer *w, const uint8_t *image,
                                       int32_t label);

/* Flushes, closes, fsyncs and renames the temporary file to `path`, then frees w (also on
 * error, when the temporary is removed). Errors: PFGM_ERR_INVALID_ARG when fewer than
 * `count` images were appended, PFGM_ERR_IO (fsync/rename), PFGM_ERR_HDF5. */
pfgm_status pfgm_dataset_writer_commit(pfgm_dataset_writer *w);

/* Closes and removes the temporary file and frees w; `path` is never created. NULL is a no-op. */
void pfgm_dataset_writer_abort(pfgm_dataset_writer *w);

#ifdef __cplusplus
}
#endif
#endif /* PFGM_DATASET_H */
