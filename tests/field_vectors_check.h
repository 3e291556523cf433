/* The checker of the authors' vector files (testvectors/README.md layout), shared by the
 * tests that run it on different backends (tests/unit/test_field_vectors.c on the CPU
 * backends, tests/gpu/test_cuda_math.c on CUDA). Every group of an HDF5 vector file is
 * found by iterating the file (H5Literate), never by name, and recognised by its datasets:
 *   target_f64  -> normalized field targets of `perturbed` against `reference_batch` with
 *                  the group's `gamma` (spec §1.2-1.3);
 *   dx_dt_logz  -> ODE drift with the z_exp substitution from net_x, net_z_raw / z_used and
 *                  the attributes N, z, gamma, z_exp (spec §1.8).
 * One line per group and backend: name, size, max error and the fraction of the tolerance
 * used. Header-only (static functions); include after cmocka.h. */
#ifndef PFGM_TESTS_FIELD_VECTORS_CHECK_H
#define PFGM_TESTS_FIELD_VECTORS_CHECK_H

#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "pfgm/backend.h"
#include "pfgm/field.h"
#include "pfgm/ode.h"

/* Targets: testvectors/README.md: a float32 implementation of spec §1.2-1.3 agrees with
 * target_f64 to about 1e-5 relative to sqrt(N) per component. The fp32 error budget is the
 * fp32 rounding of the inputs' distances (|a|^2 + |b|^2 - 2ab loses ~1e-7 of |a|^2, raised
 * to the (N+1)/2 power in the weights) and of the GEMM sums; measured errors are well below
 * (printed as the fraction of the tolerance used). */
#define TARGET_TOL_PER_SQRT_N 1e-5

/* Drift: per component |ours - ref| <= DRIFT_REL_TOL * |ref|. The drift is a per-row scalar
 * times v_x (no cancellation), computed in float32 as the authors: ~4 roundings of the
 * drift plus ~4 in the substituted v_z (rho from a float32 norm of N values, gamma rho /
 * (1 - rho), sqrt, divide), each <= 2^-24 = 6e-8, so ~5e-7 in the worst case. 2e-6 leaves
 * room for a different summation order in |v_x| yet catches a missing +1e-5 in
 * 1/(v_z + 1e-5) (a relative change of 1e-5/|v_z| >= 2.5e-6 for the file's |v_z| <= 4). */
#define DRIFT_REL_TOL 2e-6

/* ---- small HDF5 readers (errors name the file, group and dataset) ---------------------- */

typedef struct fv_ctx {
    pfgm_backend *be;
    const char *file;
    int groups, failures;
} fv_ctx;

static int fv_read_attr_f64(hid_t g, const char *name, double *out) {
    if (H5Aexists(g, name) <= 0) return -1;
    hid_t a = H5Aopen(g, name, H5P_DEFAULT);
    if (a < 0) return -1;
    herr_t e = H5Aread(a, H5T_NATIVE_DOUBLE, out);
    H5Aclose(a);
    return e < 0 ? -1 : 0;
}

