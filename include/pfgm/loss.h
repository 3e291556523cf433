/* The PFGM training loss (spec §1.5; losses.py get_loss_fn): the prediction
 * [net_x flattened (N values), net_z (1 value)] against the normalized field target,
 *   loss_k = 0.5 * sum_d (pred_kd - target_kd)^2   (training.reduce_mean false: CIFAR, CelebA)
 *   loss_k = mean_d (pred_kd - target_kd)^2         (training.reduce_mean true: bedroom)
 * over the N+1 values, and the batch loss is the mean over the B small-batch samples. */
#ifndef PFGM_LOSS_H
#define PFGM_LOSS_H

#include <stdint.h>

#include "pfgm/backend.h"
#include "pfgm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* pred, target [B, N+1] in backend memory; *loss (host) the batch loss; grad [B, N+1]
 * (backend memory, may be NULL) = dloss/dpred = (pred - target)/B for the 0.5*sum form and
 * 2 (pred - target)/(B (N+1)) for the mean form. grad may alias pred.
 * Errors: PFGM_ERR_INVALID_ARG for B or N <= 0 or NULL pointers; PFGM_ERR_NUMERIC when the
 * loss is not finite (grad is written); PFGM_ERR_UNSUPPORTED when the backend lacks the op. */
pfgm_status pfgm_loss(pfgm_backend *be, int64_t B, int64_t N, const float *pred, const float *target, int reduce_mean,
                      float *grad, double *loss);

#ifdef __cplusplus
}
#endif
#endif /* PFGM_LOSS_H */
