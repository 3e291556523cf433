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

/* pred_x [B, N] and pred_z [B] (the network's outputs, backend memory) form the prediction
 * [pred_x row, pred_z] of each sample; target [B, N+1] (backend memory) the normalized field
 * target; *loss (host) the batch loss; grad_x [B, N] and grad_z [B] (backend memory, each may
 * be NULL) = dloss/dpred = (pred - target)/B for the 0.5*sum form and 2 (pred - target)/(B
 * (N+1)) for the mean form: the gradients the network's backward takes, with no repacking.
 * grad_x may alias pred_x and grad_z pred_z.
 * Errors: PFGM_ERR_INVALID_ARG for B or N <= 0 or NULL pointers; PFGM_ERR_NUMERIC when the
 * loss is not finite (the gradients are written); PFGM_ERR_UNSUPPORTED when the backend lacks
 * the op. */
pfgm_status pfgm_loss(pfgm_backend *be, int64_t B, int64_t N, const float *pred_x, const float *pred_z,
                      const float *target, int reduce_mean, float *grad_x, float *grad_z, double *loss);

#ifdef __cplusplus
}
#endif
#endif /* PFGM_LOSS_H */
