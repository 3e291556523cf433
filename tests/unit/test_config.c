/* Configuration loading rules (include/pfgm/config.h): defaults, unknown and duplicate keys,
 * typing of numbers/booleans/strings/lists, ranges, unsupported values, empty/missing files,
 * YAML structure errors. Each test writes small YAML files into a private temporary directory
 * and checks the status and the one-line message (file, line, key, hint). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pfgm/config.h"

static char g_dir[256];
static int g_count;

static int make_dir(void **state) {
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/pfgm_test_config_XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int remove_dir(void **state) {
    (void)state;
    char cmd[320];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Writes text to a fresh file in the temp dir; returns its path (static buffer per call). */
static const char *write_yaml(const char *text) {
    static char path[512];
    snprintf(path, sizeof path, "%s/c%03d.yaml", g_dir, g_count++);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
    return path;
}

static pfgm_config load_ok(const char *text) {
    pfgm_config c;
    const char *path = write_yaml(text);
    pfgm_status st = pfgm_config_load(path, &c);
    if (st != PFGM_OK) print_error("unexpected error: %s\n", pfgm_error_message());
    assert_int_equal(st, PFGM_OK);
    return c;
}

/* Loads text, expects PFGM_ERR_CONFIG with a message "path:line: key: ...needle...". */
static void expect_error(const char *text, int line, const char *key, const char *needle) {
    pfgm_config c, before;
    pfgm_config_defaults(&c);
    c.seed = 1234; /* a failed load must leave the struct untouched */
    before = c;
    const char *path = write_yaml(text);
    pfgm_status st = pfgm_config_load(path, &c);
    const char *msg = pfgm_error_message();
    char prefix[700];
    if (line > 0 && key && *key) snprintf(prefix, sizeof prefix, "%s:%d: %s: ", path, line, key);
    else if (line > 0) snprintf(prefix, sizeof prefix, "%s:%d: ", path, line);
    else snprintf(prefix, sizeof prefix, "%s: ", path);
    if (st != PFGM_ERR_CONFIG || strncmp(msg, prefix, strlen(prefix)) != 0 || !strstr(msg, needle))
        print_error("status %d, message '%s'\n  wanted prefix '%s' and '%s'\n", (int)st, msg, prefix,
                    needle);
    assert_int_equal(st, PFGM_ERR_CONFIG);
    assert_true(strncmp(msg, prefix, strlen(prefix)) == 0);
    assert_non_null(strstr(msg, needle));
    assert_null(strchr(msg, '\n')); /* one line */
    assert_true(memcmp(&c, &before, sizeof c) == 0);
}

/* ---- defaults ---------------------------------------------------------------------------- */

static void test_defaults_are_cifar10_ddpmpp(void **state) {
    (void)state;
    pfgm_config c;
    pfgm_config_defaults(&c);
    assert_int_equal(pfgm_config_validate(&c), PFGM_OK);
    assert_int_equal(c.training.batch_size, 4096);
    assert_int_equal(c.training.small_batch_size, 128);
    assert_int_equal(c.training.n_iters, 1300001);
    assert_int_equal(c.training.M, 291);
    assert_true(c.training.restrict_M && !c.training.reduce_mean);
    assert_true(c.training.tau == 0.03 && c.training.gamma == 5.0 && c.model.sigma_end == 0.01);
    assert_true(c.sampling.z_max == 40.0 && c.sampling.z_min == 1e-3);
    assert_true(c.sampling.upper_norm == 3000.0 && c.sampling.z_exp == 5.0);
    assert_int_equal(c.sampling.ode_solver, PFGM_SOLVER_RK45);
    assert_true(c.optim.lr == 2e-4 && c.optim.beta2 == 0.999 && c.optim.grad_clip == 1.0);
    assert_int_equal(c.optim.warmup, 5000);
    assert_int_equal(c.model.nf, 128);
    assert_int_equal(c.model.ch_mult.n, 4);
    assert_int_equal(c.model.ch_mult.v[3], 2);
    assert_int_equal(c.model.attn_resolutions.n, 1);
    assert_int_equal(c.model.attn_resolutions.v[0], 16);
    assert_int_equal(c.model.embedding_type, PFGM_EMBEDDING_POSITIONAL);
    assert_true(c.model.ema_rate == 0.9999 && c.model.dropout == 0.1);
    assert_string_equal(c.model.normalization, "GroupNorm");
    assert_int_equal(c.seed, 49);
    assert_int_equal(pfgm_config_data_dim(&c), 3072);
    assert_string_equal(pfgm_config_solver_name(PFGM_SOLVER_IMPROVED_EULER), "improved_euler");
}

