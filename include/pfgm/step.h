/* One training step of pfgm-train: THE definition, called by the trainer (src/train/trainer.c),
 * by bench_train_step and by the comparison with the authors' PyTorch step (tests/bench), so
 * that what is benchmarked is the product. On every rank r of W (src/train/step.c):
 *   1. upload this rank's large batch of L charges                         (host -> backend)
 *   2. perturb its first B images into the augmented space (x', z)   (core/perturb, spec §1.4)
 *   3. normalized field targets of the B perturbed points against the charges: this rank's L
 *      (field.reference: local), or all W*L all-gathered in rank order (global)
 *                                                                   (core/field, spec §1.2-1.3)
 *   4. DDPM++ forward on (x', max(z, 1e-10))                                  (nn, spec §1.5)
 *   5. the loss of the network's two outputs [B, N] and [B] against the targets and its
 *      gradients, in the network's own layout (no repacking)                 (core/loss, §1.5)
 *   6. backward; as each layer finishes, the gradient buckets it completes start their
 *      average over ranks (all-reduce, or reduce-scatter under ZeRO-1) on backend memory
 *      (NCCL on GPUs; include/pfgm/grad_sync.h)
 *   7. wait for the buckets; whether every rank's loss and gradients are finite (agreed
 *      over ranks); if not, every rank skips the update and the ranks are named
 *   8. clip by global norm, Adam with warmup, EMA on this rank's ranges (all, or its ZeRO
 *      shard, then the parameters are all-gathered)                    (nn/optim, §1.13)
 * Nothing is allocated inside a step: every buffer is sized by pfgm_step_create. */
#ifndef PFGM_STEP_H
#define PFGM_STEP_H

#include <stddef.h>
#include <stdint.h>

#include "pfgm/backend.h"
#include "pfgm/comm.h"
#include "pfgm/config.h"
#include "pfgm/ddpmpp.h"
#include "pfgm/log.h"
#include "pfgm/optim.h"
#include "pfgm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The phases of a step, in order (timing hooks name them). */
typedef enum pfgm_step_phase {
    PFGM_STEP_PERTURB = 0, /* 1-2: upload of the batch, perturbation */
    PFGM_STEP_FIELD,       /* 3: charges all-gather (global) and the field targets */
    PFGM_STEP_FORWARD,     /* 4 */
    PFGM_STEP_LOSS,        /* 5 */
    PFGM_STEP_BACKWARD,    /* 6 (with zeroing the gradients) */
    PFGM_STEP_ALLREDUCE,   /* 7: the finite agreement and the gradient all-reduce */
    PFGM_STEP_OPTIM,       /* 8 */
    PFGM_STEP_PHASES
} pfgm_step_phase;

/* "perturb", "field targets", "forward", "loss", "backward", "all-reduce", "clip/Adam/EMA". */
const char *pfgm_step_phase_name(pfgm_step_phase p);

typedef struct pfgm_step pfgm_step;

/* Optional callback after each phase of a step (the phase's ops are issued, not necessarily
 * finished on a device: a hook that times a device synchronises itself). A non-OK status
 * ends the step with it. */
typedef struct pfgm_step_hooks {
    void *user;
    pfgm_status (*phase_end)(void *user, pfgm_step *s, pfgm_step_phase phase);
} pfgm_step_hooks;

/* A test-only fault (pfgm-train reads it from PFGM_TEST_FAULT): on rank `rank`, the step
 * whose 1-based number is `step` gets a non-finite loss (grad = 0) or a NaN in its first
 * gradient element after backward (grad = 1). step 0: none. */
typedef struct pfgm_step_fault {
    int rank;
    int64_t step;
    int grad;
} pfgm_step_fault;

typedef struct pfgm_step_setup {
    const pfgm_config *cfg; /* seed, training.{batch_size L, small_batch_size B, M, tau, gamma,
                             * restrict_M, reduce_mean}, model.sigma_end, field.reference,
                             * data.{channels, image_size} (N), optim.* and model.ema_rate
                             * (the step creates the optimizer over this rank's ranges),
                             * distributed.{bucket_mb, zero} */
    pfgm_backend *be;
    pfgm_ddpmpp *model;     /* created for B samples in PFGM_DDPMPP_TRAIN mode on be, with
                             * desc.param_multiple = pfgm_step_param_multiple(W) */

    pfgm_comm *comm;        /* control collectives (the finite agreement); NULL: one process */
    pfgm_comm *dcomm;       /* collectives on backend memory: the gradient all-reduce and the
                             * charges all-gather; NULL: comm (right for host memory) */
    const pfgm_logger *lg;  /* warnings of non-finite steps; NULL: silent */
    pfgm_step_fault fault;  /* tests only; zero: none */
} pfgm_step_setup;

/* What the model's trainable prefix must be padded to for world size W (the desc's
 * param_multiple): W * PFGM_GRAD_BLOCK floats (include/pfgm/grad_sync.h). */
