/* Normalized empirical Poisson field targets (spec §1.2-1.3, §3.6) as two GEMMs through
 * the backend, the `field.reference: global` all-gather, and the authors' broadcast
 * formula in double precision (the cross-implementation check). */
#include "pfgm/field.h"

#include <math.h>

#include "pfgm/ops.h"
#include "util/check.h"

#define ALIGN64(n) (((n) + (size_t)63) & ~(size_t)63)

/* Workspace layout: gc [B, L] | a2 [B] | b2 [L] | csum [B], float32, each 64-byte aligned. */
size_t pfgm_field_workspace_bytes(int64_t B, int64_t L) {
    if (B <= 0 || L <= 0) return 0;
    return ALIGN64((size_t)B * (size_t)L * sizeof(float)) + 2 * ALIGN64((size_t)B * sizeof(float)) +
           ALIGN64((size_t)L * sizeof(float));
}

static pfgm_status check_args(int64_t B, int64_t L, int64_t N, double gamma) {
    if (N <= 0 || B <= 0 || L <= 0)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "field targets: sizes must be positive (B=%lld L=%lld N=%lld)",
                          (long long)B, (long long)L, (long long)N);
    if (L < B)
        return pfgm_error(PFGM_ERR_INVALID_ARG,
                          "field targets: L=%lld charges < B=%lld perturbed points (the small batch is part "
                          "of the large batch, spec §1.2)",
                          (long long)L, (long long)B);
    if (!(gamma >= 0.0) || !isfinite(gamma))
        return pfgm_error(PFGM_ERR_INVALID_ARG, "field targets: training.gamma = %g must be finite and >= 0", gamma);
    return PFGM_OK;
}

pfgm_status pfgm_field_targets(pfgm_backend *be, int64_t B, int64_t L, int64_t N, const float *perturbed,
                               const float *charges, double gamma, void *workspace, size_t workspace_bytes,
                               float *targets) {
    PFGM_TRY(check_args(B, L, N, gamma));
    if (!be || !perturbed || !charges || !targets || !workspace)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "field targets: NULL backend or buffer");
    size_t need = pfgm_field_workspace_bytes(B, L);
    if (workspace_bytes < need)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "field targets: workspace of %zu bytes, need %zu (B=%lld L=%lld)",
                          workspace_bytes, need, (long long)B, (long long)L);
    if (!be->gemm || !be->row_sumsq || !be->field_weights || !be->field_finish)
        return pfgm_error(PFGM_ERR_UNSUPPORTED, "field targets: backend '%s' lacks the field ops", be->name);

    char *ws = workspace;
    float *gc = (float *)ws;
    float *a2 = (float *)(ws + ALIGN64((size_t)B * (size_t)L * sizeof(float)));
    float *b2 = (float *)((char *)a2 + ALIGN64((size_t)B * sizeof(float)));
    float *csum = (float *)((char *)b2 + ALIGN64((size_t)L * sizeof(float)));

    /* |x~_k|^2 over N+1 values (z included), |y_i|^2 over N, and x_k . y_i: [B, L]. */
    PFGM_TRY(pfgm_op_row_sumsq(be, B, N + 1, perturbed, N + 1, a2));
    PFGM_TRY(pfgm_op_row_sumsq(be, L, N, charges, N, b2));
    PFGM_TRY(pfgm_op_gemm(be, 0, 1, B, L, N, 1.0f, perturbed, N + 1, charges, N, 0.0f, gc, L));
    /* c = softmax(-(N+1)/2 ln d^2); fails on a non-finite norm before targets is touched. */
    PFGM_TRY(pfgm_op_field_weights(be, B, L, 0.5 * (double)(N + 1), a2, b2, gc, csum));
    /* E_x = C.Y - (sum c) x, E_z = -(sum c) z, then sqrt(N) E / (|E| + gamma). */
    PFGM_TRY(pfgm_op_gemm(be, 0, 0, B, N, L, 1.0f, gc, L, charges, N, 0.0f, targets, N + 1));
    PFGM_TRY(pfgm_op_field_finish(be, B, N, gamma, csum, perturbed, targets));
    return PFGM_OK;
}

pfgm_status pfgm_field_targets_direct_f64(int64_t B, int64_t L, int64_t N, const float *perturbed,
                                          const float *charges, double gamma, double *targets) {
    PFGM_TRY(check_args(B, L, N, gamma));
    if (!perturbed || !charges || !targets)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "field targets (direct): NULL buffer");
    const double sqrt_n = sqrt((double)N);
    for (int64_t k = 0; k < B; ++k) {
        const float *xt = perturbed + k * (N + 1);
        double *e = targets + k * (N + 1);
        /* pass 1: distances and their minimum */
        double dmin = INFINITY;
        for (int64_t i = 0; i < L; ++i) {
            double sq = (double)xt[N] * (double)xt[N];
            for (int64_t j = 0; j < N; ++j) {
                double d = (double)xt[j] - (double)charges[i * N + j];
                sq += d * d;
            }
            double d = sqrt(sq);
            dmin = d < dmin ? d : dmin;
        }
        /* pass 2: w_i = (d_min / (d_i + 1e-7))^(N+1), E = sum w_i (y_i - x~) / (sum w + 1e-7) */
        double wsum = 0.0;
        for (int64_t j = 0; j <= N; ++j) e[j] = 0.0;
        for (int64_t i = 0; i < L; ++i) {
            double sq = (double)xt[N] * (double)xt[N];
            for (int64_t j = 0; j < N; ++j) {
                double d = (double)xt[j] - (double)charges[i * N + j];
                sq += d * d;
            }
            double w = pow(dmin / (sqrt(sq) + 1e-7), (double)(N + 1));
            wsum += w;
            for (int64_t j = 0; j < N; ++j) e[j] += w * ((double)charges[i * N + j] - (double)xt[j]);
            e[N] += w * (0.0 - (double)xt[N]);
        }
        double norm = 0.0;
        for (int64_t j = 0; j <= N; ++j) {
            e[j] /= wsum + 1e-7;
            norm += e[j] * e[j];
        }
        double den = sqrt(norm) + gamma;
        double scale = den > 0.0 ? sqrt_n / den : 0.0;
        for (int64_t j = 0; j <= N; ++j) e[j] *= scale;
    }
    return PFGM_OK;
}
