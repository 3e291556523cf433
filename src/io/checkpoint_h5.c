/* Checkpoint files (include/pfgm/checkpoint.h): HDF5 with Fletcher32 on every dataset and a
 * CRC-32 (zlib) over the root attributes, written atomically; read and validated through one
 * open handle; and the run directory's checkpoint list, retention and "latest". */
#include "pfgm/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <hdf5.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

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

/* The integer attributes after `version`, in file order, with the layout version that
 * introduced each: the one list that writing, reading and the CRC use. */
typedef struct meta_int {
    const char *name;
    int64_t *v;
    int since;
} meta_int;
enum { META_INTS = 10 };

static void meta_ints(pfgm_ckpt_meta *m, meta_int out[META_INTS]) {
    const meta_int t[META_INTS] = {
        {"step", &m->step, 1},         {"epoch", &m->epoch, 1},           {"epoch_index", &m->epoch_index, 1},
        {"ema_updates", &m->ema_updates, 1}, {"seed", &m->seed, 1},       {"world_size", &m->world_size, 1},
        {"batch_size", &m->batch_size, 2}, {"shard_size", &m->shard_size, 2},
        {"dataset_count", &m->dataset_count, 2}, {"steps_per_epoch", &m->steps_per_epoch, 2}};
    memcpy(out, t, sizeof t);
}

/* CRC-32 (zlib) of the attributes in a fixed text form: "name=value\n" for format, version,
 * the integers of meta_ints, backend and library_version in this order, then "config=" and
 * the config text. A flipped byte in any attribute changes it. */
static uint32_t meta_crc(pfgm_ckpt_meta *m) {
    char head[1024];
    size_t o = (size_t)snprintf(head, sizeof head, "format=%s\nversion=%lld\n", PFGM_CKPT_FORMAT, (long long)m->version);
    meta_int ints[META_INTS];
    meta_ints(m, ints);
    for (int i = 0; i < META_INTS && o < sizeof head; ++i)
        o += (size_t)snprintf(head + o, sizeof head - o, "%s=%lld\n", ints[i].name, (long long)*ints[i].v);
    if (o < sizeof head)
        o += (size_t)snprintf(head + o, sizeof head - o, "backend=%s\nlibrary_version=%s\nconfig=", m->backend,
                              m->library_version);
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, (const Bytef *)head, (uInt)(o < sizeof head ? o : 0));
    const char *cfg = m->config_yaml ? m->config_yaml : "";
    size_t len = strlen(cfg);
    while (len > 0) { /* crc32 takes uInt lengths */
        uInt chunk = len > (1u << 30) ? (1u << 30) : (uInt)len;
        crc = crc32(crc, (const Bytef *)cfg, chunk);
        cfg += chunk;
        len -= chunk;
    }
    return (uint32_t)crc;
}

static pfgm_status write_meta(hid_t f, const pfgm_ckpt_meta *in) {
    pfgm_ckpt_meta m = *in;
    m.version = PFGM_CKPT_VERSION;
    if (!m.library_version[0]) snprintf(m.library_version, sizeof m.library_version, "%s", PFGM_VERSION_STRING);
    meta_int ints[META_INTS];
    meta_ints(&m, ints);
    PFGM_TRY(pfgm_h5_write_str_attr(f, "format", PFGM_CKPT_FORMAT));
    PFGM_TRY(pfgm_h5_write_int_attr(f, "version", m.version));
    for (int i = 0; i < META_INTS; ++i) PFGM_TRY(pfgm_h5_write_int_attr(f, ints[i].name, *ints[i].v));
    PFGM_TRY(pfgm_h5_write_str_attr(f, "backend", m.backend));
    PFGM_TRY(pfgm_h5_write_str_attr(f, "library_version", m.library_version));
    PFGM_TRY(pfgm_h5_write_str_attr(f, "config", m.config_yaml ? m.config_yaml : ""));
    PFGM_TRY(pfgm_h5_write_int_attr(f, "meta_crc32", (int64_t)meta_crc(&m)));
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
    hid_t f = -1, lcpl = -1, fapl = -1;
    /* The 1.8 file format: superblock version 2 and version-2 object headers carry checksums
     * of their own, so a flipped byte in a dataset's header (its type, shape, chunking) is an
     * error on read instead of a silently different tensor (readers need HDF5 >= 1.8). */
    PFGM_H5_CHECK_GOTO(fapl = H5Pcreate(H5P_FILE_ACCESS), fail);
    PFGM_H5_CHECK_GOTO(H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST), fail);
    PFGM_H5_CHECK_GOTO(f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl), fail);
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
    H5Pclose(fapl);
    fapl = -1;
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
    if (fapl >= 0) H5Pclose(fapl);
    if (f >= 0) H5Fclose(f);
    unlink(tmp);
    pfgm_h5_quiet_end(&q);
    return st;
}

