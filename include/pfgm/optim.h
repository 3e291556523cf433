/* The optimizer of the authors' training loop (PFGM_SPEC.md §1.13; run_lib.py, losses.py
 * optimization_manager, models/ema.py, torch.optim.Adam, torch.nn.utils.clip_grad_norm_):
 * linear learning-rate warmup, global-norm gradient clipping, Adam, and the EMA of the
 * weights, on the model's flat float32 parameter and gradient buffers through the backend.
 * Exact formulas and step-index conventions: docs/optimizer.md.
 *
 * One step, as the authors' step_fn runs it after loss.backward():
 *   lr    = lr0 * min(step / warmup, 1)                      (warmup > 0; step from 0)
 *   norm  = ||g||_2 over the trainable ranges; if grad_clip > 0 and
 *           c = grad_clip / (norm + 1e-6) < 1: g *= c         (gradients clipped in place)
 *   Adam  with t = updates + 1 (torch's per-parameter step count)
 *   EMA   with decay = min(ema_rate, (1 + t) / (10 + t))       (models/ema.py num_updates)
 *   updates += 1
 *
 * Parameters outside the trainable ranges (the fixed Gaussian Fourier W of the Fourier
 * embedding, which the authors create with requires_grad=False) get no clipping
 * contribution, no Adam step and no EMA update; their EMA entries keep the copy taken at
 * creation, so the EMA buffer is always a complete parameter vector for sampling. */
#ifndef PFGM_OPTIM_H
#define PFGM_OPTIM_H

#include <stdint.h>

#include "pfgm/backend.h"
#include "pfgm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Hyper-parameters, named as the authors' config keys (optim.*, model.ema_rate). The
 * trainer fills them from the resolved configuration. */
typedef struct pfgm_optim_hparams {
    double lr;           /* optim.lr: peak learning rate lr0, > 0 */
    double beta1;        /* optim.beta1, in [0, 1) */
    double beta2;        /* optim.beta2, in [0, 1); the authors hard-code 0.999 */
    double eps;          /* optim.eps, > 0 */
    double weight_decay; /* optim.weight_decay, >= 0: torch.optim.Adam's L2 form g += wd*p */
    int64_t warmup;      /* optim.warmup: linear warmup steps, >= 0; 0 = none */
    double grad_clip;    /* optim.grad_clip: max global L2 norm; <= 0 = no clipping */
    double ema_rate;     /* model.ema_rate: EMA decay cap, in [0, 1] */
} pfgm_optim_hparams;

/* A half-open range [offset, offset + count) of the flat parameter buffer. */
typedef struct pfgm_optim_range {
    int64_t offset;
    int64_t count;
} pfgm_optim_range;

/* What one step did, for logging. */
typedef struct pfgm_optim_stats {
    double grad_norm; /* global L2 norm of the trainable gradients before clipping */
    double lr;        /* learning rate used by this step's Adam update */
    double ema_decay; /* decay used by this step's EMA update */
    int clipped;      /* 1 when the gradients were scaled down */
} pfgm_optim_stats;

typedef struct pfgm_optim pfgm_optim;

/* The authors' values (PFGM_SPEC.md §2, cifar10_ddpmpp): lr 2e-4, beta1 0.9, beta2 0.999,
 * eps 1e-8, weight_decay 0, warmup 5000, grad_clip 1, ema_rate 0.9999. */
void pfgm_optim_hparams_defaults(pfgm_optim_hparams *hp);

/* Checks every field's range. Errors: PFGM_ERR_INVALID_ARG naming the key and value. */
pfgm_status pfgm_optim_hparams_check(const pfgm_optim_hparams *hp);

/* The warmup schedule of losses.py optimization_manager: lr0 * min(step / warmup, 1) for
 * warmup > 0 (so 0 at step 0), lr0 for warmup <= 0. `step` is the 0-based index of the
 * optimizer step about to be taken (the authors' state['step'] before its increment). */
double pfgm_optim_lr_at(const pfgm_optim_hparams *hp, int64_t step);

/* The EMA decay of models/ema.py for the t-th update (t = 1 for the first):
 * min(ema_rate, (1 + t) / (10 + t)). */
double pfgm_optim_ema_decay_at(double ema_rate, int64_t t);

/* Creates an optimizer for n_params parameters in backend memory. Allocates m, v and the
 * EMA shadow (n_params floats each, zeroed m and v; shadow = a copy of `params`, as
 * models/ema.py clones the parameters) once, here; steps allocate nothing.
 *   params     [n_params] backend memory: the initial parameters (read only here)
 *   trainable  [n_ranges] ascending, non-overlapping, non-empty ranges inside [0, n_params),
 *              copied; NULL with n_ranges = 0 means every parameter is trainable
 * Errors: PFGM_ERR_INVALID_ARG (bad hyper-parameters, sizes or ranges, named),
 * PFGM_ERR_UNSUPPORTED (the backend lacks an optimizer op), PFGM_ERR_NOMEM. */
