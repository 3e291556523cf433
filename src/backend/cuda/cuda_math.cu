/* CUDA ops of the PFGM math group of backend.h (callers: src/core): row norms and the row
 * softmax, the perturbation kernel (spec §1.4), the log-domain field weights and the
 * normalized target (spec §1.2-1.3, §3.6), the loss (spec §1.5), prior directions (spec
 * §1.7), the ODE drift with the z_exp substitution (spec §1.8) and the double-precision
 * Runge-Kutta combinations and scipy norms (spec §1.9). Each op matches its CPU counterpart
 * in src/backend/cpu/cpu_math.c (tests/gpu/test_cuda_math.c compares them):
 *   - the same Philox layout per sample, through util/philox_impl.h (the same words);
 *   - the same float/double choice for every intermediate, and the CPU's separately rounded
 *     products: the CUDA sources compile with --fmad=false (CMakeLists.txt PFGM_CUDA_FLAGS),
 *     so nvcc contracts no multiply and add into an FMA; the __d*_rn / __f*_rn intrinsics
 *     mark the places where the order of operations matters. Transcendentals (exp, log,
 *     sqrt of doubles aside) are CUDA's, within an ulp or two of the CPU's libm;
 *   - row sums are block trees in double (fixed shape: the same bits run to run), which
 *     differ from the CPU's sequential order only in the last bits of a double;
 *   - host results (loss, row norms of the ODE, guard counts) come from per-block partials
 *     summed on the host in block order: no atomics.
 * A row-wise op runs one block of kThreads per row, rows in a grid-stride loop. */
#include <cfloat>

#include "backend/cuda/cuda_internal.cuh"
#include "util/philox_impl.h"

namespace {

/* Grid of row-wise kernels; rows beyond it are taken by the grid-stride loop. */
const int kMaxRowBlocks = 65535;

inline unsigned row_grid(int64_t rows, int cap) { return (unsigned)(rows < cap ? rows : cap); }

__device__ __forceinline__ double block_min_d(double v) {
    __shared__ double sh[kThreads];
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = kThreads / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sh[threadIdx.x] = fmin(sh[threadIdx.x], sh[threadIdx.x + s]);
        __syncthreads();
    }
    double r = sh[0];
    __syncthreads();
    return r;
}

/* Standard normals of stream r at elements [start, start + n), exactly as pfgm_rng_normal:
 * element e is lane e % 4 of Philox block e / 4, Box-Muller on the word pairs (0, 1) and
 * (2, 3), cosine for even lanes. Calls f(j, value) for j < n, each j on one thread of the
 * block (threads stride over Philox blocks). */
template <class F>
__device__ void block_normals(const pfgm_rng &r, uint64_t start, int64_t n, F f) {
    if (n <= 0) return;
    const uint64_t first = start >> 2, last = pfgm_philox_last_block(start, (uint64_t)n);
    for (uint64_t b = first + threadIdx.x; b <= last; b += blockDim.x) {
        uint32_t w[4];
        pfgm_philox_block(r.seed, r.rank, r.stream, r.step, b, w);
        float v[4];
        pfgm_philox_box_muller(w[0], w[1], &v[0], &v[1]);
        pfgm_philox_box_muller(w[2], w[3], &v[2], &v[3]);
        for (int l = 0; l < 4; ++l) {
            const uint64_t e = b * 4 + (uint64_t)l;
            if (e >= start && e < start + (uint64_t)n) f((int64_t)(e - start), v[l]);
        }
    }
}

/* Copies nb doubles of the partials scratch to its pinned host mirror and waits. */
pfgm_status partials_to_host(pfgm_backend *be, int nb) {
    cuda_ctx *c = ctx_of(be);
    PFGM_CUDA_CHECK(cudaMemcpyAsync(c->partials_host, c->partials, sizeof(double) * (size_t)nb, cudaMemcpyDeviceToHost,
                                    c->stream));
    PFGM_CUDA_CHECK(cudaStreamSynchronize(c->stream));
    return PFGM_OK;
}

/* ---- row norms and softmax ---------------------------------------------------------------- */

