/* Configuration keys: the table that names every key with its type, field, range and the
 * authors' values and keys pfgm does not implement; the defaults (the authors' CIFAR-10
 * DDPM++ values, PFGM_SPEC.md §2); conversion of YAML scalars to typed values with strict rules; the
 * cross-field validation; comparison. The libyaml side is config_yaml.c. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/config_internal.h"
#include "pfgm/dataset.h"
#include "util/check.h"

/* ---- key table ------------------------------------------------------------------------ */

#define OFF(f) offsetof(pfgm_config, f)
#define SZ(f) sizeof(((pfgm_config *)0)->f)
#define FULL(sec, key) sec "." key
#define K_INT(sec, key, f, lo, hi) \
    { sec, key, FULL(sec, key), PFGM_CFG_INT, OFF(f), SZ(f), .imin = (lo), .imax = (hi) }
#define K_INT_ONLY(sec, key, f, lo, hi)                                                     \
    { sec, key, FULL(sec, key), PFGM_CFG_INT, OFF(f), SZ(f), .imin = (lo), .imax = (hi), \
      .int_support_only = true }
#define K_FLT(sec, key, f, lo, hi, fl) \
    { sec, key, FULL(sec, key), PFGM_CFG_FLOAT, OFF(f), SZ(f), .fmin = (lo), .fmax = (hi), .fflags = (fl) }
#define K_BOOL(sec, key, f, sup) \
    { sec, key, FULL(sec, key), PFGM_CFG_BOOL, OFF(f), SZ(f), .bool_support = (sup) }
#define K_STR(sec, key, f) { sec, key, FULL(sec, key), PFGM_CFG_STR, OFF(f), SZ(f), .imin = 0 }
#define K_CHOICE(sec, key, f, nm, nsup) \
    { sec, key, FULL(sec, key), PFGM_CFG_STR, OFF(f), SZ(f), .names = (nm), .n_supported = (nsup) }
#define K_ENUM(sec, key, f, nm) \
    { sec, key, FULL(sec, key), PFGM_CFG_ENUM, OFF(f), SZ(f), .names = (nm), .n_supported = 1000 }
#define K_LIST(sec, key, f, lo, hi, nmin)                                                     \
    { sec, key, FULL(sec, key), PFGM_CFG_INT_LIST, OFF(f), SZ(f), .imin = (lo), .imax = (hi), \
      .list_min = (nmin) }
/* Inert keys (pfgm_cfg_key.inert): only the default, the authors' value, is accepted. */
#define K_BOOL_INERT(sec, key, f, why) \
    { sec, key, FULL(sec, key), PFGM_CFG_BOOL, OFF(f), SZ(f), .inert = (why) }
#define K_LIST_INERT(sec, key, f, lo, hi, nmin, why)                                          \
    { sec, key, FULL(sec, key), PFGM_CFG_INT_LIST, OFF(f), SZ(f), .imin = (lo), .imax = (hi), \
      .list_min = (nmin), .inert = (why) }
/* An authors' key that pfgm will read once `what` is implemented: no field, always refused. */
#define K_LATER(sec, key, what) { sec, key, FULL(sec, key), PFGM_CFG_LATER, 0, 0, .later = (what) }

#define BIG INT64_C(1000000000000)  /* 1e12: bound on step counts */
/* Batch sizes are row counts of GEMMs, whose dimensions cuBLAS and OpenBLAS (blasint) take
 * as int. */
#define BATCH_MAX ((int64_t)INT_MAX)
#define OPEN_MIN PFGM_CFG_MIN_OPEN
#define OPEN_MAX PFGM_CFG_MAX_OPEN

/* Choice lists: supported values first, then the authors' values pfgm rejects. */
static const char *const model_names[] = {"ncsnpp", "ddpm", "ncsn", "ncsnv2", NULL};
static const char *const resblock_names[] = {"biggan", "ddpm", NULL};
static const char *const progressive_names[] = {"none", "output_skip", "residual", NULL};
static const char *const progressive_input_names[] = {"none", "input_skip", "residual", NULL};
static const char *const combine_names[] = {"sum", "cat", NULL};
static const char *const attention_names[] = {"ddpm", NULL};
static const char *const norm_names[] = {"GroupNorm", "InstanceNorm", "InstanceNorm++",
                                         "VarianceNorm", NULL};
static const char *const nonlin_names[] = {"swish", "elu", "relu", "lrelu", NULL};
static const char *const sde_names[] = {"poisson", "vpsde", "subvpsde", "vesde", NULL};
static const char *const method_names[] = {"ode", "pc", NULL};
static const char *const optimizer_names[] = {"Adam", NULL};
/* Enums: index = C enum value. */
static const char *const embedding_names[] = {"positional", "fourier", NULL};
static const char *const solver_names[] = {"rk45", "forward_euler", "improved_euler", NULL};
static const char *const step_control_names[] = {"batch", "per_sample", NULL};
static const char *const reference_names[] = {"local", "global", NULL};
static const char *const backend_names[] = {"cpu", "cuda", NULL};
static const char *const level_names[] = {"debug", "info", "warn", "error", NULL};