int64_t pfgm_step_param_multiple(int world_size);

/* Allocates the step's buffers in backend memory ([L, N] charges, [W*L, N] for the global
 * reference, [B, N+1] perturbed points and targets, [B, N] + [B] network inputs and output
 * gradients, the field workspace) and a host staging list of W verdicts. Errors:
 * PFGM_ERR_INVALID_ARG (NULL setup pieces, B > L, sizes <= 0), PFGM_ERR_NOMEM naming the
 * buffer. */
pfgm_status pfgm_step_create(const pfgm_step_setup *setup, pfgm_step **out);
void pfgm_step_destroy(pfgm_step *s);

/* The step's optimizer (its state is this rank's shard under distributed.zero: 1). */
pfgm_optim *pfgm_step_optim(pfgm_step *s);
/* The whole optimizer state for a checkpoint, in host arrays of the parameter buffer's
 * `floats` each (m, v, ema) and the update count: with ZeRO (W > 1, distributed.zero: 1) a
 * collective over comm that assembles every rank's shard on every rank (all-reduce SUM of
 * arrays that are zero outside the shard: exact); without, rank 0 exports and the other
 * ranks return at once. Errors: the backend's and the communicator's. */
pfgm_status pfgm_step_export_state(pfgm_step *s, float *m, float *v, float *ema, int64_t *updates);

/* What one step reports. */
typedef struct pfgm_step_result {
    double loss;                /* this rank's batch loss (NaN when it was not finite) */
    int skipped;                /* 1: a rank had a non-finite loss or gradient; no rank updated */
    char nonfinite_ranks[256];  /* those ranks and what ("1 (gradient), 3 (loss)"); "" if none */
    pfgm_optim_stats stats;     /* of the update; grad_norm and lr NaN when skipped */
    double grad_wait_s;         /* seconds this rank spent after backward starting the remaining
                                 * gradient buckets and waiting for all: the part of the gradient
                                 * average not hidden behind the backward pass */
    double param_gather_s;      /* seconds in the parameter all-gather after a ZeRO-1 update (0
                                 * without ZeRO): exposed communication too */
} pfgm_step_result;

/* Runs step `step` (0-based: the number of steps completed before it, which keys the
 * perturbation and dropout draws, spec §1.4, and the optimizer's warmup) on host_batch
 * [L, N] (host, this rank's charges in data scale). Collective over comm and dcomm when
 * W > 1. hooks may be NULL. A non-finite loss or gradient is not an error: every rank skips
 * the update and res says so. Errors: those of the ops, the communicators and the hooks. */
pfgm_status pfgm_step_run(pfgm_step *s, int64_t step, const float *host_batch, const pfgm_step_hooks *hooks,
                          pfgm_step_result *res);

/* The step's buffers after (or, from a hook, during) a step, in backend memory: for tests and
 * the benchmarks' exports. Valid until the next step or pfgm_step_destroy. */
typedef struct pfgm_step_view {
    int64_t N, L, B;
    const float *charges;   /* [L, N] */
    const float *perturbed; /* [B, N+1] */
    const float *targets;   /* [B, N+1] */
    const float *net_x;     /* [B, N] network output (after FORWARD) */
    const float *net_z;     /* [B] */
    double loss;            /* after LOSS */
    size_t field_workspace_bytes;
    size_t optim_state_bytes; /* this rank's Adam m, v and EMA in backend memory (ZeRO: its shard) */
    int buckets;              /* gradient buckets (include/pfgm/grad_sync.h) */
    int64_t bucket_floats;    /* floats in the largest (the top) bucket */
} pfgm_step_view;
void pfgm_step_get_view(const pfgm_step *s, pfgm_step_view *v);

/* `field.reference: global` (DESIGN.md): all-gather every rank's L charges through the
 * communicator into charges_all [W*L, N] (rank order), W = comm->world_size. Buffers must
 * be in the memory the communicator uses (host for single/mpi, device for nccl). The
 * gather belongs to the step, not to the field math (core does no communication).
 * Errors: PFGM_ERR_INVALID_ARG for L or N <= 0 or NULL buffers; the communicator's. */
pfgm_status pfgm_field_gather_charges(pfgm_comm *comm, int64_t L, int64_t N, const float *charges,
                                      float *charges_all);

/* Targets against all ranks' charges: pfgm_field_gather_charges into charges_all
 * [W*L, N], then pfgm_field_targets (core/field.h) with W*L charges (workspace sized for B
 * and W*L). A collective: every rank calls it with the same B, L and N. Errors: as the two
 * calls. */
pfgm_status pfgm_field_targets_global(pfgm_comm *comm, pfgm_backend *be, int64_t B, int64_t L, int64_t N,
                                      const float *perturbed, const float *charges, float *charges_all,
                                      double gamma, void *workspace, size_t workspace_bytes, float *targets);

#ifdef __cplusplus
}
#endif
#endif /* PFGM_STEP_H */
