/* Parameter counts of the paper's four DDPM++ configurations (PFGM_SPEC.md §3.5), read from
 * the files in configs/ through the config API and counted by a plan-only build: no parameter or
 * activation memory is allocated (the bedroom plan alone describes tens of GB of
 * activations, which the test machine could not hold). The counts are the authors': they
 * include the C+1-channel PFGM head. Also checks the block census of spec §3.2 for
 * cifar10_ddpmpp (44 residual blocks, 6 attention blocks) and prints each configuration's
 * FLOPs per image and activation arena at its configured small batch (docs/model.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "pfgm/config.h"
#include "pfgm/ddpmpp.h"

typedef struct expect {
    const char *config;
    int64_t params; /* -1: print only */
    int resblocks, attn;
} expect;

static void plan_config(const expect *e) {
    const char *src = getenv("PFGM_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/configs/%s.yaml", src ? src : ".", e->config);
    pfgm_config cfg;
    pfgm_status st = pfgm_config_load(path, &cfg);
    if (st != PFGM_OK) fail_msg("%s", pfgm_error_message());
    pfgm_ddpmpp_desc d;
    st = pfgm_ddpmpp_desc_from_config(&cfg, &d);
    if (st != PFGM_OK) fail_msg("%s: %s", path, pfgm_error_message());
    pfgm_ddpmpp_info train, infer;
    const int64_t batch = cfg.training.small_batch_size;
    st = pfgm_ddpmpp_plan(&d, NULL, batch, PFGM_DDPMPP_TRAIN, &train);
    if (st != PFGM_OK) fail_msg("%s: %s", path, pfgm_error_message());
    assert_int_equal(pfgm_ddpmpp_plan(&d, NULL, batch, PFGM_DDPMPP_INFER, &infer), PFGM_OK);
    printf("%-22s params %11lld (%3d tensors, %2d modules, %2d resblocks, %d attn)  %7.2f GFLOP/image fwd  "
           "activations at batch %lld: train %.2f GiB (unshared %.2f), sampling %.2f GiB\n",
           e->config, (long long)train.param_count, train.num_tensors, train.num_modules, train.num_resblocks,
           train.num_attn, train.flops_per_image / 1e9, (long long)batch,
           (double)train.activation_bytes / (1 << 30), (double)train.unshared_bytes / (1 << 30),
           (double)infer.activation_bytes / (1 << 30));
    if (e->params >= 0) {
        assert_int_equal(train.param_count, e->params);
        /* positional embedding: nothing fixed, everything trains */
        assert_int_equal(train.trainable_count, e->params);
    }
    if (e->resblocks >= 0) {
        assert_int_equal(train.num_resblocks, e->resblocks);
        assert_int_equal(train.num_attn, e->attn);
    }
    assert_int_equal(infer.param_count, train.param_count);
    assert_true(infer.activation_bytes < train.activation_bytes);
    assert_true(train.activation_bytes <= train.unshared_bytes);
}

static void test_cifar10(void **state) {
    (void)state;
    plan_config(&(expect){"cifar10_ddpmpp", 61805572, 44, 6});
}

static void test_cifar10_deep(void **state) {
    (void)state;
    plan_config(&(expect){"cifar10_ddpmpp_deep", 106633732, 4 * 8 + 3 + 2 + 4 * 9 + 3, 8 + 1 + 1});
}

static void test_celeba64(void **state) {
    (void)state;
    plan_config(&(expect){"celeba64_ddpmpp", 61805572, 44, 6});
}

static void test_bedroom(void **state) {
    (void)state;
    plan_config(&(expect){"bedroom_ddpmpp", 124076292, 6 * 2 + 5 + 2 + 6 * 3 + 5, 2 + 1 + 1});
}

static void test_project_configs(void **state) {
    (void)state;
    plan_config(&(expect){"fashion_mnist", -1, -1, -1});
    plan_config(&(expect){"tiny", -1, -1, -1});
}

/* A Fourier embedding adds the fixed W (nf values) and widens the first Dense to 2nf inputs;
 * W counts as a parameter (the authors' state_dict) but not as a trainable one. */
static void test_fourier_counts(void **state) {
    (void)state;
    const char *src = getenv("PFGM_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/configs/cifar10_ddpmpp.yaml", src ? src : ".");
    pfgm_config cfg;
    assert_int_equal(pfgm_config_load(path, &cfg), PFGM_OK);
    pfgm_ddpmpp_desc d;
    assert_int_equal(pfgm_ddpmpp_desc_from_config(&cfg, &d), PFGM_OK);
    d.embedding_type = PFGM_EMBEDDING_FOURIER;
    pfgm_ddpmpp_info info;
    assert_int_equal(pfgm_ddpmpp_plan(&d, NULL, 1, PFGM_DDPMPP_TRAIN, &info), PFGM_OK);
    const int64_t nf = 128, extra = nf /* W */ + nf * 4 * nf /* Dense 0 input 2nf instead of nf */;
    assert_int_equal(info.param_count, 61805572 + extra);
    assert_int_equal(info.trainable_count, 61805572 + extra - nf);
    assert_int_equal(info.num_modules, 56);
}

/* The config keys this network does not build are refused with the key's name. */
static void test_unsupported_config(void **state) {
    (void)state;
    pfgm_config cfg;
    pfgm_config_defaults(&cfg);
    pfgm_ddpmpp_desc d;
    assert_int_equal(pfgm_ddpmpp_desc_from_config(&cfg, &d), PFGM_OK);
    pfgm_config bad = cfg;
    bad.model.fir = true;
    assert_int_equal(pfgm_ddpmpp_desc_from_config(&bad, &d), PFGM_ERR_CONFIG);
    assert_non_null(strstr(pfgm_error_message(), "model.fir"));
    bad = cfg;
    snprintf(bad.model.progressive_input, sizeof bad.model.progressive_input, "residual");
    assert_int_equal(pfgm_ddpmpp_desc_from_config(&bad, &d), PFGM_ERR_CONFIG);
    assert_non_null(strstr(pfgm_error_message(), "model.progressive_input"));
    /* shape problems are caught by the descriptor check, naming the field */
    pfgm_ddpmpp_desc dd = d;
    dd.image_size = 30; /* not divisible by 2^3 */
    pfgm_ddpmpp_info info;
    assert_int_equal(pfgm_ddpmpp_plan(&dd, NULL, 1, PFGM_DDPMPP_TRAIN, &info), PFGM_ERR_INVALID_ARG);
    assert_non_null(strstr(pfgm_error_message(), "image_size"));
    dd = d;
    dd.attn_resolutions[0] = 12;
    assert_int_equal(pfgm_ddpmpp_plan(&dd, NULL, 1, PFGM_DDPMPP_TRAIN, &info), PFGM_ERR_INVALID_ARG);
    assert_non_null(strstr(pfgm_error_message(), "attention resolution 12"));
    dd = d;
    dd.nf = 18; /* GroupNorm of 18 channels: 4 groups do not divide it */
    assert_int_equal(pfgm_ddpmpp_plan(&dd, NULL, 1, PFGM_DDPMPP_TRAIN, &info), PFGM_ERR_INVALID_ARG);
    assert_non_null(strstr(pfgm_error_message(), "GroupNorm"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cifar10),         cmocka_unit_test(test_cifar10_deep),
        cmocka_unit_test(test_celeba64),        cmocka_unit_test(test_bedroom),
        cmocka_unit_test(test_project_configs), cmocka_unit_test(test_fourier_counts),
        cmocka_unit_test(test_unsupported_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
