/* The PFGM training loss and its gradient (spec §1.5) through the backend's loss op. */
#include "pfgm/loss.h"

#include <math.h>

#include "pfgm/ops.h"

pfgm_status pfgm_loss(pfgm_backend *be, int64_t B, int64_t N, const float *pred_x, const float *pred_z,
                      const float *target, int reduce_mean, float *grad_x, float *grad_z, double *loss) {
    if (!be || !pred_x || !pred_z || !target || !loss)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "loss: NULL backend or buffer");
    pfgm_status st = pfgm_op_loss_mse(be, B, N, pred_x, pred_z, target, reduce_mean, grad_x, grad_z, loss);
    if (st != PFGM_OK) return st;
    if (!isfinite(*loss)) return pfgm_error(PFGM_ERR_NUMERIC, "loss: the batch loss is %g", *loss);
    return PFGM_OK;
}
