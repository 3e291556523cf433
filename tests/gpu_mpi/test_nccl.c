/* The NCCL communicator under mpirun (labels gpu, mpi; registered by tests/gpu_nccl.cmake:
 * `nccl` with -np 2, `nccl_one_rank` with -np 1).
 *   - With one GPU per rank: the comm contract of tests/comm_contract.h through device
 *     buffers (a staging communicator copies each host buffer to the GPU, runs the NCCL
 *     collective on it and copies it back), the non-blocking part twice (without and with
 *     the backend's stream set: pfgm_comm_nccl_set_backend), then collectives on device
 *     buffers proper: a large AVG all-reduce, an in-place all-gather, buffers written by a
 *     backend kernel just before the collective, the `field.reference: global` gather of
 *     charges, and non-blocking collectives between backend kernels with no host
 *     synchronisation. With one rank (one GPU) the same tests check the calls and the
 *     ordering machinery, not data moving between GPUs.
 *   - With one GPU for two ranks: checks that the communicator refuses it with the host
 *     and ranks named, then reports SKIPPED (exit 77): the collectives need two GPUs.
 *   - Without a GPU: checks that the communicator refuses to start, alike on every rank,
 *     then SKIPPED (exit 77); without NCCL: SKIPPED.
 * `--hang` and `--hang-nonblocking` are the timeout checks driven by
 * tests/gpu_mpi/nccl_timeout.sh: rank 0 enters an all-reduce (blocking, or started and
 * waited for) that rank 1 never joins, and must abort the job (never wait forever).
 * A failure on any rank fails the test: the verdicts are all-reduced over MPI before exit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pfgm/backend.h"
#include "pfgm/field.h"
#include "pfgm/step.h"
#include "comm_contract.h"

static pfgm_comm *host_, *nccl_, *staged_;
static pfgm_backend *gpu_;

/* ---- the contract through device buffers --------------------------------------------- */

static void *dev_copy_of(const void *host, size_t bytes) {
    void *d = NULL;
    if (gpu_->alloc(gpu_, bytes, &d) != PFGM_OK) return NULL;
    if (host && bytes && gpu_->copy(gpu_, d, host, bytes, PFGM_COPY_H2D) != PFGM_OK) {
        gpu_->free(gpu_, d);
        return NULL;
    }
    return d;
}

static pfgm_status to_host(void *host, const void *dev, size_t bytes) {
    return bytes ? gpu_->copy(gpu_, host, dev, bytes, PFGM_COPY_D2H) : PFGM_OK;
}

static pfgm_status staged_allreduce(pfgm_comm *c, void *buf, size_t count, pfgm_dtype t, pfgm_redop op) {
    size_t bytes = count * pfgm_dtype_size(t);
    void *d = dev_copy_of(buf, bytes);
    if (bytes && !d) return pfgm_error(PFGM_ERR_NOMEM, "staging: no device buffer");
    pfgm_status st = nccl_->allreduce(nccl_, d, count, t, op);
    if (st == PFGM_OK) st = to_host(buf, d, bytes);
    gpu_->free(gpu_, d);
    return st;
}

static pfgm_status staged_allgather(pfgm_comm *c, const void *send, void *recv, size_t count, pfgm_dtype t) {
    size_t bytes = count * pfgm_dtype_size(t);
    void *ds = dev_copy_of(send, bytes), *dr = dev_copy_of(NULL, bytes * (size_t)c->world_size);
    pfgm_status st = bytes && (!ds || !dr) ? pfgm_error(PFGM_ERR_NOMEM, "staging: no device buffer")
                                           : nccl_->allgather(nccl_, ds, dr, count, t);
    if (st == PFGM_OK) st = to_host(recv, dr, bytes * (size_t)c->world_size);
    gpu_->free(gpu_, ds);
    gpu_->free(gpu_, dr);
    return st;
}

static pfgm_status staged_broadcast(pfgm_comm *c, void *buf, size_t count, pfgm_dtype t, int root) {
    size_t bytes = count * pfgm_dtype_size(t);
    void *d = dev_copy_of(buf, bytes);
    if (bytes && !d) return pfgm_error(PFGM_ERR_NOMEM, "staging: no device buffer");
    pfgm_status st = nccl_->broadcast(nccl_, d, count, t, root);
    if (st == PFGM_OK) st = to_host(buf, d, bytes);
    gpu_->free(gpu_, d);
    return st;
}