/* ---- reading ------------------------------------------------------------------------- */

struct pfgm_ckpt {
    char path[4096];
    hid_t file;
    pfgm_ckpt_meta meta;
    pfgm_config cfg;
};

void pfgm_ckpt_close(pfgm_ckpt *ck) {
    if (!ck) return;
    if (ck->file >= 0) {
        pfgm_h5_lock();
        H5Fclose(ck->file);
        pfgm_h5_unlock();
    }
    free(ck->meta.config_yaml);
    free(ck);
}

const pfgm_ckpt_meta *pfgm_ckpt_meta_of(const pfgm_ckpt *ck) { return &ck->meta; }
const pfgm_config *pfgm_ckpt_config(const pfgm_ckpt *ck) { return &ck->cfg; }
const char *pfgm_ckpt_file(const pfgm_ckpt *ck) { return ck->path; }

/* "<path>: damaged checkpoint metadata: <what>" */
static pfgm_status damaged(const char *path, const char *fmt, ...) {
    char what[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return pfgm_error(PFGM_ERR_FORMAT, "%s: damaged checkpoint metadata: %s", path, what);
}

/* Step of a complete checkpoint name, or -1: exactly the name pfgm_ckpt_path gives that step
 * ("ckpt_<step, 8 digits or more>.h5"), so that a listed step always opens the listed file; a
 * hand-made "ckpt_99.h5" or "ckpt_010.h5" is not a checkpoint of this run directory (never
 * chosen, never pruned). */
static int64_t parse_name(const char *name) {
    if (strncmp(name, "ckpt_", 5) != 0) return -1;
    const char *p = name + 5;
    int64_t step = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 18) {
        step = step * 10 + (*p++ - '0');
        ++digits;
    }
    if (digits == 0 || strcmp(p, ".h5") != 0) return -1;
    char canonical[64];
    snprintf(canonical, sizeof canonical, "ckpt_%08lld.h5", (long long)step);
    return strcmp(canonical, name) == 0 ? step : -1;
}

/* Opens group `name` ("params", "adam/m") when every link of its path exists, else -1
 * (H5Lexists itself fails on "adam/m" when "adam" is missing). */
static hid_t open_group(hid_t f, const char *name) {
    char part[64];
    for (const char *slash = strchr(name, '/'); slash; slash = strchr(slash + 1, '/')) {
        snprintf(part, sizeof part, "%.*s", (int)(slash - name), name);
        if (H5Lexists(f, part, H5P_DEFAULT) <= 0) return -1;
    }
    return H5Lexists(f, name, H5P_DEFAULT) > 0 ? H5Gopen2(f, name, H5P_DEFAULT) : -1;
}

