/* The machine's sgemm peak for docs/benchmarks.md: a 2048 x 2048 x 2048 single-precision
 * product with OpenBLAS at 1 and at 2 threads (best of 5 after one warm-up call each), in
 * GFLOP/s counting 2 m n k. OpenBLAS's own threads are used here, outside any OpenMP region.
 * Prints BENCH lines. Usage: bench_sgemm_peak [n] */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_common.h"

int main(int argc, char **argv) {
    const int n = argc > 1 ? atoi(argv[1]) : 2048;
    if (n < 1) {
        fprintf(stderr, "usage: bench_sgemm_peak [n]\n");
        return 2;
    }
    float *a = malloc(sizeof(float) * (size_t)n * (size_t)n), *b = malloc(sizeof(float) * (size_t)n * (size_t)n);
    float *c = malloc(sizeof(float) * (size_t)n * (size_t)n);
    if (!a || !b || !c) {
        fprintf(stderr, "bench_sgemm_peak: out of memory\n");
        return 1;
    }
    bench_fill_images(1, (int64_t)n * n, a);
    bench_fill_images(2, (int64_t)n * n, b);
    const double flop = 2.0 * (double)n * (double)n * (double)n;
    for (int threads = 1; threads <= 2; ++threads) {
        openblas_set_num_threads(threads);
        double best = 1e30;
        for (int r = 0; r < 6; ++r) {
            double t0 = bench_now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
            double t = bench_now() - t0;
            if (r > 0 && t < best) best = t;
        }
        char metric[64];
        snprintf(metric, sizeof metric, "gflops_%dthread%s", threads, threads > 1 ? "s" : "");
        bench_report("sgemm_peak", metric, flop / best * 1e-9);
    }
    free(a);
    free(b);
    free(c);
    return 0;
}
