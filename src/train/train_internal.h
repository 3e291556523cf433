/* Private to src/train: the trainer's state, shared by trainer.c (the loop) and
 * train_state.c (checkpoint save/restore and the compatibility checks of resume). */
#ifndef PFGM_TRAIN_INTERNAL_H
#define PFGM_TRAIN_INTERNAL_H

#include <stdint.h>

#include "pfgm/backend.h"
#include "pfgm/comm.h"
#include "pfgm/config.h"
#include "pfgm/dataset.h"
#include "pfgm/ddpmpp.h"
#include "pfgm/log.h"
#include "pfgm/optim.h"
#include "pfgm/run_lock.h"
#include "pfgm/step.h"
#include "pfgm/trainer.h"

typedef struct trainer {
    const pfgm_config *cfg;
    const pfgm_train_options *opt;
    pfgm_comm *comm;          /* host-side control collectives */
    pfgm_comm *dcomm;         /* collectives on backend memory (opt->device_comm, else comm) */
    pfgm_backend *be;
    const pfgm_logger *lg;
    int64_t N, L, B;          /* data dimension, large batch (charges), small batch */
    pfgm_ddpmpp *model;
    pfgm_nn_params *params;   /* the model's parameter table (values, gradients, names) */
    pfgm_optim *optim;
    pfgm_dataset *data;
    /* host staging for checkpoints (params->floats each), allocated once at start */
    float *h_params, *h_m, *h_v, *h_ema;
    int64_t step;             /* steps completed */
    int64_t resumed_from;     /* step of the checkpoint resumed from, or -1 */
    pfgm_step *stepper;       /* THE training step (src/train/step.c) with its buffers */
    float *host_batch;        /* [L, N] host staging of this rank's batch */
    pfgm_run_lock *lock;      /* rank 0: the run directory's lock (NULL elsewhere) */
} trainer;

/* Writes <run_dir>/checkpoints/ckpt_<step>.h5 from rank 0 and applies retention.
 * Collective (every rank calls it; only rank 0 writes; a barrier follows so no rank runs
 * ahead of a checkpoint that may fail). */
pfgm_status pfgm_train_save_checkpoint(trainer *t);

/* Resolves opt->resume ("auto", "never", path) and, when a checkpoint is chosen, loads it on
 * rank 0, checks world size, seed and model shape against the current config, broadcasts the
 * state to every rank and restores model, optimizer, data position and step. Collective. */
pfgm_status pfgm_train_resume(trainer *t);

#endif
