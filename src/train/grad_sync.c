/* Gradient buckets overlapped with the backward pass, and ZeRO-1 shards
 * (include/pfgm/grad_sync.h). */
#include "pfgm/grad_sync.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pfgm/ops.h"
#include "util/check.h"

typedef struct bucket {
    int64_t lo, hi;     /* [lo, hi) of the parameter buffer */
    pfgm_comm_req *req; /* started collective, NULL before and after */
} bucket;

struct pfgm_grad_sync {
    pfgm_grad_sync_setup set;
    int W, rank, comm_on; /* comm_on: W > 1 */
    int64_t T;            /* trainable prefix (floats) */
    bucket *b;
    int nb, next;         /* next: the first bucket not started in this step */
    double local;         /* this step's local sum of squares so far */
    pfgm_optim_range *owned;
    int64_t n_owned;
    double *blocks;       /* [T / PFGM_GRAD_BLOCK] block sums of squares (host) */
};

int64_t pfgm_grad_sync_param_multiple(int world_size) {
    return (int64_t)(world_size > 1 ? world_size : 1) * PFGM_GRAD_BLOCK;
}

void pfgm_grad_sync_destroy(pfgm_grad_sync *gs) {
    if (!gs) return;
    for (int i = 0; i < gs->nb; ++i) /* an error path left a collective running: complete it */
        if (gs->b[i].req) gs->set.dcomm->wait(gs->set.dcomm, gs->b[i].req);
    free(gs->b);
    free(gs->owned);
    free(gs->blocks);
    free(gs);
}

pfgm_status pfgm_grad_sync_create(const pfgm_grad_sync_setup *setup, pfgm_grad_sync **out) {
    *out = NULL;
    if (!setup || !setup->be || !setup->params)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "gradient sync: NULL backend or parameters");
    if (!(setup->bucket_mb >= 0.0) || !isfinite(setup->bucket_mb))
        return pfgm_error(PFGM_ERR_INVALID_ARG, "gradient sync: distributed.bucket_mb = %g, expected >= 0",
                          setup->bucket_mb);
    if (setup->zero != 0 && setup->zero != 1)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "gradient sync: distributed.zero = %d, expected 0 or 1", setup->zero);
    const int W = setup->dcomm ? setup->dcomm->world_size : 1;
    const int64_t unit = pfgm_grad_sync_param_multiple(W), T = setup->params->trainable_floats;
    if (T <= 0 || T % unit)
        return pfgm_error(PFGM_ERR_INVALID_ARG,
                          "gradient sync: the trainable prefix (%lld floats) is not a positive multiple of %lld "
                          "(build the model with param_multiple = pfgm_grad_sync_param_multiple(%d))",
                          (long long)T, (long long)unit, W);
    if (W > 1 && setup->zero && !setup->comm)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "gradient sync: ZeRO needs the host communicator");
    pfgm_grad_sync *gs = calloc(1, sizeof *gs);
    if (!gs) return pfgm_error(PFGM_ERR_NOMEM, "gradient sync: out of memory");
    gs->set = *setup;
    gs->W = W;
    gs->rank = setup->dcomm ? setup->dcomm->rank : 0;
    gs->comm_on = W > 1;
    gs->T = T;

    /* bucket size: bucket_mb MiB of floats, rounded down to the unit, at least one unit;
     * 0 (or more than the prefix): one bucket */
    int64_t S = T;
    if (setup->bucket_mb > 0.0) {
        double floats = setup->bucket_mb * 1048576.0 / sizeof(float);
        S = floats >= (double)T ? T : (int64_t)floats / unit * unit;
        if (S < unit) S = unit;
    }
    /* MPI and NCCL counts: keep a bucket's elements within int */
    const int64_t cap = (int64_t)0x7fffffff / unit * unit;
    if (S > cap) S = cap;
    gs->nb = (int)((T + S - 1) / S);
    gs->b = calloc((size_t)gs->nb, sizeof *gs->b);
    gs->blocks = malloc((size_t)(T / PFGM_GRAD_BLOCK) * sizeof *gs->blocks);
    const int sharded = W > 1 && setup->zero;
    gs->n_owned = sharded ? gs->nb : 1;
    gs->owned = calloc((size_t)gs->n_owned, sizeof *gs->owned);
    if (!gs->b || !gs->blocks || !gs->owned) {
        pfgm_grad_sync_destroy(gs);
        return pfgm_error(PFGM_ERR_NOMEM, "gradient sync: out of memory for %lld floats", (long long)T);
    }
    for (int i = 0; i < gs->nb; ++i) {
        int64_t hi = T - (int64_t)i * S;
        gs->b[i].lo = hi - S > 0 ? hi - S : 0;
        gs->b[i].hi = hi;
    }
    if (sharded) {
        /* this rank's block of each bucket, ascending: bucket nb-1 sits lowest */
        for (int i = 0; i < gs->nb; ++i) {
            const bucket *k = &gs->b[gs->nb - 1 - i];
            const int64_t piece = (k->hi - k->lo) / W;
            gs->owned[i] = (pfgm_optim_range){k->lo + (int64_t)gs->rank * piece, piece};
        }
    } else {
        gs->owned[0] = (pfgm_optim_range){0, T};
    }
    *out = gs;
    return PFGM_OK;
}

