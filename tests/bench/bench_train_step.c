/* Benchmark of a training step (a program that prints figures for docs/benchmarks.md; it
 * asserts nothing). On the chosen backend it builds the configuration's DDPM++, Adam/EMA and
 * the product's training step (pfgm_step_create, src/train/step.c), fills the L charges with
 * uniform noise in [-1, 1] once, then times pfgm_step_run on one process (the trainer's step
 * without the data reader): upload of the batch, perturb B points (spec §1.4), their
 * normalized field targets against the L charges (§1.2-1.3), DDPM++ forward, loss and backward
 * (§1.5), the finite check, clip/Adam/EMA (§1.13). It reports
 *   - images/s: perturbed points trained on per second (B per step), from steps timed back to
 *     back (the device synchronised only at the ends);
 *   - the share of each phase, from a second pass with a synchronisation between phases, the
 *     field targets' share among them;
 *   - achieved FLOP/s of the network, 3 x flops_per_image x B per step (forward, and the
 *     backward counted as twice the forward), and of the field targets (two products of
 *     2BLN each), against the GEMM rate measured in the same run: the backend's own sgemm
 *     (cuBLAS fp32 on CUDA, OpenBLAS on the CPU) and, on CUDA, cuBLAS with TF32 and with
 *     bf16 inputs (fp32 accumulation): the model FLOP utilisation (MFU) against each.
 * Usage: bench_train_step [--config FILE.yaml] [--backend cuda|cpu|cpu-reference]
 *                         [--steps N] [--warmup N] [--gemm-size S] [--set key=value ...]
 * Defaults: configs/cifar10_ddpmpp.yaml (4096 charges, 128 perturbed points), the CUDA
 * backend when a device is visible (else cpu), 10 timed steps after 2 untimed ones, GEMM
 * rate at S = 8192 (CUDA) or 2048 (CPU). Run from the repository root. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pfgm/backend.h"
#include "pfgm/config.h"
#include "pfgm/ddpmpp.h"
#include "pfgm/optim.h"
#include "pfgm/step.h"
#include "util/check.h"

#ifdef PFGM_HAVE_CUDA
#include <cublas_v2.h>
#include <cuda_runtime.h>
#endif

#define MAX_SETS 64

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "bench_train_step: %s: %s\n", what, pfgm_error_message());
    exit(1);
}

#define TRY(x, what)                                                                                         \
    do {                                                                                                     \
        if ((x) != PFGM_OK) die(what);                                                                       \
    } while (0)

/* "12.3 TFLOP/s" or "45.6 GFLOP/s" into buf. */
static const char *rate_str(double flops_per_s, char *buf, size_t cap) {
    if (flops_per_s >= 1e12) snprintf(buf, cap, "%.2f TFLOP/s", flops_per_s * 1e-12);
    else snprintf(buf, cap, "%.2f GFLOP/s", flops_per_s * 1e-9);
    return buf;
}

/* ---- the step: the product's (pfgm_step_run), timed ----------------------------------- */

typedef struct bench {
    pfgm_backend *be;
    const pfgm_config *cfg;
    int64_t N, L, B;
    pfgm_ddpmpp *model;
    pfgm_optim *optim;
    pfgm_step *step;
    float *host_batch; /* [L, N] the same synthetic batch every step */
    double *ph, t;     /* phased pass: per-phase seconds, the last boundary */
} bench;

/* Phase boundary of the phased pass: wait for the device and add the elapsed time. */
static pfgm_status mark(void *user, pfgm_step *s, pfgm_step_phase phase) {
    (void)s;
    bench *b = user;
    PFGM_TRY(b->be->sync(b->be));
    double t1 = now();
    b->ph[phase] += t1 - b->t;
    b->t = t1;
    return PFGM_OK;
}

/* One training step s; ph != NULL: synchronised between phases, each phase's time added. */
static double step(bench *b, int64_t s, double *ph) {
    pfgm_step_hooks hooks = {.user = b, .phase_end = mark};
    b->ph = ph;
    b->t = now();
    pfgm_step_result r;
    TRY(pfgm_step_run(b->step, s, b->host_batch, ph ? &hooks : NULL, &r), "training step");
    if (r.skipped) die("a non-finite step");
    return r.loss;
}

