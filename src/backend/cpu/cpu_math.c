/* CPU ops of the PFGM math (backend.h "PFGM math" group and the row reductions it uses):
 * row norms and the row softmax behind the log-domain field weights (spec §1.2, §3.6). */
#include "backend/cpu/cpu.h"

#include <math.h>

static pfgm_status cpu_row_sumsq(pfgm_backend *be, int64_t rows, int64_t cols, const float *x, int64_t ld,
                                 float *out) {
    if (rows < 0 || cols < 0 || ld < cols)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "row_sumsq: bad shape rows=%lld cols=%lld ld=%lld",
                          (long long)rows, (long long)cols, (long long)ld);
#pragma omp parallel for schedule(static) if (!cpu_reference(be) && rows * cols > 65536)
    for (int64_t r = 0; r < rows; ++r) {
        const float *row = x + r * ld;
        double acc = 0.0;
        for (int64_t c = 0; c < cols; ++c) acc += (double)row[c] * (double)row[c];
        out[r] = (float)acc;
    }
    return PFGM_OK;
}

static pfgm_status cpu_softmax_rows(pfgm_backend *be, int64_t rows, int64_t cols, float *x) {
    if (rows < 0 || cols <= 0)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "softmax_rows: bad shape rows=%lld cols=%lld",
                          (long long)rows, (long long)cols);
#pragma omp parallel for schedule(static) if (!cpu_reference(be) && rows * cols > 65536)
    for (int64_t r = 0; r < rows; ++r) {
        float *row = x + r * cols;
        float mx = row[0];
        for (int64_t c = 1; c < cols; ++c) mx = row[c] > mx ? row[c] : mx;
        double sum = 0.0;
        for (int64_t c = 0; c < cols; ++c) {
            row[c] = expf(row[c] - mx);
            sum += row[c];
        }
        float inv = (float)(1.0 / sum);
        for (int64_t c = 0; c < cols; ++c) row[c] *= inv;
    }
    return PFGM_OK;
}

void pfgm_cpu_math_ops_init(pfgm_backend *be) {
    be->row_sumsq = cpu_row_sumsq;
    be->softmax_rows = cpu_softmax_rows;
}