const pfgm_optim_range *pfgm_grad_sync_owned(const pfgm_grad_sync *gs, int64_t *n) {
    *n = gs->n_owned;
    return gs->owned;
}

int pfgm_grad_sync_buckets(const pfgm_grad_sync *gs) { return gs->nb; }

void pfgm_grad_sync_bucket(const pfgm_grad_sync *gs, int i, int64_t *lo, int64_t *hi) {
    *lo = gs->b[i].lo;
    *hi = gs->b[i].hi;
}

void pfgm_grad_sync_begin(pfgm_grad_sync *gs) {
    gs->next = 0;
    gs->local = 0.0;
}

/* This rank's sum of squares of the bucket, then its collective. */
static pfgm_status start_bucket(pfgm_grad_sync *gs, int i) {
    bucket *k = &gs->b[i];
    float *g = gs->set.params->grad + k->lo;
    const int64_t n = k->hi - k->lo;
    double s = 0.0;
    PFGM_TRY(pfgm_op_sumsq(gs->set.be, n, g, &s));
    gs->local += s;
    if (!gs->comm_on) return PFGM_OK;
    pfgm_comm *c = gs->set.dcomm;
    pfgm_status st = gs->set.zero ? c->ireduce_scatter(c, g, (size_t)(n / gs->W), PFGM_F32, PFGM_REDUCE_AVG, &k->req)
                                  : c->iallreduce(c, g, (size_t)n, PFGM_F32, PFGM_REDUCE_AVG, &k->req);
    if (st != PFGM_OK)
        return pfgm_error_prefix(st, "gradient bucket %d [%lld, %lld)", i, (long long)k->lo, (long long)k->hi);
    return PFGM_OK;
}

pfgm_status pfgm_grad_sync_ready(pfgm_grad_sync *gs, int64_t ready_from) {
    if (gs->set.bucket_mb <= 0.0) return PFGM_OK;
    while (gs->next < gs->nb && gs->b[gs->next].lo >= ready_from) PFGM_TRY(start_bucket(gs, gs->next++));
    if (gs->comm_on) PFGM_TRY(gs->set.dcomm->progress(gs->set.dcomm));
    return PFGM_OK;
}

pfgm_status pfgm_grad_sync_finish(pfgm_grad_sync *gs, double *local_sumsq) {
    pfgm_status st = PFGM_OK;
    while (st == PFGM_OK && gs->next < gs->nb) st = start_bucket(gs, gs->next++);
    /* wait for every started collective, even after an error, so none is left running */
    for (int i = 0; i < gs->nb; ++i) {
        if (!gs->b[i].req) continue;
        pfgm_status w = gs->set.dcomm->wait(gs->set.dcomm, gs->b[i].req);
        gs->b[i].req = NULL;
        if (st == PFGM_OK && w != PFGM_OK) st = pfgm_error_prefix(w, "gradient bucket %d", i);
    }
    if (local_sumsq) *local_sumsq = gs->local;
    return st;
}

pfgm_status pfgm_grad_sync_norm(pfgm_grad_sync *gs, double *norm) {
    const int64_t nblk = gs->T / PFGM_GRAD_BLOCK;
    const float *g = gs->set.params->grad;
    if (gs->comm_on && gs->set.zero) {
        memset(gs->blocks, 0, (size_t)nblk * sizeof *gs->blocks);
        for (int64_t r = 0; r < gs->n_owned; ++r)
            PFGM_TRY(pfgm_op_sumsq_blocks(gs->set.be, gs->owned[r].count, g + gs->owned[r].offset, PFGM_GRAD_BLOCK,
                                          gs->blocks + gs->owned[r].offset / PFGM_GRAD_BLOCK));
        pfgm_status st = gs->set.comm->allreduce(gs->set.comm, gs->blocks, (size_t)nblk, PFGM_F64, PFGM_REDUCE_SUM);
        if (st != PFGM_OK) return pfgm_error_prefix(st, "gradient norm: exchange of the block sums");
    } else {
        PFGM_TRY(pfgm_op_sumsq_blocks(gs->set.be, gs->T, g, PFGM_GRAD_BLOCK, gs->blocks));
    }
    double total = 0.0;
    for (int64_t k = 0; k < nblk; ++k) total += gs->blocks[k];
    *norm = sqrt(total);
    return PFGM_OK;
}

pfgm_status pfgm_grad_sync_gather_params(pfgm_grad_sync *gs) {
    if (!gs->comm_on || !gs->set.zero) return PFGM_OK;
    pfgm_comm *c = gs->set.dcomm;
    pfgm_status st = PFGM_OK;
    for (int i = 0; i < gs->nb && st == PFGM_OK; ++i) {
        bucket *k = &gs->b[i];
        st = c->iallgather(c, gs->set.params->value + k->lo, (size_t)((k->hi - k->lo) / gs->W), PFGM_F32, &k->req);
        if (st != PFGM_OK) st = pfgm_error_prefix(st, "parameter all-gather of bucket %d", i);
    }
    for (int i = 0; i < gs->nb; ++i) {
        if (!gs->b[i].req) continue;
        pfgm_status w = c->wait(c, gs->b[i].req);
        gs->b[i].req = NULL;
        if (st == PFGM_OK && w != PFGM_OK) st = pfgm_error_prefix(w, "parameter all-gather of bucket %d", i);
    }
    return st;
}
