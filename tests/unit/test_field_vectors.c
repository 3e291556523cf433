/* The authors' numbers: every group of an HDF5 vector file (default
 * ../shared/testvectors/pfgm_vectors.h5, or $PFGM_TEST_VECTORS) is checked against the
 * library on the cpu and cpu-reference backends by the checker of field_vectors_check.h
 * (groups recognised by their datasets: field targets, ODE drift).
 * A second file of the same layout is written by this test (gamma = 0, B = L, another N,
 * a drift group without substitution and one below a small z_exp) with expectations from
 * the plain double-precision formulas, and checked by the same code: the checker works on
 * any file of this layout. Tolerances are explained at their definitions. */
#include <hdf5.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "pfgm/backend.h"
#include "pfgm/field.h"
#include "pfgm/ode.h"
#include "pfgm/perturb.h"

#include "field_vectors_check.h"

static const char *const cpu_backends[] = {"cpu", "cpu-reference"};

static void test_shared_vectors(void **state) {
    (void)state;
    char path[4096];
    fv_default_path(path, sizeof path);
    printf("vector file %s\n", path);
    assert_int_equal(fv_check_file(path, cpu_backends, 2), 0);
}

/* Drift with rho = |v_x|/sqrt(N) above 1 (and below): the authors' formula has no guard and
 * stays finite there; ours must follow it (no clamp, no guard counted). */
static void test_rho_above_one_vectors(void **state) {
    (void)state;
    char path[4096];
    fv_rho_fixture_path(path, sizeof path);
    printf("vector file %s\n", path);
    assert_int_equal(fv_check_file(path, cpu_backends, 2), 0);
}

/* ---- a second file of the same layout, written here ------------------------------------- */

