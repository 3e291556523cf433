/* Exact resume on one rank: training 2K steps straight equals K steps, a restart from the
 * checkpoint, and K more steps, to the bit (parameters, EMA, Adam moments, every per-step
 * loss), across an epoch boundary, with dropout and flips on, with the file as one block
 * and as 16 blocks in shuffle windows of 2 (prefetch on). Also the refusals: another world
 * size, another model shape, another shuffle window, --resume never on a run directory
 * with checkpoints. */
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
    st = pfgm_train(&cfg, &o, comm_, be_, &lg_, &r);
    if (st != PFGM_OK) printf("pfgm_train (%s, n_iters %lld, --resume %s): %s\n", run, (long long)n_iters, resume,
                              pfgm_error_message());
    return st;
}

static void expect_msg(const char *needle) {
    if (!strstr(pfgm_error_message(), needle)) fail_msg("'%s' lacks '%s'", pfgm_error_message(), needle);
}

/* 64 images, 16 charges per step: 4 steps per epoch; K = 3 puts the restart inside epoch 0
 * and the second half across the boundary into epoch 1. `tag` names the run directories;
 * extra: config overrides of both runs. */
static void exact_resume(const char *tag, const char *const *extra, size_t n_extra) {
    char a[600], b[600], ca[700], cb[700], ma[700], mb[700], na[64], nb[64];
    snprintf(na, sizeof na, "straight%s", tag);
    snprintf(nb, sizeof nb, "resumed%s", tag);
    fx_join(a, sizeof a, dir_, na);
    fx_join(b, sizeof b, dir_, nb);
    assert_int_equal(train(a, 6, "auto", 0, extra, n_extra), PFGM_OK);
    assert_int_equal(train(b, 3, "auto", 0, extra, n_extra), PFGM_OK);
    assert_int_equal(train(b, 6, "auto", 0, extra, n_extra), PFGM_OK);
    assert_int_equal(pfgm_ckpt_path(a, 6, ca, sizeof ca), PFGM_OK);
    assert_int_equal(pfgm_ckpt_path(b, 6, cb, sizeof cb), PFGM_OK);
    int datasets = 0;
    char first[256];
    int differ = tr_ckpt_differences(ca, cb, &datasets, first, sizeof first);
    printf("compared %d datasets (params, ema, adam/m, adam/v): %d differ%s%s\n", datasets, differ,
           differ ? ", first: " : "", differ ? first : "");
    assert_int_equal(differ, 0);
    assert_true(datasets > 4 * 20);
    pfgm_ckpt *k1 = NULL, *k2 = NULL;
    assert_int_equal(pfgm_ckpt_open(ca, &k1), PFGM_OK);
    assert_int_equal(pfgm_ckpt_open(cb, &k2), PFGM_OK);
    const pfgm_ckpt_meta *m1 = pfgm_ckpt_meta_of(k1), *m2 = pfgm_ckpt_meta_of(k2);
    assert_int_equal(m1->epoch, 1);
    assert_int_equal(m1->epoch, m2->epoch);
    assert_int_equal(m1->epoch_index, m2->epoch_index);
    assert_int_equal(m1->ema_updates, 6);
    assert_int_equal(m2->ema_updates, 6);
    pfgm_ckpt_close(k1);
    pfgm_ckpt_close(k2);
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

/* The fixture file is one block with the default data.block_images (the writer's chunks
 * hold 256 images): the reader's order is then one shuffle of each rank's rows. */
static void test_exact_resume(void **state) {
    (void)state;
    exact_resume("", NULL, 0);
}

/* The same with the streaming reader's order over many blocks: 16 blocks of 4 images,
 * windows of 2 blocks (the restart is in the middle of a window's batches), a cache of
 * 1 MiB and the prefetch thread on; and a resume with another window is refused without
 * --allow-reshard, naming both keys. */
static void test_exact_resume_blocks(void **state) {
    (void)state;
    const char *const extra[] = {"data.block_images=4", "data.shuffle_window=2", "data.cache_mb=1",
                                 "data.prefetch=true"};
    exact_resume("_blocks", extra, 4);
    char b[600];
    fx_join(b, sizeof b, dir_, "resumed_blocks");
    const char *const other[] = {"data.block_images=4", "data.shuffle_window=3"};
    assert_int_equal(train(b, 7, "auto", 0, other, 2), PFGM_ERR_CONFIG);
    expect_msg("data.shuffle_window");
    expect_msg("--allow-reshard");
}

/* A changed checkpoint attribute, written with HDF5 directly. */
/* Rewrites the int64 attribute `name` of a checkpoint in place (a damaged attribute). */
static void set_int_attr(const char *path, const char *name, int64_t v) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    assert_true(H5Awrite(a, H5T_NATIVE_INT64, &v) >= 0);
    H5Aclose(a);
    H5Fclose(f);
}

