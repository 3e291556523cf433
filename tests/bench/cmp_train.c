/* Training-step benchmark against the PyTorch reference (tests/bench/run.sh): one step of
 * pfgm-train's loop on the CPU backend, timed piece by piece:
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
#include "pfgm/field.h"
#include "pfgm/loss.h"
#include "pfgm/optim.h"
#include "pfgm/perturb.h"
#include "util/check.h"

typedef struct step_bufs {
    float *charges, *perturbed, *targets, *x_net, *z_net, *pred, *dpred, *dnet_x, *dnet_z;
    void *field_ws;
    size_t field_ws_bytes;
} step_bufs;

typedef struct step_times {
    double perturb, field, fwd, bwd, optim, total;
} step_times;

typedef struct bench {
    const pfgm_config *cfg;
    pfgm_backend *be;
    pfgm_ddpmpp *model;
    pfgm_optim *optim;
    int64_t N, L, B;
    step_bufs b;
    const float *host_batch;
} bench;

static pfgm_status balloc(pfgm_backend *be, int64_t floats, float **p) {
    return be->alloc(be, (size_t)floats * sizeof(float), (void **)p);
}

static pfgm_status bufs_create(bench *t) {
    pfgm_backend *be = t->be;
    const int64_t N = t->N, L = t->L, B = t->B;
    step_bufs *b = &t->b;
    PFGM_TRY(balloc(be, L * N, &b->charges));
    PFGM_TRY(balloc(be, B * (N + 1), &b->perturbed));
    PFGM_TRY(balloc(be, B * (N + 1), &b->targets));
    PFGM_TRY(balloc(be, B * N, &b->x_net));
    PFGM_TRY(balloc(be, B, &b->z_net));
    PFGM_TRY(balloc(be, B * (N + 1), &b->pred));
    PFGM_TRY(balloc(be, B * (N + 1), &b->dpred));
    PFGM_TRY(balloc(be, B * N, &b->dnet_x));
    PFGM_TRY(balloc(be, B, &b->dnet_z));
    b->field_ws_bytes = pfgm_field_workspace_bytes(B, L);
    return be->alloc(be, b->field_ws_bytes, &b->field_ws);
}

static void bufs_free(bench *t) {
    step_bufs *b = &t->b;
    float *all[] = {b->charges, b->perturbed, b->targets, b->x_net, b->z_net, b->pred, b->dpred, b->dnet_x, b->dnet_z};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; ++i)
        if (all[i]) t->be->free(t->be, all[i]);
    if (b->field_ws) t->be->free(t->be, b->field_ws);
}

/* [B, N] + [B] -> [B, N+1] and back (the augmented layout of the loss, spec §1.5). */
static void pack(int64_t B, int64_t N, const float *x, const float *z, float *out) {
    for (int64_t k = 0; k < B; ++k) {
        memcpy(out + k * (N + 1), x + k * N, sizeof(float) * (size_t)N);
        out[k * (N + 1) + N] = z[k];
    }
}

static void unpack(int64_t B, int64_t N, const float *in, float *x, float *z) {
    for (int64_t k = 0; k < B; ++k) {
        memcpy(x + k * N, in + k * (N + 1), sizeof(float) * (size_t)N);
        z[k] = in[k * (N + 1) + N];
    }
}

/* Writes the first step's inputs and results for the PyTorch side. */
static pfgm_status export_first(bench *t, const char *path, const float *net_x, const float *net_z, double loss) {
    const pfgm_config *c = t->cfg;
    const int64_t N = t->N, L = t->L, B = t->B, C = c->data.channels, H = c->data.image_size;
    const bench_h5_item items[] = {
        {"charges", t->b.charges, 4, {L, C, H, H}},  {"perturbed", t->b.perturbed, 2, {B, N + 1}},
        {"targets", t->b.targets, 2, {B, N + 1}},    {"net_x", net_x, 4, {B, C, H, H}},
        {"net_z", net_z, 1, {B}},
    };
    bench_h5_attr attrs[BENCH_CONFIG_ATTRS + 1];
    int na = bench_config_attrs(c, attrs);
    attrs[na++] = (bench_h5_attr){.name = "loss", .value = loss};
    return bench_h5_write(path, items, 5, attrs, na);
}

