/* `field.reference: global` under mpirun -np 2 (CTest label mpi): each rank's targets
 * against the all-gathered charges of every rank equal a single-process computation over
 * the concatenated charges (which each rank rebuilds locally from the same seeds). A
 * failure on any rank fails the test: the verdicts are all-reduced before exit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pfgm/backend.h"
#include "pfgm/comm.h"
#include "pfgm/field.h"
#include "pfgm/step.h"
#include "pfgm/perturb.h"

static pfgm_comm *comm_;

enum { N = 40, L = 12, B = 5 };

/* Rank r's charges: Philox uniforms in [-1, 1) at step r (user stream). */
static void rank_charges(int r, float *y) {
    pfgm_rng g = {.seed = 99, .rank = 0, .stream = PFGM_STREAM_USER, .step = (uint64_t)r};
    pfgm_rng_uniform(&g, 0, (size_t)(L * N), y);
    for (int i = 0; i < L * N; ++i) y[i] = 2.0f * y[i] - 1.0f;
}

static void t_global_equals_concatenated(void **state) {
    (void)state;
    const int W = comm_->world_size, me = comm_->rank;
    pfgm_backend *be;
    assert_int_equal(pfgm_backend_create("cpu", &be), PFGM_OK);
    float *mine = malloc(sizeof(float) * L * N), *all = malloc(sizeof(float) * (size_t)(W * L * N));
    float *concat = malloc(sizeof(float) * (size_t)(W * L * N));
    float pert[B * (N + 1)], out_g[B * (N + 1)], out_1[B * (N + 1)];
    assert_non_null(mine);
    assert_non_null(all);
    assert_non_null(concat);
    rank_charges(me, mine);
    for (int r = 0; r < W; ++r) rank_charges(r, concat + (size_t)r * L * N);
    /* perturb this rank's small batch (the first B of its charges), as the trainer does */
    pfgm_perturb_params p = pfgm_perturb_params_default();
    pfgm_rng r = {.seed = 5, .rank = (uint32_t)me, .stream = PFGM_STREAM_PERTURB, .step = 3};
    assert_int_equal(pfgm_perturb(be, &r, &p, B, N, mine, pert, NULL, NULL), PFGM_OK);

    size_t wsb = pfgm_field_workspace_bytes(B, (int64_t)W * L);
    void *ws = malloc(wsb);
    assert_non_null(ws);
    assert_int_equal(pfgm_field_targets_global(comm_, be, B, L, N, pert, mine, all, 5.0, ws, wsb, out_g), PFGM_OK);
    assert_memory_equal(all, concat, sizeof(float) * (size_t)(W * L * N)); /* rank order */
    assert_int_equal(pfgm_field_targets(be, B, (int64_t)W * L, N, pert, concat, 5.0, ws, wsb, out_1), PFGM_OK);
    assert_memory_equal(out_g, out_1, sizeof out_g);

    /* the other ranks' charges change the targets (they are really used) */
    float out_local[B * (N + 1)];
    assert_int_equal(pfgm_field_targets(be, B, L, N, pert, mine, 5.0, ws, wsb, out_local), PFGM_OK);
    double diff = 0.0;
    for (int i = 0; i < B * (N + 1); ++i) diff = fmax(diff, fabs(out_local[i] - out_g[i]));
    printf("rank %d: max |global - local| = %.3e\n", me, diff);
    if (W > 1) assert_true(diff > 1e-3);
    free(ws);
    free(mine);
    free(all);
    free(concat);
    pfgm_backend_destroy(be);
}

static void t_world(void **state) {
    (void)state;
    assert_int_equal(comm_->world_size, 2); /* registered with mpirun -np 2 */
}

int main(int argc, char **argv) {
    if (pfgm_comm_mpi_create(&argc, &argv, &comm_) != PFGM_OK) {
        fprintf(stderr, "test_field_global: %s\n", pfgm_error_message());
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_world),
        cmocka_unit_test(t_global_equals_concatenated),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    int any = failed != 0;
    MPI_Allreduce(MPI_IN_PLACE, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    pfgm_comm_destroy(comm_);
    return any ? 1 : 0;
}