/* Reads a float or double dataset of rank `rank`; dims[rank] out; returns malloc'ed data. */
static void *fv_read_ds(fv_ctx *c, hid_t g, const char *gname, const char *name, hid_t memtype, int rank, hsize_t *dims) {
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    if (d < 0) {
        printf("  %s: group %s: dataset %s missing\n", c->file, gname, name);
        return NULL;
    }
    hid_t sp = H5Dget_space(d);
    int r = H5Sget_simple_extent_ndims(sp);
    void *buf = NULL;
    if (r != rank) {
        printf("  %s: group %s: dataset %s has rank %d, expected %d\n", c->file, gname, name, r, rank);
    } else {
        H5Sget_simple_extent_dims(sp, dims, NULL);
        size_t n = 1;
        for (int i = 0; i < rank; ++i) n *= (size_t)dims[i];
        buf = malloc(n * H5Tget_size(memtype) + 1);
        if (buf && H5Dread(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
            printf("  %s: group %s: dataset %s unreadable\n", c->file, gname, name);
            free(buf);
            buf = NULL;
        }
    }
    H5Sclose(sp);
    H5Dclose(d);
    return buf;
}

static float *fv_to_backend(pfgm_backend *be, const float *host, size_t n) {
    void *p = NULL;
    if (be->alloc(be, n * sizeof(float), &p) != PFGM_OK) return NULL;
    if (host && pfgm_backend_upload(be, p, host, (int64_t)n) != PFGM_OK) {
        be->free(be, p);
        return NULL;
    }
    return p;
}

/* ---- target groups --------------------------------------------------------------------- */

static int fv_check_targets(fv_ctx *c, hid_t g, const char *gname) {
    hsize_t dp[2], dr[2], dt[2];
    double gamma;
    int ok = 0;
    float *pert = fv_read_ds(c, g, gname, "perturbed", H5T_NATIVE_FLOAT, 2, dp);
    float *ref = fv_read_ds(c, g, gname, "reference_batch", H5T_NATIVE_FLOAT, 2, dr);
    double *want = fv_read_ds(c, g, gname, "target_f64", H5T_NATIVE_DOUBLE, 2, dt);
    float *d_pert = NULL, *d_ref = NULL, *d_out = NULL, *out = NULL;
    void *ws = NULL;
    if (!pert || !ref || !want) goto done;
    if (fv_read_attr_f64(g, "gamma", &gamma) != 0) {
        printf("  %s: group %s: attribute gamma missing\n", c->file, gname);
        goto done;
    }
    const int64_t B = (int64_t)dp[0], N = (int64_t)dr[1], L = (int64_t)dr[0];
    if ((int64_t)dp[1] != N + 1 || dt[0] != dp[0] || dt[1] != dp[1]) {
        printf("  %s: group %s: shapes disagree: perturbed [%llu, %llu], reference_batch [%llu, %llu], "
               "target_f64 [%llu, %llu]\n",
               c->file, gname, (unsigned long long)dp[0], (unsigned long long)dp[1], (unsigned long long)dr[0],
               (unsigned long long)dr[1], (unsigned long long)dt[0], (unsigned long long)dt[1]);
        goto done;
    }
    pfgm_backend *be = c->be;
    size_t wsb = pfgm_field_workspace_bytes(B, L);
    d_pert = fv_to_backend(be, pert, (size_t)(B * (N + 1)));
    d_ref = fv_to_backend(be, ref, (size_t)(L * N));
    d_out = fv_to_backend(be, NULL, (size_t)(B * (N + 1)));
    out = malloc((size_t)(B * (N + 1)) * sizeof(float));
    if (!d_pert || !d_ref || !d_out || !out || be->alloc(be, wsb, &ws) != PFGM_OK) goto done;
    pfgm_status st = pfgm_field_targets(be, B, L, N, d_pert, d_ref, gamma, ws, wsb, d_out);
    if (st != PFGM_OK) {
        printf("  %s: group %s: pfgm_field_targets failed: %s\n", c->file, gname, pfgm_error_message());
        goto done;
    }
    pfgm_backend_download(be, out, d_out, B * (N + 1));
    double maxerr = 0.0;
    for (int64_t i = 0; i < B * (N + 1); ++i) {
        double e = fabs((double)out[i] - want[i]);
        maxerr = (e > maxerr || isnan(e)) ? e : maxerr;
    }
    const double tol = TARGET_TOL_PER_SQRT_N * sqrt((double)N);
    ok = maxerr <= tol;
    printf("%-14s %-22s targets B=%-4lld L=%-5lld N=%-5lld gamma=%-3g max|err|=%.3e (%.3e x sqrt(N), %5.1f%% of "
           "tol) %s\n",
           be->name, gname, (long long)B, (long long)L, (long long)N, gamma, maxerr, maxerr / sqrt((double)N),
           100.0 * maxerr / tol, ok ? "ok" : "FAIL");
done:
    if (ws) c->be->free(c->be, ws);
    if (d_pert) c->be->free(c->be, d_pert);
    if (d_ref) c->be->free(c->be, d_ref);
    if (d_out) c->be->free(c->be, d_out);
    free(out);
    free(pert);
    free(ref);
    free(want);
    return ok;
}

/* ---- drift groups ---------------------------------------------------------------------- */

static int fv_check_drift(fv_ctx *c, hid_t g, const char *gname) {
    hsize_t dx[2], dz[1], du[1], dd[2];
    double Nattr, z, gamma, z_exp;
    int ok = 0;
    float *net_x = fv_read_ds(c, g, gname, "net_x", H5T_NATIVE_FLOAT, 2, dx);
    float *net_z = fv_read_ds(c, g, gname, "net_z_raw", H5T_NATIVE_FLOAT, 1, dz);
    float *z_used = fv_read_ds(c, g, gname, "z_used", H5T_NATIVE_FLOAT, 1, du);
    float *want = fv_read_ds(c, g, gname, "dx_dt_logz", H5T_NATIVE_FLOAT, 2, dd);
    float *d_x = NULL, *d_vz = NULL, *d_z = NULL, *d_k = NULL, *d_used = NULL, *k = NULL, *vz_used = NULL;
    float *vz_in = NULL, *zs = NULL;
    if (!net_x || !net_z || !z_used || !want) goto done;
    if (fv_read_attr_f64(g, "N", &Nattr) || fv_read_attr_f64(g, "z", &z) || fv_read_attr_f64(g, "gamma", &gamma) ||
        fv_read_attr_f64(g, "z_exp", &z_exp)) {
        printf("  %s: group %s: attributes N, z, gamma, z_exp expected\n", c->file, gname);
        goto done;
    }
    const int64_t B = (int64_t)dx[0], N = (int64_t)dx[1];
    if ((int64_t)Nattr != N || dz[0] != dx[0] || du[0] != dx[0] || dd[0] != dx[0] || dd[1] != dx[1]) {
        printf("  %s: group %s: shapes disagree with N = %g\n", c->file, gname, Nattr);
        goto done;
    }
    /* Substitution applies (spec §1.8: z < z_exp and gamma > 0): the network's raw v_z is
     * net_z_raw and must be discarded. Otherwise z_used is the network's raw value (README). */
    const int subst = z < z_exp && gamma > 0.0;
    vz_in = malloc((size_t)B * sizeof(float));
    zs = malloc((size_t)B * sizeof(float));
    k = malloc((size_t)(B * N) * sizeof(float));
    vz_used = malloc((size_t)B * sizeof(float));
    if (!vz_in || !zs || !k || !vz_used) goto done;
    for (int64_t b = 0; b < B; ++b) {
        vz_in[b] = subst ? net_z[b] : z_used[b];
        zs[b] = (float)z;
    }
    pfgm_backend *be = c->be;
    d_x = fv_to_backend(be, net_x, (size_t)(B * N));
    d_vz = fv_to_backend(be, vz_in, (size_t)B);
    d_z = fv_to_backend(be, zs, (size_t)B);
    d_k = fv_to_backend(be, NULL, (size_t)(B * N));
    d_used = fv_to_backend(be, NULL, (size_t)B);
    if (!d_x || !d_vz || !d_z || !d_k || !d_used) goto done;
    int64_t guards = 0;
    pfgm_status st = pfgm_ode_drift(be, B, N, 0, d_z, gamma, z_exp, d_x, d_vz, d_k, d_used, &guards);
    if (st != PFGM_OK) {
        printf("  %s: group %s: pfgm_ode_drift failed: %s\n", c->file, gname, pfgm_error_message());
        goto done;
    }
    pfgm_backend_download(be, k, d_k, B * N);
    pfgm_backend_download(be, vz_used, d_used, B);
    double worst = 0.0, maxabs = 0.0, worst_z = 0.0;
    for (int64_t i = 0; i < B * N; ++i) {
        double e = fabs((double)k[i] - (double)want[i]);
        maxabs = e > maxabs ? e : maxabs;
        double rel = e / (fabs((double)want[i]) + 1e-30);
        worst = (rel > worst || isnan(rel)) ? rel : worst;
    }
    for (int64_t b = 0; b < B; ++b) {
        double rel = fabs((double)vz_used[b] - (double)z_used[b]) / (fabs((double)z_used[b]) + 1e-30);
        worst_z = (rel > worst_z || isnan(rel)) ? rel : worst_z;
    }
    ok = worst <= DRIFT_REL_TOL && worst_z <= DRIFT_REL_TOL && guards == 0;
    printf("%-14s %-22s drift   B=%-4lld N=%-5lld z=%-5g z_exp=%-4g gamma=%-3g subst=%d max|err|=%.3e "
           "max rel=%.3e (%5.1f%% of tol) v_z rel=%.3e %s\n",
           be->name, gname, (long long)B, (long long)N, z, z_exp, gamma, subst, maxabs, worst,
           100.0 * worst / DRIFT_REL_TOL, worst_z, ok ? "ok" : "FAIL");
done:
    if (c->be) {
        float *bufs[] = {d_x, d_vz, d_z, d_k, d_used};
        for (size_t i = 0; i < 5; ++i)
            if (bufs[i]) c->be->free(c->be, bufs[i]);
    }
    free(net_x);
    free(net_z);
    free(z_used);
    free(want);
    free(k);
    free(vz_used);
    free(vz_in);
    free(zs);
    return ok;
}

/* HDF5 1.10 and 1.12+ spell the link and object info types differently. */
#if H5_VERSION_GE(1, 12, 0)
typedef H5L_info2_t fv_link_info;
typedef H5O_info2_t fv_object_info;
#define FV_OBJECT_INFO(loc, name, oi) H5Oget_info_by_name3(loc, name, oi, H5O_INFO_BASIC, H5P_DEFAULT)
#else
typedef H5L_info_t fv_link_info;
typedef H5O_info_t fv_object_info;
#define FV_OBJECT_INFO(loc, name, oi) H5Oget_info_by_name2(loc, name, oi, H5O_INFO_BASIC, H5P_DEFAULT)
#endif

static herr_t fv_visit(hid_t root, const char *name, const fv_link_info *info, void *op) {
    fv_ctx *c = op;
    fv_object_info oi;
    if (FV_OBJECT_INFO(root, name, &oi) < 0 || oi.type != H5O_TYPE_GROUP)
        return 0; /* root datasets and attributes are not vector groups */
    hid_t g = H5Gopen2(root, name, H5P_DEFAULT);
    if (g < 0) {
        c->failures++;
        return 0;
    }
    c->groups++;
    int ok;
    if (H5Lexists(g, "target_f64", H5P_DEFAULT) > 0)
        ok = fv_check_targets(c, g, name);
    else if (H5Lexists(g, "dx_dt_logz", H5P_DEFAULT) > 0)
        ok = fv_check_drift(c, g, name);
    else {
        printf("%-14s %-22s FAIL: neither target_f64 nor dx_dt_logz: not a vector group this test knows\n",
               c->be->name, name);
        ok = 0;
    }
    if (!ok) c->failures++;
    H5Gclose(g);
    return 0;
}

/* Checks every group of `path` on each backend of names[n] (created by name); returns
 * the number of failures. */
static int fv_check_file(const char *path, const char *const *names, int n) {
    int failures = 0;
    for (int i = 0; i < n; ++i) {
        fv_ctx c = {.file = path};
        if (pfgm_backend_create(names[i], &c.be) != PFGM_OK) return 1;
        hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
        if (f < 0) {
            printf("%s: cannot open the vector file (set PFGM_TEST_VECTORS)\n", path);
            pfgm_backend_destroy(c.be);
            return 1;
        }
        hsize_t idx = 0;
        H5Literate(f, H5_INDEX_NAME, H5_ITER_INC, &idx, fv_visit, &c);
        H5Fclose(f);
        if (c.groups == 0) {
            printf("%s: no groups to check\n", path);
            c.failures++;
        }
        failures += c.failures;
        pfgm_backend_destroy(c.be);
    }
    return failures;
}

/* The vector file: $PFGM_TEST_VECTORS, else $PFGM_SOURCE_DIR/../shared/testvectors/pfgm_vectors.h5. */
static void fv_default_path(char *path, size_t cap) {
    const char *env = getenv("PFGM_TEST_VECTORS");
    const char *src = getenv("PFGM_SOURCE_DIR");
    if (env && *env)
        snprintf(path, cap, "%s", env);
    else
        snprintf(path, cap, "%s/../shared/testvectors/pfgm_vectors.h5", src ? src : ".");
}

/* The drift vectors with rho above 1 (tests/scripts/make_drift_rho_vectors.py: the
 * authors' methods.py::Poisson.ode in float32, no guard): $PFGM_SOURCE_DIR/tests/fixtures/.
 * Checked with DRIFT_REL_TOL: their rows keep |1 - rho| >= 0.1, so the float32
 * cancellation in 1 - rho amplifies the authors' rounding by at most 1/|1 - rho| = 10. */
static void fv_rho_fixture_path(char *path, size_t cap) {
    const char *src = getenv("PFGM_SOURCE_DIR");
    snprintf(path, cap, "%s/tests/fixtures/drift_rho_vectors.h5", src ? src : ".");
}

#endif /* PFGM_TESTS_FIELD_VECTORS_CHECK_H */
