/* Checkpoint files (include/pfgm/checkpoint.h): HDF5 with Fletcher32 on every dataset,
 * written atomically; and the run directory's checkpoint list, retention and "latest". */
#include "pfgm/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/h5util.h"
#include "util/atomic_file.h"
#include "util/check.h"

/* ---- writing ------------------------------------------------------------------------- */

static pfgm_status check_tensor(const pfgm_ckpt_tensor *t, const char *group) {
    if (!t->name || !t->name[0] || strchr(t->name, '/'))
        return pfgm_error(PFGM_ERR_INVALID_ARG, "checkpoint group %s: bad tensor name '%s'", group,
                          t->name ? t->name : "(null)");
    if (t->ndim < 1 || t->ndim > PFGM_CKPT_MAX_DIMS)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "checkpoint %s/%s: %d dimensions", group, t->name, t->ndim);
    for (int d = 0; d < t->ndim; ++d)
        if (t->shape[d] <= 0)
            return pfgm_error(PFGM_ERR_INVALID_ARG, "checkpoint %s/%s: dimension %d is %lld", group, t->name, d,
                              (long long)t->shape[d]);
    return PFGM_OK;
}

/* One float32 dataset, chunked as a whole (Fletcher32 needs chunking; tensors are far
 * below HDF5's 4 GiB chunk limit). */
static pfgm_status write_tensor(hid_t grp, const pfgm_ckpt_tensor *t) {
    pfgm_status st = PFGM_OK;
    hid_t space = -1, dcpl = -1, ds = -1;
    hsize_t dims[PFGM_CKPT_MAX_DIMS];
    for (int d = 0; d < t->ndim; ++d) dims[d] = (hsize_t)t->shape[d];
    PFGM_H5_CHECK_GOTO(space = H5Screate_simple(t->ndim, dims, NULL), done);
    PFGM_H5_CHECK_GOTO(dcpl = H5Pcreate(H5P_DATASET_CREATE), done);
    PFGM_H5_CHECK_GOTO(H5Pset_chunk(dcpl, t->ndim, dims), done);
    PFGM_H5_CHECK_GOTO(H5Pset_fletcher32(dcpl), done);
    PFGM_H5_CHECK_GOTO(ds = H5Dcreate2(grp, t->name, H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT), done);
    PFGM_H5_CHECK_GOTO(H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t->data), done);
done:
    if (ds >= 0) H5Dclose(ds);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    return st;
}

static pfgm_status write_meta(hid_t f, const pfgm_ckpt_meta *m) {
    PFGM_TRY(pfgm_h5_write_str_attr(f, "format", PFGM_CKPT_FORMAT));
    PFGM_TRY(pfgm_h5_write_int_attr(f, "version", PFGM_CKPT_VERSION));
    PFGM_TRY(pfgm_h5_write_int_attr(f, "step", m->step));
    PFGM_TRY(pfgm_h5_write_int_attr(f, "epoch", m->epoch));
    PFGM_TRY(pfgm_h5_write_int_attr(f, "epoch_index", m->epoch_index));
    PFGM_TRY(pfgm_h5_write_int_attr(f, "ema_updates", m->ema_updates));
    PFGM_TRY(pfgm_h5_write_int_attr(f, "seed", m->seed));
    PFGM_TRY(pfgm_h5_write_int_attr(f, "world_size", m->world_size));
    PFGM_TRY(pfgm_h5_write_str_attr(f, "backend", m->backend));
    PFGM_TRY(pfgm_h5_write_str_attr(f, "library_version", m->library_version[0] ? m->library_version
                                                                                 : PFGM_VERSION_STRING));
    PFGM_TRY(pfgm_h5_write_str_attr(f, "config", m->config_yaml ? m->config_yaml : ""));
    return PFGM_OK;
}

