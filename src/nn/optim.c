/* The optimizer: warmup schedule, global-norm clipping, Adam and EMA on the flat parameter
 * and gradient buffers (include/pfgm/optim.h; PFGM_SPEC.md §1.13; docs/optimizer.md). The
 * element loops are backend ops (backend.h "optimizer" group); this file holds the host-side
 * scalars, the order of the four operations, and the state the checkpoint stores. */
#include "pfgm/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pfgm/ops.h"
#include "util/check.h"

struct pfgm_optim {
    pfgm_backend *be;
    pfgm_optim_hparams hp;
    int64_t n_params;
    pfgm_optim_range *ranges; /* trainable (sharded: owned) ranges, ascending */
    int64_t *state_off;       /* [n_ranges] where each range's state starts in m, v, ema */
    int64_t n_ranges;
    int sharded;              /* 1: state of the owned ranges only, packed in range order */
    int64_t state_floats;     /* floats of m, v and ema each: n_params, or the owned count */
    float *m, *v, *ema;       /* backend memory, state_floats floats each */
    int64_t updates;          /* optimizer steps taken */
};

void pfgm_optim_hparams_defaults(pfgm_optim_hparams *hp) {
    *hp = (pfgm_optim_hparams){.lr = 2e-4,
                               .beta1 = 0.9,
                               .beta2 = 0.999,
                               .eps = 1e-8,
                               .weight_decay = 0.0,
                               .warmup = 5000,
                               .grad_clip = 1.0,
                               .ema_rate = 0.9999};
}

pfgm_status pfgm_optim_hparams_check(const pfgm_optim_hparams *hp) {
    if (!hp) return pfgm_error(PFGM_ERR_INVALID_ARG, "optimizer: NULL hyper-parameters");
    if (!(hp->lr > 0.0) || !isfinite(hp->lr))
        return pfgm_error(PFGM_ERR_INVALID_ARG, "optimizer: optim.lr = %g, expected a finite value > 0", hp->lr);
    if (!(hp->beta1 >= 0.0 && hp->beta1 < 1.0))
        return pfgm_error(PFGM_ERR_INVALID_ARG, "optimizer: optim.beta1 = %g, expected 0 <= beta1 < 1", hp->beta1);
    if (!(hp->beta2 >= 0.0 && hp->beta2 < 1.0))
        return pfgm_error(PFGM_ERR_INVALID_ARG, "optimizer: optim.beta2 = %g, expected 0 <= beta2 < 1", hp->beta2);
    if (!(hp->eps > 0.0) || !isfinite(hp->eps))
        return pfgm_error(PFGM_ERR_INVALID_ARG, "optimizer: optim.eps = %g, expected a finite value > 0", hp->eps);
    if (!(hp->weight_decay >= 0.0) || !isfinite(hp->weight_decay))
        return pfgm_error(PFGM_ERR_INVALID_ARG, "optimizer: optim.weight_decay = %g, expected a finite value >= 0",
                          hp->weight_decay);
    if (hp->warmup < 0)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "optimizer: optim.warmup = %lld, expected >= 0 (0 = no warmup)",
                          (long long)hp->warmup);
    if (isnan(hp->grad_clip))
        return pfgm_error(PFGM_ERR_INVALID_ARG, "optimizer: optim.grad_clip is NaN (use 0 for no clipping)");
    if (!(hp->ema_rate >= 0.0 && hp->ema_rate <= 1.0))
        return pfgm_error(PFGM_ERR_INVALID_ARG, "optimizer: model.ema_rate = %g, expected 0 <= ema_rate <= 1",
                          hp->ema_rate);
    return PFGM_OK;
}

/* losses.py: g['lr'] = lr * np.minimum(step / warmup, 1.0), evaluated in double. */
double pfgm_optim_lr_at(const pfgm_optim_hparams *hp, int64_t step) {
    if (hp->warmup <= 0) return hp->lr;
    double frac = (double)step / (double)hp->warmup;
    return hp->lr * (frac < 1.0 ? frac : 1.0);
}

/* models/ema.py: num_updates += 1 first, then decay = min(decay, (1 + n) / (10 + n)). */
double pfgm_optim_ema_decay_at(double ema_rate, int64_t t) {
    double warm = (1.0 + (double)t) / (10.0 + (double)t);
    return ema_rate < warm ? ema_rate : warm;
}

