/* Exact resume on one rank: training 2K steps straight equals K steps, a restart from the
 * checkpoint, and K more steps, to the bit (parameters, EMA, Adam moments, every per-step
 * loss), across an epoch boundary, with dropout and flips on. Also the refusals: another
 * world size, another model shape, --resume never on a run directory with checkpoints. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

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

static int setup(void **state) {
    (void)state;
    fx_mkdtemp(dir_, sizeof dir_);
    fx_join(data_, sizeof data_, dir_, "data.h5");
    if (fx_write_dataset(data_, 64, 1, 8, 1) != PFGM_OK) return -1;
    if (pfgm_comm_single_create(&comm_) != PFGM_OK) return -1;
    if (pfgm_backend_create("cpu", &be_) != PFGM_OK) return -1;
    pfgm_logger_init(&lg_, 0);
    lg_.level = PFGM_LOG_WARN;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    pfgm_backend_destroy(be_);
    pfgm_comm_destroy(comm_);
    fx_rm_rf(dir_);
    return 0;
}

static pfgm_status train(const char *run, int64_t n_iters, const char *resume, int reshard, const char *const *extra,
                         size_t n_extra) {
    pfgm_config cfg;
    pfgm_status st = tr_config(&cfg, data_, n_iters, extra, n_extra);
    if (st != PFGM_OK) return st;
    pfgm_train_options o = {.run_dir = run, .resume = resume, .allow_reshard = reshard};
    pfgm_train_result r;
    return pfgm_train(&cfg, &o, comm_, be_, &lg_, &r);
}

/* 64 images, 16 charges per step: 4 steps per epoch; K = 3 puts the restart inside epoch 0
 * and the second half across the boundary into epoch 1. */
static void test_exact_resume(void **state) {
    (void)state;
    char a[600], b[600], ca[700], cb[700], ma[700], mb[700];
    fx_join(a, sizeof a, dir_, "straight");
    fx_join(b, sizeof b, dir_, "resumed");
    assert_int_equal(train(a, 6, "auto", 0, NULL, 0), PFGM_OK);
    assert_int_equal(train(b, 3, "auto", 0, NULL, 0), PFGM_OK);
    assert_int_equal(train(b, 6, "auto", 0, NULL, 0), PFGM_OK);
    assert_int_equal(pfgm_ckpt_path(a, 6, ca, sizeof ca), PFGM_OK);
    assert_int_equal(pfgm_ckpt_path(b, 6, cb, sizeof cb), PFGM_OK);
    int datasets = 0;
    char first[256];
    int differ = tr_ckpt_differences(ca, cb, &datasets, first, sizeof first);
    printf("compared %d datasets (params, ema, adam/m, adam/v): %d differ%s%s\n", datasets, differ,
           differ ? ", first: " : "", differ ? first : "");
    assert_int_equal(differ, 0);
    assert_true(datasets > 4 * 20);
    pfgm_ckpt_meta m1, m2;
    assert_int_equal(pfgm_ckpt_read_meta(ca, &m1), PFGM_OK);
    assert_int_equal(pfgm_ckpt_read_meta(cb, &m2), PFGM_OK);
    assert_int_equal(m1.epoch, 1);
    assert_int_equal(m1.epoch, m2.epoch);
    assert_int_equal(m1.epoch_index, m2.epoch_index);
    assert_int_equal(m1.ema_updates, 6);
    assert_int_equal(m2.ema_updates, 6);
    pfgm_ckpt_meta_free(&m1);
    pfgm_ckpt_meta_free(&m2);
    fx_join(ma, sizeof ma, a, "metrics.jsonl");
    fx_join(mb, sizeof mb, b, "metrics.jsonl");
    double la[16], lb[16];
    int64_t sa[16], sb[16];
    assert_int_equal(tr_losses(ma, la, sa, 16), 6);
    assert_int_equal(tr_losses(mb, lb, sb, 16), 6); /* appended across the restart */
    for (int i = 0; i < 6; ++i) {
        assert_int_equal(sa[i], i + 1);
        assert_int_equal(sb[i], i + 1);
        assert_memory_equal(&la[i], &lb[i], sizeof(double));
    }
    printf("per-step losses equal to the bit: %.9g ... %.9g\n", la[0], la[5]);
}

/* A changed checkpoint attribute, written with HDF5 directly. */
static void set_world_size(const char *path, int64_t w) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t a = H5Aopen(f, "world_size", H5P_DEFAULT);
    assert_true(H5Awrite(a, H5T_NATIVE_INT64, &w) >= 0);
    H5Aclose(a);
    H5Fclose(f);
}

static void test_refusals(void **state) {
    (void)state;
    char run[600], ck[700];
    fx_join(run, sizeof run, dir_, "refuse");
    assert_int_equal(train(run, 2, "auto", 0, NULL, 0), PFGM_OK);
    /* --resume never on a directory with checkpoints */
    assert_int_equal(train(run, 4, "never", 0, NULL, 0), PFGM_ERR_CONFIG);
    assert_non_null(strstr(pfgm_error_message(), "--resume never"));
    /* another model shape */
    const char *wider[] = {"model.nf=32"};
    assert_int_equal(train(run, 4, "auto", 0, wider, 1), PFGM_ERR_CONFIG);
    assert_non_null(strstr(pfgm_error_message(), "model.nf is 16 in the checkpoint but 32"));
    /* another world size, unless --allow-reshard */
    assert_int_equal(pfgm_ckpt_path(run, 2, ck, sizeof ck), PFGM_OK);
    set_world_size(ck, 2);
    assert_int_equal(train(run, 4, ck, 0, NULL, 0), PFGM_ERR_CONFIG);
    assert_non_null(strstr(pfgm_error_message(), "world size 2"));
    assert_non_null(strstr(pfgm_error_message(), "world size 1"));
    assert_int_equal(train(run, 4, ck, 1, NULL, 0), PFGM_OK);
    /* a corrupt newest checkpoint: auto falls back to the previous one (step 2, which
     * still says world size 2: refused without --allow-reshard, which proves the fallback) */
    assert_int_equal(pfgm_ckpt_path(run, 4, ck, sizeof ck), PFGM_OK);
    fx_truncate(ck, 200);
    assert_int_equal(train(run, 5, "auto", 0, NULL, 0), PFGM_ERR_CONFIG);
    assert_non_null(strstr(pfgm_error_message(), "ckpt_00000002.h5"));
    assert_int_equal(train(run, 5, "auto", 1, NULL, 0), PFGM_OK);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_exact_resume), cmocka_unit_test(test_refusals)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