/* A staged non-blocking collective: the device copy of the host buffer and the NCCL
 * request on it; wait() copies the whole buffer back (through the backend's stream, which
 * the NCCL wait has ordered after the collective) and frees the copy. Handed out as a
 * pfgm_comm_req pointer and converted back in staged_wait. */
typedef struct staged_req {
    pfgm_comm_req *inner;
    void *host, *dev;
    size_t bytes;
} staged_req;

typedef enum { NB_ALLREDUCE, NB_REDUCE_SCATTER, NB_ALLGATHER } nb_kind;

static pfgm_status staged_start(nb_kind kind, void *buf, size_t count, pfgm_dtype t, pfgm_redop op,
                                pfgm_comm_req **req) {
    *req = NULL;
    size_t blocks = kind == NB_ALLREDUCE ? 1 : (size_t)nccl_->world_size;
    staged_req *s = calloc(1, sizeof *s);
    if (!s) return pfgm_error(PFGM_ERR_NOMEM, "staging: no request");
    s->host = buf;
    s->bytes = blocks * count * pfgm_dtype_size(t);
    s->dev = dev_copy_of(buf, s->bytes);
    pfgm_status st = s->bytes && !s->dev ? pfgm_error(PFGM_ERR_NOMEM, "staging: no device buffer")
                     : kind == NB_ALLREDUCE      ? nccl_->iallreduce(nccl_, s->dev, count, t, op, &s->inner)
                     : kind == NB_REDUCE_SCATTER ? nccl_->ireduce_scatter(nccl_, s->dev, count, t, op, &s->inner)
                                                 : nccl_->iallgather(nccl_, s->dev, count, t, &s->inner);
    if (st != PFGM_OK) {
        gpu_->free(gpu_, s->dev);
        free(s);
        return st;
    }
    *req = (pfgm_comm_req *)s;
    return PFGM_OK;
}

static pfgm_status staged_iallreduce(pfgm_comm *c, void *buf, size_t count, pfgm_dtype t, pfgm_redop op,
                                     pfgm_comm_req **req) {
    return staged_start(NB_ALLREDUCE, buf, count, t, op, req);
}
static pfgm_status staged_ireduce_scatter(pfgm_comm *c, void *buf, size_t count, pfgm_dtype t, pfgm_redop op,
                                          pfgm_comm_req **req) {
    return staged_start(NB_REDUCE_SCATTER, buf, count, t, op, req);
}
static pfgm_status staged_iallgather(pfgm_comm *c, void *buf, size_t count, pfgm_dtype t, pfgm_comm_req **req) {
    return staged_start(NB_ALLGATHER, buf, count, t, PFGM_REDUCE_SUM, req);
}
static pfgm_status staged_progress(pfgm_comm *c) { return nccl_->progress(nccl_); }

static pfgm_status staged_wait(pfgm_comm *c, pfgm_comm_req *req) {
    staged_req *s = (staged_req *)req;
    pfgm_status st = nccl_->wait(nccl_, s->inner);
    if (st == PFGM_OK) st = to_host(s->host, s->dev, s->bytes);
    gpu_->free(gpu_, s->dev);
    free(s);
    return st;
}

static pfgm_status staged_barrier(pfgm_comm *c) { return nccl_->barrier(nccl_); }
static void staged_abort(pfgm_comm *c, int code) { nccl_->abort(nccl_, code); }

static pfgm_comm staged_comm(void) {
    pfgm_comm s = *nccl_;
    s.allreduce = staged_allreduce;
    s.allgather = staged_allgather;
    s.broadcast = staged_broadcast;
    s.barrier = staged_barrier;
    s.iallreduce = staged_iallreduce;
    s.ireduce_scatter = staged_ireduce_scatter;
    s.iallgather = staged_iallgather;
    s.progress = staged_progress;
    s.wait = staged_wait;
    s.abort = staged_abort;
    s.destroy = NULL;
    return s;
}