__global__ void k_row_sumsq(int64_t rows, int64_t cols, const float *x, int64_t ld, float *out) {
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *row = x + r * ld;
        double acc = 0.0;
        for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) acc += (double)row[j] * (double)row[j];
        double s = block_sum(acc);
        if (threadIdx.x == 0) out[r] = (float)s;
    }
}

pfgm_status cuda_row_sumsq(pfgm_backend *be, int64_t rows, int64_t cols, const float *x, int64_t ld, float *out) {
    if (rows == 0) return PFGM_OK;
    k_row_sumsq<<<row_grid(rows, kMaxRowBlocks), kThreads, 0, stream_of(be)>>>(rows, cols, x, ld, out);
    PFGM_CUDA_LAUNCH_CHECK();
    return PFGM_OK;
}

__global__ void k_softmax_rows(int64_t rows, int64_t cols, float *x) {
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        float *row = x + r * cols;
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
}

pfgm_status cuda_softmax_rows(pfgm_backend *be, int64_t rows, int64_t cols, float *x) {
    if (rows == 0) return PFGM_OK;
    k_softmax_rows<<<row_grid(rows, kMaxRowBlocks), kThreads, 0, stream_of(be)>>>(rows, cols, x);
    PFGM_CUDA_LAUNCH_CHECK();
    return PFGM_OK;
}

/* ---- perturbation kernel (spec §1.4) ------------------------------------------------------- */

struct perturb_args {
    pfgm_rng r;
    int64_t B, N, M, m_restricted;
    uint64_t n4, stride; /* ceil4(N), 4 + 2 n4: the per-sample Philox window (docs/numerics.md) */
    double tau, sigma_end;
    int restrict_M;
    const float *x;
    float *out, *x_net, *z_net;
};

/* One block per sample k. Window k*S: [0, 2) uniforms (m), element 2 the normal of z,
 * [4, 4 + N) eps_x (only its norm is used), [4 + n4, 4 + n4 + N) the direction. S is a
 * multiple of 4, so elements 0..3 are exactly Philox block k*S/4. */
__global__ void k_perturb(perturb_args a) {
    __shared__ double s_mult;
    __shared__ float s_z0;
    const int64_t N = a.N;
    for (int64_t k = blockIdx.x; k < a.B; k += gridDim.x) {
        const uint64_t base = (uint64_t)k * a.stride;
        if (threadIdx.x == 0) {
            uint32_t w[4];
            pfgm_philox_block(a.r.seed, a.r.rank, a.r.stream, a.r.step, base >> 2, w);
            const float u0 = pfgm_philox_u24(w[0]), u1 = pfgm_philox_u24(w[1]);
            float gz, unused;
            pfgm_philox_box_muller(w[2], w[3], &gz, &unused); /* element base + 2: cosine branch */
            const float z0 = fabsf(gz * (float)a.sigma_end); /* abs() before restrict_M (spec §6.1) */
            double m = (double)u0 * (double)a.M;
            if (a.restrict_M && z0 < 0.005f) m = (double)u1 * (double)a.m_restricted;
            s_mult = (double)(float)pow(1.0 + a.tau, m);
            s_z0 = z0;
        }
        double acc = 0.0;
        block_normals(a.r, base + 4, N, [&](int64_t, float v) { acc += (double)v * (double)v; });
        const double eps_sq = block_sum(acc); /* its barrier also publishes s_mult, s_z0 */
        float *row = a.out + k * (N + 1);
        acc = 0.0;
        block_normals(a.r, base + 4 + a.n4, N, [&](int64_t j, float v) {
            row[j] = v;
            acc += (double)v * (double)v;
        });
        const double usq = block_sum(acc);
        const double radius = a.sigma_end * sqrt(eps_sq) * s_mult; /* |eps_x| (1+tau)^m */
        const double scale = usq > 0.0 ? radius / sqrt(usq) : 0.0;
        const float *xk = a.x + k * N;
        for (int64_t j = threadIdx.x; j < N; j += blockDim.x) {
            const float v = xk[j] + (float)(scale * (double)row[j]);
            row[j] = v;
            if (a.x_net) a.x_net[k * N + j] = v;
        }
        if (threadIdx.x == 0) {
            const float z = (float)((double)s_z0 * s_mult);
            row[N] = z;
            if (a.z_net) a.z_net[k] = z > 1e-10f ? z : 1e-10f;
        }
        __syncthreads(); /* s_mult and s_z0 are rewritten for the next sample */
    }
}

