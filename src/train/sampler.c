/* pfgm-sample's work (include/pfgm/sampler.h): the checkpoint to sample (a file, or the
 * newest complete one of a run directory), its EMA weights by the authors' names, the
 * prior per global batch, the backward ODE with the network as the field callback, and
 * the round-by-round all-gather of the batches that makes the result independent of the
 * world size; in the field callback, rank 0's progress line and the sampling.max_nfe cap. */
#include "pfgm/sampler.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "pfgm/checkpoint.h"
#include "pfgm/ddpmpp.h"
#include "pfgm/ode.h"
#include "pfgm/prior.h"
#include "pfgm/progress.h"
#include "util/check.h"

/* Words of the per-batch header of the gather (float64, exact for these integers). */
enum { HDR_BATCH = 0, HDR_COUNT, HDR_NFE, HDR_GUARD, HDR_SECONDS, HDR_STATUS, HDR_WORDS };

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* 1 when the last path component looks like "<name>.tmp.<digits>" (pfgm_atomic_tmp_name). */
static int is_temporary_name(const char *path) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *t = strstr(base, ".tmp.");
    if (!t || t == base) return 0;
    t += 5;
    if (!*t) return 0;
    for (; *t; ++t)
        if (*t < '0' || *t > '9') return 0;
    return 1;
}

pfgm_status pfgm_sample_open_checkpoint(const char *path, const pfgm_logger *lg, pfgm_ckpt **out) {
    if (!path || !out) return pfgm_error(PFGM_ERR_INVALID_ARG, "checkpoint: NULL argument");
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return pfgm_error(PFGM_ERR_IO, "%s: cannot open checkpoint: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) {
        pfgm_ckpt_scan scan;
        PFGM_TRY(pfgm_ckpt_open_latest(path, 0, lg, out, &scan));
        if (*out) return PFGM_OK;
        if (scan.damaged == 0)
            return pfgm_error(PFGM_ERR_IO, "%s: no complete checkpoint in %s/checkpoints", path, path);
        return pfgm_error(PFGM_ERR_FORMAT, "%s: none of the %zu checkpoints in %s/checkpoints is usable (newest problem: %s)",
                          path, scan.damaged, path, scan.newest_problem);
    }
    if (is_temporary_name(path))
        return pfgm_error(PFGM_ERR_FORMAT, "%s: a temporary file of an unfinished checkpoint write, not a checkpoint",
                          path);
    /* a file named directly passes the same check as a run directory's candidates */
    PFGM_TRY(pfgm_ckpt_open(path, out));
    pfgm_status st = pfgm_ckpt_verify(*out);
    if (st != PFGM_OK) {
        pfgm_ckpt_close(*out);
        *out = NULL;
    }
    return st;
}

void pfgm_sample_partition(int64_t num, int64_t batch_size, int world, int rank, int64_t *first, int64_t *count) {
    *first = 0;
    *count = 0;
    if (num < 1 || batch_size < 1 || world < 1 || rank < 0 || rank >= world) return;
    int64_t nb = (num + batch_size - 1) / batch_size, base = nb / world, extra = nb % world;
    *count = base + (rank < extra ? 1 : 0);
    *first = rank * base + (rank < extra ? rank : extra);
}

/* The progress of rank 0's solves (pfgm_sample_draw's comment): what the field callback
 * needs to print a line and to enforce sampling.max_nfe. */
typedef struct progress {
    FILE *f;            /* NULL: no progress line (other ranks, or none asked for) */
    int tty, pending;   /* pending: an in-place line is on the terminal without its newline */
    double interval, t0, last;
    double lz_max, lz_min; /* ln z_max, ln z_min */
    int64_t batch, batches, B, nfe, max_nfe;
    int64_t done, mine, num; /* rank 0's samples finished and in all; all ranks' samples */
    float *z_host;      /* [Bs] the heights of the latest evaluation */
} progress;

static double t_fraction(const progress *p, double z) {
    double f = (p->lz_max - log(z)) / (p->lz_max - p->lz_min);
    return f < 0.0 ? 0.0 : f > 1.0 ? 1.0 : f;
}