static const pfgm_cfg_key keys[] = {
    {NULL, "seed", "seed", PFGM_CFG_INT, OFF(seed), SZ(seed), .imin = 0, .imax = INT64_C(4294967295)},

    K_STR("data", "path", data.path),
    K_STR("data", "dataset", data.dataset),
    K_INT("data", "image_size", data.image_size, 1, 16384),
    K_INT("data", "channels", data.channels, 1, 3),
    K_BOOL("data", "random_flip", data.random_flip, PFGM_CFG_BOOL_BOTH),
    K_BOOL("data", "centered", data.centered, PFGM_CFG_BOOL_ONLY_TRUE),
    K_INT("data", "block_images", data.block_images, 0, 1000000),
    K_INT("data", "shuffle_window", data.shuffle_window, 1, 1000000),
    K_INT("data", "cache_mb", data.cache_mb, 1, 1048576),
    K_BOOL("data", "prefetch", data.prefetch, PFGM_CFG_BOOL_BOTH),

    K_CHOICE("model", "name", model.name, model_names, 1),
    K_FLT("model", "sigma_end", model.sigma_end, 0.0, INFINITY, OPEN_MIN),
    K_INT("model", "nf", model.nf, 4, 4096),
    K_LIST("model", "ch_mult", model.ch_mult, 1, 64, 1),
    K_INT("model", "num_res_blocks", model.num_res_blocks, 1, 64),
    K_LIST("model", "attn_resolutions", model.attn_resolutions, 1, 16384, 0),
    K_FLT("model", "dropout", model.dropout, 0.0, 1.0, OPEN_MAX),
    K_ENUM("model", "embedding_type", model.embedding_type, embedding_names),
    K_FLT("model", "fourier_scale", model.fourier_scale, 0.0, INFINITY, OPEN_MIN),
    K_FLT("model", "ema_rate", model.ema_rate, 0.0, 1.0, OPEN_MAX),
    K_CHOICE("model", "resblock_type", model.resblock_type, resblock_names, 1),
    K_BOOL("model", "skip_rescale", model.skip_rescale, PFGM_CFG_BOOL_BOTH),
    K_FLT("model", "init_scale", model.init_scale, 0.0, INFINITY, 0),
    K_INT_ONLY("model", "conv_size", model.conv_size, 3, 3),
    K_BOOL_INERT("model", "resamp_with_conv", model.resamp_with_conv,
                 "it selects the resampling of the DDPM-style blocks and of the progressive paths, "
                 "which pfgm does not build (the BigGAN blocks resample without a convolution)"),
    K_BOOL("model", "fir", model.fir, PFGM_CFG_BOOL_ONLY_FALSE),
    K_LIST_INERT("model", "fir_kernel", model.fir_kernel, 1, 1000000, 1,
                 "the FIR taps are used only with model.fir: true, which pfgm does not support"),
    K_CHOICE("model", "progressive", model.progressive, progressive_names, 1),
    K_CHOICE("model", "progressive_input", model.progressive_input, progressive_input_names, 1),
    K_CHOICE("model", "progressive_combine", model.progressive_combine, combine_names, 1),
    K_CHOICE("model", "attention_type", model.attention_type, attention_names, 1),
    K_CHOICE("model", "normalization", model.normalization, norm_names, 1),
    K_CHOICE("model", "nonlinearity", model.nonlinearity, nonlin_names, 1),
    K_BOOL("model", "scale_by_sigma", model.scale_by_sigma, PFGM_CFG_BOOL_ONLY_FALSE),
    K_BOOL("model", "conditional", model.conditional, PFGM_CFG_BOOL_ONLY_TRUE),

    K_CHOICE("training", "sde", training.sde, sde_names, 1),
    K_INT("training", "batch_size", training.batch_size, 1, BATCH_MAX),
    K_INT("training", "small_batch_size", training.small_batch_size, 1, BATCH_MAX),
    K_INT("training", "n_iters", training.n_iters, 1, BIG),
    K_INT("training", "snapshot_freq", training.snapshot_freq, 1, BIG),
    K_INT("training", "snapshot_freq_for_preemption", training.snapshot_freq_for_preemption, 1, BIG),
    K_INT("training", "log_freq", training.log_freq, 1, BIG),
    K_INT("training", "max_skipped", training.max_skipped, 0, BIG),
    K_INT("training", "M", training.M, 1, 100000),
    K_FLT("training", "tau", training.tau, 0.0, INFINITY, OPEN_MIN),
    K_FLT("training", "gamma", training.gamma, 0.0, INFINITY, 0),
    K_BOOL("training", "restrict_M", training.restrict_M, PFGM_CFG_BOOL_BOTH),
    K_BOOL("training", "reduce_mean", training.reduce_mean, PFGM_CFG_BOOL_BOTH),

    K_CHOICE("sampling", "method", sampling.method, method_names, 1),
    K_ENUM("sampling", "ode_solver", sampling.ode_solver, solver_names),
    K_INT("sampling", "N", sampling.N, 1, 1000000),
    K_FLT("sampling", "z_max", sampling.z_max, 0.0, INFINITY, OPEN_MIN),
    K_FLT("sampling", "z_min", sampling.z_min, 0.0, INFINITY, OPEN_MIN),
    K_FLT("sampling", "upper_norm", sampling.upper_norm, 1.0, INFINITY, 0),
    K_FLT("sampling", "z_exp", sampling.z_exp, 0.0, INFINITY, 0),
    K_FLT("sampling", "rk45_rtol", sampling.rk45_rtol, 0.0, 1.0, OPEN_MIN | OPEN_MAX),
    K_FLT("sampling", "rk45_atol", sampling.rk45_atol, 0.0, INFINITY, OPEN_MIN),
    K_ENUM("sampling", "rk45_step_control", sampling.rk45_step_control, step_control_names),
    K_INT("sampling", "batch_size", sampling.batch_size, 1, BATCH_MAX),
    K_INT("sampling", "max_nfe", sampling.max_nfe, 0, 1000000000),

    K_CHOICE("optim", "optimizer", optim.optimizer, optimizer_names, 1),
    K_FLT("optim", "lr", optim.lr, 0.0, INFINITY, OPEN_MIN),
    K_FLT("optim", "beta1", optim.beta1, 0.0, 1.0, OPEN_MAX),
    K_FLT("optim", "beta2", optim.beta2, 0.0, 1.0, OPEN_MAX),
    K_FLT("optim", "eps", optim.eps, 0.0, INFINITY, OPEN_MIN),
    K_FLT("optim", "weight_decay", optim.weight_decay, 0.0, INFINITY, 0),
    K_INT("optim", "warmup", optim.warmup, 0, BIG),
    K_FLT("optim", "grad_clip", optim.grad_clip, 0.0, INFINITY, 0),

    K_ENUM("field", "reference", field.reference, reference_names),

    K_INT("checkpoint", "keep_last", checkpoint.keep_last, 1, 1000000),
    K_INT("checkpoint", "keep_every", checkpoint.keep_every, 0, BIG),

    K_ENUM("distributed", "backend", distributed.backend, backend_names),
    K_BOOL("distributed", "allow_tf32", distributed.allow_tf32, PFGM_CFG_BOOL_BOTH),
    K_BOOL("distributed", "bf16", distributed.bf16, PFGM_CFG_BOOL_ONLY_FALSE),
    K_FLT("distributed", "bucket_mb", distributed.bucket_mb, 0.0, 4096.0, 0),
    K_INT("distributed", "zero", distributed.zero, 0, 1),

    K_ENUM("logging", "level", logging.level, level_names),
    K_STR("logging", "metrics", logging.metrics),
};
#define N_KEYS (sizeof keys / sizeof keys[0])

