/* The backend interface: a table of function pointers through which the PFGM math
 * (src/core) and the network (src/nn) run, written once for every device. Buffers passed
 * to ops live in the backend's memory (host memory for the CPU backend, device memory for
 * CUDA); all matrices are row-major float32 unless stated. Every op returns pfgm_status:
 * PFGM_OK, or the device's error code (and the few errors an op's comment names).
 *
 * Call ops through include/pfgm/ops.h (pfgm_op_<name>), never through these pointers: the
 * front end checks once, for every backend, that the op exists and that its arguments are
 * possible (PFGM_ERR_UNSUPPORTED, PFGM_ERR_INVALID_ARG), and the backends are kernels only:
 * a bad call straight to a backend's op is not checked. A backend keeps only the checks
 * that are its own (the size of its workspace, the int range of a cuBLAS call).
 *
 * Backends:
 *   cpu            OpenBLAS sgemm + OpenMP loops (the fast path)
 *   cpu-reference  plain C loops, double accumulators where it matters: the spec every other
 *                  path is tested against (STYLE.md "The CPU reference is the spec")
 *   cuda           cuBLAS + kernels (built when nvcc is found; PFGM_CAP_DEVICE_MEMORY)
 *
 * Ops are grouped by the layer that calls them; a group's comment names the calling files.
 * A backend that lacks an op leaves the pointer NULL (the front end then refuses the call
 * with PFGM_ERR_UNSUPPORTED); the capability bits say how an op runs. Adding an op: its
 * pointer and contract here, one table entry per backend, one function in ops.h/ops.c. */
#ifndef PFGM_BACKEND_H
#define PFGM_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "pfgm/rng.h"
#include "pfgm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { PFGM_BACKEND_CPU = 0, PFGM_BACKEND_CUDA = 1 } pfgm_backend_kind;

/* Capability bits returned by caps(). */
enum {
    PFGM_CAP_REFERENCE = 1u << 0,     /* plain-loop reference implementation */
    PFGM_CAP_DEVICE_MEMORY = 1u << 1, /* op buffers are device pointers: use copy() */
    PFGM_CAP_BLAS = 1u << 2,          /* gemm runs on an optimised BLAS */
    PFGM_CAP_THREADS = 1u << 3,       /* ops run multi-threaded (OpenMP) */
    PFGM_CAP_TF32 = 1u << 4,          /* gemm may use TF32 inputs */
    PFGM_CAP_BF16 = 1u << 5           /* gemm/conv may use bf16 inputs (no backend sets it yet: distributed.bf16 is refused) */
};

typedef enum {
    PFGM_COPY_H2D = 0, /* host -> backend memory */
    PFGM_COPY_D2H = 1, /* backend memory -> host */
    PFGM_COPY_D2D = 2  /* within backend memory */
} pfgm_copy_kind;

/* Most stage terms (nk) of one ode_combine or ode_sumsq call: the Dormand-Prince pair uses 7. */
#define PFGM_OP_MAX_TERMS 8

typedef struct pfgm_backend pfgm_backend;

struct pfgm_backend {
    const char *name;         /* "cpu", "cpu-reference", "cuda" */
    pfgm_backend_kind kind;
    void *ctx;                /* implementation state */

    /* ---- lifetime and memory (every caller) ------------------------------------------ */
    unsigned (*caps)(const pfgm_backend *be);
    void (*destroy)(pfgm_backend *be);
    /* bytes of zeroed memory, 64-byte aligned; *ptr = NULL for bytes = 0.
     * Errors: PFGM_ERR_NOMEM naming the size. */
    pfgm_status (*alloc)(pfgm_backend *be, size_t bytes, void **ptr);
    void (*free)(pfgm_backend *be, void *ptr);
    pfgm_status (*copy)(pfgm_backend *be, void *dst, const void *src, size_t bytes, pfgm_copy_kind kind);
    pfgm_status (*memzero)(pfgm_backend *be, void *dst, size_t bytes);
    /* Waits until every op issued so far has finished (a no-op on the CPU). */
    pfgm_status (*sync)(pfgm_backend *be);