static pfgm_ckpt *open_step(const char *run, int64_t step) {
    char ck[700];
    assert_int_equal(pfgm_ckpt_path(run, step, ck, sizeof ck), PFGM_OK);
    pfgm_ckpt *k = NULL;
    if (pfgm_ckpt_open(ck, &k) != PFGM_OK) fail_msg("%s", pfgm_error_message());
    return k;
}


/* 64 images; training.batch_size 16 (4 batches per epoch) unless changed. */
static void test_refusals(void **state) {
    (void)state;
    char run[600], ck[700], moved[800];
    fx_join(run, sizeof run, dir_, "refuse");
    assert_int_equal(train(run, 2, "auto", 0, NULL, 0), PFGM_OK);
    /* --resume never on a directory with checkpoints */
    assert_int_equal(train(run, 4, "never", 0, NULL, 0), PFGM_ERR_CONFIG);
    expect_msg("--resume never");
    /* another model shape */
    const char *wider[] = {"model.nf=32"};
    assert_int_equal(train(run, 4, "auto", 0, wider, 1), PFGM_ERR_CONFIG);
    expect_msg("model.nf is 16 in the checkpoint but 32");
    /* another per-rank batch size: the position depends on it, so it is refused naming the
     * checkpoint, both values and the flag (it used to resume at a silently wrong index) */
    const char *b8[] = {"training.batch_size=8"}, *b16[] = {"training.batch_size=16"};
    assert_int_equal(train(run, 3, "auto", 0, b8, 1), PFGM_ERR_CONFIG);
    expect_msg("ckpt_00000002.h5");
    expect_msg("training.batch_size 16");
    expect_msg("training.batch_size 8");
    expect_msg("--allow-reshard");
    /* with --allow-reshard the images consumed are kept: 2 batches of 16 = 4 batches of 8;
     * one more step leaves epoch 0, batch 5 (the documented formula; it used to give 2 + 1) */
    assert_int_equal(train(run, 3, "auto", 1, b8, 1), PFGM_OK);
    pfgm_ckpt *k = open_step(run, 3);
    assert_int_equal(pfgm_ckpt_meta_of(k)->batch_size, 8);
    assert_int_equal(pfgm_ckpt_meta_of(k)->steps_per_epoch, 8);
    assert_int_equal(pfgm_ckpt_meta_of(k)->epoch, 0);
    assert_int_equal(pfgm_ckpt_meta_of(k)->epoch_index, 5);
    pfgm_ckpt_close(k);
    /* back to 16: 5 x 8 = 40 images = 2.5 batches of 16 -> batch 2, then one step -> 3 */
    assert_int_equal(train(run, 4, "auto", 1, b16, 1), PFGM_OK);
    k = open_step(run, 4);
    assert_int_equal(pfgm_ckpt_meta_of(k)->epoch_index, 3);
    pfgm_ckpt_close(k);
    /* a corrupt newest checkpoint: auto falls back to the previous one (step 3, batch size 8:
     * refused without --allow-reshard, which proves the fallback) and moves the damaged
     * file to checkpoints/damaged/ (retention would otherwise delete it) */
    assert_int_equal(pfgm_ckpt_path(run, 4, ck, sizeof ck), PFGM_OK);
    fx_truncate(ck, 200);
    assert_int_equal(train(run, 5, "auto", 0, NULL, 0), PFGM_ERR_CONFIG);
    expect_msg("ckpt_00000003.h5");
    snprintf(moved, sizeof moved, "%s/checkpoints/damaged/ckpt_00000004.h5", run);
    assert_true(fx_exists(moved));
    assert_false(fx_exists(ck));
    /* a damaged attribute falls back exactly like a damaged dataset: step 3's "step" says 999 */
    assert_int_equal(train(run, 5, "auto", 1, NULL, 0), PFGM_OK); /* writes 4 and 5 */
    assert_int_equal(pfgm_ckpt_path(run, 5, ck, sizeof ck), PFGM_OK);
    set_int_attr(ck, "step", 999);
    assert_int_equal(train(run, 6, "auto", 0, NULL, 0), PFGM_OK); /* from 4, not "at step 999" */
    k = open_step(run, 6);
    assert_int_equal(pfgm_ckpt_meta_of(k)->step, 6);
    pfgm_ckpt_close(k);
    snprintf(moved, sizeof moved, "%s/checkpoints/damaged/ckpt_00000005.h5", run);
    assert_true(fx_exists(moved));
    /* every checkpoint unusable: an error (exit 3), nothing trained, nothing moved or deleted */
    int64_t *steps = NULL;
    size_t n = 0;
    assert_int_equal(pfgm_ckpt_list(run, &steps, &n), PFGM_OK);
    assert_true(n >= 2);
    for (size_t i = 0; i < n; ++i) {
        assert_int_equal(pfgm_ckpt_path(run, steps[i], ck, sizeof ck), PFGM_OK);
        set_int_attr(ck, "world_size", 77);
    }
    assert_int_equal(train(run, 8, "auto", 0, NULL, 0), PFGM_ERR_FORMAT);
    assert_int_equal(pfgm_status_exit_code(PFGM_ERR_FORMAT), 3);
    expect_msg("none is usable");
    expect_msg("--resume fresh");
    size_t n2 = 0;
    int64_t *steps2 = NULL;
    assert_int_equal(pfgm_ckpt_list(run, &steps2, &n2), PFGM_OK);
    assert_int_equal(n2, n);
    for (size_t i = 0; i < n; ++i) assert_int_equal(steps2[i], steps[i]);
    free(steps2);
    /* --resume fresh: they go to checkpoints/damaged/ and training starts from step 0 */
    assert_int_equal(train(run, 2, "fresh", 0, NULL, 0), PFGM_OK);
    for (size_t i = 0; i < n; ++i) {
        snprintf(moved, sizeof moved, "%s/checkpoints/damaged/ckpt_%08lld.h5", run, (long long)steps[i]);
        assert_true(fx_exists(moved));
    }
    free(steps);
    k = open_step(run, 2);
    assert_int_equal(pfgm_ckpt_meta_of(k)->step, 2);
    pfgm_ckpt_close(k);
    /* --resume fresh while a usable checkpoint exists is refused */
    assert_int_equal(train(run, 2, "fresh", 0, NULL, 0), PFGM_ERR_CONFIG);
    expect_msg("--resume fresh starts over only when no checkpoint is usable");
}