pfgm_status pfgm_ckpt_write(const char *path, const pfgm_ckpt_meta *meta, const pfgm_ckpt_section *sections,
                            size_t nsections) {
    char tmp[4096];
    PFGM_TRY(pfgm_atomic_tmp_name(path, tmp, sizeof tmp));
    for (size_t s = 0; s < nsections; ++s)
        for (size_t i = 0; i < sections[s].count; ++i) PFGM_TRY(check_tensor(&sections[s].tensors[i], sections[s].group));

    pfgm_status st = PFGM_OK;
    pfgm_h5_quiet q;
    pfgm_h5_quiet_begin(&q);
    hid_t f = -1, lcpl = -1;
    PFGM_H5_CHECK_GOTO(f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), fail);
    PFGM_H5_CHECK_GOTO(lcpl = H5Pcreate(H5P_LINK_CREATE), fail);
    PFGM_H5_CHECK_GOTO(H5Pset_create_intermediate_group(lcpl, 1), fail);
    PFGM_TRY_GOTO(write_meta(f, meta), fail);
    for (size_t s = 0; s < nsections; ++s) {
        hid_t g = H5Gcreate2(f, sections[s].group, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        if (g < 0) {
            st = pfgm_error(PFGM_ERR_HDF5, "cannot create group '%s'", sections[s].group);
            goto fail;
        }
        for (size_t i = 0; i < sections[s].count && st == PFGM_OK; ++i) st = write_tensor(g, &sections[s].tensors[i]);
        H5Gclose(g);
        if (st != PFGM_OK) goto fail;
    }
    PFGM_H5_CHECK_GOTO(H5Fflush(f, H5F_SCOPE_GLOBAL), fail);
    H5Pclose(lcpl);
    lcpl = -1;
    if (H5Fclose(f) < 0) {
        f = -1;
        st = pfgm_error(PFGM_ERR_HDF5, "cannot close");
        goto fail;
    }
    f = -1;
    pfgm_h5_quiet_end(&q);
    return pfgm_atomic_publish(tmp, path);
fail:
    st = pfgm_h5_context(st, tmp);
    if (lcpl >= 0) H5Pclose(lcpl);
    if (f >= 0) H5Fclose(f);
    unlink(tmp);
    pfgm_h5_quiet_end(&q);
    return st;
}

/* ---- reading ------------------------------------------------------------------------- */

static pfgm_status open_checked(const char *path, hid_t *out) {
    *out = -1;
    if (access(path, R_OK) != 0)
        return pfgm_error(PFGM_ERR_IO, "%s: cannot read checkpoint: %s", path, strerror(errno));
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0) return pfgm_error(PFGM_ERR_FORMAT, "%s: not an HDF5 file (truncated or corrupt checkpoint)", path);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return pfgm_error(PFGM_ERR_FORMAT, "%s: cannot open as HDF5 (truncated or corrupt checkpoint)", path);
    char fmt[64];
    pfgm_status st = pfgm_h5_read_str_attr(f, path, "format", fmt, sizeof fmt);
    if (st == PFGM_OK && strcmp(fmt, PFGM_CKPT_FORMAT) != 0)
        st = pfgm_error(PFGM_ERR_FORMAT, "%s: format is '%s', expected '%s'", path, fmt, PFGM_CKPT_FORMAT);
    int64_t version = 0;
    if (st == PFGM_OK) st = pfgm_h5_read_int_attr(f, path, "version", &version);
    if (st == PFGM_OK && (version < 1 || version > PFGM_CKPT_VERSION))
        st = pfgm_error(PFGM_ERR_FORMAT, "%s: checkpoint version %lld; this build reads up to %d", path,
                        (long long)version, PFGM_CKPT_VERSION);
    if (st != PFGM_OK) {
        H5Fclose(f);
        return st;
    }
    *out = f;
    return PFGM_OK;
}

