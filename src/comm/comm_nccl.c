/* The NCCL communicator (include/pfgm/comm.h): collectives on device buffers, bootstrapped
 * over a host communicator (MPI). Creation: every rank picks its GPU from its local rank,
 * the ranks exchange (host, PCI bus id) records over the host communicator so that a bad
 * GPU assignment fails identically on every rank, rank 0's ncclUniqueId is broadcast, a
 * barrier follows, and a non-blocking ncclCommInitRankConfig is polled with a timeout.
 * Every NCCL call is non-blocking (config.blocking = 0): a call may return ncclInProgress,
 * and the communicator's state is polled until it settles; the collective's stream (a
 * non-blocking collective's `done` event) is then polled together with ncclCommGetAsyncError. An asynchronous error or a
 * wait beyond PFGM_NCCL_TIMEOUT_S aborts NCCL and the job (the one place where this library
 * prints and ends the process: a hung collective cannot be returned from). Built only when
 * NCCL is found (CMake; PFGM_HAVE_NCCL).
 *
 * Non-blocking collectives (iallreduce, ireduce_scatter, iallgather; comm.h) and the compute
 * stream. Once pfgm_comm_nccl_set_backend has named the CUDA backend whose kernels write and
 * read the buffers, a start records an event `ready` on that backend's stream (the compute
 * stream), makes the communication stream wait for it (cudaStreamWaitEvent: the collective
 * reads what every kernel issued before the start wrote, without a host synchronisation),
 * enqueues the NCCL call on the communication stream and records an event `done` after it.
 * wait() polls `done` with the same hang and asynchronous-error protection as the blocking
 * calls (nccl_wait: PFGM_NCCL_TIMEOUT_S counted from wait's entry, then abort naming rank,
 * host and collective), then makes the compute stream wait for `done`, so every kernel issued
 * after wait() sees the result. Without a backend set, a start first waits for the device's
 * previously issued work (as the blocking calls), and wait() returns when the collective has
 * completed. Several collectives may be in flight; they run in start order on the one
 * communication stream. A blocking call made while some are in flight first waits for them
 * (with the same protection) before its cudaDeviceSynchronize, which has none.
 *
 * AVG is ncclAvg in the blocking and the non-blocking calls alike (one check, reduce_args),
 * so iallreduce runs the blocking allreduce's NCCL operation on the same count. For F32/F64
 * NCCL computes ncclAvg as a sum of pre-multiplied inputs, sum_r (x_r * (1/W)) with 1/W
 * rounded to the dtype (ncclDevPreMulSum in NCCL's enqueue.cc), not as (sum_r x_r) * (1/W),
 * the MPI communicator's multiply after the sum. Summed in the same order, the two agree
 * bitwise when W is a power of two (scaling by 2^-k is exact) unless a scaled term is
 * subnormal or the unscaled sum overflows; for other W they can differ in the last bits.
 * NCCL's order of summation (ring or tree) is its own in any case: NCCL and MPI results
 * are equal bitwise for W = 2 (a + b = b + a) but need not be for more ranks. */
#include <cuda_runtime.h>
#include <math.h>
#include <nccl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pfgm/backend.h"
#include "pfgm/comm.h"
#include "util/check.h"

#if NCCL_VERSION_CODE < NCCL_VERSION(2, 14, 0)
#error "the NCCL communicator needs NCCL >= 2.14 (non-blocking communicators, ncclAvg)"
#endif

#define DEFAULT_TIMEOUT_S 600.0

/* A started non-blocking collective (comm.h). Released requests keep their events on the
 * communicator's spare list for the next start: events are created only when more
 * collectives are in flight than ever before, and destroyed with the communicator. */
struct pfgm_comm_req {
    const void *owner;  /* the impl of the communicator that started it */
    cudaEvent_t ready;  /* recorded on the compute stream at the start */
    cudaEvent_t done;   /* recorded on the communication stream after the collective */
    const char *what;   /* the collective, for the fatal message */
    int enqueued;       /* 0: nothing was enqueued (count 0) */
    struct pfgm_comm_req *next, *prev; /* the active list, or the spare list (next only) */
};

typedef struct nccl_impl {
    pfgm_comm *host;    /* bootstrap, barrier and job abort (not owned) */
    ncclComm_t comm;
    cudaStream_t stream; /* the communication stream */
    cudaStream_t compute; /* the backend's stream (pfgm_comm_nccl_set_backend); NULL: none set */
    pfgm_comm_req *active; /* started, not yet waited for */
    pfgm_comm_req *spare;  /* released, events kept */
    int device;
    double timeout_s;
} nccl_impl;