static pfgm_status check_ranges(int64_t n_params, const pfgm_optim_range *r, int64_t n) {
    if (n < 0 || (n > 0 && !r))
        return pfgm_error(PFGM_ERR_INVALID_ARG, "optimizer: %lld trainable ranges with %s array", (long long)n,
                          r ? "an" : "a NULL");
    int64_t end = 0;
    for (int64_t i = 0; i < n; ++i) {
        if (r[i].count <= 0 || r[i].offset < end || r[i].offset > n_params - r[i].count)
            return pfgm_error(PFGM_ERR_INVALID_ARG,
                              "optimizer: trainable range %lld [%lld, +%lld) is empty, overlaps or is out of "
                              "order, or leaves the %lld parameters",
                              (long long)i, (long long)r[i].offset, (long long)r[i].count, (long long)n_params);
        end = r[i].offset + r[i].count;
    }
    return PFGM_OK;
}

static pfgm_status optim_create(pfgm_backend *be, const pfgm_optim_hparams *hp, int64_t n_params,
                                const float *params, const pfgm_optim_range *trainable, int64_t n_ranges,
                                int sharded, pfgm_optim **out) {
    if (!out) return pfgm_error(PFGM_ERR_INVALID_ARG, "optimizer: NULL output pointer");
    *out = NULL;
    if (!be) return pfgm_error(PFGM_ERR_INVALID_ARG, "optimizer: NULL backend");
    PFGM_TRY(pfgm_optim_hparams_check(hp));
    if (n_params <= 0 || !params)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "optimizer: %lld parameters%s", (long long)n_params,
                          params ? "" : " and a NULL parameter buffer");
    if ((uint64_t)n_params > SIZE_MAX / sizeof(float))
        return pfgm_error(PFGM_ERR_INVALID_ARG, "optimizer: %lld parameters overflow size_t", (long long)n_params);
    PFGM_TRY(check_ranges(n_params, trainable, n_ranges));
    if (!be->sumsq || !be->adam_update || !be->ema_update || !be->axpby)
        return pfgm_error(PFGM_ERR_UNSUPPORTED, "optimizer: backend '%s' lacks the optimizer ops", be->name);

    if (sharded && n_ranges < 1)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "optimizer: a shard needs at least one owned range");
    pfgm_status st = PFGM_OK;
    pfgm_optim *opt = calloc(1, sizeof *opt);
    int64_t nr = n_ranges > 0 ? n_ranges : 1;
    if (opt) {
        opt->ranges = calloc((size_t)nr, sizeof *opt->ranges);
        opt->state_off = calloc((size_t)nr, sizeof *opt->state_off);
    }
    if (!opt || !opt->ranges || !opt->state_off) {
        if (opt) free(opt->ranges);
        free(opt);
        return pfgm_error(PFGM_ERR_NOMEM, "optimizer: cannot allocate %lld ranges", (long long)nr);
    }
    opt->be = be;
    opt->hp = *hp;
    opt->n_params = n_params;
    opt->n_ranges = nr;
    opt->sharded = sharded;
    if (n_ranges > 0)
        memcpy(opt->ranges, trainable, (size_t)n_ranges * sizeof *trainable);
    else
        opt->ranges[0] = (pfgm_optim_range){0, n_params};
    opt->state_floats = sharded ? 0 : n_params;
    for (int64_t r = 0; r < nr; ++r) {
        opt->state_off[r] = sharded ? opt->state_floats : opt->ranges[r].offset;
        if (sharded) opt->state_floats += opt->ranges[r].count;
    }

    size_t bytes = (size_t)opt->state_floats * sizeof(float);
    PFGM_TRY_GOTO(be->alloc(be, bytes, (void **)&opt->m), fail);
    PFGM_TRY_GOTO(be->alloc(be, bytes, (void **)&opt->v), fail);
    PFGM_TRY_GOTO(be->alloc(be, bytes, (void **)&opt->ema), fail);
    PFGM_TRY_GOTO(be->memzero(be, opt->m, bytes), fail);
    PFGM_TRY_GOTO(be->memzero(be, opt->v, bytes), fail);
    if (!sharded) {
        PFGM_TRY_GOTO(be->copy(be, opt->ema, params, bytes, PFGM_COPY_D2D), fail);
    } else {
        for (int64_t r = 0; r < nr; ++r)
            PFGM_TRY_GOTO(be->copy(be, opt->ema + opt->state_off[r], params + opt->ranges[r].offset,
                                   (size_t)opt->ranges[r].count * sizeof(float), PFGM_COPY_D2D),
                          fail);
    }
    *out = opt;
    return PFGM_OK;