pfgm_status cuda_perturb(pfgm_backend *be, const pfgm_rng *r, int64_t B, int64_t N, const float *x, int64_t M,
                         double tau, double sigma_end, int restrict_M, float *out, float *x_net, float *z_net) {
    if (B == 0) return PFGM_OK;
    perturb_args a;
    a.r = *r;
    a.B = B;
    a.N = N;
    a.M = M;
    a.m_restricted = (int64_t)((double)M * 0.7); /* int(M * 0.7), as the authors */
    a.n4 = pfgm_philox_ceil4((uint64_t)N);
    a.stride = pfgm_philox_perturb_stride((uint64_t)N);
    a.tau = tau;
    a.sigma_end = sigma_end;
    a.restrict_M = restrict_M;
    a.x = x;
    a.out = out;
    a.x_net = x_net;
    a.z_net = z_net;
    k_perturb<<<row_grid(B, kMaxRowBlocks), kThreads, 0, stream_of(be)>>>(a);
    PFGM_CUDA_LAUNCH_CHECK();
    return PFGM_OK;
}

/* ---- normalized empirical field (spec §1.2-1.3, §3.6) -------------------------------------- */

/* partials[2 blk] / [2 blk + 1] = the smallest index of a non-finite a2 / b2 seen by block
 * blk (B / L when none), as doubles (exact below 2^53). */
__global__ void k_first_nonfinite(int64_t B, const float *a2, int64_t L, const float *b2, double *partials) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    int64_t ia = B, ib = L;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < B; i += stride)
        if (!isfinite(a2[i]) && i < ia) ia = i;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < L; i += stride)
        if (!isfinite(b2[i]) && i < ib) ib = i;
    double ma = block_min_d((double)ia), mb = block_min_d((double)ib);
    if (threadIdx.x == 0) {
        partials[2 * blockIdx.x] = ma;
        partials[2 * blockIdx.x + 1] = mb;
    }
}

/* d^2 = a2 + b2 - 2 x.y in double; 2 x.y is exact, so no fused form can round differently. */
__device__ __forceinline__ double field_d2(double a2, const float *b2, const float *g, int64_t i) {
    double d2 = a2 + (double)b2[i] - 2.0 * (double)g[i];
    return d2 > DBL_MIN ? d2 : DBL_MIN; /* clamp rounding negatives; d = 0 -> DBL_MIN */
}

/* One block per perturbed point b: gc[b, :] in place from x.y to the weights c_{b,i}. */
__global__ void k_field_weights(int64_t B, int64_t L, double h, const float *a2, const float *b2, float *gc,
                                float *csum) {
    for (int64_t b = blockIdx.x; b < B; b += gridDim.x) {
        float *g = gc + b * L;
        const double a = (double)a2[b];
        /* The largest logit -h ln d^2 belongs to the nearest charge: subtract it before exp. */
        double dmin = DBL_MAX;
        for (int64_t i = threadIdx.x; i < L; i += blockDim.x) dmin = fmin(dmin, field_d2(a, b2, g, i));
        dmin = block_min_d(dmin);
        /* w < e^-110 < FLT_TRUE_MIN is 0 in float: those charges skip the log and exp. */
        const double cutoff = dmin * exp(110.0 / h);
        double acc = 0.0;
        for (int64_t i = threadIdx.x; i < L; i += blockDim.x) {
            const double d2 = field_d2(a, b2, g, i);
            const float w = d2 > cutoff ? 0.0f : (float)exp(-h * log(d2 / dmin)); /* (d_min/d)^(N+1) */
            g[i] = w;
            acc += (double)w;
        }
        const double inv = 1.0 / block_sum(acc); /* the sum is >= 1: the nearest charge has w = 1 */
        acc = 0.0;
        for (int64_t i = threadIdx.x; i < L; i += blockDim.x) {
            const float w = (float)((double)g[i] * inv);
            g[i] = w;
            acc += (double)w;
        }
        const double cs = block_sum(acc);
        if (threadIdx.x == 0) csum[b] = (float)cs;
    }
}

