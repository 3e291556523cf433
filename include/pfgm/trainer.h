/* The training loop of pfgm-train (src/train/trainer.c): on every rank of W, each step
 * takes a large batch of training.batch_size charges from this rank's shard, perturbs the
 * first training.small_batch_size of them (spec §1.4), computes their normalized field
 * targets (spec §1.2-1.3), runs the DDPM++ forward and backward passes against them
 * (spec §1.5), averages the gradients over ranks, and takes a clipped Adam step with
 * warmup and an EMA update (spec §1.13). Rank 0 writes checkpoints atomically; resume is
 * exact; SIGTERM/SIGUSR1 stop every rank at the same step after a checkpoint. */
#ifndef PFGM_TRAINER_H
#define PFGM_TRAINER_H

#include <stdint.h>

#include "pfgm/backend.h"
#include "pfgm/comm.h"
#include "pfgm/config.h"
#include "pfgm/log.h"
#include "pfgm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pfgm_train_options {
    const char *run_dir;   /* run directory: config.yaml, metrics file, checkpoints/ */
    const char *resume;    /* "auto" (newest usable checkpoint; fresh when the run directory has
                            * none; PFGM_ERR_FORMAT when it has checkpoints but none usable),
                            * "never", "fresh" (start over when none is usable), or a path */
    int allow_reshard;     /* accept a checkpoint written with another world size, per-rank
                            * batch or dataset size (position mapped by images consumed) */
    int dry_run;           /* print the plan (config, parameters, memory, FLOPs) and return */
    int progress_tty;      /* rewrite the progress line in place (stdout is a terminal) */
    /* Communicator for the collectives on backend memory: the gradient all-reduce and the
     * charges all-gather of field.reference: global. NULL: `comm` itself (right for the CPU
     * backend, whose memory is host memory). With a device-memory backend (CUDA) and more
     * than one rank it must work on device buffers (the NCCL communicator) and have comm's
     * ranks; `comm` keeps the host-side control collectives (loss and stop agreement,
     * weight checksums, checkpoint broadcasts, barriers). */
    pfgm_comm *device_comm;
} pfgm_train_options;

/* What a finished (or stopped) run reports. */
typedef struct pfgm_train_result {
    int64_t start_step;   /* step the run started from (0, or the resumed checkpoint's) */
    int64_t end_step;     /* steps completed when it returned */
    double last_loss;     /* mean loss over ranks of the last step */
    int stopped_signal;   /* the signal that stopped it, 0 when it ran to n_iters */
    uint64_t weights_checksum; /* FNV-1a of this rank's final parameters (checked equal on
                                * every rank when training ended without an error) */
} pfgm_train_result;

/* Runs training as configured. Collective: every rank of comm calls it with the same
 * config and options. be is this rank's backend. Returns PFGM_OK after n_iters steps,
 * PFGM_STOPPED after a requested stop (checkpoint written), or an error; on an error that
 * only this rank sees, the caller must abort the communicator (pfgm-train does), because
 * the peers may be waiting in a collective.
 * Errors: PFGM_ERR_CONFIG (inconsistent config, resume with another world size or model
 * shape, --resume never with existing checkpoints), PFGM_ERR_IO / PFGM_ERR_FORMAT (data,
 * checkpoints), PFGM_ERR_NUMERIC (non-finite loss or gradients), PFGM_ERR_NOMEM,
 * PFGM_ERR_INVALID_ARG (opt->device_comm with other ranks than comm), PFGM_ERR_UNSUPPORTED
 * (a device-memory backend on several ranks without a device communicator), the
 * communicators' and backend's errors. */
pfgm_status pfgm_train(const pfgm_config *cfg, const pfgm_train_options *opt, pfgm_comm *comm, pfgm_backend *be,
                       const pfgm_logger *lg, pfgm_train_result *result);

#ifdef __cplusplus
}
#endif
#endif