/* What every rank tells the others before NCCL starts (exchanged as bytes). */
typedef struct rank_record {
    int32_t rank, local_rank, device, status;
    char host[64];
    char bus[32];   /* PCI bus id of the chosen GPU */
    char msg[192];  /* this rank's error message when status != PFGM_OK */
} rank_record;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Short pause between polls: yield for the first milliseconds (collectives are usually
 * that fast), then sleep 100 us so a long wait does not burn a core. */
static void poll_pause(double waited_s) {
    if (waited_s < 0.005) {
        sched_yield();
        return;
    }
    struct timespec ts = {0, 100000};
    nanosleep(&ts, NULL);
}

/* Fatal: NCCL failed asynchronously or a collective hung. Says so, aborts NCCL, then the
 * job through the host communicator (never returns). */
static void nccl_fatal(pfgm_comm *c, const char *what, const char *why) {
    nccl_impl *m = c->impl;
    fprintf(stderr, "pfgm: rank %d on %s: NCCL %s: %s; aborting the job\n", c->rank, c->host, what, why);
    fflush(stderr);
    if (m->comm) ncclCommAbort(m->comm);
    m->comm = NULL;
    m->host->abort(m->host, pfgm_status_exit_code(PFGM_ERR_NCCL));
}

/* After a non-blocking NCCL call returned r: waits until the communicator's state is no
 * longer ncclInProgress (the call has been enqueued or has finished). A synchronous error
 * is returned as PFGM_ERR_NCCL; an asynchronous one or the timeout is fatal. */
static pfgm_status nccl_settle(pfgm_comm *c, ncclResult_t r, const char *what, double t0) {
    nccl_impl *m = c->impl;
    if (r == ncclSuccess) return PFGM_OK;
    if (r != ncclInProgress)
        return pfgm_error(PFGM_ERR_NCCL, "NCCL %s failed: %s (%s)", what, ncclGetErrorString(r), ncclGetLastError(m->comm));
    for (;;) {
        ncclResult_t state = ncclSuccess;
        ncclResult_t q = ncclCommGetAsyncError(m->comm, &state);
        if (q != ncclSuccess) nccl_fatal(c, what, ncclGetErrorString(q));
        if (state == ncclSuccess) return PFGM_OK;
        if (state != ncclInProgress) nccl_fatal(c, what, ncclGetErrorString(state));
        double waited = now_s() - t0;
        if (waited > m->timeout_s) {
            char why[128];
            snprintf(why, sizeof why, "not started after %.0f s (PFGM_NCCL_TIMEOUT_S)", m->timeout_s);
            nccl_fatal(c, what, why);
        }
        poll_pause(waited);
    }
}

/* NCCL's asynchronous error state of the communicator; an error there is fatal. */
static void nccl_check_async(pfgm_comm *c, const char *what) {
    nccl_impl *m = c->impl;
    ncclResult_t state = ncclSuccess;
    ncclResult_t q = ncclCommGetAsyncError(m->comm, &state);
    if (q != ncclSuccess) nccl_fatal(c, what, ncclGetErrorString(q));
    if (state != ncclSuccess && state != ncclInProgress) nccl_fatal(c, what, ncclGetErrorString(state));
}

/* Waits for the collectives enqueued on the communication stream (done NULL: all of them;
 * else those up to the event done), polling NCCL's asynchronous error state; an error or
 * the timeout is fatal (a peer that died or never joined would otherwise leave this rank
 * waiting forever). The error state is read once more after the wait ended: a collective
 * that NCCL failed may still drain its stream. */
static pfgm_status nccl_wait(pfgm_comm *c, const char *what, cudaEvent_t done, double t0) {
    nccl_impl *m = c->impl;
    for (;;) {
        cudaError_t e = done ? cudaEventQuery(done) : cudaStreamQuery(m->stream);
        if (e == cudaSuccess) {
            nccl_check_async(c, what);
            return PFGM_OK;
        }
        if (e != cudaErrorNotReady) nccl_fatal(c, what, cudaGetErrorString(e));
        nccl_check_async(c, what);
        double waited = now_s() - t0;
        if (waited > m->timeout_s) {
            char why[128];
            snprintf(why, sizeof why, "no completion after %.0f s (PFGM_NCCL_TIMEOUT_S): a peer is missing or hung",
                     m->timeout_s);
            nccl_fatal(c, what, why);
        }
        poll_pause(waited);
    }
}