static void progress_line(progress *p, double z, double now) {
    const double f = t_fraction(p, z), el = now - p->t0;
    const double F = p->mine > 0 ? ((double)p->done + (double)p->B * f) / (double)p->mine : 0.0;
    pfgm_sample_progress_report r = {.batch = p->batch + 1, .batches = p->batches, .nfe = p->nfe, .z = z,
                                     .t_fraction = f, .images_per_s = el > 0 ? (double)p->num * F / el : 0.0,
                                     .eta_s = F > 0 && el > 0 ? el * (1.0 - F) / F : -1.0};
    char line[256];
    pfgm_progress_emit(p->f, p->tty, pfgm_sample_progress_format(&r, line, sizeof line));
    p->pending = p->tty;
    p->last = now;
}

/* Ends an in-place line before other output (the batch log lines). */
static void progress_break(progress *p) {
    if (p->f && p->pending) pfgm_progress_finish(p->f, p->tty);
    p->pending = 0;
}

/* The largest height of the evaluation at z [B] (backend memory). */
static pfgm_status current_z(pfgm_backend *be, progress *p, int64_t B, const float *z, double *out) {
    PFGM_TRY(pfgm_backend_download(be, p->z_host, z, B));
    double m = 0.0;
    for (int64_t b = 0; b < B; ++b) m = (double)p->z_host[b] > m ? (double)p->z_host[b] : m;
    *out = m;
    return PFGM_OK;
}

/* The ODE's field callback: one evaluation-mode forward of DDPM++ (spec §1.6), counted
 * against sampling.max_nfe, with rank 0's progress line when one is due. */
typedef struct field_ctx {
    pfgm_ddpmpp *model;
    progress *prog;
} field_ctx;

static pfgm_status network_field(void *user, int64_t B, const float *x, const float *z, float *v_x, float *v_z) {
    field_ctx *fc = user;
    pfgm_ddpmpp *m = fc->model;
    progress *p = fc->prog;
    pfgm_backend *be = pfgm_ddpmpp_params(m)->be;
    const pfgm_ddpmpp_desc *d = pfgm_ddpmpp_get_desc(m);
    int64_t N = d->channels * d->image_size * d->image_size;
    if (p->max_nfe > 0 && p->nfe >= p->max_nfe) {
        double zc = 0.0;
        PFGM_TRY(current_z(be, p, B, z, &zc));
        return pfgm_error(PFGM_ERR_NUMERIC,
                          "batch %lld: sampling.max_nfe = %lld network evaluations reached at z = %.3g, before "
                          "z_min = %.3g (%.0f%% of the way in ln z); no samples written\n---> HINT: RK45's NFE "
                          "grows on a poorly trained model: raise sampling.max_nfe, loosen --rtol/--atol, or use "
                          "--solver heun --steps N (NFE 2N - 1) (docs/user-guide.md)",
                          (long long)(p->batch + 1), (long long)p->max_nfe, zc, exp(p->lz_min),
                          100.0 * t_fraction(p, zc));
    }
    p->nfe++;
    if (p->f) {
        double now = now_s();
        if (now - p->last >= p->interval) {
            double zc = 0.0;
            PFGM_TRY(current_z(be, p, B, z, &zc));
            progress_line(p, zc, now);
        }
    }
    const float *nx = NULL, *nz = NULL;
    PFGM_TRY(pfgm_ddpmpp_forward(m, B, x, z, NULL, &nx, &nz));
    PFGM_TRY(be->copy(be, v_x, nx, sizeof(float) * (size_t)(B * N), PFGM_COPY_D2D));
    PFGM_TRY(be->copy(be, v_z, nz, sizeof(float) * (size_t)B, PFGM_COPY_D2D));
    return PFGM_OK;
}

/* Rank 0: the checkpoint's EMA (or raw parameters), by the authors' names, into host[]
 * (laid out like the model's parameter buffer), through its open checkpoint. The other ranks
 * never open the file (retention may have removed it since rank 0 opened it): they receive
 * the weights from rank 0 (distribute_weights). */
