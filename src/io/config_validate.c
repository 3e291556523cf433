/* Configuration validation: every key's own type/range/support rule re-checked on the
 * struct (so a config edited in code is caught too) and the cross-field rules that no
 * single key can check: batch sizes, the z interval of the ODE, the network's resolution
 * ladder, GroupNorm group counts, the perturbation's exponent range, the RK45-only step
 * control. Errors name the key and, when known, the file and line (or --set) where the
 * offending value was given. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/config_internal.h"
#include "util/check.h"

/* Re-checks one key through the same conversion the reader uses, so messages match. */
static pfgm_status recheck_key(const pfgm_config *cfg, const pfgm_cfg_key *k,
                               const pfgm_cfg_origin *o) {
    pfgm_config scratch;
    pfgm_cfg_value v;
    char text[PFGM_CONFIG_PATH_MAX + 8];
    char items[PFGM_CONFIG_LIST_MAX][32];
    memset(&v, 0, sizeof v);
    v.line = o ? o->line : 0;
    if (k->type == PFGM_CFG_INT_LIST) {
        const pfgm_int_list *l = (const pfgm_int_list *)(const void *)((const char *)cfg + k->offset);
        if (l->n > PFGM_CONFIG_LIST_MAX)
            return pfgm_cfg_error(o ? o->origin : NULL, v.line, k->full, "has %zu entries (at most %d)",
                                  l->n, PFGM_CONFIG_LIST_MAX);
        v.is_list = true;
        v.n_items = l->n;
        for (size_t i = 0; i < l->n; i++) {
            snprintf(items[i], sizeof items[i], "%lld", (long long)l->v[i]);
            v.items[i] = (pfgm_cfg_scalar){items[i], strlen(items[i]), false, false, v.line};
        }
    } else {
        pfgm_cfg_format(cfg, k, text, sizeof text);
        v.scalar = (pfgm_cfg_scalar){text, strlen(text), pfgm_cfg_is_free_string(k), false, v.line};
    }
    /* apply() only reads v; the texts above are not owned, so v is not freed. */
    return pfgm_cfg_apply(&scratch, k, &v, o ? o->origin : NULL);
}

/* The key given last among the up to three involved keys (NULL for fewer), with its origin;
 * the first key when none was given. */
static const pfgm_cfg_key *pick(const pfgm_cfg_origin *origins, const char *const names[3],
                                const pfgm_cfg_origin **o) {
    const pfgm_cfg_key *best = NULL;
    *o = NULL;
    for (int i = 0; i < 3; i++) {
        if (!names[i]) continue;
        const char *dot = strchr(names[i], '.');
        char sec[32];
        const pfgm_cfg_key *k;
        if (dot) {
            snprintf(sec, sizeof sec, "%.*s", (int)(dot - names[i]), names[i]);
            k = pfgm_cfg_find(sec, dot + 1);
        } else {
            k = pfgm_cfg_find(NULL, names[i]);
        }
        if (!k) continue;
        const pfgm_cfg_origin *ko = origins ? &origins[pfgm_cfg_index(k)] : NULL;
        if (!best) { best = k; *o = (ko && ko->origin) ? ko : NULL; }
        if (ko && ko->origin && (!*o || ko->seq > (*o)->seq)) { best = k; *o = ko; }
    }
    return best;
}