static void test_file_applies_on_top_of_defaults(void **state) {
    (void)state;
    pfgm_config c = load_ok("# comment\ntraining:\n  batch_size: 256\n  small_batch_size: 32\n"
                            "data:\n  image_size: 28\n  channels: 1\nmodel:\n  ch_mult: [1, 2, 2]\n"
                            "  attn_resolutions:\n    - 7\nseed: 3\n");
    assert_int_equal(c.training.batch_size, 256);
    assert_int_equal(c.training.small_batch_size, 32);
    assert_int_equal(c.training.M, 291); /* untouched default */
    assert_int_equal(c.model.ch_mult.n, 3);
    assert_int_equal(c.model.attn_resolutions.v[0], 7);
    assert_int_equal(c.seed, 3);
    assert_int_equal(pfgm_config_data_dim(&c), 784);
}

/* ---- unknown and duplicate keys ---------------------------------------------------------- */

static void test_unknown_key_did_you_mean(void **state) {
    (void)state;
    expect_error("training:\n  batch_sze: 5\n", 2, "training.batch_sze",
                 "unknown key (did you mean training.batch_size?)");
    /* the right key in the wrong section */
    expect_error("training:\n  n_iters: 10\n  lr: 0.001\n", 3, "training.lr",
                 "unknown key (did you mean optim.lr?)");
    expect_error("trainig:\n  batch_size: 5\n", 1, "trainig", "unknown section (did you mean training?)");
    expect_error("model:\n  zzzzzzzzzz: 1\n", 2, "model.zzzzzzzzzz", "unknown key");
    /* a key at the wrong depth */
    expect_error("lr: 0.001\n", 1, "lr", "did you mean optim.lr?");
}

/* Expects `--set assignment` to fail with exactly "--set: <want>". */
static void expect_set_error(const char *assignment, const char *want) {
    pfgm_config c;
    pfgm_config_defaults(&c);
    pfgm_status st = pfgm_config_set(&c, assignment);
    char full[512];
    snprintf(full, sizeof full, "--set: %s", want);
    if (st != PFGM_ERR_CONFIG || strcmp(pfgm_error_message(), full) != 0)
        print_error("--set %s: status %d, message '%s'\n  wanted '%s'\n", assignment, (int)st,
                    pfgm_error_message(), full);
    assert_int_equal(st, PFGM_ERR_CONFIG);
    assert_string_equal(pfgm_error_message(), full);
}

/* A typo under a section that does not hold the key is matched against every key
 * `section.key` (issue 11): the typo gets the same edit budget as in the key's own section.
 * Before the fix a key from another section cost one extra edit, so a two-edit typo such as
 * ema_rtae (a transposition) found model.ema_rate under model: but nothing under optim:. */
