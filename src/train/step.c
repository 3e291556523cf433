/* THE training step (include/pfgm/step.h): the trainer and the benchmarks call it. */
#include "pfgm/step.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pfgm/field.h"
#include "pfgm/grad_sync.h"
#include "pfgm/loss.h"
#include "pfgm/ops.h"
#include "pfgm/perturb.h"
#include "pfgm/config.h"
#include "util/check.h"

struct pfgm_step {
    pfgm_step_setup set;
    int W, rank, global;
    int64_t N, L, B;
    float *charges;     /* [L, N] this rank's large batch */
    float *charges_all; /* [W*L, N] all ranks' charges (field.reference: global, W > 1), else NULL */
    float *perturbed;   /* [B, N+1] perturbed points, z unclamped */
    float *targets;     /* [B, N+1] normalized field targets */
    float *x_net;       /* [B, N] network input x' */
    float *z_net;       /* [B] network input z, clamped at 1e-10 */
    float *dnet_x;      /* [B, N] dLoss/dnet_x */
    float *dnet_z;      /* [B] dLoss/dnet_z */
    const float *net_x, *net_z; /* the network's outputs of the last forward */
    double loss;
    void *field_ws;
    size_t field_ws_bytes;
    int32_t *verdicts;  /* [W] host: 0 finite, 1 non-finite loss, 2 non-finite gradient */
    pfgm_grad_sync *sync; /* buckets and shards of the gradient average */
    pfgm_optim *optim;    /* over this rank's ranges (all of the prefix, or its ZeRO shard) */
    int inject_nan;       /* tests only: this step's backward ends with a NaN gradient */
};

static const char *const phase_names[PFGM_STEP_PHASES] = {"perturb", "field targets", "forward", "loss",
                                                         "backward", "all-reduce", "clip/Adam/EMA"};

const char *pfgm_step_phase_name(pfgm_step_phase p) {
    return (int)p >= 0 && p < PFGM_STEP_PHASES ? phase_names[p] : "?";
}

static pfgm_status balloc(pfgm_backend *be, int64_t floats, float **p, const char *what) {
    pfgm_status st = be->alloc(be, (size_t)floats * sizeof(float), (void **)p);
    return st == PFGM_OK ? st : pfgm_error_prefix(st, "training step: %s", what);
}

void pfgm_step_destroy(pfgm_step *s) {
    if (!s) return;
    pfgm_backend *be = s->set.be;
    float *dev[] = {s->charges, s->charges_all, s->perturbed, s->targets, s->x_net, s->z_net, s->dnet_x, s->dnet_z};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; ++i)
        if (dev[i]) be->free(be, dev[i]);
    if (s->field_ws) be->free(be, s->field_ws);
    free(s->verdicts);
    pfgm_ddpmpp_set_grad_hook(s->set.model, NULL, NULL);
    pfgm_grad_sync_destroy(s->sync);
    pfgm_optim_destroy(s->optim);
    free(s);
}

/* The model's hook after each layer's backward: the test-only NaN lands before the bucket
 * holding gradient 0 starts (it is the last one), then the ready buckets start. */
static pfgm_status grad_ready(void *user, int64_t ready_from) {
    pfgm_step *s = user;
    if (s->inject_nan && ready_from == 0) {
        s->inject_nan = 0;
        PFGM_TRY(pfgm_op_fill(s->set.be, 1, NAN, pfgm_ddpmpp_params(s->set.model)->grad));
    }
    return pfgm_grad_sync_ready(s->sync, ready_from);
}

int64_t pfgm_step_param_multiple(int world_size) { return pfgm_grad_sync_param_multiple(world_size); }

pfgm_optim *pfgm_step_optim(pfgm_step *s) { return s->optim; }


pfgm_status pfgm_step_export_state(pfgm_step *s, float *m, float *v, float *ema, int64_t *updates) {
    pfgm_nn_params *p = pfgm_ddpmpp_params(s->set.model);
    const int sharded = s->W > 1 && s->set.cfg->distributed.zero;
    if (!sharded) return s->rank == 0 ? pfgm_optim_export(s->optim, m, v, ema, updates) : PFGM_OK;
    const size_t all = (size_t)p->floats, T = (size_t)p->trainable_floats;
    memset(m, 0, all * sizeof *m);
    memset(v, 0, all * sizeof *v);
    memset(ema, 0, all * sizeof *ema);
    PFGM_TRY(pfgm_optim_export(s->optim, m, v, ema, updates));
    /* each entry of the prefix has one owner and zeros elsewhere: the sums are exact */
    float *bufs[3] = {m, v, ema};
    for (int k = 0; k < 3; ++k) {
        pfgm_status st = s->set.comm->allreduce(s->set.comm, bufs[k], T, PFGM_F32, PFGM_REDUCE_SUM);
        if (st != PFGM_OK) return pfgm_error_prefix(st, "gathering the sharded optimizer state");
    }
    /* the fixed parameters past the prefix: no moments; their EMA is the parameter itself */
    if (all > T) PFGM_TRY(pfgm_backend_download(s->set.be, ema + T, p->value + T, (int64_t)(all - T)));
    return PFGM_OK;
}

