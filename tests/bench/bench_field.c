/* Benchmark of the normalized field targets (spec §1.2-1.3, §3.6): prints figures, asserts
 * nothing. For B perturbed points against L charges in N dimensions it reports
 *   - the GEMM path (pfgm_field_targets on the "cpu" backend) in GFLOP/s, counting the two
 *     products 2BLN + 2BLN, beside the sgemm rate of the same shapes measured in the same
 *     run (the machine's sgemm peak for this work);
 *   - the authors' broadcast formulation (a [B, L, N+1] difference tensor in float32, then
 *     distances, (d_min/(d + 1e-7))^(N+1) weights and the weighted sum over the tensor) at a
 *     size that fits in memory, and the GEMM path at that same size, as a ratio.
 * Usage: bench_field [B L N [B_small L_small]]   (default 128 4096 3072, 16 1024). */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pfgm/backend.h"
#include "pfgm/field.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fill(float *x, size_t n, unsigned seed) {
    pfgm_rng r = {.seed = seed, .rank = 0, .stream = PFGM_STREAM_USER, .step = 0};
    pfgm_rng_uniform(&r, 0, n, x);
    for (size_t i = 0; i < n; ++i) x[i] = 2.0f * x[i] - 1.0f;
}

/* Perturbed points near the first B charges with z spread over 0.01 .. 100. */
static void make_inputs(int64_t B, int64_t L, int64_t N, float **pert, float **charges) {
    *charges = malloc(sizeof(float) * (size_t)(L * N));
    *pert = malloc(sizeof(float) * (size_t)(B * (N + 1)));
    if (!*charges || !*pert) {
        fprintf(stderr, "bench_field: out of memory\n");
        exit(1);
    }
    fill(*charges, (size_t)(L * N), 1);
    fill(*pert, (size_t)(B * (N + 1)), 2);
    for (int64_t b = 0; b < B; ++b) {
        float s = powf(10.0f, (float)(b % 5) - 2.0f);
        for (int64_t j = 0; j < N; ++j) (*pert)[b * (N + 1) + j] = (*charges)[(b % L) * N + j] + s * (*pert)[b * (N + 1) + j];
        (*pert)[b * (N + 1) + N] = s * fabsf((*pert)[b * (N + 1) + N]);
    }
}

/* Seconds per call of the GEMM path (best of `reps`). */
static double time_gemm_path(pfgm_backend *be, int64_t B, int64_t L, int64_t N, const float *pert,
                             const float *charges, float *out, int reps) {
    size_t wsb = pfgm_field_workspace_bytes(B, L);
    void *ws = NULL;
    if (be->alloc(be, wsb, &ws) != PFGM_OK) return -1.0;
    double best = 1e30;
    for (int r = 0; r < reps; ++r) {
        double t0 = now();
        if (pfgm_field_targets(be, B, L, N, pert, charges, 5.0, ws, wsb, out) != PFGM_OK) {
            fprintf(stderr, "bench_field: %s\n", pfgm_error_message());
            exit(1);
        }
        double t = now() - t0;
        best = t < best ? t : best;
    }
    be->free(be, ws);
    return best;
}

/* Seconds of the two sgemm calls of the same shapes (best of `reps`): the peak to compare. */
static double time_sgemm(int64_t B, int64_t L, int64_t N, const float *pert, const float *charges, int reps) {
    float *g = malloc(sizeof(float) * (size_t)(B * L)), *e = malloc(sizeof(float) * (size_t)(B * (N + 1)));
    double best = 1e30;
    for (int r = 0; r < reps; ++r) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)B, (blasint)L, (blasint)N, 1.0f, pert,
                    (blasint)(N + 1), charges, (blasint)N, 0.0f, g, (blasint)L);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)B, (blasint)N, (blasint)L, 1.0f, g,
                    (blasint)L, charges, (blasint)N, 0.0f, e, (blasint)(N + 1));
        double t = now() - t0;
        best = t < best ? t : best;
    }
    free(g);
    free(e);
    return best;
}

/* The authors' formulation in float32: materialize diff[b, i, :] = y~_i - x~_b (B L (N+1)
 * floats), then d, the (d_min / (d + 1e-7))^(N+1) weights and E = sum_i c diff. */
