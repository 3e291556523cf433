/* The training perturbation kernel (spec §1.4): argument checks and the Philox layout;
 * the per-sample arithmetic is the backend's perturb op (cpu_math.c). */
#include "pfgm/perturb.h"

#include <math.h>

#include "pfgm/ops.h"
#include "util/check.h"
#include "util/philox_impl.h"

/* Elements addressable in one (seed, rank, stream, step): a 32-bit block counter times 4. */
#define PHILOX_STREAM_ELEMENTS (UINT64_C(1) << 34)

pfgm_perturb_params pfgm_perturb_params_default(void) {
    return (pfgm_perturb_params){.M = 291, .tau = 0.03, .sigma_end = 0.01, .restrict_M = 1};
}

uint64_t pfgm_perturb_stride(int64_t N) { return pfgm_philox_perturb_stride((uint64_t)(N > 0 ? N : 0)); }

pfgm_status pfgm_perturb(pfgm_backend *be, const pfgm_rng *rng, const pfgm_perturb_params *p, int64_t B, int64_t N,
                         const float *x, float *out, float *x_net, float *z_net) {
    if (!be || !rng || !p || !x || !out)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "perturb: NULL backend, rng, params or buffer");
    if (B <= 0 || N <= 0)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "perturb: sizes must be positive (B=%lld N=%lld)", (long long)B,
                          (long long)N);
    if (p->M <= 0 || !(p->tau > 0.0) || !isfinite(p->tau) || !(p->sigma_end > 0.0) || !isfinite(p->sigma_end))
        return pfgm_error(PFGM_ERR_INVALID_ARG,
                          "perturb: training.M = %lld, training.tau = %g and model.sigma_end = %g must be > 0",
                          (long long)p->M, p->tau, p->sigma_end);
    if (rng->stream != PFGM_STREAM_PERTURB)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "perturb: rng stream %u is not PFGM_STREAM_PERTURB (%d)",
                          (unsigned)rng->stream, PFGM_STREAM_PERTURB);
    if ((uint64_t)B > PHILOX_STREAM_ELEMENTS / pfgm_perturb_stride(N))
        return pfgm_error(PFGM_ERR_INVALID_ARG, "perturb: B=%lld x %llu draws exceed one Philox stream (2^34)",
                          (long long)B, (unsigned long long)pfgm_perturb_stride(N));
    return pfgm_op_perturb(be, rng, B, N, x, p->M, p->tau, p->sigma_end, p->restrict_M, out, x_net, z_net);
}
