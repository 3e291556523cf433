/* Checkpoint files: bitwise round trip, validation errors that name the file and dataset,
 * checksum detection of corrupted bytes, truncation, atomic writes, metadata validation
 * (name and step, config, data position, the attributes' CRC), a handle that survives the
 * file's unlink, the run directory's list / retention / latest-usable selection and the
 * moving aside of damaged files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "data_fixtures.h"
#include "pfgm/checkpoint.h"
#include "pfgm/rng.h"
#include "util/atomic_file.h"

static char dir_[64];

static int setup(void **state) {
    (void)state;
    strcpy(dir_, "/tmp/pfgm_ckpt_XXXXXX");
    return mkdtemp(dir_) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir_);
    return system(cmd) == 0 ? 0 : -1;
}

enum { NA = 3 * 4 * 3 * 3, NB = 4 };

typedef struct model { float a[NA], b[NB]; pfgm_ckpt_tensor t[2]; } model;

static void model_init(model *m, uint32_t stream) {
    pfgm_rng r = {.seed = 3, .rank = 0, .stream = PFGM_STREAM_USER + stream, .step = 0};
    pfgm_rng_normal(&r, 0, NA, m->a);
    pfgm_rng_normal(&r, NA, NB, m->b);
    m->t[0] = (pfgm_ckpt_tensor){.name = "all_modules.0.weight", .ndim = 4, .shape = {3, 4, 3, 3}, .data = m->a};
    m->t[1] = (pfgm_ckpt_tensor){.name = "all_modules.0.bias", .ndim = 1, .shape = {4}, .data = m->b};
}

#define CONFIG_TEXT "seed: 49\ntraining:\n  batch_size: 8\n  small_batch_size: 4\n"

static pfgm_ckpt_meta meta_for(int64_t step) {
    pfgm_ckpt_meta m = {.step = step, .epoch = 2, .epoch_index = 7, .ema_updates = step, .seed = 49, .world_size = 2,
                        .batch_size = 8, .shard_size = 100, .dataset_count = 201, .steps_per_epoch = 12};
    strcpy(m.backend, "cpu");
    m.config_yaml = CONFIG_TEXT;
    return m;
}

static pfgm_ckpt *open_ok(const char *path) {
    pfgm_ckpt *ck = NULL;
    pfgm_status st = pfgm_ckpt_open(path, &ck);
    if (st != PFGM_OK) fail_msg("%s: %s", path, pfgm_error_message());
    return ck;
}

/* pfgm_ckpt_open of path fails with st and a message holding every needle. */
static void open_fails(const char *path, pfgm_status st, const char *n1, const char *n2) {
    pfgm_ckpt *ck = (pfgm_ckpt *)1;
    pfgm_status got = pfgm_ckpt_open(path, &ck);
    if (got != st) fail_msg("%s: status %d, wanted %d: %s", path, (int)got, (int)st, pfgm_error_message());
    assert_null(ck);
    const char *msg = pfgm_error_message();
    if (n1 && !strstr(msg, n1)) fail_msg("'%s' lacks '%s'", msg, n1);
    if (n2 && !strstr(msg, n2)) fail_msg("'%s' lacks '%s'", msg, n2);
}

/* The four sections of a trainer's checkpoint (the Adam moments: copies of p). */
static void write_ckpt(const char *path, int64_t step, model *p, model *e) {
    pfgm_ckpt_section sec[4] = {{"params", p->t, 2}, {"ema", e->t, 2}, {"adam/m", p->t, 2}, {"adam/v", p->t, 2}};
    pfgm_ckpt_meta m = meta_for(step);
    assert_int_equal(pfgm_ckpt_write(path, &m, sec, 4), PFGM_OK);
}

