/* The training perturbation kernel (spec §1.4; paper Algorithm 2 and Appendix B.1.1;
 * models/utils_poisson.py::forward_pz after the abs() fix): each clean point x_k of the
 * small batch is lifted to a perturbed point (x_k + r_k u_k, z_k) of the augmented space,
 *   m_k ~ U[0, M)  (redrawn from U[0, int(0.7 M)) when restrict_M and z0_k < 0.005),
 *   z0_k = |eps_z|, eps_z ~ N(0, sigma_end^2),   s_k = (1 + tau)^m_k,
 *   r_k = |eps_x| s_k, eps_x ~ N(0, sigma_end^2 I_N),   u_k uniform on the unit sphere,
 *   z_k = z0_k s_k.
 * Randomness comes from Philox stream PFGM_STREAM_PERTURB at (seed, rank, step), so the
 * draws depend only on those integers and the sample index; layout in docs/numerics.md. */
#ifndef PFGM_PERTURB_H
#define PFGM_PERTURB_H

#include <stdint.h>

#include "pfgm/backend.h"
#include "pfgm/rng.h"
#include "pfgm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Hyper-parameters under the authors' config names. */
typedef struct pfgm_perturb_params {
    int64_t M;        /* training.M: 291 (CIFAR, CelebA), 356 (bedroom) */
    double tau;       /* training.tau: 0.03 */
    double sigma_end; /* model.sigma_end: 0.01 */
    int restrict_M;   /* training.restrict_M: 1 in every config */
} pfgm_perturb_params;

/* The authors' values: M 291, tau 0.03, sigma_end 0.01, restrict_M on. */
pfgm_perturb_params pfgm_perturb_params_default(void);

/* Philox words one sample uses: 4 + 2*ceil4(N). Sample k's elements start at k times this:
 *   +0 uniform -> m,   +1 uniform -> the restrict_M redraw of m,
 *   +2 normal (words +2, +3) -> eps_z,
 *   +4 ... +4+N-1 normals -> eps_x,   +4+ceil4(N) ... +4+ceil4(N)+N-1 normals -> u. */
uint64_t pfgm_perturb_stride(int64_t N);

/* Perturbs the clean small batch x [B, N] into out [B, N+1] (x', then z unclamped), in
 * backend memory. rng: {seed, rank, PFGM_STREAM_PERTURB, step} (the stream is checked).
 * x_net [B, N] (may be NULL): contiguous copy of the x' part for the network input;
 * z_net [B] (may be NULL): z clamped below at 1e-10, the network's conditioning input
 * (spec §1.4: the target uses the unclamped z).
 * Errors (nothing written): PFGM_ERR_INVALID_ARG for B or N <= 0, M <= 0, tau <= 0 or
 * sigma_end <= 0 (or not finite), a NULL buffer, a wrong stream, or B*stride beyond the
 * 2^34 elements of a Philox stream; PFGM_ERR_UNSUPPORTED when the backend lacks the op. */
pfgm_status pfgm_perturb(pfgm_backend *be, const pfgm_rng *rng, const pfgm_perturb_params *p, int64_t B, int64_t N,
                         const float *x, float *out, float *x_net, float *z_net);

#ifdef __cplusplus
}
#endif
#endif /* PFGM_PERTURB_H */
