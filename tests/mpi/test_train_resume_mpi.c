/* Exact resume under mpirun -np 2: 2K steps straight equal K steps + restart + K steps to
 * the bit (parameters, EMA, Adam moments, per-step mean losses), with the gradient
 * all-reduce, per-rank slices of the epoch, dropout and flips; and both field.reference
 * modes (the global one with the reader's order over 16 blocks in windows of 2). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <mpi.h>

#include "pfgm/backend.h"
#include "pfgm/checkpoint.h"
#include "pfgm/comm.h"
#include "pfgm/log.h"
#include "pfgm/trainer.h"
#include "train_testutil.h"

static char dir_[512], data_[600];
static pfgm_comm *comm_;
static pfgm_backend *be_;
static pfgm_logger lg_;

static pfgm_status train(const char *run, int64_t n_iters, const char *reference) {
    pfgm_config cfg;
    char ref[64];
    snprintf(ref, sizeof ref, "field.reference=%s", reference);
    /* local: the fixture file as one block (each rank shuffles its half of the rows);
     * global: 16 blocks of 4 images dealt to the ranks afresh every epoch, windows of 2 */
    const char *extra[] = {ref, "data.block_images=4", "data.shuffle_window=2"};
    pfgm_status st = tr_config(&cfg, data_, n_iters, extra, strcmp(reference, "global") ? 1 : 3);
    if (st != PFGM_OK) return st;
    pfgm_train_options o = {.run_dir = run, .resume = "auto"};
    pfgm_train_result r;
    return pfgm_train(&cfg, &o, comm_, be_, &lg_, &r);
}

/* 64 images over 2 ranks, 16 charges per step: 2 steps per epoch; K = 3 restarts mid-epoch. */
static void check_mode(const char *reference) {
    char a[700], b[700], ca[800], cb[800], ma[800], mb[800];
    snprintf(a, sizeof a, "%s/straight-%s", dir_, reference);
    snprintf(b, sizeof b, "%s/resumed-%s", dir_, reference);
    assert_int_equal(train(a, 6, reference), PFGM_OK);
    assert_int_equal(train(b, 3, reference), PFGM_OK);
    assert_int_equal(train(b, 6, reference), PFGM_OK);
    if (comm_->rank != 0) return; /* rank 0 wrote the files */
    assert_int_equal(pfgm_ckpt_path(a, 6, ca, sizeof ca), PFGM_OK);
    assert_int_equal(pfgm_ckpt_path(b, 6, cb, sizeof cb), PFGM_OK);
    int datasets = 0;
    char first[256];
    int differ = tr_ckpt_differences(ca, cb, &datasets, first, sizeof first);
    printf("field.reference %s, W = 2: compared %d datasets, %d differ%s%s\n", reference, datasets, differ,
           differ ? ", first: " : "", differ ? first : "");
    assert_int_equal(differ, 0);
    assert_true(datasets > 80);
    pfgm_ckpt *k = NULL;
    assert_int_equal(pfgm_ckpt_open(ca, &k), PFGM_OK);
    assert_int_equal(pfgm_ckpt_meta_of(k)->world_size, 2);
    assert_int_equal(pfgm_ckpt_meta_of(k)->epoch, 3);
    pfgm_ckpt_close(k);
    snprintf(ma, sizeof ma, "%s/metrics.jsonl", a);
    snprintf(mb, sizeof mb, "%s/metrics.jsonl", b);
    double la[16], lb[16];
    int64_t sa[16], sb[16];
    assert_int_equal(tr_losses(ma, la, sa, 16), 6);
    assert_int_equal(tr_losses(mb, lb, sb, 16), 6);
    for (int i = 0; i < 6; ++i) assert_memory_equal(&la[i], &lb[i], sizeof(double));
}

/* A W = 2 checkpoint resumed by one process with another batch size: refused without
 * --allow-reshard (naming both world sizes and batch sizes); with it the images consumed are
 * kept: batch 1 of an epoch at W = 2, L = 16 is 32 images = batch 4 at W = 1, L = 8 (the
 * issue's 2 -> 1 and 64 -> 32 case in small); one more step leaves batch 5. */
static void test_world_and_batch_change(void **state) {
    (void)state;
    char run[700];
    snprintf(run, sizeof run, "%s/reshard", dir_);
    assert_int_equal(train(run, 3, "local"), PFGM_OK); /* 2 batches per epoch: (1, 1) */
    if (comm_->rank != 0) return;
    pfgm_comm *one = NULL;
    assert_int_equal(pfgm_comm_single_create(&one), PFGM_OK);
    pfgm_config cfg;
    const char *b8[] = {"training.batch_size=8"};
    assert_int_equal(tr_config(&cfg, data_, 4, b8, 1), PFGM_OK);
    pfgm_train_options o = {.run_dir = run, .resume = "auto"};
    pfgm_train_result r;
    assert_int_equal(pfgm_train(&cfg, &o, one, be_, &lg_, &r), PFGM_ERR_CONFIG);
    assert_non_null(strstr(pfgm_error_message(), "saved with world size 2, training.batch_size 16"));
    assert_non_null(strstr(pfgm_error_message(), "this run has world size 1, training.batch_size 8"));
    o.allow_reshard = 1;
    assert_int_equal(pfgm_train(&cfg, &o, one, be_, &lg_, &r), PFGM_OK);
    char ck[800];
    assert_int_equal(pfgm_ckpt_path(run, 4, ck, sizeof ck), PFGM_OK);
    pfgm_ckpt *k = NULL;
    assert_int_equal(pfgm_ckpt_open(ck, &k), PFGM_OK);
    assert_int_equal(pfgm_ckpt_meta_of(k)->world_size, 1);
    assert_int_equal(pfgm_ckpt_meta_of(k)->epoch, 1);
    assert_int_equal(pfgm_ckpt_meta_of(k)->epoch_index, 5);
    pfgm_ckpt_close(k);
    pfgm_comm_destroy(one);
}

static void test_local(void **state) { (void)state; check_mode("local"); }
static void test_global(void **state) { (void)state; check_mode("global"); }

int main(int argc, char **argv) {
    if (pfgm_comm_mpi_create(&argc, &argv, &comm_) != PFGM_OK || pfgm_backend_create("cpu", &be_) != PFGM_OK) {
        fprintf(stderr, "test_train_resume_mpi: %s\n", pfgm_error_message());
        return 1;
    }
    pfgm_logger_init(&lg_, comm_->rank);
    lg_.level = PFGM_LOG_WARN;
    tr_shared_dataset(comm_, dir_, sizeof dir_, data_, sizeof data_, "test_train_resume_mpi");
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_local), cmocka_unit_test(test_global),
                                       cmocka_unit_test(test_world_and_batch_change)};
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    int any = failed != 0;
    MPI_Allreduce(MPI_IN_PLACE, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (comm_->rank == 0) fx_rm_rf(dir_);
    pfgm_backend_destroy(be_);
    pfgm_comm_destroy(comm_);
    return any ? 1 : 0;
}
