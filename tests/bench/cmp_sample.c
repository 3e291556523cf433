/* Sampler benchmark against the PyTorch reference (tests/bench/run.sh): one batch of
 * sampling.batch_size samples drawn as pfgm-sample draws them, the hemisphere prior on
 * z = z_max (spec §1.7) then the backward ODE through the DDPM++ network in evaluation mode
 * (spec §1.8-1.9) with the solver of the config (run.sh sets forward Euler, 20 steps: NFE 20
 * on both sides). The weights are drawn from the seed with model.init_scale = --init-scale
 * (the config's value by default), or loaded with --params; they are written to
 * <out>.params.h5 (group "params"). The first batch's prior samples, the first network
 * evaluation at z_max (v_x, v_z) and the final samples go to <out>, so that
 * torch_reference.py checks the same numbers before it times anything.
 * Prints BENCH lines: batch_s per batch, images per batch, NFE, peak RSS.
 * Usage: bench_cmp_sample --config PATH [--set k=v]... --workload NAME --out FILE
 *        [--params FILE] [--steps K] [--warmup W] [--init-scale S] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "pfgm/backend.h"
#include "pfgm/ddpmpp.h"
#include "pfgm/params_h5.h"
#include "pfgm/ode.h"
#include "pfgm/prior.h"
#include "pfgm/sampler.h"
#include "util/check.h"

typedef struct sampler_bench {
    pfgm_ddpmpp *model;
    int64_t N;
} sampler_bench;

/* The ODE's field: one evaluation-mode forward (as src/train/sampler.c). */
static pfgm_status network_field(void *user, int64_t B, const float *x, const float *z, float *v_x, float *v_z) {
    sampler_bench *s = user;
    const float *nx = NULL, *nz = NULL;
    PFGM_TRY(pfgm_ddpmpp_forward(s->model, B, x, z, NULL, &nx, &nz));
    memcpy(v_x, nx, sizeof(float) * (size_t)(B * s->N));
    memcpy(v_z, nz, sizeof(float) * (size_t)B);
    return PFGM_OK;
}

/* Prior samples of batch b into x [B, N]. */
static pfgm_status prior(pfgm_backend *be, const pfgm_config *c, int64_t b, int64_t B, int64_t N, float *x) {
    pfgm_rng r = {.seed = (uint32_t)c->seed, .rank = 0, .stream = PFGM_STREAM_PRIOR, .step = (uint64_t)b};
    return pfgm_prior_sample(be, &r, B, N, c->sampling.z_max, c->sampling.upper_norm, x, NULL);
}

/* The first batch with its checks written to `path`. */
static pfgm_status first_batch(pfgm_backend *be, const pfgm_config *c, sampler_bench *s, pfgm_ode_solver *solver,
                               int64_t B, float *x, float *x0, float *vx, float *vz, float *zb, const char *path,
                               pfgm_ode_stats *stats) {
    const int64_t N = s->N, C = c->data.channels, H = c->data.image_size;
    PFGM_TRY(prior(be, c, 0, B, N, x));
    memcpy(x0, x, sizeof(float) * (size_t)(B * N));
    for (int64_t k = 0; k < B; ++k) zb[k] = (float)c->sampling.z_max;
    PFGM_TRY(network_field(s, B, x0, zb, vx, vz));
    PFGM_TRY(pfgm_ode_solve(solver, x, network_field, s, stats));
    const bench_h5_item items[] = {{"prior", x0, 4, {B, C, H, H}},
                                   {"v_x", vx, 4, {B, C, H, H}},
                                   {"v_z", vz, 1, {B}},
                                   {"samples", x, 4, {B, C, H, H}}};
    bench_h5_attr attrs[BENCH_CONFIG_ATTRS + 1];
    int na = bench_config_attrs(c, attrs);
    attrs[na++] = (bench_h5_attr){.name = "nfe", .value = (double)stats->nfe};
    return bench_h5_write(path, items, 4, attrs, na);
}

