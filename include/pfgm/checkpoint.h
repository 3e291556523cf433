/* Training checkpoints: one HDF5 file per snapshot, written by rank 0, atomically
 * (temporary name, flush, fsync, rename), with Fletcher32 checksums on every dataset so a
 * corrupt file is detected on read. Layout (docs/checkpoint-format.md):
 *   /params/<name>, /ema/<name>, /adam/m/<name>, /adam/v/<name>   float32, the tensor's shape
 *   root attributes: format = "pfgm-checkpoint", version, step, epoch, epoch_index,
 *   ema_updates, seed, world_size, backend, library_version, config (the resolved YAML text)
 * Run directories hold them as <run_dir>/checkpoints/ckpt_<step, 8 digits>.h5. */
#ifndef PFGM_CHECKPOINT_H
#define PFGM_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "pfgm/log.h"
#include "pfgm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PFGM_CKPT_FORMAT "pfgm-checkpoint"
#define PFGM_CKPT_VERSION 1
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
    int64_t step;         /* training steps completed */
    int64_t epoch;        /* data position: epoch ... */
    int64_t epoch_index;  /* ... and batches consumed within it */
    int64_t ema_updates;  /* EMA updates so far (the n of the EMA warm-up rule) */
    int64_t seed;         /* run seed */
    int64_t world_size;   /* ranks of the run that wrote it */
    char backend[16];     /* "cpu", "cuda" */
    char library_version[32];
    char *config_yaml;    /* resolved config text; owned by the meta after a read */
} pfgm_ckpt_meta;

/* Writes a checkpoint to `path` atomically. Every section's tensors become datasets of
 * group `section.group`. Errors: PFGM_ERR_IO (temporary or rename), PFGM_ERR_HDF5,
 * PFGM_ERR_INVALID_ARG (bad name or shape); on error nothing is left at `path` or at the
 * temporary name. */
pfgm_status pfgm_ckpt_write(const char *path, const pfgm_ckpt_meta *meta, const pfgm_ckpt_section *sections,
                            size_t nsections);

/* Reads and validates the root attributes. meta->config_yaml is malloc'd (free with
 * pfgm_ckpt_meta_free). Errors: PFGM_ERR_IO (missing/unreadable), PFGM_ERR_FORMAT (not a
 * pfgm checkpoint, newer version, missing attribute), each naming the file. */
pfgm_status pfgm_ckpt_read_meta(const char *path, pfgm_ckpt_meta *meta);
void pfgm_ckpt_meta_free(pfgm_ckpt_meta *meta);

/* Reads the tensors of `group` into the caller's buffers: for each tensors[i] the dataset
 * group/name must exist with exactly that shape and a float32 type, and the group must
 * hold no other dataset. Checksums are verified by HDF5 on read. Errors: PFGM_ERR_FORMAT
 * naming the file and dataset (missing, extra, wrong shape or dtype, checksum mismatch). */
pfgm_status pfgm_ckpt_read_section(const char *path, const char *group, const pfgm_ckpt_tensor *tensors,
                                   size_t count);

/* Reads every dataset of the file once (verifying all checksums) without keeping them.
 * Errors as pfgm_ckpt_read_section. Used to choose a resumable checkpoint. */
pfgm_status pfgm_ckpt_verify(const char *path);

/* "<run_dir>/checkpoints/ckpt_<step %08>.h5" into buf[cap]. Errors: PFGM_ERR_INVALID_ARG. */
pfgm_status pfgm_ckpt_path(const char *run_dir, int64_t step, char *buf, size_t cap);

/* Steps of the complete checkpoints (names ckpt_<digits>.h5; temporaries are ignored) in
 * <run_dir>/checkpoints, ascending, into a malloc'd array (*steps NULL when none; a missing
 * directory means none). Errors: PFGM_ERR_IO (unreadable directory), PFGM_ERR_NOMEM. */
pfgm_status pfgm_ckpt_list(const char *run_dir, int64_t **steps, size_t *count);

/* Retention: keeps the newest keep_last checkpoints and every checkpoint whose step is a
 * multiple of keep_every (> 0); deletes the rest and any stale temporaries. Errors:
 * PFGM_ERR_IO naming the file that could not be removed. */
pfgm_status pfgm_ckpt_prune(const char *run_dir, int64_t keep_last, int64_t keep_every);

/* The newest checkpoint in <run_dir> that passes pfgm_ckpt_verify, into buf[cap], its step
 * into *step; buf = "" and *step = -1 when there is none. A newer checkpoint that fails
 * verification is reported through lg (warning naming the file and the problem) and
 * skipped. Errors: PFGM_ERR_IO (unreadable directory). */
pfgm_status pfgm_ckpt_find_latest(const char *run_dir, const pfgm_logger *lg, char *buf, size_t cap,
                                  int64_t *step);

#ifdef __cplusplus
}
#endif
#endif /* PFGM_CHECKPOINT_H */
