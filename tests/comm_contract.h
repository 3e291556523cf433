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

#endif