/* The rank's device current, and every operation issued so far on it finished, so the
 * buffers hold what the backend's kernels wrote (they run on the backend's own stream).
 * Non-blocking collectives still in flight are waited for first, with the hang protection
 * of nccl_wait: cudaDeviceSynchronize would wait for them too, but without a timeout. */
static pfgm_status nccl_prepare(pfgm_comm *c, const char *what) {
    nccl_impl *m = c->impl;
    PFGM_CUDA_CHECK(cudaSetDevice(m->device));
    if (m->active) PFGM_TRY(nccl_wait(c, what, NULL, now_s()));
    PFGM_CUDA_CHECK(cudaDeviceSynchronize());
    return PFGM_OK;
}

/* The one check of a dtype (every call): *dt its NCCL type. */
static pfgm_status type_arg(const char *what, pfgm_dtype t, ncclDataType_t *dt) {
    *dt = ncclFloat32; /* set on every path (an error leaves it unused) */
    switch (t) {
    case PFGM_F32: *dt = ncclFloat32; return PFGM_OK;
    case PFGM_F64: *dt = ncclFloat64; return PFGM_OK;
    case PFGM_I32: *dt = ncclInt32; return PFGM_OK;
    case PFGM_I64: *dt = ncclInt64; return PFGM_OK;
    case PFGM_U8: *dt = ncclUint8; return PFGM_OK;
    case PFGM_U32: *dt = ncclUint32; return PFGM_OK;
    case PFGM_U64: *dt = ncclUint64; return PFGM_OK;
    }
    return pfgm_error(PFGM_ERR_INVALID_ARG, "comm %s: unknown dtype %d", what, (int)t);
}

/* The one check of a reduction's dtype and operator (blocking and non-blocking calls alike,
 * so both give the same NCCL operation): AVG is ncclAvg, floating dtypes only. */
static pfgm_status reduce_args(const char *what, pfgm_dtype t, pfgm_redop op, ncclDataType_t *dt, ncclRedOp_t *rop) {
    *rop = ncclSum;
    PFGM_TRY(type_arg(what, t, dt));
    switch (op) {
    case PFGM_REDUCE_SUM: *rop = ncclSum; return PFGM_OK;
    case PFGM_REDUCE_MAX: *rop = ncclMax; return PFGM_OK;
    case PFGM_REDUCE_MIN: *rop = ncclMin; return PFGM_OK;
    case PFGM_REDUCE_AVG:
        if (t != PFGM_F32 && t != PFGM_F64) return pfgm_error(PFGM_ERR_INVALID_ARG, "comm %s: AVG needs a floating dtype", what);
        *rop = ncclAvg;
        return PFGM_OK;
    }
    return pfgm_error(PFGM_ERR_INVALID_ARG, "comm %s: unknown reduction %d", what, (int)op);
}

static pfgm_status nccl_allreduce(pfgm_comm *c, void *buf, size_t count, pfgm_dtype t, pfgm_redop op) {
    nccl_impl *m = c->impl;
    ncclDataType_t dt;
    ncclRedOp_t rop;
    PFGM_TRY(reduce_args("allreduce", t, op, &dt, &rop));
    if (count == 0) return PFGM_OK;
    PFGM_TRY(nccl_prepare(c, "all-reduce"));
    double t0 = now_s();
    PFGM_TRY(nccl_settle(c, ncclAllReduce(buf, buf, count, dt, rop, m->comm, m->stream), "all-reduce", t0));
    return nccl_wait(c, "all-reduce", NULL, t0);
}

static pfgm_status nccl_allgather(pfgm_comm *c, const void *send, void *recv, size_t count, pfgm_dtype t) {
    nccl_impl *m = c->impl;
    ncclDataType_t dt;
    PFGM_TRY(type_arg("allgather", t, &dt));
    /* NCCL's in-place form is send = recv + rank * count; any other overlap is refused */
    const char *s = send, *r = recv;
    size_t bytes = count * pfgm_dtype_size(t);
    if (s != r + (size_t)c->rank * bytes && s < r + (size_t)c->world_size * bytes && r < s + bytes)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "comm allgather: the send buffer overlaps the receive buffer "
                                                "other than at recv + rank * count");
    if (count == 0) return PFGM_OK;
    PFGM_TRY(nccl_prepare(c, "all-gather"));
    double t0 = now_s();
    PFGM_TRY(nccl_settle(c, ncclAllGather(send, recv, count, dt, m->comm, m->stream), "all-gather", t0));
    return nccl_wait(c, "all-gather", NULL, t0);
}

