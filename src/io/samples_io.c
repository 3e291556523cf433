/* Sample files: uint8 conversion, PNG grid, HDF5 samples (uint8 and float), and
 * pfgm-sample's all-or-nothing pair of outputs (include/pfgm/samples.h). */
#include "pfgm/samples.h"

#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/h5util.h"
#include "pfgm/image.h"
#include "util/atomic_file.h"
#include "util/check.h"

void pfgm_samples_to_uint8(int64_t n, const float *x, uint8_t *out) {
    for (int64_t i = 0; i < n; ++i) {
        float v = 255.0f * ((x[i] + 1.0f) * 0.5f);
        if (!isfinite(v) || v < 0.0f) v = 0.0f;
        if (v > 255.0f) v = 255.0f;
        out[i] = (uint8_t)v; /* truncation, as the authors' astype(np.uint8) */
    }
}

pfgm_status pfgm_samples_write_png_grid(const char *path, const uint8_t *images, int64_t n, int64_t C, int64_t H,
                                        int64_t W, int64_t nrow, int64_t padding) {
    if (n < 1 || (C != 1 && C != 3) || H < 1 || W < 1 || nrow < 1 || padding < 0)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "%s: cannot tile %lld images of %lldx%lldx%lld in rows of %lld", path,
                          (long long)n, (long long)C, (long long)H, (long long)W, (long long)nrow);
    int64_t cols = n < nrow ? n : nrow, rows = (n + cols - 1) / cols;
    int64_t gw = cols * (W + padding) + padding, gh = rows * (H + padding) + padding;
    uint8_t *grid = calloc((size_t)(gw * gh * C), 1);
    if (!grid) return pfgm_error(PFGM_ERR_NOMEM, "%s: out of memory for a %lldx%lld grid", path, (long long)gw,
                                 (long long)gh);
    for (int64_t k = 0; k < n; ++k) {
        int64_t gy = padding + (k / cols) * (H + padding), gx = padding + (k % cols) * (W + padding);
        const uint8_t *img = images + k * C * H * W; /* [C, H, W] -> interleaved [H, W, C] */
        for (int64_t y = 0; y < H; ++y)
            for (int64_t x = 0; x < W; ++x)
                for (int64_t c = 0; c < C; ++c) grid[((gy + y) * gw + gx + x) * C + c] = img[(c * H + y) * W + x];
    }
    pfgm_status st = pfgm_png_write(path, gw, gh, (int)C, grid);
    free(grid);
    return st;
}

int64_t pfgm_samples_grid_columns(int64_t n) {
    if (n < 1) return 0;
    int64_t c = (int64_t)sqrt((double)n);
    while (c * c < n) ++c; /* exact ceil(sqrt(n)) whatever the rounding of sqrt */
    while (c > 1 && (c - 1) * (c - 1) >= n) --c;
    return c;
}

/* A float64 attribute of `count` values (scalar when count is 0) on obj. */
static pfgm_status write_f64_attr(hid_t obj, const char *name, const double *v, hsize_t count) {
    hid_t as = count ? H5Screate_simple(1, &count, NULL) : H5Screate(H5S_SCALAR);
    hid_t a = as >= 0 ? H5Acreate2(obj, name, H5T_IEEE_F64LE, as, H5P_DEFAULT, H5P_DEFAULT) : -1;
    herr_t rc = a >= 0 ? H5Awrite(a, H5T_NATIVE_DOUBLE, v) : -1;
    if (a >= 0) H5Aclose(a);
    if (as >= 0) H5Sclose(as);
    return rc < 0 ? pfgm_error(PFGM_ERR_HDF5, "cannot write attribute '%s'", name) : PFGM_OK;
}

/* The attributes that make /samples self-describing (include/pfgm/samples.h). */
static pfgm_status describe_uint8(hid_t ds) {
    const double range[2] = {0.0, 255.0};
    PFGM_TRY(pfgm_h5_write_str_attr(ds, "layout", "NCHW"));
    PFGM_TRY(write_f64_attr(ds, "range", range, 2));
    return pfgm_h5_write_str_attr(ds, "conversion",
                                  "trunc(clip(255 * (x + 1) / 2, 0, 255)) of samples_float x, as the authors' "
                                  "run_lib.py; 0 = black, 255 = white");
}

