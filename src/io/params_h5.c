/* Parameter files by the authors' state_dict names (include/pfgm/params_h5.h): the layout of
 * testvectors/ddpmpp_tiny_reference.h5 and of launch/pth_to_h5.py, /<group>/<name> per
 * parameter, so that the authors' released weights load into the C network. Part of io, with
 * the other HDF5 files: the network's parameter table (pfgm/nn.h) gives names, shapes and
 * offsets, this file the format. HDF5 runs quiet (io/h5util.h) and every failure is one line
 * that names the file, the dataset where there is one, and what HDF5 reported. */
#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/h5util.h"
#include "pfgm/params_h5.h"
#include "util/atomic_file.h"
#include "util/check.h"

static void shape_str(char *buf, size_t cap, int ndim, const hsize_t *dims64, const int64_t *dims) {
    size_t w = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < ndim && w < cap; ++d)
        w += (size_t)snprintf(buf + w, cap - w, "%s%lld", d ? ", " : "",
                              dims64 ? (long long)dims64[d] : (long long)dims[d]);
    if (w < cap) snprintf(buf + w, cap - w, "]");
}

/* Reads one dataset into host memory after checking its shape and type class. */
static pfgm_status read_one(hid_t g, const char *path, const char *group, const pfgm_nn_param *p, float *host) {
    pfgm_status st = PFGM_OK;
    hid_t ds = -1, sp = -1, ty = -1;
    char want[96], got[96];
    ds = H5Dopen2(g, p->name, H5P_DEFAULT);
    if (ds < 0) return pfgm_error(PFGM_ERR_FORMAT, "%s: %s/%s is not a readable dataset", path, group, p->name);
    sp = H5Dget_space(ds);
    int rank = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    hsize_t dims[H5S_MAX_RANK];
    if (rank < 0 || rank > H5S_MAX_RANK || H5Sget_simple_extent_dims(sp, dims, NULL) < 0) {
        st = pfgm_error(PFGM_ERR_FORMAT, "%s: %s/%s has an unreadable dataspace", path, group, p->name);
        goto done;
    }
    int same = rank == p->ndim;
    for (int d = 0; same && d < rank; ++d) same = (int64_t)dims[d] == p->shape[d];
    if (!same) {
        shape_str(want, sizeof want, p->ndim, NULL, p->shape);
        shape_str(got, sizeof got, rank, dims, NULL);
        st = pfgm_error(PFGM_ERR_FORMAT, "%s: dataset %s/%s has shape %s but the model expects %s", path, group,
                        p->name, got, want);
        goto done;
    }
    ty = H5Dget_type(ds);
    if (ty < 0 || H5Tget_class(ty) != H5T_FLOAT) {
        st = pfgm_error(PFGM_ERR_FORMAT, "%s: dataset %s/%s is not a floating-point dataset (float32 or float64)", path,
                        group, p->name);
        goto done;
    }
    /* HDF5 converts float64 to the float32 memory type on read */
    PFGM_H5_CHECK_GOTO(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, host), done);
done:
    if (ty >= 0) H5Tclose(ty);
    if (sp >= 0) H5Sclose(sp);
    H5Dclose(ds);
    return st;
}

/* The first link of g whose name is not a parameter of t, into name[cap]; 0 when none. */
static int find_extra(hid_t g, const pfgm_nn_params *t, char *name, size_t cap) {
    H5G_info_t info;
    if (H5Gget_info(g, &info) < 0) return 0;
    for (hsize_t i = 0; i < info.nlinks; ++i) {
        ssize_t n = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, cap, H5P_DEFAULT);
        if (n < 0) continue;
        if (pfgm_nn_params_find(t, name) < 0) return 1;
    }
    return 0;
}