/* The authors' keys of features pfgm does not implement yet. Any setting in a file or by
 * --set is refused, the emitter writes none of them, and they are never suggested for a typo.
 * Their indices (pfgm_cfg_index) follow the table's; the files in configs/ keep the authors'
 * values in comments. */
static const pfgm_cfg_key later_keys[] = {
    K_LATER("training", "eval_freq", "evaluation"),
    K_LATER("eval", "batch_size", "evaluation"),
    K_LATER("eval", "num_samples", "evaluation"),
};
#define N_LATER (sizeof later_keys / sizeof later_keys[0])
_Static_assert(N_KEYS + N_LATER <= PFGM_CFG_MAX_KEYS, "raise PFGM_CFG_MAX_KEYS");

static const char *const sections[] = {"data", "model", "training", "sampling", "optim", "eval",
                                       "field", "checkpoint", "distributed", "logging", NULL};

const pfgm_cfg_key *pfgm_cfg_keys(size_t *n) { *n = N_KEYS; return keys; }
const char *const *pfgm_cfg_sections(void) { return sections; }
size_t pfgm_cfg_index(const pfgm_cfg_key *k) {
    return k->type == PFGM_CFG_LATER ? N_KEYS + (size_t)(k - later_keys) : (size_t)(k - keys);
}

const pfgm_cfg_key *pfgm_cfg_find(const char *section, const char *name) {
    for (size_t i = 0; i < N_KEYS; i++) {
        const pfgm_cfg_key *k = &keys[i];
        bool sec_eq = section ? (k->section && strcmp(k->section, section) == 0) : !k->section;
        if (sec_eq && strcmp(k->name, name) == 0) return k;
    }
    for (size_t i = 0; i < N_LATER; i++) {
        const pfgm_cfg_key *k = &later_keys[i];
        if (section && strcmp(k->section, section) == 0 && strcmp(k->name, name) == 0) return k;
    }
    return NULL;
}

bool pfgm_cfg_is_section(const char *name) {
    for (size_t i = 0; sections[i]; i++)
        if (strcmp(sections[i], name) == 0) return true;
    return false;
}

bool pfgm_cfg_is_free_string(const pfgm_cfg_key *k) { return k->type == PFGM_CFG_STR && !k->names; }

const char *pfgm_cfg_type_phrase(const pfgm_cfg_key *k) {
    switch (k->type) {
    case PFGM_CFG_INT: return "an integer";
    case PFGM_CFG_FLOAT: return "a number";
    case PFGM_CFG_BOOL: return "a boolean (true or false)";
    case PFGM_CFG_STR: return k->names ? "a name" : "a string";
    case PFGM_CFG_ENUM: return "a name";
    case PFGM_CFG_INT_LIST: return "a list of integers such as [1, 2, 2]";
    case PFGM_CFG_LATER: break;
    }
    return "a value";
}