static pfgm_status read_weights(pfgm_ddpmpp *m, pfgm_ckpt *ck, int use_params, float *host) {
    pfgm_nn_params *p = pfgm_ddpmpp_params(m);
    if (!ck) return pfgm_error(PFGM_ERR_INVALID_ARG, "sampler: rank 0 has no open checkpoint");
    pfgm_ckpt_tensor *t = calloc((size_t)p->n, sizeof *t);
    if (!t) return pfgm_error(PFGM_ERR_NOMEM, "out of memory loading weights");
    for (int i = 0; i < p->n; ++i) {
        const pfgm_nn_param *it = &p->items[i];
        t[i] = (pfgm_ckpt_tensor){.name = it->name, .ndim = it->ndim, .data = host + it->offset};
        for (int k = 0; k < it->ndim; ++k) t[i].shape[k] = it->shape[k];
    }
    pfgm_status st = pfgm_ckpt_read(ck, use_params ? "params" : "ema", t, (size_t)p->n);
    free(t);
    return st;
}

pfgm_ode_options pfgm_sample_ode_options(const pfgm_config *c) {
    pfgm_ode_options o = pfgm_ode_options_default();
    o.method = c->sampling.ode_solver == PFGM_SOLVER_FORWARD_EULER   ? PFGM_ODE_EULER
               : c->sampling.ode_solver == PFGM_SOLVER_IMPROVED_EULER ? PFGM_ODE_HEUN
                                                                   : PFGM_ODE_RK45;
    o.z_max = c->sampling.z_max;
    o.z_min = c->sampling.z_min;
    o.gamma = c->training.gamma;
    o.z_exp = c->sampling.z_exp;
    o.steps = c->sampling.N;
    o.rtol = c->sampling.rk45_rtol;
    o.atol = c->sampling.rk45_atol;
    o.per_sample_step = c->sampling.rk45_step_control == PFGM_STEP_PER_SAMPLE;
    o.z_replicas = c->data.image_size * c->data.image_size; /* the authors' (B, C+1, H, W) state */
    return o;
}

/* Everything one rank needs to solve its batches; allocated before the first one. */
typedef struct sampler {
    const pfgm_config *cfg;
    pfgm_backend *be;
    pfgm_ddpmpp *model;
    pfgm_ode_solver *solver; /* batches of Bs */
    pfgm_ode_options oo;
    int64_t Bs, N;
    float *x_dev;            /* [Bs, N] backend */
    float *host_weights;     /* the model's parameters on the host (rank 0 reads, all receive) */
    progress prog;
    field_ctx fc;
} sampler;

static void sampler_free(sampler *s) {
    if (s->x_dev) s->be->free(s->be, s->x_dev);
    free(s->host_weights);
    free(s->prog.z_host);
    pfgm_ode_destroy(s->solver);
    pfgm_ddpmpp_destroy(s->model);
}

/* One rank's set-up, without collectives (a failure is agreed on afterwards). */
static pfgm_status sampler_init(sampler *s, const pfgm_config *cfg, const pfgm_sample_options *o, pfgm_backend *be,
                                pfgm_comm *comm) {
    memset(s, 0, sizeof *s);
    s->cfg = cfg;
    s->be = be;
    s->N = pfgm_config_data_dim(cfg);
    s->Bs = cfg->sampling.batch_size < o->num_samples ? cfg->sampling.batch_size : o->num_samples;
    s->oo = pfgm_sample_ode_options(cfg);
    pfgm_ddpmpp_desc desc;
    PFGM_TRY(pfgm_ddpmpp_desc_from_config(cfg, &desc));
    PFGM_TRY(pfgm_ddpmpp_create(be, &desc, s->Bs, PFGM_DDPMPP_INFER, &s->model));
    const pfgm_nn_params *p = pfgm_ddpmpp_params(s->model);
    s->host_weights = calloc((size_t)p->floats, sizeof(float));
    if (!s->host_weights)
        return pfgm_error(PFGM_ERR_NOMEM, "sampler: cannot allocate %lld floats of weights", (long long)p->floats);
    if (!comm || comm->rank == 0) PFGM_TRY(read_weights(s->model, o->checkpoint, o->use_params, s->host_weights));
    PFGM_TRY(pfgm_ode_create(be, s->Bs, s->N, &s->oo, &s->solver));
    PFGM_TRY(be->alloc(be, sizeof(float) * (size_t)(s->Bs * s->N), (void **)&s->x_dev));
    s->prog.z_host = calloc((size_t)s->Bs, sizeof(float));
    if (!s->prog.z_host) return pfgm_error(PFGM_ERR_NOMEM, "sampler: out of memory");
    s->prog.f = (!comm || comm->rank == 0) ? o->progress : NULL;
    s->prog.tty = o->progress_tty;
    s->prog.interval = o->progress_interval_s > 0 ? o->progress_interval_s : 0.0;
    s->prog.lz_max = log(cfg->sampling.z_max);
    s->prog.lz_min = log(cfg->sampling.z_min);
    s->prog.max_nfe = cfg->sampling.max_nfe;
    s->fc = (field_ctx){.model = s->model, .prog = &s->prog};
    return PFGM_OK;
}