pfgm_status pfgm_ckpt_read_meta(const char *path, pfgm_ckpt_meta *m) {
    memset(m, 0, sizeof *m);
    pfgm_h5_quiet q;
    pfgm_h5_quiet_begin(&q);
    hid_t f = -1;
    pfgm_status st = open_checked(path, &f);
    if (st == PFGM_OK) {
        struct { const char *name; int64_t *v; } ints[] = {
            {"step", &m->step}, {"epoch", &m->epoch}, {"epoch_index", &m->epoch_index},
            {"ema_updates", &m->ema_updates}, {"seed", &m->seed}, {"world_size", &m->world_size}};
        for (size_t i = 0; i < sizeof ints / sizeof ints[0] && st == PFGM_OK; ++i)
            st = pfgm_h5_read_int_attr(f, path, ints[i].name, ints[i].v);
        if (st == PFGM_OK) st = pfgm_h5_read_str_attr(f, path, "backend", m->backend, sizeof m->backend);
        if (st == PFGM_OK)
            st = pfgm_h5_read_str_attr(f, path, "library_version", m->library_version, sizeof m->library_version);
        if (st == PFGM_OK) {
            /* the config text: size it first from the attribute's type */
            hid_t a = H5Aopen(f, "config", H5P_DEFAULT);
            size_t cap = 1;
            if (a >= 0) {
                hid_t t = H5Aget_type(a);
                cap = H5Tis_variable_str(t) > 0 ? (size_t)1 << 20 : H5Tget_size(t) + 1;
                H5Tclose(t);
                H5Aclose(a);
            }
            m->config_yaml = malloc(cap);
            if (!m->config_yaml) st = pfgm_error(PFGM_ERR_NOMEM, "%s: out of memory", path);
            else st = pfgm_h5_read_str_attr(f, path, "config", m->config_yaml, cap);
        }
        H5Fclose(f);
    }
    pfgm_h5_quiet_end(&q);
    if (st != PFGM_OK) pfgm_ckpt_meta_free(m);
    return st;
}

void pfgm_ckpt_meta_free(pfgm_ckpt_meta *m) {
    free(m->config_yaml);
    m->config_yaml = NULL;
}

static pfgm_status read_tensor(hid_t grp, const char *path, const char *group, const pfgm_ckpt_tensor *t) {
    pfgm_status st = PFGM_OK;
    hid_t ds = -1, space = -1, type = -1;
    if (H5Lexists(grp, t->name, H5P_DEFAULT) <= 0)
        return pfgm_error(PFGM_ERR_FORMAT, "%s: dataset /%s/%s missing", path, group, t->name);
    ds = H5Dopen2(grp, t->name, H5P_DEFAULT);
    if (ds < 0) return pfgm_error(PFGM_ERR_FORMAT, "%s: cannot open dataset /%s/%s", path, group, t->name);
    type = H5Dget_type(ds);
    space = H5Dget_space(ds);
    if (type < 0 || space < 0 || H5Tget_class(type) != H5T_FLOAT || H5Tget_size(type) != 4) {
        st = pfgm_error(PFGM_ERR_FORMAT, "%s: dataset /%s/%s is not float32", path, group, t->name);
        goto done;
    }
    hsize_t dims[8];
    int nd = H5Sget_simple_extent_ndims(space);
    if (nd != t->ndim || nd > 8) {
        st = pfgm_error(PFGM_ERR_FORMAT, "%s: dataset /%s/%s has %d dimensions, expected %d", path, group, t->name,
                        nd, t->ndim);
        goto done;
    }
    H5Sget_simple_extent_dims(space, dims, NULL);
    for (int d = 0; d < nd; ++d)
        if ((int64_t)dims[d] != t->shape[d]) {
            st = pfgm_error(PFGM_ERR_FORMAT, "%s: dataset /%s/%s dimension %d is %llu, expected %lld", path, group,
                            t->name, d, (unsigned long long)dims[d], (long long)t->shape[d]);
            goto done;
        }
    if (H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t->data) < 0)
        st = pfgm_error(PFGM_ERR_FORMAT, "%s: dataset /%s/%s cannot be read (checksum mismatch or truncated file)",
                        path, group, t->name);
done:
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    H5Dclose(ds);
    return st;
}

