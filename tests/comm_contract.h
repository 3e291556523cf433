/* The test contract every pfgm_comm implementation must pass (single, MPI; NCCL later):
 * the same assertions run against each, whatever the world size. Header-only, included by
 * one test file per implementation. Expects cmocka.h included first. */
#ifndef PFGM_TESTS_COMM_CONTRACT_H
#define PFGM_TESTS_COMM_CONTRACT_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pfgm/comm.h"

static void comm_contract_identity(pfgm_comm *c) {
    assert_true(c->world_size >= 1);
    assert_in_range(c->rank, 0, c->world_size - 1);
    assert_in_range(c->local_rank, 0, c->local_size - 1);
    assert_true(c->host[0] != '\0');
    /* ranks are distinct and complete: sum over ranks of rank = W(W-1)/2 */
    int64_t r = c->rank;
    assert_int_equal(c->allreduce(c, &r, 1, PFGM_I64, PFGM_REDUCE_SUM), PFGM_OK);
    assert_int_equal(r, (int64_t)c->world_size * (c->world_size - 1) / 2);
}

static void comm_contract_allreduce(pfgm_comm *c) {
    const int W = c->world_size;
    enum { n = 1001 };
    float f[n];
    double d[n];
    for (int i = 0; i < n; ++i) {
        f[i] = (float)(c->rank + 1) * (float)i;
        d[i] = (double)(c->rank + 1) + 0.25 * i;
    }
    assert_int_equal(c->allreduce(c, f, n, PFGM_F32, PFGM_REDUCE_SUM), PFGM_OK);
    for (int i = 0; i < n; ++i) assert_float_equal(f[i], (float)(W * (W + 1) / 2) * (float)i, 1e-3 * i + 1e-6);
    for (int i = 0; i < n; ++i) f[i] = (float)(c->rank + 1);
    assert_int_equal(c->allreduce(c, f, n, PFGM_F32, PFGM_REDUCE_AVG), PFGM_OK);
    for (int i = 0; i < n; ++i) assert_float_equal(f[i], (W + 1) / 2.0, 1e-6);
    assert_int_equal(c->allreduce(c, d, n, PFGM_F64, PFGM_REDUCE_MAX), PFGM_OK);
    for (int i = 0; i < n; ++i) assert_float_equal(d[i], (double)W + 0.25 * i, 1e-12);
    int32_t k = 10 + c->rank;
    assert_int_equal(c->allreduce(c, &k, 1, PFGM_I32, PFGM_REDUCE_MIN), PFGM_OK);
    assert_int_equal(k, 10);
    /* AVG of integers is refused with a message */
    assert_int_equal(c->allreduce(c, &k, 1, PFGM_I32, PFGM_REDUCE_AVG), PFGM_ERR_INVALID_ARG);
    assert_true(strstr(pfgm_error_message(), "AVG") != NULL);
}

static void comm_contract_allgather_broadcast(pfgm_comm *c) {
    const int W = c->world_size;
    enum { n = 37 };
    uint32_t send[n];
    uint32_t *recv = calloc((size_t)W * n, sizeof *recv);
    assert_non_null(recv);
    for (int i = 0; i < n; ++i) send[i] = (uint32_t)(1000 * c->rank + i);
    assert_int_equal(c->allgather(c, send, recv, n, PFGM_U32), PFGM_OK);
    for (int r = 0; r < W; ++r)
        for (int i = 0; i < n; ++i) assert_int_equal(recv[r * n + i], (uint32_t)(1000 * r + i));
    free(recv);

    double b[3] = {c->rank == 0 ? 1.5 : -1, c->rank == 0 ? 2.5 : -1, c->rank == 0 ? 3.5 : -1};
    assert_int_equal(c->broadcast(c, b, 3, PFGM_F64, 0), PFGM_OK);
    assert_float_equal(b[0], 1.5, 0);
    assert_float_equal(b[2], 3.5, 0);
    int last = W - 1;
    int64_t v = c->rank == last ? 77 : 0;
    assert_int_equal(c->broadcast(c, &v, 1, PFGM_I64, last), PFGM_OK);
    assert_int_equal(v, 77);
    assert_int_equal(c->broadcast(c, &v, 1, PFGM_I64, W), PFGM_ERR_INVALID_ARG);
    assert_int_equal(c->barrier(c), PFGM_OK);
}

/* The non-blocking collectives: three started at once, progressed, waited for out of order;
 * each result equals (bitwise) what the blocking allreduce gives on the same input. */
static void comm_contract_nonblocking(pfgm_comm *c) {
    const int W = c->world_size, r = c->rank;
    enum { n = 1003, k = 257 };
    float *a = malloc(n * sizeof *a), *ref = malloc(n * sizeof *ref);
    float *rs = malloc((size_t)W * k * sizeof *rs), *rs_ref = malloc((size_t)W * k * sizeof *rs_ref);
    double *g = malloc((size_t)W * k * sizeof *g);
    assert_true(a && ref && rs && rs_ref && g);
    for (int i = 0; i < n; ++i) a[i] = ref[i] = 0.1f * (float)(r + 1) + 1e-3f * (float)i;
    for (int i = 0; i < W * k; ++i) rs[i] = rs_ref[i] = (float)(r + 1) / 3.0f + 1e-4f * (float)i;
    for (int i = 0; i < W * k; ++i) g[i] = i / k == r ? 1000.0 * r + (i % k) : -1.0;
    assert_int_equal(c->allreduce(c, ref, n, PFGM_F32, PFGM_REDUCE_AVG), PFGM_OK);
    assert_int_equal(c->allreduce(c, rs_ref, (size_t)W * k, PFGM_F32, PFGM_REDUCE_SUM), PFGM_OK);

    pfgm_comm_req *q1 = NULL, *q2 = NULL, *q3 = NULL;
    assert_int_equal(c->iallreduce(c, a, n, PFGM_F32, PFGM_REDUCE_AVG, &q1), PFGM_OK);
    assert_int_equal(c->ireduce_scatter(c, rs, k, PFGM_F32, PFGM_REDUCE_SUM, &q2), PFGM_OK);
    assert_int_equal(c->iallgather(c, g, k, PFGM_F64, &q3), PFGM_OK);
    assert_true(q1 && q2 && q3);
    for (int i = 0; i < 5; ++i) assert_int_equal(c->progress(c), PFGM_OK);
    assert_int_equal(c->wait(c, q3), PFGM_OK);
    assert_int_equal(c->wait(c, q1), PFGM_OK);
    assert_int_equal(c->wait(c, q2), PFGM_OK);
    assert_memory_equal(a, ref, n * sizeof *a);
    assert_memory_equal(rs + (size_t)r * k, rs_ref + (size_t)r * k, k * sizeof *rs);
    for (int i = 0; i < W * k; ++i) assert_float_equal(g[i], 1000.0 * (i / k) + (i % k), 0);

    /* AVG of an integer dtype is refused before anything starts */
    int32_t iv[2] = {1, 2};
    pfgm_comm_req *bad = (pfgm_comm_req *)&iv;
    assert_int_equal(c->iallreduce(c, iv, 2, PFGM_I32, PFGM_REDUCE_AVG, &bad), PFGM_ERR_INVALID_ARG);
    assert_null(bad);
    free(a);
    free(ref);
    free(rs);
    free(rs_ref);
    free(g);
}

#endif
