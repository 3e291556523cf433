/* Training-step benchmark against the PyTorch reference (tests/bench/run.sh): the product's
 * training step (pfgm_step_run, src/train/step.c) on the CPU backend, timed piece by piece:
 *   perturb the first B images of the L charges (spec §1.4), normalized field targets
 *   (spec §1.2-1.3), DDPM++ forward, loss 0.5*sum (spec §1.5), backward, then clipping,
 *   Adam with warmup and the EMA (spec §1.13)
 * on synthetic images (uniform in [-1, 1]; the same batch every step, as on the PyTorch
 * side), with the model of --config. The weights are drawn from the seed with
 * model.init_scale = --init-scale (1 by default here, so that no path starts at zero) and
 * written to <out>.params.h5 (group "params", the authors' names); the inputs and results of
 * the first step go to <out> (charges, perturbed points, targets, net_x, net_z, loss), so that
 * torch_reference.py computes the same first step and compares the loss before it times
 * anything. The first step and --warmup more are not timed; then --steps steps are.
 * Prints BENCH lines: step_s per step and its parts, images per step, the first loss, peak
 * RSS. Usage: bench_cmp_train --config PATH [--set k=v]... --workload NAME --out FILE
 *             [--steps K] [--warmup W] [--init-scale S] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "pfgm/backend.h"
#include "pfgm/ddpmpp.h"
#include "pfgm/params_h5.h"
#include "pfgm/optim.h"
#include "pfgm/step.h"
#include "util/check.h"

typedef struct step_times {
    double perturb, field, fwd, bwd, optim, total;
} step_times;

typedef struct bench {
    const pfgm_config *cfg;
    pfgm_backend *be;
    pfgm_ddpmpp *model;
    pfgm_optim *optim;
    pfgm_step *step;
    int64_t N, L, B;
    const float *host_batch;
    /* the running step: its phase boundaries, the export of the first step */
    double t_phase[PFGM_STEP_PHASES], t0, export_s;
    const char *export_path;
} bench;

/* Writes the first step's inputs and results for the PyTorch side. */
static pfgm_status export_first(bench *t, pfgm_step *s) {
    const pfgm_config *c = t->cfg;
    pfgm_step_view v;
    pfgm_step_get_view(s, &v);
    const int64_t N = v.N, L = v.L, B = v.B, C = c->data.channels, H = c->data.image_size;
    const bench_h5_item items[] = {
        {"charges", v.charges, 4, {L, C, H, H}},  {"perturbed", v.perturbed, 2, {B, N + 1}},
        {"targets", v.targets, 2, {B, N + 1}},    {"net_x", v.net_x, 4, {B, C, H, H}},
        {"net_z", v.net_z, 1, {B}},
    };
    bench_h5_attr attrs[BENCH_CONFIG_ATTRS + 1];
    int na = bench_config_attrs(c, attrs);
    attrs[na++] = (bench_h5_attr){.name = "loss", .value = v.loss};
    return bench_h5_write(t->export_path, items, 5, attrs, na);
}

/* Phase boundaries of the product's step (the CPU backend: ops have finished when they
 * return); after the loss of the first step, its export, whose time is not the step's. */
static pfgm_status on_phase(void *user, pfgm_step *s, pfgm_step_phase phase) {
    bench *t = user;
    t->t_phase[phase] = bench_now();
    if (phase == PFGM_STEP_LOSS && t->export_path) {
        PFGM_TRY(export_first(t, s));
        t->export_s = bench_now() - t->t_phase[phase];
        t->t_phase[phase] += t->export_s;
    }
    return PFGM_OK;
}

/* One training step of the product (pfgm_step_run), timed by phase: perturb (with the
 * upload of the batch), field targets, forward + loss, backward, finite check + clip/Adam/EMA. */
static pfgm_status step(bench *t, int64_t s, const char *export_path, double *loss, step_times *tm) {
    pfgm_step_hooks hooks = {.user = t, .phase_end = on_phase};
    t->export_path = export_path;
    t->export_s = 0.0;
    t->t0 = bench_now();
    pfgm_step_result r;
    PFGM_TRY(pfgm_step_run(t->step, s, t->host_batch, &hooks, &r));
    if (r.skipped) return pfgm_error(PFGM_ERR_NUMERIC, "bench_cmp_train: step %lld was not finite", (long long)s);
    *loss = r.loss;
    const double *p = t->t_phase;
    *tm = (step_times){.perturb = p[PFGM_STEP_PERTURB] - t->t0,
                       .field = p[PFGM_STEP_FIELD] - p[PFGM_STEP_PERTURB],
                       .fwd = p[PFGM_STEP_LOSS] - p[PFGM_STEP_FIELD] - t->export_s,
                       .bwd = p[PFGM_STEP_BACKWARD] - p[PFGM_STEP_LOSS],
                       .optim = p[PFGM_STEP_OPTIM] - p[PFGM_STEP_BACKWARD],
                       .total = p[PFGM_STEP_OPTIM] - t->t0 - t->export_s};
    return PFGM_OK;
}