static void write_attr_f64(hid_t g, const char *name, double v) {
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(g, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(a >= 0);
    assert_true(H5Awrite(a, H5T_NATIVE_DOUBLE, &v) >= 0);
    H5Aclose(a);
    H5Sclose(sp);
}

static void write_attr_i64(hid_t g, const char *name, int64_t v) {
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(g, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(a >= 0);
    assert_true(H5Awrite(a, H5T_NATIVE_INT64, &v) >= 0);
    H5Aclose(a);
    H5Sclose(sp);
}

static void write_ds(hid_t g, const char *name, hid_t filetype, hid_t memtype, int rank, const hsize_t *dims,
                     const void *data) {
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(g, name, filetype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(d >= 0);
    assert_true(H5Dwrite(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    H5Dclose(d);
    H5Sclose(sp);
}

/* Deterministic values in [-1, 1) from Philox (user stream). */
static void fill_uniform_pm1(uint32_t step, float *x, size_t n) {
    pfgm_rng r = {.seed = 7, .rank = 0, .stream = PFGM_STREAM_USER, .step = step};
    pfgm_rng_uniform(&r, 0, n, x);
    for (size_t i = 0; i < n; ++i) x[i] = 2.0f * x[i] - 1.0f;
}

/* A target group: B = L charges, all perturbed by the library's kernel (spec §1.4), the
 * expectation from the authors' formula in double (pfgm_field_targets_direct_f64). */
static void write_target_group(hid_t f, const char *name, int64_t N, int64_t B, double gamma, uint32_t seed_step) {
    const int64_t L = B;
    float *ref = malloc((size_t)(L * N) * sizeof(float));
    float *pert = malloc((size_t)(B * (N + 1)) * sizeof(float));
    double *want = malloc((size_t)(B * (N + 1)) * sizeof(double));
    float *want32 = malloc((size_t)(B * (N + 1)) * sizeof(float));
    assert_non_null(ref);
    assert_non_null(pert);
    assert_non_null(want);
    assert_non_null(want32);
    fill_uniform_pm1(seed_step, ref, (size_t)(L * N));
    pfgm_backend *be;
    assert_int_equal(pfgm_backend_create("cpu-reference", &be), PFGM_OK);
    pfgm_perturb_params p = pfgm_perturb_params_default();
    pfgm_rng r = {.seed = 11, .rank = 0, .stream = PFGM_STREAM_PERTURB, .step = seed_step};
    assert_int_equal(pfgm_perturb(be, &r, &p, B, N, ref, pert, NULL, NULL), PFGM_OK);
    pfgm_backend_destroy(be);
    /* one perturbed point exactly on its charge (d = 0) and one just above it */
    for (int64_t j = 0; j < N; ++j) pert[j] = ref[j];
    pert[N] = 0.0f;
    for (int64_t j = 0; j < N; ++j) pert[(N + 1) + j] = ref[N + j];
    pert[(N + 1) + N] = 1e-3f;
    assert_int_equal(pfgm_field_targets_direct_f64(B, L, N, pert, ref, gamma, want), PFGM_OK);
    for (int64_t i = 0; i < B * (N + 1); ++i) want32[i] = (float)want[i];
    hid_t g = H5Gcreate2(f, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(g >= 0);
    write_attr_i64(g, "N", N);
    write_attr_i64(g, "M", p.M);
    write_attr_i64(g, "small_batch", B);
    write_attr_i64(g, "large_batch", L);
    write_attr_i64(g, "restrict_M", p.restrict_M);
    write_attr_f64(g, "gamma", gamma);
    write_attr_f64(g, "sigma_end", p.sigma_end);
    write_attr_f64(g, "tau", p.tau);
    hsize_t dr[2] = {(hsize_t)L, (hsize_t)N}, dp[2] = {(hsize_t)B, (hsize_t)(N + 1)};
    write_ds(g, "reference_batch", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dr, ref);
    write_ds(g, "perturbed", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dp, pert);
    write_ds(g, "target_f32", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dp, want32);
    write_ds(g, "target_f64", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, dp, want);
    H5Gclose(g);
    free(ref);
    free(pert);
    free(want);
    free(want32);
}

/* A drift group; the expectation is spec §1.8 in double, rounded to float. */
static void write_drift_group(hid_t f, const char *name, int64_t N, int64_t B, double z, double gamma, double z_exp,
                              uint32_t seed_step) {
    float *net_x = malloc((size_t)(B * N) * sizeof(float));
    float *dx = malloc((size_t)(B * N) * sizeof(float));
    float net_z[16], z_used[16];
    assert_true(B <= 16);
    assert_non_null(net_x);
    assert_non_null(dx);
    fill_uniform_pm1(seed_step, net_x, (size_t)(B * N)); /* |v_x|/sqrt(N) ~ 0.58 < 1 */
    fill_uniform_pm1(seed_step + 1, net_z, (size_t)B);
    const int subst = z < z_exp && gamma > 0.0;
    for (int64_t b = 0; b < B; ++b) {
        double vz = -1.0 - 2.0 * fabs((double)net_z[b]); /* a network's raw v_z, negative */
        if (subst) {
            double sq = 0.0;
            for (int64_t j = 0; j < N; ++j) sq += (double)net_x[b * N + j] * net_x[b * N + j];
            double rho = sqrt(sq) / sqrt((double)N);
            double ex = gamma * rho / (1.0 - rho);
            vz = -sqrt((double)N) * z / (sqrt(ex * ex + z * z) + gamma);
        } else {
            net_z[b] = 0.25f; /* unused: z_used is the raw value */
        }
        z_used[b] = (float)vz;
        for (int64_t j = 0; j < N; ++j) dx[b * N + j] = (float)(z * (double)net_x[b * N + j] / ((double)z_used[b] + 1e-5));
    }
    hid_t g = H5Gcreate2(f, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(g >= 0);
    write_attr_i64(g, "N", N);
    write_attr_f64(g, "z", z);
    write_attr_f64(g, "gamma", gamma);
    write_attr_f64(g, "z_exp", z_exp);
    hsize_t d2[2] = {(hsize_t)B, (hsize_t)N}, d1[1] = {(hsize_t)B};
    write_ds(g, "net_x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, d2, net_x);
    write_ds(g, "net_z_raw", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, d1, net_z);
    write_ds(g, "z_used", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, d1, z_used);
    write_ds(g, "dx_dt_logz", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, d2, dx);
    H5Gclose(g);
    free(net_x);
    free(dx);
}

static void test_generated_vectors(void **state) {
    (void)state;
    const char *tmp = getenv("TMPDIR");
    char dir[1024], path[1100];
    snprintf(dir, sizeof dir, "%s/pfgm_vectors_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/generated.h5", dir);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(f >= 0);
    write_target_group(f, "gamma0_B_eq_L", 48, 24, 0.0, 1);
    write_target_group(f, "gamma5_B_eq_L_N1", 1, 12, 5.0, 2);
    write_target_group(f, "gamma2_N300", 300, 20, 2.0, 3);
    write_drift_group(f, "drift_gamma0", 64, 3, 0.5, 0.0, 5.0, 4);
    write_drift_group(f, "drift_below_small_zexp", 100, 5, 0.05, 5.0, 0.1, 6);
    write_drift_group(f, "drift_above_small_zexp", 100, 5, 0.2, 5.0, 0.1, 8);
    H5Fclose(f);
    printf("vector file %s (written by this test)\n", path);
    int failures = fv_check_file(path, cpu_backends, 2);
    unlink(path);
    rmdir(dir);
    assert_int_equal(failures, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_vectors),
        cmocka_unit_test(test_generated_vectors),
        cmocka_unit_test(test_rho_above_one_vectors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
