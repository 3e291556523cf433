/* Sampling from a trained model (pfgm-sample): the EMA weights of a checkpoint, the
 * hemisphere prior on z = z_max (spec §1.7), the backward ODE through the network
 * (spec §1.8-1.9), the samples in data scale at z = z_min (spec §1.10).
 *
 * Batches and ranks. The samples are cut into global batches of sampling.batch_size
 * (the last one may be smaller): global batch b holds the samples [b Bs, b Bs + B_b).
 * Its prior draw is keyed {seed, rank 0, PFGM_STREAM_PRIOR, step b}, sample k of the batch
 * owning the Philox window k (prior.h), and it is integrated as one ODE solve of exactly
 * those B_b samples (the batch-global RK45 step depends on the batch, as in the authors'
 * sampler). Ranks receive whole batches, rank r a contiguous range of them (so a
 * contiguous range of the global sample indices), the first nb mod W ranks one batch more.
 * Every sample therefore comes out the same, to the bit, whatever the world size. */
#ifndef PFGM_SAMPLER_H
#define PFGM_SAMPLER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "pfgm/backend.h"
#include "pfgm/checkpoint.h"
#include "pfgm/comm.h"
#include "pfgm/config.h"
#include "pfgm/log.h"
#include "pfgm/ode.h"
#include "pfgm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pfgm_sample_options {
    pfgm_ckpt *checkpoint;  /* rank 0: the open checkpoint (pfgm_sample_open_checkpoint); other
                             * ranks: ignored (NULL), they receive the weights from rank 0 */
    int64_t num_samples;    /* total samples, >= 1 */
    uint32_t seed;          /* keys the prior draws (see above) */
    int use_params;         /* 1: the raw parameters (/params) instead of the EMA (/ema) */
    FILE *progress;         /* rank 0: the progress line's stream (NULL: no progress line) */
    int progress_tty;       /* rewrite the line in place (the stream is a terminal) */
    double progress_interval_s; /* at most one line per this many seconds during a solve
                             * (0: one per network evaluation); rank 0's last batch always
                             * ends with one */
} pfgm_sample_options;

typedef struct pfgm_sample_result {
    int64_t samples;      /* num_samples */
    int64_t batches;      /* global batches */
    int64_t nfe_total;    /* network evaluations (batched calls) summed over all batches */
    int64_t nfe_min;      /* smallest and largest NFE of one batch (Euler: steps; Heun: */
    int64_t nfe_max;      /* 2 steps - 1; RK45: 2 + 6 attempts) */
    double mean_nfe;      /* nfe_total / batches */
    int64_t rho_guard;    /* drift rows at the singular rho = 1, all ranks (docs/numerics.md §6) */
    double seconds;       /* wall time of the prior draws, solves and gathers (not the load) */
    double images_per_s;  /* samples / seconds */
    int failed_rank;      /* on an error seen by every rank: the rank it came from; else -1 */
} pfgm_sample_result;

/* --checkpoint: `path` is a run directory (then the newest usable checkpoint in
 * <path>/checkpoints, pfgm_ckpt_open_latest: a file that retention removed while it was being
 * chosen is passed over for the next newest, a damaged one is reported through lg and
 * skipped, never moved; temporaries "*.tmp.*" are never candidates) or a checkpoint file
 * (refused when its name is an unfinished write's temporary, "<name>.tmp.<pid>"). *out is
 * the open, validated checkpoint (its metadata, config and step: pfgm_ckpt_meta_of,
 * pfgm_ckpt_config); the weights are read through it later, so the file may be unlinked
 * meanwhile. Errors, each naming the path: PFGM_ERR_IO (missing, unreadable, a run
 * directory with no complete checkpoint), PFGM_ERR_FORMAT (not a pfgm checkpoint, damaged,
 * a temporary file, a run directory whose checkpoints are all unusable). */
pfgm_status pfgm_sample_open_checkpoint(const char *path, const pfgm_logger *lg, pfgm_ckpt **out);

/* The batches of rank `rank` of `world` (see above): num samples in global batches of
 * batch_size; rank gets batches [*first, *first + *count). *count may be 0. */
void pfgm_sample_partition(int64_t num, int64_t batch_size, int world, int rank, int64_t *first, int64_t *count);

/* Draws o->num_samples samples with cfg (the model and sampling sections; normally the
 * checkpoint's config with the user's overrides) on backend be. Collective over comm
 * (NULL: one process): rank 0 reads the weights through o->checkpoint and broadcasts them once
 * every rank's set-up succeeded (else every rank returns the failing rank's status and
 * message, res->failed_rank set), each rank solves its batches, and the batches
 * are all-gathered round by round (each rank sends one batch per round, padded to
 * sampling.batch_size; header with the batch index, size, NFE and status). x (host,
 * [num_samples, C, H, W] float32 in data scale [-1, 1], unclipped) receives every sample;
 * it may be NULL on ranks other than 0. rank 0 logs one line per batch (NFE, images/s)
 * and, with o->progress, prints the progress line (include/pfgm/progress.h) while it
 * solves: its batch, the NFE so far, the height z of the latest evaluation, how far the
 * solve has come in t = ln z, and images/s and ETA estimated from rank 0's share of the
 * samples done (finished batches plus that fraction of the current one), assuming every
 * rank progresses alike and a constant rate in ln z (an RK45 whose steps shrink near z_min
 * runs later than its ETA said). The z is read from the backend only when a line is due.
 * sampling.max_nfe > 0 caps the network evaluations of one batch: the evaluation that
 * would exceed it is refused and the draw fails with PFGM_ERR_NUMERIC, naming the batch,
 * the z reached and the ways out (the samples would not be at z_min; no partial output).
 * A failure on one rank (set-up or solve) is seen by all at the next gather: every rank
 * returns that status with the message "rank R: <its message>" and res->failed_rank = R,
 * so no rank waits forever. Only a failure of the gather itself, or of allocating its
 * buffers, returns on one rank alone (res->failed_rank = -1): the caller must then abort
 * the job (comm->abort), as pfgm-sample does.
 * Errors: PFGM_ERR_INVALID_ARG (num_samples < 1, NULL x on rank 0), PFGM_ERR_IO /
 * PFGM_ERR_FORMAT (checkpoint: missing, corrupt, another model shape), PFGM_ERR_CONFIG
 * (model config), PFGM_ERR_NUMERIC (ODE: non-finite field, step underflow,
 * sampling.max_nfe reached),
 * PFGM_ERR_NOMEM, the communicator's and backend's. */
pfgm_status pfgm_sample_draw(const pfgm_config *cfg, const pfgm_sample_options *o, pfgm_comm *comm, pfgm_backend *be,
                             const pfgm_logger *lg, float *x, pfgm_sample_result *res);

/* The ODE solver options of a config's sampling section (spec §1.9): sampling.ode_solver,
 * z_max, z_min, z_exp, N, rk45_rtol/atol, training.gamma, and the authors' state layout
 * (z replicated H*W times in the RK45 state). */
pfgm_ode_options pfgm_sample_ode_options(const pfgm_config *c);

#ifdef __cplusplus
}
#endif
#endif
