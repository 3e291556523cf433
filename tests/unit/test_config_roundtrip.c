/* Configuration: `--set key=value` overrides (typing, errors, atomicity), resolve (file +
 * overrides + one validation), the YAML writer (write -> re-read gives an equal struct, for
 * the defaults, odd values and every file in configs/), and the atomic file write. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pfgm/config.h"

static char g_dir[256];

static int make_dir(void **state) {
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/pfgm_test_config_rt_XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int remove_dir(void **state) {
    (void)state;
    char cmd[320];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void set_ok(pfgm_config *c, const char *a) {
    pfgm_status st = pfgm_config_set(c, a);
    if (st != PFGM_OK) print_error("%s: %s\n", a, pfgm_error_message());
    assert_int_equal(st, PFGM_OK);
}

/* Expects the assignment to fail with "--set: key: ...needle..." and leave *c unchanged. */
static void set_fails(const char *a, const char *key, const char *needle) {
    pfgm_config c, before;
    pfgm_config_defaults(&c);
    before = c;
    pfgm_status st = pfgm_config_set(&c, a);
    const char *msg = pfgm_error_message();
    char prefix[256];
    snprintf(prefix, sizeof prefix, "--set: %s: ", key);
    if (st != PFGM_ERR_CONFIG || strncmp(msg, prefix, strlen(prefix)) != 0 || !strstr(msg, needle))
        print_error("'%s': status %d, message '%s'\n  wanted prefix '%s' and '%s'\n", a, (int)st, msg,
                    prefix, needle);
    assert_int_equal(st, PFGM_ERR_CONFIG);
    assert_true(strncmp(msg, prefix, strlen(prefix)) == 0);
    assert_non_null(strstr(msg, needle));
    assert_true(memcmp(&c, &before, sizeof c) == 0);
}

/* ---- --set ------------------------------------------------------------------------------ */

static void test_set_overrides(void **state) {
    (void)state;
    pfgm_config c;
    pfgm_config_defaults(&c);
    set_ok(&c, "training.batch_size=512");
    set_ok(&c, "optim.lr=1e-4");
    set_ok(&c, "model.ch_mult=[1,2,2]");
    set_ok(&c, "model.attn_resolutions=[]");
    set_ok(&c, "data.random_flip=false");
    set_ok(&c, "sampling.ode_solver=improved_euler");
    set_ok(&c, "seed=7");
    set_ok(&c, " training.M = 010");
    set_ok(&c, "data.dataset=yes");
    set_ok(&c, "data.path=\"runs/a b/x=1.h5\"");
    set_ok(&c, "logging.metrics=m.jsonl");
    assert_int_equal(c.training.batch_size, 512);
    assert_true(c.optim.lr == 1e-4);
    assert_int_equal(c.model.ch_mult.n, 3);
    assert_int_equal(c.model.ch_mult.v[2], 2);
    assert_int_equal(c.model.ch_mult.v[3], 0); /* unused entries are zeroed */
    assert_int_equal(c.model.attn_resolutions.n, 0);
    assert_false(c.data.random_flip);
    assert_int_equal(c.sampling.ode_solver, PFGM_SOLVER_IMPROVED_EULER);
    assert_int_equal(c.seed, 7);
    assert_int_equal(c.training.M, 10);
    assert_string_equal(c.data.dataset, "yes");
    assert_string_equal(c.data.path, "runs/a b/x=1.h5");
    assert_string_equal(c.logging.metrics, "m.jsonl");
    assert_int_equal(pfgm_config_validate(&c), PFGM_OK);
}