pfgm_status pfgm_ckpt_read_section(const char *path, const char *group, const pfgm_ckpt_tensor *tensors,
                                   size_t count) {
    pfgm_h5_quiet q;
    pfgm_h5_quiet_begin(&q);
    hid_t f = -1, g = -1;
    pfgm_status st = open_checked(path, &f);
    if (st == PFGM_OK) {
        g = H5Lexists(f, group, H5P_DEFAULT) > 0 ? H5Gopen2(f, group, H5P_DEFAULT) : -1;
        if (g < 0) st = pfgm_error(PFGM_ERR_FORMAT, "%s: group /%s missing", path, group);
    }
    if (st == PFGM_OK) {
        H5G_info_t info;
        if (H5Gget_info(g, &info) < 0) st = pfgm_error(PFGM_ERR_FORMAT, "%s: cannot list /%s", path, group);
        else if (info.nlinks != count)
            st = pfgm_error(PFGM_ERR_FORMAT, "%s: /%s holds %llu tensors, expected %zu (a different model?)", path,
                            group, (unsigned long long)info.nlinks, count);
    }
    for (size_t i = 0; i < count && st == PFGM_OK; ++i) st = read_tensor(g, path, group, &tensors[i]);
    if (g >= 0) H5Gclose(g);
    if (f >= 0) H5Fclose(f);
    pfgm_h5_quiet_end(&q);
    return st;
}

typedef struct verify_ctx {
    const char *path;
    pfgm_status st;
    float *buf;
    size_t cap;
} verify_ctx;

/* HDF5 1.12 renamed the object-visit API; both versions walk the same objects. */
#if H5_VERSION_GE(1, 12, 0)
typedef H5O_info2_t verify_info;
#define VERIFY_VISIT(f, cb, v) H5Ovisit3(f, H5_INDEX_NAME, H5_ITER_NATIVE, cb, v, H5O_INFO_BASIC)
#else
typedef H5O_info_t verify_info;
#define VERIFY_VISIT(f, cb, v) H5Ovisit2(f, H5_INDEX_NAME, H5_ITER_NATIVE, cb, v, H5O_INFO_BASIC)
#endif

static herr_t verify_cb(hid_t obj, const char *name, const verify_info *info, void *op) {
    verify_ctx *v = op;
    if (info->type != H5O_TYPE_DATASET) return 0;
    hid_t ds = H5Dopen2(obj, name, H5P_DEFAULT);
    hid_t space = ds >= 0 ? H5Dget_space(ds) : -1;
    hssize_t n = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    herr_t rc = -1;
    if (n >= 0) {
        if ((size_t)n > v->cap) {
            float *nb = realloc(v->buf, (size_t)n * sizeof(float));
            if (nb) {
                v->buf = nb;
                v->cap = (size_t)n;
            }
        }
        if ((size_t)n <= v->cap) rc = H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v->buf);
    }
    if (space >= 0) H5Sclose(space);
    if (ds >= 0) H5Dclose(ds);
    if (rc < 0) {
        v->st = pfgm_error(PFGM_ERR_FORMAT, "%s: dataset /%s cannot be read (checksum mismatch or truncated file)",
                           v->path, name);
        return 1; /* stop iterating */
    }
    return 0;
}

pfgm_status pfgm_ckpt_verify(const char *path) {
    pfgm_h5_quiet q;
    pfgm_h5_quiet_begin(&q);
    hid_t f = -1;
    pfgm_status st = open_checked(path, &f);
    if (st == PFGM_OK) {
        verify_ctx v = {.path = path, .st = PFGM_OK};
        if (VERIFY_VISIT(f, verify_cb, &v) < 0 && v.st == PFGM_OK)
            v.st = pfgm_error(PFGM_ERR_FORMAT, "%s: cannot walk the file (corrupt checkpoint)", path);
        st = v.st;
        free(v.buf);
        H5Fclose(f);
    }
    pfgm_h5_quiet_end(&q);
    return st;
}

/* ---- run directories --------------------------------------------------------------- */

pfgm_status pfgm_ckpt_path(const char *run_dir, int64_t step, char *buf, size_t cap) {
    int n = snprintf(buf, cap, "%s/checkpoints/ckpt_%08lld.h5", run_dir, (long long)step);
    if (n < 0 || (size_t)n >= cap) return pfgm_error(PFGM_ERR_INVALID_ARG, "%s: run directory path too long", run_dir);
    return PFGM_OK;
}

