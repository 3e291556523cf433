/* Checkpoint files: bitwise round trip, validation errors that name the file and dataset,
 * checksum detection of corrupted bytes, truncation, atomic writes, the run directory's
 * list / retention / latest-complete selection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

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

static pfgm_ckpt_meta meta_for(int64_t step) {
    pfgm_ckpt_meta m = {.step = step, .epoch = 2, .epoch_index = 7, .ema_updates = step, .seed = 49, .world_size = 2};
    strcpy(m.backend, "cpu");
    m.config_yaml = "training:\n  batch_size: 4096\n";
    return m;
}

static void write_ckpt(const char *path, int64_t step, model *p, model *e) {
    pfgm_ckpt_section sec[2] = {{"params", p->t, 2}, {"ema", e->t, 2}};
    pfgm_ckpt_meta m = meta_for(step);
    assert_int_equal(pfgm_ckpt_write(path, &m, sec, 2), PFGM_OK);
}

static void test_round_trip(void **state) {
    (void)state;
    model p, e, back;
    model_init(&p, 1);
    model_init(&e, 2);
    char path[256];
    snprintf(path, sizeof path, "%s/rt.h5", dir_);
    write_ckpt(path, 1234, &p, &e);
    pfgm_ckpt_meta m;
    assert_int_equal(pfgm_ckpt_read_meta(path, &m), PFGM_OK);
    assert_int_equal(m.step, 1234);
    assert_int_equal(m.epoch, 2);
    assert_int_equal(m.epoch_index, 7);
    assert_int_equal(m.seed, 49);
    assert_int_equal(m.world_size, 2);
    assert_string_equal(m.backend, "cpu");
    assert_string_equal(m.config_yaml, "training:\n  batch_size: 4096\n");
    assert_true(strlen(m.library_version) > 0);
    pfgm_ckpt_meta_free(&m);
    model_init(&back, 9);
    assert_int_equal(pfgm_ckpt_read_section(path, "params", back.t, 2), PFGM_OK);
    assert_memory_equal(back.a, p.a, sizeof p.a);
    assert_memory_equal(back.b, p.b, sizeof p.b);
    assert_int_equal(pfgm_ckpt_read_section(path, "ema", back.t, 2), PFGM_OK);
    assert_memory_equal(back.a, e.a, sizeof e.a);
    assert_int_equal(pfgm_ckpt_verify(path), PFGM_OK);
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
    q.t[0].shape[1] = 5; /* another model: wrong shape */
    assert_int_equal(pfgm_ckpt_read_section(path, "params", q.t, 2), PFGM_ERR_FORMAT);
    assert_non_null(strstr(pfgm_error_message(), "val.h5"));
    assert_non_null(strstr(pfgm_error_message(), "all_modules.0.weight"));
    model_init(&q, 3);
    q.t[1].name = "all_modules.1.bias"; /* a name the file lacks */
    assert_int_equal(pfgm_ckpt_read_section(path, "params", q.t, 2), PFGM_ERR_FORMAT);
    assert_non_null(strstr(pfgm_error_message(), "missing"));
    assert_int_equal(pfgm_ckpt_read_section(path, "params", q.t, 1), PFGM_ERR_FORMAT); /* extra tensors */
    assert_int_equal(pfgm_ckpt_read_section(path, "adam/m", q.t, 2), PFGM_ERR_FORMAT);
    pfgm_ckpt_meta m;
    char missing[256];
    snprintf(missing, sizeof missing, "%s/nope.h5", dir_);
    assert_int_equal(pfgm_ckpt_read_meta(missing, &m), PFGM_ERR_IO);
    assert_non_null(strstr(pfgm_error_message(), "nope.h5"));
    /* not HDF5 at all */
    char junk[256];
    snprintf(junk, sizeof junk, "%s/junk.h5", dir_);
    FILE *f = fopen(junk, "w");
    fputs("not a checkpoint\n", f);
    fclose(f);
    assert_int_equal(pfgm_ckpt_read_meta(junk, &m), PFGM_ERR_FORMAT);
    assert_non_null(strstr(pfgm_error_message(), "junk.h5"));
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
    assert_int_equal(pfgm_ckpt_verify(path), PFGM_OK); /* the old file is untouched */
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
    assert_int_equal(pfgm_ckpt_verify(path), PFGM_ERR_FORMAT);
    assert_non_null(strstr(pfgm_error_message(), "checksum"));
    model q;
    model_init(&q, 3);
    assert_int_equal(pfgm_ckpt_read_section(path, "params", q.t, 2), PFGM_ERR_FORMAT);
    /* truncation */
    snprintf(path, sizeof path, "%s/trunc.h5", dir_);
    write_ckpt(path, 5, &p, &e);
    assert_int_equal(truncate(path, file_size(path) / 2), 0);
    assert_int_not_equal(pfgm_ckpt_verify(path), PFGM_OK);
}

static void test_run_dir(void **state) {
    (void)state;
    char run[256], path[512];
    snprintf(run, sizeof run, "%s/run", dir_);
    int64_t *steps = NULL;
    size_t n = 0;
    assert_int_equal(pfgm_ckpt_list(run, &steps, &n), PFGM_OK); /* no directory: none */
    assert_int_equal(n, 0);
    int64_t latest = 0;
    char buf[512];
    assert_int_equal(pfgm_ckpt_find_latest(run, NULL, buf, sizeof buf, &latest), PFGM_OK);
    assert_int_equal(latest, -1);
    assert_string_equal(buf, "");
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
    assert_int_equal(pfgm_ckpt_prune(run, 3, 400), PFGM_OK);
    assert_int_equal(pfgm_ckpt_list(run, &steps, &n), PFGM_OK);
    int64_t expect[] = {400, 800, 900, 1000};
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; ++i) assert_int_equal(steps[i], expect[i]);
    free(steps);
    assert_int_not_equal(access(path, F_OK), 0); /* temporary removed */
    /* the newest is corrupt: latest falls back to the previous one */
    assert_int_equal(pfgm_ckpt_path(run, 1000, path, sizeof path), PFGM_OK);
    assert_int_equal(truncate(path, 100), 0);
    assert_int_equal(pfgm_ckpt_find_latest(run, NULL, buf, sizeof buf, &latest), PFGM_OK);
    assert_int_equal(latest, 900);
    assert_non_null(strstr(buf, "ckpt_00000900.h5"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_validation_errors),
        cmocka_unit_test(test_corruption_detected),
        cmocka_unit_test(test_run_dir),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