/* ---- GEMM rates ------------------------------------------------------------------------- */

static float *balloc(pfgm_backend *be, int64_t floats) {
    void *p = NULL;
    TRY(be->alloc(be, (size_t)floats * sizeof(float), &p), "allocation");
    return p;
}

/* FLOP/s of the backend's sgemm on S x S x S (best of reps). */
static double backend_gemm_rate(pfgm_backend *be, int64_t S, int reps) {
    const int64_t n = S * S;
    float *h = malloc(sizeof(float) * (size_t)n);
    if (!h) return 0.0;
    pfgm_rng r = {.seed = 3, .stream = PFGM_STREAM_USER};
    pfgm_rng_uniform(&r, 0, (size_t)n, h);
    float *a = balloc(be, n), *bm = balloc(be, n), *c = balloc(be, n);
    TRY(pfgm_backend_upload(be, a, h, n), "upload");
    TRY(pfgm_backend_upload(be, bm, h, n), "upload");
    free(h);
    TRY(be->gemm(be, 0, 0, S, S, S, 1.0f, a, S, bm, S, 0.0f, c, S), "gemm");
    TRY(be->sync(be), "sync");
    double best = 1e30;
    for (int i = 0; i < reps; ++i) {
        double t = now();
        TRY(be->gemm(be, 0, 0, S, S, S, 1.0f, a, S, bm, S, 0.0f, c, S), "gemm");
        TRY(be->sync(be), "sync");
        t = now() - t;
        best = t < best ? t : best;
    }
    be->free(be, a);
    be->free(be, bm);
    be->free(be, c);
    return 2.0 * (double)S * (double)S * (double)S / best;
}

#ifdef PFGM_HAVE_CUDA
/* FLOP/s of cuBLAS on S x S x S with TF32 (tf32 = 1) or bf16 inputs (tf32 = 0), fp32
 * accumulation and output, on its own handle (best of reps; 0 on any CUDA error). */
static double cublas_rate(int64_t S, int tf32, int reps) {
    const size_t n = (size_t)(S * S), in_bytes = n * (tf32 ? 4 : 2);
    void *a = NULL, *b = NULL, *c = NULL;
    cublasHandle_t h = NULL;
    double best = 1e30;
    int ok = cudaMalloc(&a, in_bytes) == cudaSuccess && cudaMalloc(&b, in_bytes) == cudaSuccess &&
             cudaMalloc(&c, n * 4) == cudaSuccess && cublasCreate(&h) == CUBLAS_STATUS_SUCCESS;
    if (ok) {
        /* inputs: uniform noise (the bf16 words are the top halves of the float words) */
        float *f = malloc(n * 4);
        uint16_t *w = malloc(n * 2);
        pfgm_rng r = {.seed = 4, .stream = PFGM_STREAM_USER};
        if (f && w) {
            pfgm_rng_uniform(&r, 0, n, f);
            for (size_t i = 0; i < n; ++i) {
                uint32_t u;
                memcpy(&u, &f[i], 4);
                w[i] = (uint16_t)(u >> 16);
            }
            const void *src = tf32 ? (const void *)f : (const void *)w;
            ok = cudaMemcpy(a, src, in_bytes, cudaMemcpyHostToDevice) == cudaSuccess &&
                 cudaMemcpy(b, src, in_bytes, cudaMemcpyHostToDevice) == cudaSuccess;
        } else {
            ok = 0;
        }
        free(f);
        free(w);
    }
    if (ok) ok = cublasSetMathMode(h, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH) == CUBLAS_STATUS_SUCCESS;
    const float one = 1.0f, zero = 0.0f;
    const cudaDataType_t in_t = tf32 ? CUDA_R_32F : CUDA_R_16BF;
    const cublasComputeType_t ct = tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    for (int i = -1; ok && i < reps; ++i) { /* i = -1: warm-up */
        double t = now();
        ok = cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, (int)S, (int)S, (int)S, &one, a, in_t, (int)S, b, in_t, (int)S,
                          &zero, c, CUDA_R_32F, (int)S, ct, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS &&
             cudaDeviceSynchronize() == cudaSuccess;
        t = now() - t;
        if (i >= 0 && t < best) best = t;
    }
    if (h) cublasDestroy(h);
    cudaFree(a);
    cudaFree(b);
    cudaFree(c);
    return ok ? 2.0 * (double)S * (double)S * (double)S / best : 0.0;
}

