/* The op front end (include/pfgm/ops.h, src/backend/ops.c): every op refuses a backend that
 * lacks it with PFGM_ERR_UNSUPPORTED naming the backend and the op; every op with argument
 * checks refuses impossible arguments with PFGM_ERR_INVALID_ARG naming the op, before the
 * kernel touches memory (the buffers here are NULL: a call that got through would crash),
 * the same on both CPU modes; and the boundary cases the checks allow (empty batches, k = 0)
 * reach the kernel and succeed. The CUDA side runs the same front end
 * (tests/gpu/test_cuda_nn.c test_argument_errors). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "pfgm/backend.h"
#include "pfgm/ops.h"

/* `call` returns `want` and the thread's error message contains `needle`. */
#define EXPECT(call, want, needle)                                                                           \
    do {                                                                                                   \
        pfgm_status st_ = (call);                                                                          \
        if (st_ != (want)) fail_msg("%s: status %d, expected %d (%s)", #call, (int)st_, (int)(want),         \
                                    pfgm_error_message());                                                 \
        if (!strstr(pfgm_error_message(), (needle)))                                                       \
            fail_msg("%s: message '%s' lacks '%s'", #call, pfgm_error_message(), (needle));                 \
    } while (0)
#define MISSING(call, op) EXPECT(call, PFGM_ERR_UNSUPPORTED, op ": backend 'bare' lacks the op")
#define REFUSED(call, needle) EXPECT(call, PFGM_ERR_INVALID_ARG, needle)

/* A table with no op at all: every front-end function names the op it lacks. */
static void test_missing_ops(void **state) {
    (void)state;
    pfgm_backend bare;
    memset(&bare, 0, sizeof bare);
    bare.name = "bare";
    pfgm_backend *be = &bare;
    const pfgm_rng r = {.seed = 1, .stream = PFGM_STREAM_USER};
    MISSING(pfgm_op_gemm(be, 0, 0, 1, 1, 1, 1.0f, NULL, 1, NULL, 1, 0.0f, NULL, 1), "gemm");
    MISSING(pfgm_op_axpby(be, 1, 1.0f, NULL, 0.0f, NULL), "axpby");
    MISSING(pfgm_op_fill(be, 1, 0.0f, NULL), "fill");
    MISSING(pfgm_op_dot(be, 1, NULL, NULL, NULL), "dot");
    MISSING(pfgm_op_row_sumsq(be, 1, 1, NULL, 1, NULL), "row_sumsq");
    MISSING(pfgm_op_softmax_rows(be, 1, 1, NULL), "softmax_rows");
    MISSING(pfgm_op_fill_uniform(be, &r, 0, 1, NULL), "fill_uniform");
    MISSING(pfgm_op_fill_normal(be, &r, 0, 1, NULL), "fill_normal");
    MISSING(pfgm_op_perturb(be, &r, 1, 1, NULL, 1, 0.03, 0.01, 1, NULL, NULL, NULL), "perturb");
    MISSING(pfgm_op_field_weights(be, 1, 1, 1.0, NULL, NULL, NULL, NULL), "field_weights");
    MISSING(pfgm_op_field_finish(be, 1, 1, 1.0, NULL, NULL, NULL), "field_finish");
    MISSING(pfgm_op_loss_mse(be, 1, 1, NULL, NULL, NULL, 0, NULL, NULL, NULL), "loss_mse");
    MISSING(pfgm_op_sphere_points(be, &r, 0, 4, 1, 1, NULL, NULL, 1), "sphere_points");
    MISSING(pfgm_op_ode_drift(be, 1, 1, 0, NULL, 1.0, 1.0, NULL, NULL, NULL, NULL, NULL), "ode_drift");
    MISSING(pfgm_op_ode_init_state(be, 1, 1, 0, NULL, 1.0, NULL), "ode_init_state");
    MISSING(pfgm_op_ode_combine(be, 1, 1, NULL, NULL, 0, NULL, NULL, NULL, NULL, 0), "ode_combine");
    MISSING(pfgm_op_ode_sumsq(be, 1, 1, NULL, NULL, 0, NULL, NULL, NULL, NULL, 0.0, 1.0, NULL), "ode_sumsq");
    MISSING(pfgm_op_silu_fwd(be, 1, NULL, NULL), "silu_fwd");
    MISSING(pfgm_op_silu_bwd(be, 1, NULL, NULL, NULL, 0), "silu_bwd");
    assert_int_equal(pfgm_op_conv2d_workspace(be, 1, 1, 1, 1, 1, 3), 0);
    assert_non_null(strstr(pfgm_error_message(), "conv2d_workspace: backend 'bare' lacks the op"));
    MISSING(pfgm_op_conv2d_fwd(be, 1, 1, 1, 1, 1, 3, NULL, NULL, NULL, NULL, NULL, 0), "conv2d_fwd");
    MISSING(pfgm_op_conv2d_bwd(be, 1, 1, 1, 1, 1, 3, NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL, 0), "conv2d_bwd");
    MISSING(pfgm_op_gemm_batched(be, 0, 0, 1, 1, 1, 1.0f, NULL, 1, 1, NULL, 1, 1, 0.0f, NULL, 1, 1, 1),
            "gemm_batched");
    MISSING(pfgm_op_softmax_rows_bwd(be, 1, 1, NULL, NULL), "softmax_rows_bwd");
    MISSING(pfgm_op_groupnorm_fwd(be, 1, 1, 1, 1, 1e-6f, 0, NULL, NULL, NULL, NULL, NULL, NULL), "groupnorm_fwd");
    MISSING(pfgm_op_groupnorm_bwd(be, 1, 1, 1, 1, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL),
            "groupnorm_bwd");
    MISSING(pfgm_op_upsample2x_fwd(be, 1, 1, 1, NULL, NULL), "upsample2x_fwd");
    MISSING(pfgm_op_upsample2x_bwd(be, 1, 1, 1, NULL, NULL, 0), "upsample2x_bwd");
    MISSING(pfgm_op_avgpool2x2_fwd(be, 1, 2, 2, NULL, NULL), "avgpool2x2_fwd");
    MISSING(pfgm_op_avgpool2x2_bwd(be, 1, 2, 2, NULL, NULL, 0), "avgpool2x2_bwd");
    MISSING(pfgm_op_bcast_add_fwd(be, 1, 1, 1, NULL, 0, NULL), "bcast_add_fwd");
    MISSING(pfgm_op_bcast_add_bwd(be, 1, 1, 1, NULL, 0, NULL, 0), "bcast_add_bwd");
    MISSING(pfgm_op_copy_channels(be, 1, 1, 1, NULL, 1, 0, NULL, 1, 0, 0), "copy_channels");
    MISSING(pfgm_op_channel_mean_fwd(be, 1, 1, 1, 0, NULL, NULL), "channel_mean_fwd");
    MISSING(pfgm_op_channel_mean_bwd(be, 1, 1, 1, 0, NULL, NULL, 0), "channel_mean_bwd");
    MISSING(pfgm_op_zembed_fwd(be, 1, 2, 0, NULL, NULL, NULL), "zembed_fwd");
    MISSING(pfgm_op_zembed_bwd(be, 1, 2, 0, NULL, NULL, NULL, NULL, 0), "zembed_bwd");
    MISSING(pfgm_op_dropout_fwd(be, 1, 0.5f, &r, 0, NULL, NULL), "dropout_fwd");
    MISSING(pfgm_op_dropout_bwd(be, 1, 0.5f, &r, 0, NULL, NULL, 0), "dropout_bwd");
    MISSING(pfgm_op_sumsq(be, 1, NULL, NULL), "sumsq");
    MISSING(pfgm_op_adam_update(be, 1, 1e-3, 0.9, 0.999, 1e-8, 0.0, 1, NULL, NULL, NULL, NULL), "adam_update");
    MISSING(pfgm_op_ema_update(be, 1, 0.9, NULL, NULL), "ema_update");
    EXPECT(pfgm_op_fill(NULL, 1, 0.0f, NULL), PFGM_ERR_INVALID_ARG, "fill: NULL backend");
}

/* Impossible arguments, refused with the op's message on both CPU modes before any buffer
 * (NULL here) is touched. */
static void test_bad_arguments(void **state) {
    (void)state;
    const char *names[2] = {"cpu", "cpu-reference"};
    const pfgm_rng r = {.seed = 1, .stream = PFGM_STREAM_USER};
    const int64_t big = (int64_t)1 << 31;
    for (int i = 0; i < 2; ++i) {
        pfgm_backend *be = NULL;
        assert_int_equal(pfgm_backend_create(names[i], &be), PFGM_OK);
        REFUSED(pfgm_op_gemm(be, 0, 0, 2, 2, 2, 1.0f, NULL, 1, NULL, 2, 0.0f, NULL, 2), "gemm: bad shape");
        REFUSED(pfgm_op_row_sumsq(be, 2, 3, NULL, 2, NULL), "row_sumsq: bad shape");
        REFUSED(pfgm_op_softmax_rows(be, 2, 0, NULL), "softmax_rows: bad shape");
        REFUSED(pfgm_op_perturb(be, &r, 2, 4, NULL, 0, 0.03, 0.01, 1, NULL, NULL, NULL), "perturb: bad shape");
        REFUSED(pfgm_op_field_weights(be, 2, 3, 0.0, NULL, NULL, NULL, NULL), "field_weights: bad shape");
        REFUSED(pfgm_op_field_finish(be, 2, 3, -1.0, NULL, NULL, NULL), "field_finish: bad arguments");
        REFUSED(pfgm_op_loss_mse(be, 0, 3, NULL, NULL, NULL, 0, NULL, NULL, NULL), "loss: bad shape");
        REFUSED(pfgm_op_sphere_points(be, &r, 0, 2, 2, 3, NULL, NULL, 3), "sphere_points: bad shape");
        REFUSED(pfgm_op_ode_drift(be, 2, 3, -1, NULL, 1.0, 1.0, NULL, NULL, NULL, NULL, NULL),
                "ode_drift: bad arguments");
        REFUSED(pfgm_op_ode_init_state(be, 2, 0, 1, NULL, 1.0, NULL), "ode_init_state: bad shape");
        REFUSED(pfgm_op_ode_combine(be, 2, 3, NULL, NULL, PFGM_OP_MAX_TERMS + 1, NULL, NULL, NULL, NULL, 0),
                "ode_combine: bad arguments");
        REFUSED(pfgm_op_ode_combine(be, 2, 3, NULL, NULL, 0, NULL, NULL, NULL, (float *)8, 4),
                "ode_combine: bad arguments");
        REFUSED(pfgm_op_ode_sumsq(be, 2, 3, NULL, NULL, -1, NULL, NULL, NULL, NULL, 0.0, 1.0, NULL),
                "ode_sumsq: bad arguments");
        assert_int_equal(pfgm_op_conv2d_workspace(be, 1, 2, 2, 4, 4, 2), 0);
        assert_non_null(strstr(pfgm_error_message(), "conv2d: bad shape"));
        REFUSED(pfgm_op_conv2d_fwd(be, 1, 2, 2, 4, 4, 2, NULL, NULL, NULL, NULL, NULL, 0), "conv2d: bad shape");
        REFUSED(pfgm_op_conv2d_bwd(be, 1, 0, 2, 4, 4, 3, NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL, 0),
                "conv2d: bad shape");
        REFUSED(pfgm_op_gemm_batched(be, 0, 0, 2, 2, 2, 1.0f, NULL, 1, 4, NULL, 2, 4, 0.0f, NULL, 2, 4, 2),
                "gemm_batched: bad shape");
        REFUSED(pfgm_op_gemm_batched(be, 0, 0, big, 1, 1, 1.0f, NULL, 1, 0, NULL, 1, 0, 0.0f, NULL, 1, 0, 1),
                "gemm_batched: bad shape");
        REFUSED(pfgm_op_softmax_rows_bwd(be, 2, 0, NULL, NULL), "softmax_rows_bwd: negative or zero size");
        REFUSED(pfgm_op_groupnorm_fwd(be, 1, 6, 4, 4, 1e-6f, 0, NULL, NULL, NULL, NULL, NULL, NULL),
                "groupnorm_fwd: bad shape");
        REFUSED(pfgm_op_groupnorm_bwd(be, 1, 6, 4, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL),
                "groupnorm_bwd: bad shape");
        REFUSED(pfgm_op_upsample2x_fwd(be, 1, 0, 4, NULL, NULL), "upsample2x_fwd: negative or zero size");
        REFUSED(pfgm_op_upsample2x_bwd(be, -1, 4, 4, NULL, NULL, 0), "upsample2x_bwd: negative or zero size");
        REFUSED(pfgm_op_avgpool2x2_fwd(be, 1, 3, 4, NULL, NULL), "avgpool2x2_fwd: h=3 w=4 must be positive and even");
        REFUSED(pfgm_op_avgpool2x2_bwd(be, 1, 4, 5, NULL, NULL, 0), "avgpool2x2_bwd: h=4 w=5 must be positive");
        REFUSED(pfgm_op_bcast_add_fwd(be, 1, 2, 2, NULL, -1, NULL), "bcast_add_fwd: negative or zero size");
        REFUSED(pfgm_op_bcast_add_bwd(be, 1, 0, 2, NULL, 0, NULL, 0), "bcast_add_bwd: negative or zero size");
        REFUSED(pfgm_op_copy_channels(be, 1, 4, 3, NULL, 2, 0, NULL, 4, 0, 0), "copy_channels: channels [0, 3) of 2");
        REFUSED(pfgm_op_channel_mean_fwd(be, 1, 2, 2, 2, NULL, NULL), "channel_mean_fwd: negative or zero size");
        REFUSED(pfgm_op_channel_mean_bwd(be, 1, 2, 0, 0, NULL, NULL, 0), "channel_mean_bwd: negative or zero size");
        REFUSED(pfgm_op_zembed_fwd(be, 1, 1, 0, NULL, NULL, NULL), "zembed_fwd (half must be at least 2)");
        REFUSED(pfgm_op_zembed_bwd(be, -1, 4, 0, NULL, NULL, NULL, NULL, 0), "zembed_bwd (half must be at least 2)");
        REFUSED(pfgm_op_dropout_fwd(be, 4, 1.5f, &r, 0, NULL, NULL), "dropout: n=4 p=1.5");
        REFUSED(pfgm_op_dropout_bwd(be, 4, -0.1f, &r, 0, NULL, NULL, 0), "dropout: n=4 p=-0.1");
        REFUSED(pfgm_op_sumsq(be, -1, NULL, NULL), "sumsq: negative element count -1");
        REFUSED(pfgm_op_adam_update(be, 4, 1e-3, 0.9, 0.999, 1e-8, 0.0, 0, NULL, NULL, NULL, NULL),
                "adam_update: step 0, the bias correction needs step >= 1");
        REFUSED(pfgm_op_adam_update(be, -1, 1e-3, 0.9, 0.999, 1e-8, 0.0, 1, NULL, NULL, NULL, NULL),
                "adam_update: negative element count -1");
        REFUSED(pfgm_op_ema_update(be, -1, 0.9, NULL, NULL), "ema_update: negative element count -1");
        pfgm_backend_destroy(be);
    }
}

/* What the checks allow reaches the kernel: empty batches and k = 0 products succeed. */
static void test_boundaries_pass(void **state) {
    (void)state;
    const char *names[2] = {"cpu", "cpu-reference"};
    const pfgm_rng r = {.seed = 1, .stream = PFGM_STREAM_USER};
    for (int i = 0; i < 2; ++i) {
        pfgm_backend *be = NULL;
        assert_int_equal(pfgm_backend_create(names[i], &be), PFGM_OK);
        float c[4] = {1, 2, 3, 4};
        assert_int_equal(pfgm_op_gemm(be, 0, 0, 2, 2, 0, 1.0f, NULL, 1, NULL, 2, 0.5f, c, 2), PFGM_OK);
        assert_true(c[0] == 0.5f && c[3] == 2.0f);
        assert_int_equal(pfgm_op_perturb(be, &r, 0, 4, NULL, 1, 0.03, 0.01, 1, NULL, NULL, NULL), PFGM_OK);
        assert_int_equal(pfgm_op_avgpool2x2_fwd(be, 0, 2, 2, NULL, NULL), PFGM_OK);
        assert_int_equal(pfgm_op_groupnorm_fwd(be, 0, 4, 4, 2, 1e-6f, 0, NULL, NULL, NULL, NULL, NULL, NULL), PFGM_OK);
        assert_int_equal(pfgm_op_conv2d_fwd(be, 0, 2, 2, 4, 4, 3, NULL, NULL, NULL, NULL, NULL, 0), PFGM_OK);
        assert_int_equal(pfgm_op_ode_combine(be, 0, 3, NULL, NULL, PFGM_OP_MAX_TERMS, NULL, NULL, NULL, NULL, 0),
                         PFGM_OK);
        double s = -1.0;
        assert_int_equal(pfgm_op_sumsq(be, 0, NULL, &s), PFGM_OK);
        assert_true(s == 0.0);
        pfgm_backend_destroy(be);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_ops),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_boundaries_pass),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