static void test_round_trip(void **state) {
    (void)state;
    model p, e, back;
    model_init(&p, 1);
    model_init(&e, 2);
    char path[256];
    snprintf(path, sizeof path, "%s/rt.h5", dir_);
    write_ckpt(path, 1234, &p, &e);
    pfgm_ckpt *ck = open_ok(path);
    const pfgm_ckpt_meta *m = pfgm_ckpt_meta_of(ck);
    assert_int_equal(m->version, PFGM_CKPT_VERSION);
    assert_int_equal(m->step, 1234);
    assert_int_equal(m->epoch, 2);
    assert_int_equal(m->epoch_index, 7);
    assert_int_equal(m->seed, 49);
    assert_int_equal(m->world_size, 2);
    assert_int_equal(m->batch_size, 8);
    assert_int_equal(m->shard_size, 100);
    assert_int_equal(m->dataset_count, 201);
    assert_int_equal(m->steps_per_epoch, 12);
    assert_string_equal(m->backend, "cpu");
    assert_string_equal(m->config_yaml, CONFIG_TEXT);
    assert_int_equal(pfgm_ckpt_config(ck)->training.batch_size, 8);
    assert_true(strlen(m->library_version) > 0);
    model_init(&back, 9);
    assert_int_equal(pfgm_ckpt_read(ck, "params", back.t, 2), PFGM_OK);
    assert_memory_equal(back.a, p.a, sizeof p.a);
    assert_memory_equal(back.b, p.b, sizeof p.b);
    assert_int_equal(pfgm_ckpt_read(ck, "ema", back.t, 2), PFGM_OK);
    assert_memory_equal(back.a, e.a, sizeof e.a);
    assert_int_equal(pfgm_ckpt_verify(ck), PFGM_OK);
    pfgm_ckpt_close(ck);
}

static void test_validation_errors(void **state) {
    (void)state;
    model p, e;
    model_init(&p, 1);
    model_init(&e, 2);
    char path[256];
    snprintf(path, sizeof path, "%s/val.h5", dir_);
    write_ckpt(path, 5, &p, &e);
    model q;
    model_init(&q, 3);
    pfgm_ckpt *ck = open_ok(path);
    q.t[0].shape[1] = 5; /* another model: wrong shape */
    assert_int_equal(pfgm_ckpt_read(ck, "params", q.t, 2), PFGM_ERR_FORMAT);
    assert_non_null(strstr(pfgm_error_message(), "val.h5"));
    assert_non_null(strstr(pfgm_error_message(), "all_modules.0.weight"));
    model_init(&q, 3);
    q.t[1].name = "all_modules.1.bias"; /* a name the file lacks */
    assert_int_equal(pfgm_ckpt_read(ck, "params", q.t, 2), PFGM_ERR_FORMAT);
    assert_non_null(strstr(pfgm_error_message(), "missing"));
    assert_int_equal(pfgm_ckpt_read(ck, "params", q.t, 1), PFGM_ERR_FORMAT); /* extra tensors */
    assert_int_equal(pfgm_ckpt_read(ck, "adam/m", q.t, 2), PFGM_ERR_FORMAT);
    pfgm_ckpt_close(ck);
    char missing[256];
    snprintf(missing, sizeof missing, "%s/nope.h5", dir_);
    open_fails(missing, PFGM_ERR_IO, "nope.h5", "No such file");
    /* not HDF5 at all */
    char junk[256];
    snprintf(junk, sizeof junk, "%s/junk.h5", dir_);
    FILE *f = fopen(junk, "w");
    fputs("not a checkpoint\n", f);
    fclose(f);
    open_fails(junk, PFGM_ERR_FORMAT, "junk.h5", "not an HDF5 file");
    /* a write into a missing directory fails and leaves nothing */
    char bad[256];
    snprintf(bad, sizeof bad, "%s/no/such/dir/c.h5", dir_);
    pfgm_ckpt_section sec = {"params", p.t, 2};
    pfgm_ckpt_meta wm = meta_for(1);
    assert_int_not_equal(pfgm_ckpt_write(bad, &wm, &sec, 1), PFGM_OK);
    pfgm_ckpt_tensor badname = p.t[0];
    badname.name = "a/b";
    sec.tensors = &badname;
    sec.count = 1;
    assert_int_equal(pfgm_ckpt_write(path, &wm, &sec, 1), PFGM_ERR_INVALID_ARG);
    ck = open_ok(path);
    assert_int_equal(pfgm_ckpt_verify(ck), PFGM_OK); /* the old file is untouched */
    pfgm_ckpt_close(ck);
}

/* Metadata is part of "usable": each rule of pfgm_ckpt_open refuses a file that breaks it,
 * naming the file and the attribute (issue: a step attribute of 999 in ckpt_00000003.h5 was
 * accepted; a damaged config or position failed the whole start instead of falling back). */
