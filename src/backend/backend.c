/* Backend selection by name and the small helpers every backend shares. */
#include "pfgm/backend.h"

#include <limits.h>
#include <string.h>

pfgm_status pfgm_backend_create(const char *name, pfgm_backend **out) {
    *out = NULL;
    if (!name || strcmp(name, "cpu") == 0) {
        pfgm_cpu_options o = {.reference = 0, .threads = 0};
        return pfgm_backend_cpu_create(&o, out);
    }
    if (strcmp(name, "cpu-reference") == 0) {
        pfgm_cpu_options o = {.reference = 1, .threads = 0};
        return pfgm_backend_cpu_create(&o, out);
    }
    if (strcmp(name, "cuda") == 0) return pfgm_backend_cuda_create(NULL, out);
    return pfgm_error(PFGM_ERR_INVALID_ARG, "unknown backend '%s' (known: cpu, cpu-reference, cuda)", name);
}

void pfgm_backend_destroy(pfgm_backend *be) {
    if (be && be->destroy) be->destroy(be);
}

pfgm_status pfgm_backend_upload(pfgm_backend *be, float *dst, const float *host, int64_t n) {
    return be->copy(be, dst, host, (size_t)n * sizeof(float), PFGM_COPY_H2D);
}

pfgm_status pfgm_backend_download(pfgm_backend *be, float *host, const float *src, int64_t n) {
    return be->copy(be, host, src, (size_t)n * sizeof(float), PFGM_COPY_D2H);
}

pfgm_status pfgm_gemm_check_args(const char *op, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                                 int64_t lda, int64_t ldb, int64_t ldc) {
    const int64_t wa = trans_a ? m : k, wb = trans_b ? k : n; /* row widths of the stored A and B */
    const int64_t big = INT_MAX;
    if (m < 0 || n < 0 || k < 0 || lda < (wa > 1 ? wa : 1) || ldb < (wb > 1 ? wb : 1) || ldc < (n > 1 ? n : 1) ||
        m > big || n > big || k > big || lda > big || ldb > big || ldc > big)
        return pfgm_error(PFGM_ERR_INVALID_ARG,
                          "%s: bad shape m=%lld n=%lld k=%lld lda=%lld ldb=%lld ldc=%lld (trans_a=%d trans_b=%d; "
                          "sizes in [0, 2^31), each leading dimension >= max(1, its row width))",
                          op, (long long)m, (long long)n, (long long)k, (long long)lda, (long long)ldb, (long long)ldc,
                          trans_a ? 1 : 0, trans_b ? 1 : 0);
    return PFGM_OK;
}

#ifndef PFGM_HAVE_CUDA
/* Built without CUDA: the constructor reports it instead of failing to link. */
pfgm_status pfgm_backend_cuda_create(const pfgm_cuda_options *opt, pfgm_backend **out) {
    *out = NULL;
    return pfgm_error(PFGM_ERR_UNSUPPORTED,
                      "the CUDA backend is not built in (reconfigure with -DPFGM_CUDA=ON on a machine with nvcc)");
}

int pfgm_backend_cuda_available(void) { return 0; }

int pfgm_backend_cuda_device_count(void) { return 0; }
#endif
