/* Non-finite values on one rank, under mpirun -np 2, through the test-only hook
 * PFGM_TEST_FAULT=RANK:STEP:loss|grad (src/train/trainer.c): only rank 1 goes non-finite at
 * step 2, and the step is skipped on both ranks; the weights stay the same bits on both
 * ranks (the trainer's end-of-run check and the result checksums); metrics.jsonl names
 * rank 1 and logs grad_norm and lr of the skipped step as null (not 0); a malformed
 * PFGM_TEST_FAULT is refused naming the variable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <cmocka.h>
#include <jansson.h>

#include "pfgm/backend.h"
#include "pfgm/comm.h"
#include "pfgm/log.h"
#include "pfgm/trainer.h"
#include "train_testutil.h"

static char dir_[512], data_[600];
static pfgm_comm *comm_;
static pfgm_backend *be_;
static pfgm_logger lg_;

static pfgm_status train(const char *run, const char *fault, pfgm_train_result *r) {
    pfgm_config cfg;
    pfgm_status st = tr_config(&cfg, data_, 4, NULL, 0);
    if (st != PFGM_OK) return st;
    setenv("PFGM_TEST_FAULT", fault, 1);
    pfgm_train_options o = {.run_dir = run, .resume = "auto"};
    st = pfgm_train(&cfg, &o, comm_, be_, &lg_, r);
    unsetenv("PFGM_TEST_FAULT");
    return st;
}

/* Rank 0: the record of `step` in run/metrics.jsonl (a new reference), or NULL. */
static json_t *record(const char *run, int64_t step) {
    char path[800];
    snprintf(path, sizeof path, "%s/metrics.jsonl", run);
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    char line[4096];
    json_t *found = NULL;
    while (!found && fgets(line, sizeof line, f)) {
        json_error_t err;
        json_t *o = json_loads(line, 0, &err);
        if (o && json_integer_value(json_object_get(o, "step")) == step) found = o;
        else json_decref(o);
    }
    fclose(f);
    return found;
}

static void check_fault(const char *what, const char *named) {
    char run[700], fault[64];
    snprintf(run, sizeof run, "%s/fault-%s", dir_, what);
    snprintf(fault, sizeof fault, "1:2:%s", what);
    pfgm_train_result r;
    assert_int_equal(train(run, fault, &r), PFGM_OK);
    assert_int_equal(r.end_step, 4);
    /* the weights: the same bits on both ranks */
    uint64_t sums[2] = {0, 0};
    assert_int_equal(comm_->allgather(comm_, &r.weights_checksum, sums, 1, PFGM_U64), PFGM_OK);
    assert_true(sums[0] == sums[1]);
    if (comm_->rank != 0) return;
    for (int64_t step = 1; step <= 4; ++step) {
        json_t *o = record(run, step);
        assert_non_null(o);
        const int skipped = (int)json_integer_value(json_object_get(o, "skipped"));
        if (step == 2) {
            assert_int_equal(skipped, 1);
            assert_true(json_is_null(json_object_get(o, "grad_norm")));
            assert_true(json_is_null(json_object_get(o, "lr")));
            assert_true(json_is_null(json_object_get(o, "loss")));
            assert_string_equal(json_string_value(json_object_get(o, "nonfinite_ranks")), named);
        } else {
            assert_int_equal(skipped, 0);
            assert_true(json_is_real(json_object_get(o, "grad_norm")));
            assert_true(json_real_value(json_object_get(o, "grad_norm")) > 0.0);
            assert_null(json_object_get(o, "nonfinite_ranks"));
        }
        json_decref(o);
    }
    printf("rank 1 non-finite %s at step 2: skipped on both ranks, weights %016llx on both, named \"%s\"\n",
           what, (unsigned long long)sums[0], named);
}

/* The skipped step changes nothing: 4 steps with step 2 skipped leave other weights than 4
 * clean steps (so the fault took effect), and the same weights on both ranks. */
static void test_nonfinite_gradient_on_rank_1(void **state) {
    (void)state;
    check_fault("grad", "1 (gradient)");
    char run[700];
    snprintf(run, sizeof run, "%s/clean", dir_);
    pfgm_train_result clean, faulty;
    assert_int_equal(train(run, "", &clean), PFGM_OK);
    snprintf(run, sizeof run, "%s/fault-grad2", dir_);
    assert_int_equal(train(run, "1:2:grad", &faulty), PFGM_OK);
    assert_true(clean.weights_checksum != faulty.weights_checksum);
}

static void test_nonfinite_loss_on_rank_1(void **state) {
    (void)state;
    check_fault("loss", "1 (loss)");
}

static void test_malformed_hook(void **state) {
    (void)state;
    char run[700];
    snprintf(run, sizeof run, "%s/bad-hook", dir_);
    pfgm_train_result r;
    assert_int_equal(train(run, "1:two:grad", &r), PFGM_ERR_CONFIG);
    assert_non_null(strstr(pfgm_error_message(), "PFGM_TEST_FAULT='1:two:grad'"));
}

int main(int argc, char **argv) {
    if (pfgm_comm_mpi_create(&argc, &argv, &comm_) != PFGM_OK || pfgm_backend_create("cpu", &be_) != PFGM_OK) {
        fprintf(stderr, "test_train_fault: %s\n", pfgm_error_message());
        return 1;
    }
    pfgm_logger_init(&lg_, comm_->rank);
    lg_.level = PFGM_LOG_WARN;
    tr_shared_dataset(comm_, dir_, sizeof dir_, data_, sizeof data_, "test_train_fault");
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_nonfinite_gradient_on_rank_1),
                                       cmocka_unit_test(test_nonfinite_loss_on_rank_1),
                                       cmocka_unit_test(test_malformed_hook)};
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    int64_t any = failed != 0;
    comm_->allreduce(comm_, &any, 1, PFGM_I64, PFGM_REDUCE_MAX);
    if (comm_->rank == 0) fx_rm_rf(dir_);
    pfgm_backend_destroy(be_);
    pfgm_comm_destroy(comm_);
    return any ? 1 : 0;
}