/* The attributes, then every rule of "usable" (checkpoint.h, pfgm_ckpt_open). */
static pfgm_status read_and_validate(pfgm_ckpt *ck) {
    const char *path = ck->path;
    hid_t f = ck->file;
    pfgm_ckpt_meta *m = &ck->meta;
    char fmt[64];
    PFGM_TRY(pfgm_h5_read_str_attr(f, path, "format", fmt, sizeof fmt));
    if (strcmp(fmt, PFGM_CKPT_FORMAT) != 0)
        return pfgm_error(PFGM_ERR_FORMAT, "%s: format is '%s', expected '%s'", path, fmt, PFGM_CKPT_FORMAT);
    PFGM_TRY(pfgm_h5_read_int_attr(f, path, "version", &m->version));
    if (m->version < 1 || m->version > PFGM_CKPT_VERSION)
        return pfgm_error(PFGM_ERR_FORMAT, "%s: checkpoint version %lld; this build reads 1 to %d", path,
                          (long long)m->version, PFGM_CKPT_VERSION);
    meta_int ints[META_INTS];
    meta_ints(m, ints);
    for (int i = 0; i < META_INTS; ++i)
        if (m->version >= ints[i].since) PFGM_TRY(pfgm_h5_read_int_attr(f, path, ints[i].name, ints[i].v));
    PFGM_TRY(pfgm_h5_read_str_attr(f, path, "backend", m->backend, sizeof m->backend));
    PFGM_TRY(pfgm_h5_read_str_attr(f, path, "library_version", m->library_version, sizeof m->library_version));
    /* the config text: size it from the attribute's type */
    hid_t a = H5Aexists(f, "config") > 0 ? H5Aopen(f, "config", H5P_DEFAULT) : -1;
    if (a < 0) return pfgm_error(PFGM_ERR_FORMAT, "%s: attribute 'config' missing", path);
    hid_t t = H5Aget_type(a);
    size_t cap = t >= 0 && H5Tis_variable_str(t) > 0 ? (size_t)1 << 20 : (t >= 0 ? H5Tget_size(t) + 1 : 1);
    if (t >= 0) H5Tclose(t);
    H5Aclose(a);
    m->config_yaml = malloc(cap);
    if (!m->config_yaml) return pfgm_error(PFGM_ERR_NOMEM, "%s: out of memory for the config attribute", path);
    PFGM_TRY(pfgm_h5_read_str_attr(f, path, "config", m->config_yaml, cap));
    if (m->version < 2 && H5Aexists(f, "meta_crc32") > 0)
        return damaged(path, "version is %lld but the file carries meta_crc32 (version 2): the version was altered",
                       (long long)m->version);
    if (m->version >= 2) {
        int64_t stored = -1;
        PFGM_TRY(pfgm_h5_read_int_attr(f, path, "meta_crc32", &stored));
        uint32_t crc = meta_crc(m);
        if (stored != (int64_t)crc)
            return damaged(path, "the attributes' CRC-32 checksum is %08llx, the stored one %08llx (an attribute was altered)",
                           (unsigned long long)crc, (unsigned long long)(uint32_t)stored);
    }

    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const int64_t named = parse_name(base);
    if (m->step < 0) return damaged(path, "step is %lld", (long long)m->step);
    if (named >= 0 && named != m->step)
        return damaged(path, "attribute step is %lld but the file name says %lld", (long long)m->step, (long long)named);
    if (m->ema_updates < 0 || m->ema_updates > m->step)
        return damaged(path, "ema_updates is %lld, outside [0, step %lld]", (long long)m->ema_updates, (long long)m->step);
    if (m->seed < 0 || m->seed > (int64_t)UINT32_MAX) return damaged(path, "seed is %lld", (long long)m->seed);
    if (m->world_size < 1 || m->world_size > INT_MAX) return damaged(path, "world_size is %lld", (long long)m->world_size);
    if (strcmp(m->backend, "cpu") != 0 && strcmp(m->backend, "cuda") != 0)
        return damaged(path, "backend is '%s' (known: cpu, cuda)", m->backend);
    if (m->epoch < 0 || m->epoch_index < 0)
        return damaged(path, "data position (epoch %lld, index %lld) is negative", (long long)m->epoch,
                       (long long)m->epoch_index);
    if (m->version >= 2) {
        if (m->batch_size < 1 || m->shard_size < m->batch_size || m->steps_per_epoch != m->shard_size / m->batch_size ||
            m->dataset_count / m->world_size < m->shard_size)
            return damaged(path, "data shape W=%lld, batch_size=%lld, shard_size=%lld, steps_per_epoch=%lld, "
                                 "dataset_count=%lld does not add up",
                           (long long)m->world_size, (long long)m->batch_size, (long long)m->shard_size,
                           (long long)m->steps_per_epoch, (long long)m->dataset_count);
        if (m->epoch_index >= m->steps_per_epoch)
            return damaged(path, "data position index %lld is outside [0, %lld) (steps_per_epoch)",
                           (long long)m->epoch_index, (long long)m->steps_per_epoch);
    }
    /* the four sections every pfgm checkpoint has, the model's tensors in each */
    static const char *const groups[] = {"params", "ema", "adam/m", "adam/v"};
    hsize_t counts[4] = {0, 0, 0, 0};
    for (int g = 0; g < 4; ++g) {
        H5G_info_t info;
        hid_t gid = open_group(f, groups[g]);
        if (gid < 0) return damaged(path, "group /%s is missing", groups[g]);
        herr_t rc = H5Gget_info(gid, &info);
        H5Gclose(gid);
        if (rc < 0) return damaged(path, "group /%s cannot be listed", groups[g]);
        counts[g] = info.nlinks;
    }
    if (counts[0] == 0 || counts[1] != counts[0] || counts[3] != counts[2] || counts[2] > counts[0])
        return damaged(path, "/params, /ema, /adam/m, /adam/v hold %llu, %llu, %llu, %llu tensors",
                       (unsigned long long)counts[0], (unsigned long long)counts[1], (unsigned long long)counts[2],
                       (unsigned long long)counts[3]);
    pfgm_status st = pfgm_config_load_string(m->config_yaml, path, &ck->cfg);
    if (st != PFGM_OK) {
        char why[1024];
        const char *msg = pfgm_error_message();
        size_t plen = strlen(path);
        if (strncmp(msg, path, plen) == 0 && msg[plen] == ':') msg += plen + 1; /* "<path>:<line>: ..." */
        snprintf(why, sizeof why, "%s", msg);
        return damaged(path, "the config attribute does not load: %s%s", why[0] >= '0' && why[0] <= '9' ? "line " : "", why);
    }
    if (ck->cfg.seed != m->seed)
        return damaged(path, "seed is %lld but the config attribute says %lld", (long long)m->seed, (long long)ck->cfg.seed);
    if (m->version >= 2 && ck->cfg.training.batch_size != m->batch_size)
        return damaged(path, "batch_size is %lld but the config attribute says %lld", (long long)m->batch_size,
                       (long long)ck->cfg.training.batch_size);
    return PFGM_OK;
}

