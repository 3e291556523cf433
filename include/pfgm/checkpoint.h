/* Training checkpoints: one HDF5 file per snapshot, written by rank 0, atomically
 * (temporary name, flush, fsync, rename), with Fletcher32 checksums on every dataset and a
 * CRC-32 over the root attributes, so a corrupt file is detected on read. Layout
 * (docs/checkpoint-format.md):
 *   /params/<name>, /ema/<name>, /adam/m/<name>, /adam/v/<name>   float32, the tensor's shape
 *   root attributes: format = "pfgm-checkpoint", version, step, epoch, epoch_index,
 *   ema_updates, seed, world_size, batch_size, shard_size, dataset_count, steps_per_epoch,
 *   backend, library_version, config (the resolved YAML text), meta_crc32
 * Run directories hold them as <run_dir>/checkpoints/ckpt_<step, 8 digits>.h5; files found
 * damaged by the trainer are moved to <run_dir>/checkpoints/damaged/.
 *
 * Reading goes through one open handle (pfgm_ckpt): a file is found, validated and read
 * through the same open HDF5 file, so a checkpoint that retention unlinks while it is being
 * read stays readable (POSIX keeps an open file alive), and a file that vanished before it
 * was opened is never called corrupt. */
#ifndef PFGM_CHECKPOINT_H
#define PFGM_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "pfgm/config.h"
#include "pfgm/log.h"
#include "pfgm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PFGM_CKPT_FORMAT "pfgm-checkpoint"
#define PFGM_CKPT_VERSION 2
#define PFGM_CKPT_MAX_DIMS 4

/* A named float32 tensor in host memory: data[prod(shape)], row-major. */
typedef struct pfgm_ckpt_tensor {
    const char *name;                  /* e.g. "all_modules.3.Conv_0.weight" (no '/') */
    int ndim;                          /* 1 .. PFGM_CKPT_MAX_DIMS */
    int64_t shape[PFGM_CKPT_MAX_DIMS];
    float *data;
} pfgm_ckpt_tensor;

/* A group of tensors: "params", "ema", "adam/m", "adam/v". */
typedef struct pfgm_ckpt_section {
    const char *group;
    const pfgm_ckpt_tensor *tensors;
    size_t count;
} pfgm_ckpt_section;

typedef struct pfgm_ckpt_meta {
    int64_t version;         /* layout version of the file (1 or 2; written: PFGM_CKPT_VERSION) */
    int64_t step;            /* training steps completed */
    int64_t epoch;           /* data position: epoch ... */
    int64_t epoch_index;     /* ... and batches consumed within it */
    int64_t ema_updates;     /* EMA updates so far (the n of the EMA warm-up rule) */
    int64_t seed;            /* run seed */
    int64_t world_size;      /* ranks W of the run that wrote it */
    /* what the data position depends on (version 2; 0 = unknown in a version-1 file) */
    int64_t batch_size;      /* per-rank large batch L (training.batch_size) */
    int64_t shard_size;      /* images per rank: floor(dataset_count / W) */
    int64_t dataset_count;   /* images in the dataset file */
    int64_t steps_per_epoch; /* floor(shard_size / L) */
    char backend[16];        /* "cpu", "cuda" */
    char library_version[32];
    char *config_yaml;       /* resolved config text; owned by the meta after a read */
} pfgm_ckpt_meta;

/* Writes a checkpoint to `path` atomically. Every section's tensors become datasets of
 * group `section.group`; meta->version is ignored (PFGM_CKPT_VERSION is written) and the
 * attributes' CRC-32 is computed here. Errors: PFGM_ERR_IO (temporary or rename),
 * PFGM_ERR_HDF5, PFGM_ERR_INVALID_ARG (bad name or shape); on error nothing is left at
 * `path` or at the temporary name. */
pfgm_status pfgm_ckpt_write(const char *path, const pfgm_ckpt_meta *meta, const pfgm_ckpt_section *sections,
                            size_t nsections);

/* An open, validated checkpoint. */
typedef struct pfgm_ckpt pfgm_ckpt;

/* Opens `path` once and validates its metadata, which is what "usable" means besides the
 * datasets' checksums: format and version; every attribute present; the attributes'
 * CRC-32 (version 2); step >= 0 and, for a file named ckpt_<digits>.h5, equal to the
 * digits; 0 <= ema_updates <= step; seed in [0, 2^32); world size >= 1; backend cpu or
 * cuda; the data position in range (epoch >= 0, 0 <= epoch_index < steps_per_epoch, and
 * steps_per_epoch = floor(shard_size / batch_size), dataset_count >= W * shard_size); the
 * config text parses and agrees with seed and batch_size. Datasets are not read (see
 * pfgm_ckpt_verify). Errors, each one line naming the file: PFGM_ERR_IO (missing or
 * unreadable: "no such file" when it does not exist), PFGM_ERR_FORMAT (not a pfgm
 * checkpoint, newer version, damaged metadata: names the attribute and the values),
 * PFGM_ERR_NOMEM. */
pfgm_status pfgm_ckpt_open(const char *path, pfgm_ckpt **out);

