/* The whole network and a whole training step on the CUDA backend (label gpu):
 *   - the authors' DDPM++ fixture (tests/ddpmpp_fixture.h: forward, loss, backward against
 *     the PyTorch float64 outputs and gradients, with that header's tolerances);
 *   - one training step of configs/tiny.yaml (pfgm_train in-process, dropout on) on the GPU
 *     and on the "cpu" backend from the same initial weights: the step-1 loss and the
 *     parameter update of every tensor agree.
 * Exits 77 (SKIPPED) when pfgm was built without CUDA or no device is visible; a test whose
 * backend ops are not all present on the CUDA backend is skipped with the missing op named
 * (and the program exits 77 when every test was skipped).
 *
 * The training-step comparison uses Adam with eps = 1, lr = 1, no warmup and no clipping, so
 * the first update is g / (|g| + 1): smooth in the gradient, so the parameter change compares
 * gradients (with eps = 1e-8 the first Adam step is lr * sign(g) and would hide them).
 * Tolerance per tensor: |dp_gpu - dp_cpu| / max(|dp_cpu|, 1e-2 rms) <= 2e-3, where dp = p1 - p0,
 * rms is the root mean square of the tensors' |dp_cpu|; float32 networks on both sides
 * differ by ~1e-5 relative (the fixture test's figures), the floor keeps tensors whose
 * gradient is zero by symmetry (the attention key bias) from dividing rounding by zero. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "ddpmpp_fixture.h"
#include "pfgm/checkpoint.h"
#include "pfgm/comm.h"
#include "pfgm/log.h"
#include "pfgm/trainer.h"
#include "train_testutil.h"

#define TOL_LOSS 1e-4
#define TOL_STEP 2e-3

static int tests_run_; /* tests that were not skipped */

/* Every op of backend.h, by name: the CUDA backend must fill the ones a test needs. */
#define CM_CORE_OPS(X)                                                                                      \
    X(caps) X(destroy) X(alloc) X(free) X(copy) X(memzero) X(sync) X(gemm) X(axpby) X(fill) X(dot)           \
    X(row_sumsq) X(softmax_rows) X(fill_uniform) X(fill_normal)
#define CM_MATH_OPS(X)                                                                                      \
    X(perturb) X(field_weights) X(field_finish) X(loss_mse) X(sphere_points) X(ode_drift) X(ode_init_state)   \
    X(ode_combine) X(ode_sumsq)
#define CM_NN_OPS(X)                                                                                        \
    X(silu_fwd) X(silu_bwd) X(conv2d_workspace) X(conv2d_fwd) X(conv2d_bwd) X(gemm_batched) X(softmax_rows_bwd) \
    X(groupnorm_fwd) X(groupnorm_bwd) X(upsample2x_fwd) X(upsample2x_bwd) X(avgpool2x2_fwd) X(avgpool2x2_bwd)  \
    X(bcast_add_fwd) X(bcast_add_bwd) X(copy_channels) X(channel_mean_fwd) X(channel_mean_bwd) X(zembed_fwd)   \
    X(zembed_bwd) X(dropout_fwd) X(dropout_bwd)
#define CM_OPTIM_OPS(X) X(sumsq) X(adam_update) X(ema_update)

/* The first op of the list that be lacks, or NULL. */
#define CM_CHECK(op) if (!be->op) return #op;
static const char *missing_fixture_op(const pfgm_backend *be) {
    CM_CORE_OPS(CM_CHECK) CM_NN_OPS(CM_CHECK) CM_CHECK(loss_mse) CM_CHECK(sumsq)
    return NULL;
}
static const char *missing_any_op(const pfgm_backend *be) {
    CM_CORE_OPS(CM_CHECK) CM_MATH_OPS(CM_CHECK) CM_NN_OPS(CM_CHECK) CM_OPTIM_OPS(CM_CHECK)
    return NULL;
}
#undef CM_CHECK

