/* Backend selection by name and the host <-> backend copy helpers. The op front end, with
 * the argument checks every backend shares, is ops.c. */
#include "pfgm/backend.h"

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

#ifndef PFGM_HAVE_CUDA
/* Built without CUDA: the constructor reports it instead of failing to link. */
pfgm_status pfgm_backend_cuda_create(const pfgm_cuda_options *opt, pfgm_backend **out) {
    *out = NULL;
    return pfgm_error(PFGM_ERR_UNSUPPORTED,
                      "the CUDA backend is not built in (reconfigure with -DPFGM_CUDA=ON on a machine with nvcc)");
}

int pfgm_backend_cuda_available(void) { return 0; }

int pfgm_backend_cuda_device_count(void) { return 0; }

void *pfgm_backend_cuda_stream(const pfgm_backend *be) { return NULL; }
#endif