    /* ---- dense linear algebra and elementwise (core/, nn/, optim) --------------------- */
    /* C[m,n] = alpha * op(A) op(B) + beta * C, row-major; op(A) is [m,k] (A^T when trans_a),
     * op(B) is [k,n]; lda/ldb/ldc are row strides in elements. */
    pfgm_status (*gemm)(pfgm_backend *be, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                        float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
                        float beta, float *c, int64_t ldc);
    /* y[i] = alpha * x[i] + beta * y[i], i < n. x may equal y. */
    pfgm_status (*axpby)(pfgm_backend *be, int64_t n, float alpha, const float *x, float beta, float *y);
    /* x[i] = value, i < n. */
    pfgm_status (*fill)(pfgm_backend *be, int64_t n, float value, float *x);
    /* *out (host) = sum_i x[i] * y[i], accumulated in double. */
    pfgm_status (*dot)(pfgm_backend *be, int64_t n, const float *x, const float *y, double *out);
    /* out[r] = sum_c x[r*ld + c]^2 for r < rows, c < cols (backend memory). Row norms of
     * perturbed points and charges (spec §3.6), global gradient norm pieces. */
    pfgm_status (*row_sumsq)(pfgm_backend *be, int64_t rows, int64_t cols, const float *x, int64_t ld,
                             float *out);
    /* In-place numerically stable softmax of each row of x[rows, cols] (max-subtracted,
     * exp, normalised). Log-domain field weights (spec §1.2) and attention (spec §3.1). */
    pfgm_status (*softmax_rows)(pfgm_backend *be, int64_t rows, int64_t cols, float *x);

    /* ---- random numbers: Philox4x32-10, the same bits on every backend (rng.h) --------- */
    pfgm_status (*fill_uniform)(pfgm_backend *be, const pfgm_rng *r, uint64_t offset, int64_t n, float *out);
    pfgm_status (*fill_normal)(pfgm_backend *be, const pfgm_rng *r, uint64_t offset, int64_t n, float *out);