pfgm_status cuda_field_weights(pfgm_backend *be, int64_t B, int64_t L, double half_exponent, const float *a2,
                               const float *b2, float *gc, float *csum) {
    cuda_ctx *c = ctx_of(be);
    /* The contract names the first non-finite norm and writes nothing then: check first
     * (one small read-back per call). */
    const int nb = blocks_for(B > L ? B : L, c->max_blocks / 2);
    k_first_nonfinite<<<nb, kThreads, 0, c->stream>>>(B, a2, L, b2, c->partials);
    PFGM_CUDA_LAUNCH_CHECK();
    PFGM_TRY(partials_to_host(be, 2 * nb));
    double ia = (double)B, ib = (double)L;
    for (int i = 0; i < nb; ++i) {
        ia = c->partials_host[2 * i] < ia ? c->partials_host[2 * i] : ia;
        ib = c->partials_host[2 * i + 1] < ib ? c->partials_host[2 * i + 1] : ib;
    }
    if (ia < (double)B)
        return pfgm_error(PFGM_ERR_NUMERIC, "field targets: perturbed point %lld has a non-finite norm", (long long)ia);
    if (ib < (double)L)
        return pfgm_error(PFGM_ERR_NUMERIC, "field targets: charge %lld has a non-finite norm", (long long)ib);
    if (B == 0) return PFGM_OK;
    k_field_weights<<<row_grid(B, kMaxRowBlocks), kThreads, 0, c->stream>>>(B, L, half_exponent, a2, b2, gc, csum);
    PFGM_CUDA_LAUNCH_CHECK();
    return PFGM_OK;
}

/* One block per row: E = C.Y - (sum c) x~ in double (rounded to float as stored), then
 * e = sqrt(N) E / (|E| + gamma) from the stored floats, as the CPU. */
__global__ void k_field_finish(int64_t B, int64_t N, double gamma, double sqrt_n, const float *csum,
                               const float *perturbed, float *e) {
    for (int64_t b = blockIdx.x; b < B; b += gridDim.x) {
        float *row = e + b * (N + 1);
        const float *xt = perturbed + b * (N + 1);
        const double cs = (double)csum[b];
        double acc = 0.0;
        for (int64_t j = threadIdx.x; j <= N; j += blockDim.x) {
            const double v = __dsub_rn(j < N ? (double)row[j] : 0.0, __dmul_rn(cs, (double)xt[j]));
            row[j] = (float)v;
            acc += v * v;
        }
        const double den = sqrt(block_sum(acc)) + gamma;
        const double scale = den > 0.0 ? sqrt_n / den : 0.0; /* |E| + gamma = 0: no direction, target 0 */
        for (int64_t j = threadIdx.x; j <= N; j += blockDim.x) row[j] = (float)((double)row[j] * scale);
    }
}

pfgm_status cuda_field_finish(pfgm_backend *be, int64_t B, int64_t N, double gamma, const float *csum,
                              const float *perturbed, float *e) {
    if (B == 0) return PFGM_OK;
    k_field_finish<<<row_grid(B, kMaxRowBlocks), kThreads, 0, stream_of(be)>>>(B, N, gamma, sqrt((double)N), csum,
                                                                                perturbed, e);
    PFGM_CUDA_LAUNCH_CHECK();
    return PFGM_OK;
}

/* ---- loss (spec §1.5) ------------------------------------------------------------------------ */

/* Rows in a grid-stride loop; block blk writes partials[blk] = sum over its rows of
 * s * sum_d (pred - target)^2, and the gradient of every element it visits. */