pfgm_status pfgm_step_create(const pfgm_step_setup *setup, pfgm_step **out) {
    *out = NULL;
    if (!setup || !setup->cfg || !setup->be || !setup->model)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "training step: NULL config, backend or model");
    const pfgm_config *c = setup->cfg;
    pfgm_step *s = calloc(1, sizeof *s);
    if (!s) return pfgm_error(PFGM_ERR_NOMEM, "training step: out of memory");
    s->set = *setup;
    if (!s->set.dcomm) s->set.dcomm = s->set.comm;
    s->W = setup->comm ? setup->comm->world_size : 1;
    s->rank = setup->comm ? setup->comm->rank : 0;
    s->N = pfgm_config_data_dim(c);
    s->L = c->training.batch_size;
    s->B = c->training.small_batch_size;
    /* One rank's global reference is its local one: no gather. */
    s->global = c->field.reference == PFGM_FIELD_GLOBAL && s->W > 1;
    pfgm_status st = PFGM_OK;
    if (s->N <= 0 || s->L <= 0 || s->B <= 0 || s->B > s->L)
        st = pfgm_error(PFGM_ERR_INVALID_ARG, "training step: N=%lld, L=%lld, B=%lld (need 0 < B <= L)",
                        (long long)s->N, (long long)s->L, (long long)s->B);
    pfgm_backend *be = s->set.be;
    const int64_t N = s->N, L = s->L, B = s->B, W = s->W;
    if (st == PFGM_OK) st = balloc(be, L * N, &s->charges, "charges");
    if (st == PFGM_OK && s->global) st = balloc(be, W * L * N, &s->charges_all, "all ranks' charges");
    if (st == PFGM_OK) st = balloc(be, B * (N + 1), &s->perturbed, "perturbed points");
    if (st == PFGM_OK) st = balloc(be, B * (N + 1), &s->targets, "targets");
    if (st == PFGM_OK) st = balloc(be, B * N, &s->x_net, "network input x");
    if (st == PFGM_OK) st = balloc(be, B, &s->z_net, "network input z");
    if (st == PFGM_OK) st = balloc(be, B * N, &s->dnet_x, "gradient of the output x");
    if (st == PFGM_OK) st = balloc(be, B, &s->dnet_z, "gradient of the output z");
    if (st == PFGM_OK) {
        s->field_ws_bytes = pfgm_field_workspace_bytes(B, s->global ? W * L : L);
        st = be->alloc(be, s->field_ws_bytes, &s->field_ws);
        if (st != PFGM_OK) st = pfgm_error_prefix(st, "training step: field workspace");
    }
    if (st == PFGM_OK && !(s->verdicts = calloc((size_t)W, sizeof *s->verdicts)))
        st = pfgm_error(PFGM_ERR_NOMEM, "training step: out of memory");
    pfgm_nn_params *params = pfgm_ddpmpp_params(s->set.model);
    if (st == PFGM_OK) {
        pfgm_grad_sync_setup gss = {.be = be, .params = params, .dcomm = W > 1 ? s->set.dcomm : NULL,
                                    .comm = s->set.comm, .bucket_mb = c->distributed.bucket_mb,
                                    .zero = (int)c->distributed.zero};
        st = pfgm_grad_sync_create(&gss, &s->sync);
    }
    if (st == PFGM_OK) {
        int64_t n_owned = 0;
        const pfgm_optim_range *owned = pfgm_grad_sync_owned(s->sync, &n_owned);
        pfgm_optim_hparams hp;
        pfgm_optim_hparams_from_config(c, &hp);
        st = W > 1 && c->distributed.zero
                 ? pfgm_optim_create_sharded(be, &hp, params->floats, params->value, owned, n_owned, &s->optim)
                 : pfgm_optim_create(be, &hp, params->floats, params->value, owned, n_owned, &s->optim);
    }
    if (st == PFGM_OK) pfgm_ddpmpp_set_grad_hook(s->set.model, grad_ready, s);
    if (st != PFGM_OK) {
        pfgm_step_destroy(s);
        return st;
    }
    *out = s;
    return PFGM_OK;
}