/* Opens and validates; *vanished = 1 when the file does not exist (any more). */
static pfgm_status open_file(const char *path, pfgm_ckpt **out, int *vanished) {
    *out = NULL;
    *vanished = 0;
    pfgm_ckpt *ck = calloc(1, sizeof *ck);
    if (!ck) return pfgm_error(PFGM_ERR_NOMEM, "%s: out of memory", path);
    ck->file = -1;
    if ((size_t)snprintf(ck->path, sizeof ck->path, "%s", path) >= sizeof ck->path) {
        free(ck);
        return pfgm_error(PFGM_ERR_INVALID_ARG, "%s: path too long", path);
    }
    pfgm_h5_quiet q;
    pfgm_h5_quiet_begin(&q);
    pfgm_status st = PFGM_OK;
    ck->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (ck->file < 0) {
        /* one open attempt: what failed is decided afterwards, so a file removed in between
         * is "gone", never "corrupt" */
        struct stat sb;
        if (stat(path, &sb) != 0) {
            *vanished = errno == ENOENT;
            st = pfgm_error(PFGM_ERR_IO, "%s: cannot read checkpoint: %s", path, strerror(errno));
        } else if (S_ISDIR(sb.st_mode)) {
            st = pfgm_error(PFGM_ERR_IO, "%s: is a directory, not a checkpoint file", path);
        } else if (access(path, R_OK) != 0) {
            st = pfgm_error(PFGM_ERR_IO, "%s: cannot read checkpoint: %s", path, strerror(errno));
        } else {
            st = pfgm_error(PFGM_ERR_FORMAT, "%s: not an HDF5 file (truncated or corrupt checkpoint)", path);
        }
    }
    if (st == PFGM_OK) {
        st = read_and_validate(ck);
        /* HDF5 refusing the file's own metadata (a failed metadata checksum, a broken object
         * header) is a damaged checkpoint like any other: usable or not is one status */
        if (st == PFGM_ERR_HDF5) {
            char why[1024];
            snprintf(why, sizeof why, "%s", pfgm_error_message());
            st = pfgm_error(PFGM_ERR_FORMAT, "%s (corrupt checkpoint)", why);
        }
    }
    pfgm_h5_quiet_end(&q);
    if (st != PFGM_OK) {
        pfgm_ckpt_close(ck);
        return st;
    }
    *out = ck;
    return PFGM_OK;
}