/* Global batch b of B samples: prior keyed {seed, 0, PRIOR, b}, one ODE solve, into
 * host[B, N]. The last, partial batch gets a solver sized for it. */
static pfgm_status solve_batch(sampler *s, uint32_t seed, int64_t b, int64_t B, float *host, pfgm_ode_stats *stats) {
    pfgm_backend *be = s->be;
    pfgm_rng r = {.seed = seed, .rank = 0, .stream = PFGM_STREAM_PRIOR, .step = (uint64_t)b};
    memset(stats, 0, sizeof *stats);
    s->prog.batch = b;
    s->prog.B = B;
    s->prog.nfe = 0;
    PFGM_TRY(pfgm_prior_sample(be, &r, B, s->N, s->cfg->sampling.z_max, s->cfg->sampling.upper_norm, s->x_dev, NULL));
    if (B == s->Bs) {
        PFGM_TRY(pfgm_ode_solve(s->solver, s->x_dev, network_field, &s->fc, stats));
    } else {
        pfgm_ode_solver *small = NULL;
        PFGM_TRY(pfgm_ode_create(be, B, s->N, &s->oo, &small));
        pfgm_status st = pfgm_ode_solve(small, s->x_dev, network_field, &s->fc, stats);
        pfgm_ode_destroy(small);
        PFGM_TRY(st);
    }
    return pfgm_backend_download(be, host, s->x_dev, B * s->N);
}

/* All-gather of the header words and of the padded batch; NULL comm: one process. */
static pfgm_status gather(pfgm_comm *comm, const double *hdr, double *hdr_all, const float *send, float *recv,
                          size_t count) {
    if (!comm || comm->world_size == 1) {
        memcpy(hdr_all, hdr, sizeof(double) * HDR_WORDS);
        memcpy(recv, send, sizeof(float) * count);
        return PFGM_OK;
    }
    PFGM_TRY(comm->allgather(comm, hdr, hdr_all, HDR_WORDS, PFGM_F64));
    return comm->allgather(comm, send, recv, count, PFGM_F32);
}

/* Every rank learns that rank `failed_rank` failed with `failed` in the same round; one more
 * all-gather carries that rank's message, so each rank returns the same status and text. */
static pfgm_status share_failure(pfgm_comm *comm, pfgm_status failed, int failed_rank, const char *my_error) {
    if (!comm || comm->world_size == 1) return pfgm_error(failed, "%s", my_error);
    enum { MSG = 512 };
    char mine[MSG];
    char *all = malloc((size_t)MSG * (size_t)comm->world_size);
    if (!all) return pfgm_error(failed, "sampling failed on rank %d", failed_rank);
    memset(mine, 0, sizeof mine);
    memcpy(mine, my_error, strnlen(my_error, MSG - 1));
    pfgm_status st = comm->allgather(comm, mine, all, MSG, PFGM_U8);
    if (st == PFGM_OK) {
        char *msg = all + (size_t)failed_rank * MSG;
        msg[MSG - 1] = '\0';
        st = pfgm_error(failed, "rank %d: %s", failed_rank, msg);
    }
    free(all);
    return st;
}

/* Every rank's set-up status (one int32 each, all-gathered): the first failing rank and its
 * status, or *failed_rank = -1. One process: its own status. */
