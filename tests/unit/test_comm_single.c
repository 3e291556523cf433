/* The comm contract on the single-process communicator. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "comm_contract.h"

static int setup(void **state) { return pfgm_comm_single_create((pfgm_comm **)state) == PFGM_OK ? 0 : -1; }
static int teardown(void **state) { pfgm_comm_destroy(*state); return 0; }
static void t_identity(void **state) { comm_contract_identity(*state); }
static void t_allreduce(void **state) { comm_contract_allreduce(*state); }
static void t_gather(void **state) { comm_contract_allgather_broadcast(*state); }
static void t_nonblocking(void **state) { comm_contract_nonblocking(*state); }
static void t_launcher_env(void **state) {
    (void)state;
    unsetenv("OMPI_COMM_WORLD_SIZE");
    unsetenv("PMI_SIZE");
    unsetenv("PMIX_SIZE");
    unsetenv("SLURM_STEP_NUM_TASKS");
    assert_int_equal(pfgm_comm_launched_by_mpi(), 0);
    setenv("OMPI_COMM_WORLD_SIZE", "1", 1);
    assert_int_equal(pfgm_comm_launched_by_mpi(), 1);
    unsetenv("OMPI_COMM_WORLD_SIZE");
    setenv("SLURM_STEP_NUM_TASKS", "1", 1); /* a plain srun of one task is not an MPI job */
    assert_int_equal(pfgm_comm_launched_by_mpi(), 0);
    setenv("SLURM_STEP_NUM_TASKS", "4", 1);
    assert_int_equal(pfgm_comm_launched_by_mpi(), 1);
    unsetenv("SLURM_STEP_NUM_TASKS");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_identity),
        cmocka_unit_test(t_allreduce),
        cmocka_unit_test(t_gather),
        cmocka_unit_test(t_nonblocking),
        cmocka_unit_test(t_launcher_env),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