static pfgm_status nccl_broadcast(pfgm_comm *c, void *buf, size_t count, pfgm_dtype t, int root) {
    nccl_impl *m = c->impl;
    ncclDataType_t dt;
    PFGM_TRY(type_arg("broadcast", t, &dt));
    if (root < 0 || root >= c->world_size)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "comm broadcast: root %d out of range [0, %d)", root, c->world_size);
    if (count == 0) return PFGM_OK;
    PFGM_TRY(nccl_prepare(c, "broadcast"));
    double t0 = now_s();
    PFGM_TRY(nccl_settle(c, ncclBroadcast(buf, buf, count, dt, root, m->comm, m->stream), "broadcast", t0));
    return nccl_wait(c, "broadcast", NULL, t0);
}

/* ---- non-blocking collectives (comm.h; ordering: the comment at the top) ---------------- */

static void req_free(pfgm_comm_req *q) {
    if (q->ready) cudaEventDestroy(q->ready);
    if (q->done) cudaEventDestroy(q->done);
    free(q);
}

/* A request on the active list: a spare one, or a new one with its two events. */
static pfgm_status req_get(pfgm_comm *c, const char *what, pfgm_comm_req **out) {
    nccl_impl *m = c->impl;
    pfgm_comm_req *q = m->spare;
    if (q) {
        m->spare = q->next;
    } else {
        q = calloc(1, sizeof *q);
        if (!q) return pfgm_error(PFGM_ERR_NOMEM, "comm %s: cannot allocate a request", what);
        cudaError_t e = cudaSetDevice(m->device); /* an event belongs to the device current at its creation */
        if (e == cudaSuccess) e = cudaEventCreateWithFlags(&q->ready, cudaEventDisableTiming);
        if (e == cudaSuccess) e = cudaEventCreateWithFlags(&q->done, cudaEventDisableTiming);
        if (e != cudaSuccess) {
            req_free(q);
            return pfgm_error(PFGM_ERR_CUDA, "comm %s: cannot create its events: %s", what, cudaGetErrorString(e));
        }
    }
    q->owner = m;
    q->what = what;
    q->enqueued = 0;
    q->prev = NULL;
    q->next = m->active;
    if (m->active) m->active->prev = q;
    m->active = q;
    *out = q;
    return PFGM_OK;
}

/* Off the active list onto the spare list. */
static void req_put(nccl_impl *m, pfgm_comm_req *q) {
    if (q->prev) q->prev->next = q->next;
    else m->active = q->next;
    if (q->next) q->next->prev = q->prev;
    q->prev = NULL;
    q->next = m->spare;
    m->spare = q;
    q->owner = NULL;
}

/* buf holds `blocks` blocks of count elements of es bytes: refused when that many bytes
 * exceed the address space (NCCL's counts are size_t, so nothing smaller is a limit). */
static pfgm_status blocks_fit(const char *what, size_t count, size_t es, size_t blocks) {
    if (count > SIZE_MAX / es / blocks)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "comm %s: %zu blocks of %zu elements of %zu bytes exceed the address space",
                          what, blocks, count, es);
    return PFGM_OK;
}

/* Starts a non-blocking collective: the device current, *q on the active list, and the
 * communication stream ordered after the work issued so far on the compute stream (the
 * event q->ready; with no compute stream set, after the whole device's work, as the blocking
 * calls). */
static pfgm_status nb_begin(pfgm_comm *c, const char *what, pfgm_comm_req **q) {
    nccl_impl *m = c->impl;
    if (m->compute)
        PFGM_CUDA_CHECK(cudaSetDevice(m->device));
    else
        PFGM_TRY(nccl_prepare(c, what));
    PFGM_TRY(req_get(c, what, q));
    if (!m->compute) return PFGM_OK;
    cudaError_t e = cudaEventRecord((*q)->ready, m->compute);
    if (e == cudaSuccess) e = cudaStreamWaitEvent(m->stream, (*q)->ready, 0);
    if (e == cudaSuccess) return PFGM_OK;
    req_put(m, *q);
    *q = NULL;
    return pfgm_error(PFGM_ERR_CUDA, "comm %s: ordering after the compute stream: %s", what, cudaGetErrorString(e));
}