static void test_unknown_key_in_another_section(void **state) {
    (void)state;
    expect_error("optim:\n  ema_rtae: 0.999\n", 2, "optim.ema_rtae",
                 "unknown key (did you mean model.ema_rate?)");
    expect_error("model:\n  warmpu: 10\n", 2, "model.warmpu",
                 "unknown key (did you mean optim.warmup?)");
    expect_error("optim:\n  dropuot: 0.1\n", 2, "optim.dropuot",
                 "unknown key (did you mean model.dropout?)");
    expect_set_error("model.warmpu=10", "model.warmpu: unknown key (did you mean optim.warmup?)");
    expect_set_error("model.lr_=1e-4", "model.lr_: unknown key (did you mean optim.lr?)");
    /* the unambiguous cases of the issue, in a file and with --set */
    expect_error("training:\n  bach_size: 64\n", 2, "training.bach_size",
                 "unknown key (did you mean training.batch_size?)");
    expect_error("optim:\n  ema_rate: 0.999\n", 2, "optim.ema_rate",
                 "unknown key (did you mean model.ema_rate?)");
    expect_error("model:\n  lr: 1e-4\n", 2, "model.lr", "unknown key (did you mean optim.lr?)");
    expect_set_error("training.bach_size=64",
                     "training.bach_size: unknown key (did you mean training.batch_size?)");
    expect_set_error("optim.ema_rate=0.999",
                     "optim.ema_rate: unknown key (did you mean model.ema_rate?)");
    expect_set_error("model.lr=1e-4", "model.lr: unknown key (did you mean optim.lr?)");
    /* a misspelt section: its own key wins over the same name in other sections */
    expect_set_error("trianing.bach_size=64",
                     "trianing.bach_size: unknown key (did you mean training.batch_size?)");
    /* an exact name in two other sections: both, not the first in table order (eval.batch_size
     * is not implemented yet, so never suggested) */
    expect_error("model:\n  batch_size: 64\n", 2, "model.batch_size",
                 "unknown key (did you mean training.batch_size or sampling.batch_size?)");
    /* nothing within the budget: no hint (the nearest key to lerning_rate is model.ema_rate,
     * six edits away; optim.lr is ten) */
    expect_error("optim:\n  lerning_rate: 1e-4\n", 2, "optim.lerning_rate", "unknown key");
    assert_null(strstr(pfgm_error_message(), "did you mean"));
    expect_set_error("optim.lerning_rate=1e-4", "optim.lerning_rate: unknown key");
}

static void test_duplicate_keys(void **state) {
    (void)state;
    expect_error("optim:\n  lr: 0.001\n  warmup: 10\n  lr: 0.002\n", 4, "optim.lr",
                 "duplicate key (first given at line 2)");
    expect_error("optim:\n  lr: 0.001\ndata:\n  channels: 1\noptim:\n  warmup: 3\n", 5, "optim",
                 "duplicate section (first given at line 1)");
    expect_error("seed: 1\nseed: 2\n", 2, "seed", "duplicate key");
}

/* ---- types ------------------------------------------------------------------------------- */

static void test_number_spellings(void **state) {
    (void)state;
    const char *spellings[] = {"1e-4", "1E-4", "1.0e-4", ".0001", "0.0001", "+1e-4", "1e-04"};
    for (size_t i = 0; i < sizeof spellings / sizeof spellings[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "optim:\n  lr: %s\n", spellings[i]);
        pfgm_config c = load_ok(text);
        assert_true(c.optim.lr == 1e-4);
    }
    pfgm_config c = load_ok("sampling:\n  z_max: 40\n"); /* an integer literal in a float key */
    assert_true(c.sampling.z_max == 40.0);
}

static void test_numeric_type_errors(void **state) {
    (void)state;
    expect_error("optim:\n  lr: \"1e-4\"\n", 2, "optim.lr", "quoted string");
    expect_error("optim:\n  lr: '1e-4'\n", 2, "optim.lr", "quoted string");
    expect_error("optim:\n  lr: !!str 1e-4\n", 2, "optim.lr", "quoted string");
    expect_error("optim:\n  lr: fast\n", 2, "optim.lr", "expected a finite decimal number");
    expect_error("optim:\n  lr: .inf\n", 2, "optim.lr", "expected a finite decimal number");
    expect_error("optim:\n  lr: 0x1p-3\n", 2, "optim.lr", "expected a finite decimal number");
    expect_error("training:\n  batch_size: \"256\"\n", 2, "training.batch_size", "quoted string");
    expect_error("training:\n  batch_size: 2.5e2\n", 2, "training.batch_size", "expected an integer");
    expect_error("training:\n  batch_size: 0x100\n", 2, "training.batch_size", "expected an integer");
    expect_error("training:\n  batch_size: [256]\n", 2, "training.batch_size", "got a list");
    expect_error("training:\n  batch_size:\n    a: 1\n", 3, "training.batch_size", "got a mapping");
    expect_error("training:\n  batch_size:\n", 2, "training.batch_size", "no value");
    expect_error("training:\n  batch_size: !!int 5\n", 2, "training.batch_size", "explicit YAML tag");
}

static void test_decimal_never_octal(void **state) {
    (void)state;
    pfgm_config c = load_ok("training:\n  M: 010\n");
    assert_int_equal(c.training.M, 10);
    c = load_ok("training:\n  log_freq: 0099\n");
    assert_int_equal(c.training.log_freq, 99);
    expect_error("training:\n  M: 0o10\n", 2, "training.M", "expected an integer");
}