static pfgm_status agree_setup(pfgm_comm *comm, pfgm_status mine, int *failed_rank, pfgm_status *failed) {
    *failed_rank = -1;
    *failed = PFGM_OK;
    if (!comm || comm->world_size == 1) {
        if (mine != PFGM_OK) {
            *failed_rank = 0;
            *failed = mine;
        }
        return PFGM_OK;
    }
    int32_t *all = malloc(sizeof(int32_t) * (size_t)comm->world_size), me = (int32_t)mine;
    if (!all) return pfgm_error(PFGM_ERR_NOMEM, "sampler: out of memory agreeing on the set-up");
    pfgm_status st = comm->allgather(comm, &me, all, 1, PFGM_I32);
    for (int r = 0; st == PFGM_OK && r < comm->world_size && *failed_rank < 0; ++r)
        if (all[r] != PFGM_OK) {
            *failed_rank = r;
            *failed = (pfgm_status)all[r];
        }
    free(all);
    return st;
}

/* Rank 0's host weights to every rank, then into each rank's model. */
static pfgm_status distribute_weights(sampler *s, pfgm_comm *comm) {
    pfgm_nn_params *p = pfgm_ddpmpp_params(s->model);
    if (comm && comm->world_size > 1)
        PFGM_TRY(comm->broadcast(comm, s->host_weights, (size_t)p->floats, PFGM_F32, 0));
    return pfgm_backend_upload(p->be, p->value, s->host_weights, p->floats);
}

