/* The PFGM training loss and its gradient (spec §1.5) through the backend's loss op. */
#include "pfgm/loss.h"

#include <math.h>

pfgm_status pfgm_loss(pfgm_backend *be, int64_t B, int64_t N, const float *pred, const float *target, int reduce_mean,
                      float *grad, double *loss) {
    if (!be || !pred || !target || !loss)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "loss: NULL backend or buffer");
    if (B <= 0 || N <= 0)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "loss: sizes must be positive (B=%lld N=%lld)", (long long)B,
                          (long long)N);
    if (!be->loss_mse) return pfgm_error(PFGM_ERR_UNSUPPORTED, "loss: backend '%s' lacks the op", be->name);
    pfgm_status st = be->loss_mse(be, B, N + 1, pred, target, reduce_mean, grad, loss);
    if (st != PFGM_OK) return st;
    if (!isfinite(*loss)) return pfgm_error(PFGM_ERR_NUMERIC, "loss: the batch loss is %g", *loss);
    return PFGM_OK;
}
