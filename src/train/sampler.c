/* pfgm-sample's work (include/pfgm/sampler.h): the checkpoint to sample (a file, or the
 * newest complete one of a run directory), its EMA weights by the authors' names, the
 * prior per global batch, the backward ODE with the network as the field callback, and
 * the round-by-round all-gather of the batches that makes the result independent of the
 * world size. */
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

/* The ODE's field callback: one evaluation-mode forward of DDPM++ (spec §1.6). */
static pfgm_status network_field(void *user, int64_t B, const float *x, const float *z, float *v_x, float *v_z) {
    pfgm_ddpmpp *m = user;
    pfgm_backend *be = pfgm_ddpmpp_params(m)->be;
    const pfgm_ddpmpp_desc *d = pfgm_ddpmpp_get_desc(m);
    int64_t N = d->channels * d->image_size * d->image_size;
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
} sampler;

static void sampler_free(sampler *s) {
    if (s->x_dev) s->be->free(s->be, s->x_dev);
    free(s->host_weights);
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
    return PFGM_OK;
}

/* Global batch b of B samples: prior keyed {seed, 0, PRIOR, b}, one ODE solve, into
 * host[B, N]. The last, partial batch gets a solver sized for it. */
static pfgm_status solve_batch(sampler *s, uint32_t seed, int64_t b, int64_t B, float *host, pfgm_ode_stats *stats) {
    pfgm_backend *be = s->be;
    pfgm_rng r = {.seed = seed, .rank = 0, .stream = PFGM_STREAM_PRIOR, .step = (uint64_t)b};
    memset(stats, 0, sizeof *stats);
    PFGM_TRY(pfgm_prior_sample(be, &r, B, s->N, s->cfg->sampling.z_max, s->cfg->sampling.upper_norm, s->x_dev, NULL));
    if (B == s->Bs) {
        PFGM_TRY(pfgm_ode_solve(s->solver, s->x_dev, network_field, s->model, stats));
    } else {
        pfgm_ode_solver *small = NULL;
        PFGM_TRY(pfgm_ode_create(be, B, s->N, &s->oo, &small));
        pfgm_status st = pfgm_ode_solve(small, s->x_dev, network_field, s->model, stats);
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
            }
        }
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
