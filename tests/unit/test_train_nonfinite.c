/* Non-finite values: a step whose loss or gradients are not finite is skipped (no update,
 * counted in metrics.jsonl), and the run stops with PFGM_ERR_NUMERIC after more than
 * training.max_skipped such steps in a row. A learning rate of 1e30 makes the first update
 * blow the parameters up so that every later forward overflows. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "pfgm/backend.h"
#include "pfgm/comm.h"
#include "pfgm/log.h"
#include "pfgm/trainer.h"
#include "train_testutil.h"

static void test_skips_then_stops(void **state) {
    (void)state;
    char dir[512], data[600], run[600], metrics[700];
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
    const char *extra[] = {"optim.lr=1e30", "optim.warmup=0", "optim.grad_clip=0", "training.max_skipped=3",
                           "training.snapshot_freq=1000", "training.snapshot_freq_for_preemption=1000"};
    pfgm_config cfg;
    assert_int_equal(tr_config(&cfg, data, 50, extra, 6), PFGM_OK);
    pfgm_train_options o = {.run_dir = run, .resume = "auto"};
    pfgm_train_result r;
    pfgm_status st = pfgm_train(&cfg, &o, comm, be, &lg, &r);
    assert_int_equal(st, PFGM_ERR_NUMERIC);
    assert_non_null(strstr(pfgm_error_message(), "training.max_skipped = 3"));
    printf("stopped at step %lld: %s\n", (long long)r.end_step, pfgm_error_message());
    /* the metrics: finite first step(s), then 3 skipped steps logged (the 4th stops before logging) */
    fx_join(metrics, sizeof metrics, run, "metrics.jsonl");
    FILE *f = fopen(metrics, "r");
    assert_non_null(f);
    char line[4096];
    int skipped = 0, lines = 0;
    while (fgets(line, sizeof line, f)) {
        ++lines;
        if (strstr(line, "\"skipped\":1")) {
            ++skipped;
            assert_non_null(strstr(line, "\"loss\":null"));
        }
    }
    fclose(f);
    assert_int_equal(skipped, 3);
    assert_int_equal(lines, r.end_step - 1);
    assert_true(r.end_step >= 5);
    pfgm_backend_destroy(be);
    pfgm_comm_destroy(comm);
    fx_rm_rf(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_skips_then_stops)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