static double time_broadcast(int64_t B, int64_t L, int64_t N, const float *pert, const float *charges, float *out) {
    const int64_t D = N + 1;
    float *diff = malloc(sizeof(float) * (size_t)(B * L * D));
    float *w = malloc(sizeof(float) * (size_t)(B * L));
    if (!diff || !w) {
        fprintf(stderr, "bench_field: the broadcast tensor (%lld floats) does not fit\n", (long long)(B * L * D));
        exit(1);
    }
    double t0 = now();
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t b = 0; b < B; ++b)
        for (int64_t i = 0; i < L; ++i) {
            float *dv = diff + (b * L + i) * D;
            for (int64_t j = 0; j < N; ++j) dv[j] = charges[i * N + j] - pert[b * D + j];
            dv[N] = -pert[b * D + N];
        }
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < B; ++b) {
        float dmin = INFINITY;
        for (int64_t i = 0; i < L; ++i) {
            const float *dv = diff + (b * L + i) * D;
            float s = 0.0f;
            for (int64_t j = 0; j < D; ++j) s += dv[j] * dv[j];
            w[b * L + i] = sqrtf(s);
            dmin = w[b * L + i] < dmin ? w[b * L + i] : dmin;
        }
        float wsum = 0.0f;
        for (int64_t i = 0; i < L; ++i) {
            w[b * L + i] = powf(dmin / (w[b * L + i] + 1e-7f), (float)D);
            wsum += w[b * L + i];
        }
        float *e = out + b * D;
        for (int64_t j = 0; j < D; ++j) e[j] = 0.0f;
        for (int64_t i = 0; i < L; ++i) {
            const float c = w[b * L + i] / (wsum + 1e-7f), *dv = diff + (b * L + i) * D;
            for (int64_t j = 0; j < D; ++j) e[j] += c * dv[j];
        }
        float nrm = 0.0f;
        for (int64_t j = 0; j < D; ++j) nrm += e[j] * e[j];
        const float scale = sqrtf((float)N) / (sqrtf(nrm) + 5.0f);
        for (int64_t j = 0; j < D; ++j) e[j] *= scale;
    }
    double t = now() - t0;
    free(diff);
    free(w);
    return t;
}

int main(int argc, char **argv) {
    int64_t B = 128, L = 4096, N = 3072, Bs = 16, Ls = 1024;
    if (argc >= 4) {
        B = atoll(argv[1]);
        L = atoll(argv[2]);
        N = atoll(argv[3]);
    }
    if (argc >= 6) {
        Bs = atoll(argv[4]);
        Ls = atoll(argv[5]);
    }
    if (B <= 0 || L < B || N <= 0 || Bs <= 0 || Ls < Bs) {
        fprintf(stderr, "usage: bench_field [B L N [B_small L_small]] with 0 < B <= L\n");
        return 2;
    }
    pfgm_backend *be;
    if (pfgm_backend_create("cpu", &be) != PFGM_OK) return 1;
    printf("bench_field: OpenMP threads %d, OpenBLAS threads %d\n", omp_get_max_threads(), openblas_get_num_threads());

    float *pert, *charges, *out = malloc(sizeof(float) * (size_t)(B * (N + 1)));
    make_inputs(B, L, N, &pert, &charges);
    const double flop = 4.0 * (double)B * (double)L * (double)N;
    double t_sgemm = time_sgemm(B, L, N, pert, charges, 5);
    double t_field = time_gemm_path(be, B, L, N, pert, charges, out, 5);
    printf("B=%lld L=%lld N=%lld: sgemm of the same shapes %.1f GFLOP/s (%.4f s); field targets %.1f GFLOP/s "
           "(%.4f s), %.1f%% of the sgemm rate\n",
           (long long)B, (long long)L, (long long)N, flop / t_sgemm * 1e-9, t_sgemm, flop / t_field * 1e-9, t_field,
           100.0 * t_sgemm / t_field);
    free(pert);
    free(charges);
    free(out);

    make_inputs(Bs, Ls, N, &pert, &charges);
    out = malloc(sizeof(float) * (size_t)(Bs * (N + 1)));
    float *out2 = malloc(sizeof(float) * (size_t)(Bs * (N + 1)));
    double t_b = time_broadcast(Bs, Ls, N, pert, charges, out2);
    double t_g = time_gemm_path(be, Bs, Ls, N, pert, charges, out, 3);
    double maxdiff = 0.0;
    for (int64_t i = 0; i < Bs * (N + 1); ++i) maxdiff = fmax(maxdiff, fabs((double)out[i] - (double)out2[i]));
    printf("B=%lld L=%lld N=%lld: broadcast formulation %.4f s ([B, L, N+1] = %.0f MB), GEMM path %.4f s: %.1fx "
           "faster (max |difference| %.2e)\n",
           (long long)Bs, (long long)Ls, (long long)N, t_b, 4.0 * (double)(Bs * Ls * (N + 1)) / 1e6, t_g, t_b / t_g,
           maxdiff);
    free(pert);
    free(charges);
    free(out);
    free(out2);
    pfgm_backend_destroy(be);
    return 0;
}