static void test_integer_too_large(void **state) {
    (void)state;
    expect_error("training:\n  batch_size: 99999999999999999999999\n", 2, "training.batch_size",
                 "out of range");
    expect_error("seed: 4294967296\n", 1, "seed", "out of range (must be in [0, 4294967295])");
    expect_error("seed: -1\n", 1, "seed", "out of range");
    pfgm_config c = load_ok("seed: 4294967295\n");
    assert_int_equal(c.seed, INT64_C(4294967295));
    expect_error("model:\n  num_res_blocks: 1000\n", 2, "model.num_res_blocks", "out of range");
}

static void test_booleans(void **state) {
    (void)state;
    pfgm_config c = load_ok("data:\n  random_flip: false\ntraining:\n  reduce_mean: true\n");
    assert_false(c.data.random_flip);
    assert_true(c.training.reduce_mean);
    const char *yaml11[] = {"yes", "no", "on", "off", "Yes", "OFF", "y", "n"};
    for (size_t i = 0; i < sizeof yaml11 / sizeof yaml11[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "data:\n  random_flip: %s\n", yaml11[i]);
        expect_error(text, 2, "data.random_flip", "(write true or false)");
    }
    expect_error("data:\n  random_flip: \"true\"\n", 2, "data.random_flip", "quoted string");
    expect_error("data:\n  random_flip: 1\n", 2, "data.random_flip", "expected a boolean");
    /* in a string key the same words are literal strings */
    c = load_ok("data:\n  dataset: yes\n  path: off\n");
    assert_string_equal(c.data.dataset, "yes");
    assert_string_equal(c.data.path, "off");
}

static void test_strings(void **state) {
    (void)state;
    pfgm_config c = load_ok("data:\n  path: \"my data/train set.h5\"\n  dataset: 010\n");
    assert_string_equal(c.data.path, "my data/train set.h5");
    assert_string_equal(c.data.dataset, "010");
    c = load_ok("sampling:\n  ode_solver: forward_euler\nmodel:\n  embedding_type: \"fourier\"\n");
    assert_int_equal(c.sampling.ode_solver, PFGM_SOLVER_FORWARD_EULER);
    assert_int_equal(c.model.embedding_type, PFGM_EMBEDDING_FOURIER);
    expect_error("data:\n  path: \"\"\n", 2, "data.path", "non-empty");
    expect_error("data:\n  path: [a, b]\n", 2, "data.path", "got a list");
    expect_error("sampling:\n  ode_solver: rk4\n", 2, "sampling.ode_solver",
                 "unknown value 'rk4' (expected one of: rk45, forward_euler, improved_euler) "
                 "(did you mean rk45?)");
    expect_error("field:\n  reference: everywhere\n", 2, "field.reference", "expected one of: local, global");
}

static void test_lists(void **state) {
    (void)state;
    pfgm_config c = load_ok("model:\n  attn_resolutions: []\n");
    assert_int_equal(c.model.attn_resolutions.n, 0);
    expect_error("model:\n  ch_mult: []\n", 2, "model.ch_mult", "at least 1 entry");
    expect_error("model:\n  ch_mult: (1, 2, 2, 2)\n", 2, "model.ch_mult", "expected a list of integers");
    expect_error("model:\n  ch_mult: [1, 2, two]\n", 2, "model.ch_mult", "expected an integer entry");
    expect_error("model:\n  ch_mult: [1, \"2\"]\n", 2, "model.ch_mult", "quoted string");
    expect_error("model:\n  ch_mult: [1, [2]]\n", 2, "model.ch_mult", "plain values");
    expect_error("model:\n  ch_mult: [1, 0, 2]\n", 2, "model.ch_mult", "out of range");
    expect_error("model:\n  ch_mult: [1, 1, 1, 1, 1, 1, 1, 1, 1]\n", 2, "model.ch_mult", "too many entries");
}

/* ---- ranges ------------------------------------------------------------------------------ */

