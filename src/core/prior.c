/* The PFGM prior (spec §1.7): Beta(N/2, 1/2) radii from two Gamma draws in double
 * precision on the host, uniform directions on the backend (sphere_points op). */
#include "pfgm/prior.h"

#include <math.h>
#include <stdlib.h>

#include "pfgm/ops.h"
#include "util/check.h"
#include "util/philox_impl.h"

/* Box-Muller normal from two f64 uniforms in (0, 1) (the cosine branch only). */
static double normal_f64(const pfgm_rng *r, uint64_t *cursor) {
    const double two_pi = 6.283185307179586476925286766559;
    double u1 = pfgm_rng_uniform_f64(r, (*cursor)++);
    double u2 = pfgm_rng_uniform_f64(r, (*cursor)++);
    return sqrt(-2.0 * log(u1)) * cos(two_pi * u2);
}

pfgm_status pfgm_gamma_draw(const pfgm_rng *r, double shape, uint64_t *cursor, uint64_t end, double *out) {
    if (!(shape > 0.0) || !isfinite(shape))
        return pfgm_error(PFGM_ERR_INVALID_ARG, "gamma draw: shape %g must be > 0", shape);
    const double a = shape < 1.0 ? shape + 1.0 : shape;
    const double d = a - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    /* each attempt uses at most 3 f64 elements; the boost one more */
    while (*cursor + 4 <= end) {
        double x = normal_f64(r, cursor);
        double v = 1.0 + c * x;
        if (v <= 0.0) continue;
        v = v * v * v;
        double u = pfgm_rng_uniform_f64(r, (*cursor)++);
        if (u < 1.0 - 0.0331 * (x * x) * (x * x) || log(u) < 0.5 * x * x + d * (1.0 - v + log(v))) {
            double g = d * v;
            if (shape < 1.0) g *= pow(pfgm_rng_uniform_f64(r, (*cursor)++), 1.0 / shape);
            *out = g;
            return PFGM_OK;
        }
    }
    return pfgm_error(PFGM_ERR_NUMERIC, "gamma draw (shape %g): the sample's Philox window is exhausted", shape);
}

static pfgm_status check_n_zmax(int64_t N, double z_max) {
    if (N <= 0 || (uint64_t)N > PFGM_PRIOR_WINDOW - 4096)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "prior: N=%lld outside [1, %llu]", (long long)N,
                          (unsigned long long)(PFGM_PRIOR_WINDOW - 4096));
    if (!(z_max > 0.0) || !isfinite(z_max))
        return pfgm_error(PFGM_ERR_INVALID_ARG, "prior: sampling.z_max = %g must be > 0", z_max);
    return PFGM_OK;
}

/* Direction normals take words [k W, k W + ceil4(N)); the Gamma draws follow. */
static uint64_t gamma_first_element(int64_t k, int64_t N) {
    return ((uint64_t)k * PFGM_PRIOR_WINDOW + pfgm_philox_ceil4((uint64_t)N)) / 2; /* f64 elements are word pairs */
}

pfgm_status pfgm_prior_radius(const pfgm_rng *r, int64_t k, int64_t N, double z_max, double *R) {
    PFGM_TRY(check_n_zmax(N, z_max));
    if (!r || !R || k < 0 || k >= PFGM_PRIOR_MAX_BATCH)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "prior radius: sample %lld outside [0, %lld) or NULL pointer",
                          (long long)k, (long long)PFGM_PRIOR_MAX_BATCH);
    uint64_t cursor = gamma_first_element(k, N);
    const uint64_t end = ((uint64_t)(k + 1) * PFGM_PRIOR_WINDOW) / 2;
    double ga, gb;
    PFGM_TRY(pfgm_gamma_draw(r, 0.5 * (double)N, &cursor, end, &ga));
    PFGM_TRY(pfgm_gamma_draw(r, 0.5, &cursor, end, &gb));
    /* B/(1-B) = G_a/G_b for B = G_a/(G_a+G_b); G_b > 0 since the uniforms exclude 0 */
    *R = z_max * sqrt(ga / gb);
    return PFGM_OK;
}

pfgm_status pfgm_prior_sample(pfgm_backend *be, const pfgm_rng *rng, int64_t B, int64_t N, double z_max,
                              double upper_norm, float *x, double *radii) {
    PFGM_TRY(check_n_zmax(N, z_max));
    if (!be || !rng || !x)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "prior: NULL backend, rng or buffer");
    if (B <= 0 || B > PFGM_PRIOR_MAX_BATCH)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "prior: batch of %lld outside [1, %lld] (use the batch index as "
                          "the rng step for more)", (long long)B, (long long)PFGM_PRIOR_MAX_BATCH);
    if (!(upper_norm >= 1.0))
        return pfgm_error(PFGM_ERR_INVALID_ARG, "prior: sampling.upper_norm = %g must be >= 1", upper_norm);
    if (rng->stream != PFGM_STREAM_PRIOR)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "prior: rng stream %u is not PFGM_STREAM_PRIOR (%d)",
                          (unsigned)rng->stream, PFGM_STREAM_PRIOR);
    if (!be->sphere_points || !be->alloc || !be->copy)
        return pfgm_error(PFGM_ERR_UNSUPPORTED, "prior: backend '%s' lacks sphere_points", be->name);

    pfgm_status st = PFGM_OK;
    double *host = malloc((size_t)B * sizeof *host);
    void *dev = NULL;
    if (!host) return pfgm_error(PFGM_ERR_NOMEM, "prior: cannot allocate %lld radii", (long long)B);
    for (int64_t k = 0; k < B; ++k) {
        double R;
        PFGM_TRY_GOTO(pfgm_prior_radius(rng, k, N, z_max, &R), done);
        host[k] = R < 1.0 ? 1.0 : (R > upper_norm ? upper_norm : R); /* np.clip(R, 1, upper_norm) */
    }
    PFGM_TRY_GOTO(be->alloc(be, (size_t)B * sizeof(double), &dev), done);
    PFGM_TRY_GOTO(be->copy(be, dev, host, (size_t)B * sizeof(double), PFGM_COPY_H2D), done);
    PFGM_TRY_GOTO(pfgm_op_sphere_points(be, rng, 0, PFGM_PRIOR_WINDOW, B, N, dev, x, N), done);
    if (be->sync) PFGM_TRY_GOTO(be->sync(be), done);
    if (radii)
        for (int64_t k = 0; k < B; ++k) radii[k] = host[k];
done:
    if (dev) be->free(be, dev);
    free(host);
    return st;
}