    /* ---- PFGM math: src/core (perturb.c field.c loss.c prior.c ode.c) ------------------
     * Implemented for the CPU in src/backend/cpu/cpu_math.c. Formulas, Philox layouts and
     * precision choices: docs/numerics.md. Scalars are host doubles. */
    /* Perturbation kernel (spec §1.4, restrict_M after the abs()): x[B, N] clean small batch
     * -> out[B, N+1] perturbed points (last column z, unclamped). Optional x_net[B, N] (a
     * contiguous copy of the x' part) and z_net[B] (z clamped below at 1e-10, the network
     * input). Philox layout per sample k (docs/numerics.md): element offset k*S with
     * S = 4 + 2*ceil4(N); draws depend only on (seed, rank, step, k). */
    pfgm_status (*perturb)(pfgm_backend *be, const pfgm_rng *r, int64_t B, int64_t N, const float *x,
                           int64_t M, double tau, double sigma_end, int restrict_M, float *out,
                           float *x_net, float *z_net);
    /* Log-domain field weights (spec §1.2, §3.6). In: gc[B, L] = x_k . y_i (x part only),
     * a2[B] = |x~_k|^2 (z included), b2[L] = |y_i|^2. Out: gc[b, i] = c_{b,i} =
     * softmax_i(-half_exponent * ln d^2_{b,i}) with d^2 = max(a2 + b2 - 2 gc, 0) formed in
     * double (d^2 = 0 counts as DBL_MIN: a coincident charge takes all the weight), and
     * csum[b] = sum_i c_{b,i} of the stored floats. half_exponent = (N+1)/2.
     * Errors: PFGM_ERR_NUMERIC when an a2 or b2 is not finite (nothing written). */
    pfgm_status (*field_weights)(pfgm_backend *be, int64_t B, int64_t L, double half_exponent,
                                 const float *a2, const float *b2, float *gc, float *csum);
    /* Normalized field target (spec §1.3). In: e[B, N+1] whose first N columns hold C.Y;
     * perturbed[B, N+1]; csum[B]. Out: e = sqrt(N) * E / (|E| + gamma) with
     * E_x = C.Y - csum*x, E_z = -csum*z; a row with |E| + gamma = 0 becomes 0. */
    pfgm_status (*field_finish)(pfgm_backend *be, int64_t B, int64_t N, double gamma, const float *csum,
                                const float *perturbed, float *e);
    /* Loss (spec §1.5) of the network's two outputs against the augmented target: the
     * prediction of row b is [pred_x[b, 0..N-1], pred_z[b]] (pred_x [B, N], pred_z [B]),
     * target [B, N+1]; *loss (host) = mean_b s * sum_d (pred - target)^2 over the D = N+1
     * columns in column order, s = 0.5 (reduce_mean 0) or 1/D (reduce_mean 1);
     * grad_x [B, N] and grad_z [B] = dloss/dpred (each NULL: skip). */
    pfgm_status (*loss_mse)(pfgm_backend *be, int64_t B, int64_t N, const float *pred_x, const float *pred_z,
                            const float *target, int reduce_mean, float *grad_x, float *grad_z, double *loss);
    /* Points on spheres (prior directions, spec §1.7): x[k, j] = radii[k] * g_j / |g| with
     * g_j = normal element offset + k*stride + j of r, j < N; |g| and the product in double.
     * radii[B] double, x row stride ldx. */
    pfgm_status (*sphere_points)(pfgm_backend *be, const pfgm_rng *r, uint64_t offset, uint64_t stride,
                                 int64_t B, int64_t N, const double *radii, float *x, int64_t ldx);
    /* Backward-ODE drift in t = ln z (spec §1.8), float32 as the authors: v_x[B, N], v_z[B]
     * from the network, z[B] per sample. Where z < z_exp and gamma > 0, v_z is replaced by
     * -sqrt(N) z / (sqrt((gamma rho/(1-rho))^2 + z^2) + gamma), rho = |v_x|/sqrt(N), for every
     * rho != 1 as the authors' methods.py::Poisson.ode (rho > 1 gives a finite v_z); the
     * guard takes only |1 - rho| <= 4 DBL_EPSILON, with v_z = -0 (the limit from both sides;
     * *guard_count = rows guarded, NULL: not reported).
     * Out: k[B, N+P]: k[:, :N] = z * v_x * (1/(v_z + 1e-5)), k[:, N:] = z (the replicated z
     * channel); v_z_used[B] the v_z applied (NULL: not written). */
    pfgm_status (*ode_drift)(pfgm_backend *be, int64_t B, int64_t N, int64_t P, const float *z, double gamma,
                             double z_exp, const float *v_x, const float *v_z, float *k, float *v_z_used,
                             int64_t *guard_count);
    /* ODE state y[B, N+P] (double) = [x (N values), z replicated P times]. */
    pfgm_status (*ode_init_state)(pfgm_backend *be, int64_t B, int64_t N, int64_t P, const float *x, double z,
                                  double *y);
    /* Runge-Kutta combination, double state, float stages: for each row r,
     * v = y[r] + h[r] * sum_j coef[j] * k[j][r] (h NULL: 1; 0 <= nk <= PFGM_OP_MAX_TERMS).
     * Writes v to y_out (NULL: skip) and (float)v[:nx] to x_out[rows, nx] (NULL: skip). coef
     * (nk values) and k (nk backend pointers) are host arrays. y_out may equal y. */
    pfgm_status (*ode_combine)(pfgm_backend *be, int64_t rows, int64_t cols, const double *y, const double *h,
                               int nk, const double *coef, const float *const *k, double *y_out, float *x_out,
                               int64_t nx);
    /* Scaled sums of squares for scipy's RMS norms (spec §1.9a): row_out[r] (host) =
     * sum_c (v / (atol + rtol * max(|ya|, |yb|)))^2 with v = num_y (NULL: 0) +
     * h[r] * sum_j coef[j] * k[j] (h NULL: 1); yb NULL: max(|ya|) alone. */
    pfgm_status (*ode_sumsq)(pfgm_backend *be, int64_t rows, int64_t cols, const double *num_y, const double *h,
                             int nk, const double *coef, const float *const *k, const double *ya,
                             const double *yb, double rtol, double atol, double *row_out);