static void test_metadata_validation(void **state) {
    (void)state;
    model p, e;
    model_init(&p, 1);
    model_init(&e, 2);
    pfgm_ckpt_section sec[4] = {{"params", p.t, 2}, {"ema", e.t, 2}, {"adam/m", p.t, 2}, {"adam/v", p.t, 2}};
    char path[256];
    snprintf(path, sizeof path, "%s/ckpt_00000003.h5", dir_);
    pfgm_ckpt_meta m = meta_for(999);
    assert_int_equal(pfgm_ckpt_write(path, &m, sec, 4), PFGM_OK);
    open_fails(path, PFGM_ERR_FORMAT, "ckpt_00000003.h5", "attribute step is 999 but the file name says 3");
    m = meta_for(3);
    m.config_yaml = "training: [1,\n";
    assert_int_equal(pfgm_ckpt_write(path, &m, sec, 4), PFGM_OK);
    open_fails(path, PFGM_ERR_FORMAT, "ckpt_00000003.h5", "the config attribute does not load");
    m = meta_for(3);
    m.epoch_index = 12; /* == steps_per_epoch */
    assert_int_equal(pfgm_ckpt_write(path, &m, sec, 4), PFGM_OK);
    open_fails(path, PFGM_ERR_FORMAT, "ckpt_00000003.h5", "index 12 is outside [0, 12)");
    m = meta_for(3);
    m.steps_per_epoch = 11;
    assert_int_equal(pfgm_ckpt_write(path, &m, sec, 4), PFGM_OK);
    open_fails(path, PFGM_ERR_FORMAT, "ckpt_00000003.h5", "does not add up");
    m = meta_for(3);
    m.ema_updates = 4;
    assert_int_equal(pfgm_ckpt_write(path, &m, sec, 4), PFGM_OK);
    open_fails(path, PFGM_ERR_FORMAT, "ckpt_00000003.h5", "ema_updates is 4");
    m = meta_for(3);
    strcpy(m.backend, "tpu");
    assert_int_equal(pfgm_ckpt_write(path, &m, sec, 4), PFGM_OK);
    open_fails(path, PFGM_ERR_FORMAT, "ckpt_00000003.h5", "backend is 'tpu'");
    m = meta_for(3);
    m.world_size = 0;
    assert_int_equal(pfgm_ckpt_write(path, &m, sec, 4), PFGM_OK);
    open_fails(path, PFGM_ERR_FORMAT, "ckpt_00000003.h5", "world_size is 0");
    m = meta_for(3);
    m.seed = 50; /* the config says 49 */
    assert_int_equal(pfgm_ckpt_write(path, &m, sec, 4), PFGM_OK);
    open_fails(path, PFGM_ERR_FORMAT, "ckpt_00000003.h5", "seed is 50 but the config attribute says 49");
    m = meta_for(3);
    assert_int_equal(pfgm_ckpt_write(path, &m, sec, 4), PFGM_OK);
    pfgm_ckpt_close(open_ok(path));
}

/* A byte changed inside an attribute (outside every dataset's chunk, so Fletcher32 does not
 * see it) is caught: by the object header's own checksum (the 1.8 file format) or by the
 * attributes' CRC-32, whichever reads it first; either way the file is unusable (FORMAT). */
static void test_attribute_bytes_flipped(void **state) {
    (void)state;
    model p, e;
    model_init(&p, 1);
    model_init(&e, 2);
    char path[256];
    snprintf(path, sizeof path, "%s/ckpt_00000005.h5", dir_);
    const char *needles[] = {"batch_size: 8", "seed: 49"};
    for (size_t k = 0; k < 2; ++k) {
        write_ckpt(path, 5, &p, &e);
        pfgm_ckpt_close(open_ok(path));
        FILE *f = fopen(path, "r+b");
        struct stat sb;
        assert_int_equal(stat(path, &sb), 0);
        size_t n = (size_t)sb.st_size;
        unsigned char *bytes = malloc(n);
        assert_int_equal(fread(bytes, 1, n, f), n);
        size_t len = strlen(needles[k]);
        long at = -1;
        for (size_t i = 0; i + len <= n; ++i)
            if (memcmp(bytes + i, needles[k], len) == 0) { at = (long)(i + len - 1); break; }
        assert_true(at >= 0);
        bytes[at] = bytes[at] == '8' ? '9' : '8'; /* 8 -> 9, 9 -> 8: still valid YAML */
        fseek(f, at, SEEK_SET);
        fwrite(bytes + at, 1, 1, f);
        fclose(f);
        free(bytes);
        open_fails(path, PFGM_ERR_FORMAT, "ckpt_00000005.h5", "checksum");
    }
}

/* An open checkpoint stays readable after its file is unlinked (retention of a trainer
 * saving every step while pfgm-sample reads): one handle, no second open by path. */