static void test_set_errors(void **state) {
    (void)state;
    set_fails("training.batch_sze=3", "training.batch_sze",
              "unknown key (did you mean training.batch_size?)");
    set_fails("training.lr=0.1", "training.lr", "did you mean optim.lr?");
    set_fails("training=5", "training", "is a section; write training.key=value");
    set_fails("model.nf.x=5", "model.nf.x", "unknown key");
    set_fails("optim.lr=\"1e-4\"", "optim.lr", "quoted string");
    set_fails("optim.lr=-1", "optim.lr", "out of range (must be > 0)");
    set_fails("optim.lr=abc", "optim.lr", "expected a finite decimal number");
    set_fails("model.fir=yes", "model.fir", "(write true or false)");
    set_fails("model.fir=true", "model.fir", "not supported");
    set_fails("model.ch_mult=1,2,2", "model.ch_mult", "expected a list of integers");
    set_fails("model.ch_mult=[1,x]", "model.ch_mult", "expected an integer entry");
    set_fails("training.batch_size=[1]", "training.batch_size", "got a list");
    set_fails("training.batch_size=a: 1", "training.batch_size", "got a mapping");
    set_fails("training.batch_size=", "training.batch_size", "no value");
    set_fails("training.batch_size=99999999999999999999", "training.batch_size", "out of range");
    pfgm_config c;
    pfgm_config_defaults(&c);
    assert_int_equal(pfgm_config_set(&c, "training.batch_size"), PFGM_ERR_CONFIG);
    assert_non_null(strstr(pfgm_error_message(), "expected section.key=value"));
    assert_int_equal(pfgm_config_set(&c, "model.ch_mult=[1, 2"), PFGM_ERR_CONFIG);
    assert_non_null(strstr(pfgm_error_message(), "YAML syntax error"));
    assert_int_equal(pfgm_config_set(NULL, "seed=1"), PFGM_ERR_INVALID_ARG);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static void test_resolve_file_then_sets(void **state) {
    (void)state;
    char path[400];
    snprintf(path, sizeof path, "%s/small.yaml", g_dir);
    /* batch_size 64 is below the default small batch of 128: invalid on its own */
    write_text(path, "training:\n  batch_size: 64\n");
    pfgm_config c;
    pfgm_config_defaults(&c);
    assert_int_equal(pfgm_config_load(path, &c), PFGM_ERR_CONFIG);
    const char *sets[] = {"training.small_batch_size=16", "optim.lr=0.001"};
    assert_int_equal(pfgm_config_resolve(path, sets, 2, &c), PFGM_OK);
    assert_int_equal(c.training.batch_size, 64);
    assert_int_equal(c.training.small_batch_size, 16);
    assert_true(c.optim.lr == 0.001);
    /* a cross-field error caused by an override names --set */
    const char *bad[] = {"training.small_batch_size=65"};
    pfgm_config d = c;
    assert_int_equal(pfgm_config_resolve(path, bad, 1, &d), PFGM_ERR_CONFIG);
    assert_string_equal(pfgm_error_message(),
                        "--set: training.small_batch_size: training.small_batch_size (65) must not "
                        "exceed training.batch_size (64): the perturbed points are the first rows of "
                        "the batch of charges");
    assert_true(pfgm_config_equal(&c, &d)); /* unchanged on failure */
    /* ... and one caused by the file names its line */
    write_text(path, "seed: 1\nsampling:\n  z_min: 1\n  z_max: 0.5\n");
    assert_int_equal(pfgm_config_resolve(path, NULL, 0, &d), PFGM_ERR_CONFIG);
    char want[600];
    snprintf(want, sizeof want, "%s:4: sampling.z_max: sampling.z_min (1) must be below sampling.z_max (0.5)",
             path);
    assert_string_equal(pfgm_error_message(), want);
    /* no file: defaults plus overrides */
    const char *one[] = {"seed=5"};
    assert_int_equal(pfgm_config_resolve(NULL, one, 1, &d), PFGM_OK);
    assert_int_equal(d.seed, 5);
}

/* ---- round trip ------------------------------------------------------------------------- */

/* Writes c to text and to a file, reads both back, and checks equality (also bytewise). */
static void check_round_trip(const pfgm_config *c, const char *name) {
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(pfgm_config_to_yaml_string(c, &text, &len), PFGM_OK);
    assert_int_equal(strlen(text), len);
    pfgm_config back;
    pfgm_status st = pfgm_config_load_string(text, name, &back);
    if (st != PFGM_OK) print_error("%s: %s\n--- text ---\n%s\n", name, pfgm_error_message(), text);
    assert_int_equal(st, PFGM_OK);
    if (!pfgm_config_equal(c, &back)) print_error("%s: round trip differs\n%s\n", name, text);
    assert_true(pfgm_config_equal(c, &back));
    assert_true(memcmp(c, &back, sizeof back) == 0);

    char path[400];
    snprintf(path, sizeof path, "%s/rt.yaml", g_dir);
    assert_int_equal(pfgm_config_write_yaml(c, path), PFGM_OK);
    pfgm_config from_file;
    assert_int_equal(pfgm_config_load(path, &from_file), PFGM_OK);
    assert_true(pfgm_config_equal(c, &from_file));
    /* the file holds exactly the text */
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = malloc(len + 2);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, len + 1, f), len);
    fclose(f);
    assert_memory_equal(buf, text, len);
    free(buf);
    free(text);
}