static void t_identity(void **state) {
    (void)state;
    comm_contract_identity(staged_);
    assert_string_equal(nccl_->name, "nccl");
    assert_int_equal(nccl_->world_size, host_->world_size); /* the mpirun -np of the registration */
    assert_int_equal(nccl_->rank, host_->rank);
}
static void t_allreduce(void **state) { (void)state; comm_contract_allreduce(staged_); }
static void t_gather(void **state) { (void)state; comm_contract_allgather_broadcast(staged_); }

/* The non-blocking contract before any backend is named: starts wait for the device's
 * work and wait() for the collective (the communicator's default). */
static void t_nonblocking_unordered(void **state) {
    (void)state;
    comm_contract_nonblocking(staged_);
}

/* pfgm_comm_nccl_set_backend: refusals, then the non-blocking contract ordered by events
 * on the backend's stream (the setting stays for the tests after this one). */
static void t_nonblocking_ordered(void **state) {
    (void)state;
    pfgm_backend *cpu = NULL;
    assert_int_equal(pfgm_backend_cpu_create(&(pfgm_cpu_options){.reference = 1}, &cpu), PFGM_OK);
    assert_int_equal(pfgm_comm_nccl_set_backend(nccl_, cpu), PFGM_ERR_INVALID_ARG); /* not CUDA */
    assert_non_null(strstr(pfgm_error_message(), "not a CUDA backend"));
    pfgm_backend_destroy(cpu);
    assert_int_equal(pfgm_comm_nccl_set_backend(host_, gpu_), PFGM_ERR_INVALID_ARG); /* not NCCL */
    /* in flight: refused, and the request is still waited for normally */
    float *d = NULL;
    pfgm_comm_req *q = NULL;
    assert_int_equal(gpu_->alloc(gpu_, sizeof(float) * 64, (void **)&d), PFGM_OK);
    assert_int_equal(nccl_->iallreduce(nccl_, d, 64, PFGM_F32, PFGM_REDUCE_SUM, &q), PFGM_OK);
    assert_int_equal(pfgm_comm_nccl_set_backend(nccl_, gpu_), PFGM_ERR_INVALID_ARG);
    assert_int_equal(nccl_->wait(nccl_, q), PFGM_OK);
    gpu_->free(gpu_, d);
    /* a count of 0 starts nothing and is waited for like any request */
    assert_int_equal(nccl_->iallgather(nccl_, NULL, 0, PFGM_F64, &q), PFGM_OK);
    assert_non_null(q);
    assert_int_equal(nccl_->wait(nccl_, q), PFGM_OK);

    assert_int_equal(pfgm_comm_nccl_set_backend(nccl_, gpu_), PFGM_OK);
    comm_contract_nonblocking(staged_);
}

/* ---- device buffers proper -------------------------------------------------------------- */

/* 2^24 + 3 floats averaged (the gradient all-reduce's shape and size class), written by a
 * backend kernel on the backend's stream immediately before the collective: the
 * communicator must order itself after that work. */
static void t_large_avg(void **state) {
    (void)state;
    const int W = nccl_->world_size, r = nccl_->rank;
    const int64_t n = (1 << 24) + 3;
    float *d = NULL, *h = malloc(sizeof(float) * (size_t)n);
    assert_non_null(h);
    assert_int_equal(gpu_->alloc(gpu_, sizeof(float) * (size_t)n, (void **)&d), PFGM_OK);
    assert_int_equal(gpu_->fill(gpu_, n, (float)(r + 1), d), PFGM_OK); /* no sync: ordering is the comm's job */
    assert_int_equal(nccl_->allreduce(nccl_, d, (size_t)n, PFGM_F32, PFGM_REDUCE_AVG), PFGM_OK);
    assert_int_equal(pfgm_backend_download(gpu_, h, d, n), PFGM_OK);
    const float want = (float)(W + 1) / 2.0f; /* mean of 1..W: exact in float */
    int64_t bad = 0;
    for (int64_t i = 0; i < n; ++i) bad += h[i] != want;
    assert_int_equal(bad, 0);
    /* SUM then MAX on the same buffer, again straight after a kernel */
    assert_int_equal(gpu_->fill(gpu_, n, (float)(r + 1), d), PFGM_OK);
    assert_int_equal(nccl_->allreduce(nccl_, d, (size_t)n, PFGM_F32, PFGM_REDUCE_SUM), PFGM_OK);
    assert_int_equal(pfgm_backend_download(gpu_, h, d, 1000), PFGM_OK);
    for (int i = 0; i < 1000; ++i) assert_true(h[i] == (float)(W * (W + 1) / 2));
    gpu_->free(gpu_, d);
    free(h);
}