/* One training step: trainer.c's train_step without the data loader and the all-reduce. */
static pfgm_status step(bench *t, int64_t s, const char *export_path, double *loss, step_times *tm) {
    const pfgm_config *c = t->cfg;
    pfgm_backend *be = t->be;
    const int64_t N = t->N, L = t->L, B = t->B;
    step_bufs *b = &t->b;
    const uint32_t seed = (uint32_t)c->seed;
    double t0 = bench_now();
    PFGM_TRY(pfgm_backend_upload(be, b->charges, t->host_batch, L * N));
    pfgm_rng prng = {.seed = seed, .rank = 0, .stream = PFGM_STREAM_PERTURB, .step = (uint64_t)s};
    pfgm_perturb_params pp = {.M = c->training.M, .tau = c->training.tau, .sigma_end = c->model.sigma_end,
                              .restrict_M = c->training.restrict_M};
    PFGM_TRY(pfgm_perturb(be, &prng, &pp, B, N, b->charges, b->perturbed, b->x_net, b->z_net));
    double t1 = bench_now();
    PFGM_TRY(pfgm_field_targets(be, B, L, N, b->perturbed, b->charges, c->training.gamma, b->field_ws,
                                b->field_ws_bytes, b->targets));
    double t2 = bench_now();
    pfgm_nn_run run = {.train = 1,
                       .dropout_rng = {.seed = seed, .rank = 0, .stream = PFGM_STREAM_DROPOUT, .step = (uint64_t)s}};
    const float *net_x = NULL, *net_z = NULL;
    PFGM_TRY(pfgm_ddpmpp_forward(t->model, B, b->x_net, b->z_net, &run, &net_x, &net_z));
    pack(B, N, net_x, net_z, b->pred);
    PFGM_TRY(pfgm_loss(be, B, N, b->pred, b->targets, c->training.reduce_mean, b->dpred, loss));
    double t3 = bench_now();
    if (export_path) PFGM_TRY(export_first(t, export_path, net_x, net_z, *loss));
    double t3e = bench_now();
    unpack(B, N, b->dpred, b->dnet_x, b->dnet_z);
    pfgm_nn_params *p = pfgm_ddpmpp_params(t->model);
    PFGM_TRY(pfgm_nn_params_zero_grad(p));
    PFGM_TRY(pfgm_ddpmpp_backward(t->model, b->dnet_x, b->dnet_z, NULL));
    double t4 = bench_now();
    double gsq = 0.0; /* the trainer's finite check of the gradients before the update */
    PFGM_TRY(be->sumsq(be, p->trainable_floats, p->grad, &gsq));
    PFGM_TRY(pfgm_optim_step(t->optim, p->value, p->grad, s, NULL));
    double t5 = bench_now();
    *tm = (step_times){.perturb = t1 - t0, .field = t2 - t1, .fwd = t3 - t2, .bwd = t4 - t3e, .optim = t5 - t4,
                       .total = (t5 - t0) - (t3e - t3)};
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
    PFGM_TRY(pfgm_ddpmpp_create(t->be, &desc, t->B, PFGM_DDPMPP_TRAIN, &t->model));
    pfgm_nn_params *p = pfgm_ddpmpp_params(t->model);
    PFGM_TRY(pfgm_ddpmpp_init_params(t->model, (uint32_t)c->seed));
    char path[4096];
    snprintf(path, sizeof path, "%s.params.h5", a->out);
    PFGM_TRY(pfgm_ddpmpp_save_h5(t->model, path, "params"));
    pfgm_optim_hparams hp = {.lr = c->optim.lr, .beta1 = c->optim.beta1, .beta2 = c->optim.beta2, .eps = c->optim.eps,
                             .weight_decay = c->optim.weight_decay, .warmup = c->optim.warmup,
                             .grad_clip = c->optim.grad_clip, .ema_rate = c->model.ema_rate};
    pfgm_optim_range tr = {.offset = 0, .count = p->trainable_floats};
    PFGM_TRY(pfgm_optim_create(t->be, &hp, p->floats, p->value, &tr, 1, &t->optim));
    PFGM_TRY(bufs_create(t));
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
    if (t.be) bufs_free(&t);
    pfgm_optim_destroy(t.optim);
    pfgm_ddpmpp_destroy(t.model);
    pfgm_backend_destroy(t.be);
    free(host);
    return st == PFGM_OK ? 0 : 1;
}