static void print_device(void) {
    struct cudaDeviceProp p;
    int dev = 0, drv = 0, rt = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&p, dev) != cudaSuccess) return;
    cudaDriverGetVersion(&drv);
    cudaRuntimeGetVersion(&rt);
    printf("device              %s (sm_%d%d, %d SMs, %.1f GiB), driver %d, runtime %d\n", p.name, p.major, p.minor,
           p.multiProcessorCount, (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0), drv, rt);
}
#endif

/* ---- main ------------------------------------------------------------------------------- */

static void usage(void) {
    fprintf(stderr, "usage: bench_train_step [--config FILE.yaml] [--backend cuda|cpu|cpu-reference] [--steps N]\n"
                    "                        [--warmup N] [--gemm-size S] [--set section.key=value ...]\n");
}

int main(int argc, char **argv) {
    const char *config = "configs/cifar10_ddpmpp.yaml", *backend = NULL, *sets[MAX_SETS];
    size_t n_sets = 0;
    int steps = 10, warm = 2;
    int64_t gemm_size = 0;
    for (int i = 1; i < argc; ++i) {
        const int has = i + 1 < argc;
        if (!strcmp(argv[i], "--config") && has) config = argv[++i];
        else if (!strcmp(argv[i], "--backend") && has) backend = argv[++i];
        else if (!strcmp(argv[i], "--steps") && has) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--warmup") && has) warm = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--gemm-size") && has) gemm_size = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--set") && has && n_sets < MAX_SETS) sets[n_sets++] = argv[++i];
        else {
            usage();
            return 2;
        }
    }
    if (steps < 1 || warm < 0) {
        usage();
        return 2;
    }
    if (!backend) backend = pfgm_backend_cuda_available() ? "cuda" : "cpu";
    pfgm_config cfg;
    TRY(pfgm_config_resolve(config, sets, n_sets, &cfg), config);
    bench b = {.cfg = &cfg};
    if (strcmp(backend, "cuda") == 0) { /* the product's mapping: distributed.allow_tf32 applies */
        cfg.distributed.backend = PFGM_BACKEND_CUDA;
        TRY(pfgm_config_backend_create(&cfg, 0, &b.be), "backend");
    } else {
        TRY(pfgm_backend_create(backend, &b.be), "backend");
    }
    pfgm_backend *be = b.be;
    const int cuda = be->kind == PFGM_BACKEND_CUDA;
    if (!gemm_size) gemm_size = cuda ? 8192 : 2048;
    b.N = pfgm_config_data_dim(&cfg);
    b.L = cfg.training.batch_size;
    b.B = cfg.training.small_batch_size;

    pfgm_ddpmpp_desc desc;
    TRY(pfgm_ddpmpp_desc_from_config(&cfg, &desc), "model description");
    desc.param_multiple = pfgm_step_param_multiple(1);
    TRY(pfgm_ddpmpp_create(be, &desc, b.B, PFGM_DDPMPP_TRAIN, &b.model), "model");
    TRY(pfgm_ddpmpp_init_params(b.model, (uint32_t)cfg.seed), "init");
    pfgm_step_setup ss = {.cfg = &cfg, .be = be, .model = b.model};
    TRY(pfgm_step_create(&ss, &b.step), "training step");
    b.optim = pfgm_step_optim(b.step);
    const int64_t N = b.N, L = b.L, B = b.B;
    float *h = malloc(sizeof(float) * (size_t)(L * N));
    if (!h) die("host charges");
    pfgm_rng r = {.seed = 1, .stream = PFGM_STREAM_USER};
    pfgm_rng_uniform(&r, 0, (size_t)(L * N), h);
    for (int64_t i = 0; i < L * N; ++i) h[i] = 2.0f * h[i] - 1.0f;
    b.host_batch = h;

    pfgm_ddpmpp_info info;
    pfgm_ddpmpp_get_info(b.model, &info);
    printf("bench_train_step: %s on the %s backend (GEMMs in %s)\n", config, be->name,
           (be->caps(be) & PFGM_CAP_TF32) ? "TF32 (distributed.allow_tf32)" : "fp32");