/* All-gather in place (send = recv + rank * count) and with separate buffers; the charges
 * gather of `field.reference: global` on device memory. */
static void t_gather_device(void **state) {
    (void)state;
    const int W = nccl_->world_size, r = nccl_->rank;
    const int64_t L = 64, N = 3072, n = L * N;
    float *all = NULL, *mine = NULL, *h = malloc(sizeof(float) * (size_t)(W * n));
    assert_non_null(h);
    assert_int_equal(gpu_->alloc(gpu_, sizeof(float) * (size_t)(W * n), (void **)&all), PFGM_OK);
    assert_int_equal(gpu_->alloc(gpu_, sizeof(float) * (size_t)n, (void **)&mine), PFGM_OK);
    assert_int_equal(gpu_->fill(gpu_, n, 10.0f + (float)r, all + r * n), PFGM_OK);
    assert_int_equal(nccl_->allgather(nccl_, all + r * n, all, (size_t)n, PFGM_F32), PFGM_OK);
    assert_int_equal(pfgm_backend_download(gpu_, h, all, W * n), PFGM_OK);
    for (int q = 0; q < W; ++q)
        for (int64_t i = 0; i < n; i += 997) assert_true(h[q * n + i] == 10.0f + (float)q);
    assert_int_equal(gpu_->fill(gpu_, n, -1.0f - (float)r, mine), PFGM_OK);
    assert_int_equal(pfgm_field_gather_charges(nccl_, L, N, mine, all), PFGM_OK);
    assert_int_equal(pfgm_backend_download(gpu_, h, all, W * n), PFGM_OK);
    for (int q = 0; q < W; ++q)
        for (int64_t i = 0; i < n; i += 997) assert_true(h[q * n + i] == -1.0f - (float)q);
    /* a send buffer overlapping the receive buffer elsewhere than at recv + rank * count is
     * refused on every rank (before any rank enters NCCL) */
    assert_int_equal(nccl_->allgather(nccl_, all + 1, all, (size_t)n, PFGM_F32), PFGM_ERR_INVALID_ARG);
    gpu_->free(gpu_, all);
    gpu_->free(gpu_, mine);
    free(h);
}

/* Broadcast of device memory from the last rank, straight after a kernel. */
static void t_broadcast_device(void **state) {
    (void)state;
    const int W = nccl_->world_size, r = nccl_->rank;
    const int64_t n = 1000003;
    double *d = NULL, *h = malloc(sizeof(double) * (size_t)n);
    assert_non_null(h);
    assert_int_equal(gpu_->alloc(gpu_, sizeof(double) * (size_t)n, (void **)&d), PFGM_OK);
    for (int64_t i = 0; i < n; ++i) h[i] = r == W - 1 ? 0.5 * (double)i : -1.0;
    assert_int_equal(gpu_->copy(gpu_, d, h, sizeof(double) * (size_t)n, PFGM_COPY_H2D), PFGM_OK);
    assert_int_equal(nccl_->broadcast(nccl_, d, (size_t)n, PFGM_F64, W - 1), PFGM_OK);
    memset(h, 0, sizeof(double) * (size_t)n);
    assert_int_equal(gpu_->copy(gpu_, h, d, sizeof(double) * (size_t)n, PFGM_COPY_D2H), PFGM_OK);
    for (int64_t i = 0; i < n; ++i) assert_true(h[i] == 0.5 * (double)i);
    gpu_->free(gpu_, d);
    free(h);
}