static void test_single_key_ranges(void **state) {
    (void)state;
    expect_error("optim:\n  lr: -0.0001\n", 2, "optim.lr", "out of range (must be > 0)");
    expect_error("optim:\n  lr: 0\n", 2, "optim.lr", "must be > 0");
    expect_error("model:\n  ema_rate: 1.0\n", 2, "model.ema_rate", "must be in [0, 1)");
    expect_error("model:\n  ema_rate: -0.1\n", 2, "model.ema_rate", "must be in [0, 1)");
    expect_error("model:\n  dropout: 1\n", 2, "model.dropout", "must be in [0, 1)");
    expect_error("data:\n  channels: 4\n", 2, "data.channels", "out of range");
    expect_error("sampling:\n  upper_norm: 0.5\n", 2, "sampling.upper_norm", "must be >= 1");
    expect_error("sampling:\n  z_min: 0\n", 2, "sampling.z_min", "must be > 0");
    expect_error("optim:\n  lr: 1e999\n", 2, "optim.lr", "out of range");
    expect_error("checkpoint:\n  keep_last: 0\n", 2, "checkpoint.keep_last", "out of range");
    pfgm_config c = load_ok("model:\n  ema_rate: 0\n");
    assert_true(c.model.ema_rate == 0.0);
}

static void test_cross_field_ranges(void **state) {
    (void)state;
    expect_error("training:\n  batch_size: 64\n  small_batch_size: 65\n", 3, "training.small_batch_size",
                 "must not exceed training.batch_size (64)");
    /* the later-given key is blamed: here batch_size, against the default small batch 128 */
    expect_error("training:\n  batch_size: 64\n", 2, "training.batch_size",
                 "training.small_batch_size (128) must not exceed training.batch_size (64)");
    expect_error("sampling:\n  z_max: 1\n  z_min: 1\n", 3, "sampling.z_min", "must be below sampling.z_max");
    expect_error("sampling:\n  z_min: 50\n", 2, "sampling.z_min", "must be below sampling.z_max (40)");
    /* per-sample step control: rk45 only; the key given last is named */
    pfgm_config ps = load_ok("sampling:\n  rk45_step_control: per_sample\n");
    assert_int_equal(ps.sampling.rk45_step_control, PFGM_STEP_PER_SAMPLE);
    ps = load_ok("sampling:\n  ode_solver: improved_euler\n  rk45_step_control: batch\n");
    assert_int_equal(ps.sampling.rk45_step_control, PFGM_STEP_BATCH);
    expect_error("sampling:\n  ode_solver: forward_euler\n  rk45_step_control: per_sample\n", 3,
                 "sampling.rk45_step_control", "applies to sampling.ode_solver: rk45 only (got forward_euler");
    expect_error("sampling:\n  rk45_step_control: per_sample\n  ode_solver: improved_euler\n", 3,
                 "sampling.ode_solver", "applies to sampling.ode_solver: rk45 only (got improved_euler");
    expect_error("sampling:\n  rk45_step_control: adaptive\n", 2, "sampling.rk45_step_control",
                 "expected one of: batch, per_sample");
    expect_error("data:\n  channels: 2\n", 2, "data.channels", "1 or 3 channels");
    expect_error("data:\n  image_size: 28\n", 2, "data.image_size",
                 "not divisible by 2^(len(model.ch_mult)-1) = 8");
    /* the default attention at 16 does not exist at 28; ch_mult was given last */
    expect_error("data:\n  image_size: 28\nmodel:\n  ch_mult: [1, 2, 2]\n", 4, "model.ch_mult",
                 "16 is not a resolution of this network (28, 14, 7)");
    expect_error("model:\n  attn_resolutions: [16, 5]\n", 2, "model.attn_resolutions",
                 "5 is not a resolution of this network (32, 16, 8, 4)");
    expect_error("model:\n  nf: 100\n", 2, "model.nf", "GroupNorm groups");
    expect_error("model:\n  nf: 7\n", 2, "model.nf", "must be even");
    expect_error("training:\n  M: 1\n", 2, "training.M", "restrict_M");
    expect_error("training:\n  M: 100000\n  tau: 0.5\n", 3, "training.tau", "overflows");
    pfgm_config c = load_ok("training:\n  M: 1\n  restrict_M: false\n");
    assert_int_equal(c.training.M, 1);
}