/* After the NCCL call returned r: settles it (nccl_settle), records q->done behind it and
 * hands q out in *req; on an error q is released and *req stays NULL. */
static pfgm_status nb_end(pfgm_comm *c, pfgm_comm_req *q, ncclResult_t r, double t0, pfgm_comm_req **req) {
    nccl_impl *m = c->impl;
    pfgm_status st = nccl_settle(c, r, q->what, t0);
    if (st == PFGM_OK) {
        cudaError_t e = cudaEventRecord(q->done, m->stream);
        if (e != cudaSuccess)
            st = pfgm_error(PFGM_ERR_CUDA, "comm %s: recording its completion: %s", q->what, cudaGetErrorString(e));
    }
    if (st != PFGM_OK) {
        req_put(m, q);
        return st;
    }
    q->enqueued = 1;
    *req = q;
    return PFGM_OK;
}

static pfgm_status nccl_iallreduce(pfgm_comm *c, void *buf, size_t count, pfgm_dtype t, pfgm_redop op,
                                   pfgm_comm_req **req) {
    nccl_impl *m = c->impl;
    ncclDataType_t dt;
    ncclRedOp_t rop;
    pfgm_comm_req *q;
    *req = NULL;
    PFGM_TRY(reduce_args("iallreduce", t, op, &dt, &rop));
    PFGM_TRY(blocks_fit("iallreduce", count, pfgm_dtype_size(t), 1));
    if (count == 0) return req_get(c, "non-blocking all-reduce", req);
    PFGM_TRY(nb_begin(c, "non-blocking all-reduce", &q));
    double t0 = now_s();
    return nb_end(c, q, ncclAllReduce(buf, buf, count, dt, rop, m->comm, m->stream), t0, req);
}

/* In place, NCCL's form: the input is buf[W * count], the result lands in block `rank`
 * (recvbuff = sendbuff + rank * count). */
static pfgm_status nccl_ireduce_scatter(pfgm_comm *c, void *buf, size_t count, pfgm_dtype t, pfgm_redop op,
                                        pfgm_comm_req **req) {
    nccl_impl *m = c->impl;
    ncclDataType_t dt;
    ncclRedOp_t rop;
    pfgm_comm_req *q;
    *req = NULL;
    PFGM_TRY(reduce_args("ireduce_scatter", t, op, &dt, &rop));
    size_t es = pfgm_dtype_size(t);
    PFGM_TRY(blocks_fit("ireduce_scatter", count, es, (size_t)c->world_size));
    if (count == 0) return req_get(c, "non-blocking reduce-scatter", req);
    PFGM_TRY(nb_begin(c, "non-blocking reduce-scatter", &q));
    char *mine = (char *)buf + (size_t)c->rank * count * es;
    double t0 = now_s();
    return nb_end(c, q, ncclReduceScatter(buf, mine, count, dt, rop, m->comm, m->stream), t0, req);
}

/* In place, NCCL's form: block `rank` of buf[W * count] is the contribution
 * (sendbuff = recvbuff + rank * count). */
static pfgm_status nccl_iallgather(pfgm_comm *c, void *buf, size_t count, pfgm_dtype t, pfgm_comm_req **req) {
    nccl_impl *m = c->impl;
    ncclDataType_t dt;
    pfgm_comm_req *q;
    *req = NULL;
    PFGM_TRY(type_arg("iallgather", t, &dt));
    size_t es = pfgm_dtype_size(t);
    PFGM_TRY(blocks_fit("iallgather", count, es, (size_t)c->world_size));
    if (count == 0) return req_get(c, "non-blocking all-gather", req);
    PFGM_TRY(nb_begin(c, "non-blocking all-gather", &q));
    const char *mine = (const char *)buf + (size_t)c->rank * count * es;
    double t0 = now_s();
    return nb_end(c, q, ncclAllGather(mine, buf, count, dt, m->comm, m->stream), t0, req);
}

/* NCCL's kernels progress by themselves. */
static pfgm_status nccl_progress(pfgm_comm *c) { return PFGM_OK; }

/* Waits (host) for q's collective with the hang protection of nccl_wait, the timeout
 * counted from here, then orders the compute stream after it. */