/* metrics.jsonl after a crash: the run died after logging steps 4 and 5 (and half a line of
 * step 6) but before their checkpoint; the resume from step 3 logs 4..6 again. What a reader
 * gets: steps 1..6 strictly increasing, once each, and one "resumed" record. */
static void test_metrics_after_crash(void **state) {
    (void)state;
    char run[600], path[700];
    fx_join(run, sizeof run, dir_, "crashed");
    const char *every3[] = {"training.snapshot_freq=3"};
    assert_int_equal(train(run, 3, "auto", 0, every3, 1), PFGM_OK);
    fx_join(path, sizeof path, run, "metrics.jsonl");
    FILE *f = fopen(path, "a");
    assert_non_null(f);
    fputs("{\"step\": 4, \"loss\": 1.0}\n{\"step\": 5, \"loss\": 1.0}\n{\"step\": 6, \"lo", f);
    fclose(f);
    assert_int_equal(train(run, 6, "auto", 0, every3, 1), PFGM_OK);
    f = fopen(path, "r");
    assert_non_null(f);
    char line[4096];
    int64_t last = 0, resumed = 0, records = 0;
    while (fgets(line, sizeof line, f)) {
        json_error_t err;
        json_t *o = json_loads(line, 0, &err);
        if (!o) fail_msg("unreadable line in %s: %s", path, line);
        json_t *step = json_object_get(o, "step");
        if (step) {
            if (json_integer_value(step) != last + 1) fail_msg("step %lld after %lld", (long long)json_integer_value(step), (long long)last);
            last = json_integer_value(step);
            ++records;
        } else {
            assert_string_equal(json_string_value(json_object_get(o, "event")), "resumed");
            assert_int_equal(json_integer_value(json_object_get(o, "resumed_from")), 3);
            assert_int_equal(json_integer_value(json_object_get(o, "dropped")), 2);
            assert_int_equal(json_integer_value(json_object_get(o, "unparsable")), 1);
            ++resumed;
        }
        json_decref(o);
    }
    fclose(f);
    assert_int_equal(last, 6);
    assert_int_equal(records, 6);
    assert_int_equal(resumed, 1);
}

/* --resume PATH of an older checkpoint: the newer ones (another trajectory) go to
 * checkpoints/superseded/, and retention never deletes the checkpoint just written (it used
 * to keep the old trajectory's step 6 and delete the new step 5 and its source). A fresh
 * start keeps the earlier metrics as metrics.jsonl.1 and writes no "resumed" record. */
