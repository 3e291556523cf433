/* The CPU backend: memory, dense linear algebra (OpenBLAS sgemm, or plain loops in the
 * reference mode), elementwise ops and Philox fills. The PFGM-math and network ops are in
 * cpu_math.c and cpu_nn.c. */
#include "backend/cpu/cpu.h"
#include "util/check.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

static unsigned cpu_caps(const pfgm_backend *be) {
    return cpu_reference(be) ? PFGM_CAP_REFERENCE : (PFGM_CAP_BLAS | PFGM_CAP_THREADS);
}

static void cpu_destroy(pfgm_backend *be) {
    if (!be) return;
    free(be->ctx);
    free(be);
}

static pfgm_status cpu_alloc(pfgm_backend *be, size_t bytes, void **ptr) {
    *ptr = NULL;
    if (bytes == 0) return PFGM_OK;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, rounded);
    if (!p) return pfgm_error(PFGM_ERR_NOMEM, "cpu backend: cannot allocate %zu bytes", bytes);
    memset(p, 0, rounded);
    *ptr = p;
    return PFGM_OK;
}

static void cpu_free(pfgm_backend *be, void *ptr) { free(ptr); }

static pfgm_status cpu_copy(pfgm_backend *be, void *dst, const void *src, size_t bytes, pfgm_copy_kind kind) {
    if (bytes) memmove(dst, src, bytes);
    return PFGM_OK;
}

static pfgm_status cpu_memzero(pfgm_backend *be, void *dst, size_t bytes) {
    if (bytes) memset(dst, 0, bytes);
    return PFGM_OK;
}

static pfgm_status cpu_sync(pfgm_backend *be) { return PFGM_OK; }

/* Reference GEMM: the definition, double accumulator. */
static void gemm_ref(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                     int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
            double acc = 0.0;
            for (int64_t p = 0; p < k; ++p) {
                float av = ta ? a[p * lda + i] : a[i * lda + p];
                float bv = tb ? b[j * ldb + p] : b[p * ldb + j];
                acc += (double)av * (double)bv;
            }
            float prev = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
            c[i * ldc + j] = (float)(alpha * acc) + prev;
        }
}

static pfgm_status cpu_gemm(pfgm_backend *be, int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha,
                            const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                            int64_t ldc) {
    if (m == 0 || n == 0) return PFGM_OK;
    if (cpu_reference(be)) {
        gemm_ref(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return PFGM_OK;
    }
    if (k == 0) { /* BLAS leaves C untouched for k = 0 only when beta = 1; be explicit */
        for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
        return PFGM_OK;
    }
    /* A large product outside any parallel region (the field targets' two GEMMs, spec §3.6)
     * is split by columns of C over the OpenMP threads, each an OpenBLAS call of its own:
     * OpenBLAS stays single-threaded (see pfgm_backend_cpu_create), and the fixed split
     * gives the same bits run to run. */
    const int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (nt > 1 && (double)m * (double)n * (double)k >= 16777216.0 && n >= 64 * nt) {
#pragma omp parallel num_threads(nt)
        {
            const int t = omp_get_thread_num(), nth = omp_get_num_threads();
            const int64_t j0 = (n * t / nth) & ~(int64_t)15, j1 = t == nth - 1 ? n : (n * (t + 1) / nth) & ~(int64_t)15;
            if (j1 > j0)
                cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (blasint)m,
                            (blasint)(j1 - j0), (blasint)k, alpha, a, (blasint)lda, tb ? b + j0 * ldb : b + j0,
                            (blasint)ldb, beta, c + j0, (blasint)ldc);
        }
        return PFGM_OK;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (blasint)m,
                (blasint)n, (blasint)k, alpha, a, (blasint)lda, b, (blasint)ldb, beta, c, (blasint)ldc);
    return PFGM_OK;
}

static pfgm_status cpu_axpby(pfgm_backend *be, int64_t n, float alpha, const float *x, float beta, float *y) {
    if (beta == 0.0f) {
#pragma omp parallel for simd schedule(static) if (!cpu_reference(be) && n > (1 << 21))
        for (int64_t i = 0; i < n; ++i) y[i] = alpha * x[i];
    } else {
#pragma omp parallel for simd schedule(static) if (!cpu_reference(be) && n > (1 << 21))
        for (int64_t i = 0; i < n; ++i) y[i] = alpha * x[i] + beta * y[i];
    }
    return PFGM_OK;
}

static pfgm_status cpu_fill(pfgm_backend *be, int64_t n, float value, float *x) {
    for (int64_t i = 0; i < n; ++i) x[i] = value;
    return PFGM_OK;
}