/* ... and /samples_float: the nominal range, the measured one and how much lies outside. */
static pfgm_status describe_float(hid_t ds, const float *x, size_t count) {
    double lo = INFINITY, hi = -INFINITY;
    int64_t outside = 0, nonfinite = 0;
    for (size_t i = 0; i < count; ++i) {
        const double v = (double)x[i];
        if (!isfinite(v)) {
            ++nonfinite;
            continue;
        }
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
        outside += v < -1.0 || v > 1.0;
    }
    const double range[2] = {-1.0, 1.0}, seen[2] = {lo, hi};
    PFGM_TRY(pfgm_h5_write_str_attr(ds, "layout", "NCHW"));
    PFGM_TRY(write_f64_attr(ds, "range", range, 2));
    PFGM_TRY(pfgm_h5_write_str_attr(ds, "centering",
                                    "centered data scale (data.centered: true): the image v in [0, 1] is "
                                    "x = 2 v - 1, so v = (x + 1) / 2; the ODE output at z = z_min, unclipped, "
                                    "so values outside range occur"));
    PFGM_TRY(write_f64_attr(ds, "min_max", seen, 2));
    PFGM_TRY(pfgm_h5_write_int_attr(ds, "outside_range", outside));
    return pfgm_h5_write_int_attr(ds, "nonfinite", nonfinite);
}

pfgm_status pfgm_samples_write_h5(const char *path, const uint8_t *images, int64_t n, int64_t C, int64_t H,
                                  int64_t W, const pfgm_samples_meta *meta) {
    return pfgm_samples_write_h5_float(path, NULL, images, n, C, H, W, meta);
}

pfgm_status pfgm_samples_write_h5_float(const char *path, const float *x, const uint8_t *images, int64_t n,
                                        int64_t C, int64_t H, int64_t W, const pfgm_samples_meta *meta) {
    if (n < 1 || C < 1 || H < 1 || W < 1 || !images)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "%s: cannot write %lld samples of %lldx%lldx%lld", path, (long long)n,
                          (long long)C, (long long)H, (long long)W);
    char tmp[4096];
    PFGM_TRY(pfgm_atomic_tmp_name(path, tmp, sizeof tmp));
    pfgm_status st = PFGM_OK;
    pfgm_h5_quiet q;
    pfgm_h5_quiet_begin(&q);
    hid_t f = -1, space = -1, dcpl = -1, ds = -1;
    hsize_t dims[4] = {(hsize_t)n, (hsize_t)C, (hsize_t)H, (hsize_t)W};
    hsize_t chunk[4] = {(hsize_t)(n < 64 ? n : 64), (hsize_t)C, (hsize_t)H, (hsize_t)W};
    PFGM_H5_CHECK_GOTO(f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), fail);
    PFGM_H5_CHECK_GOTO(space = H5Screate_simple(4, dims, NULL), fail);
    PFGM_H5_CHECK_GOTO(dcpl = H5Pcreate(H5P_DATASET_CREATE), fail);
    PFGM_H5_CHECK_GOTO(H5Pset_chunk(dcpl, 4, chunk), fail);
    PFGM_H5_CHECK_GOTO(H5Pset_fletcher32(dcpl), fail);
    PFGM_H5_CHECK_GOTO(ds = H5Dcreate2(f, "samples", H5T_STD_U8LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT), fail);
    PFGM_H5_CHECK_GOTO(H5Dwrite(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, images), fail);
    PFGM_TRY_GOTO(describe_uint8(ds), fail);
    if (x) {
        H5Dclose(ds);
        ds = -1;
        PFGM_H5_CHECK_GOTO(ds = H5Dcreate2(f, "samples_float", H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT),
                           fail);
        PFGM_H5_CHECK_GOTO(H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x), fail);
        PFGM_TRY_GOTO(describe_float(ds, x, (size_t)(n * C * H * W)), fail);
    }
    PFGM_TRY_GOTO(pfgm_h5_write_str_attr(f, "format", "pfgm-samples"), fail);
    PFGM_TRY_GOTO(pfgm_h5_write_str_attr(f, "checkpoint", meta && meta->checkpoint ? meta->checkpoint : ""), fail);
    PFGM_TRY_GOTO(pfgm_h5_write_int_attr(f, "step", meta ? meta->step : -1), fail);
    PFGM_TRY_GOTO(pfgm_h5_write_str_attr(f, "solver", meta && meta->solver ? meta->solver : ""), fail);
    PFGM_TRY_GOTO(pfgm_h5_write_int_attr(f, "seed", meta ? meta->seed : 0), fail);
    if (meta && meta->weights) PFGM_TRY_GOTO(pfgm_h5_write_str_attr(f, "weights", meta->weights), fail);
    {
        hid_t as = H5Screate(H5S_SCALAR);
        hid_t a = as >= 0 ? H5Acreate2(f, "nfe", H5T_IEEE_F64LE, as, H5P_DEFAULT, H5P_DEFAULT) : -1;
        double nfe = meta ? meta->nfe : 0.0;
        herr_t rc = a >= 0 ? H5Awrite(a, H5T_NATIVE_DOUBLE, &nfe) : -1;
        if (a >= 0) H5Aclose(a);
        if (as >= 0) H5Sclose(as);
        if (rc < 0) {
            st = pfgm_error(PFGM_ERR_HDF5, "cannot write attribute 'nfe'");
            goto fail;
        }
    }
    H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(space);
    ds = dcpl = space = -1;
    if (H5Fclose(f) < 0) {
        f = -1;
        st = pfgm_error(PFGM_ERR_HDF5, "cannot close");
        goto fail;
    }
    pfgm_h5_quiet_end(&q);
    return pfgm_atomic_publish(tmp, path);