    /* ---- network layers: src/nn (layers, ddpmpp.c, optim.c) ---------------------------
     * Implemented for the CPU in src/backend/cpu/cpu_nn.c and cpu_conv.c. */
    /* y = x * sigmoid(x), n elements; x may equal y. */
    pfgm_status (*silu_fwd)(pfgm_backend *be, int64_t n, const float *x, float *y);
    /* dx = dy * d/dx silu(x) (accumulate = 0) or dx += (accumulate = 1). */
    pfgm_status (*silu_bwd)(pfgm_backend *be, int64_t n, const float *x, const float *dy, float *dx,
                            int accumulate);
    /* Convolution (spec §3.1), NCHW, stride 1, square kernel `k` in {1, 3} with zero padding
     * (k-1)/2, so y has x's height h and width w. x [batch, cin, h, w], weight [cout, cin, k, k]
     * (PyTorch layout), bias [cout] or NULL, y [batch, cout, h, w]. `ws` is scratch of at least
     * conv2d_workspace() bytes for the same shape (may be NULL when that is 0); a smaller one
     * is the backend's PFGM_ERR_INVALID_ARG (each backend plans its own scratch). */
    size_t (*conv2d_workspace)(pfgm_backend *be, int64_t batch, int64_t cin, int64_t cout, int64_t h,
                               int64_t w, int k);
    pfgm_status (*conv2d_fwd)(pfgm_backend *be, int64_t batch, int64_t cin, int64_t cout, int64_t h,
                              int64_t w, int k, const float *x, const float *weight, const float *bias,
                              float *y, void *ws, size_t ws_bytes);
    /* dweight += dL/dweight, dbias += dL/dbias (gradients of parameters always accumulate),
     * dx = dL/dx (accumulate_dx = 0) or dx += (1); dx or dbias may be NULL (not wanted). */
    pfgm_status (*conv2d_bwd)(pfgm_backend *be, int64_t batch, int64_t cin, int64_t cout, int64_t h,
                              int64_t w, int k, const float *x, const float *weight, const float *dy,
                              float *dx, int accumulate_dx, float *dweight, float *dbias, void *ws,
                              size_t ws_bytes);
    /* Strided batched gemm: for i < batch, C_i = alpha op(A_i) op(B_i) + beta C_i with
     * X_i = X + i * stride_x (shapes as gemm). stride_c = 0 makes it a reduction over the
     * batch, summed in batch order: C = alpha sum_i op(A_i) op(B_i) + beta C. NIN layers and
     * attention (spec §3.1). */
    pfgm_status (*gemm_batched)(pfgm_backend *be, int trans_a, int trans_b, int64_t m, int64_t n,
                                int64_t k, float alpha, const float *a, int64_t lda, int64_t stride_a,
                                const float *b, int64_t ldb, int64_t stride_b, float beta, float *c,
                                int64_t ldc, int64_t stride_c, int64_t batch);
    /* Softmax backward, in place, per row of p[rows, cols] (softmax output):
     * dp <- p * (dp - sum_c p * dp). */
    pfgm_status (*softmax_rows_bwd)(pfgm_backend *be, int64_t rows, int64_t cols, const float *p,
                                    float *dp);
    /* GroupNorm (spec §3.1): x [batch, c, hw] in `groups` groups of c/groups channels,
     * y = gamma * (x - mean) * rstd + beta, rstd = 1/sqrt(var + eps), biased variance over the
     * group; silu = 1 applies SiLU to y (fused). mean, rstd [batch, groups] are written for
     * the backward. */
    pfgm_status (*groupnorm_fwd)(pfgm_backend *be, int64_t batch, int64_t c, int64_t hw, int64_t groups,
                                 float eps, int silu, const float *x, const float *gamma,
                                 const float *beta, float *y, float *mean, float *rstd);
    /* Backward of groupnorm_fwd (same silu flag): dgamma, dbeta += ; dx = / += (accumulate_dx). */
    pfgm_status (*groupnorm_bwd)(pfgm_backend *be, int64_t batch, int64_t c, int64_t hw, int64_t groups,
                                 int silu, const float *x, const float *gamma, const float *beta,
                                 const float *mean, const float *rstd, const float *dy, float *dx,
                                 int accumulate_dx, float *dgamma, float *dbeta);
    /* Nearest-neighbour 2x upsample of `planes` h x w planes: y [planes, 2h, 2w]. */
    pfgm_status (*upsample2x_fwd)(pfgm_backend *be, int64_t planes, int64_t h, int64_t w, const float *x,
                                  float *y);
    pfgm_status (*upsample2x_bwd)(pfgm_backend *be, int64_t planes, int64_t h, int64_t w, const float *dy,
                                  float *dx, int accumulate);
    /* 2x2 average pool of `planes` h x w planes (h, w even): y [planes, h/2, w/2]. */
    pfgm_status (*avgpool2x2_fwd)(pfgm_backend *be, int64_t planes, int64_t h, int64_t w, const float *x,
                                  float *y);
    pfgm_status (*avgpool2x2_bwd)(pfgm_backend *be, int64_t planes, int64_t h, int64_t w, const float *dy,
                                  float *dx, int accumulate);
    /* Broadcast add over pixels: y[b, c, i] += v[b * v_stride + c] for y [batch, c, hw]
     * (v_stride 0: one bias for the batch; c: a per-sample vector such as Dense_0(zemb)). */
    pfgm_status (*bcast_add_fwd)(pfgm_backend *be, int64_t batch, int64_t c, int64_t hw, const float *v,
                                 int64_t v_stride, float *y);
    /* dv[b * v_stride + c] = / += sum over i (and over b when v_stride = 0) of dy[b, c, i]. */
    pfgm_status (*bcast_add_bwd)(pfgm_backend *be, int64_t batch, int64_t c, int64_t hw, const float *dy,
                                 int64_t v_stride, float *dv, int accumulate);
    /* dst[b, dst_c0 + j, :] = / += src[b, src_c0 + j, :] for j < nc, b < batch, with src
     * [batch, src_c, hw] and dst [batch, dst_c, hw]: channel concatenation and its split. */
    pfgm_status (*copy_channels)(pfgm_backend *be, int64_t batch, int64_t hw, int64_t nc, const float *src,
                                 int64_t src_c, int64_t src_c0, float *dst, int64_t dst_c, int64_t dst_c0,
                                 int accumulate);
    /* out[b] = mean over i of x[b, ch, i], x [batch, c, hw]: the PFGM z-field (spec §1.6). */
    pfgm_status (*channel_mean_fwd)(pfgm_backend *be, int64_t batch, int64_t c, int64_t hw, int64_t ch,
                                    const float *x, float *out);
    /* dx[b, ch, i] = / += dout[b] / hw (other channels untouched). */
    pfgm_status (*channel_mean_bwd)(pfgm_backend *be, int64_t batch, int64_t c, int64_t hw, int64_t ch,
                                    const float *dout, float *dx, int accumulate);
    /* z embedding (spec §3.1), out [batch, 2 half] = [sin(a), cos(a)] with
     * fourier = 0: a_k = z * exp(-k ln(10000) / (half - 1)) (raw z, positional);
     * fourier = 1: a_k = ln(z) * w[k] * 2 * pi (w [half], the fixed Gaussian weights). */
    pfgm_status (*zembed_fwd)(pfgm_backend *be, int64_t batch, int64_t half, int fourier, const float *z,
                              const float *w, float *out);
    /* dz[b] = / += sum_k dL/dout * dout/dz. */
    pfgm_status (*zembed_bwd)(pfgm_backend *be, int64_t batch, int64_t half, int fourier, const float *z,
                              const float *w, const float *dout, float *dz, int accumulate);
    /* Inverted dropout: y[i] = x[i] * keep_i / (1 - p), keep_i = (uniform(offset + i) >= p)
     * from the Philox stream r, so the backward regenerates the mask instead of storing it. */
    pfgm_status (*dropout_fwd)(pfgm_backend *be, int64_t n, float p, const pfgm_rng *r, uint64_t offset,
                               const float *x, float *y);
    pfgm_status (*dropout_bwd)(pfgm_backend *be, int64_t n, float p, const pfgm_rng *r, uint64_t offset,
                               const float *dy, float *dx, int accumulate);

