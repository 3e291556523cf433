/* Normalized empirical Poisson field targets (spec §1.2-1.3, §3.6; paper §3.2 and
 * Algorithm 1): for B perturbed points x~_k = (x_k, z_k) and L charges y_i = (y_i, 0),
 *   c_{k,i} = softmax_i(-(N+1) ln |x~_k - y_i|),   E_k = sum_i c_{k,i} (y_i - x~_k),
 *   target_k = sqrt(N) E_k / (|E_k| + gamma).
 * Computed as two GEMMs through the backend: squared distances |a|^2 + |b|^2 - 2 a.b (one
 * [B, N] x [N, L] product; the z of the perturbed point adds z^2 to |a|^2 because charges
 * have z = 0), log-domain weights, then E = C.Y - (sum_i c) x~ (a [B, L] x [L, N] product).
 * Extra memory O(B*L + B + L) in a workspace the caller allocates once; the O(B*L*N)
 * broadcast of the authors' code is never formed. Buffers are backend memory, row-major
 * float32: perturbed [B, N+1] (last column z), charges [L, N], targets [B, N+1].
 * Numerics (d = 0, precision): docs/numerics.md. */
#ifndef PFGM_FIELD_H
#define PFGM_FIELD_H

#include <stddef.h>
#include <stdint.h>

#include "pfgm/backend.h"
#include "pfgm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of backend workspace pfgm_field_targets needs for B points against L charges:
 * the [B, L] distance/weight matrix and three norm vectors, each 64-byte aligned.
 * Returns 0 for non-positive sizes. */
size_t pfgm_field_workspace_bytes(int64_t B, int64_t L);

/* Normalized field targets of B perturbed points against L charges (spec §1.2-1.3).
 * perturbed [B, N+1], charges [L, N], targets [B, N+1] (written only on success; may not
 * alias the inputs), workspace of at least pfgm_field_workspace_bytes(B, L) bytes in
 * backend memory. gamma = training.gamma (5 in every config; 0 gives unit-norm * sqrt(N)).
 * Errors (nothing computed): PFGM_ERR_INVALID_ARG for N, B or L <= 0, L < B, gamma < 0 or
 * not finite, a NULL buffer or a workspace that is too small; PFGM_ERR_NUMERIC when a
 * perturbed point or charge has a non-finite value; PFGM_ERR_UNSUPPORTED when the backend
 * lacks the field ops; the backend's errors. */
pfgm_status pfgm_field_targets(pfgm_backend *be, int64_t B, int64_t L, int64_t N, const float *perturbed,
                               const float *charges, double gamma, void *workspace, size_t workspace_bytes,
                               float *targets);

/* The authors' formula, literally (spec §1.2-1.3, losses.py), in double precision on host
 * memory: d = |x~ - y|, w = (min_j d_j / (d + 1e-7))^(N+1), c = w / (sum w + 1e-7),
 * E = sum_i c_i (y_i - x~), target = sqrt(N) E / (|E| + gamma), with the O(B*L*N)
 * broadcast done one (k, i) pair at a time. The cross-implementation check of the GEMM
 * path and the baseline of the benchmark; not for training. Same shapes as above, host
 * arrays, targets double. Errors: PFGM_ERR_INVALID_ARG as pfgm_field_targets. */
pfgm_status pfgm_field_targets_direct_f64(int64_t B, int64_t L, int64_t N, const float *perturbed,
                                          const float *charges, double gamma, double *targets);

#ifdef __cplusplus
}
#endif
#endif /* PFGM_FIELD_H */
