/* Helpers shared by the network-layer tests (tests/unit/test_layers_*.c, test_ddpmpp_*.c):
 * backend set-up, random tensors from Philox, slot allocation for composite layers, relative
 * errors, and the central-difference gradient check.
 *
 * Gradient check: the scalar L = sum_i out_i * r_i (r fixed Gaussian) is evaluated in double
 * from the float32 outputs of the cpu-reference backend. For a sample of coordinates of each
 * input or parameter, dL/dv is estimated as (L(v + e) - L(v - e)) / (v+e - (v-e)), dividing by
 * the step actually taken in float32, and compared by norm with the analytic gradient of the
 * same coordinates: rel = |fd - analytic| / |analytic|. Header-only: every helper is static. */
#ifndef PFGM_TESTS_NN_TESTUTIL_H
#define PFGM_TESTS_NN_TESTUTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pfgm/backend.h"
#include "pfgm/nn.h"
#include "pfgm/rng.h"

/* ---- allocations, freed together ------------------------------------------------------ */

#define NT_MAX_ALLOCS 512
typedef struct nt_pool {
    pfgm_backend *be;
    void *p[NT_MAX_ALLOCS];
    int n;
} nt_pool;

static inline float *nt_alloc(nt_pool *pool, int64_t n) {
    void *p = NULL;
    if (n <= 0) n = 1;
    if (pool->n >= NT_MAX_ALLOCS || pool->be->alloc(pool->be, (size_t)n * sizeof(float), &p) != PFGM_OK) {
        fprintf(stderr, "test allocation of %lld floats failed\n", (long long)n);
        abort();
    }
    pool->p[pool->n++] = p;
    return p;
}

static inline void nt_pool_free(nt_pool *pool) {
    for (int i = 0; i < pool->n; ++i) pool->be->free(pool->be, pool->p[i]);
    pool->n = 0;
}

static inline pfgm_backend *nt_backend(int reference) {
    pfgm_backend *be = NULL;
    pfgm_cpu_options o = {.reference = reference, .threads = 0};
    if (pfgm_backend_cpu_create(&o, &be) != PFGM_OK) {
        fprintf(stderr, "cannot create the cpu backend: %s\n", pfgm_error_message());
        abort();
    }
    return be;
}

/* x[i] = mean + scale * N(0,1) from a Philox test stream keyed by `key`. */
static inline void nt_randn(float *x, int64_t n, uint32_t key, float scale, float mean) {
    pfgm_rng r = {.seed = key, .rank = 0, .stream = PFGM_STREAM_USER, .step = 0};
    pfgm_rng_normal(&r, 0, (size_t)n, x);
    for (int64_t i = 0; i < n; ++i) x[i] = mean + scale * x[i];
}

/* Slots of a composite layer at `batch`; SCRATCH slots get one buffer used by both passes. */
static inline void nt_slots(nt_pool *pool, const pfgm_slot_spec *spec, int n, int64_t batch, float **slots) {
    for (int i = 0; i < n; ++i) {
        size_t b = pfgm_slot_bytes(&spec[i], batch);
        slots[i] = b ? nt_alloc(pool, (int64_t)(b / sizeof(float))) : NULL;
    }
}

/* ---- comparisons ---------------------------------------------------------------------- */

/* |a - b| / max(|b|, tiny) over n elements, norms in double. */
static inline double nt_rel_err(const float *a, const float *b, int64_t n) {
    double d = 0, s = 0;
    for (int64_t i = 0; i < n; ++i) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        s += (double)b[i] * b[i];
    }
    return sqrt(d) / (sqrt(s) > 1e-30 ? sqrt(s) : 1e-30);
}

/* max |a - b| / max |b|. */
static inline double nt_max_err(const float *a, const float *b, int64_t n) {
    double d = 0, s = 0;
    for (int64_t i = 0; i < n; ++i) {
        double e = fabs((double)a[i] - b[i]);
        d = e > d ? e : d;
        s = fabs((double)b[i]) > s ? fabs((double)b[i]) : s;
    }
    return d / (s > 1e-30 ? s : 1e-30);
}