static void test_unsupported_values(void **state) {
    (void)state;
    expect_error("model:\n  fir: true\n", 2, "model.fir", "true is not supported by pfgm (only false)");
    expect_error("model:\n  progressive_input: residual\n", 2, "model.progressive_input",
                 "'residual' is not supported by pfgm (supported: none)");
    expect_error("model:\n  normalization: InstanceNorm\n", 2, "model.normalization", "not supported");
    expect_error("model:\n  normalization: groupnorm\n", 2, "model.normalization",
                 "unknown value 'groupnorm' (expected one of: GroupNorm, InstanceNorm, InstanceNorm++, "
                 "VarianceNorm) (did you mean GroupNorm?)");
    expect_error("model:\n  conv_size: 5\n", 2, "model.conv_size", "5 is not supported by pfgm (only 3)");
    expect_error("model:\n  scale_by_sigma: true\n", 2, "model.scale_by_sigma", "not supported");
    expect_error("data:\n  centered: false\n", 2, "data.centered", "false is not supported by pfgm");
    expect_error("training:\n  sde: vesde\n", 2, "training.sde", "not supported by pfgm (supported: poisson)");
    expect_error("sampling:\n  method: pc\n", 2, "sampling.method", "not supported");
    expect_error("distributed:\n  bf16: true\n", 2, "distributed.bf16", "true is not supported by pfgm (only false)");
    pfgm_config c = load_ok("model:\n  fir: false\n  progressive_input: none\n");
    assert_false(c.model.fir);
}

/* distributed.* -> backend (pfgm_config_backend_create): cpu gives the CPU backend with or
 * without allow_tf32 (it has no TF32: its caps never say TF32); cuda without a device (or
 * without the CUDA build) is PFGM_ERR_UNSUPPORTED, with a GPU it is the cuda backend. */
/* Keys the program does not implement are refused, not ignored (issue 12, item 4): the
 * evaluation keys whatever their value, in a file and by --set, at the key's line; the inert
 * keys at any value other than the authors' (which the shipped configs carry). */
static void test_keys_not_implemented_yet(void **state) {
    (void)state;
    const char *later = "not implemented yet (evaluation: a later release); remove it from the config";
    expect_error("training:\n  n_iters: 10\n  eval_freq: 5\n", 3, "training.eval_freq", later);
    expect_error("eval:\n  batch_size: 4\n", 2, "eval.batch_size", later);
    expect_error("seed: 1\neval:\n  num_samples: 8\n", 3, "eval.num_samples", later);
    /* whatever the value: the default, a wrong type, a mapping */
    expect_error("training:\n  eval_freq: 10000\n", 2, "training.eval_freq", later);
    expect_error("eval:\n  batch_size: [1, 2]\n", 2, "eval.batch_size", later);
    expect_error("eval:\n  num_samples:\n    a: 1\n", 2, "eval.num_samples", later);
    expect_set_error("eval.batch_size=1000",
                     "eval.batch_size: not implemented yet (evaluation: a later release); drop this --set");
    expect_set_error("training.eval_freq=1",
                     "training.eval_freq: not implemented yet (evaluation: a later release); drop this "
                     "--set");
    /* an eval section with every key commented out is still a section */
    pfgm_config c = load_ok("eval:\n#  batch_size: 4\nseed: 5\n");
    assert_int_equal(c.seed, 5);
    /* resolve (what the binaries run) refuses it with exit code 2 */
    const char *sets[] = {"eval.num_samples=10"};
    assert_int_equal(pfgm_config_resolve(NULL, sets, 1, &c), PFGM_ERR_CONFIG);
    assert_int_equal(pfgm_status_exit_code(PFGM_ERR_CONFIG), 2);
    const char *bf16[] = {"distributed.bf16=true"};
    assert_int_equal(pfgm_config_resolve(NULL, bf16, 1, &c), PFGM_ERR_CONFIG);
    assert_non_null(strstr(pfgm_error_message(), "--set: distributed.bf16: true is not supported"));

    /* inert keys: the authors' value loads, another would change nothing and is refused */
    c = load_ok("model:\n  resamp_with_conv: true\n  fir_kernel: [1, 3, 3, 1]\n");
    assert_true(c.model.resamp_with_conv);
    expect_error("model:\n  resamp_with_conv: false\n", 2, "model.resamp_with_conv",
                 "false would change nothing: it selects the resampling of the DDPM-style blocks");
    assert_non_null(strstr(pfgm_error_message(), "; remove the key or write true (the authors' value)"));
    expect_error("model:\n  fir_kernel: [1, 2, 1]\n", 2, "model.fir_kernel",
                 "[1, 2, 1] would change nothing: the FIR taps are used only with model.fir: true, which "
                 "pfgm does not support; remove the key or write [1, 3, 3, 1] (the authors' value)");
    /* the type and range rules still come first */
    expect_error("model:\n  fir_kernel: [1, 0]\n", 2, "model.fir_kernel", "out of range");
    expect_error("model:\n  resamp_with_conv: no\n", 2, "model.resamp_with_conv", "write true or false");
    expect_set_error("model.resamp_with_conv=false",
                     "model.resamp_with_conv: false would change nothing: it selects the resampling of "
                     "the DDPM-style blocks and of the progressive paths, which pfgm does not build (the "
                     "BigGAN blocks resample without a convolution); remove the key or write true (the "
                     "authors' value)");
    /* a struct edited in code is caught by validation too */
    pfgm_config_defaults(&c);
    c.model.fir_kernel.v[1] = 4;
    assert_int_equal(pfgm_config_validate(&c), PFGM_ERR_CONFIG);
    assert_non_null(strstr(pfgm_error_message(), "config: model.fir_kernel: [1, 4, 3, 1] would change nothing"));
}

