/* CUDA ops of the PFGM math group of backend.h (callers: src/core): row norms and the row
 * softmax behind the log-domain field weights (spec §1.2, §3.6). Each op matches its CPU
 * counterpart in src/backend/cpu/cpu_math.c (tests/gpu compares them). */
#include "backend/cuda/cuda_internal.cuh"

namespace {

__global__ void k_row_sumsq(int64_t cols, const float *x, int64_t ld, float *out) {
    const float *row = x + (int64_t)blockIdx.x * ld;
    double acc = 0.0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) acc += (double)row[j] * (double)row[j];
    double s = block_sum(acc);
    if (threadIdx.x == 0) out[blockIdx.x] = (float)s;
}

pfgm_status cuda_row_sumsq(pfgm_backend *be, int64_t rows, int64_t cols, const float *x, int64_t ld, float *out) {
    if (rows < 0 || cols < 0 || ld < cols || rows > 2147483647)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "row_sumsq: bad shape rows=%lld cols=%lld ld=%lld", (long long)rows,
                          (long long)cols, (long long)ld);
    if (rows == 0) return PFGM_OK;
    k_row_sumsq<<<(unsigned)rows, kThreads, 0, stream_of(be)>>>(cols, x, ld, out);
    PFGM_CUDA_LAUNCH_CHECK();
    return PFGM_OK;
}

__global__ void k_softmax_rows(int64_t cols, float *x) {
    float *row = x + (int64_t)blockIdx.x * cols;
    float mx = -INFINITY;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) mx = fmaxf(mx, row[j]);
    mx = block_max(mx);
    double acc = 0.0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
        float e = expf(row[j] - mx);
        row[j] = e;
        acc += e;
    }
    float inv = (float)(1.0 / block_sum(acc));
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) row[j] *= inv;
}

pfgm_status cuda_softmax_rows(pfgm_backend *be, int64_t rows, int64_t cols, float *x) {
    if (rows < 0 || cols <= 0 || rows > 2147483647)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "softmax_rows: bad shape rows=%lld cols=%lld", (long long)rows,
                          (long long)cols);
    if (rows == 0) return PFGM_OK;
    k_softmax_rows<<<(unsigned)rows, kThreads, 0, stream_of(be)>>>(cols, x);
    PFGM_CUDA_LAUNCH_CHECK();
    return PFGM_OK;
}

} // namespace

void pfgm_cuda_math_ops_init(pfgm_backend *be) {
    be->row_sumsq = cuda_row_sumsq;
    be->softmax_rows = cuda_softmax_rows;
}