pfgm_status pfgm_nn_params_read_h5(const pfgm_nn_params *t, const char *path, const char *group, float *dst) {
    if (!t->be || !dst) return pfgm_error(PFGM_ERR_INVALID_ARG, "%s: parameters have no buffers to read into", path);
    if (access(path, R_OK) != 0) return pfgm_error(PFGM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    pfgm_status st = PFGM_OK;
    pfgm_h5_quiet q;
    pfgm_h5_quiet_begin(&q);
    hid_t f = -1, g = -1;
    float *host = NULL;
    f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        st = pfgm_error(PFGM_ERR_FORMAT, "%s: not an HDF5 file, or a damaged one", path);
        goto done;
    }
    if (H5Lexists(f, group, H5P_DEFAULT) <= 0) {
        st = pfgm_error(PFGM_ERR_FORMAT, "%s: no group '%s' (expected datasets %s/<parameter name>)", path, group,
                        group);
        goto done;
    }
    g = H5Gopen2(f, group, H5P_DEFAULT);
    if (g < 0) {
        st = pfgm_error(PFGM_ERR_FORMAT, "%s: '%s' is not a group", path, group);
        goto done;
    }
    host = calloc((size_t)(t->floats ? t->floats : 1), sizeof(float));
    if (!host) {
        st = pfgm_error(PFGM_ERR_NOMEM, "%s: cannot allocate %lld floats", path, (long long)t->floats);
        goto done;
    }
    H5G_info_t info;
    PFGM_H5_CHECK_GOTO(H5Gget_info(g, &info), done);
    for (int i = 0; i < t->n; ++i) {
        const pfgm_nn_param *p = &t->items[i];
        if (H5Lexists(g, p->name, H5P_DEFAULT) <= 0) {
            st = pfgm_error(PFGM_ERR_FORMAT,
                            "%s: dataset %s/%s is missing (the model has %d parameter tensors, the file %llu) "
                            "---> HINT: check that the file was written for the same architecture",
                            path, group, p->name, t->n, (unsigned long long)info.nlinks);
            goto done;
        }
        PFGM_TRY_GOTO(read_one(g, path, group, p, host + p->offset), done);
    }
    char extra[256];
    if (find_extra(g, t, extra, sizeof extra)) {
        st = pfgm_error(PFGM_ERR_FORMAT, "%s: dataset %s/%s is not a parameter of this model", path, group, extra);
        goto done;
    }
    st = pfgm_backend_upload(t->be, dst, host, t->floats);
done:
    st = pfgm_h5_context(st, path);
    free(host);
    if (g >= 0) H5Gclose(g);
    if (f >= 0) H5Fclose(f);
    pfgm_h5_quiet_end(&q);
    return st;
}

/* One float32 dataset <group>/<name> from host[0 .. p->count). */
static pfgm_status write_one(hid_t g, const char *group, const pfgm_nn_param *p, const float *host) {
    pfgm_status st = PFGM_OK;
    hsize_t dims[PFGM_NN_MAX_DIMS];
    for (int d = 0; d < p->ndim; ++d) dims[d] = (hsize_t)p->shape[d];
    hid_t sp = H5Screate_simple(p->ndim, dims, NULL);
    hid_t ds = sp >= 0 ? H5Dcreate2(g, p->name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
    if (ds < 0 || H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, host) < 0)
        st = pfgm_error(PFGM_ERR_HDF5, "cannot write dataset %s/%s: %s", group, p->name, pfgm_h5_strerror());
    if (ds >= 0) H5Dclose(ds);
    if (sp >= 0) H5Sclose(sp);
    return st;
}

/* The file at tmp: the datasets, then the root attributes format, param_order (names in
 * registration order) and param_count. format and param_order are variable-length UTF-8
 * strings, as h5py writes them (launch/pth_to_h5.py). */
