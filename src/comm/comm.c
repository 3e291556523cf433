/* Shared pieces of the communicators and the single-process implementation. */
#include "pfgm/comm.h"
#include "util/check.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

size_t pfgm_dtype_size(pfgm_dtype t) {
    switch (t) {
    case PFGM_F32: return 4;
    case PFGM_F64: return 8;
    case PFGM_I32: return 4;
    case PFGM_I64: return 8;
    case PFGM_U8: return 1;
    case PFGM_U32: return 4;
    case PFGM_U64: return 8;
    }
    return 0;
}

void pfgm_comm_destroy(pfgm_comm *c) {
    if (c && c->destroy) c->destroy(c);
}

int pfgm_comm_launched_by_mpi(void) {
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_STEP_NUM_TASKS"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; ++i) {
        const char *v = getenv(vars[i]);
        if (v && atoi(v) >= 1 && strcmp(vars[i], "SLURM_STEP_NUM_TASKS") != 0) return 1;
        if (v && atoi(v) > 1) return 1;
    }
    return 0;
}

pfgm_status pfgm_comm_create_auto(int *argc, char ***argv, pfgm_comm **out) {
    return pfgm_comm_launched_by_mpi() ? pfgm_comm_mpi_create(argc, argv, out) : pfgm_comm_single_create(out);
}

/* ---- single process ------------------------------------------------------------------- */

static pfgm_status single_check(size_t count, pfgm_dtype t) {
    if (pfgm_dtype_size(t) == 0) return pfgm_error(PFGM_ERR_INVALID_ARG, "comm: unknown dtype %d", (int)t);
    return PFGM_OK;
}

static pfgm_status single_allreduce(pfgm_comm *c, void *buf, size_t count, pfgm_dtype t, pfgm_redop op) {
    if (op == PFGM_REDUCE_AVG && t != PFGM_F32 && t != PFGM_F64)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "comm allreduce: AVG needs a floating dtype");
    return single_check(count, t);
}

static pfgm_status single_allgather(pfgm_comm *c, const void *send, void *recv, size_t count, pfgm_dtype t) {
    pfgm_status st = single_check(count, t);
    if (st == PFGM_OK && send != recv && count) memmove(recv, send, count * pfgm_dtype_size(t));
    return st;
}

static pfgm_status single_broadcast(pfgm_comm *c, void *buf, size_t count, pfgm_dtype t, int root) {
    if (root != 0) return pfgm_error(PFGM_ERR_INVALID_ARG, "comm broadcast: root %d out of range [0, 1)", root);
    return single_check(count, t);
}

static pfgm_status single_barrier(pfgm_comm *c) { return PFGM_OK; }

/* One process: every non-blocking collective is complete when it starts (the result is the
 * buffer itself); the request is a shared token that wait() accepts. */
struct pfgm_comm_req {
    int unused;
};
static pfgm_comm_req single_done;

static pfgm_status single_iallreduce(pfgm_comm *c, void *buf, size_t count, pfgm_dtype t, pfgm_redop op,
                                     pfgm_comm_req **req) {
    *req = NULL;
    PFGM_TRY(single_allreduce(c, buf, count, t, op));
    *req = &single_done;
    return PFGM_OK;
}

static pfgm_status single_iallgather(pfgm_comm *c, void *buf, size_t count, pfgm_dtype t, pfgm_comm_req **req) {
    *req = NULL;
    PFGM_TRY(single_check(count, t));
    *req = &single_done;
    return PFGM_OK;
}

static pfgm_status single_progress(pfgm_comm *c) { return PFGM_OK; }

static pfgm_status single_wait(pfgm_comm *c, pfgm_comm_req *req) {
    return req == &single_done ? PFGM_OK : pfgm_error(PFGM_ERR_INVALID_ARG, "comm wait: not a request of this communicator");
}

static void single_abort(pfgm_comm *c, int code) { _exit(code); }

static void single_destroy(pfgm_comm *c) { free(c); }

pfgm_status pfgm_comm_single_create(pfgm_comm **out) {
    pfgm_comm *c = calloc(1, sizeof *c);
    *out = NULL;
    if (!c) return pfgm_error(PFGM_ERR_NOMEM, "comm: cannot allocate");
    c->name = "single";
    c->rank = 0;
    c->world_size = 1;
    c->local_rank = 0;
    c->local_size = 1;
    if (gethostname(c->host, sizeof c->host - 1) != 0) strcpy(c->host, "unknown");
    c->allreduce = single_allreduce;
    c->allgather = single_allgather;
    c->broadcast = single_broadcast;
    c->barrier = single_barrier;
    c->iallreduce = single_iallreduce;
    c->ireduce_scatter = single_iallreduce; /* one block: the reduction of one rank is itself */
    c->iallgather = single_iallgather;
    c->progress = single_progress;
    c->wait = single_wait;
    c->abort = single_abort;
    c->destroy = single_destroy;
    *out = c;
    return PFGM_OK;
}