void pfgm_cfg_value_free(pfgm_cfg_value *v) {
    free(v->scalar.text);
    for (size_t i = 0; i < v->n_items; i++) free(v->items[i].text);
    memset(v, 0, sizeof *v);
}

/* ---- enum names ------------------------------------------------------------------------ */

const char *pfgm_config_solver_name(pfgm_config_solver s) {
    return (unsigned)s < 3 ? solver_names[s] : "?";
}

/* ---- defaults -------------------------------------------------------------------------- */

static void set_str(char *dst, size_t size, const char *src) {
    memset(dst, 0, size);
    snprintf(dst, size, "%s", src);
}

static void set_list(pfgm_int_list *l, size_t n, const int64_t *v) {
    memset(l, 0, sizeof *l);
    l->n = n;
    memcpy(l->v, v, n * sizeof *v);
}

void pfgm_config_defaults(pfgm_config *c) {
    memset(c, 0, sizeof *c);
    c->seed = 49;
    set_str(c->data.path, sizeof c->data.path, "data/cifar10_train.h5");
    set_str(c->data.dataset, sizeof c->data.dataset, "CIFAR10");
    c->data.image_size = 32;
    c->data.channels = 3;
    c->data.random_flip = true;
    c->data.centered = true;
    c->data.block_images = 0;
    c->data.shuffle_window = PFGM_DATASET_DEFAULT_WINDOW;
    c->data.cache_mb = PFGM_DATASET_DEFAULT_CACHE_MB;
    c->data.prefetch = true;

    pfgm_config_model *m = &c->model;
    set_str(m->name, sizeof m->name, "ncsnpp");
    m->sigma_end = 0.01;
    m->nf = 128;
    set_list(&m->ch_mult, 4, (const int64_t[]){1, 2, 2, 2});
    m->num_res_blocks = 4;
    set_list(&m->attn_resolutions, 1, (const int64_t[]){16});
    m->dropout = 0.1;
    m->embedding_type = PFGM_EMBEDDING_POSITIONAL;
    m->fourier_scale = 16.0;
    m->ema_rate = 0.9999;
    set_str(m->resblock_type, sizeof m->resblock_type, "biggan");
    m->skip_rescale = true;
    m->init_scale = 0.0;
    m->conv_size = 3;
    m->resamp_with_conv = true;
    m->fir = false;
    set_list(&m->fir_kernel, 4, (const int64_t[]){1, 3, 3, 1});
    set_str(m->progressive, sizeof m->progressive, "none");
    set_str(m->progressive_input, sizeof m->progressive_input, "none");
    set_str(m->progressive_combine, sizeof m->progressive_combine, "sum");
    set_str(m->attention_type, sizeof m->attention_type, "ddpm");
    set_str(m->normalization, sizeof m->normalization, "GroupNorm");
    set_str(m->nonlinearity, sizeof m->nonlinearity, "swish");
    m->scale_by_sigma = false;
    m->conditional = true;

    pfgm_config_training *t = &c->training;
    set_str(t->sde, sizeof t->sde, "poisson");
    t->batch_size = 4096;
    t->small_batch_size = 128;
    t->n_iters = 1300001;
    t->snapshot_freq = 50000;
    t->snapshot_freq_for_preemption = 10000;
    t->log_freq = 50;
    t->max_skipped = 10;
    t->M = 291;
    t->tau = 0.03;
    t->gamma = 5.0;
    t->restrict_M = true;
    t->reduce_mean = false;

    pfgm_config_sampling *s = &c->sampling;
    set_str(s->method, sizeof s->method, "ode");
    s->ode_solver = PFGM_SOLVER_RK45;
    s->N = 100;
    s->z_max = 40.0;
    s->z_min = 1e-3;
    s->upper_norm = 3000.0;
    s->z_exp = 5.0;
    s->rk45_rtol = 1e-4;
    s->rk45_atol = 1e-4;
    s->rk45_step_control = PFGM_STEP_BATCH;
    s->batch_size = 64;
    s->max_nfe = 0;

    pfgm_config_optim *o = &c->optim;
    set_str(o->optimizer, sizeof o->optimizer, "Adam");
    o->lr = 2e-4;
    o->beta1 = 0.9;
    o->beta2 = 0.999;
    o->eps = 1e-8;
    o->weight_decay = 0.0;
    o->warmup = 5000;
    o->grad_clip = 1.0;

    c->field.reference = PFGM_FIELD_LOCAL;
    c->checkpoint.keep_last = 3;
    c->checkpoint.keep_every = 50000;
    c->distributed.backend = PFGM_BACKEND_CPU;
    c->distributed.allow_tf32 = false;
    c->distributed.bf16 = false;
    c->distributed.bucket_mb = 25.0;
    c->distributed.zero = 1;
    c->logging.level = PFGM_LOG_INFO;
    set_str(c->logging.metrics, sizeof c->logging.metrics, "metrics.jsonl");
}

int64_t pfgm_config_data_dim(const pfgm_config *cfg) {
    return cfg->data.channels * cfg->data.image_size * cfg->data.image_size;
}

/* ---- messages and hints ------------------------------------------------------------------ */

