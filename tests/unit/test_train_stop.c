/* A stop signal (SIGUSR1/SIGTERM: pfgm/preempt.h) during training: before the last step it
 * ends the run with a checkpoint and PFGM_STOPPED (exit 75, "requeue me"); on the last step
 * the checkpoint written is the final one, so the run ends normally (PFGM_OK, exit 0) and a
 * SLURM job is not requeued with nothing left to do. The signal is raised before pfgm_train
 * starts: the flag is polled after each step, so the stop lands on step 1. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "pfgm/backend.h"
#include "pfgm/comm.h"
#include "pfgm/log.h"
#include "pfgm/preempt.h"
#include "pfgm/trainer.h"
#include "train_testutil.h"

/* Trains n_iters steps with a stop signal pending from the start; returns the status, the
 * result in *r and whether ckpt_00000001.h5 exists in *have_ckpt1. */
static pfgm_status train_with_stop(int64_t n_iters, pfgm_train_result *r, int *have_ckpt1) {
    char dir[512], data[600], run[600], ckpt[800];
    fx_mkdtemp(dir, sizeof dir);
    fx_join(data, sizeof data, dir, "data.h5");
    fx_join(run, sizeof run, dir, "run");
    assert_int_equal(fx_write_dataset(data, 64, 1, 8, 1), PFGM_OK);
    pfgm_comm *comm = NULL;
    pfgm_backend *be = NULL;
    assert_int_equal(pfgm_comm_single_create(&comm), PFGM_OK);
    assert_int_equal(pfgm_backend_create("cpu", &be), PFGM_OK);
    pfgm_logger lg;
    pfgm_logger_init(&lg, 0);
    lg.level = PFGM_LOG_ERROR;
    const char *extra[] = {"training.snapshot_freq=1000", "training.snapshot_freq_for_preemption=1000"};
    pfgm_config cfg;
    assert_int_equal(tr_config(&cfg, data, n_iters, extra, 2), PFGM_OK);
    assert_int_equal(pfgm_preempt_install(), PFGM_OK);
    pfgm_preempt_clear();
    assert_int_equal(raise(SIGUSR1), 0);
    pfgm_train_options o = {.run_dir = run, .resume = "auto"};
    pfgm_status st = pfgm_train(&cfg, &o, comm, be, &lg, r);
    pfgm_preempt_clear();
    snprintf(ckpt, sizeof ckpt, "%s/checkpoints/ckpt_00000001.h5", run);
    struct stat sb;
    *have_ckpt1 = stat(ckpt, &sb) == 0;
    pfgm_backend_destroy(be);
    pfgm_comm_destroy(comm);
    fx_rm_rf(dir);
    return st;
}

static void test_stop_before_the_end_requeues(void **state) {
    (void)state;
    pfgm_train_result r;
    int ckpt = 0;
    assert_int_equal(train_with_stop(3, &r, &ckpt), PFGM_STOPPED);
    assert_int_equal(r.end_step, 1);
    assert_int_equal(r.stopped_signal, SIGUSR1);
    assert_true(ckpt);
}

static void test_stop_on_the_last_step_finishes(void **state) {
    (void)state;
    pfgm_train_result r;
    int ckpt = 0;
    assert_int_equal(train_with_stop(1, &r, &ckpt), PFGM_OK);
    assert_int_equal(r.end_step, 1);
    assert_int_equal(r.stopped_signal, 0);
    assert_true(ckpt); /* the final checkpoint */
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_stop_before_the_end_requeues),
                                       cmocka_unit_test(test_stop_on_the_last_step_finishes)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