static void test_round_trip_defaults_and_odd_values(void **state) {
    (void)state;
    pfgm_config c;
    pfgm_config_defaults(&c);
    check_round_trip(&c, "defaults");
    set_ok(&c, "optim.lr=0.30000000000000004"); /* needs all 17 digits */
    set_ok(&c, "optim.eps=5e-324");             /* smallest subnormal */
    set_ok(&c, "sampling.z_max=1e300");
    set_ok(&c, "model.init_scale=0.1");
    set_ok(&c, "data.path=\"yes\"");            /* a string that reads as a YAML 1.1 boolean */
    set_ok(&c, "data.dataset=\"0010\"");        /* a string that reads as a number */
    set_ok(&c, "logging.metrics=\"a: b # c\"");
    set_ok(&c, "model.attn_resolutions=[]");
    set_ok(&c, "model.embedding_type=fourier");
    set_ok(&c, "distributed.backend=cuda");
    set_ok(&c, "logging.level=debug");
    set_ok(&c, "field.reference=global");
    set_ok(&c, "seed=4294967295");
    assert_int_equal(pfgm_config_validate(&c), PFGM_OK);
    check_round_trip(&c, "odd values");
}

static void test_equal_detects_differences(void **state) {
    (void)state;
    pfgm_config a, b;
    pfgm_config_defaults(&a);
    b = a;
    assert_true(pfgm_config_equal(&a, &b));
    set_ok(&b, "model.ch_mult=[1,2,2,2,1]");
    assert_false(pfgm_config_equal(&a, &b));
    b = a;
    set_ok(&b, "optim.lr=0.00020000000000000001"); /* the same double as 2e-4 */
    assert_true(pfgm_config_equal(&a, &b));
    set_ok(&b, "optim.lr=0.00020000000000000003");
    assert_false(pfgm_config_equal(&a, &b));
    b = a;
    set_ok(&b, "data.path=x");
    assert_false(pfgm_config_equal(&a, &b));
}

/* The keys not implemented yet (training.eval_freq, eval.*; issue 12, item 4) are never
 * written; the config text of a checkpoint from an earlier pfgm, which holds them, still
 * loads with them dropped, while the same text as a file is refused. */
static void test_keys_not_implemented_yet(void **state) {
    (void)state;
    pfgm_config c;
    pfgm_config_defaults(&c);
    char *text = NULL;
    assert_int_equal(pfgm_config_to_yaml_string(&c, &text, NULL), PFGM_OK);
    if (strstr(text, "eval")) print_error("written config names eval keys:\n%s\n", text);
    assert_null(strstr(text, "eval"));
    free(text);

    const char *old = "seed: 3\ntraining:\n  log_freq: 5\n  eval_freq: 250\neval:\n  batch_size: 250\n"
                      "  num_samples:\n    a: [1, 2]\nlogging:\n  level: warn\n";
    pfgm_config back, want;
    pfgm_status st = pfgm_config_load_string(old, "ckpt_00000010.h5", &back);
    if (st != PFGM_OK) print_error("%s\n", pfgm_error_message());
    assert_int_equal(st, PFGM_OK);
    pfgm_config_defaults(&want);
    set_ok(&want, "seed=3");
    set_ok(&want, "training.log_freq=5");
    set_ok(&want, "logging.level=warn");
    assert_true(pfgm_config_equal(&want, &back));
    assert_true(memcmp(&want, &back, sizeof back) == 0);
    /* other errors in a checkpoint's text are still errors */
    assert_int_equal(pfgm_config_load_string("eval:\n  batch_sze: 1\n", "ckpt", &back), PFGM_ERR_CONFIG);
    assert_non_null(strstr(pfgm_error_message(), "ckpt:2: eval.batch_sze: unknown key"));

    char path[400];
    snprintf(path, sizeof path, "%s/old.yaml", g_dir);
    write_text(path, old);
    assert_int_equal(pfgm_config_load(path, &back), PFGM_ERR_CONFIG);
    char msg[600];
    snprintf(msg, sizeof msg, "%s:4: training.eval_freq: not implemented yet", path);
    assert_non_null(strstr(pfgm_error_message(), msg));
}

static bool has_suffix(const char *s, const char *suf) {
    size_t ls = strlen(s), lf = strlen(suf);
    return ls >= lf && strcmp(s + ls - lf, suf) == 0;
}

static void test_every_shipped_config_loads_and_round_trips(void **state) {
    (void)state;
    const char *root = getenv("PFGM_SOURCE_DIR");
    if (!root) root = ".";
    char dir[512];
    snprintf(dir, sizeof dir, "%s/configs", root);
    DIR *d = opendir(dir);
    assert_non_null(d);
    const char *expected[] = {"fashion_mnist.yaml", "cifar10_ddpmpp.yaml", "cifar10_ddpmpp_deep.yaml",
                              "celeba64_ddpmpp.yaml", "bedroom_ddpmpp.yaml", "tiny.yaml"};
    bool seen[6] = {false};
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!has_suffix(e->d_name, ".yaml")) continue;
        char path[800];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        pfgm_config c;
        pfgm_status st = pfgm_config_load(path, &c);
        if (st != PFGM_OK) print_error("%s\n", pfgm_error_message());
        assert_int_equal(st, PFGM_OK);
        check_round_trip(&c, e->d_name);
        for (int i = 0; i < 6; i++) seen[i] |= strcmp(e->d_name, expected[i]) == 0;
        count++;
    }
    closedir(d);
    for (int i = 0; i < 6; i++) {
        if (!seen[i]) print_error("configs/%s is missing\n", expected[i]);
        assert_true(seen[i]);
    }
    assert_true(count >= 6);
}

