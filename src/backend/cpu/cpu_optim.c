/* CPU ops of the optimizer (backend.h "optimizer" group): the squared L2 norm used by global
 * gradient clipping, the fused Adam update and the EMA update (PFGM_SPEC.md §1.13,
 * docs/optimizer.md). Each element's arithmetic is written once (adam_elem, ema_elem) and
 * used by the reference loop and the OpenMP loop; the SSE form of the Adam element performs
 * the same IEEE operations in the same order. So the two modes give the same bits for Adam
 * and EMA; only the order of the sumsq reduction differs between them. */
#include "backend/cpu/cpu.h"

#include <math.h>
#include <omp.h>
#if defined(__SSE2__)
#include <immintrin.h>
#endif

/* Loops shorter than this run on one thread: the fork costs more than the work. */
#define OPTIM_PAR_MIN 32768
/* sumsq: the fast path sums fixed blocks of this many elements, each in 8 interleaved
 * lanes, then adds the block sums in index order. */
#define SUMSQ_BLOCK 65536
#define SUMSQ_LANES 8

/* sum_{i<n} x[i]^2 with SUMSQ_LANES interleaved double accumulators combined in lane
 * order. A float's square is exact in double; only the additions round. */
static double sumsq_block(const float *x, int64_t n) {
    double lane[SUMSQ_LANES] = {0};
    int64_t i = 0;
    for (; i + SUMSQ_LANES <= n; i += SUMSQ_LANES)
        for (int j = 0; j < SUMSQ_LANES; ++j) lane[j] += (double)x[i + j] * (double)x[i + j];
    for (int j = 0; i < n; ++i, ++j) lane[j] += (double)x[i] * (double)x[i];
    double s = 0.0;
    for (int j = 0; j < SUMSQ_LANES; ++j) s += lane[j];
    return s;
}

/* One sum per block of `block` elements, written to its slot: the order inside a block is
 * sumsq_block's (or the plain loop's), never the thread count's. */
static pfgm_status cpu_sumsq_blocks(pfgm_backend *be, int64_t n, const float *x, int64_t block, double *out) {
    const int64_t nb = (n + block - 1) / block;
    const int ref = cpu_reference(be);
#pragma omp parallel for schedule(static) if (n >= OPTIM_PAR_MIN && nb > 1)
    for (int64_t b = 0; b < nb; ++b) {
        const int64_t s = b * block, len = n - s < block ? n - s : block;
        if (ref) {
            double acc = 0.0;
            for (int64_t i = 0; i < len; ++i) acc += (double)x[s + i] * (double)x[s + i];
            out[b] = acc;
        } else {
            out[b] = sumsq_block(x + s, len);
        }
    }
    return PFGM_OK;
}

static pfgm_status cpu_sumsq(pfgm_backend *be, int64_t n, const float *x, double *out) {
    double acc = 0.0;
    if (cpu_reference(be)) {
        for (int64_t i = 0; i < n; ++i) acc += (double)x[i] * (double)x[i];
        *out = acc;
        return PFGM_OK;
    }
    /* Block sums are written to fixed slots and added in index order after the parallel
     * loop: unlike an OpenMP reduction clause, the order does not depend on which thread
     * finishes first. The slots live on the stack in pieces of 64 blocks (4M elements), so
     * the op allocates nothing. */
    enum { SLOTS = 64 };
    double part[SLOTS];
    for (int64_t base = 0; base < n; base += (int64_t)SLOTS * SUMSQ_BLOCK) {
        int64_t rest = n - base;
        int64_t nb = (rest + SUMSQ_BLOCK - 1) / SUMSQ_BLOCK;
        if (nb > SLOTS) nb = SLOTS;
#pragma omp parallel for schedule(static) if (nb > 1)
        for (int64_t b = 0; b < nb; ++b) {
            int64_t s = base + b * SUMSQ_BLOCK;
            int64_t len = n - s < SUMSQ_BLOCK ? n - s : SUMSQ_BLOCK;
            part[b] = sumsq_block(x + s, len);
        }
        for (int64_t b = 0; b < nb; ++b) acc += part[b];
    }
    *out = acc;
    return PFGM_OK;
}

/* The per-step constants of torch.optim.Adam (_single_tensor_adam), rounded to float the
 * way its float32 kernels round Python scalars. */
typedef struct adam_coef {
    float b1, omb1, b2, omb2; /* beta1, 1-beta1, beta2, 1-beta2 */
    float neg_step_size;      /* -lr / (1 - beta1^step) */
    float bc2_sqrt;           /* sqrt(1 - beta2^step) */
    float eps, wd;
} adam_coef;

/* One element, in torch's operation order: grad.add(param, alpha=wd);
 * exp_avg.mul_(b1).add_(grad, alpha=1-b1); exp_avg_sq.mul_(b2).addcmul_(grad, grad, value=1-b2);
 * denom = exp_avg_sq.sqrt() / bc2_sqrt + eps; param.addcdiv_(exp_avg, denom, value=-step_size). */
static inline void adam_elem(const adam_coef *c, int use_wd, float *p, float g, float *m, float *v) {
    if (use_wd) g = g + c->wd * *p;
    float mi = *m * c->b1 + c->omb1 * g;
    float vi = *v * c->b2 + c->omb2 * g * g;
    float denom = sqrtf(vi) / c->bc2_sqrt + c->eps;
    *m = mi;
    *v = vi;
    *p = *p + c->neg_step_size * mi / denom;
}