static void test_handle_survives_unlink(void **state) {
    (void)state;
    model p, e, back;
    model_init(&p, 1);
    model_init(&e, 2);
    model_init(&back, 9);
    char path[256];
    snprintf(path, sizeof path, "%s/unlinked.h5", dir_);
    write_ckpt(path, 5, &p, &e);
    pfgm_ckpt *ck = open_ok(path);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(pfgm_ckpt_verify(ck), PFGM_OK);
    assert_int_equal(pfgm_ckpt_read(ck, "ema", back.t, 2), PFGM_OK);
    assert_memory_equal(back.a, e.a, sizeof e.a);
    pfgm_ckpt_close(ck);
}

static long file_size(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 ? (long)sb.st_size : -1;
}

/* Flip bytes inside the stored tensor data: Fletcher32 must catch it. */
static void test_corruption_detected(void **state) {
    (void)state;
    model p, e;
    model_init(&p, 1);
    model_init(&e, 2);
    char path[256];
    snprintf(path, sizeof path, "%s/corrupt.h5", dir_);
    write_ckpt(path, 5, &p, &e);
    FILE *f = fopen(path, "r+b");
    long n = file_size(path);
    assert_true(n > 0);
    size_t sz = n > 0 ? (size_t)n : 1;
    unsigned char *bytes = malloc(sz);
    assert_int_equal(fread(bytes, 1, sz, f), sz);
    /* find the params weight's first 8 bytes in the file and corrupt them */
    long at = -1;
    for (long i = 0; i + 8 <= n; ++i)
        if (memcmp(bytes + i, p.a, 8) == 0) { at = i; break; }
    assert_true(at >= 0);
    bytes[at] ^= 0xFF;
    fseek(f, at, SEEK_SET);
    fwrite(bytes + at, 1, 1, f);
    fclose(f);
    free(bytes);
    pfgm_ckpt *ck = open_ok(path); /* the metadata is intact */
    assert_int_equal(pfgm_ckpt_verify(ck), PFGM_ERR_FORMAT);
    assert_non_null(strstr(pfgm_error_message(), "checksum"));
    model q;
    model_init(&q, 3);
    assert_int_equal(pfgm_ckpt_read(ck, "params", q.t, 2), PFGM_ERR_FORMAT);
    pfgm_ckpt_close(ck);
    /* truncation */
    snprintf(path, sizeof path, "%s/trunc.h5", dir_);
    write_ckpt(path, 5, &p, &e);
    assert_int_equal(truncate(path, file_size(path) / 2), 0);
    ck = NULL;
    pfgm_status st = pfgm_ckpt_open(path, &ck);
    if (st == PFGM_OK) st = pfgm_ckpt_verify(ck);
    assert_int_not_equal(st, PFGM_OK);
    pfgm_ckpt_close(ck);
}