static pfgm_status nccl_wait_req(pfgm_comm *c, pfgm_comm_req *q) {
    nccl_impl *m = c->impl;
    if (!q || q->owner != m)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "comm wait: %s", q ? "not an active request of this communicator"
                                                                   : "NULL request");
    pfgm_status st = PFGM_OK;
    if (q->enqueued) {
        cudaError_t e = cudaSetDevice(m->device);
        if (e == cudaSuccess) {
            st = nccl_wait(c, q->what, q->done, now_s()); /* returns once done; a hang or error is fatal */
            if (st == PFGM_OK && m->compute) e = cudaStreamWaitEvent(m->compute, q->done, 0);
        }
        if (e != cudaSuccess)
            st = pfgm_error(PFGM_ERR_CUDA, "comm wait (%s): %s", q->what, cudaGetErrorString(e));
    }
    req_put(m, q);
    return st;
}

static pfgm_status nccl_barrier(pfgm_comm *c) {
    nccl_impl *m = c->impl;
    return m->host->barrier(m->host);
}

static void nccl_abort(pfgm_comm *c, int code) {
    nccl_impl *m = c->impl;
    if (m->comm) ncclCommAbort(m->comm);
    m->comm = NULL;
    m->host->abort(m->host, code);
}

/* Finalize (flushes, quiescent across ranks) then destroy; a finalize that does not settle
 * within the timeout is abandoned for ncclCommAbort, so destroy never hangs. */
static void nccl_destroy(pfgm_comm *c) {
    if (!c) return;
    nccl_impl *m = c->impl;
    if (m) {
        if (m->device >= 0) cudaSetDevice(m->device);
        if (m->comm) {
            ncclResult_t r = ncclCommFinalize(m->comm), state = r;
            double t0 = now_s();
            while (r == ncclInProgress && state == ncclInProgress && now_s() - t0 <= m->timeout_s) {
                if (ncclCommGetAsyncError(m->comm, &state) != ncclSuccess) break;
                if (state == ncclInProgress) poll_pause(now_s() - t0);
            }
            if ((r == ncclSuccess || r == ncclInProgress) && state == ncclSuccess)
                ncclCommDestroy(m->comm);
            else
                ncclCommAbort(m->comm);
        }
        /* requests never waited for (an error path), then the spares: their events */
        while (m->active) req_put(m, m->active);
        while (m->spare) {
            pfgm_comm_req *q = m->spare;
            m->spare = q->next;
            req_free(q);
        }
        if (m->stream) cudaStreamDestroy(m->stream);
        free(m);
    }
    free(c);
}

/* ---- creation ---------------------------------------------------------------------------- */

static pfgm_status read_timeout(double *out) {
    *out = DEFAULT_TIMEOUT_S;
    const char *s = getenv("PFGM_NCCL_TIMEOUT_S");
    if (!s || !*s) return PFGM_OK;
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || !(v > 0.0) || !isfinite(v))
        return pfgm_error(PFGM_ERR_CONFIG, "PFGM_NCCL_TIMEOUT_S='%s': expected a positive number of seconds", s);
    *out = v;
    return PFGM_OK;
}

/* This rank's GPU: local_rank among the visible devices, or device 0 when each rank sees
 * exactly one (a per-rank CUDA_VISIBLE_DEVICES); reads its bus id. It does not make the
 * device current: since CUDA 12 that creates a context, which a GPU in exclusive-process
 * compute mode refuses to the second rank, and the shared-GPU verdict of check_records must
 * come first, alike on every rank. nccl_init sets the device after the verdict. */
static pfgm_status choose_device(const pfgm_comm *host, rank_record *rec) {
    const char *mask = getenv("CUDA_VISIBLE_DEVICES");
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0)
        return pfgm_error(PFGM_ERR_UNSUPPORTED, "no CUDA device is visible (CUDA_VISIBLE_DEVICES=%s)%s%s",
                          mask ? mask : "unset", e != cudaSuccess ? ": " : "",
                          e != cudaSuccess ? cudaGetErrorString(e) : "");
    int dev;
    if (count >= host->local_size)
        dev = host->local_rank;
    else if (count == 1)
        dev = 0; /* per-rank mask: whether the GPUs differ is checked on the bus ids */
    else
        return pfgm_error(PFGM_ERR_CONFIG,
                          "%d ranks on this host but only %d visible GPUs (CUDA_VISIBLE_DEVICES=%s): start at most "
                          "one rank per GPU",
                          host->local_size, count, mask ? mask : "unset");
    rec->device = dev;
    PFGM_CUDA_CHECK(cudaDeviceGetPCIBusId(rec->bus, (int)sizeof rec->bus, dev));
    return PFGM_OK;
}

