/* Private HDF5 helpers shared by the io/ files (see h5util.h): quiet probing, one-line
 * failure reasons from the HDF5 error stack (for PFGM_H5_CHECK) and the file's name in
 * front of them, scalar string and integer attributes. */
#include "io/h5util.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/check.h"

/* What the HDF5 error stack says, walked from the API call inward: the outermost and the
 * innermost entry's description, or its minor message number when it has none. */
typedef struct stack_walk {
    unsigned n;
    char desc[2][192]; /* [0] outermost, [1] innermost */
    hid_t minor[2];
} stack_walk;

/* Copies an HDF5 text into dst on one line (HDF5's descriptions may hold line breaks). */
static void copy_line(char *dst, size_t cap, const char *src) {
    size_t i = 0;
    for (; src && src[i] && i + 1 < cap; i++)
        dst[i] = (src[i] == '\n' || src[i] == '\r' || src[i] == '\t') ? ' ' : src[i];
    dst[i] = '\0';
}

static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *ctx) {
    stack_walk *w = ctx;
    int at = n > 0;
    copy_line(w->desc[at], sizeof w->desc[at], e->desc);
    w->minor[at] = e->min_num;
    w->n = n + 1;
    return 0;
}

/* The error stack `estack` as "outer: inner" (e.g. "unable to open file: file signature not
 * found"), or "" when it is empty. */
static void stack_text(hid_t estack, char *buf, size_t cap) {
    stack_walk w;
    memset(&w, 0, sizeof w);
    buf[0] = '\0';
    if (H5Ewalk2(estack, H5E_WALK_DOWNWARD, walk_cb, &w) < 0 || w.n == 0) return;
    for (int i = 0; i < 2; i++) /* after the walk: older HDF5 clears the stack in H5Eget_msg */
        if (!w.desc[i][0] && (i == 0 || w.n > 1)) {
            char msg[192] = "";
            H5Eget_msg(w.minor[i], NULL, msg, sizeof msg);
            copy_line(w.desc[i], sizeof w.desc[i], msg);
        }
    if (w.n == 1 || strcmp(w.desc[0], w.desc[1]) == 0) snprintf(buf, cap, "%s", w.desc[0]);
    else snprintf(buf, cap, "%s: %s", w.desc[0], w.desc[1]);
}

/* The last failure HDF5 reported on this thread inside a quiet region, kept by the error
 * handler pfgm_h5_quiet_begin installs in place of the printer (HDF5 calls it as a failing
 * API call returns, with the stack intact). An entry point that closes handles after a
 * failure has cleared the stack by the time it names its file (every HDF5 call clears it),
 * so pfgm_h5_context falls back on this record. Per thread, like the error message. */
static _Thread_local char last_failure[400];

static herr_t record_failure(hid_t estack, void *data) {
    (void)data;
    stack_text(estack, last_failure, sizeof last_failure);
    return 0;
}

/* The one lock around the HDF5 library (h5util.h): recursive, because an entry point may
 * call another (opening the latest checkpoint opens a checkpoint). Initialised once. */
static pthread_mutex_t h5_mutex;
static pthread_once_t h5_mutex_once = PTHREAD_ONCE_INIT;

static void h5_mutex_init(void) {
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&h5_mutex, &a);
    pthread_mutexattr_destroy(&a);
}

void pfgm_h5_lock(void) {
    pthread_once(&h5_mutex_once, h5_mutex_init);
    pthread_mutex_lock(&h5_mutex);
}

void pfgm_h5_unlock(void) { pthread_mutex_unlock(&h5_mutex); }

void pfgm_h5_quiet_begin(pfgm_h5_quiet *q) {
    pfgm_h5_lock();
    q->func = NULL;
    q->data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data);
    last_failure[0] = '\0';
    H5Eset_auto2(H5E_DEFAULT, record_failure, NULL);
}

void pfgm_h5_quiet_end(const pfgm_h5_quiet *q) {
    H5Eset_auto2(H5E_DEFAULT, q->func, q->data);
    pfgm_h5_unlock();
}

const char *pfgm_h5_strerror(void) {
    static _Thread_local char buf[400];
    stack_text(H5E_DEFAULT, buf, sizeof buf);
    if (!buf[0]) snprintf(buf, sizeof buf, "HDF5 reported no reason");
    return buf;
}

pfgm_status pfgm_h5_context(pfgm_status st, const char *path) {
    if (st == PFGM_OK) return st;
    char orig[1024], stack[400] = "";
    snprintf(orig, sizeof orig, "%s", pfgm_error_message());
    /* A failure recorded without PFGM_H5_CHECK has not said what HDF5 reported: take it from
     * the stack, or when handles were closed since (which clears it) from the record. */
    if (st == PFGM_ERR_HDF5) {
        stack_text(H5E_DEFAULT, stack, sizeof stack);
        if (!stack[0]) snprintf(stack, sizeof stack, "%s", last_failure);
    }
    bool add_stack = stack[0] && !strstr(orig, stack);
    size_t n = strlen(path);
    bool has_path = strncmp(orig, path, n) == 0;
    if (has_path && !add_stack) return st;
    return pfgm_error(st, "%s%s%s%s%s", has_path ? "" : path, has_path ? "" : ": ", orig,
                      add_stack ? ": " : "", add_stack ? stack : "");
}

/* Opens attribute `name` of obj when it exists; *attr < 0 when it does not. */
static pfgm_status open_attr(hid_t obj, const char *path, const char *name, hid_t *attr) {
    *attr = -1;
    htri_t ex = H5Aexists(obj, name);
    if (ex < 0)
        return pfgm_error(PFGM_ERR_HDF5, "%s: cannot query attribute '%s': %s", path, name,
                          pfgm_h5_strerror());
    if (ex == 0)
        return pfgm_error(PFGM_ERR_FORMAT, "%s: attribute '%s' missing", path, name);
    *attr = H5Aopen(obj, name, H5P_DEFAULT);
    if (*attr < 0)
        return pfgm_error(PFGM_ERR_HDF5, "%s: cannot open attribute '%s': %s", path, name,
                          pfgm_h5_strerror());
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
            st = pfgm_error(PFGM_ERR_HDF5, "%s: cannot read attribute '%s': %s", path, name,
                            pfgm_h5_strerror());
            free(tmp);
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