static pfgm_status run(const bench_args *a, const pfgm_config *c, pfgm_backend *be) {
    sampler_bench s = {.N = pfgm_config_data_dim(c)};
    const int64_t B = c->sampling.batch_size, N = s.N;
    pfgm_ddpmpp_desc desc;
    PFGM_TRY(pfgm_ddpmpp_desc_from_config(c, &desc));
    if (a->init_scale >= 0.0) desc.init_scale = a->init_scale;
    pfgm_ode_solver *solver = NULL;
    float *x = NULL, *x0 = NULL, *vx = NULL, *vz = NULL, *zb = NULL;
    pfgm_status st = pfgm_ddpmpp_create(be, &desc, B, PFGM_DDPMPP_INFER, &s.model);
    char path[4096];
    snprintf(path, sizeof path, "%s.params.h5", a->out);
    if (st == PFGM_OK)
        st = a->params ? pfgm_ddpmpp_load_h5(s.model, a->params, "params")
                       : pfgm_ddpmpp_init_params(s.model, (uint32_t)c->seed);
    if (st == PFGM_OK) st = pfgm_ddpmpp_save_h5(s.model, path, "params");
    pfgm_ode_options oo = pfgm_sample_ode_options(c);
    if (st == PFGM_OK) st = pfgm_ode_create(be, B, N, &oo, &solver);
    x = malloc(sizeof(float) * (size_t)(B * N));
    x0 = malloc(sizeof(float) * (size_t)(B * N));
    vx = malloc(sizeof(float) * (size_t)(B * N));
    vz = malloc(sizeof(float) * (size_t)B);
    zb = malloc(sizeof(float) * (size_t)B);
    if (st == PFGM_OK && (!x || !x0 || !vx || !vz || !zb))
        st = pfgm_error(PFGM_ERR_NOMEM, "bench_cmp_sample: batch buffers");
    const char *w = a->workload;
    pfgm_ode_stats stats = {0};
    if (st == PFGM_OK) {
        bench_report(w, "images", (double)B);
        st = first_batch(be, c, &s, solver, B, x, x0, vx, vz, zb, a->out, &stats);
    }
    if (st == PFGM_OK) bench_report(w, "nfe", (double)stats.nfe);
    for (int r = 1; st == PFGM_OK && r <= a->warmup + a->steps; ++r) {
        double t0 = bench_now();
        st = prior(be, c, r, B, N, x);
        if (st == PFGM_OK) st = pfgm_ode_solve(solver, x, network_field, &s, &stats);
        double t1 = bench_now();
        if (st == PFGM_OK && r > a->warmup) {
            bench_report(w, "batch_s", t1 - t0);
            bench_report(w, "per_nfe_s", (t1 - t0) / (double)stats.nfe);
        }
    }
    if (st == PFGM_OK) bench_report(w, "peak_rss_mib", (double)bench_peak_rss_kib() / 1024.0);
    free(x);
    free(x0);
    free(vx);
    free(vz);
    free(zb);
    pfgm_ode_destroy(solver);
    pfgm_ddpmpp_destroy(s.model);
    return st;
}

int main(int argc, char **argv) {
    bench_args a;
    if (bench_parse_args(argc, argv,
                         "--config PATH [--set k=v]... --workload NAME --out FILE [--params FILE] [--steps K] "
                         "[--warmup W] [--init-scale S]",
                         &a))
        return 2;
    if (!a.out) {
        fprintf(stderr, "bench_cmp_sample: --out FILE is required\n");
        return 2;
    }
    pfgm_config cfg;
    pfgm_backend *be = NULL;
    pfgm_status st = bench_config(&a, &cfg);
    if (st == PFGM_OK) st = pfgm_backend_create("cpu", &be);
    if (st == PFGM_OK) st = run(&a, &cfg, be);
    if (st != PFGM_OK) fprintf(stderr, "bench_cmp_sample: %s\n", pfgm_error_message());
    pfgm_backend_destroy(be);
    return st == PFGM_OK ? 0 : 1;
}