/* Column d < N of row b is pred_x[b, d], column N is pred_z[b] (the network's two outputs). */
__global__ void k_loss_mse(int64_t B, int64_t N, const float *pred_x, const float *pred_z, const float *target,
                           double s, double gscale, float *grad_x, float *grad_z, double *partials) {
    const int64_t D = N + 1;
    double total = 0.0;
    for (int64_t b = blockIdx.x; b < B; b += gridDim.x) {
        double acc = 0.0;
        for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
            const double p = d < N ? (double)pred_x[b * N + d] : (double)pred_z[b];
            const double v = p - (double)target[b * D + d];
            acc += v * v;
            /* d/dpred of (1/B) s (pred - target)^2 */
            if (d < N && grad_x) grad_x[b * N + d] = (float)(gscale * v);
            if (d == N && grad_z) grad_z[b] = (float)(gscale * v);
        }
        total = __dadd_rn(total, __dmul_rn(s, block_sum(acc)));
    }
    if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

pfgm_status cuda_loss_mse(pfgm_backend *be, int64_t B, int64_t N, const float *pred_x, const float *pred_z,
                          const float *target, int reduce_mean, float *grad_x, float *grad_z, double *loss) {
    cuda_ctx *c = ctx_of(be);
    const double s = reduce_mean ? 1.0 / (double)(N + 1) : 0.5;
    const int nb = (int)row_grid(B, c->max_blocks);
    k_loss_mse<<<nb, kThreads, 0, c->stream>>>(B, N, pred_x, pred_z, target, s, 2.0 * s / (double)B, grad_x, grad_z,
                                               c->partials);
    PFGM_CUDA_LAUNCH_CHECK();
    double total = 0.0;
    PFGM_TRY(pfgm_cuda_reduce_partials(be, nb, &total));
    *loss = total / (double)B;
    return PFGM_OK;
}

/* ---- prior directions (spec §1.7) ------------------------------------------------------------ */

__global__ void k_sphere_points(pfgm_rng r, uint64_t offset, uint64_t stride, int64_t B, int64_t N,
                                const double *radii, float *x, int64_t ldx) {
    for (int64_t k = blockIdx.x; k < B; k += gridDim.x) {
        float *row = x + k * ldx;
        double acc = 0.0;
        block_normals(r, offset + (uint64_t)k * stride, N, [&](int64_t j, float v) {
            row[j] = v;
            acc += (double)v * (double)v;
        });
        const double sq = block_sum(acc); /* its barrier also publishes row[] to the block */
        const double scale = sq > 0.0 ? radii[k] / sqrt(sq) : 0.0;
        for (int64_t j = threadIdx.x; j < N; j += blockDim.x) row[j] = (float)(scale * (double)row[j]);
        __syncthreads();
    }
}

pfgm_status cuda_sphere_points(pfgm_backend *be, const pfgm_rng *r, uint64_t offset, uint64_t stride, int64_t B,
                               int64_t N, const double *radii, float *x, int64_t ldx) {
    if (B == 0) return PFGM_OK;
    k_sphere_points<<<row_grid(B, kMaxRowBlocks), kThreads, 0, stream_of(be)>>>(*r, offset, stride, B, N, radii, x,
                                                                                 ldx);
    PFGM_CUDA_LAUNCH_CHECK();
    return PFGM_OK;
}

/* ---- backward ODE (spec §1.8-1.9) ------------------------------------------------------------ */

/* The authors' v_z for every rho = |v_x|/sqrt(N) != 1 (rho > 1 included); only the
 * singular point |1 - rho| <= RHO_SINGULAR is guarded with v_z = -0 (as the CPU backend,
 * docs/numerics.md §6). */
#define RHO_SINGULAR (4.0 * DBL_EPSILON)

