/* The comm contract on the MPI communicator, run under mpirun -np 2 (CTest label mpi). A
 * failure on any rank fails the test: every rank's verdict is all-reduced before exit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <mpi.h>
#include <stdio.h>

#include "comm_contract.h"

static pfgm_comm *comm_;

static void t_identity(void **state) { (void)state; comm_contract_identity(comm_); }
static void t_allreduce(void **state) { (void)state; comm_contract_allreduce(comm_); }
static void t_gather(void **state) { (void)state; comm_contract_allgather_broadcast(comm_); }
static void t_nonblocking(void **state) { (void)state; comm_contract_nonblocking(comm_); }
static void t_world(void **state) {
    (void)state;
    assert_int_equal(comm_->world_size, 2); /* registered with mpirun -np 2 */
    assert_string_equal(comm_->name, "mpi");
}

int main(int argc, char **argv) {
    if (pfgm_comm_mpi_create(&argc, &argv, &comm_) != PFGM_OK) {
        fprintf(stderr, "test_comm_mpi: %s\n", pfgm_error_message());
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_identity),
        cmocka_unit_test(t_allreduce),
        cmocka_unit_test(t_gather),
        cmocka_unit_test(t_nonblocking),
        cmocka_unit_test(t_world),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    int any = failed != 0;
    MPI_Allreduce(MPI_IN_PLACE, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    pfgm_comm_destroy(comm_);
    return any ? 1 : 0;
}
