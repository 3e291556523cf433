/* The PFGM prior on the z = z_max hyperplane (spec §1.7; paper Appendix A.4;
 * methods.py::Poisson.prior_sampling): the uniform hemisphere of radius -> infinity
 * projected onto the plane z = z_max. For each sample,
 *   B ~ Beta(N/2, 1/2),  R = z_max sqrt(B / (1 - B)),  R clipped to [1, sampling.upper_norm],
 *   x = R u with u uniform on the unit sphere of R^N,  z = z_max.
 * The radius density is p(R) ~ R^(N-1) / (R^2 + z_max^2)^((N+1)/2). The Beta draw is the
 * ratio of two Gamma draws in double precision (Marsaglia-Tsang, with the U^(1/a) boost
 * for a < 1): B / (1 - B) = G_a / G_b, so no 1 - B cancellation. Draws come from Philox
 * stream PFGM_STREAM_PRIOR: sample k owns words [k W, (k+1) W), W = 2^20 (its direction
 * normals first, then the rejection sampler's words), so the rejection loops stay
 * deterministic per sample; docs/numerics.md. */
#ifndef PFGM_PRIOR_H
#define PFGM_PRIOR_H

#include <stdint.h>

#include "pfgm/backend.h"
#include "pfgm/rng.h"
#include "pfgm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Philox words owned by one sample, and so the largest batch per call (2^34 / window). */
#define PFGM_PRIOR_WINDOW (UINT64_C(1) << 20)
#define PFGM_PRIOR_MAX_BATCH (INT64_C(1) << 14)

/* Gamma(shape, 1) in double from the words of stream r starting at f64 element *cursor
 * (pfgm_rng_uniform_f64 numbering); *cursor advances past the elements used, which must
 * stay below `end`. Marsaglia & Tsang (2000), ACM TOMS 26(3); shape < 1 uses
 * Gamma(shape + 1) U^(1/shape). Errors: PFGM_ERR_INVALID_ARG for shape <= 0;
 * PFGM_ERR_NUMERIC when the window [*cursor, end) runs out (probability ~ 0). */
pfgm_status pfgm_gamma_draw(const pfgm_rng *r, double shape, uint64_t *cursor, uint64_t end, double *out);

/* Unclipped prior radius R_k = z_max sqrt(G_{N/2} / G_{1/2}) of sample k (spec §1.7).
 * Errors: PFGM_ERR_INVALID_ARG for N <= 0, z_max <= 0, k outside [0, PFGM_PRIOR_MAX_BATCH);
 * those of pfgm_gamma_draw. */
pfgm_status pfgm_prior_radius(const pfgm_rng *r, int64_t k, int64_t N, double z_max, double *R);

/* Draws B prior samples x [B, N] (backend memory) on the plane z = z_max: R_k clipped to
 * [1, upper_norm] times a uniform direction. rng: {seed, rank, PFGM_STREAM_PRIOR, batch
 * index}. radii (host, may be NULL) receives the clipped R_k. Allocates B doubles of host
 * and backend memory for the radii (sampling, not a training step).
 * Errors (nothing written to x): PFGM_ERR_INVALID_ARG for B outside [1, 2^14], N <= 0 or
 * N > 2^20 - 4096, z_max <= 0, upper_norm < 1, a wrong stream or NULL buffers;
 * PFGM_ERR_NOMEM; PFGM_ERR_UNSUPPORTED when the backend lacks sphere_points. */
pfgm_status pfgm_prior_sample(pfgm_backend *be, const pfgm_rng *rng, int64_t B, int64_t N, double z_max,
                              double upper_norm, float *x, double *radii);

#ifdef __cplusplus
}
#endif
#endif /* PFGM_PRIOR_H */
