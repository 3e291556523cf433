/* The MPI communicator: collectives on host buffers over MPI_COMM_WORLD. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pfgm/comm.h"
#include "util/check.h"

typedef struct mpi_impl {
    MPI_Comm world;
    int owns_mpi; /* we called MPI_Init, so destroy() finalizes */
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

static pfgm_status mpi_allreduce(pfgm_comm *c, void *buf, size_t count, pfgm_dtype t, pfgm_redop op) {
    mpi_impl *m = c->impl;
    MPI_Datatype dt = mpi_type(t);
    if (dt == MPI_DATATYPE_NULL) return pfgm_error(PFGM_ERR_INVALID_ARG, "comm allreduce: unknown dtype %d", (int)t);
    if (op == PFGM_REDUCE_AVG && t != PFGM_F32 && t != PFGM_F64)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "comm allreduce: AVG needs a floating dtype");
    MPI_Op mop = op == PFGM_REDUCE_MAX ? MPI_MAX : op == PFGM_REDUCE_MIN ? MPI_MIN : MPI_SUM;
    size_t es = pfgm_dtype_size(t);
    for (size_t off = 0; off < count; off += MPI_CHUNK) {
        size_t n = count - off < MPI_CHUNK ? count - off : MPI_CHUNK;
        PFGM_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, (char *)buf + off * es, (int)n, dt, mop, m->world));
    }
    if (op == PFGM_REDUCE_AVG && c->world_size > 1) {
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
    return PFGM_OK;
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
