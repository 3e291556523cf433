/* The training loss (spec §1.5): 0.5 * sum (reduce_mean false) or mean (true) over the
 * N+1 values, mean over the batch; its gradient against central differences and the
 * closed form, on both CPU backends; the ddpmpp reference file's loss convention; errors. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <hdf5.h>

#include "pfgm/backend.h"
#include "pfgm/loss.h"
#include "unit/math_testutil.h"

enum { B = 6, N = 11, D = N + 1 };

static double loss_direct(const float *pred, const float *target, int reduce_mean) {
    double total = 0.0;
    for (int b = 0; b < B; ++b) {
        double acc = 0.0;
        for (int d = 0; d < D; ++d) {
            double v = (double)pred[b * D + d] - target[b * D + d];
            acc += v * v;
        }
        total += reduce_mean ? acc / D : 0.5 * acc;
    }
    return total / B;
}

/* [B, N+1] rows <-> the network's [B, N] and [B] outputs. */
static void split(int64_t b, int64_t n, const float *aug, float *x, float *z) {
    for (int64_t k = 0; k < b; ++k) {
        memcpy(x + k * n, aug + k * (n + 1), sizeof(float) * (size_t)n);
        z[k] = aug[k * (n + 1) + n];
    }
}

static void join(int64_t b, int64_t n, const float *x, const float *z, float *aug) {
    for (int64_t k = 0; k < b; ++k) {
        memcpy(aug + k * (n + 1), x + k * n, sizeof(float) * (size_t)n);
        aug[k * (n + 1) + n] = z[k];
    }
}

/* The loss of pred (augmented rows) against target on be, through the split outputs; grad
 * (augmented, may be NULL) receives the two gradients joined. */
static double loss_on(pfgm_backend *be, const float *pred, const float *target, int reduce_mean, float *grad) {
    float px[B * N], pz[B], gx[B * N], gz[B];
    split(B, N, pred, px, pz);
    float *dx = tu_upload(be, px, B * N), *dz = tu_upload(be, pz, B), *dt = tu_upload(be, target, B * D);
    float *dgx = tu_upload(be, NULL, B * N), *dgz = tu_upload(be, NULL, B);
    double loss = -1.0;
    assert_int_equal(pfgm_loss(be, B, N, dx, dz, dt, reduce_mean, grad ? dgx : NULL, grad ? dgz : NULL, &loss), PFGM_OK);
    if (grad) {
        pfgm_backend_download(be, gx, dgx, B * N);
        pfgm_backend_download(be, gz, dgz, B);
        join(B, N, gx, gz, grad);
    }
    float *all[] = {dx, dz, dt, dgx, dgz};
    for (int i = 0; i < 5; ++i) be->free(be, all[i]);
    return loss;
}

static void test_value_and_gradient(void **state) {
    (void)state;
    const char *names[] = {"cpu", "cpu-reference"};
    float pred[B * D], target[B * D], grad[B * D];
    tu_uniform(1, -3.0f, 3.0f, pred, B * D);
    tu_uniform(2, -3.0f, 3.0f, target, B * D);
    for (int i = 0; i < 2; ++i) {
        pfgm_backend *be;
        assert_int_equal(pfgm_backend_create(names[i], &be), PFGM_OK);
        for (int rm = 0; rm <= 1; ++rm) {
            double loss = loss_on(be, pred, target, rm, grad);
            assert_true(fabs(loss - loss_direct(pred, target, rm)) <= 1e-12 * fabs(loss));
            for (int j = 0; j < B * D; ++j) {
                /* closed form */
                double want = (rm ? 2.0 / ((double)B * D) : 1.0 / B) * ((double)pred[j] - target[j]);
                assert_true(fabs(grad[j] - want) <= 1e-6 * fabs(want) + 1e-12);
                /* central difference of the loss itself (exact for a quadratic up to rounding) */
                float p2[B * D];
                memcpy(p2, pred, sizeof p2);
                const float h = 1.0f / 64.0f;
                p2[j] = pred[j] + h;
                double lp = loss_direct(p2, target, rm);
                p2[j] = pred[j] - h;
                double lm = loss_direct(p2, target, rm);
                assert_true(fabs((lp - lm) / (2.0 * h) - grad[j]) <= 1e-5 * (fabs(grad[j]) + 1e-3));
            }
            /* no gradient requested */
            assert_true(loss_on(be, pred, target, rm, NULL) == loss);
        }
        pfgm_backend_destroy(be);
    }
}

