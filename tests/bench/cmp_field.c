/* Field-target benchmark against the PyTorch reference (tests/bench/run.sh): the normalized
 * field targets of B perturbed points against L charges in N dimensions (spec §1.2-1.3; the
 * paper's CIFAR-10 sizes B = 128, L = 4096, N = 3072 by default) through pfgm_field_targets
 * on the CPU backend, the GEMM form of spec §3.6. The inputs are synthetic: charges uniform
 * in [-1, 1], perturbed point k = charge k plus noise of scale 10^(k mod 5 - 2) per
 * component, z of the same scale (as bench_field). They and the targets are written to
 * <out>, from which torch_reference.py computes the authors' broadcast formula on the same
 * numbers and compares before it times anything.
 * Prints BENCH lines: call_s per call, images (B), peak RSS.
 * Usage: bench_cmp_field --workload NAME --out FILE [--size B,L,N] [--steps K] [--warmup W] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_common.h"
#include "pfgm/backend.h"
#include "pfgm/field.h"
#include "pfgm/rng.h"

static void make_inputs(int64_t B, int64_t L, int64_t N, float *pert, float *charges) {
    bench_fill_images(1, L * N, charges);
    bench_fill_images(2, B * (N + 1), pert);
    for (int64_t b = 0; b < B; ++b) {
        float s = powf(10.0f, (float)(b % 5) - 2.0f);
        for (int64_t j = 0; j < N; ++j) pert[b * (N + 1) + j] = charges[b * N + j] + s * pert[b * (N + 1) + j];
        pert[b * (N + 1) + N] = s * fabsf(pert[b * (N + 1) + N]);
    }
}

static pfgm_status run(const bench_args *a, pfgm_backend *be) {
    const int64_t B = a->size[0], L = a->size[1], N = a->size[2];
    const size_t wsb = pfgm_field_workspace_bytes(B, L);
    float *pert = malloc(sizeof(float) * (size_t)(B * (N + 1))), *charges = malloc(sizeof(float) * (size_t)(L * N));
    float *out = malloc(sizeof(float) * (size_t)(B * (N + 1)));
    void *ws = NULL;
    pfgm_status st = PFGM_OK;
    if (!pert || !charges || !out) st = pfgm_error(PFGM_ERR_NOMEM, "bench_cmp_field: inputs");
    if (st == PFGM_OK) st = be->alloc(be, wsb, &ws);
    const char *w = a->workload;
    if (st == PFGM_OK) {
        make_inputs(B, L, N, pert, charges);
        bench_report(w, "images", (double)B);
        st = pfgm_field_targets(be, B, L, N, pert, charges, 5.0, ws, wsb, out);
    }
    if (st == PFGM_OK) {
        const bench_h5_item items[] = {
            {"perturbed", pert, 2, {B, N + 1}}, {"charges", charges, 2, {L, N}}, {"targets", out, 2, {B, N + 1}}};
        const bench_h5_attr attrs[] = {{.name = "training.gamma", .value = 5.0}};
        st = bench_h5_write(a->out, items, 3, attrs, 1);
    }
    for (int r = 0; st == PFGM_OK && r < a->warmup + a->steps; ++r) {
        double t0 = bench_now();
        st = pfgm_field_targets(be, B, L, N, pert, charges, 5.0, ws, wsb, out);
        double t1 = bench_now();
        if (st == PFGM_OK && r >= a->warmup) {
            bench_report(w, "call_s", t1 - t0);
            bench_report(w, "gflops", 4.0 * (double)B * (double)L * (double)N / (t1 - t0) * 1e-9);
        }
    }
    if (st == PFGM_OK) bench_report(w, "peak_rss_mib", (double)bench_peak_rss_kib() / 1024.0);
    if (ws) be->free(be, ws);
    free(pert);
    free(charges);
    free(out);
    return st;
}

int main(int argc, char **argv) {
    bench_args a;
    if (bench_parse_args(argc, argv, "--workload NAME --out FILE [--size B,L,N] [--steps K] [--warmup W]", &a))
        return 2;
    if (!a.out) {
        fprintf(stderr, "bench_cmp_field: --out FILE is required\n");
        return 2;
    }
    pfgm_backend *be = NULL;
    pfgm_status st = pfgm_backend_create("cpu", &be);
    if (st == PFGM_OK) st = run(&a, be);
    if (st != PFGM_OK) fprintf(stderr, "bench_cmp_field: %s\n", pfgm_error_message());
    pfgm_backend_destroy(be);
    return st == PFGM_OK ? 0 : 1;
}
