/* The MPI communicator: collectives on host buffers over MPI_COMM_WORLD. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pfgm/comm.h"
#include "util/check.h"

typedef enum { REQ_ALLREDUCE = 0, REQ_REDUCE_SCATTER, REQ_ALLGATHER } req_kind;

/* A started non-blocking collective; the active ones form a list that progress() tests. */
struct pfgm_comm_req {
    MPI_Request r;
    req_kind kind;
    void *buf;
    size_t count;  /* elements (per rank for reduce-scatter and all-gather) */
    pfgm_dtype t;
    int avg;       /* AVG: multiply by 1/world_size once the sum is complete */
    int done;      /* MPI has completed r (progress() saw it) */
    struct pfgm_comm_req *next, *prev;
};

typedef struct mpi_impl {
    MPI_Comm world;
    int owns_mpi; /* we called MPI_Init, so destroy() finalizes */
    pfgm_comm_req *active; /* started, not yet waited for */
} mpi_impl;

const char *pfgm_mpi_strerror(int code) {
    static _Thread_local char buf[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(code, buf, &len) != MPI_SUCCESS) return "unknown MPI error";
    return buf;
}

static MPI_Datatype mpi_type(pfgm_dtype t) {
    switch (t) {
    case PFGM_F32: return MPI_FLOAT;
    case PFGM_F64: return MPI_DOUBLE;
    case PFGM_I32: return MPI_INT32_T;
    case PFGM_I64: return MPI_INT64_T;
    case PFGM_U8: return MPI_UINT8_T;
    case PFGM_U32: return MPI_UINT32_T;
    case PFGM_U64: return MPI_UINT64_T;
    }
    return MPI_DATATYPE_NULL;
}

/* MPI counts are int: split larger buffers so multi-GB gradient buffers work. */
#define MPI_CHUNK ((size_t)1 << 30)

/* The one check of a reduction's dtype and operator (blocking and non-blocking). */
static pfgm_status reduce_args(const char *what, pfgm_dtype t, pfgm_redop op, MPI_Datatype *dt, MPI_Op *mop) {
    *mop = MPI_SUM;
    *dt = mpi_type(t);
    if (*dt == MPI_DATATYPE_NULL) return pfgm_error(PFGM_ERR_INVALID_ARG, "comm %s: unknown dtype %d", what, (int)t);
    if (op == PFGM_REDUCE_AVG && t != PFGM_F32 && t != PFGM_F64)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "comm %s: AVG needs a floating dtype", what);
    *mop = op == PFGM_REDUCE_MAX ? MPI_MAX : op == PFGM_REDUCE_MIN ? MPI_MIN : MPI_SUM;
    return PFGM_OK;
}

/* AVG after the sum: every element times 1/world_size (the same multiply in every path). */
static void scale_avg(const pfgm_comm *c, void *buf, size_t count, pfgm_dtype t) {
    if (c->world_size <= 1) return;
    if (t == PFGM_F32) {
        float inv = 1.0f / (float)c->world_size;
        float *f = buf;
        for (size_t i = 0; i < count; ++i) f[i] *= inv;
    } else {
        double inv = 1.0 / (double)c->world_size;
        double *d = buf;
        for (size_t i = 0; i < count; ++i) d[i] *= inv;
    }
}

static pfgm_status mpi_allreduce(pfgm_comm *c, void *buf, size_t count, pfgm_dtype t, pfgm_redop op) {
    mpi_impl *m = c->impl;
    MPI_Datatype dt;
    MPI_Op mop;
    PFGM_TRY(reduce_args("allreduce", t, op, &dt, &mop));
    size_t es = pfgm_dtype_size(t);
    for (size_t off = 0; off < count; off += MPI_CHUNK) {
        size_t n = count - off < MPI_CHUNK ? count - off : MPI_CHUNK;
        PFGM_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, (char *)buf + off * es, (int)n, dt, mop, m->world));
    }
    if (op == PFGM_REDUCE_AVG) scale_avg(c, buf, count, t);
    return PFGM_OK;
}

/* ---- non-blocking collectives (comm.h) ---------------------------------------------------- */

static pfgm_status req_new(pfgm_comm *c, req_kind kind, void *buf, size_t count, pfgm_dtype t, int avg,
                           pfgm_comm_req **out) {
    static const char *const names[] = {"iallreduce", "ireduce_scatter", "iallgather"};
    *out = NULL;
    if (count > (size_t)INT32_MAX)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "comm %s: %zu elements exceed MPI's int count (use smaller buckets)",
                          names[kind], count);
    pfgm_comm_req *q = calloc(1, sizeof *q);
    if (!q) return pfgm_error(PFGM_ERR_NOMEM, "comm %s: out of memory", names[kind]);
    *q = (pfgm_comm_req){.r = MPI_REQUEST_NULL, .kind = kind, .buf = buf, .count = count, .t = t, .avg = avg};
    (void)c;
    *out = q;
    return PFGM_OK;
}