#define DOT_BLOCK 65536
static pfgm_status cpu_dot(pfgm_backend *be, int64_t n, const float *x, const float *y, double *out) {
    double acc = 0.0;
    if (cpu_reference(be) || n <= DOT_BLOCK) {
        for (int64_t i = 0; i < n; ++i) acc += (double)x[i] * (double)y[i];
        *out = acc;
        return PFGM_OK;
    }
    /* Fixed blocks summed into fixed slots, then added in block order: unlike an OpenMP
     * reduction clause, the order does not depend on which thread finishes first, so the
     * result is the same run to run whatever the thread count. */
    enum { SLOTS = 64 };
    double part[SLOTS];
    for (int64_t base = 0; base < n; base += (int64_t)SLOTS * DOT_BLOCK) {
        int64_t nb = (n - base + DOT_BLOCK - 1) / DOT_BLOCK;
        if (nb > SLOTS) nb = SLOTS;
#pragma omp parallel for schedule(static)
        for (int64_t b = 0; b < nb; ++b) {
            int64_t s = base + b * DOT_BLOCK, e = s + DOT_BLOCK < n ? s + DOT_BLOCK : n;
            double a = 0.0;
            for (int64_t i = s; i < e; ++i) a += (double)x[i] * (double)y[i];
            part[b] = a;
        }
        for (int64_t b = 0; b < nb; ++b) acc += part[b];
    }
    *out = acc;
    return PFGM_OK;
}

/* Philox fills in blocks of 4096 elements across threads; each element's value depends
 * only on its index, so the split does not change the bits. */
#define RNG_CHUNK 4096
static pfgm_status cpu_fill_uniform(pfgm_backend *be, const pfgm_rng *r, uint64_t offset, int64_t n, float *out) {
    int64_t chunks = (n + RNG_CHUNK - 1) / RNG_CHUNK;
#pragma omp parallel for schedule(static) if (!cpu_reference(be) && chunks > 1)
    for (int64_t c = 0; c < chunks; ++c) {
        int64_t s = c * RNG_CHUNK, len = n - s < RNG_CHUNK ? n - s : RNG_CHUNK;
        pfgm_rng_uniform(r, offset + (uint64_t)s, (size_t)len, out + s);
    }
    return PFGM_OK;
}

static pfgm_status cpu_fill_normal(pfgm_backend *be, const pfgm_rng *r, uint64_t offset, int64_t n, float *out) {
    int64_t chunks = (n + RNG_CHUNK - 1) / RNG_CHUNK;
#pragma omp parallel for schedule(static) if (!cpu_reference(be) && chunks > 1)
    for (int64_t c = 0; c < chunks; ++c) {
        int64_t s = c * RNG_CHUNK, len = n - s < RNG_CHUNK ? n - s : RNG_CHUNK;
        pfgm_rng_normal(r, offset + (uint64_t)s, (size_t)len, out + s);
    }
    return PFGM_OK;
}

pfgm_status pfgm_backend_cpu_create(const pfgm_cpu_options *opt, pfgm_backend **out) {
    *out = NULL;
    pfgm_backend *be = calloc(1, sizeof *be);
    cpu_ctx *ctx = calloc(1, sizeof *ctx);
    if (!be || !ctx) {
        free(be);
        free(ctx);
        return pfgm_error(PFGM_ERR_NOMEM, "cpu backend: cannot allocate its context");
    }
    if (opt) *ctx = (cpu_ctx){.reference = opt->reference, .threads = opt->threads};
    if (ctx->threads > 0) {
        omp_set_num_threads(ctx->threads);
    }
    /* OpenMP parallelises our loops (the batch of a convolution, rows of the field
     * targets) and calls sgemm inside those parallel regions. OpenBLAS's own pthreads
     * would then oversubscribe the cores and spin against the OpenMP team: measured on
     * the Fashion-MNIST config (2 cores), 5.8 images/s with OpenBLAS threads against 54.5
     * with OpenBLAS single-threaded. So sgemm runs single-threaded inside our threads. */
    openblas_set_num_threads(1);
    be->name = ctx->reference ? "cpu-reference" : "cpu";
    be->kind = PFGM_BACKEND_CPU;
    be->ctx = ctx;
    be->caps = cpu_caps;
    be->destroy = cpu_destroy;
    be->alloc = cpu_alloc;
    be->free = cpu_free;
    be->copy = cpu_copy;
    be->memzero = cpu_memzero;
    be->sync = cpu_sync;
    be->gemm = cpu_gemm;
    be->axpby = cpu_axpby;
    be->fill = cpu_fill;
    be->dot = cpu_dot;
    be->fill_uniform = cpu_fill_uniform;
    be->fill_normal = cpu_fill_normal;
    pfgm_cpu_math_ops_init(be);
    pfgm_cpu_nn_ops_init(be);
    pfgm_cpu_optim_ops_init(be);
    *out = be;
    return PFGM_OK;
}