/* Non-blocking collectives between backend kernels, with no host synchronisation from the
 * first kernel to the last: each bucket is written by kernels issued just before its start
 * (the communication stream must wait for them: the `ready` event), later buckets are written
 * while earlier ones are in flight, and kernels issued after wait() read the results (wait()
 * also blocks the host until the collective is done, so this half checks that the results
 * are there for later work, not the `done` event alone). Then iallreduce against the blocking
 * allreduce on the same Philox data, bitwise. Needs the backend set (t_nonblocking_ordered). */
static void t_nonblocking_device(void **state) {
    (void)state;
    const int W = nccl_->world_size, r = nccl_->rank;
    const int64_t n = (1 << 24) + 3, k = (1 << 20) + 1;
    float *a = NULL, *ones = NULL, *rs = NULL, *ag = NULL, *u = NULL, *u2 = NULL;
    float *h = malloc(sizeof(float) * (size_t)n), *h2 = malloc(sizeof(float) * (size_t)n);
    assert_true(h && h2);
    assert_int_equal(gpu_->alloc(gpu_, sizeof(float) * (size_t)n, (void **)&a), PFGM_OK);
    assert_int_equal(gpu_->alloc(gpu_, sizeof(float) * (size_t)n, (void **)&ones), PFGM_OK);
    assert_int_equal(gpu_->alloc(gpu_, sizeof(float) * (size_t)(W * k), (void **)&rs), PFGM_OK);
    assert_int_equal(gpu_->alloc(gpu_, sizeof(float) * (size_t)(W * k), (void **)&ag), PFGM_OK);
    assert_int_equal(gpu_->alloc(gpu_, sizeof(float) * (size_t)n, (void **)&u), PFGM_OK);
    assert_int_equal(gpu_->alloc(gpu_, sizeof(float) * (size_t)n, (void **)&u2), PFGM_OK);
    assert_int_equal(gpu_->sync(gpu_), PFGM_OK); /* the allocations' zero fills; none after this */

    /* bucket 1: a = r + 1, built by 16 (r + 1) kernels adding 1/16 (exact in float), so its
     * last write lands well after the host has started the all-reduce */
    assert_int_equal(gpu_->fill(gpu_, n, 1.0f, ones), PFGM_OK);
    assert_int_equal(gpu_->fill(gpu_, n, 0.0f, a), PFGM_OK);
    for (int j = 0; j < 16 * (r + 1); ++j) assert_int_equal(gpu_->axpby(gpu_, n, 0.0625f, ones, 1.0f, a), PFGM_OK);
    pfgm_comm_req *q1 = NULL, *q2 = NULL, *q3 = NULL;
    assert_int_equal(nccl_->iallreduce(nccl_, a, (size_t)n, PFGM_F32, PFGM_REDUCE_SUM, &q1), PFGM_OK);
    /* bucket 2, written while bucket 1 is in flight: every block is r + 1 */
    assert_int_equal(gpu_->fill(gpu_, W * k, (float)(r + 1), rs), PFGM_OK);
    assert_int_equal(nccl_->ireduce_scatter(nccl_, rs, (size_t)k, PFGM_F32, PFGM_REDUCE_SUM, &q2), PFGM_OK);
    /* bucket 3: this rank's block of a gather in place */
    assert_int_equal(gpu_->fill(gpu_, k, 100.0f + (float)r, ag + r * k), PFGM_OK);
    assert_int_equal(nccl_->iallgather(nccl_, ag, (size_t)k, PFGM_F32, &q3), PFGM_OK);
    for (int i = 0; i < 3; ++i) assert_int_equal(nccl_->progress(nccl_), PFGM_OK);
    assert_int_equal(nccl_->wait(nccl_, q2), PFGM_OK);
    assert_int_equal(nccl_->wait(nccl_, q1), PFGM_OK);
    assert_int_equal(nccl_->wait(nccl_, q3), PFGM_OK);
    /* kernels after the waits read the results: a *= 2, rs block r *= 2, ag += 1 */
    assert_int_equal(gpu_->axpby(gpu_, n, 2.0f, a, 0.0f, a), PFGM_OK);
    assert_int_equal(gpu_->axpby(gpu_, k, 2.0f, rs + r * k, 0.0f, rs + r * k), PFGM_OK);
    assert_int_equal(gpu_->axpby(gpu_, W * k, 1.0f, ones, 1.0f, ag), PFGM_OK);

    const float sum = (float)(W * (W + 1) / 2); /* sum of 1..W, exact */
    int64_t bad = 0;
    assert_int_equal(pfgm_backend_download(gpu_, h, a, n), PFGM_OK);
    for (int64_t i = 0; i < n; ++i) bad += h[i] != 2.0f * sum;
    assert_int_equal(bad, 0);
    assert_int_equal(pfgm_backend_download(gpu_, h, rs + r * k, k), PFGM_OK);
    for (int64_t i = 0; i < k; ++i) bad += h[i] != 2.0f * sum;
    assert_int_equal(bad, 0);
    assert_int_equal(pfgm_backend_download(gpu_, h, ag, W * k), PFGM_OK);
    for (int q = 0; q < W; ++q)
        for (int64_t i = 0; i < k; ++i) bad += h[q * k + i] != 101.0f + (float)q;
    assert_int_equal(bad, 0);

    /* AVG of different uniforms on every rank: non-blocking == blocking, bitwise */
    pfgm_rng rng = {.seed = 11, .rank = (uint32_t)r, .stream = PFGM_STREAM_USER, .step = 0};
    assert_int_equal(gpu_->fill_uniform(gpu_, &rng, 0, n, u), PFGM_OK);
    assert_int_equal(gpu_->copy(gpu_, u2, u, sizeof(float) * (size_t)n, PFGM_COPY_D2D), PFGM_OK);
    assert_int_equal(nccl_->allreduce(nccl_, u2, (size_t)n, PFGM_F32, PFGM_REDUCE_AVG), PFGM_OK);
    assert_int_equal(nccl_->iallreduce(nccl_, u, (size_t)n, PFGM_F32, PFGM_REDUCE_AVG, &q1), PFGM_OK);
    assert_int_equal(nccl_->wait(nccl_, q1), PFGM_OK);
    assert_int_equal(pfgm_backend_download(gpu_, h, u, n), PFGM_OK);
    assert_int_equal(pfgm_backend_download(gpu_, h2, u2, n), PFGM_OK);
    assert_memory_equal(h, h2, sizeof(float) * (size_t)n);

    gpu_->free(gpu_, a);
    gpu_->free(gpu_, ones);
    gpu_->free(gpu_, rs);
    gpu_->free(gpu_, ag);
    gpu_->free(gpu_, u);
    gpu_->free(gpu_, u2);
    free(h);
    free(h2);
}