pfgm_status pfgm_sample_draw(const pfgm_config *cfg, const pfgm_sample_options *o, pfgm_comm *comm, pfgm_backend *be,
                             const pfgm_logger *lg, float *x, pfgm_sample_result *res) {
    memset(res, 0, sizeof *res);
    res->failed_rank = -1;
    const int world = comm ? comm->world_size : 1, rank = comm ? comm->rank : 0;
    if (!o || o->num_samples < 1)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "number of samples must be >= 1, got %lld",
                          o ? (long long)o->num_samples : 0LL);
    if (rank == 0 && !x) return pfgm_error(PFGM_ERR_INVALID_ARG, "sampler: rank 0 needs an output buffer");
    if (cfg->sampling.batch_size < 1)
        return pfgm_error(PFGM_ERR_CONFIG, "sampling.batch_size must be >= 1, got %lld",
                          (long long)cfg->sampling.batch_size);

    sampler s;
    pfgm_status st = sampler_init(&s, cfg, o, be, comm);
    const int64_t Bs = s.Bs, N = s.N, num = o->num_samples;
    const int64_t nb = (num + Bs - 1) / Bs, rounds = (nb + world - 1) / world;
    int64_t first, mine;
    pfgm_sample_partition(num, Bs, world, rank, &first, &mine);
    const size_t slot = (size_t)(Bs * N);
    float *send = malloc(sizeof(float) * slot), *recv = malloc(sizeof(float) * slot * (size_t)world);
    double *hdr_all = malloc(sizeof(double) * HDR_WORDS * (size_t)world);
    if (st == PFGM_OK && (!send || !recv || !hdr_all))
        st = pfgm_error(PFGM_ERR_NOMEM, "sampler: cannot allocate the gather buffers (%lld ranks x %lld floats)",
                        (long long)world, (long long)slot);
    if (send) memset(send, 0, sizeof(float) * slot); /* padding sent by ranks without a batch */
    char my_error[1024] = "";
    pfgm_status my_status = st;
    if (st != PFGM_OK) snprintf(my_error, sizeof my_error, "%s", pfgm_error_message());
    res->nfe_min = INT64_MAX;
    /* The set-up's outcome on every rank is agreed before the weights travel: a failure is
     * every rank's result, with the failing rank's message. */
    if (send && recv && hdr_all) {
        int failed_rank = -1;
        pfgm_status failed = PFGM_OK;
        st = agree_setup(comm, my_status, &failed_rank, &failed);
        if (st == PFGM_OK && failed_rank >= 0) {
            st = share_failure(comm, failed, failed_rank, my_error);
            res->failed_rank = failed_rank;
            my_status = PFGM_OK; /* st carries it */
            goto done;
        }
        if (st == PFGM_OK) st = distribute_weights(&s, comm);
        if (st != PFGM_OK) goto done;
    }
    const double t0 = now_s();
    s.prog.t0 = s.prog.last = t0;
    s.prog.batches = nb;
    s.prog.num = num;
    s.prog.mine = mine * Bs < num - first * Bs ? mine * Bs : num - first * Bs; /* rank 0's samples */
    if (s.prog.mine < 0) s.prog.mine = 0;
    /* Round 0 also carries a failure of the set-up, so every rank learns of it. A rank that
     * could not allocate the gather buffers cannot take part and returns at once: its
     * caller must abort the job (pfgm-sample does). */
    if (!send || !recv || !hdr_all) goto done;
    for (int64_t j = 0; j < rounds; ++j) {
        double hdr[HDR_WORDS] = {-1, 0, 0, 0, 0, (double)my_status};
        if (my_status == PFGM_OK && j < mine) {
            int64_t b = first + j, B = num - b * Bs < Bs ? num - b * Bs : Bs;
            pfgm_ode_stats stats;
            double tb = now_s();
            pfgm_status sb = solve_batch(&s, o->seed, b, B, send, &stats);
            if (sb != PFGM_OK) {
                my_status = sb;
                snprintf(my_error, sizeof my_error, "%s", pfgm_error_message());
                hdr[HDR_STATUS] = (double)sb;
            } else {
                hdr[HDR_BATCH] = (double)b;
                hdr[HDR_COUNT] = (double)B;
                hdr[HDR_NFE] = (double)stats.nfe;
                hdr[HDR_GUARD] = (double)stats.rho_guard;
                hdr[HDR_SECONDS] = now_s() - tb;
                if (s.prog.f) { /* the batch's end: throttled, but always after rank 0's last batch */
                    double now = now_s();
                    s.prog.nfe = stats.nfe;
                    if (j == mine - 1 || now - s.prog.last >= s.prog.interval)
                        progress_line(&s.prog, s.cfg->sampling.z_min, now);
                }
                s.prog.done += B;
            }
        }
        progress_break(&s.prog);
        st = gather(comm, hdr, hdr_all, send, recv, slot);
        if (st != PFGM_OK) goto done;
        int failed_rank = -1;
        pfgm_status failed = PFGM_OK;
        for (int r = 0; r < world; ++r) {
            const double *h = hdr_all + (size_t)r * HDR_WORDS;
            if ((pfgm_status)h[HDR_STATUS] != PFGM_OK) {
                if (failed_rank < 0) {
                    failed_rank = r;
                    failed = (pfgm_status)h[HDR_STATUS];
                }
                continue;
            }
            if (h[HDR_BATCH] < 0) continue;
            int64_t b = (int64_t)h[HDR_BATCH], B = (int64_t)h[HDR_COUNT], nfe = (int64_t)h[HDR_NFE];
            if (x) memcpy(x + b * Bs * N, recv + (size_t)r * slot, sizeof(float) * (size_t)(B * N));
            res->batches++;
            res->nfe_total += nfe;
            res->nfe_min = nfe < res->nfe_min ? nfe : res->nfe_min;
            res->nfe_max = nfe > res->nfe_max ? nfe : res->nfe_max;
            res->rho_guard += (int64_t)h[HDR_GUARD];
            if (lg)
                pfgm_log_info(lg, "batch %lld/%lld (rank %d): %lld samples, NFE %lld, %.2f images/s",
                              (long long)(b + 1), (long long)nb, r, (long long)B, (long long)nfe,
                              h[HDR_SECONDS] > 0 ? (double)B / h[HDR_SECONDS] : 0.0);
        }
        if (failed_rank >= 0) {
            st = share_failure(comm, failed, failed_rank, my_error);
            res->failed_rank = failed_rank;
            goto done;
        }
    }
    res->samples = num;
    res->seconds = now_s() - t0;
    res->images_per_s = res->seconds > 0 ? (double)num / res->seconds : 0.0;
    res->mean_nfe = res->batches ? (double)res->nfe_total / (double)res->batches : 0.0;
    if (res->batches != nb)
        st = pfgm_error(PFGM_ERR_INTERNAL, "sampler: gathered %lld of %lld batches", (long long)res->batches,
                        (long long)nb);
done:
    if (st == PFGM_OK && my_status != PFGM_OK) st = pfgm_error(my_status, "%s", my_error);
    if (st != PFGM_OK) res->nfe_min = res->nfe_max = 0;
    free(send);
    free(recv);
    free(hdr_all);
    sampler_free(&s);
    return st;
}
