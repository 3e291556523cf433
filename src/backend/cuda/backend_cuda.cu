/* The CUDA backend: device memory through cudaMalloc (no managed memory), one stream per
 * backend, cuBLAS for gemm (TF32 math when pfgm_cuda_options.allow_tf32, from the config's
 * distributed.allow_tf32; fp32 otherwise), and kernels for the
 * elementwise, reduction and Philox ops of backend.h. Reductions are two-pass (per-block
 * partials in double, summed in a fixed order on the host) so results do not depend on
 * scheduling: no atomics on the training path. The Philox kernels use util/philox_impl.h,
 * the same code as the CPU, so fills have the same bits. The op groups of the PFGM math,
 * the network and the optimizer are in cuda_math.cu, cuda_nn.cu and cuda_optim.cu. */
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_internal.cuh"
#include "util/philox_impl.h"

namespace {

unsigned cuda_caps(const pfgm_backend *be) {
    return PFGM_CAP_DEVICE_MEMORY | PFGM_CAP_BLAS | PFGM_CAP_THREADS | (ctx_of(be)->allow_tf32 ? (unsigned)PFGM_CAP_TF32 : 0u);
}

void cuda_destroy(pfgm_backend *be) {
    if (!be) return;
    cuda_ctx *c = ctx_of(be);
    if (c) {
        cudaSetDevice(c->device);
        if (c->partials) cudaFree(c->partials);
        if (c->partials_host) cudaFreeHost(c->partials_host);
        if (c->blas) cublasDestroy(c->blas);
        if (c->stream) cudaStreamDestroy(c->stream);
        free(c);
    }
    free(be);
}

pfgm_status cuda_alloc(pfgm_backend *be, size_t bytes, void **ptr) {
    *ptr = NULL;
    if (bytes == 0) return PFGM_OK;
    cudaError_t e = cudaMalloc(ptr, bytes);
    if (e != cudaSuccess) {
        *ptr = NULL;
        return pfgm_error(PFGM_ERR_NOMEM, "cuda backend: cannot allocate %zu bytes on device %d: %s", bytes,
                          ctx_of(be)->device, cudaGetErrorString(e));
    }
    PFGM_CUDA_CHECK(cudaMemsetAsync(*ptr, 0, bytes, ctx_of(be)->stream));
    return PFGM_OK;
}

void cuda_free(pfgm_backend *be, void *ptr) {
    if (!ptr) return;
    cudaStreamSynchronize(ctx_of(be)->stream);
    cudaFree(ptr);
}

pfgm_status cuda_copy(pfgm_backend *be, void *dst, const void *src, size_t bytes, pfgm_copy_kind kind) {
    if (!bytes) return PFGM_OK;
    cudaMemcpyKind k = kind == PFGM_COPY_H2D ? cudaMemcpyHostToDevice
                       : kind == PFGM_COPY_D2H ? cudaMemcpyDeviceToHost
                                               : cudaMemcpyDeviceToDevice;
    cudaStream_t s = ctx_of(be)->stream;
    PFGM_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, k, s));
    /* Host buffers may be reused by the caller as soon as copy() returns. */
    if (kind != PFGM_COPY_D2D) PFGM_CUDA_CHECK(cudaStreamSynchronize(s));
    return PFGM_OK;
}

pfgm_status cuda_memzero(pfgm_backend *be, void *dst, size_t bytes) {
    if (bytes) PFGM_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, ctx_of(be)->stream));
    return PFGM_OK;
}

pfgm_status cuda_sync(pfgm_backend *be) {
    PFGM_CUDA_CHECK(cudaStreamSynchronize(ctx_of(be)->stream));
    return PFGM_OK;
}

/* Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands. The
 * front end (pfgm_op_gemm) has refused sizes beyond INT_MAX, so the int casts are exact. */
pfgm_status cuda_gemm(pfgm_backend *be, int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha,
                      const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                      int64_t ldc) {
    if (m == 0 || n == 0) return PFGM_OK;
    PFGM_CUBLAS_CHECK(cublasSgemm(ctx_of(be)->blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                                  (int)n, (int)m, (int)k, &alpha, b, (int)ldb, a, (int)lda, &beta, c, (int)ldc));
    return PFGM_OK;
}