/* The verdict on the records of all ranks (every rank computes the same one): the first
 * rank that failed, else the first GPU that two or more ranks of one host share. */
static pfgm_status check_records(const rank_record *all, int world) {
    for (int i = 0; i < world; ++i)
        if (all[i].status != PFGM_OK) {
            char ranks[256] = "";
            int n = 0;
            for (int j = 0; j < world && n >= 0 && (size_t)n < sizeof ranks; ++j)
                if (strcmp(all[i].host, all[j].host) == 0)
                    n += snprintf(ranks + n, sizeof ranks - (size_t)n, "%s%d", n ? ", " : "", (int)all[j].rank);
            return pfgm_error((pfgm_status)all[i].status, "nccl comm: rank %d on host %s (ranks there: %s): %s",
                              (int)all[i].rank, all[i].host, ranks, all[i].msg);
        }
    for (int i = 0; i < world; ++i) {
        char ranks[256];
        int n = snprintf(ranks, sizeof ranks, "%d", (int)all[i].rank), shared = 0, first = 1;
        for (int j = 0; j < world; ++j) {
            if (j == i || strcmp(all[i].host, all[j].host) != 0 || strcmp(all[i].bus, all[j].bus) != 0) continue;
            if (j < i) first = 0; /* reported from the first rank on that GPU */
            shared = 1;
            if (n > 0 && (size_t)n < sizeof ranks) n += snprintf(ranks + n, sizeof ranks - (size_t)n, ", %d", (int)all[j].rank);
        }
        if (shared && first)
            return pfgm_error(PFGM_ERR_CONFIG,
                              "nccl comm: ranks %s on host %s share one GPU (PCI %s); NCCL needs one GPU per rank: "
                              "start at most one rank per GPU, or give each rank its own CUDA_VISIBLE_DEVICES",
                              ranks, all[i].host, all[i].bus);
    }
    return PFGM_OK;
}

/* Exchanges the records and returns the common verdict. */
static pfgm_status agree_on_devices(pfgm_comm *host, rank_record *mine, rank_record **all_out) {
    rank_record *all = calloc((size_t)host->world_size, sizeof *all);
    *all_out = all;
    if (!all) return pfgm_error(PFGM_ERR_NOMEM, "nccl comm: cannot allocate %d rank records", host->world_size);
    pfgm_status st = host->allgather(host, mine, all, sizeof *mine, PFGM_U8);
    if (st != PFGM_OK) return pfgm_error_prefix(st, "nccl comm: exchange of GPU assignments");
    return check_records(all, host->world_size);
}

/* Rank 0's ncclUniqueId to every rank, with rank 0's status (so a failure there stops all). */
typedef struct id_message {
    int32_t status;
    char msg[192];
    ncclUniqueId id;
} id_message;

static pfgm_status share_unique_id(pfgm_comm *host, ncclUniqueId *id) {
    id_message im;
    memset(&im, 0, sizeof im);
    if (host->rank == 0) {
        ncclResult_t r = ncclGetUniqueId(&im.id);
        im.status = r == ncclSuccess ? PFGM_OK : PFGM_ERR_NCCL;
        if (r != ncclSuccess) snprintf(im.msg, sizeof im.msg, "ncclGetUniqueId failed: %s", ncclGetErrorString(r));
    }
    PFGM_TRY(host->broadcast(host, &im, sizeof im, PFGM_U8, 0));
    if (im.status != PFGM_OK) return pfgm_error((pfgm_status)im.status, "nccl comm: rank 0: %s", im.msg);
    *id = im.id;
    return host->barrier(host);
}