/* Skips the calling test when the CUDA backend lacks an op it needs. */
static void need_ops(int all) {
    pfgm_backend *be = NULL;
    if (pfgm_backend_create("cuda", &be) != PFGM_OK) fail_msg("cuda backend: %s", pfgm_error_message());
    const char *op = all ? missing_any_op(be) : missing_fixture_op(be);
    pfgm_backend_destroy(be);
    if (op) {
        printf("SKIPPED: the cuda backend has no '%s' op yet, which this test needs\n", op);
        skip();
    }
    tests_run_++;
}

static void test_fixture_cuda(void **state) {
    (void)state;
    need_ops(0);
    run_fixture("cuda");
}

/* ---- one training step, GPU against CPU ------------------------------------------------- */

static char dir_[512], data_[600];

static pfgm_status train_one(const char *backend, const char *run, pfgm_config *cfg) {
    const char *extra[] = {"optim.eps=1.0", "optim.lr=1.0", "optim.warmup=0", "optim.grad_clip=0"};
    pfgm_status st = tr_config(cfg, data_, 1, extra, sizeof extra / sizeof extra[0]);
    if (st != PFGM_OK) return st;
    pfgm_comm *comm = NULL;
    pfgm_backend *be = NULL;
    st = pfgm_comm_single_create(&comm);
    if (st == PFGM_OK) st = pfgm_backend_create(backend, &be);
    if (st == PFGM_OK) {
        pfgm_logger lg;
        pfgm_logger_init(&lg, 0);
        lg.level = PFGM_LOG_WARN;
        pfgm_train_options o = {.run_dir = run, .resume = "never"};
        pfgm_train_result r;
        st = pfgm_train(cfg, &o, comm, be, &lg, &r);
    }
    pfgm_backend_destroy(be);
    pfgm_comm_destroy(comm);
    return st;
}