pfgm_status pfgm_ckpt_open(const char *path, pfgm_ckpt **out) {
    int vanished = 0;
    if (!path || !out) return pfgm_error(PFGM_ERR_INVALID_ARG, "checkpoint: NULL path or handle");
    return open_file(path, out, &vanished);
}

/* What every dataset of a pfgm checkpoint is, checked before any read (a damaged header must
 * not crash HDF5's reader or make it allocate what the file cannot hold): little-endian
 * float32, 1 to PFGM_CKPT_MAX_DIMS positive dimensions, no more elements than the file has
 * bytes / 4, chunked as one whole chunk, with the Fletcher32 filter. *n: its elements. */
static pfgm_status check_dataset(hid_t file, hid_t ds, const char *path, const char *name, hsize_t *n) {
    pfgm_status st = PFGM_OK;
    hid_t type = H5Dget_type(ds), space = H5Dget_space(ds), dcpl = H5Dget_create_plist(ds);
    hsize_t dims[PFGM_CKPT_MAX_DIMS + 1], chunk[PFGM_CKPT_MAX_DIMS + 1], fsize = 0;
    int nd = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    *n = 0;
    if (type < 0 || space < 0 || dcpl < 0) {
        st = pfgm_error(PFGM_ERR_FORMAT, "%s: dataset /%s: unreadable header (corrupt checkpoint)", path, name);
    } else if (H5Tequal(type, H5T_IEEE_F32LE) <= 0) {
        st = pfgm_error(PFGM_ERR_FORMAT, "%s: dataset /%s is not little-endian float32 (corrupt checkpoint)", path, name);
    } else if (nd < 1 || nd > PFGM_CKPT_MAX_DIMS) {
        st = pfgm_error(PFGM_ERR_FORMAT, "%s: dataset /%s has %d dimensions (corrupt checkpoint)", path, name, nd);
    } else {
        H5Sget_simple_extent_dims(space, dims, NULL);
        double elems = 1.0;
        for (int d = 0; d < nd; ++d) elems *= (double)dims[d];
        H5Fget_filesize(file, &fsize);
        int cnd = H5Pget_layout(dcpl) == H5D_CHUNKED ? H5Pget_chunk(dcpl, PFGM_CKPT_MAX_DIMS + 1, chunk) : -1;
        int same = cnd == nd;
        for (int d = 0; same && d < nd; ++d) same = chunk[d] == dims[d] && dims[d] > 0;
        unsigned flags = 0, conf = 0;
        size_t nelmts = 0;
        const int fletcher = H5Pget_filter_by_id2(dcpl, H5Z_FILTER_FLETCHER32, &flags, &nelmts, &conf, 0, NULL, NULL) >= 0;
        if (elems * 4.0 > (double)fsize)
            st = pfgm_error(PFGM_ERR_FORMAT, "%s: dataset /%s claims %.0f elements, more than the file of %llu bytes holds (corrupt checkpoint)",
                            path, name, elems, (unsigned long long)fsize);
        else if (!same || !fletcher)
            st = pfgm_error(PFGM_ERR_FORMAT, "%s: dataset /%s is not stored as one checksummed chunk (corrupt checkpoint)",
                            path, name);
        else
            *n = (hsize_t)elems;
    }
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    if (dcpl >= 0) H5Pclose(dcpl);
    return st;
}