#if defined(__SSE2__)
/* Four elements at a time with SSE: exactly adam_elem's IEEE single-precision operations in
 * the same order (sqrtps/divps round as sqrtss/divss), so the bits equal the plain loop's.
 * Written out because GCC will not vectorise sqrtf while -fmath-errno (the default) is on,
 * and neither the optimize attribute nor the pragma turns it off for one function.
 * Returns the first element it did not do. */
static int64_t adam_sse(const adam_coef *c, int use_wd, int64_t lo, int64_t hi, float *p, const float *g,
                        float *m, float *v) {
    const __m128 b1 = _mm_set1_ps(c->b1), omb1 = _mm_set1_ps(c->omb1), b2 = _mm_set1_ps(c->b2),
                 omb2 = _mm_set1_ps(c->omb2), nss = _mm_set1_ps(c->neg_step_size),
                 bc2 = _mm_set1_ps(c->bc2_sqrt), eps = _mm_set1_ps(c->eps), wd = _mm_set1_ps(c->wd);
    int64_t i = lo;
    for (; i + 4 <= hi; i += 4) {
        __m128 pi = _mm_loadu_ps(p + i), gi = _mm_loadu_ps(g + i);
        if (use_wd) gi = _mm_add_ps(gi, _mm_mul_ps(wd, pi));
        __m128 mi = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(m + i), b1), _mm_mul_ps(omb1, gi));
        __m128 vi = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(v + i), b2), _mm_mul_ps(_mm_mul_ps(omb2, gi), gi));
        __m128 denom = _mm_add_ps(_mm_div_ps(_mm_sqrt_ps(vi), bc2), eps);
        _mm_storeu_ps(m + i, mi);
        _mm_storeu_ps(v + i, vi);
        _mm_storeu_ps(p + i, _mm_add_ps(pi, _mm_div_ps(_mm_mul_ps(nss, mi), denom)));
    }
    return i;
}
#endif

/* Elements [lo, hi): the plain loop (reference mode, and the tail of the fast mode). */
static void adam_range(const adam_coef *c, int use_wd, int64_t lo, int64_t hi, float *p, const float *g,
                       float *m, float *v) {
    for (int64_t i = lo; i < hi; ++i) adam_elem(c, use_wd, &p[i], g[i], &m[i], &v[i]);
}

static pfgm_status cpu_adam_update(pfgm_backend *be, int64_t n, double lr, double beta1, double beta2,
                                   double eps, double wd, int64_t step, float *p, const float *g, float *m,
                                   float *v) {
    double bc1 = 1.0 - pow(beta1, (double)step), bc2 = 1.0 - pow(beta2, (double)step);
    adam_coef c = {.b1 = (float)beta1,
                   .omb1 = (float)(1.0 - beta1),
                   .b2 = (float)beta2,
                   .omb2 = (float)(1.0 - beta2),
                   .neg_step_size = (float)(-(lr / bc1)),
                   .bc2_sqrt = (float)sqrt(bc2),
                   .eps = (float)eps,
                   .wd = (float)wd};
    int use_wd = wd != 0.0;
    if (cpu_reference(be)) {
        adam_range(&c, use_wd, 0, n, p, g, m, v);
        return PFGM_OK;
    }
    /* One contiguous piece per thread (a static schedule); every element is independent,
     * so the split does not change the bits. */
#pragma omp parallel if (n > OPTIM_PAR_MIN)
    {
        int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
        int64_t per = ((n + nt - 1) / nt + 15) & ~(int64_t)15;
        int64_t lo = t * per < n ? t * per : n, hi = lo + per < n ? lo + per : n;
#if defined(__SSE2__)
        lo = adam_sse(&c, use_wd, lo, hi, p, g, m, v);
#endif
        adam_range(&c, use_wd, lo, hi, p, g, m, v);
    }
    return PFGM_OK;
}

/* models/ema.py: s_param.sub_(one_minus_decay * (s_param - param)), one_minus_decay a Python
 * float that the float32 kernel rounds to float. Equal to decay*s + (1-decay)*p in exact
 * arithmetic. */
static inline float ema_elem(float omd, float s, float p) { return s - omd * (s - p); }

static pfgm_status cpu_ema_update(pfgm_backend *be, int64_t n, double decay, float *shadow, const float *p) {
    float omd = (float)(1.0 - decay);
    if (cpu_reference(be)) {
        for (int64_t i = 0; i < n; ++i) shadow[i] = ema_elem(omd, shadow[i], p[i]);
        return PFGM_OK;
    }
#pragma omp parallel for simd schedule(static) if (n > OPTIM_PAR_MIN)
    for (int64_t i = 0; i < n; ++i) shadow[i] = ema_elem(omd, shadow[i], p[i]);
    return PFGM_OK;
}

void pfgm_cpu_optim_ops_init(pfgm_backend *be) {
    be->sumsq = cpu_sumsq;
    be->sumsq_blocks = cpu_sumsq_blocks;
    be->adam_update = cpu_adam_update;
    be->ema_update = cpu_ema_update;
}