__global__ void k_axpby(int64_t n, float alpha, const float *x, float beta, float *y) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        y[i] = beta == 0.0f ? alpha * x[i] : alpha * x[i] + beta * y[i];
}

pfgm_status cuda_axpby(pfgm_backend *be, int64_t n, float alpha, const float *x, float beta, float *y) {
    if (n <= 0) return PFGM_OK;
    k_axpby<<<blocks_for(n, 65535), kThreads, 0, ctx_of(be)->stream>>>(n, alpha, x, beta, y);
    PFGM_CUDA_CHECK(cudaGetLastError());
    return PFGM_OK;
}

__global__ void k_fill(int64_t n, float v, float *x) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        x[i] = v;
}

pfgm_status cuda_fill(pfgm_backend *be, int64_t n, float value, float *x) {
    if (n <= 0) return PFGM_OK;
    k_fill<<<blocks_for(n, 65535), kThreads, 0, ctx_of(be)->stream>>>(n, value, x);
    PFGM_CUDA_CHECK(cudaGetLastError());
    return PFGM_OK;
}

__global__ void k_dot_partial(int64_t n, const float *x, const float *y, double *partials) {
    double acc = 0.0;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        acc += (double)x[i] * (double)y[i];
    double s = block_sum(acc);
    if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

pfgm_status cuda_dot(pfgm_backend *be, int64_t n, const float *x, const float *y, double *out) {
    cuda_ctx *c = ctx_of(be);
    *out = 0.0;
    if (n <= 0) return PFGM_OK;
    int nb = blocks_for(n, c->max_blocks);
    k_dot_partial<<<nb, kThreads, 0, c->stream>>>(n, x, y, c->partials);
    PFGM_CUDA_LAUNCH_CHECK();
    return pfgm_cuda_reduce_partials(be, nb, out);
}

/* One thread per Philox block of 4 elements; element e of the fill is element offset + e
 * of the stream, exactly as pfgm_rng_uniform/normal on the host. */
template <bool Normal>
__global__ void k_philox(pfgm_rng r, uint64_t offset, int64_t n, float *out) {
    const uint64_t first_block = offset >> 2, last_block = pfgm_philox_last_block(offset, (uint64_t)n);
    for (uint64_t b = first_block + blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; b <= last_block;
         b += (uint64_t)gridDim.x * blockDim.x) {
        uint32_t w[4];
        pfgm_philox_block(r.seed, r.rank, r.stream, r.step, b, w);
        float v[4];
        if (Normal) {
            pfgm_philox_box_muller(w[0], w[1], &v[0], &v[1]);
            pfgm_philox_box_muller(w[2], w[3], &v[2], &v[3]);
        } else {
            for (int l = 0; l < 4; ++l) v[l] = pfgm_philox_u24(w[l]);
        }
        for (int l = 0; l < 4; ++l) {
            uint64_t e = b * 4 + (uint64_t)l;
            if (e >= offset && e < offset + (uint64_t)n) out[e - offset] = v[l];
        }
    }
}

template <bool Normal>
pfgm_status cuda_fill_rng(pfgm_backend *be, const pfgm_rng *r, uint64_t offset, int64_t n, float *out) {
    if (n <= 0) return PFGM_OK;
    const int64_t blocks = (int64_t)pfgm_philox_block_count(offset, (uint64_t)n);
    k_philox<Normal><<<blocks_for(blocks, 65535), kThreads, 0, ctx_of(be)->stream>>>(*r, offset, n, out);
    PFGM_CUDA_CHECK(cudaGetLastError());
    return PFGM_OK;
}

pfgm_status cuda_fill_uniform(pfgm_backend *be, const pfgm_rng *r, uint64_t offset, int64_t n, float *out) {
    return cuda_fill_rng<false>(be, r, offset, n, out);
}
pfgm_status cuda_fill_normal(pfgm_backend *be, const pfgm_rng *r, uint64_t offset, int64_t n, float *out) {
    return cuda_fill_rng<true>(be, r, offset, n, out);
}

pfgm_status cuda_init(cuda_ctx *c, int device, int allow_tf32) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0)
        return pfgm_error(PFGM_ERR_UNSUPPORTED, "cuda backend: no CUDA device is visible");
    if (device < 0 || device >= count)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "cuda backend: device %d out of range (%d visible)", device, count);
    c->device = device;
    PFGM_CUDA_CHECK(cudaSetDevice(device));
    PFGM_CUDA_CHECK(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    PFGM_CUBLAS_CHECK(cublasCreate(&c->blas));
    PFGM_CUBLAS_CHECK(cublasSetStream(c->blas, c->stream));
    /* fp32 by default; TF32 is opted into through the config (distributed.allow_tf32). */
    c->allow_tf32 = allow_tf32 ? 1 : 0;
    PFGM_CUBLAS_CHECK(cublasSetMathMode(c->blas, c->allow_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    c->max_blocks = 1024;
    PFGM_CUDA_CHECK(cudaMalloc((void **)&c->partials, sizeof(double) * c->max_blocks));
    PFGM_CUDA_CHECK(cudaMallocHost((void **)&c->partials_host, sizeof(double) * c->max_blocks));
    return PFGM_OK;
}

} // namespace

pfgm_status pfgm_cuda_reduce_partials(pfgm_backend *be, int nb, double *out) {
    cuda_ctx *c = ctx_of(be);
    PFGM_CUDA_CHECK(cudaMemcpyAsync(c->partials_host, c->partials, sizeof(double) * nb, cudaMemcpyDeviceToHost, c->stream));
    PFGM_CUDA_CHECK(cudaStreamSynchronize(c->stream));
    double s = 0.0;
    for (int i = 0; i < nb; ++i) s += c->partials_host[i];
    *out = s;
    return PFGM_OK;
}

extern "C" int pfgm_backend_cuda_device_count(void) {
    int count = 0;
    return cudaGetDeviceCount(&count) == cudaSuccess ? count : 0;
}

extern "C" int pfgm_backend_cuda_available(void) {
    int count = 0;
    return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

extern "C" void *pfgm_backend_cuda_stream(const pfgm_backend *be) {
    return be && be->kind == PFGM_BACKEND_CUDA && be->ctx ? (void *)ctx_of(be)->stream : NULL;
}

extern "C" pfgm_status pfgm_backend_cuda_create(const pfgm_cuda_options *opt, pfgm_backend **out) {
    *out = NULL;
    pfgm_backend *be = (pfgm_backend *)calloc(1, sizeof *be);
    cuda_ctx *c = (cuda_ctx *)calloc(1, sizeof *c);
    if (!be || !c) {
        free(be);
        free(c);
        return pfgm_error(PFGM_ERR_NOMEM, "cuda backend: cannot allocate its context");
    }
    be->ctx = c;
    pfgm_status st = cuda_init(c, opt ? opt->device : 0, opt ? opt->allow_tf32 : 0);
    if (st != PFGM_OK) {
        cuda_destroy(be);
        return st;
    }
    be->name = "cuda";
    be->kind = PFGM_BACKEND_CUDA;
    be->caps = cuda_caps;
    be->destroy = cuda_destroy;
    be->alloc = cuda_alloc;
    be->free = cuda_free;
    be->copy = cuda_copy;
    be->memzero = cuda_memzero;
    be->sync = cuda_sync;
    be->gemm = cuda_gemm;
    be->axpby = cuda_axpby;
    be->fill = cuda_fill;
    be->dot = cuda_dot;
    be->fill_uniform = cuda_fill_uniform;
    be->fill_normal = cuda_fill_normal;
    pfgm_cuda_math_ops_init(be);
    pfgm_cuda_nn_ops_init(be);
    pfgm_cuda_optim_ops_init(be);
    *out = be;
    return PFGM_OK;
}