/* One block per row; with `partials`, block blk writes the number of rows it clamped. */
__global__ void k_ode_drift(int64_t B, int64_t N, int64_t P, const float *z, double gamma, double z_exp,
                            double sqrt_n, const float *v_x, const float *v_z, float *k, float *v_z_used,
                            double *partials) {
    int64_t guards = 0;
    for (int64_t b = blockIdx.x; b < B; b += gridDim.x) {
        const float zf = z[b];
        const float *vx = v_x + b * N;
        float vz = v_z[b];
        if ((double)zf < z_exp && gamma > 0.0) { /* the same branch for the whole block */
            double acc = 0.0;
            for (int64_t j = threadIdx.x; j < N; j += blockDim.x) acc += (double)vx[j] * (double)vx[j];
            const double rho = sqrt(block_sum(acc)) / sqrt_n;
            if (fabs(1.0 - rho) > RHO_SINGULAR) {
                const double ex = gamma * rho / (1.0 - rho); /* |E_x| from rho = a/(a + gamma); < 0 for rho > 1 */
                const double en = sqrt(__dadd_rn(__dmul_rn(ex, ex), __dmul_rn((double)zf, (double)zf)));
                vz = (float)(-sqrt_n * (double)zf / (en + gamma));
            } else {
                vz = -0.0f; /* |E_x| -> infinity from either side */
                ++guards;
            }
        }
        if (v_z_used && threadIdx.x == 0) v_z_used[b] = vz;
        const float dt_dz = __fdiv_rn(1.0f, __fadd_rn(vz, 1e-5f)); /* float32, in the authors' order */
        float *kr = k + b * (N + P);
        for (int64_t j = threadIdx.x; j < N; j += blockDim.x) kr[j] = __fmul_rn(zf, __fmul_rn(vx[j], dt_dz));
        for (int64_t j = threadIdx.x; j < P; j += blockDim.x) kr[N + j] = zf;
    }
    if (partials && threadIdx.x == 0) partials[blockIdx.x] = (double)guards;
}

pfgm_status cuda_ode_drift(pfgm_backend *be, int64_t B, int64_t N, int64_t P, const float *z, double gamma,
                           double z_exp, const float *v_x, const float *v_z, float *k, float *v_z_used,
                           int64_t *guard_count) {
    if (guard_count) *guard_count = 0;
    if (B == 0) return PFGM_OK;
    cuda_ctx *c = ctx_of(be);
    /* Counting the guards needs one partial per block, so the grid is capped at the scratch. */
    const int nb = (int)row_grid(B, guard_count ? c->max_blocks : kMaxRowBlocks);
    k_ode_drift<<<nb, kThreads, 0, c->stream>>>(B, N, P, z, gamma, z_exp, sqrt((double)N), v_x, v_z, k, v_z_used,
                                                guard_count ? c->partials : NULL);
    PFGM_CUDA_LAUNCH_CHECK();
    if (guard_count) {
        double g = 0.0;
        PFGM_TRY(pfgm_cuda_reduce_partials(be, nb, &g));
        *guard_count = (int64_t)g;
    }
    return PFGM_OK;
}

__global__ void k_ode_init_state(int64_t B, int64_t N, int64_t P, const float *x, double z, double *y) {
    const int64_t D = N + P, n = B * D;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t b = i / D, j = i - b * D;
        y[i] = j < N ? (double)x[b * N + j] : z;
    }
}

pfgm_status cuda_ode_init_state(pfgm_backend *be, int64_t B, int64_t N, int64_t P, const float *x, double z,
                                double *y) {
    if (B == 0) return PFGM_OK;
    k_ode_init_state<<<blocks_for(B * (N + P), 65535), kThreads, 0, stream_of(be)>>>(B, N, P, x, z, y);
    PFGM_CUDA_LAUNCH_CHECK();
    return PFGM_OK;
}

/* The stage pointers and coefficients, passed by value (they are host arrays; the front end
 * holds nk to PFGM_OP_MAX_TERMS). */
struct ode_terms {
    const float *k[PFGM_OP_MAX_TERMS];
    double coef[PFGM_OP_MAX_TERMS];
    int nk;
};

/* sum_j coef[j] k[j][i] in double, products rounded before the sums (the CPU's order). */
__device__ __forceinline__ double terms_at(const ode_terms &t, int64_t i) {
    double acc = 0.0;
    for (int j = 0; j < t.nk; ++j) acc = __dadd_rn(acc, __dmul_rn(t.coef[j], (double)t.k[j][i]));
    return acc;
}