fail:
    pfgm_optim_destroy(opt);
    return pfgm_error_prefix(st, "optimizer: %lld parameters", (long long)n_params);
}

pfgm_status pfgm_optim_create(pfgm_backend *be, const pfgm_optim_hparams *hp, int64_t n_params,
                              const float *params, const pfgm_optim_range *trainable, int64_t n_ranges,
                              pfgm_optim **out) {
    return optim_create(be, hp, n_params, params, trainable, n_ranges, 0, out);
}

pfgm_status pfgm_optim_create_sharded(pfgm_backend *be, const pfgm_optim_hparams *hp, int64_t n_params,
                                      const float *params, const pfgm_optim_range *owned, int64_t n_owned,
                                      pfgm_optim **out) {
    return optim_create(be, hp, n_params, params, owned, n_owned, 1, out);
}

void pfgm_optim_destroy(pfgm_optim *opt) {
    if (!opt) return;
    if (opt->m) opt->be->free(opt->be, opt->m);
    if (opt->v) opt->be->free(opt->be, opt->v);
    if (opt->ema) opt->be->free(opt->be, opt->ema);
    free(opt->ranges);
    free(opt->state_off);
    free(opt);
}

/* Global L2 norm of the trainable gradients: per-range double sums added in range order. */
static pfgm_status grad_norm(pfgm_optim *opt, const float *grads, double *norm) {
    double total = 0.0;
    for (int64_t r = 0; r < opt->n_ranges; ++r) {
        double s = 0.0;
        PFGM_TRY(pfgm_op_sumsq(opt->be, opt->ranges[r].count, grads + opt->ranges[r].offset, &s));
        total += s;
    }
    *norm = sqrt(total);
    return PFGM_OK;
}

pfgm_status pfgm_optim_step(pfgm_optim *opt, float *params, float *grads, int64_t step,
                            pfgm_optim_stats *stats) {
    if (!opt || !params || !grads)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "optimizer step: NULL optimizer or buffer");
    double norm = 0.0;
    PFGM_TRY(grad_norm(opt, grads, &norm));
    return pfgm_optim_step_norm(opt, params, grads, step, norm, stats);
}

pfgm_status pfgm_optim_step_norm(pfgm_optim *opt, float *params, float *grads, int64_t step, double norm,
                                 pfgm_optim_stats *stats) {
    if (!opt || !params || !grads)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "optimizer step: NULL optimizer or buffer");
    if (step < 0) return pfgm_error(PFGM_ERR_INVALID_ARG, "optimizer step: step %lld < 0", (long long)step);
    pfgm_backend *be = opt->be;
    const pfgm_optim_hparams *hp = &opt->hp;

    /* spec §1.13 step 3: the warmup uses the 0-based training step. */
    double lr = pfgm_optim_lr_at(hp, step);

    /* step 4: torch.nn.utils.clip_grad_norm_(params, max_norm=grad_clip), with the norm of
     * all trainable gradients (the caller's when the state is sharded). */
    if (!isfinite(norm))
        return pfgm_error(PFGM_ERR_NUMERIC,
                          "optimizer step %lld: gradient norm is %g (NaN/Inf in the gradients); nothing updated",
                          (long long)step, norm);
    int clipped = 0;
    if (hp->grad_clip > 0.0) {
        double coef = hp->grad_clip / (norm + 1e-6);
        if (coef < 1.0) {
            clipped = 1;
            for (int64_t r = 0; r < opt->n_ranges; ++r) {
                float *g = grads + opt->ranges[r].offset;
                PFGM_TRY(pfgm_op_axpby(be, opt->ranges[r].count, (float)coef, g, 0.0f, g));
            }
        }
    }

    /* step 5: Adam, t = the per-parameter step count torch keeps (1 on the first step). */
    int64_t t = opt->updates + 1;
    for (int64_t r = 0; r < opt->n_ranges; ++r) {
        int64_t o = opt->ranges[r].offset, so = opt->state_off[r];
        PFGM_TRY(pfgm_op_adam_update(be, opt->ranges[r].count, lr, hp->beta1, hp->beta2, hp->eps, hp->weight_decay, t,
                                     params + o, grads + o, opt->m + so, opt->v + so));
    }

    /* step 6: EMA of the trainable parameters, decay from models/ema.py's num_updates. */
    double decay = pfgm_optim_ema_decay_at(hp->ema_rate, t);
    for (int64_t r = 0; r < opt->n_ranges; ++r) {
        int64_t o = opt->ranges[r].offset;
        PFGM_TRY(pfgm_op_ema_update(be, opt->ranges[r].count, decay, opt->ema + opt->state_off[r], params + o));
    }
    opt->updates = t;

    if (stats) *stats = (pfgm_optim_stats){.grad_norm = norm, .lr = lr, .ema_decay = decay, .clipped = clipped};
    return PFGM_OK;
}