/* The authors' values (PFGM_SPEC.md §2) and the Fashion-MNIST derivation (§1.14). */
static void test_shipped_config_values(void **state) {
    (void)state;
    pfgm_config c;
    assert_int_equal(pfgm_config_load("configs/cifar10_ddpmpp.yaml", &c), PFGM_OK);
    pfgm_config d;
    pfgm_config_defaults(&d);
    d.distributed.backend = PFGM_BACKEND_CUDA; /* the only departure from the defaults */
    assert_true(pfgm_config_equal(&c, &d));

    assert_int_equal(pfgm_config_load("configs/cifar10_ddpmpp_deep.yaml", &c), PFGM_OK);
    assert_int_equal(c.model.num_res_blocks, 8);

    assert_int_equal(pfgm_config_load("configs/celeba64_ddpmpp.yaml", &c), PFGM_OK);
    assert_int_equal(c.data.image_size, 64);
    assert_int_equal(c.training.batch_size, 512);
    assert_true(c.sampling.z_max == 60.0 && c.sampling.upper_norm == 6000.0 && c.sampling.z_exp == 1.0);
    assert_int_equal(c.seed, 42);

    assert_int_equal(pfgm_config_load("configs/bedroom_ddpmpp.yaml", &c), PFGM_OK);
    assert_int_equal(pfgm_config_data_dim(&c), 196608);
    assert_int_equal(c.training.M, 356);
    assert_true(c.training.reduce_mean);
    assert_int_equal(c.training.small_batch_size, 32);
    assert_true(c.optim.lr == 2e-5 && c.model.dropout == 0.0);
    assert_int_equal(c.model.ch_mult.n, 6);
    assert_int_equal(c.model.ch_mult.v[5], 4);
    assert_true(c.sampling.z_max == 100.0 && c.sampling.upper_norm == 30000.0 && c.sampling.z_exp == 0.1);

    assert_int_equal(pfgm_config_load("configs/fashion_mnist.yaml", &c), PFGM_OK);
    assert_int_equal(pfgm_config_data_dim(&c), 784);
    assert_int_equal(c.training.M, 291);
    assert_int_equal(c.distributed.backend, PFGM_BACKEND_CPU);
    assert_true(c.sampling.z_max > 43.3 && c.sampling.z_max < 43.5);
    assert_true(c.sampling.upper_norm > 1520.0 && c.sampling.upper_norm < 1526.0);

    assert_int_equal(pfgm_config_load("configs/tiny.yaml", &c), PFGM_OK);
    assert_int_equal(pfgm_config_data_dim(&c), 64);
    assert_true(c.training.n_iters <= 10);
}

static void test_write_failure_leaves_nothing(void **state) {
    (void)state;
    pfgm_config c;
    pfgm_config_defaults(&c);
    char path[400];
    snprintf(path, sizeof path, "%s/no_such_dir/out.yaml", g_dir);
    assert_int_equal(pfgm_config_write_yaml(&c, path), PFGM_ERR_IO);
    assert_non_null(strstr(pfgm_error_message(), path));
    /* a successful write leaves only the target in the directory (no temporary files) */
    char sub[300];
    snprintf(sub, sizeof sub, "%.255s/clean", g_dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    snprintf(path, sizeof path, "%s/out.yaml", sub);
    assert_int_equal(pfgm_config_write_yaml(&c, path), PFGM_OK);
    assert_int_equal(pfgm_config_write_yaml(&c, path), PFGM_OK); /* replaces */
    DIR *d = opendir(sub);
    assert_non_null(d);
    int entries = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            assert_string_equal(e->d_name, "out.yaml");
            entries++;
        }
    closedir(d);
    assert_int_equal(entries, 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_overrides),
        cmocka_unit_test(test_set_errors),
        cmocka_unit_test(test_resolve_file_then_sets),
        cmocka_unit_test(test_round_trip_defaults_and_odd_values),
        cmocka_unit_test(test_equal_detects_differences),
        cmocka_unit_test(test_keys_not_implemented_yet),
        cmocka_unit_test(test_every_shipped_config_loads_and_round_trips),
        cmocka_unit_test(test_shipped_config_values),
        cmocka_unit_test(test_write_failure_leaves_nothing),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