static pfgm_status write_file(const pfgm_nn_params *t, const char *tmp, const char *group, const float *host) {
    pfgm_status st = PFGM_OK;
    hid_t f = -1, lcpl = -1, g = -1, sp = -1, ty = -1, at = -1;
    const char **names = NULL;
    f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return pfgm_error(PFGM_ERR_IO, "cannot create the temporary file %s: %s", tmp, pfgm_h5_strerror());
    PFGM_H5_CHECK_GOTO(lcpl = H5Pcreate(H5P_LINK_CREATE), done);
    PFGM_H5_CHECK_GOTO(H5Pset_create_intermediate_group(lcpl, 1), done);
    g = H5Gcreate2(f, group, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) {
        st = pfgm_error(PFGM_ERR_HDF5, "cannot create group '%s': %s", group, pfgm_h5_strerror());
        goto done;
    }
    for (int i = 0; i < t->n; ++i) PFGM_TRY_GOTO(write_one(g, group, &t->items[i], host + t->items[i].offset), done);
    names = malloc((size_t)(t->n ? t->n : 1) * sizeof *names);
    if (!names) {
        st = pfgm_error(PFGM_ERR_NOMEM, "parameter names");
        goto done;
    }
    for (int i = 0; i < t->n; ++i) names[i] = t->items[i].name;
    PFGM_H5_CHECK_GOTO(ty = H5Tcopy(H5T_C_S1), done);
    PFGM_H5_CHECK_GOTO(H5Tset_size(ty, H5T_VARIABLE), done);
    PFGM_H5_CHECK_GOTO(H5Tset_cset(ty, H5T_CSET_UTF8), done);
    const char *format = "pfgm-params";
    PFGM_H5_CHECK_GOTO(sp = H5Screate(H5S_SCALAR), done);
    PFGM_H5_CHECK_GOTO(at = H5Acreate2(f, "format", ty, sp, H5P_DEFAULT, H5P_DEFAULT), done);
    PFGM_H5_CHECK_GOTO(H5Awrite(at, ty, &format), done);
    H5Aclose(at);
    H5Sclose(sp);
    at = sp = -1;
    hsize_t n = (hsize_t)t->n;
    PFGM_H5_CHECK_GOTO(sp = H5Screate_simple(1, &n, NULL), done);
    PFGM_H5_CHECK_GOTO(at = H5Acreate2(f, "param_order", ty, sp, H5P_DEFAULT, H5P_DEFAULT), done);
    PFGM_H5_CHECK_GOTO(H5Awrite(at, ty, names), done);
    PFGM_TRY_GOTO(pfgm_h5_write_int_attr(f, "param_count", t->count), done);
done:
    free(names);
    if (at >= 0) H5Aclose(at);
    if (ty >= 0) H5Tclose(ty);
    if (sp >= 0) H5Sclose(sp);
    if (g >= 0) H5Gclose(g);
    if (lcpl >= 0) H5Pclose(lcpl);
    if (H5Fclose(f) < 0 && st == PFGM_OK) st = pfgm_error(PFGM_ERR_HDF5, "cannot close %s", tmp);
    return st;
}

pfgm_status pfgm_nn_params_write_h5(const pfgm_nn_params *t, const char *path, const char *group, const float *src) {
    if (!t->be || !src) return pfgm_error(PFGM_ERR_INVALID_ARG, "%s: parameters have no buffers to write", path);
    char tmp[4096];
    PFGM_TRY(pfgm_atomic_tmp_name(path, tmp, sizeof tmp));
    float *host = malloc((size_t)(t->floats ? t->floats : 1) * sizeof(float));
    if (!host) return pfgm_error(PFGM_ERR_NOMEM, "%s: cannot allocate %lld floats", path, (long long)t->floats);
    pfgm_h5_quiet q;
    pfgm_h5_quiet_begin(&q);
    pfgm_status st = pfgm_backend_download(t->be, host, src, t->floats);
    if (st == PFGM_OK) st = write_file(t, tmp, group, host);
    st = pfgm_h5_context(st, path);
    pfgm_h5_quiet_end(&q);
    free(host);
    if (st != PFGM_OK) {
        remove(tmp);
        return st;
    }
    return pfgm_atomic_publish(tmp, path);
}

pfgm_status pfgm_nn_params_load_h5(pfgm_nn_params *t, const char *path, const char *group) {
    return pfgm_nn_params_read_h5(t, path, group, t->value);
}

pfgm_status pfgm_nn_params_save_h5(const pfgm_nn_params *t, const char *path, const char *group) {
    return pfgm_nn_params_write_h5(t, path, group, t->value);
}

pfgm_status pfgm_ddpmpp_load_h5(pfgm_ddpmpp *m, const char *path, const char *group) {
    return pfgm_nn_params_load_h5(pfgm_ddpmpp_params(m), path, group);
}

pfgm_status pfgm_ddpmpp_save_h5(pfgm_ddpmpp *m, const char *path, const char *group) {
    return pfgm_nn_params_save_h5(pfgm_ddpmpp_params(m), path, group);
}