static void req_link(mpi_impl *m, pfgm_comm_req *q) {
    q->next = m->active;
    if (m->active) m->active->prev = q;
    m->active = q;
}

static void req_unlink(mpi_impl *m, pfgm_comm_req *q) {
    if (q->prev) q->prev->next = q->next;
    else m->active = q->next;
    if (q->next) q->next->prev = q->prev;
    q->next = q->prev = NULL;
}

/* Links q when MPI accepted it, frees it otherwise. */
static pfgm_status req_started(mpi_impl *m, pfgm_comm_req *q, int rc, const char *what, pfgm_comm_req **req) {
    if (rc != MPI_SUCCESS) {
        free(q);
        return pfgm_error(PFGM_ERR_MPI, "comm %s: %s", what, pfgm_mpi_strerror(rc));
    }
    req_link(m, q);
    *req = q;
    return PFGM_OK;
}

/* Both non-blocking reductions: one argument check, one request, one start. */
static pfgm_status start_reduction(pfgm_comm *c, req_kind kind, void *buf, size_t count, pfgm_dtype t,
                                   pfgm_redop op, pfgm_comm_req **req) {
    static const char *const names[] = {"iallreduce", "ireduce_scatter"};
    mpi_impl *m = c->impl;
    MPI_Datatype dt;
    MPI_Op mop;
    *req = NULL;
    PFGM_TRY(reduce_args(names[kind], t, op, &dt, &mop));
    pfgm_comm_req *q;
    PFGM_TRY(req_new(c, kind, buf, count, t, op == PFGM_REDUCE_AVG, &q));
    /* MPI_IN_PLACE for the reduce-scatter: the input is the whole buffer and the result lands
     * in its first block; wait() moves it to block `rank`. */
    int rc = kind == REQ_ALLREDUCE ? MPI_Iallreduce(MPI_IN_PLACE, buf, (int)count, dt, mop, m->world, &q->r)
                                   : MPI_Ireduce_scatter_block(MPI_IN_PLACE, buf, (int)count, dt, mop, m->world, &q->r);
    return req_started(m, q, rc, names[kind], req);
}

static pfgm_status mpi_iallreduce(pfgm_comm *c, void *buf, size_t count, pfgm_dtype t, pfgm_redop op,
                                  pfgm_comm_req **req) {
    return start_reduction(c, REQ_ALLREDUCE, buf, count, t, op, req);
}

static pfgm_status mpi_ireduce_scatter(pfgm_comm *c, void *buf, size_t count, pfgm_dtype t, pfgm_redop op,
                                       pfgm_comm_req **req) {
    return start_reduction(c, REQ_REDUCE_SCATTER, buf, count, t, op, req);
}

static pfgm_status mpi_iallgather(pfgm_comm *c, void *buf, size_t count, pfgm_dtype t, pfgm_comm_req **req) {
    mpi_impl *m = c->impl;
    *req = NULL;
    MPI_Datatype dt = mpi_type(t);
    if (dt == MPI_DATATYPE_NULL) return pfgm_error(PFGM_ERR_INVALID_ARG, "comm iallgather: unknown dtype %d", (int)t);
    pfgm_comm_req *q;
    PFGM_TRY(req_new(c, REQ_ALLGATHER, buf, count, t, 0, &q));
    return req_started(m, q, MPI_Iallgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, (int)count, dt, m->world, &q->r),
                       "iallgather", req);
}

static pfgm_status mpi_progress(pfgm_comm *c) {
    mpi_impl *m = c->impl;
    for (pfgm_comm_req *q = m->active; q; q = q->next) {
        if (q->done) continue;
        int flag = 0;
        PFGM_MPI_CHECK(MPI_Test(&q->r, &flag, MPI_STATUS_IGNORE));
        q->done = flag;
    }
    return PFGM_OK;
}

static pfgm_status mpi_wait(pfgm_comm *c, pfgm_comm_req *q) {
    mpi_impl *m = c->impl;
    if (!q) return pfgm_error(PFGM_ERR_INVALID_ARG, "comm wait: NULL request");
    req_unlink(m, q);
    int rc = q->done ? MPI_SUCCESS : MPI_Wait(&q->r, MPI_STATUS_IGNORE);
    pfgm_status st = PFGM_OK;
    if (rc != MPI_SUCCESS) {
        st = pfgm_error(PFGM_ERR_MPI, "comm wait: %s", pfgm_mpi_strerror(rc));
    } else {
        size_t es = pfgm_dtype_size(q->t);
        char *mine = (char *)q->buf;
        if (q->kind == REQ_REDUCE_SCATTER && c->rank > 0) {
            mine += (size_t)c->rank * q->count * es;
            memmove(mine, q->buf, q->count * es);
        }
        if (q->avg) scale_avg(c, mine, q->count, q->t);
    }
    free(q);
    return st;
}