/* Batch sizes are GEMM row counts, which cuBLAS and OpenBLAS take as int: at most INT_MAX. */
static void test_batch_sizes_fit_an_int(void **state) {
    (void)state;
    expect_error("training:\n  batch_size: 2147483648\n", 2, "training.batch_size",
                 "2147483648 is out of range (must be in [1, 2147483647])");
    expect_error("sampling:\n  batch_size: 2147483648\n", 2, "sampling.batch_size",
                 "out of range (must be in [1, 2147483647])");
    pfgm_config c = load_ok("training:\n  batch_size: 2147483647\nsampling:\n  batch_size: 2147483647\n");
    assert_int_equal(c.training.batch_size, INT64_C(2147483647));
    assert_int_equal(c.sampling.batch_size, INT64_C(2147483647));
}

static void test_backend_from_config(void **state) {
    (void)state;
    pfgm_config c = load_ok("distributed:\n  backend: cpu\n  allow_tf32: true\n");
    pfgm_backend *be = NULL;
    assert_int_equal(pfgm_config_backend_create(&c, 0, &be), PFGM_OK);
    assert_string_equal(be->name, "cpu");
    assert_false(be->caps(be) & PFGM_CAP_TF32);
    pfgm_backend_destroy(be);
    c = load_ok("distributed:\n  backend: cuda\n");
    pfgm_status st = pfgm_config_backend_create(&c, 0, &be);
    if (pfgm_backend_cuda_available()) {
        assert_int_equal(st, PFGM_OK);
        assert_string_equal(be->name, "cuda");
        pfgm_backend_destroy(be);
    } else {
        assert_int_equal(st, PFGM_ERR_UNSUPPORTED);
        assert_null(be);
    }
}

/* ---- files and structure ---------------------------------------------------------------- */

static void test_empty_and_missing_files(void **state) {
    (void)state;
    expect_error("", 0, NULL, "empty file");
    expect_error("# only a comment\n\n", 0, NULL, "empty file");
    expect_error("---\n", 0, NULL, "empty file");
    expect_error("~\n", 0, NULL, "empty file");
    pfgm_config c;
    char path[400];
    snprintf(path, sizeof path, "%s/does_not_exist.yaml", g_dir);
    assert_int_equal(pfgm_config_load(path, &c), PFGM_ERR_IO);
    assert_non_null(strstr(pfgm_error_message(), path));
    assert_non_null(strstr(pfgm_error_message(), "No such file"));
    assert_int_equal(pfgm_config_load(g_dir, &c) == PFGM_OK, 0); /* a directory is not a config */
}

