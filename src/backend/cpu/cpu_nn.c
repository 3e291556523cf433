/* CPU ops of the network layers (backend.h "network layers" group). */
#include "backend/cpu/cpu.h"

#include <math.h>

static pfgm_status cpu_silu_fwd(pfgm_backend *be, int64_t n, const float *x, float *y) {
#pragma omp parallel for simd schedule(static) if (!cpu_reference(be) && n > 32768)
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] / (1.0f + expf(-x[i]));
    return PFGM_OK;
}

/* d/dx x*s(x) = s(x) * (1 + x * (1 - s(x))), s the logistic sigmoid. */
static pfgm_status cpu_silu_bwd(pfgm_backend *be, int64_t n, const float *x, const float *dy, float *dx,
                                int accumulate) {
#pragma omp parallel for simd schedule(static) if (!cpu_reference(be) && n > 32768)
    for (int64_t i = 0; i < n; ++i) {
        float s = 1.0f / (1.0f + expf(-x[i]));
        float g = dy[i] * s * (1.0f + x[i] * (1.0f - s));
        dx[i] = accumulate ? dx[i] + g : g;
    }
    return PFGM_OK;
}

void pfgm_cpu_nn_ops_init(pfgm_backend *be) {
    be->silu_fwd = cpu_silu_fwd;
    be->silu_bwd = cpu_silu_bwd;
}
