/* pfgm-prep cifar10 through the library API: five small CIFAR-10 batch files written here
 * become a dataset [12, 3, 32, 32] whose image i is source record perm[i] with its label;
 * a truncated batch, a missing batch, a label byte out of range and a missing folder give a
 * one-line error naming the file and leave no output behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "data_fixtures.h"
#include "pfgm/dataset.h"
#include "pfgm/prep.h"
#include "pfgm/rng.h"

enum { REC = 3073, PIX = 3072, TOTAL = 12 };
static const int per_batch[5] = {3, 2, 4, 1, 2};

typedef struct fixture {
    char dir[256], cifar[320], out[320];
    uint8_t records[TOTAL * REC]; /* in batch order */
} fixture;

/* Writes data_batch_1..5.bin of the fixture into dir. */
static void write_batches(const fixture *f, const char *dir) {
    const uint8_t *r = f->records;
    for (int b = 0; b < 5; ++b) {
        char p[600];
        if ((size_t)snprintf(p, sizeof p, "%s/data_batch_%d.bin", dir, b + 1) >= sizeof p) abort();
        fx_write_bytes(p, r, (size_t)per_batch[b] * REC);
        r += (size_t)per_batch[b] * REC;
    }
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    fx_mkdtemp(f->dir, sizeof f->dir);
    fx_join(f->cifar, sizeof f->cifar, f->dir, "cifar-10-batches-bin");
    fx_join(f->out, sizeof f->out, f->dir, "out.h5");
    mkdir(f->cifar, 0755);
    for (int i = 0; i < TOTAL; ++i) {
        uint8_t *r = f->records + i * REC;
        r[0] = (uint8_t)((i * 3) % 10);
        for (int p = 0; p < PIX; ++p) r[1 + p] = (uint8_t)(i * 17 + p * 5);
    }
    write_batches(f, f->cifar);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    fx_rm_rf(f->dir);
    free(f);
    return 0;
}

static void t_convert(void **state) {
    fixture *f = *state;
    pfgm_prep_options o = {.seed = 11};
    assert_int_equal(pfgm_prep_cifar10(f->cifar, f->out, &o), PFGM_OK);
    fx_dataset d;
    assert_true(fx_read_dataset(f->out, &d));
    assert_int_equal(d.count, TOTAL);
    assert_int_equal(d.C, 3);
    assert_int_equal(d.H, 32);
    assert_int_equal(d.W, 32);
    assert_non_null(d.labels);
    int64_t perm[TOTAL];
    pfgm_permutation(11, 0, PFGM_STREAM_PREP, 0, TOTAL, perm);
    for (int i = 0; i < TOTAL; ++i) {
        const uint8_t *r = f->records + perm[i] * REC;
        assert_int_equal(d.labels[i], r[0]);
        assert_memory_equal(d.images + (size_t)i * PIX, r + 1, PIX);
    }
    fx_free_dataset(&d);

    /* the reader takes it as 3 x 32 x 32 */
    pfgm_dataset_options ro = {.path = f->out, .rank = 0, .world_size = 1, .channels = 3,
                               .image_size = 32, .batch_size = 4};
    pfgm_dataset *ds = NULL;
    assert_int_equal(pfgm_dataset_open(&ro, &ds), PFGM_OK);
    assert_int_equal(pfgm_dataset_steps_per_epoch(ds), 3);
    pfgm_dataset_close(ds);

    o.limit = 5;
    assert_int_equal(pfgm_prep_cifar10(f->cifar, f->out, &o), PFGM_OK);
    assert_true(fx_read_dataset(f->out, &d));
    assert_int_equal(d.count, 5);
    for (int i = 0; i < 5; ++i) assert_int_equal(d.labels[i], f->records[perm[i] * REC]);
    fx_free_dataset(&d);
    remove(f->out);
}

/* Copies the fixture into a fresh folder `name`, lets `spoil` damage it, and expects the
 * conversion to fail with st naming `file` with `needle`, leaving no out.h5*. */
static void expect_fail(const fixture *f, const char *name, int batch_to_spoil, int how,
                        pfgm_status want, const char *needle) {
    char dir[400], victim[480];
    if ((size_t)snprintf(dir, sizeof dir, "%s/%s", f->dir, name) >= sizeof dir) abort();
    mkdir(dir, 0755);
    write_batches(f, dir);
    if ((size_t)snprintf(victim, sizeof victim, "%s/data_batch_%d.bin", dir, batch_to_spoil) >=
        sizeof victim)
        abort();
    if (how == 0) fx_truncate(victim, (off_t)per_batch[batch_to_spoil - 1] * REC - 100);
    if (how == 1) remove(victim);
    if (how == 2) { /* a label byte of 200 in the first record */
        FILE *fp = fopen(victim, "r+b");
        fputc(200, fp);
        fclose(fp);
    }
    pfgm_prep_options o = {.seed = 1};
    assert_int_equal(pfgm_prep_cifar10(dir, f->out, &o), want);
    const char *msg = pfgm_error_message();
    if (!strstr(msg, victim)) fail_msg("message '%s' does not name %s", msg, victim);
    if (!strstr(msg, needle)) fail_msg("message '%s' lacks '%s'", msg, needle);
    assert_null(strchr(msg, '\n'));
    assert_int_equal(fx_count_prefix(f->dir, "out.h5"), 0);
}

static void t_bad_input(void **state) {
    fixture *f = *state;
    expect_fail(f, "truncated", 3, 0, PFGM_ERR_FORMAT, "truncated");
    expect_fail(f, "missing", 5, 1, PFGM_ERR_IO, "No such file");
    expect_fail(f, "badlabel", 2, 2, PFGM_ERR_FORMAT, "label 200");
    char p[320];
    fx_join(p, sizeof p, f->dir, "no-such-folder");
    pfgm_prep_options o = {.seed = 1};
    assert_int_equal(pfgm_prep_cifar10(p, f->out, &o), PFGM_ERR_IO);
    assert_non_null(strstr(pfgm_error_message(), p));
    assert_int_equal(fx_count_prefix(f->dir, "out.h5"), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_convert),
        cmocka_unit_test(t_bad_input),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