static void test_structure_errors(void **state) {
    (void)state;
    expect_error("training:\n  batch_size: [1, 2\n", 3, "", "YAML syntax error");
    expect_error("training: 5\n", 1, "training", "expected a mapping of training keys");
    expect_error("- a\n- b\n", 1, "", "expected a mapping of sections");
    expect_error("seed: 1\n---\nseed: 2\n", 2, "", "more than one YAML document");
    expect_error("training:\n  batch_size: &b 256\n  small_batch_size: *b\n", 3,
                 "training.small_batch_size", "aliases");
    expect_error("training:\n  [a]: 1\n", 2, "training", "keys must be plain names");
    /* an empty section is allowed (every key commented out) */
    pfgm_config c = load_ok("training:\n#  batch_size: 5\nseed: 8\n");
    assert_int_equal(c.seed, 8);
}

/* A tab where YAML allows none gives "tab" with the line and the 1-based column, not
 * libyaml's "found character that cannot start any token" (issue 11). */
static void test_tab_errors(void **state) {
    (void)state;
    /* a tab indenting a key */
    expect_error("training:\n\tbatch_size: 5\n", 2, "", "tab character at column 1");
    expect_error("training:\n  \tbatch_size: 5\n", 2, "", "tab character at column 3");
    /* a tab after a key, indenting its value on the next line */
    expect_error("training:\n  n_iters:\n  \t500\n", 3, "", "tab character at column 3");
    expect_error("seed: 1\ntraining:\n  n_iters:\n\t\t500\n", 4, "", "tab character at column 1");
    /* a tab where the previous plain value could continue (libyaml: "found a tab character
     * that violates indentation", which named no column) */
    expect_error("training:\n  n_iters: 5\n \tlog_freq: 3\n", 3, "", "tab character at column 2");
    /* --set: the column within the value */
    expect_set_error("seed=\t5", "seed: YAML syntax error: tab character at column 1 of the value "
                                 "(use spaces, not tabs)");
    /* a tab that YAML allows (between a key and its value on one line) is whitespace */
    pfgm_config c = load_ok("training:\n  n_iters:\t500\n");
    assert_int_equal(c.training.n_iters, 500);
}

static void test_validate_catches_edited_struct(void **state) {
    (void)state;
    pfgm_config c;
    pfgm_config_defaults(&c);
    c.optim.lr = -1.0;
    assert_int_equal(pfgm_config_validate(&c), PFGM_ERR_CONFIG);
    assert_non_null(strstr(pfgm_error_message(), "optim.lr"));
    pfgm_config_defaults(&c);
    c.model.embedding_type = (pfgm_embedding_type)7;
    assert_int_equal(pfgm_config_validate(&c), PFGM_ERR_CONFIG);
    assert_non_null(strstr(pfgm_error_message(), "model.embedding_type"));
    pfgm_config_defaults(&c);
    c.training.small_batch_size = c.training.batch_size + 1;
    assert_int_equal(pfgm_config_validate(&c), PFGM_ERR_CONFIG);
    assert_non_null(strstr(pfgm_error_message(), "config: training.small_batch_size: "));
    pfgm_config_defaults(&c);
    c.model.ch_mult.n = 0;
    assert_int_equal(pfgm_config_validate(&c), PFGM_ERR_CONFIG);
    assert_non_null(strstr(pfgm_error_message(), "model.ch_mult"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_are_cifar10_ddpmpp),
        cmocka_unit_test(test_file_applies_on_top_of_defaults),
        cmocka_unit_test(test_unknown_key_did_you_mean),
        cmocka_unit_test(test_unknown_key_in_another_section),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_number_spellings),
        cmocka_unit_test(test_numeric_type_errors),
        cmocka_unit_test(test_decimal_never_octal),
        cmocka_unit_test(test_integer_too_large),
        cmocka_unit_test(test_booleans),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_lists),
        cmocka_unit_test(test_single_key_ranges),
        cmocka_unit_test(test_cross_field_ranges),
        cmocka_unit_test(test_unsupported_values),
        cmocka_unit_test(test_keys_not_implemented_yet),
        cmocka_unit_test(test_batch_sizes_fit_an_int),
        cmocka_unit_test(test_backend_from_config),
        cmocka_unit_test(test_empty_and_missing_files),
        cmocka_unit_test(test_structure_errors),
        cmocka_unit_test(test_tab_errors),
        cmocka_unit_test(test_validate_catches_edited_struct),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
