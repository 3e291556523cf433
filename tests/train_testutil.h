/* Helpers of the trainer tests: the tiny config on a fixture dataset, per-step losses from
 * metrics.jsonl, and a bitwise comparison of two checkpoints. Header-only (static inline). */
#ifndef PFGM_TESTS_TRAIN_TESTUTIL_H
#define PFGM_TESTS_TRAIN_TESTUTIL_H

#include <hdf5.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data_fixtures.h"
#include "pfgm/comm.h"
#include "pfgm/config.h"

/* configs/tiny.yaml (tests run from the repository root) with data.path, n_iters and the
 * extra assignments. Returns the status of pfgm_config_resolve. */
static inline pfgm_status tr_config(pfgm_config *cfg, const char *data_path, int64_t n_iters, const char *const *extra,
                                    size_t n_extra) {
    char data_set[1200], iters_set[64];
    snprintf(data_set, sizeof data_set, "data.path=%s", data_path);
    snprintf(iters_set, sizeof iters_set, "training.n_iters=%lld", (long long)n_iters);
    const char *sets[32] = {data_set, iters_set, "training.log_freq=1", "model.dropout=0.1"};
    size_t n = 4;
    for (size_t i = 0; i < n_extra && n < 32; ++i) sets[n++] = extra[i];
    return pfgm_config_resolve("configs/tiny.yaml", sets, n, cfg);
}

/* Multi-rank tests: rank 0 makes a scratch folder with the 64-image 8x8 fixture dataset,
 * and every rank receives both paths (dir[dcap], data[cap]). A failure aborts the job. */
static inline void tr_shared_dataset(pfgm_comm *c, char *dir, size_t dcap, char *data, size_t cap, const char *who) {
    if (c->rank == 0) {
        fx_mkdtemp(dir, dcap);
        fx_join(data, cap, dir, "data.h5");
        if (fx_write_dataset(data, 64, 1, 8, 1) != PFGM_OK) {
            fprintf(stderr, "%s: %s\n", who, pfgm_error_message());
            c->abort(c, 1);
        }
    }
    if (c->broadcast(c, dir, dcap, PFGM_U8, 0) != PFGM_OK || c->broadcast(c, data, cap, PFGM_U8, 0) != PFGM_OK) {
        fprintf(stderr, "%s: %s\n", who, pfgm_error_message());
        c->abort(c, 1);
    }
}

/* The "loss" of every step record of a metrics file (records without "step", such as the
 * "resumed" event, are passed over), in order; returns the count (max cap). */
static inline int tr_losses(const char *path, double *loss, int64_t *step, int cap) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[4096];
    int n = 0;
    while (n < cap && fgets(line, sizeof line, f)) {
        json_error_t err;
        json_t *o = json_loads(line, 0, &err);
        if (!o) break;
        if (!json_object_get(o, "step")) {
            json_decref(o);
            continue;
        }
        loss[n] = json_number_value(json_object_get(o, "loss"));
        step[n] = (int64_t)json_integer_value(json_object_get(o, "step"));
        json_decref(o);
        ++n;
    }
    fclose(f);
    return n;
}

typedef struct tr_cmp {
    hid_t other;
    int datasets, differ;
    char first_diff[256];
} tr_cmp;

static inline herr_t tr_cmp_cb(hid_t obj, const char *name, const H5O_info_t *info, void *op) {
    tr_cmp *c = op;
    if (info->type != H5O_TYPE_DATASET) return 0;
    hid_t a = H5Dopen2(obj, name, H5P_DEFAULT), b = H5Dopen2(c->other, name, H5P_DEFAULT);
    int same = 0;
    if (a >= 0 && b >= 0) {
        hid_t sa = H5Dget_space(a), sb = H5Dget_space(b);
        hssize_t na = H5Sget_simple_extent_npoints(sa), nb = H5Sget_simple_extent_npoints(sb);
        if (na == nb && na > 0) {
            float *x = malloc(sizeof(float) * (size_t)na), *y = malloc(sizeof(float) * (size_t)na);
            if (H5Dread(a, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0 &&
                H5Dread(b, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, y) >= 0)
                same = memcmp(x, y, sizeof(float) * (size_t)na) == 0;
            free(x);
            free(y);
        }
        H5Sclose(sa);
        H5Sclose(sb);
    }
    if (a >= 0) H5Dclose(a);
    if (b >= 0) H5Dclose(b);
    c->datasets++;
    if (!same && !c->differ++) snprintf(c->first_diff, sizeof c->first_diff, "%s", name);
    return 0;
}

/* Number of datasets of checkpoint a that differ (bitwise, or missing) in checkpoint b;
 * -1 when a file cannot be opened. *datasets receives how many were compared. */
static inline int tr_ckpt_differences(const char *a, const char *b, int *datasets, char *first, size_t cap) {
    hid_t fa = H5Fopen(a, H5F_ACC_RDONLY, H5P_DEFAULT), fb = H5Fopen(b, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (fa < 0 || fb < 0) return -1;
    tr_cmp c = {.other = fb};
#if H5_VERSION_GE(1, 12, 0)
    H5Ovisit1(fa, H5_INDEX_NAME, H5_ITER_NATIVE, (H5O_iterate1_t)tr_cmp_cb, &c);
#else
    H5Ovisit(fa, H5_INDEX_NAME, H5_ITER_NATIVE, tr_cmp_cb, &c);
#endif
    H5Fclose(fa);
    H5Fclose(fb);
    *datasets = c.datasets;
    snprintf(first, cap, "%s", c.first_diff);
    return c.differ;
}

#endif