static pfgm_status read_tensor(hid_t file, hid_t grp, const char *path, const char *group,
                               const pfgm_ckpt_tensor *t) {
    pfgm_status st = PFGM_OK;
    hid_t ds = -1, space = -1;
    if (H5Lexists(grp, t->name, H5P_DEFAULT) <= 0)
        return pfgm_error(PFGM_ERR_FORMAT, "%s: dataset /%s/%s missing", path, group, t->name);
    ds = H5Dopen2(grp, t->name, H5P_DEFAULT);
    if (ds < 0) return pfgm_error(PFGM_ERR_FORMAT, "%s: cannot open dataset /%s/%s", path, group, t->name);
    char full[1024];
    snprintf(full, sizeof full, "%s/%s", group, t->name);
    hsize_t elems = 0;
    st = check_dataset(file, ds, path, full, &elems);
    if (st != PFGM_OK) {
        H5Dclose(ds);
        return st;
    }
    /* type, rank range and chunking were checked; the shape must be this model's */
    space = H5Dget_space(ds);
    hsize_t dims[PFGM_CKPT_MAX_DIMS];
    int nd = H5Sget_simple_extent_ndims(space);
    if (nd != t->ndim) {
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
    if (space >= 0) H5Sclose(space);
    H5Dclose(ds);
    return st;
}

pfgm_status pfgm_ckpt_read(pfgm_ckpt *ck, const char *group, const pfgm_ckpt_tensor *tensors, size_t count) {
    const char *path = ck->path;
    pfgm_h5_quiet q;
    pfgm_h5_quiet_begin(&q);
    pfgm_status st = PFGM_OK;
    hid_t g = open_group(ck->file, group);
    if (g < 0) st = pfgm_error(PFGM_ERR_FORMAT, "%s: group /%s missing", path, group);
    if (st == PFGM_OK) {
        H5G_info_t info;
        if (H5Gget_info(g, &info) < 0) st = pfgm_error(PFGM_ERR_FORMAT, "%s: cannot list /%s", path, group);
        else if (info.nlinks != count)
            st = pfgm_error(PFGM_ERR_FORMAT, "%s: /%s holds %llu tensors, expected %zu (a different model?)", path,
                            group, (unsigned long long)info.nlinks, count);
    }
    for (size_t i = 0; i < count && st == PFGM_OK; ++i) st = read_tensor(ck->file, g, path, group, &tensors[i]);
    if (g >= 0) H5Gclose(g);
    pfgm_h5_quiet_end(&q);
    return st;
}

typedef struct verify_ctx {
    const char *path;
    hid_t file;
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
    if (ds < 0) {
        v->st = pfgm_error(PFGM_ERR_FORMAT, "%s: dataset /%s cannot be opened (corrupt checkpoint)", v->path, name);
        return 1;
    }
    hsize_t elems = 0;
    pfgm_status cs = check_dataset(v->file, ds, v->path, name, &elems);
    if (cs != PFGM_OK) {
        H5Dclose(ds);
        v->st = cs;
        return 1; /* stop iterating */
    }
    herr_t rc = -1;
    if ((size_t)elems > v->cap) {
        float *nb = realloc(v->buf, (size_t)elems * sizeof(float));
        if (nb) {
            v->buf = nb;
            v->cap = (size_t)elems;
        }
    }
    if ((size_t)elems <= v->cap) rc = H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v->buf);
    H5Dclose(ds);
    if (rc < 0) {
        v->st = pfgm_error(PFGM_ERR_FORMAT, "%s: dataset /%s cannot be read (checksum mismatch or truncated file)",
                           v->path, name);
        return 1; /* stop iterating */
    }
    return 0;
}