/* Step of a complete checkpoint name "ckpt_<digits>.h5", or -1. */
static int64_t parse_name(const char *name) {
    if (strncmp(name, "ckpt_", 5) != 0) return -1;
    const char *p = name + 5;
    int64_t step = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 18) {
        step = step * 10 + (*p++ - '0');
        ++digits;
    }
    return digits > 0 && strcmp(p, ".h5") == 0 ? step : -1;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

pfgm_status pfgm_ckpt_list(const char *run_dir, int64_t **steps, size_t *count) {
    *steps = NULL;
    *count = 0;
    char dir[4096];
    if ((size_t)snprintf(dir, sizeof dir, "%s/checkpoints", run_dir) >= sizeof dir)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "%s: run directory path too long", run_dir);
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return PFGM_OK;
        return pfgm_error(PFGM_ERR_IO, "%s: cannot list checkpoints: %s", dir, strerror(errno));
    }
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int64_t s = parse_name(e->d_name);
        if (s < 0) continue;
        if (*count == cap) {
            cap = cap ? 2 * cap : 16;
            int64_t *ns = realloc(*steps, cap * sizeof **steps);
            if (!ns) {
                closedir(d);
                free(*steps);
                *steps = NULL;
                *count = 0;
                return pfgm_error(PFGM_ERR_NOMEM, "%s: out of memory listing checkpoints", dir);
            }
            *steps = ns;
        }
        (*steps)[(*count)++] = s;
    }
    closedir(d);
    if (*count) qsort(*steps, *count, sizeof **steps, cmp_i64);
    return PFGM_OK;
}

pfgm_status pfgm_ckpt_prune(const char *run_dir, int64_t keep_last, int64_t keep_every) {
    int64_t *steps = NULL;
    size_t n = 0;
    PFGM_TRY(pfgm_ckpt_list(run_dir, &steps, &n));
    pfgm_status st = PFGM_OK;
    for (size_t i = 0; i < n && st == PFGM_OK; ++i) {
        int newest = (int64_t)(n - i) <= keep_last;
        int milestone = keep_every > 0 && steps[i] % keep_every == 0;
        if (newest || milestone) continue;
        char path[4096];
        st = pfgm_ckpt_path(run_dir, steps[i], path, sizeof path);
        if (st == PFGM_OK && unlink(path) != 0 && errno != ENOENT)
            st = pfgm_error(PFGM_ERR_IO, "%s: cannot remove old checkpoint: %s", path, strerror(errno));
    }
    free(steps);
    /* temporaries left by a writer that died mid-write: "ckpt_<step>.h5.tmp.<pid>" */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/checkpoints", run_dir);
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL && st == PFGM_OK) {
            if (strncmp(e->d_name, "ckpt_", 5) != 0 || !strstr(e->d_name, ".h5.tmp.")) continue;
            char path[4096 + 256];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            long pid = atol(strstr(e->d_name, ".h5.tmp.") + 8);
            if (pid == (long)getpid()) continue; /* ours, being written */
            if (unlink(path) != 0 && errno != ENOENT)
                st = pfgm_error(PFGM_ERR_IO, "%s: cannot remove stale temporary: %s", path, strerror(errno));
        }
        closedir(d);
    }
    return st;
}

pfgm_status pfgm_ckpt_find_latest(const char *run_dir, const pfgm_logger *lg, char *buf, size_t cap,
                                  int64_t *step) {
    buf[0] = '\0';
    *step = -1;
    int64_t *steps = NULL;
    size_t n = 0;
    PFGM_TRY(pfgm_ckpt_list(run_dir, &steps, &n));
    pfgm_status st = PFGM_OK;
    for (size_t i = n; i-- > 0;) {
        st = pfgm_ckpt_path(run_dir, steps[i], buf, cap);
        if (st != PFGM_OK) break;
        st = pfgm_ckpt_verify(buf);
        if (st == PFGM_OK) {
            *step = steps[i];
            break;
        }
        if (lg) pfgm_log_warn(lg, "skipping unusable checkpoint: %s", pfgm_error_message());
        buf[0] = '\0';
        st = PFGM_OK;
    }
    free(steps);
    return st;
}