static void test_rollback_and_fresh_start(void **state) {
    (void)state;
    char run[600], ck[700], path[800];
    fx_join(run, sizeof run, dir_, "rollback");
    const char *every[] = {"training.snapshot_freq=2", "checkpoint.keep_last=1"};
    assert_int_equal(train(run, 6, "auto", 0, every, 2), PFGM_OK); /* keeps ckpt 6 only */
    const char *every1[] = {"training.snapshot_freq=2", "checkpoint.keep_last=1", "training.snapshot_freq=1"};
    assert_int_equal(train(run, 8, "auto", 0, every1, 3), PFGM_OK); /* 7, 8 -> keeps 8 */
    /* a copy of step 8 outside the run directory, resumed from once the run is at 10 */
    assert_int_equal(pfgm_ckpt_path(run, 8, ck, sizeof ck), PFGM_OK);
    char src[800];
    snprintf(src, sizeof src, "%s/ckpt_00000008.h5", dir_);
    assert_int_equal(fx_copy_file(ck, src), 0);
    assert_int_equal(train(run, 10, "auto", 0, every1, 3), PFGM_OK); /* 9, 10 -> keeps 10 */
    assert_int_equal(train(run, 9, src, 0, every1, 3), PFGM_OK);    /* from 8 again: writes 9 */
    assert_int_equal(pfgm_ckpt_path(run, 9, ck, sizeof ck), PFGM_OK);
    assert_true(fx_exists(ck));
    snprintf(path, sizeof path, "%s/checkpoints/superseded/ckpt_00000010.h5", run);
    assert_true(fx_exists(path));
    assert_int_equal(pfgm_ckpt_path(run, 10, ck, sizeof ck), PFGM_OK);
    assert_false(fx_exists(ck));
    /* a fresh start in a directory with metrics: kept as metrics.jsonl.1, no resumed record */
    char fresh[600];
    fx_join(fresh, sizeof fresh, dir_, "fresh-metrics");
    assert_int_equal(train(fresh, 2, "auto", 0, NULL, 0), PFGM_OK);
    snprintf(path, sizeof path, "%s/checkpoints", fresh);
    fx_rm_rf(path);
    assert_int_equal(train(fresh, 1, "auto", 0, NULL, 0), PFGM_OK);
    snprintf(path, sizeof path, "%s/metrics.jsonl.1", fresh);
    assert_true(fx_exists(path));
    double l[8];
    int64_t s[8];
    snprintf(path, sizeof path, "%s/metrics.jsonl", fresh);
    assert_int_equal(tr_losses(path, l, s, 8), 1);
    FILE *f = fopen(path, "r");
    char line[4096];
    while (fgets(line, sizeof line, f)) assert_null(strstr(line, "resumed"));
    fclose(f);
    /* a fault hook for a rank that does not exist is refused */
    setenv("PFGM_TEST_FAULT", "3:1:loss", 1);
    assert_int_equal(train(fresh, 4, "auto", 0, NULL, 0), PFGM_ERR_CONFIG);
    unsetenv("PFGM_TEST_FAULT");
    expect_msg("rank 3 does not exist");
    /* ... and one past the run's last step */
    setenv("PFGM_TEST_FAULT", "0:99:loss", 1);
    assert_int_equal(train(fresh, 4, "auto", 0, NULL, 0), PFGM_ERR_CONFIG);
    unsetenv("PFGM_TEST_FAULT");
    expect_msg("past training.n_iters");
    /* a missing dataset file stops the run before the run directory is created */
    char nodata[600];
    fx_join(nodata, sizeof nodata, dir_, "no-data-run");
    pfgm_config cfg;
    char missing[700];
    fx_join(missing, sizeof missing, dir_, "no-such-data.h5");
    assert_int_equal(tr_config(&cfg, missing, 2, NULL, 0), PFGM_OK);
    pfgm_train_options o = {.run_dir = nodata, .resume = "auto"};
    pfgm_train_result r;
    assert_int_equal(pfgm_train(&cfg, &o, comm_, be_, &lg_, &r), PFGM_ERR_IO);
    expect_msg("no-such-data.h5");
    assert_false(fx_exists(nodata));
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_exact_resume),
                                       cmocka_unit_test(test_exact_resume_blocks), cmocka_unit_test(test_refusals),
                                       cmocka_unit_test(test_metrics_after_crash),
                                       cmocka_unit_test(test_rollback_and_fresh_start)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