static float *read_param(hid_t f, const char *name, int64_t count) {
    char path[PFGM_NN_NAME_MAX + 16];
    snprintf(path, sizeof path, "params/%s", name);
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    if (d < 0) fail_msg("checkpoint has no dataset %s", path);
    hid_t sp = H5Dget_space(d);
    assert_int_equal(H5Sget_simple_extent_npoints(sp), count);
    float *v = malloc(sizeof(float) * (size_t)count);
    assert_true(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    H5Sclose(sp);
    H5Dclose(d);
    return v;
}

static void test_train_step(void **state) {
    (void)state;
    need_ops(1);
    fx_mkdtemp(dir_, sizeof dir_);
    fx_join(data_, sizeof data_, dir_, "data.h5");
    assert_int_equal(fx_write_dataset(data_, 64, 1, 8, 1), PFGM_OK);
    char run_c[600], run_g[600], ck_c[700], ck_g[700], m_c[700], m_g[700];
    fx_join(run_c, sizeof run_c, dir_, "cpu");
    fx_join(run_g, sizeof run_g, dir_, "cuda");
    pfgm_config cfg;
    if (train_one("cpu", run_c, &cfg) != PFGM_OK) fail_msg("cpu training step: %s", pfgm_error_message());
    if (train_one("cuda", run_g, &cfg) != PFGM_OK) fail_msg("cuda training step: %s", pfgm_error_message());

    /* the loss of step 1: perturbation, field targets and the forward pass */
    double lc[4], lgpu[4];
    int64_t sc[4], sg[4];
    fx_join(m_c, sizeof m_c, run_c, "metrics.jsonl");
    fx_join(m_g, sizeof m_g, run_g, "metrics.jsonl");
    assert_int_equal(tr_losses(m_c, lc, sc, 4), 1);
    assert_int_equal(tr_losses(m_g, lgpu, sg, 4), 1);
    const double el = fabs(lgpu[0] - lc[0]) / fabs(lc[0]);
    printf("step-1 loss: cpu %.9g, cuda %.9g, rel.err %.2e (tol %.0e)\n", lc[0], lgpu[0], el, TOL_LOSS);
    assert_true(el <= TOL_LOSS);

    /* the initial weights, as both runs drew them (host Philox, seed of the config) */
    pfgm_ddpmpp_desc desc;
    assert_int_equal(pfgm_ddpmpp_desc_from_config(&cfg, &desc), PFGM_OK);
    pfgm_backend *ref = NULL;
    pfgm_ddpmpp *m = NULL;
    assert_int_equal(pfgm_backend_create("cpu-reference", &ref), PFGM_OK);
    assert_int_equal(pfgm_ddpmpp_create(ref, &desc, 1, PFGM_DDPMPP_INFER, &m), PFGM_OK);
    assert_int_equal(pfgm_ddpmpp_init_params(m, (uint32_t)cfg.seed), PFGM_OK);
    const pfgm_nn_params *t = pfgm_ddpmpp_params(m);
    float *p0 = malloc(sizeof(float) * (size_t)t->floats);
    assert_int_equal(pfgm_backend_download(ref, p0, t->value, t->floats), PFGM_OK);

    assert_int_equal(pfgm_ckpt_path(run_c, 1, ck_c, sizeof ck_c), PFGM_OK);
    assert_int_equal(pfgm_ckpt_path(run_g, 1, ck_g, sizeof ck_g), PFGM_OK);
    hid_t fc = H5Fopen(ck_c, H5F_ACC_RDONLY, H5P_DEFAULT), fg = H5Fopen(ck_g, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(fc >= 0 && fg >= 0);
    double *dn = calloc((size_t)t->n, sizeof(double)), *en = calloc((size_t)t->n, sizeof(double));
    double rms = 0.0;
    for (int i = 0; i < t->n; ++i) {
        const pfgm_nn_param *p = &t->items[i];
        float *vc = read_param(fc, p->name, p->count), *vg = read_param(fg, p->name, p->count);
        double d2 = 0.0, e2 = 0.0;
        for (int64_t e = 0; e < p->count; ++e) {
            const double dc = (double)vc[e] - p0[p->offset + e], dg = (double)vg[e] - p0[p->offset + e];
            d2 += dc * dc;
            e2 += (dg - dc) * (dg - dc);
        }
        dn[i] = sqrt(d2);
        en[i] = sqrt(e2);
        rms += d2;
        if (!p->trainable) assert_memory_equal(vc, vg, sizeof(float) * (size_t)p->count);
        free(vc);
        free(vg);
    }
    rms = sqrt(rms / (double)t->n);
    assert_true(rms > 0.0);
    double worst_err = 0.0;
    int worst_i = 0, bad = 0;
    for (int i = 0; i < t->n; ++i) {
        const double err = en[i] / fmax(dn[i], 1e-2 * rms);
        if (!(err <= worst_err)) {
            worst_err = err;
            worst_i = i;
        }
        if (!(err <= TOL_STEP)) {
            printf("  %-44s |dp cpu| %.3e  |dp cuda - dp cpu| %.3e  err %.2e\n", t->items[i].name, dn[i], en[i], err);
            ++bad;
        }
    }
    printf("parameter update of %d tensors: rms |dp| %.3e, worst err %.2e (%s), tol %.0e\n", t->n, rms, worst_err,
           t->items[worst_i].name, TOL_STEP);
    assert_int_equal(bad, 0);
    H5Fclose(fc);
    H5Fclose(fg);
    free(dn);
    free(en);
    free(p0);
    pfgm_ddpmpp_destroy(m);
    pfgm_backend_destroy(ref);
    fx_rm_rf(dir_);
}

int main(void) {
    if (!pfgm_backend_cuda_available()) {
        printf("SKIPPED: no CUDA device (or pfgm built without CUDA): test_cuda_model not run\n");
        return 77;
    }
    fixture_path();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_cuda),
        cmocka_unit_test(test_train_step),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (rc == 0 && tests_run_ == 0) {
        printf("SKIPPED: every test lacked a cuda op\n");
        return 77;
    }
    return rc;
}