/* ---- setup --------------------------------------------------------------------------------- */

/* Every rank's verdict (0 ok, 1 failed, 77 skipped) agreed over MPI: the largest wins. */
static int agree(int verdict) {
    int32_t v = verdict == 77 ? 1 : verdict ? 2 : 0;
    if (host_->allreduce(host_, &v, 1, PFGM_I32, PFGM_REDUCE_MAX) != PFGM_OK) return 1;
    return v == 2 ? 1 : v == 1 ? 77 : 0;
}

/* One GPU for two ranks: the refusal must name the host and both ranks. It comes before any
 * rank creates a CUDA context (choose_device reads bus ids only), so it holds in every compute
 * mode, exclusive-process included, where a second context on the GPU would be refused. */
static int check_refusal(pfgm_status st) {
    const char *msg = pfgm_error_message();
    char want[128];
    snprintf(want, sizeof want, "ranks 0, 1 on host %s share one GPU", host_->host);
    if (st == PFGM_ERR_CONFIG && strstr(msg, want)) {
        if (host_->rank == 0)
            printf("SKIPPED: the collectives need two GPUs; one GPU for two ranks was refused as it must be:\n  %s\n",
                   msg);
        return 77;
    }
    fprintf(stderr, "rank %d: pfgm_comm_nccl_create: %s (status %d)\n", host_->rank, msg, (int)st);
    return 1;
}

/* NCCL built but no GPU: creation must fail alike on every rank (the GPU records are still
 * exchanged and judged together), naming the first rank, its host and the ranks there. */