void pfgm_step_get_view(const pfgm_step *s, pfgm_step_view *v) {
    *v = (pfgm_step_view){.N = s->N, .L = s->L, .B = s->B, .charges = s->charges, .perturbed = s->perturbed,
                          .targets = s->targets, .net_x = s->net_x, .net_z = s->net_z, .loss = s->loss,
                          .field_workspace_bytes = s->field_ws_bytes,
                          .optim_state_bytes = 3 * (size_t)pfgm_optim_state_floats(s->optim) * sizeof(float),
                          .buckets = pfgm_grad_sync_buckets(s->sync)};
    int64_t lo = 0, hi = 0;
    pfgm_grad_sync_bucket(s->sync, 0, &lo, &hi);
    v->bucket_floats = hi - lo;
}

/* Whether every rank's loss and gradients are finite, agreed over ranks (one all-gather of an
 * int32 per rank): sets res->skipped and names the ranks in res->nonfinite_ranks. Each such
 * rank warns (tagged with its rank); rank 0 names them all in one line. */
static pfgm_status agree_finite(pfgm_step *s, int64_t step, double gsq, pfgm_step_result *res) {
    int32_t bad = !isfinite(res->loss) ? 1 : !isfinite(gsq) ? 2 : 0;
    if (bad && s->set.lg)
        pfgm_log_warn(s->set.lg,
                      "step %lld: non-finite %s on this rank (loss %g, squared gradient norm %g); the update is skipped on every rank",
                      (long long)(step + 1), bad == 1 ? "loss" : "gradient", res->loss, gsq);
    if (s->W > 1) PFGM_TRY(s->set.comm->allgather(s->set.comm, &bad, s->verdicts, 1, PFGM_I32));
    else s->verdicts[0] = bad;
    size_t o = 0;
    int n_bad = 0;
    for (int r = 0; r < s->W; ++r) {
        if (!s->verdicts[r]) continue;
        ++n_bad;
        const size_t cap = sizeof res->nonfinite_ranks;
        int n = snprintf(res->nonfinite_ranks + o, cap - o, "%s%d (%s)", o ? ", " : "", r,
                         s->verdicts[r] == 1 ? "loss" : "gradient");
        if (n > 0 && (size_t)n < cap - o) o += (size_t)n;
    }
    res->skipped = n_bad > 0;
    if (n_bad && s->rank == 0 && s->W > 1 && s->set.lg)
        pfgm_log_warn(s->set.lg, "step %lld: non-finite values on rank%s %s; the update is skipped on all %d ranks",
                      (long long)(step + 1), n_bad > 1 ? "s" : "", res->nonfinite_ranks, s->W);
    return PFGM_OK;
}

static pfgm_status phase_end(const pfgm_step_hooks *h, pfgm_step *s, pfgm_step_phase p) {
    return h && h->phase_end ? h->phase_end(h->user, s, p) : PFGM_OK;
}