#ifdef PFGM_HAVE_CUDA
    if (cuda) print_device();
#endif
    printf("shapes              N = %lld, L = %lld charges, B = %lld perturbed points, %lld parameters\n",
           (long long)N, (long long)L, (long long)B, (long long)info.param_count);
    printf("network FLOPs       %.3f GFLOP per image forward, x3 x B = %.2f GFLOP per step\n",
           info.flops_per_image * 1e-9, 3.0 * info.flops_per_image * (double)B * 1e-9);

    /* back to back: images/s */
    int64_t s = 10000; /* past the warmup of every config: the full learning rate */
    double loss = 0.0;
    for (int i = 0; i < warm; ++i) loss = step(&b, s++, NULL);
    TRY(be->sync(be), "sync");
    double t0 = now();
    for (int i = 0; i < steps; ++i) loss = step(&b, s++, NULL);
    TRY(be->sync(be), "sync");
    const double per_step = (now() - t0) / steps;
    /* phased: where the time goes */
    double ph[PFGM_STEP_PHASES] = {0};
    for (int i = 0; i < steps; ++i) step(&b, s++, ph);
    double ph_total = 0.0;
    for (int i = 0; i < PFGM_STEP_PHASES; ++i) ph_total += ph[i];

    const double net_flops = 3.0 * info.flops_per_image * (double)B;
    const double field_flops = 4.0 * (double)B * (double)L * (double)N;
    printf("step                %.2f ms (mean of %d after %d untimed), loss %.5g\n", per_step * 1e3, steps, warm, loss);
    printf("images/s            %.1f perturbed points per second (%lld per step)\n", (double)B / per_step,
           (long long)B);
    printf("phases (synchronised between phases; %.2f ms per step):\n", ph_total / steps * 1e3);
    for (int i = 0; i < PFGM_STEP_PHASES; ++i)
        printf("  %-17s %9.3f ms  %5.1f%%\n", pfgm_step_phase_name((pfgm_step_phase)i), ph[i] / steps * 1e3,
               100.0 * ph[i] / ph_total);
    char r1[32], r2[32];
    printf("field-target share  %.1f%% of the step (%s on its two products, 4BLN per step)\n",
           100.0 * ph[PFGM_STEP_FIELD] / ph_total,
           rate_str(field_flops / (ph[PFGM_STEP_FIELD] / steps), r1, sizeof r1));
    const double achieved = net_flops / per_step;
    printf("achieved            %s network (3 x flops_per_image x B per step), %s with the field targets\n",
           rate_str(achieved, r1, sizeof r1), rate_str((net_flops + field_flops) / per_step, r2, sizeof r2));

    const double rate = backend_gemm_rate(be, gemm_size, cuda ? 10 : 3);
    printf("sgemm rate          %s (%s, %lld^3, fp32)  -> MFU %.1f%%\n", rate_str(rate, r1, sizeof r1),
           cuda ? "cuBLAS" : "OpenBLAS", (long long)gemm_size, 100.0 * achieved / rate);
#ifdef PFGM_HAVE_CUDA
    if (cuda) {
        const double tf32 = cublas_rate(gemm_size, 1, 10), bf16 = cublas_rate(gemm_size, 0, 10);
        if (tf32 > 0)
            printf("TF32 rate           %s (cuBLAS, %lld^3)  -> MFU %.1f%%\n", rate_str(tf32, r1, sizeof r1),
                   (long long)gemm_size, 100.0 * achieved / tf32);
        if (bf16 > 0)
            printf("bf16 rate           %s (cuBLAS, %lld^3, fp32 accumulation)  -> MFU %.1f%%\n",
                   rate_str(bf16, r1, sizeof r1), (long long)gemm_size, 100.0 * achieved / bf16);
    }
#endif

    pfgm_step_destroy(b.step);
    free(b.host_batch);

    pfgm_ddpmpp_destroy(b.model);
    pfgm_backend_destroy(be);
    return 0;
}