pfgm_status pfgm_cfg_error(const char *origin, int line, const char *key, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *o = origin ? origin : "config";
    if (line > 0) return pfgm_error(PFGM_ERR_CONFIG, "%s:%d: %s: %s", o, line, key, msg);
    return pfgm_error(PFGM_ERR_CONFIG, "%s: %s: %s", o, key, msg);
}

/* Levenshtein distance, case-insensitive when fold; strings are short names. */
static size_t edit_distance(const char *a, const char *b, bool fold) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return (size_t)-1 / 2;
    size_t row[64];
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            int ca = (unsigned char)a[i - 1], cb = (unsigned char)b[j - 1];
            if (fold) { ca = tolower(ca); cb = tolower(cb); }
            size_t best = diag + (ca != cb);
            if (row[j] + 1 < best) best = row[j] + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = row[j];
            row[j] = best;
        }
    }
    return row[lb];
}

/* Edits a name of n characters may hold and still count as a typo of a known name (edits
 * ignore case: keys are case-sensitive, so `training.m` is unknown, and a typo of training.M). */
static size_t typo_budget(size_t n) { return n <= 3 ? 1 : (n / 3 < 2 ? 2 : n / 3); }

/* How a candidate ranks: `d` the edits from what was typed (the better of the last
 * component against the key's name and the whole dotted name against section.key), `s` how
 * far the typed section is from the candidate's (SEC_FAR beyond a typo's budget). */
typedef struct suggest_rank {
    size_t d, s;
} suggest_rank;
#define SEC_FAR ((size_t)1000)
#define SUGGEST_MAX 3 /* more equally near names than this make no useful hint */

static int rank_cmp(suggest_rank a, suggest_rank b) {
    if (a.d != b.d) return a.d < b.d ? -1 : 1;
    return a.s < b.s ? -1 : a.s > b.s;
}

/* Keeps the candidates of the best rank seen so far: the first SUGGEST_MAX in table order,
 * and how many there are in all. */
static void suggest_offer(suggest_rank r, const char *name, suggest_rank *best, const char **pick,
                          size_t *n_best) {
    int c = *n_best ? rank_cmp(r, *best) : -1;
    if (c > 0) return;
    if (c < 0) {
        *best = r;
        *n_best = 0;
    }
    if (*n_best < SUGGEST_MAX) pick[*n_best] = name;
    ++*n_best;
}

void pfgm_cfg_suggest(const char *section, const char *name, char *buf, size_t n) {
    char typed[160];
    snprintf(typed, sizeof typed, "%s%s%s", section ? section : "", section ? "." : "", name);
    /* Every key `section.key` is a candidate wherever it lives: the typo gets the same budget
     * whether or not the typed section holds the key (training.lr -> optim.lr,
     * optim.ema_rtae -> model.ema_rate). Among equally near names, the typed section (or a
     * typo of it) wins; names equally near in unrelated sections are listed (up to three). */
    suggest_rank best = {0, 0};
    const char *pick[SUGGEST_MAX];
    size_t n_best = 0;
    for (size_t i = 0; i < N_KEYS; i++) {
        const pfgm_cfg_key *k = &keys[i];
        suggest_rank r = {edit_distance(name, k->name, true), SEC_FAR};
        size_t d_full = edit_distance(typed, k->full, true);
        if (d_full < r.d) r.d = d_full;
        if (!section && !k->section) r.s = 0;
        if (section && k->section) {
            size_t ds = edit_distance(section, k->section, true);
            if (ds <= typo_budget(strlen(section))) r.s = ds;
        }
        suggest_offer(r, k->full, &best, pick, &n_best);
    }
    if (!section) /* a top-level name may be a misspelt section */
        for (size_t i = 0; sections[i]; i++)
            suggest_offer((suggest_rank){edit_distance(name, sections[i], true), 0}, sections[i],
                          &best, pick, &n_best);
    if (n) buf[0] = '\0';
    size_t len = strlen(name); /* a typo keeps something of the name: "y" is not "M" */
    if (!n_best || n_best > SUGGEST_MAX || best.d > typo_budget(len) || best.d >= len) return;
    size_t used = (size_t)snprintf(buf, n, " (did you mean ");
    for (size_t i = 0; i < n_best && used < n; i++) {
        const char *sep = i == 0 ? "" : i + 1 == n_best ? " or " : ", ";
        used += (size_t)snprintf(buf + used, n - used, "%s%s", sep, pick[i]);
    }
    if (used < n) snprintf(buf + used, n - used, "?)");
}

/* " (did you mean X?)" among a key's allowed names. */
static void suggest_name(const pfgm_cfg_key *k, const char *text, char *buf, size_t n) {
    size_t best = (size_t)-1;
    const char *pick = NULL;
    for (size_t i = 0; k->names[i]; i++) {
        size_t d = edit_distance(text, k->names[i], true);
        if (d < best) { best = d; pick = k->names[i]; }
    }
    if (pick && best <= 2) snprintf(buf, n, " (did you mean %s?)", pick);
    else buf[0] = '\0';
}

static void list_names(const pfgm_cfg_key *k, size_t from, size_t to, char *buf, size_t n) {
    buf[0] = '\0';
    for (size_t i = from; i < to && k->names[i]; i++) {
        size_t used = strlen(buf);
        snprintf(buf + used, n - used, "%s%s", i > from ? ", " : "", k->names[i]);
    }
}