ode_terms make_terms(int nk, const double *coef, const float *const *k) {
    ode_terms t;
    t.nk = nk;
    for (int j = 0; j < PFGM_OP_MAX_TERMS; ++j) {
        t.k[j] = j < nk ? k[j] : NULL;
        t.coef[j] = j < nk ? coef[j] : 0.0;
    }
    return t;
}

__global__ void k_ode_combine(int64_t rows, int64_t cols, const double *y, const double *h, ode_terms t,
                              double *y_out, float *x_out, int64_t nx) {
    const int64_t n = rows * cols;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = i / cols, c = i - r * cols;
        const double hr = h ? h[r] : 1.0;
        const double v = __dadd_rn(y[i], __dmul_rn(hr, terms_at(t, i))); /* scipy: y + h * (K^T a) */
        if (y_out) y_out[i] = v;
        if (x_out && c < nx) x_out[r * nx + c] = (float)v;
    }
}

pfgm_status cuda_ode_combine(pfgm_backend *be, int64_t rows, int64_t cols, const double *y, const double *h, int nk,
                             const double *coef, const float *const *k, double *y_out, float *x_out, int64_t nx) {
    if (rows == 0) return PFGM_OK;
    k_ode_combine<<<blocks_for(rows * cols, 65535), kThreads, 0, stream_of(be)>>>(rows, cols, y, h,
                                                                                  make_terms(nk, coef, k), y_out,
                                                                                  x_out, nx);
    PFGM_CUDA_LAUNCH_CHECK();
    return PFGM_OK;
}

/* Rows [r0, r0 + gridDim.x), one block each: partials[blk] = the scaled sum of squares. */
__global__ void k_ode_sumsq(int64_t r0, int64_t cols, const double *num_y, const double *h, ode_terms t,
                            const double *ya, const double *yb, double rtol, double atol, double *partials) {
    const int64_t r = r0 + blockIdx.x;
    const double hr = h ? h[r] : 1.0;
    double acc = 0.0;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
        const int64_t i = r * cols + c;
        const double v = __dadd_rn(num_y ? num_y[i] : 0.0, __dmul_rn(terms_at(t, i), hr));
        double mag = fabs(ya[i]);
        if (yb && fabs(yb[i]) > mag) mag = fabs(yb[i]);
        const double q = v / __dadd_rn(atol, __dmul_rn(rtol, mag));
        acc += q * q;
    }
    const double s = block_sum(acc);
    if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

pfgm_status cuda_ode_sumsq(pfgm_backend *be, int64_t rows, int64_t cols, const double *num_y, const double *h, int nk,
                           const double *coef, const float *const *k, const double *ya, const double *yb, double rtol,
                           double atol, double *row_out) {
    cuda_ctx *c = ctx_of(be);
    const ode_terms t = make_terms(nk, coef, k);
    /* row_out is host memory: rows go through the partials scratch, max_blocks at a time. */
    for (int64_t r0 = 0; r0 < rows; r0 += c->max_blocks) {
        const int nr = (int)(rows - r0 < c->max_blocks ? rows - r0 : c->max_blocks);
        k_ode_sumsq<<<nr, kThreads, 0, c->stream>>>(r0, cols, num_y, h, t, ya, yb, rtol, atol, c->partials);
        PFGM_CUDA_LAUNCH_CHECK();
        PFGM_TRY(partials_to_host(be, nr));
        for (int i = 0; i < nr; ++i) row_out[r0 + i] = c->partials_host[i];
    }
    return PFGM_OK;
}

} // namespace

void pfgm_cuda_math_ops_init(pfgm_backend *be) {
    be->row_sumsq = cuda_row_sumsq;
    be->softmax_rows = cuda_softmax_rows;
    be->perturb = cuda_perturb;
    be->field_weights = cuda_field_weights;
    be->field_finish = cuda_field_finish;
    be->loss_mse = cuda_loss_mse;
    be->sphere_points = cuda_sphere_points;
    be->ode_drift = cuda_ode_drift;
    be->ode_init_state = cuda_ode_init_state;
    be->ode_combine = cuda_ode_combine;
    be->ode_sumsq = cuda_ode_sumsq;
}