static inline double nt_dot(const float *a, const float *r, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += (double)a[i] * r[i];
    return s;
}

/* ---- gradient check ------------------------------------------------------------------- */

typedef double (*nt_loss_fn)(void *ctx);

typedef struct nt_tensor {
    const char *name;
    float *v;        /* values (host-visible: the CPU backend) */
    const float *g;  /* analytic dL/dv */
    int64_t n;
    double eps;      /* central-difference step */
    int zero;        /* 1: the gradient is zero by symmetry (e.g. the attention key bias, which
                        shifts every score of a row equally): both estimates must be ~0 */
} nt_tensor;

#define NT_GC_SAMPLES 24

/* Checks every tensor; prints one line each; returns the largest relative error. */
static inline double nt_gradcheck(void *ctx, nt_loss_fn loss, const nt_tensor *ts, int nts, const char *what) {
    double worst = 0;
    for (int t = 0; t < nts; ++t) {
        const nt_tensor *T = &ts[t];
        int64_t idx[NT_GC_SAMPLES];
        int m = 0;
        if (T->n <= NT_GC_SAMPLES) {
            for (int64_t i = 0; i < T->n; ++i) idx[m++] = i;
        } else {
            /* spread over the tensor with a random phase so every region is visited */
            uint32_t u[NT_GC_SAMPLES];
            pfgm_rng r = {.seed = 11u + (uint32_t)t, .rank = 0, .stream = PFGM_STREAM_USER + 1, .step = 0};
            pfgm_rng_u32(&r, 0, NT_GC_SAMPLES, u);
            for (int j = 0; j < NT_GC_SAMPLES; ++j)
                idx[m++] = (T->n * j) / NT_GC_SAMPLES + (int64_t)(u[j] % (uint32_t)(T->n / NT_GC_SAMPLES));
        }
        double d2 = 0, s2 = 0;
        for (int j = 0; j < m; ++j) {
            float *v = &T->v[idx[j]];
            const float orig = *v;
            const float vp = orig + (float)T->eps, vm = orig - (float)T->eps;
            *v = vp;
            double lp = loss(ctx);
            *v = vm;
            double lm = loss(ctx);
            *v = orig;
            double fd = (lp - lm) / ((double)vp - (double)vm);
            double an = T->g[idx[j]];
            d2 += (fd - an) * (fd - an);
            s2 += an * an;
        }
        if (T->zero) {
            /* absolute: analytic and difference both at rounding level (O(1) losses) */
            double fd_norm = sqrt(d2 + s2); /* >= |fd| - |an| */
            int ok = sqrt(s2) < 1e-4 && fd_norm < 1e-3;
            printf("  gradcheck %-22s %-14s n=%-7lld zero by symmetry: |grad|=%.2e |fd-grad|=%.2e %s\n", what,
                   T->name, (long long)T->n, sqrt(s2), sqrt(d2), ok ? "ok" : "NOT ZERO");
            if (!ok) worst = INFINITY;
            continue;
        }
        double rel = sqrt(d2) / (sqrt(s2) > 1e-12 ? sqrt(s2) : 1e-12);
        printf("  gradcheck %-22s %-14s n=%-7lld |grad|=%-10.3e rel.err=%.2e\n", what, T->name, (long long)T->n,
               sqrt(s2), rel);
        if (!(rel <= worst)) worst = rel; /* NaN propagates */
        if (sqrt(s2) <= 1e-12) {
            printf("  gradcheck %s %s: analytic gradient is zero on the sample; the check would be vacuous\n", what,
                   T->name);
            worst = INFINITY;
        }
    }
    return worst;
}

#endif /* PFGM_TESTS_NN_TESTUTIL_H */