/* ---- scalar conversion ------------------------------------------------------------------- */

static bool is_decimal_int(const char *s) {
    if (*s == '+' || *s == '-') s++;
    if (!isdigit((unsigned char)*s)) return false;
    while (isdigit((unsigned char)*s)) s++;
    return *s == '\0';
}

/* Decimal float syntax: [sign] (digits [. digits*] | . digits) [e|E [sign] digits]. */
static bool is_decimal_float(const char *s) {
    if (*s == '+' || *s == '-') s++;
    size_t digits = 0;
    while (isdigit((unsigned char)*s)) { s++; digits++; }
    if (*s == '.') {
        s++;
        while (isdigit((unsigned char)*s)) { s++; digits++; }
    }
    if (digits == 0) return false;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-') s++;
        if (!isdigit((unsigned char)*s)) return false;
        while (isdigit((unsigned char)*s)) s++;
    }
    return *s == '\0';
}

static bool is_yaml11_bool(const char *s) {
    static const char *const words[] = {"yes", "no", "on", "off", "y", "n", NULL};
    for (size_t i = 0; words[i]; i++) {
        size_t j = 0;
        while (words[i][j] && tolower((unsigned char)s[j]) == words[i][j]) j++;
        if (!words[i][j] && !s[j]) return true;
    }
    return false;
}

static void range_text(const pfgm_cfg_key *k, char *buf, size_t n) {
    if (k->type == PFGM_CFG_FLOAT) {
        bool lo = isfinite(k->fmin), hi = isfinite(k->fmax);
        bool lo_open = k->fflags & PFGM_CFG_MIN_OPEN, hi_open = k->fflags & PFGM_CFG_MAX_OPEN;
        if (lo && hi)
            snprintf(buf, n, "must be in %c%g, %g%c", lo_open ? '(' : '[', k->fmin, k->fmax,
                     hi_open ? ')' : ']');
        else if (lo) snprintf(buf, n, "must be %s %g", lo_open ? ">" : ">=", k->fmin);
        else snprintf(buf, n, "must be %s %g", hi_open ? "<" : "<=", k->fmax);
    } else {
        snprintf(buf, n, "must be in [%lld, %lld]", (long long)k->imin, (long long)k->imax);
    }
}

static pfgm_status to_int(const pfgm_cfg_key *k, const pfgm_cfg_scalar *s, const char *origin,
                          int64_t lo, int64_t hi, const char *what, int64_t *out) {
    if (s->quoted)
        return pfgm_cfg_error(origin, s->line, k->full, "expected %s, got the quoted string \"%s\"",
                              what, s->text);
    if (!is_decimal_int(s->text))
        return pfgm_cfg_error(origin, s->line, k->full, "expected %s, got '%s'", what, s->text);
    errno = 0;
    long long v = strtoll(s->text, NULL, 10); /* base 10: "010" is ten, never octal */
    if (errno == ERANGE || v < lo || v > hi) {
        if (k->int_support_only)
            return pfgm_cfg_error(origin, s->line, k->full, "%s is not supported by pfgm (only %lld)",
                                  s->text, (long long)lo);
        return pfgm_cfg_error(origin, s->line, k->full, "%s is out of range (must be in [%lld, %lld])",
                              s->text, (long long)lo, (long long)hi);
    }
    *out = (int64_t)v;
    return PFGM_OK;
}

static pfgm_status to_float(const pfgm_cfg_key *k, const pfgm_cfg_scalar *s, const char *origin,
                            double *out) {
    if (s->quoted)
        return pfgm_cfg_error(origin, s->line, k->full,
                              "expected a number, got the quoted string \"%s\" (remove the quotes)",
                              s->text);
    if (!is_decimal_float(s->text))
        return pfgm_cfg_error(origin, s->line, k->full, "expected a finite decimal number, got '%s'",
                              s->text);
    errno = 0;
    double v = strtod(s->text, NULL);
    char range[96];
    range_text(k, range, sizeof range);
    /* ERANGE with a subnormal result is a representable value; overflow or total underflow
     * is not */
    if (!isfinite(v) || (errno == ERANGE && v == 0.0))
        return pfgm_cfg_error(origin, s->line, k->full, "%s is out of range of a double", s->text);
    bool lo_open = k->fflags & PFGM_CFG_MIN_OPEN, hi_open = k->fflags & PFGM_CFG_MAX_OPEN;
    if ((lo_open ? v <= k->fmin : v < k->fmin) || (hi_open ? v >= k->fmax : v > k->fmax))
        return pfgm_cfg_error(origin, s->line, k->full, "%s is out of range (%s)", s->text, range);
    *out = v;
    return PFGM_OK;
}