static pfgm_status nccl_init(pfgm_comm *c, nccl_impl *m) {
    pfgm_comm *host = m->host;
    rank_record mine;
    memset(&mine, 0, sizeof mine);
    mine.rank = host->rank;
    mine.local_rank = host->local_rank;
    mine.device = -1;
    snprintf(mine.host, sizeof mine.host, "%s", host->host);
    pfgm_status local = read_timeout(&m->timeout_s);
    if (local == PFGM_OK) local = choose_device(host, &mine);
    mine.status = local;
    if (local != PFGM_OK) snprintf(mine.msg, sizeof mine.msg, "%s", pfgm_error_message());
    rank_record *all = NULL;
    pfgm_status st = agree_on_devices(host, &mine, &all);
    free(all);
    if (st != PFGM_OK) return st;
    m->device = mine.device;
    PFGM_CUDA_CHECK(cudaSetDevice(m->device));

    ncclUniqueId id;
    PFGM_TRY(share_unique_id(host, &id));
    PFGM_CUDA_CHECK(cudaStreamCreateWithFlags(&m->stream, cudaStreamNonBlocking));
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0; /* every call returns; we poll, with the timeout */
    double t0 = now_s();
    ncclResult_t r = ncclCommInitRankConfig(&m->comm, host->world_size, id, host->rank, &config);
    if (r != ncclSuccess && r != ncclInProgress) {
        if (m->comm) ncclCommAbort(m->comm);
        m->comm = NULL;
        return pfgm_error(PFGM_ERR_NCCL, "nccl comm: ncclCommInitRankConfig failed on rank %d (%s): %s", host->rank,
                          host->host, ncclGetErrorString(r));
    }
    /* A hang here (a peer that never joins) ends in the fatal path after the timeout. */
    return nccl_settle(c, r, "communicator initialisation", t0);
}

int pfgm_comm_nccl_available(void) { return 1; }

pfgm_status pfgm_comm_nccl_create(pfgm_comm *host, int *device, pfgm_comm **out) {
    *out = NULL;
    if (!host || !device)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "nccl comm: NULL host communicator or device");
    pfgm_comm *c = calloc(1, sizeof *c);
    nccl_impl *m = calloc(1, sizeof *m);
    if (!c || !m) {
        free(c);
        free(m);
        return pfgm_error(PFGM_ERR_NOMEM, "nccl comm: cannot allocate");
    }
    m->host = host;
    m->device = -1;
    m->timeout_s = DEFAULT_TIMEOUT_S;
    c->impl = m;
    c->name = "nccl";
    c->rank = host->rank;
    c->world_size = host->world_size;
    c->local_rank = host->local_rank;
    c->local_size = host->local_size;
    memcpy(c->host, host->host, sizeof c->host);
    c->allreduce = nccl_allreduce;
    c->allgather = nccl_allgather;
    c->broadcast = nccl_broadcast;
    c->barrier = nccl_barrier;
    c->iallreduce = nccl_iallreduce;
    c->ireduce_scatter = nccl_ireduce_scatter;
    c->iallgather = nccl_iallgather;
    c->progress = nccl_progress;
    c->wait = nccl_wait_req;
    c->abort = nccl_abort;
    c->destroy = nccl_destroy;
    pfgm_status st = nccl_init(c, m);
    if (st != PFGM_OK) {
        nccl_destroy(c);
        return st;
    }
    *device = m->device;
    *out = c;
    return PFGM_OK;
}

/* Names the CUDA backend whose stream the non-blocking collectives order against (see the
 * comment at the top); be NULL returns to the unordered default (starts wait for the device's
 * work, wait() blocks until the collective completed). Errors: PFGM_ERR_INVALID_ARG when c
 * is not an NCCL communicator, be is not a CUDA backend, be's stream is on another device
 * than c's, or non-blocking collectives are in flight (waited for first, they would mix the
 * two orderings). */
pfgm_status pfgm_comm_nccl_set_backend(pfgm_comm *c, const pfgm_backend *be) {
    if (!c || c->destroy != nccl_destroy)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "nccl comm: set_backend on %s, not an NCCL communicator",
                          c ? c->name : "NULL");
    nccl_impl *m = c->impl;
    if (m->active)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "nccl comm: set_backend while non-blocking collectives are in flight");
    cudaStream_t s = (cudaStream_t)pfgm_backend_cuda_stream(be);
    if (be && !s)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "nccl comm: set_backend: backend %s is not a CUDA backend", be->name);
#if CUDART_VERSION >= 12080
    int dev = -1;
    if (s) PFGM_CUDA_CHECK(cudaStreamGetDevice(s, &dev));
    if (s && dev != m->device)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "nccl comm: set_backend: the backend runs on device %d, rank %d's NCCL on device %d",
                          dev, c->rank, m->device);
#endif
    m->compute = s;
    return PFGM_OK;
}