fail:
    st = pfgm_h5_context(st, tmp);
    if (ds >= 0) H5Dclose(ds);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    if (f >= 0) H5Fclose(f);
    unlink(tmp);
    pfgm_h5_quiet_end(&q);
    return st;
}

/* Creates the missing directories above a file (none for a bare name). */
static pfgm_status make_parent(const char *path) {
    if (!path) return PFGM_OK;
    char dir[4096];
    if ((size_t)snprintf(dir, sizeof dir, "%s", path) >= sizeof dir)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "%s: path too long", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) return PFGM_OK;
    *slash = '\0';
    return pfgm_mkdirs(dir);
}

pfgm_status pfgm_samples_write_outputs(const char *png_path, const char *h5_path, const float *x, int64_t n,
                                       int64_t C, int64_t H, int64_t W, const pfgm_samples_meta *meta) {
    if (n < 1 || C < 1 || H < 1 || W < 1 || !x)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "%s: cannot write %lld samples of %lldx%lldx%lld",
                          png_path ? png_path : h5_path ? h5_path : "samples", (long long)n, (long long)C,
                          (long long)H, (long long)W);
    size_t count = (size_t)(n * C * H * W);
    uint8_t *images = malloc(count);
    if (!images)
        return pfgm_error(PFGM_ERR_NOMEM, "%s: out of memory for %lld images", png_path ? png_path : h5_path,
                          (long long)n);
    pfgm_samples_to_uint8((int64_t)count, x, images);
    pfgm_status st = make_parent(h5_path);
    if (st == PFGM_OK) st = make_parent(png_path);
    if (h5_path) st = pfgm_samples_write_h5_float(h5_path, x, images, n, C, H, W, meta);
    if (st == PFGM_OK && png_path) {
        st = pfgm_samples_write_png_grid(png_path, images, n, C, H, W, pfgm_samples_grid_columns(n), 2);
        if (st != PFGM_OK && h5_path) unlink(h5_path); /* all or nothing */
    }
    free(images);
    return st;
}