pfgm_status pfgm_step_run(pfgm_step *s, int64_t step, const float *host_batch, const pfgm_step_hooks *hooks,
                          pfgm_step_result *res) {
    memset(res, 0, sizeof *res);
    if (!host_batch || step < 0) return pfgm_error(PFGM_ERR_INVALID_ARG, "training step %lld: no batch", (long long)step);
    const pfgm_config *cfg = s->set.cfg;
    pfgm_backend *be = s->set.be;
    pfgm_nn_params *params = pfgm_ddpmpp_params(s->set.model);
    const int64_t N = s->N, L = s->L, B = s->B;
    const uint32_t seed = (uint32_t)cfg->seed, rank = (uint32_t)s->rank;

    PFGM_TRY(pfgm_backend_upload(be, s->charges, host_batch, L * N));
    pfgm_rng prng = {.seed = seed, .rank = rank, .stream = PFGM_STREAM_PERTURB, .step = (uint64_t)step};
    pfgm_perturb_params pp = {.M = cfg->training.M, .tau = cfg->training.tau, .sigma_end = cfg->model.sigma_end,
                              .restrict_M = cfg->training.restrict_M};
    PFGM_TRY(pfgm_perturb(be, &prng, &pp, B, N, s->charges, s->perturbed, s->x_net, s->z_net));
    PFGM_TRY(phase_end(hooks, s, PFGM_STEP_PERTURB));

    if (s->global)
        PFGM_TRY(pfgm_field_targets_global(s->set.dcomm, be, B, L, N, s->perturbed, s->charges, s->charges_all,
                                           cfg->training.gamma, s->field_ws, s->field_ws_bytes, s->targets));
    else
        PFGM_TRY(pfgm_field_targets(be, B, L, N, s->perturbed, s->charges, cfg->training.gamma, s->field_ws,
                                    s->field_ws_bytes, s->targets));
    PFGM_TRY(phase_end(hooks, s, PFGM_STEP_FIELD));

    pfgm_nn_run run = {.train = 1,
                       .dropout_rng = {.seed = seed, .rank = rank, .stream = PFGM_STREAM_DROPOUT, .step = (uint64_t)step}};
    s->net_x = s->net_z = NULL;
    PFGM_TRY(pfgm_ddpmpp_forward(s->set.model, B, s->x_net, s->z_net, &run, &s->net_x, &s->net_z));
    PFGM_TRY(phase_end(hooks, s, PFGM_STEP_FORWARD));

    /* the loss refuses a non-finite value (PFGM_ERR_NUMERIC): this rank then has no
     * gradients, and every rank learns it below and skips the update */
    pfgm_status ls = pfgm_loss(be, B, N, s->net_x, s->net_z, s->targets, cfg->training.reduce_mean, s->dnet_x,
                               s->dnet_z, &res->loss);
    if (ls != PFGM_OK && ls != PFGM_ERR_NUMERIC) return ls;
    const pfgm_step_fault *f = &s->set.fault;
    const int faulty = f->step > 0 && f->step == step + 1 && f->rank == s->rank; /* tests only */
    if (faulty && !f->grad) ls = PFGM_ERR_NUMERIC;
    if (ls != PFGM_OK) res->loss = NAN;
    s->loss = res->loss;
    PFGM_TRY(phase_end(hooks, s, PFGM_STEP_LOSS));

    /* Gradient average over ranks in buckets (include/pfgm/grad_sync.h): the model's hook
     * starts each bucket's collective as soon as backward has finished its gradients. A rank
     * whose loss is not finite has no backward but still joins every collective (with zero
     * gradients); the update is then skipped everywhere. */
    pfgm_grad_sync_begin(s->sync);
    PFGM_TRY(pfgm_nn_params_zero_grad(params));
    if (ls == PFGM_OK) {
        s->inject_nan = faulty && f->grad;
        PFGM_TRY(pfgm_ddpmpp_backward(s->set.model, s->dnet_x, s->dnet_z, NULL));
    }
    PFGM_TRY(phase_end(hooks, s, PFGM_STEP_BACKWARD));

    double local_gsq = 0.0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    PFGM_TRY(pfgm_grad_sync_finish(s->sync, &local_gsq));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    res->grad_wait_s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    PFGM_TRY(agree_finite(s, step, ls == PFGM_OK ? local_gsq : NAN, res));
    if (res->skipped) {
        res->stats.grad_norm = NAN; /* no update: logged as null, not 0 */
        res->stats.lr = NAN;
        res->stats.ema_decay = NAN;
        return PFGM_OK;
    }
    double norm = 0.0;
    PFGM_TRY(pfgm_grad_sync_norm(s->sync, &norm));
    PFGM_TRY(phase_end(hooks, s, PFGM_STEP_ALLREDUCE));
    PFGM_TRY(pfgm_optim_step_norm(s->optim, params->value, params->grad, step, norm, &res->stats));
    clock_gettime(CLOCK_MONOTONIC, &t0);
    PFGM_TRY(pfgm_grad_sync_gather_params(s->sync));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    res->param_gather_s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    return phase_end(hooks, s, PFGM_STEP_OPTIM);
}

pfgm_status pfgm_field_gather_charges(pfgm_comm *comm, int64_t L, int64_t N, const float *charges,
                                      float *charges_all) {
    if (!comm || !charges || !charges_all || L <= 0 || N <= 0)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "field.reference global: bad arguments (L=%lld N=%lld)",
                          (long long)L, (long long)N);
    pfgm_status st = comm->allgather(comm, charges, charges_all, (size_t)L * (size_t)N, PFGM_F32);
    if (st != PFGM_OK) return pfgm_error_prefix(st, "field.reference global: all-gather of the charges");
    return PFGM_OK;
}

pfgm_status pfgm_field_targets_global(pfgm_comm *comm, pfgm_backend *be, int64_t B, int64_t L, int64_t N,
                                      const float *perturbed, const float *charges, float *charges_all,
                                      double gamma, void *workspace, size_t workspace_bytes, float *targets) {
    PFGM_TRY(pfgm_field_gather_charges(comm, L, N, charges, charges_all));
    return pfgm_field_targets(be, B, (int64_t)comm->world_size * L, N, perturbed, charges_all, gamma, workspace,
                              workspace_bytes, targets);
}