    /* ---- optimizer: src/nn/optim.c (clipping, Adam, EMA; spec §1.13, docs/optimizer.md) -
     * Implemented for the CPU in src/backend/cpu/cpu_optim.c. Flat float32 buffers of n
     * elements in backend memory; scalars are host doubles. */
    /* *out (host) = sum_i x[i]^2 in double. The summation order is fixed by n alone (never
     * by the thread count), so the result is the same bits run to run. */
    pfgm_status (*sumsq)(pfgm_backend *be, int64_t n, const float *x, double *out);
    /* out[k] (host, ceil(n / block) doubles) = sum of x[i]^2 in double over block k, i in
     * [k*block, min(n, (k+1)*block)). Each block's summation order is fixed by the block's
     * length alone, so a block's sum does not depend on where the call starts: the global
     * gradient norm of sharded optimizer state adds the same block sums in the same order
     * whichever rank computed them (src/train/grad_sync.c). */
    pfgm_status (*sumsq_blocks)(pfgm_backend *be, int64_t n, const float *x, int64_t block, double *out);
    /* One torch.optim.Adam step (1-based step >= 1 for the bias correction) in float32:
     * g' = g + wd*p; m = b1*m + (1-b1)*g'; v = b2*v + (1-b2)*g'^2;
     * p -= (lr/(1-b1^step)) * m / (sqrt(v)/sqrt(1-b2^step) + eps). g is not modified. */
    pfgm_status (*adam_update)(pfgm_backend *be, int64_t n, double lr, double beta1, double beta2,
                               double eps, double wd, int64_t step, float *p, const float *g, float *m,
                               float *v);
    /* shadow -= (1 - decay) * (shadow - p): the EMA of models/ema.py. */
    pfgm_status (*ema_update)(pfgm_backend *be, int64_t n, double decay, float *shadow, const float *p);
};