pfgm_status pfgm_optim_create(pfgm_backend *be, const pfgm_optim_hparams *hp, int64_t n_params,
                              const float *params, const pfgm_optim_range *trainable, int64_t n_ranges,
                              pfgm_optim **out);

/* The same optimizer for ZeRO-1 (distributed.zero: 1): state for the `owned` ranges only
 * (this rank's shard of the trainable parameters, ascending, non-overlapping, non-empty),
 * m, v and the EMA shadow packed in range order (pfgm_optim_state_floats of them each;
 * shadow = a copy of params over the owned ranges). Steps update only the owned ranges, with
 * the global norm given by the caller (pfgm_optim_step_norm). Export/import move the owned
 * ranges between the packed state and full n_params host arrays at the parameters' offsets
 * (other entries are not touched). Errors: as pfgm_optim_create; n_owned < 1. */
pfgm_status pfgm_optim_create_sharded(pfgm_backend *be, const pfgm_optim_hparams *hp, int64_t n_params,
                                      const float *params, const pfgm_optim_range *owned, int64_t n_owned,
                                      pfgm_optim **out);

/* Floats in each of m, v and ema: n_params, or the owned count of a sharded optimizer. */
int64_t pfgm_optim_state_floats(const pfgm_optim *opt);
/* The ranges the optimizer updates (*n of them), ascending; valid until destroy. */
const pfgm_optim_range *pfgm_optim_ranges(const pfgm_optim *opt, int64_t *n);

/* Frees the optimizer and its buffers (NULL is a no-op). */
void pfgm_optim_destroy(pfgm_optim *opt);

/* One optimizer step after backward: clip -> Adam -> EMA, in that order (spec §1.13 steps
 * 3-6). `step` is the 0-based training step (the authors' state['step']), used only for
 * the warmup; the Adam bias correction and the EMA decay use the optimizer's own update
 * count (pfgm_optim_updates), which equals `step` in a run that started at step 0.
 *   params [n_params] backend memory, updated in place
 *   grads  [n_params] backend memory, scaled in place when clipped (as clip_grad_norm_)
 *   stats  may be NULL
 * Errors: PFGM_ERR_INVALID_ARG (step < 0), PFGM_ERR_NUMERIC when the gradient norm is
 * NaN or infinite (then nothing has been modified: params, grads, state and count are as
 * before the call), the backend's errors. */
pfgm_status pfgm_optim_step(pfgm_optim *opt, float *params, float *grads, int64_t step,
                            pfgm_optim_stats *stats);

/* pfgm_optim_step with the global L2 norm of all trainable gradients given (norm >= 0): the
 * sharded optimizer's step, whose rank sees only its ranges (the training step computes the
 * norm over every rank's shard, src/train/grad_sync.c). Clip, Adam and EMA as above, on the
 * optimizer's ranges. Errors: as pfgm_optim_step (PFGM_ERR_NUMERIC for a non-finite norm). */
pfgm_status pfgm_optim_step_norm(pfgm_optim *opt, float *params, float *grads, int64_t step, double norm,
                                 pfgm_optim_stats *stats);

/* State, for checkpoints. The buffers are backend memory of pfgm_optim_state_floats floats
 * (n_params for pfgm_optim_create); the pointers stay valid until pfgm_optim_destroy. */
int64_t pfgm_optim_updates(const pfgm_optim *opt); /* steps taken: Adam's step count, EMA's num_updates */
float *pfgm_optim_m(pfgm_optim *opt);   /* Adam first moment (exp_avg) */
float *pfgm_optim_v(pfgm_optim *opt);   /* Adam second moment (exp_avg_sq) */
float *pfgm_optim_ema(pfgm_optim *opt); /* EMA shadow parameters */

/* Copies the state to host arrays of n_params floats each (any of m, v, ema may be NULL to
 * skip it) and the update count to *updates (may be NULL); a sharded optimizer writes its
 * owned ranges only. Errors: the backend's. */
pfgm_status pfgm_optim_export(pfgm_optim *opt, float *m, float *v, float *ema, int64_t *updates);

/* Replaces the whole state (sharded: the owned ranges, read at their offsets) from host
 * arrays of n_params floats (none may be NULL) and the
 * update count; a step after this continues the exported run to the bit. Checks the values
 * first and changes nothing on failure. Errors: PFGM_ERR_INVALID_ARG (NULL array,
 * updates < 0), PFGM_ERR_NUMERIC (a NaN/Inf in m, v or ema, or a negative v, naming the
 * array and index), the backend's. */
pfgm_status pfgm_optim_import(pfgm_optim *opt, const float *m, const float *v, const float *ema,
                              int64_t updates);

#ifdef __cplusplus
}
#endif
#endif /* PFGM_OPTIM_H */
