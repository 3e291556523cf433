/* Private HDF5 helpers shared by the io/ files (see h5util.h): quiet probing, one-line
 * error context from the HDF5 error stack, scalar string and integer attributes. */
#include "io/h5util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/check.h"

void pfgm_h5_quiet_begin(pfgm_h5_quiet *q) {
    q->func = NULL;
    q->data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void pfgm_h5_quiet_end(const pfgm_h5_quiet *q) { H5Eset_auto2(H5E_DEFAULT, q->func, q->data); }

/* H5Ewalk2 callback: keeps the first (innermost, walking upward) description. */
static herr_t innermost_cb(unsigned n, const H5E_error2_t *e, void *ctx) {
    char *out = ctx;
    if (n == 0 && e->desc) snprintf(out, 256, "%s", e->desc);
    return 0;
}

pfgm_status pfgm_h5_context(pfgm_status st, const char *path) {
    if (st == PFGM_OK) return st;
    char orig[1024];
    snprintf(orig, sizeof orig, "%s", pfgm_error_message());
    if (st == PFGM_ERR_HDF5) {
        char inner[256] = "";
        H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost_cb, inner);
        if (inner[0]) return pfgm_error(st, "%s: %s (%s)", path, inner, orig);
        return pfgm_error(st, "%s: %s", path, orig);
    }
    size_t n = strlen(path);
    if (strncmp(orig, path, n) == 0) return st;
    return pfgm_error(st, "%s: %s", path, orig);
}

/* Opens attribute `name` of obj when it exists; *attr < 0 when it does not. */
static pfgm_status open_attr(hid_t obj, const char *path, const char *name, hid_t *attr) {
    *attr = -1;
    htri_t ex = H5Aexists(obj, name);
    if (ex < 0) return pfgm_error(PFGM_ERR_HDF5, "%s: cannot query attribute '%s'", path, name);
    if (ex == 0)
        return pfgm_error(PFGM_ERR_FORMAT, "%s: attribute '%s' missing", path, name);
    *attr = H5Aopen(obj, name, H5P_DEFAULT);
    if (*attr < 0) return pfgm_error(PFGM_ERR_HDF5, "%s: cannot open attribute '%s'", path, name);
    return PFGM_OK;
}

pfgm_status pfgm_h5_read_str_attr(hid_t obj, const char *path, const char *name, char *buf,
                                  size_t cap) {
    pfgm_status st = PFGM_OK;
    hid_t attr = -1, ftype = -1, mtype = -1, space = -1;
    buf[0] = '\0';
    PFGM_TRY_GOTO(open_attr(obj, path, name, &attr), done);
    PFGM_H5_CHECK_GOTO(ftype = H5Aget_type(attr), done);
    PFGM_H5_CHECK_GOTO(space = H5Aget_space(attr), done);
    if (H5Tget_class(ftype) != H5T_STRING || H5Sget_simple_extent_npoints(space) != 1) {
        st = pfgm_error(PFGM_ERR_FORMAT, "%s: attribute '%s' is not a scalar string", path, name);
        goto done;
    }
    PFGM_H5_CHECK_GOTO(mtype = H5Tcopy(H5T_C_S1), done);
    if (H5Tis_variable_str(ftype) > 0) {
        char *v = NULL;
        PFGM_H5_CHECK_GOTO(H5Tset_size(mtype, H5T_VARIABLE), done);
        PFGM_H5_CHECK_GOTO(H5Aread(attr, mtype, &v), done);
        snprintf(buf, cap, "%s", v ? v : "");
        H5free_memory(v);
    } else {
        size_t sz = H5Tget_size(ftype);
        char *tmp = calloc(sz + 1, 1);
        if (!tmp) {
            st = pfgm_error(PFGM_ERR_NOMEM, "%s: attribute '%s': out of memory", path, name);
            goto done;
        }
        if (H5Tset_size(mtype, sz + 1) < 0 || H5Tset_strpad(mtype, H5T_STR_NULLTERM) < 0 ||
            H5Aread(attr, mtype, tmp) < 0) {
            free(tmp);
            st = pfgm_error(PFGM_ERR_HDF5, "%s: cannot read attribute '%s'", path, name);
            goto done;
        }
        snprintf(buf, cap, "%s", tmp);
        free(tmp);
    }
done:
    if (mtype >= 0) H5Tclose(mtype);
    if (space >= 0) H5Sclose(space);
    if (ftype >= 0) H5Tclose(ftype);
    if (attr >= 0) H5Aclose(attr);
    return st;
}

pfgm_status pfgm_h5_read_int_attr(hid_t obj, const char *path, const char *name, int64_t *v) {
    pfgm_status st = PFGM_OK;
    hid_t attr = -1, ftype = -1, space = -1;
    PFGM_TRY_GOTO(open_attr(obj, path, name, &attr), done);
    PFGM_H5_CHECK_GOTO(ftype = H5Aget_type(attr), done);
    PFGM_H5_CHECK_GOTO(space = H5Aget_space(attr), done);
    if (H5Tget_class(ftype) != H5T_INTEGER || H5Sget_simple_extent_npoints(space) != 1) {
        st = pfgm_error(PFGM_ERR_FORMAT, "%s: attribute '%s' is not a scalar integer", path,
                        name);
        goto done;
    }
    PFGM_H5_CHECK_GOTO(H5Aread(attr, H5T_NATIVE_INT64, v), done);
done:
    if (space >= 0) H5Sclose(space);
    if (ftype >= 0) H5Tclose(ftype);
    if (attr >= 0) H5Aclose(attr);
    return st;
}

pfgm_status pfgm_h5_write_str_attr(hid_t obj, const char *name, const char *value) {
    pfgm_status st = PFGM_OK;
    hid_t type = -1, space = -1, attr = -1;
    PFGM_H5_CHECK_GOTO(type = H5Tcopy(H5T_C_S1), done);
    PFGM_H5_CHECK_GOTO(H5Tset_size(type, strlen(value) + 1), done);
    PFGM_H5_CHECK_GOTO(H5Tset_strpad(type, H5T_STR_NULLTERM), done);
    PFGM_H5_CHECK_GOTO(space = H5Screate(H5S_SCALAR), done);
    PFGM_H5_CHECK_GOTO(attr = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT), done);
    PFGM_H5_CHECK_GOTO(H5Awrite(attr, type, value), done);
done:
    if (attr >= 0) H5Aclose(attr);
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    return st;
}

pfgm_status pfgm_h5_write_int_attr(hid_t obj, const char *name, int64_t value) {
    pfgm_status st = PFGM_OK;
    hid_t space = -1, attr = -1;
    PFGM_H5_CHECK_GOTO(space = H5Screate(H5S_SCALAR), done);
    PFGM_H5_CHECK_GOTO(
        attr = H5Acreate2(obj, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT), done);
    PFGM_H5_CHECK_GOTO(H5Awrite(attr, H5T_NATIVE_INT64, &value), done);
done:
    if (attr >= 0) H5Aclose(attr);
    if (space >= 0) H5Sclose(space);
    return st;
}