static pfgm_status to_bool(const pfgm_cfg_key *k, const pfgm_cfg_scalar *s, const char *origin,
                           bool *out) {
    const char *t = s->text;
    bool is_true = !strcmp(t, "true") || !strcmp(t, "True") || !strcmp(t, "TRUE");
    bool is_false = !strcmp(t, "false") || !strcmp(t, "False") || !strcmp(t, "FALSE");
    if (s->quoted)
        return pfgm_cfg_error(origin, s->line, k->full,
                              "expected a boolean (true or false), got the quoted string \"%s\"", t);
    if (!is_true && !is_false) {
        if (is_yaml11_bool(t))
            return pfgm_cfg_error(origin, s->line, k->full,
                                  "'%s' is not a boolean here (write true or false)", t);
        return pfgm_cfg_error(origin, s->line, k->full, "expected a boolean (true or false), got '%s'", t);
    }
    if (k->bool_support == PFGM_CFG_BOOL_ONLY_FALSE && is_true)
        return pfgm_cfg_error(origin, s->line, k->full, "true is not supported by pfgm (only false)");
    if (k->bool_support == PFGM_CFG_BOOL_ONLY_TRUE && is_false)
        return pfgm_cfg_error(origin, s->line, k->full, "false is not supported by pfgm (only true)");
    *out = is_true;
    return PFGM_OK;
}

/* Index of the name in k->names, after the checks for unsupported and unknown names. */
static pfgm_status to_name(const pfgm_cfg_key *k, const pfgm_cfg_scalar *s, const char *origin,
                           size_t *index) {
    char list[256], hint[96];
    for (size_t i = 0; k->names[i]; i++) {
        if (strcmp(s->text, k->names[i]) != 0) continue;
        if (i >= k->n_supported) {
            list_names(k, 0, k->n_supported, list, sizeof list);
            return pfgm_cfg_error(origin, s->line, k->full,
                                  "'%s' is not supported by pfgm (supported: %s)", s->text, list);
        }
        *index = i;
        return PFGM_OK;
    }
    list_names(k, 0, (size_t)-1, list, sizeof list);
    suggest_name(k, s->text, hint, sizeof hint);
    return pfgm_cfg_error(origin, s->line, k->full, "unknown value '%s' (expected one of: %s)%s",
                          s->text, list, hint);
}

/* pfgm_cfg_apply without the LATER and inert rules. */
static pfgm_status apply_typed(pfgm_config *cfg, const pfgm_cfg_key *k, const pfgm_cfg_value *v,
                               const char *origin) {
    char *field = (char *)cfg + k->offset;
    if (k->type == PFGM_CFG_INT_LIST) {
        if (!v->is_list) {
            if (v->scalar.null)
                return pfgm_cfg_error(origin, v->line, k->full, "no value (expected %s)",
                                      pfgm_cfg_type_phrase(k));
            return pfgm_cfg_error(origin, v->line, k->full, "expected %s, got '%s'",
                                  pfgm_cfg_type_phrase(k), v->scalar.text);
        }
        if (v->n_items < k->list_min)
            return pfgm_cfg_error(origin, v->line, k->full, "must have at least %zu entr%s",
                                  k->list_min, k->list_min == 1 ? "y" : "ies");
        pfgm_int_list l;
        memset(&l, 0, sizeof l);
        for (size_t i = 0; i < v->n_items; i++)
            PFGM_TRY(to_int(k, &v->items[i], origin, k->imin, k->imax, "an integer entry", &l.v[i]));
        l.n = v->n_items;
        memcpy(field, &l, sizeof l);
        return PFGM_OK;
    }
    if (v->is_list)
        return pfgm_cfg_error(origin, v->line, k->full, "expected %s, got a list",
                              pfgm_cfg_type_phrase(k));
    const pfgm_cfg_scalar *s = &v->scalar;
    if (s->null)
        return pfgm_cfg_error(origin, s->line, k->full, "no value (expected %s)", pfgm_cfg_type_phrase(k));
    switch (k->type) {
    case PFGM_CFG_INT: {
        int64_t x = 0;
        PFGM_TRY(to_int(k, s, origin, k->imin, k->imax, "an integer", &x));
        memcpy(field, &x, sizeof x);
        return PFGM_OK;
    }
    case PFGM_CFG_FLOAT: {
        double x = 0.0;
        PFGM_TRY(to_float(k, s, origin, &x));
        memcpy(field, &x, sizeof x);
        return PFGM_OK;
    }
    case PFGM_CFG_BOOL: {
        bool x = false;
        PFGM_TRY(to_bool(k, s, origin, &x));
        memcpy(field, &x, sizeof x);
        return PFGM_OK;
    }
    case PFGM_CFG_ENUM: {
        size_t i = 0;
        PFGM_TRY(to_name(k, s, origin, &i));
        int x = (int)i;
        memcpy(field, &x, sizeof x);
        return PFGM_OK;
    }
    case PFGM_CFG_STR:
        if (k->names) {
            size_t i;
            PFGM_TRY(to_name(k, s, origin, &i));
        }
        if (s->len == 0 || memchr(s->text, '\0', s->len) || memchr(s->text, '\n', s->len))
            return pfgm_cfg_error(origin, s->line, k->full, "must be a non-empty single-line string");
        if (s->len >= k->size)
            return pfgm_cfg_error(origin, s->line, k->full, "too long (%zu bytes, at most %zu)", s->len,
                                  k->size - 1);
        set_str(field, k->size, s->text);
        return PFGM_OK;
    case PFGM_CFG_INT_LIST:
    case PFGM_CFG_LATER: break;
    }
    return pfgm_error(PFGM_ERR_INTERNAL, "%s: unhandled key type", k->full);
}