int64_t pfgm_optim_updates(const pfgm_optim *opt) { return opt->updates; }
float *pfgm_optim_m(pfgm_optim *opt) { return opt->m; }
float *pfgm_optim_v(pfgm_optim *opt) { return opt->v; }
float *pfgm_optim_ema(pfgm_optim *opt) { return opt->ema; }

int64_t pfgm_optim_state_floats(const pfgm_optim *opt) { return opt->state_floats; }

const pfgm_optim_range *pfgm_optim_ranges(const pfgm_optim *opt, int64_t *n) {
    *n = opt->n_ranges;
    return opt->ranges;
}

/* host[offset of range r ..] <-> state[state_off[r] ..] for every range (sharded), or the
 * whole n_params (full). */
static pfgm_status state_transfer(pfgm_optim *opt, float *host, float *state, int up) {
    if (!opt->sharded)
        return up ? pfgm_backend_upload(opt->be, state, host, opt->n_params)
                  : pfgm_backend_download(opt->be, host, state, opt->n_params);
    for (int64_t r = 0; r < opt->n_ranges; ++r) {
        float *h = host + opt->ranges[r].offset, *d = state + opt->state_off[r];
        PFGM_TRY(up ? pfgm_backend_upload(opt->be, d, h, opt->ranges[r].count)
                    : pfgm_backend_download(opt->be, h, d, opt->ranges[r].count));
    }
    return PFGM_OK;
}

pfgm_status pfgm_optim_export(pfgm_optim *opt, float *m, float *v, float *ema, int64_t *updates) {
    if (!opt) return pfgm_error(PFGM_ERR_INVALID_ARG, "optimizer export: NULL optimizer");
    if (m) PFGM_TRY(state_transfer(opt, m, opt->m, 0));
    if (v) PFGM_TRY(state_transfer(opt, v, opt->v, 0));
    if (ema) PFGM_TRY(state_transfer(opt, ema, opt->ema, 0));
    if (updates) *updates = opt->updates;
    return PFGM_OK;
}

/* Index of the first NaN/Inf (or negative value, when nonneg) in x[n], or -1. */
static int64_t first_bad(const float *x, int64_t n, int nonneg) {
    for (int64_t i = 0; i < n; ++i)
        if (!isfinite(x[i]) || (nonneg && x[i] < 0.0f)) return i;
    return -1;
}

pfgm_status pfgm_optim_import(pfgm_optim *opt, const float *m, const float *v, const float *ema,
                              int64_t updates) {
    if (!opt || !m || !v || !ema)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "optimizer import: NULL optimizer or state array");
    if (updates < 0)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "optimizer import: update count %lld < 0", (long long)updates);
    const struct { const char *name; const float *x; int nonneg; } arr[3] = {
        {"adam m", m, 0}, {"adam v", v, 1}, {"ema", ema, 0}};
    for (int a = 0; a < 3; ++a) {
        for (int64_t r = 0; r < (opt->sharded ? opt->n_ranges : 1); ++r) {
            int64_t o = opt->sharded ? opt->ranges[r].offset : 0, n = opt->sharded ? opt->ranges[r].count : opt->n_params;
            int64_t i = first_bad(arr[a].x + o, n, arr[a].nonneg);
            if (i >= 0)
                return pfgm_error(PFGM_ERR_NUMERIC, "optimizer import: %s[%lld] = %g is %s", arr[a].name,
                                  (long long)(o + i), (double)arr[a].x[o + i],
                                  arr[a].nonneg ? "not a finite value >= 0" : "not finite");
        }
    }
    PFGM_TRY(state_transfer(opt, (float *)m, opt->m, 1));
    PFGM_TRY(state_transfer(opt, (float *)v, opt->v, 1));
    PFGM_TRY(state_transfer(opt, (float *)ema, opt->ema, 1));
    opt->updates = updates;
    return PFGM_OK;
}