pfgm_status pfgm_ckpt_verify(pfgm_ckpt *ck) {
    pfgm_h5_quiet q;
    pfgm_h5_quiet_begin(&q);
    verify_ctx v = {.path = ck->path, .file = ck->file, .st = PFGM_OK};
    if (VERIFY_VISIT(ck->file, verify_cb, &v) < 0 && v.st == PFGM_OK)
        v.st = pfgm_error(PFGM_ERR_FORMAT, "%s: cannot walk the file (corrupt checkpoint)", ck->path);
    free(v.buf);
    pfgm_h5_quiet_end(&q);
    return v.st;
}

/* ---- run directories --------------------------------------------------------------- */

pfgm_status pfgm_ckpt_path(const char *run_dir, int64_t step, char *buf, size_t cap) {
    int n = snprintf(buf, cap, "%s/checkpoints/ckpt_%08lld.h5", run_dir, (long long)step);
    if (n < 0 || (size_t)n >= cap) return pfgm_error(PFGM_ERR_INVALID_ARG, "%s: run directory path too long", run_dir);
    return PFGM_OK;
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

pfgm_status pfgm_ckpt_prune(const char *run_dir, int64_t keep_last, int64_t keep_every, int64_t written_step) {
    int64_t *steps = NULL;
    size_t n = 0;
    PFGM_TRY(pfgm_ckpt_list(run_dir, &steps, &n));
    pfgm_status st = PFGM_OK;
    for (size_t i = 0; i < n && st == PFGM_OK; ++i) {
        if (steps[i] >= written_step) continue; /* the new file, and never one newer than it */
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

/* Renames <run_dir>/checkpoints/<name> into <run_dir>/checkpoints/damaged/ (created when
 * missing; an existing name there gets ".<n>"), and says so through lg. */
static pfgm_status move_to(const char *run_dir, const char *folder, int64_t step, const pfgm_logger *lg,
                           const char *why) {
    char from[4096], dir[4096], to[4200];
    PFGM_TRY(pfgm_ckpt_path(run_dir, step, from, sizeof from));
    if ((size_t)snprintf(dir, sizeof dir, "%s/checkpoints/%s", run_dir, folder) >= sizeof dir)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "%s: run directory path too long", run_dir);
    PFGM_TRY(pfgm_mkdirs(dir));
    const char *base = strrchr(from, '/') + 1;
    snprintf(to, sizeof to, "%s/%s", dir, base);
    for (int n = 1; access(to, F_OK) == 0 && n < 1000; ++n) snprintf(to, sizeof to, "%s/%s.%d", dir, base, n);
    if (rename(from, to) != 0) {
        if (errno == ENOENT) return PFGM_OK; /* gone meanwhile: nothing to keep */
        return pfgm_error(PFGM_ERR_IO, "%s: cannot move the checkpoint to %s: %s", from, to, strerror(errno));
    }
    PFGM_TRY(pfgm_fsync_path(dir, 1));
    if (lg) pfgm_log_warn(lg, "moved the %s checkpoint %s to %s (%s)", folder, from, to, why);
    return PFGM_OK;
}

static pfgm_status move_aside(const char *run_dir, int64_t step, const pfgm_logger *lg, const char *why) {
    return move_to(run_dir, "damaged", step, lg, why);
}

pfgm_status pfgm_ckpt_move_newer(const char *run_dir, int64_t step, const pfgm_logger *lg, size_t *moved) {
    *moved = 0;
    int64_t *steps = NULL;
    size_t n = 0;
    PFGM_TRY(pfgm_ckpt_list(run_dir, &steps, &n));
    pfgm_status st = PFGM_OK;
    char why[128];
    snprintf(why, sizeof why, "the run resumes from step %lld, an older step", (long long)step);
    for (size_t i = 0; i < n && st == PFGM_OK; ++i) {
        if (steps[i] <= step) continue;
        st = move_to(run_dir, "superseded", steps[i], lg, why);
        if (st == PFGM_OK) ++*moved;
    }
    free(steps);
    return st;
}

/* One pass over the listing, newest first (see pfgm_ckpt_open_latest); *retry = 1 when no
 * file was usable but some vanished: the directory changed under the listing. */
static pfgm_status scan_once(const char *run_dir, int move_damaged, const pfgm_logger *lg, pfgm_ckpt **out,
                             pfgm_ckpt_scan *scan, int *retry) {
    *retry = 0;
    int64_t *steps = NULL, *bad = NULL;
    size_t n = 0, nbad = 0, vanished = 0;
    PFGM_TRY(pfgm_ckpt_list(run_dir, &steps, &n));
    scan->found = n;
    scan->damaged = 0;
    scan->newest_problem[0] = '\0';
    bad = n ? malloc(n * sizeof *bad) : NULL;
    if (n && !bad) {
        free(steps);
        return pfgm_error(PFGM_ERR_NOMEM, "%s: out of memory scanning checkpoints", run_dir);
    }
    pfgm_status st = PFGM_OK;
    for (size_t i = n; i-- > 0 && st == PFGM_OK;) {
        char path[4096];
        st = pfgm_ckpt_path(run_dir, steps[i], path, sizeof path);
        if (st != PFGM_OK) break;
        pfgm_ckpt *ck = NULL;
        int gone = 0;
        pfgm_status s = open_file(path, &ck, &gone);
        if (s == PFGM_OK) {
            s = pfgm_ckpt_verify(ck);
            if (s != PFGM_OK) {
                pfgm_ckpt_close(ck);
                ck = NULL;
            }
        }
        if (s == PFGM_OK) {
            *out = ck;
            break;
        }
        if (gone) { /* retention removed it after the listing: try the next newest */
            vanished++;
            continue;
        }
        if (s == PFGM_ERR_NOMEM) {
            st = s;
            break;
        }
        if (!scan->damaged++) snprintf(scan->newest_problem, sizeof scan->newest_problem, "%s", pfgm_error_message());
        if (lg) pfgm_log_warn(lg, "skipping unusable checkpoint: %s", pfgm_error_message());
        bad[nbad++] = steps[i];
    }
    scan->vanished += vanished;
    /* damaged files newer than the usable one are moved aside: the resumed run would write
     * its own checkpoints of those steps over them, or retention would delete them */
    for (size_t k = 0; st == PFGM_OK && move_damaged && *out && k < nbad; ++k) {
        st = move_aside(run_dir, bad[k], lg, "it failed validation; resuming from an older checkpoint");
        if (st == PFGM_OK) scan->moved++;
    }
    if (st != PFGM_OK) {
        pfgm_ckpt_close(*out);
        *out = NULL;
    }
    if (st == PFGM_OK && !*out && vanished > 0) *retry = 1;
    free(steps);
    free(bad);
    return st;
}

pfgm_status pfgm_ckpt_open_latest(const char *run_dir, int move_damaged, const pfgm_logger *lg, pfgm_ckpt **out,
                                  pfgm_ckpt_scan *scan) {
    *out = NULL;
    memset(scan, 0, sizeof *scan);
    /* A trainer keeping one checkpoint replaces it every step: everything listed may be gone
     * by the time it is opened, and a new listing then holds the newer file. */
    for (int pass = 0; pass < 100; ++pass) {
        int retry = 0;
        PFGM_TRY(scan_once(run_dir, move_damaged, lg, out, scan, &retry));
        if (!retry) break;
    }
    return PFGM_OK;
}

pfgm_status pfgm_ckpt_move_all_damaged(const char *run_dir, const pfgm_logger *lg, size_t *moved) {
    *moved = 0;
    int64_t *steps = NULL;
    size_t n = 0;
    PFGM_TRY(pfgm_ckpt_list(run_dir, &steps, &n));
    pfgm_status st = PFGM_OK;
    for (size_t i = 0; i < n && st == PFGM_OK; ++i) {
        st = move_aside(run_dir, steps[i], lg, "no checkpoint of the run directory was usable; starting over");
        if (st == PFGM_OK) ++*moved;
    }
    free(steps);
    return st;
}