static pfgm_status fail(const pfgm_cfg_origin *origins, const char *a, const char *b, const char *c,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static pfgm_status fail(const pfgm_cfg_origin *origins, const char *a, const char *b, const char *c,
                        const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const pfgm_cfg_origin *o;
    const char *const names[3] = {a, b, c};
    const pfgm_cfg_key *k = pick(origins, names, &o);
    return pfgm_cfg_error(o ? o->origin : NULL, o ? o->line : 0, k ? k->full : a, "%s", msg);
}

static void list_text(const pfgm_int_list *l, char *buf, size_t n) {
    size_t used = (size_t)snprintf(buf, n, "[");
    for (size_t i = 0; i < l->n && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%lld", i ? ", " : "", (long long)l->v[i]);
    if (used < n) snprintf(buf + used, n - used, "]");
}

/* The network: a ladder of len(ch_mult) resolutions image_size, image_size/2, ... (§3.2). */
static pfgm_status check_network(const pfgm_config *c, const pfgm_cfg_origin *o) {
    const pfgm_config_model *m = &c->model;
    int64_t size = c->data.image_size;
    size_t levels = m->ch_mult.n;
    int64_t step = INT64_C(1) << (levels - 1);
    char buf[160];
    if (size % step != 0) {
        list_text(&m->ch_mult, buf, sizeof buf);
        return fail(o, "data.image_size", "model.ch_mult", NULL,
                    "data.image_size %lld is not divisible by 2^(len(model.ch_mult)-1) = %lld "
                    "(model.ch_mult %s has %zu levels)",
                    (long long)size, (long long)step, buf, levels);
    }
    for (size_t i = 0; i < m->attn_resolutions.n; i++) {
        int64_t r = m->attn_resolutions.v[i];
        bool found = false;
        for (size_t l = 0; l < levels; l++) found |= (size >> l) == r;
        if (!found) {
            size_t used = 0;
            buf[0] = '\0';
            for (size_t l = 0; l < levels && used < sizeof buf; l++)
                used += (size_t)snprintf(buf + used, sizeof buf - used, "%s%lld", l ? ", " : "",
                                         (long long)(size >> l));
            return fail(o, "model.attn_resolutions", "data.image_size", "model.ch_mult",
                        "%lld is not a resolution of this network (%s)", (long long)r, buf);
        }
    }
    if (m->nf % 2 != 0)
        return fail(o, "model.nf", NULL, NULL, "%lld must be even (the z embedding uses nf/2 frequencies)",
                    (long long)m->nf);
    /* GroupNorm over C channels uses min(C/4, 32) groups (§3.1), which must divide C. */
    for (size_t l = 0; l <= levels; l++) {
        int64_t ch = m->nf * (l == levels ? 1 : m->ch_mult.v[l]);
        int64_t groups = ch / 4 < 32 ? ch / 4 : 32;
        if (groups < 1 || ch % groups != 0)
            return fail(o, "model.nf", "model.ch_mult", NULL,
                        "%lld channels (model.nf x model.ch_mult) cannot be split into "
                        "min(C/4, 32) = %lld GroupNorm groups",
                        (long long)ch, (long long)groups);
    }
    return PFGM_OK;
}

pfgm_status pfgm_cfg_validate_at(const pfgm_config *c, const pfgm_cfg_origin *o) {
    size_t n;
    const pfgm_cfg_key *keys = pfgm_cfg_keys(&n);
    for (size_t i = 0; i < n; i++) PFGM_TRY(recheck_key(c, &keys[i], o ? &o[i] : NULL));

    if (c->data.channels != 1 && c->data.channels != 3)
        return fail(o, "data.channels", NULL, NULL, "%lld is not supported (1 or 3 channels)",
                    (long long)c->data.channels);
    PFGM_TRY(check_network(c, o));

    const pfgm_config_training *t = &c->training;
    if (t->small_batch_size > t->batch_size)
        return fail(o, "training.small_batch_size", "training.batch_size", NULL,
                    "training.small_batch_size (%lld) must not exceed training.batch_size (%lld): the "
                    "perturbed points are the first rows of the batch of charges",
                    (long long)t->small_batch_size, (long long)t->batch_size);
    if (t->restrict_M && (int64_t)(0.7 * (double)t->M) < 1)
        return fail(o, "training.M", "training.restrict_M", NULL,
                    "training.M = %lld leaves int(0.7*M) = 0 for training.restrict_M; use M >= 2 "
                    "or restrict_M: false",
                    (long long)t->M);
    double growth = pow(1.0 + t->tau, (double)t->M);
    if (!isfinite(growth) || !isfinite(growth * c->model.sigma_end * sqrt((double)pfgm_config_data_dim(c))))
        return fail(o, "training.M", "training.tau", "model.sigma_end",
                    "(1+training.tau)^training.M = (1+%g)^%lld overflows a double", t->tau,
                    (long long)t->M);

    const pfgm_config_sampling *s = &c->sampling;
    if (!(s->z_min < s->z_max))
        return fail(o, "sampling.z_min", "sampling.z_max", NULL,
                    "sampling.z_min (%g) must be below sampling.z_max (%g)", s->z_min, s->z_max);
    /* sampling.max_nfe: Euler and Heun know their NFE in advance (N, 2N - 1), so a cap
     * they would exceed is refused here rather than after N evaluations; RK45 needs 2 + 6
     * evaluations for its first step. */
    if (s->max_nfe > 0) {
        int64_t need = s->ode_solver == PFGM_SOLVER_FORWARD_EULER   ? s->N
                       : s->ode_solver == PFGM_SOLVER_IMPROVED_EULER ? 2 * s->N - 1
                                                                     : 8;
        if (need > s->max_nfe)
            return fail(o, "sampling.max_nfe", "sampling.ode_solver", "sampling.N",
                        "sampling.max_nfe = %lld is below the %lld network evaluations that sampling.ode_solver "
                        "= %s %s; raise sampling.max_nfe, lower sampling.N, or set sampling.max_nfe: 0 (no cap)",
                        (long long)s->max_nfe, (long long)need, pfgm_config_solver_name(s->ode_solver),
                        s->ode_solver == PFGM_SOLVER_RK45 ? "needs for one step (2 + 6)" : "takes with sampling.N");
    }
    if (s->rk45_step_control != PFGM_STEP_BATCH && s->ode_solver != PFGM_SOLVER_RK45)
        return fail(o, "sampling.rk45_step_control", "sampling.ode_solver", NULL,
                    "sampling.rk45_step_control: per_sample applies to sampling.ode_solver: rk45 only (got %s, "
                    "whose steps are a fixed grid)",
                    pfgm_config_solver_name(s->ode_solver));
    return PFGM_OK;
}

pfgm_status pfgm_config_validate(const pfgm_config *cfg) {
    if (!cfg) return pfgm_error(PFGM_ERR_INVALID_ARG, "pfgm_config_validate: cfg is NULL");
    return pfgm_cfg_validate_at(cfg, NULL);
}