static void test_run_dir(void **state) {
    (void)state;
    char run[256], path[512];
    snprintf(run, sizeof run, "%s/run", dir_);
    int64_t *steps = NULL;
    size_t n = 0;
    assert_int_equal(pfgm_ckpt_list(run, &steps, &n), PFGM_OK); /* no directory: none */
    assert_int_equal(n, 0);
    pfgm_ckpt *ck = (pfgm_ckpt *)1;
    pfgm_ckpt_scan scan;
    assert_int_equal(pfgm_ckpt_open_latest(run, 1, NULL, &ck, &scan), PFGM_OK);
    assert_null(ck);
    assert_int_equal(scan.found, 0);
    snprintf(path, sizeof path, "%s/checkpoints", run);
    assert_int_equal(pfgm_mkdirs(path), PFGM_OK);
    model p, e;
    model_init(&p, 1);
    model_init(&e, 2);
    for (int64_t s = 100; s <= 1000; s += 100) {
        assert_int_equal(pfgm_ckpt_path(run, s, path, sizeof path), PFGM_OK);
        write_ckpt(path, s, &p, &e);
    }
    assert_non_null(strstr(path, "checkpoints/ckpt_00001000.h5"));
    /* a stale temporary from a writer that died */
    snprintf(path, sizeof path, "%s/checkpoints/ckpt_00001100.h5.tmp.999999", run);
    FILE *f = fopen(path, "w");
    fclose(f);
    assert_int_equal(pfgm_ckpt_list(run, &steps, &n), PFGM_OK);
    assert_int_equal(n, 10);
    assert_int_equal(steps[0], 100);
    assert_int_equal(steps[9], 1000);
    free(steps);
    /* keep the last 3 and every 400 */
    /* names that are not exactly ckpt_<8 digits>.h5 are not checkpoints of the run directory:
     * never listed, chosen or pruned */
    char stray[600];
    snprintf(stray, sizeof stray, "%s/checkpoints/ckpt_99.h5", run);
    fx_write_bytes(stray, "junk", 4);
    assert_int_equal(pfgm_ckpt_list(run, &steps, &n), PFGM_OK);
    assert_int_equal(n, 10);
    assert_int_equal(steps[9], 1000);
    free(steps);
    /* a checkpoint newer than the one just written is never deleted (another trajectory) */
    assert_int_equal(pfgm_ckpt_prune(run, 1, 0, 500), PFGM_OK);
    assert_int_equal(pfgm_ckpt_list(run, &steps, &n), PFGM_OK);
    int64_t kept[] = {500, 600, 700, 800, 900, 1000};
    assert_int_equal(n, 6);
    for (size_t i = 0; i < n; ++i) assert_int_equal(steps[i], kept[i]);
    free(steps);
    assert_true(fx_exists(stray));
    assert_int_equal(pfgm_ckpt_prune(run, 3, 400, 1000), PFGM_OK);
    assert_int_equal(pfgm_ckpt_list(run, &steps, &n), PFGM_OK);
    int64_t expect[] = {800, 900, 1000};
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; ++i) assert_int_equal(steps[i], expect[i]);
    free(steps);
    assert_int_not_equal(access(path, F_OK), 0); /* temporary removed */
    /* the newest is corrupt: a reader (move_damaged 0) falls back to the previous one and
     * leaves the file; the trainer (1) moves it to checkpoints/damaged/ */
    assert_int_equal(pfgm_ckpt_path(run, 1000, path, sizeof path), PFGM_OK);
    assert_int_equal(truncate(path, 100), 0);
    assert_int_equal(pfgm_ckpt_open_latest(run, 0, NULL, &ck, &scan), PFGM_OK);
    assert_non_null(ck);
    assert_int_equal(pfgm_ckpt_meta_of(ck)->step, 900);
    assert_non_null(strstr(pfgm_ckpt_file(ck), "ckpt_00000900.h5"));
    assert_int_equal(scan.damaged, 1);
    assert_int_equal(scan.moved, 0);
    assert_non_null(strstr(scan.newest_problem, "ckpt_00001000.h5"));
    pfgm_ckpt_close(ck);
    assert_int_equal(access(path, F_OK), 0);
    assert_int_equal(pfgm_ckpt_open_latest(run, 1, NULL, &ck, &scan), PFGM_OK);
    assert_int_equal(pfgm_ckpt_meta_of(ck)->step, 900);
    assert_int_equal(scan.moved, 1);
    pfgm_ckpt_close(ck);
    assert_int_not_equal(access(path, F_OK), 0);
    char moved[600];
    snprintf(moved, sizeof moved, "%s/checkpoints/damaged/ckpt_00001000.h5", run);
    assert_int_equal(access(moved, F_OK), 0);
    assert_int_equal(file_size(moved), 100);
    /* retention never touches damaged/ */
    assert_int_equal(pfgm_ckpt_prune(run, 1, 0, 900), PFGM_OK);
    assert_int_equal(access(moved, F_OK), 0);
    /* every checkpoint damaged: no handle, nothing moved (the trainer then refuses) */
    assert_int_equal(pfgm_ckpt_list(run, &steps, &n), PFGM_OK);
    for (size_t i = 0; i < n; ++i) {
        assert_int_equal(pfgm_ckpt_path(run, steps[i], path, sizeof path), PFGM_OK);
        assert_int_equal(truncate(path, 50), 0);
    }
    free(steps);
    assert_int_equal(pfgm_ckpt_open_latest(run, 1, NULL, &ck, &scan), PFGM_OK);
    assert_null(ck);
    assert_int_equal(scan.found, n);
    assert_int_equal(scan.damaged, n);
    assert_int_equal(scan.moved, 0);
    size_t all = 0;
    assert_int_equal(pfgm_ckpt_move_all_damaged(run, NULL, &all), PFGM_OK);
    assert_int_equal(all, n);
    assert_int_equal(pfgm_ckpt_list(run, &steps, &n), PFGM_OK);
    assert_int_equal(n, 0);
    snprintf(moved, sizeof moved, "%s/checkpoints/damaged/ckpt_00000900.h5", run);
    assert_int_equal(access(moved, F_OK), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_validation_errors),
        cmocka_unit_test(test_metadata_validation),
        cmocka_unit_test(test_attribute_bytes_flipped),
        cmocka_unit_test(test_handle_survives_unlink),
        cmocka_unit_test(test_corruption_detected),
        cmocka_unit_test(test_run_dir),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