/* Options of the CPU backend. */
typedef struct pfgm_cpu_options {
    int reference; /* 1: plain-loop reference ops; 0: OpenBLAS + OpenMP */
    int threads;   /* OpenMP/OpenBLAS threads; 0 = leave the runtime's default */
} pfgm_cpu_options;

/* Creates the CPU backend. Errors: PFGM_ERR_NOMEM. */
pfgm_status pfgm_backend_cpu_create(const pfgm_cpu_options *opt, pfgm_backend **out);

/* Options of the CUDA backend. */
typedef struct pfgm_cuda_options {
    int device;     /* index into the visible devices */
    int allow_tf32; /* 1: cuBLAS may round GEMM inputs to TF32 (CUBLAS_TF32_TENSOR_OP_MATH) and
                     * caps() reports PFGM_CAP_TF32; 0: full fp32 (CUBLAS_DEFAULT_MATH) */
} pfgm_cuda_options;

/* Creates the CUDA backend (opt NULL: device 0, fp32). Errors: PFGM_ERR_UNSUPPORTED when
 * pfgm was built without CUDA or no device is present, PFGM_ERR_INVALID_ARG for a device
 * index out of range, PFGM_ERR_CUDA / PFGM_ERR_CUBLAS when the device cannot be initialised. */
pfgm_status pfgm_backend_cuda_create(const pfgm_cuda_options *opt, pfgm_backend **out);

/* Creates a backend by name: "cpu", "cpu-reference", "cuda" (device 0, fp32). Errors:
 * PFGM_ERR_INVALID_ARG for an unknown name (the message lists the known ones), plus the
 * errors of the constructor. */
pfgm_status pfgm_backend_create(const char *name, pfgm_backend **out);

/* 1 when pfgm was built with the CUDA backend and a device is visible, else 0. */
int pfgm_backend_cuda_available(void);

/* The CUDA stream (a cudaStream_t, as void * so that this header names no CUDA type) on
 * which every op of the CUDA backend be runs, in issue order. The NCCL communicator orders
 * its non-blocking collectives against it with events (pfgm_comm_nccl_set_backend, comm.h).
 * NULL when be is NULL or not a CUDA backend, and in a build without CUDA. */
void *pfgm_backend_cuda_stream(const pfgm_backend *be);

/* Number of visible CUDA devices (0 without CUDA or without a device). A process that sees
 * several devices takes device local_rank % count; one that sees one device (a per-rank
 * CUDA_VISIBLE_DEVICES, or SLURM's per-task GPU binding) takes device 0. */
int pfgm_backend_cuda_device_count(void);

/* Destroys a backend (NULL is a no-op). */
void pfgm_backend_destroy(pfgm_backend *be);

/* Host <-> backend helpers: copy() with the element count in floats. */
pfgm_status pfgm_backend_upload(pfgm_backend *be, float *dst, const float *host, int64_t n);
pfgm_status pfgm_backend_download(pfgm_backend *be, float *host, const float *src, int64_t n);

#ifdef __cplusplus
}
#endif
#endif /* PFGM_BACKEND_H */