static pfgm_status mpi_allgather(pfgm_comm *c, const void *send, void *recv, size_t count, pfgm_dtype t) {
    mpi_impl *m = c->impl;
    MPI_Datatype dt = mpi_type(t);
    if (dt == MPI_DATATYPE_NULL) return pfgm_error(PFGM_ERR_INVALID_ARG, "comm allgather: unknown dtype %d", (int)t);
    if (count > (size_t)INT32_MAX)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "comm allgather: %zu elements per rank exceeds MPI's int count", count);
    PFGM_MPI_CHECK(MPI_Allgather(send, (int)count, dt, recv, (int)count, dt, m->world));
    return PFGM_OK;
}

static pfgm_status mpi_broadcast(pfgm_comm *c, void *buf, size_t count, pfgm_dtype t, int root) {
    mpi_impl *m = c->impl;
    MPI_Datatype dt = mpi_type(t);
    if (dt == MPI_DATATYPE_NULL) return pfgm_error(PFGM_ERR_INVALID_ARG, "comm broadcast: unknown dtype %d", (int)t);
    if (root < 0 || root >= c->world_size)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "comm broadcast: root %d out of range [0, %d)", root, c->world_size);
    size_t es = pfgm_dtype_size(t);
    for (size_t off = 0; off < count; off += MPI_CHUNK) {
        size_t n = count - off < MPI_CHUNK ? count - off : MPI_CHUNK;
        PFGM_MPI_CHECK(MPI_Bcast((char *)buf + off * es, (int)n, dt, root, m->world));
    }
    return PFGM_OK;
}

static pfgm_status mpi_barrier(pfgm_comm *c) {
    mpi_impl *m = c->impl;
    PFGM_MPI_CHECK(MPI_Barrier(m->world));
    return PFGM_OK;
}

static void mpi_abort(pfgm_comm *c, int code) {
    mpi_impl *m = c->impl;
    MPI_Abort(m->world, code);
    _Exit(code); /* MPI_Abort should not return; make sure this rank is gone if it does */
}

static void mpi_destroy(pfgm_comm *c) {
    if (!c) return;
    mpi_impl *m = c->impl;
    if (m) {
        while (m->active) { /* requests never waited for (an error path): complete and free them */
            pfgm_comm_req *q = m->active;
            req_unlink(m, q);
            if (!q->done) MPI_Wait(&q->r, MPI_STATUS_IGNORE);
            free(q);
        }
        if (m->world != MPI_COMM_NULL) MPI_Comm_free(&m->world);
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (m->owns_mpi && !finalized) MPI_Finalize();
        free(m);
    }
    free(c);
}

pfgm_status pfgm_comm_mpi_create(int *argc, char ***argv, pfgm_comm **out) {
    *out = NULL;
    pfgm_comm *c = calloc(1, sizeof *c);
    mpi_impl *m = calloc(1, sizeof *m);
    if (!c || !m) {
        free(c);
        free(m);
        return pfgm_error(PFGM_ERR_NOMEM, "comm: cannot allocate");
    }
    m->world = MPI_COMM_NULL;
    c->impl = m;
    c->name = "mpi";
    c->allreduce = mpi_allreduce;
    c->allgather = mpi_allgather;
    c->broadcast = mpi_broadcast;
    c->barrier = mpi_barrier;
    c->iallreduce = mpi_iallreduce;
    c->ireduce_scatter = mpi_ireduce_scatter;
    c->iallgather = mpi_iallgather;
    c->progress = mpi_progress;
    c->wait = mpi_wait;
    c->abort = mpi_abort;
    c->destroy = mpi_destroy;

    pfgm_status st = PFGM_OK;
    int inited = 0, provided = 0;
    MPI_Initialized(&inited);
    if (!inited) {
        PFGM_MPI_CHECK_GOTO(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), fail);
        m->owns_mpi = 1;
    }
    /* Errors come back as codes (turned into pfgm_status) instead of aborting inside MPI. */
    PFGM_MPI_CHECK_GOTO(MPI_Comm_dup(MPI_COMM_WORLD, &m->world), fail);
    PFGM_MPI_CHECK_GOTO(MPI_Comm_set_errhandler(m->world, MPI_ERRORS_RETURN), fail);
    PFGM_MPI_CHECK_GOTO(MPI_Comm_rank(m->world, &c->rank), fail);
    PFGM_MPI_CHECK_GOTO(MPI_Comm_size(m->world, &c->world_size), fail);
    MPI_Comm node = MPI_COMM_NULL;
    PFGM_MPI_CHECK_GOTO(MPI_Comm_split_type(m->world, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node), fail);
    MPI_Comm_rank(node, &c->local_rank);
    MPI_Comm_size(node, &c->local_size);
    MPI_Comm_free(&node);
    int len = 0;
    char name[MPI_MAX_PROCESSOR_NAME];
    MPI_Get_processor_name(name, &len);
    name[len < (int)sizeof c->host ? len : (int)sizeof c->host - 1] = '\0';
    memcpy(c->host, name, strlen(name) + 1);
    *out = c;
    return PFGM_OK;
fail:
    mpi_destroy(c);
    return st;
}