static int check_no_device(void) {
    int device = -1;
    pfgm_status st = pfgm_comm_nccl_create(host_, &device, &nccl_);
    char want[160];
    snprintf(want, sizeof want, "rank 0 on host %s (ranks there: %s): no CUDA device is visible", host_->host,
             host_->world_size == 1 ? "0" : "0, 1");
    if (st == PFGM_ERR_UNSUPPORTED && nccl_ == NULL && strstr(pfgm_error_message(), want)) {
        if (host_->rank == 0) printf("SKIPPED: no CUDA device; the NCCL communicator refused to start as it must:\n  %s\n",
                                     pfgm_error_message());
        return 77;
    }
    fprintf(stderr, "rank %d: without a GPU, pfgm_comm_nccl_create gave status %d: %s\n", host_->rank, (int)st,
            pfgm_error_message());
    return 1;
}

/* --hang: rank 0 all-reduces, rank 1 never joins; rank 0 must abort the job after
 * PFGM_NCCL_TIMEOUT_S. Reaching the end on rank 0 is the failure. --hang-nonblocking: the
 * same with an iallreduce ordered on the backend's stream and then waited for. */
static int hang(int nonblocking) {
    float *d = NULL;
    if (gpu_->alloc(gpu_, sizeof(float) * 1024, (void **)&d) != PFGM_OK) return 1;
    if (nccl_->rank == 0) {
        if (nonblocking) {
            pfgm_comm_req *q = NULL;
            if (pfgm_comm_nccl_set_backend(nccl_, gpu_) != PFGM_OK ||
                nccl_->iallreduce(nccl_, d, 1024, PFGM_F32, PFGM_REDUCE_SUM, &q) != PFGM_OK) {
                fprintf(stderr, "rank 0: %s\n", pfgm_error_message());
                return 1;
            }
            nccl_->wait(nccl_, q);
        } else {
            nccl_->allreduce(nccl_, d, 1024, PFGM_F32, PFGM_REDUCE_SUM);
        }
        fprintf(stderr, "rank 0: the all-reduce that rank 1 never joined returned\n");
        return 1;
    }
    sleep(120);
    return 0;
}

int main(int argc, char **argv) {
    int hang_mode = argc > 1 && strcmp(argv[1], "--hang") == 0;
    int hang_nb_mode = argc > 1 && strcmp(argv[1], "--hang-nonblocking") == 0;
    if (pfgm_comm_mpi_create(&argc, &argv, &host_) != PFGM_OK) {
        fprintf(stderr, "test_nccl: %s\n", pfgm_error_message());
        return 1;
    }
    int verdict = 0;
    if (!pfgm_comm_nccl_available()) {
        if (host_->rank == 0) printf("SKIPPED: pfgm built without NCCL\n");
        verdict = 77;
    } else if (!pfgm_backend_cuda_available()) {
        verdict = check_no_device();
    }
    verdict = agree(verdict);
    int device = -1;
    if (verdict == 0) {
        pfgm_status st = pfgm_comm_nccl_create(host_, &device, &nccl_);
        verdict = st == PFGM_OK ? 0 : check_refusal(st);
        verdict = agree(verdict);
    }
    if (verdict == 0 && pfgm_backend_cuda_create(&(pfgm_cuda_options){.device = device}, &gpu_) != PFGM_OK) {
        fprintf(stderr, "rank %d: cuda backend on device %d: %s\n", host_->rank, device, pfgm_error_message());
        verdict = 1;
    }
    verdict = agree(verdict);
    if (verdict == 0 && (hang_mode || hang_nb_mode)) {
        verdict = hang(hang_nb_mode);
    } else if (verdict == 0) {
        pfgm_comm staged = staged_comm();
        staged_ = &staged;
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(t_identity),         cmocka_unit_test(t_allreduce),
            cmocka_unit_test(t_gather),           cmocka_unit_test(t_nonblocking_unordered),
            cmocka_unit_test(t_nonblocking_ordered), cmocka_unit_test(t_large_avg),
            cmocka_unit_test(t_gather_device),    cmocka_unit_test(t_broadcast_device),
            cmocka_unit_test(t_nonblocking_device),
        };
        verdict = cmocka_run_group_tests(tests, NULL, NULL) != 0;
        verdict = agree(verdict);
    }
    pfgm_backend_destroy(gpu_);
    pfgm_comm_destroy(nccl_);
    pfgm_comm_destroy(host_);
    return verdict;
}