/* The YAML text of k's value in cfg, lists included. */
static void value_text(const pfgm_config *cfg, const pfgm_cfg_key *k, char *buf, size_t n) {
    if (k->type != PFGM_CFG_INT_LIST) {
        pfgm_cfg_format(cfg, k, buf, n);
        return;
    }
    const pfgm_int_list *l = (const pfgm_int_list *)(const void *)((const char *)cfg + k->offset);
    size_t used = (size_t)snprintf(buf, n, "[");
    for (size_t i = 0; i < l->n && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%lld", i ? ", " : "", (long long)l->v[i]);
    if (used < n) snprintf(buf + used, n - used, "]");
}

/* Two rules keep an accepted key from being a no-op (config-reference.md, "Keys pfgm does
 * not implement"): a LATER key is refused whatever its value, and an inert key takes only its
 * default, the authors' value, so that their configs load while a change that pfgm's network
 * would ignore is refused. */
pfgm_status pfgm_cfg_apply(pfgm_config *cfg, const pfgm_cfg_key *k, const pfgm_cfg_value *v,
                           const char *origin) {
    if (k->type == PFGM_CFG_LATER) {
        bool by_set = origin && strcmp(origin, "--set") == 0;
        return pfgm_cfg_error(origin, v->line, k->full, "not implemented yet (%s: a later release); %s",
                              k->later, by_set ? "drop this --set" : "remove it from the config");
    }
    if (!k->inert) return apply_typed(cfg, k, v, origin);
    pfgm_config def, tmp;
    pfgm_config_defaults(&def);
    tmp = def;
    PFGM_TRY(apply_typed(&tmp, k, v, origin));
    const char *got = (const char *)&tmp + k->offset, *want = (const char *)&def + k->offset;
    if (memcmp(got, want, k->size) != 0) {
        char got_text[160], want_text[160];
        value_text(&tmp, k, got_text, sizeof got_text);
        value_text(&def, k, want_text, sizeof want_text);
        return pfgm_cfg_error(origin, v->line, k->full,
                              "%s would change nothing: %s; remove the key or write %s (the authors' "
                              "value)",
                              got_text, k->inert, want_text);
    }
    memcpy((char *)cfg + k->offset, got, k->size);
    return PFGM_OK;
}

/* ---- formatting and comparison ---------------------------------------------------------- */

/* Fewest significant digits that read back to the same double, always with a '.' or an
 * exponent so other YAML readers also see a float. */
static void format_double(double v, char *buf, size_t n) {
    if (v == floor(v) && fabs(v) < 1e15) { /* 40.0 rather than 4e+01 */
        snprintf(buf, n, "%.1f", v);
        return;
    }
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, n, "%.*g", p, v);
        if (strtod(buf, NULL) == v) break;
    }
    if (!strpbrk(buf, ".eE")) {
        size_t used = strlen(buf);
        snprintf(buf + used, n - used, ".0");
    }
}

void pfgm_cfg_format(const pfgm_config *cfg, const pfgm_cfg_key *k, char *buf, size_t n) {
    const char *field = (const char *)cfg + k->offset;
    switch (k->type) {
    case PFGM_CFG_INT: {
        int64_t x;
        memcpy(&x, field, sizeof x);
        snprintf(buf, n, "%lld", (long long)x);
        return;
    }
    case PFGM_CFG_FLOAT: {
        double x;
        memcpy(&x, field, sizeof x);
        format_double(x, buf, n);
        return;
    }
    case PFGM_CFG_BOOL: {
        bool x;
        memcpy(&x, field, sizeof x);
        snprintf(buf, n, "%s", x ? "true" : "false");
        return;
    }
    case PFGM_CFG_ENUM: {
        int x;
        memcpy(&x, field, sizeof x);
        size_t count = 0;
        while (k->names[count]) count++;
        snprintf(buf, n, "%s", (x >= 0 && (size_t)x < count) ? k->names[x] : "?");
        return;
    }
    case PFGM_CFG_STR: snprintf(buf, n, "%.*s", (int)k->size, field); return;
    case PFGM_CFG_INT_LIST: snprintf(buf, n, "[list]"); return;
    case PFGM_CFG_LATER: if (n) buf[0] = '\0'; return;
    }
}

bool pfgm_config_equal(const pfgm_config *a, const pfgm_config *b) {
    for (size_t i = 0; i < N_KEYS; i++) {
        const pfgm_cfg_key *k = &keys[i];
        const char *fa = (const char *)a + k->offset, *fb = (const char *)b + k->offset;
        if (k->type == PFGM_CFG_STR) {
            if (strncmp(fa, fb, k->size) != 0) return false;
        } else if (k->type == PFGM_CFG_INT_LIST) {
            const pfgm_int_list *la = (const pfgm_int_list *)(const void *)fa;
            const pfgm_int_list *lb = (const pfgm_int_list *)(const void *)fb;
            if (la->n != lb->n || memcmp(la->v, lb->v, la->n * sizeof la->v[0]) != 0) return false;
        } else if (memcmp(fa, fb, k->size) != 0) {
            return false;
        }
    }
    return true;
}