static void test_zero_at_target(void **state) {
    (void)state;
    float pred[B * D], grad[B * D];
    tu_uniform(3, -1.0f, 1.0f, pred, B * D);
    pfgm_backend *be;
    assert_int_equal(pfgm_backend_create("cpu", &be), PFGM_OK);
    assert_true(loss_on(be, pred, pred, 0, grad) == 0.0);
    for (int j = 0; j < B * D; ++j) assert_true(grad[j] == 0.0f);
    pfgm_backend_destroy(be);
}

static void test_errors(void **state) {
    (void)state;
    pfgm_backend *be;
    assert_int_equal(pfgm_backend_create("cpu", &be), PFGM_OK);
    float pred[B * D], target[B * D];
    tu_uniform(4, -1.0f, 1.0f, pred, B * D);
    tu_uniform(5, -1.0f, 1.0f, target, B * D);
    double loss;
    float px[B * N], pz[B];
    split(B, N, pred, px, pz);
    assert_int_equal(pfgm_loss(be, 0, N, px, pz, target, 0, NULL, NULL, &loss), PFGM_ERR_INVALID_ARG);
    assert_int_equal(pfgm_loss(be, B, 0, px, pz, target, 0, NULL, NULL, &loss), PFGM_ERR_INVALID_ARG);
    assert_int_equal(pfgm_loss(be, B, N, NULL, pz, target, 0, NULL, NULL, &loss), PFGM_ERR_INVALID_ARG);
    assert_int_equal(pfgm_loss(be, B, N, px, NULL, target, 0, NULL, NULL, &loss), PFGM_ERR_INVALID_ARG);
    px[7] = NAN;
    assert_int_equal(pfgm_loss(be, B, N, px, pz, target, 0, NULL, NULL, &loss), PFGM_ERR_NUMERIC);
    px[7] = 0.0f;
    pz[3] = INFINITY;
    assert_int_equal(pfgm_loss(be, B, N, px, pz, target, 0, NULL, NULL, &loss), PFGM_ERR_NUMERIC);
    pfgm_backend_destroy(be);
}

/* Reads a float64 dataset into a malloc'ed array; *n = element count. */
static double *read_f64(hid_t f, const char *name, size_t *n) {
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    assert_true(d >= 0);
    hid_t sp = H5Dget_space(d);
    *n = (size_t)H5Sget_simple_extent_npoints(sp);
    double *v = malloc(*n * sizeof(double));
    assert_non_null(v);
    assert_true(H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    H5Sclose(sp);
    H5Dclose(d);
    return v;
}

static void test_reference_file_loss(void **state) {
    (void)state;
    /* ddpmpp_tiny_reference.h5: loss = mean over the batch of 0.5 * sum over N+1 of
     * (pred - target)^2 with pred = [net_x flattened, net_z] (testvectors/README.md) */
    char path[4096];
    const char *src = getenv("PFGM_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/../shared/testvectors/ddpmpp_tiny_reference.h5", src ? src : ".");
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    size_t nx, nz, nt, nl;
    double *net_x = read_f64(f, "/output/net_x", &nx), *net_z = read_f64(f, "/output/net_z", &nz);
    double *target = read_f64(f, "/target", &nt), *want = read_f64(f, "/loss", &nl);
    H5Fclose(f);
    const int64_t b = (int64_t)nz, n = (int64_t)(nx / nz);
    assert_int_equal(nt, (size_t)(b * (n + 1)));
    float *px = malloc(nx * sizeof(float)), *pz = malloc(nz * sizeof(float)), *tgt = malloc(nt * sizeof(float));
    assert_non_null(px);
    assert_non_null(pz);
    assert_non_null(tgt);
    for (size_t i = 0; i < nx; ++i) px[i] = (float)net_x[i]; /* the network's outputs as they are */
    for (size_t i = 0; i < nz; ++i) pz[i] = (float)net_z[i];
    for (size_t i = 0; i < nt; ++i) tgt[i] = (float)target[i];
    pfgm_backend *be;
    assert_int_equal(pfgm_backend_create("cpu", &be), PFGM_OK);
    double loss;
    assert_int_equal(pfgm_loss(be, b, n, px, pz, tgt, 0, NULL, NULL, &loss), PFGM_OK);
    printf("reference loss %.10g, ours %.10g (B=%lld N=%lld)\n", want[0], loss, (long long)b, (long long)n);
    assert_true(fabs(loss - want[0]) <= 1e-5 * fabs(want[0])); /* float32 inputs */
    pfgm_backend_destroy(be);
    free(net_x);
    free(net_z);
    free(target);
    free(want);
    free(px);
    free(pz);
    free(tgt);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_value_and_gradient),
        cmocka_unit_test(test_zero_at_target),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_reference_file_loss),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