static pfgm_status run(const bench_args *a, bench *t) {
    const pfgm_config *c = t->cfg;
    t->N = pfgm_config_data_dim(c);
    t->L = c->training.batch_size;
    t->B = c->training.small_batch_size;
    pfgm_ddpmpp_desc desc;
    PFGM_TRY(pfgm_ddpmpp_desc_from_config(c, &desc));
    desc.init_scale = a->init_scale >= 0.0 ? a->init_scale : 1.0;
    desc.param_multiple = pfgm_step_param_multiple(1);
    PFGM_TRY(pfgm_ddpmpp_create(t->be, &desc, t->B, PFGM_DDPMPP_TRAIN, &t->model));
    PFGM_TRY(pfgm_ddpmpp_init_params(t->model, (uint32_t)c->seed));
    char path[4096];
    snprintf(path, sizeof path, "%s.params.h5", a->out);
    PFGM_TRY(pfgm_ddpmpp_save_h5(t->model, path, "params"));
    pfgm_step_setup ss = {.cfg = c, .be = t->be, .model = t->model};
    PFGM_TRY(pfgm_step_create(&ss, &t->step));
    t->optim = pfgm_step_optim(t->step);
    pfgm_ddpmpp_info info;
    pfgm_ddpmpp_get_info(t->model, &info);
    const char *w = a->workload;
    bench_report(w, "images", (double)t->B);
    bench_report(w, "charges", (double)t->L);
    bench_report(w, "params", (double)info.param_count);
    bench_report(w, "gflop_fwd_per_image", info.flops_per_image * 1e-9);
    double loss = 0.0;
    step_times tm;
    PFGM_TRY(step(t, 0, a->out, &loss, &tm));
    bench_report(w, "loss0", loss);
    for (int s = 1; s <= a->warmup; ++s) PFGM_TRY(step(t, s, NULL, &loss, &tm));
    for (int s = 0; s < a->steps; ++s) {
        double c0 = bench_cpu_now();
        PFGM_TRY(step(t, 1 + a->warmup + s, NULL, &loss, &tm));
        bench_report(w, "step_cpu_s", bench_cpu_now() - c0);
        bench_report(w, "step_s", tm.total);
        bench_report(w, "perturb_s", tm.perturb);
        bench_report(w, "field_s", tm.field);
        bench_report(w, "forward_s", tm.fwd);
        bench_report(w, "backward_s", tm.bwd);
        bench_report(w, "optim_s", tm.optim);
    }
    bench_report(w, "loss_last", loss);
    bench_report(w, "peak_rss_mib", (double)bench_peak_rss_kib() / 1024.0);
    return PFGM_OK;
}

int main(int argc, char **argv) {
    bench_args a;
    if (bench_parse_args(argc, argv,
                         "--config PATH [--set k=v]... --workload NAME --out FILE [--steps K] [--warmup W] "
                         "[--init-scale S]",
                         &a))
        return 2;
    if (!a.out) {
        fprintf(stderr, "bench_cmp_train: --out FILE is required\n");
        return 2;
    }
    pfgm_config cfg;
    bench t;
    memset(&t, 0, sizeof t);
    t.cfg = &cfg;
    pfgm_status st = bench_config(&a, &cfg);
    if (st == PFGM_OK) st = pfgm_backend_create("cpu", &t.be);
    float *host = NULL;
    if (st == PFGM_OK) {
        int64_t n = cfg.training.batch_size * pfgm_config_data_dim(&cfg);
        host = malloc(sizeof(float) * (size_t)n);
        if (!host) st = pfgm_error(PFGM_ERR_NOMEM, "bench_cmp_train: batch of %lld floats", (long long)n);
        else bench_fill_images((uint32_t)cfg.seed, n, host);
        t.host_batch = host;
    }
    if (st == PFGM_OK) st = run(&a, &t);
    if (st != PFGM_OK) fprintf(stderr, "bench_cmp_train: %s\n", pfgm_error_message());
    pfgm_step_destroy(t.step);

    pfgm_ddpmpp_destroy(t.model);
    pfgm_backend_destroy(t.be);
    free(host);
    return st == PFGM_OK ? 0 : 1;
}