/* Reads every dataset of the open file once (verifying all Fletcher32 checksums) without
 * keeping them. Errors: PFGM_ERR_FORMAT naming the file and dataset. */
pfgm_status pfgm_ckpt_verify(pfgm_ckpt *ck);

/* Reads the tensors of `group` into the caller's buffers: for each tensors[i] the dataset
 * group/name must exist with exactly that shape and a float32 type, and the group must
 * hold no other dataset. Checksums are verified by HDF5 on read. Errors: PFGM_ERR_FORMAT
 * naming the file and dataset (missing, extra, wrong shape or dtype, checksum mismatch). */
pfgm_status pfgm_ckpt_read(pfgm_ckpt *ck, const char *group, const pfgm_ckpt_tensor *tensors, size_t count);

/* The validated metadata, the parsed config of the file, and the path it was opened as
 * (valid until pfgm_ckpt_close). */
const pfgm_ckpt_meta *pfgm_ckpt_meta_of(const pfgm_ckpt *ck);
const pfgm_config *pfgm_ckpt_config(const pfgm_ckpt *ck);
const char *pfgm_ckpt_file(const pfgm_ckpt *ck);

/* Closes the file and frees the handle (NULL is a no-op). */
void pfgm_ckpt_close(pfgm_ckpt *ck);

/* "<run_dir>/checkpoints/ckpt_<step %08>.h5" into buf[cap]. Errors: PFGM_ERR_INVALID_ARG. */
pfgm_status pfgm_ckpt_path(const char *run_dir, int64_t step, char *buf, size_t cap);

/* Steps of the complete checkpoints (names ckpt_<digits>.h5; temporaries are ignored) in
 * <run_dir>/checkpoints, ascending, into a malloc'd array (*steps NULL when none; a missing
 * directory means none). Errors: PFGM_ERR_IO (unreadable directory), PFGM_ERR_NOMEM. */
pfgm_status pfgm_ckpt_list(const char *run_dir, int64_t **steps, size_t *count);

/* Retention after writing the checkpoint of written_step: keeps the newest keep_last
 * checkpoints, every checkpoint whose step is a multiple of keep_every (> 0), and any with a
 * step >= written_step (a newer file is never deleted: it belongs to another trajectory and
 * the trainer moves such files aside when it resumes); deletes the rest and any stale
 * temporaries. It never reads them and never touches checkpoints/damaged/ or superseded/.
 * Errors: PFGM_ERR_IO naming the file that could not be removed. */
pfgm_status pfgm_ckpt_prune(const char *run_dir, int64_t keep_last, int64_t keep_every, int64_t written_step);

/* Moves every checkpoint with a step > `step` to <run_dir>/checkpoints/superseded/ (a run
 * resumed from an older checkpoint, e.g. --resume PATH: its own checkpoints of those steps
 * would overwrite them, or retention would count them as the newest), reporting each through
 * lg; *moved counts them. Errors: PFGM_ERR_IO naming the file. */
pfgm_status pfgm_ckpt_move_newer(const char *run_dir, int64_t step, const pfgm_logger *lg, size_t *moved);

/* What pfgm_ckpt_open_latest saw. */
typedef struct pfgm_ckpt_scan {
    size_t found;          /* checkpoint files in the last listing of <run_dir>/checkpoints */
    size_t damaged;        /* of them, files that failed pfgm_ckpt_open or pfgm_ckpt_verify */
    size_t vanished;       /* files removed between a listing and their opening (all passes) */
    size_t moved;          /* damaged files moved to <run_dir>/checkpoints/damaged/ */
    char newest_problem[512]; /* the newest damaged file's message ("" when none) */
} pfgm_ckpt_scan;

/* The newest usable checkpoint of <run_dir>: newest first, each file is opened and
 * verified (pfgm_ckpt_open, pfgm_ckpt_verify); a file that vanished before it was opened
 * (retention of a trainer writing the same run directory) is passed over silently and the
 * next newest is tried, and when every listed file vanished the directory is listed again
 * (up to 100 times); a damaged one is reported through lg (warning naming the file and
 * the problem) and skipped, and with move_damaged (the trainer, the run directory's owner)
 * renamed into <run_dir>/checkpoints/damaged/ (never deleted; a name already there gets a
 * ".<n>" suffix), only when a usable checkpoint older than it was found. *out is the open
 * handle, or NULL when no file is usable (see scan for why). Errors: PFGM_ERR_IO
 * (unreadable directory, a damaged file that cannot be moved), PFGM_ERR_NOMEM. */
pfgm_status pfgm_ckpt_open_latest(const char *run_dir, int move_damaged, const pfgm_logger *lg, pfgm_ckpt **out,
                                  pfgm_ckpt_scan *scan);

/* Moves every checkpoint of <run_dir>/checkpoints into <run_dir>/checkpoints/damaged/ (the
 * trainer's --resume fresh, after pfgm_ckpt_open_latest found none usable), reporting each
 * through lg; *moved counts them. Errors: PFGM_ERR_IO naming the file. */
pfgm_status pfgm_ckpt_move_all_damaged(const char *run_dir, const pfgm_logger *lg, size_t *moved);

#ifdef __cplusplus
}
#endif
#endif /* PFGM_CHECKPOINT_H */
