/* Shared pieces of the PyTorch-comparison benchmarks (bench_common.h): argument parsing,
 * clocks, peak RSS, synthetic images and the HDF5 exchange files. */
#include "bench_common.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "pfgm/rng.h"
#include "util/atomic_file.h"
#include "util/check.h"

int bench_parse_args(int argc, char **argv, const char *usage, bench_args *a) {
    memset(a, 0, sizeof *a);
    a->steps = 5;
    a->warmup = 1;
    a->init_scale = -1.0;
    a->workload = "bench";
    a->size[0] = 128;
    a->size[1] = 4096;
    a->size[2] = 3072;
    for (int i = 1; i < argc; ++i) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) goto bad;
        if (strcmp(o, "--config") == 0) a->config = v;
        else if (strcmp(o, "--set") == 0 && a->n_sets < BENCH_MAX_SETS) a->sets[a->n_sets++] = v;
        else if (strcmp(o, "--workload") == 0) a->workload = v;
        else if (strcmp(o, "--out") == 0) a->out = v;
        else if (strcmp(o, "--params") == 0) a->params = v;
        else if (strcmp(o, "--steps") == 0) a->steps = atoi(v);
        else if (strcmp(o, "--warmup") == 0) a->warmup = atoi(v);
        else if (strcmp(o, "--init-scale") == 0) a->init_scale = atof(v);
        else if (strcmp(o, "--size") == 0) {
            long long b, l, n;
            if (sscanf(v, "%lld,%lld,%lld", &b, &l, &n) != 3 || b < 1 || l < b || n < 1) goto bad;
            a->size[0] = b;
            a->size[1] = l;
            a->size[2] = n;
        }
        else goto bad;
        ++i;
    }
    if (a->steps < 1 || a->warmup < 0) goto bad;
    return 0;
bad:
    fprintf(stderr, "usage: %s %s\n", argv[0], usage);
    return 2;
}

pfgm_status bench_config(const bench_args *a, pfgm_config *cfg) {
    return pfgm_config_resolve(a->config, a->sets, a->n_sets, cfg);
}

double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double bench_cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

long bench_peak_rss_kib(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return -1;
    return ru.ru_maxrss; /* KiB on Linux */
}

void bench_fill_images(uint32_t seed, int64_t n, float *x) {
    pfgm_rng r = {.seed = seed, .rank = 0, .stream = PFGM_STREAM_USER, .step = 0};
    pfgm_rng_uniform(&r, 0, (size_t)n, x);
    for (int64_t i = 0; i < n; ++i) x[i] = 2.0f * x[i] - 1.0f;
}

static pfgm_status write_items(hid_t f, const bench_h5_item *items, int n_items, const bench_h5_attr *attrs,
                               int n_attrs) {
    pfgm_status st = PFGM_OK;
    hid_t sp = -1, ds = -1, at = -1;
    for (int i = 0; i < n_items; ++i) {
        hsize_t dims[4];
        for (int d = 0; d < items[i].ndim; ++d) dims[d] = (hsize_t)items[i].dims[d];
        PFGM_H5_CHECK_GOTO(sp = H5Screate_simple(items[i].ndim, dims, NULL), done);
        PFGM_H5_CHECK_GOTO(
            ds = H5Dcreate2(f, items[i].name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), done);
        PFGM_H5_CHECK_GOTO(H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, items[i].data), done);
        H5Dclose(ds);
        H5Sclose(sp);
        ds = sp = -1;
    }
    for (int i = 0; i < n_attrs; ++i) {
        if (attrs[i].n > 0) {
            hsize_t n = (hsize_t)attrs[i].n;
            PFGM_H5_CHECK_GOTO(sp = H5Screate_simple(1, &n, NULL), done);
            PFGM_H5_CHECK_GOTO(at = H5Acreate2(f, attrs[i].name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT), done);
            PFGM_H5_CHECK_GOTO(H5Awrite(at, H5T_NATIVE_INT64, attrs[i].list), done);
        } else {
            PFGM_H5_CHECK_GOTO(sp = H5Screate(H5S_SCALAR), done);
            PFGM_H5_CHECK_GOTO(at = H5Acreate2(f, attrs[i].name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT), done);
            PFGM_H5_CHECK_GOTO(H5Awrite(at, H5T_NATIVE_DOUBLE, &attrs[i].value), done);
        }
        H5Aclose(at);
        H5Sclose(sp);
        at = sp = -1;
    }
done:
    if (at >= 0) H5Aclose(at);
    if (ds >= 0) H5Dclose(ds);
    if (sp >= 0) H5Sclose(sp);
    return st;
}

pfgm_status bench_h5_write(const char *path, const bench_h5_item *items, int n_items, const bench_h5_attr *attrs,
                           int n_attrs) {
    char tmp[4096];
    PFGM_TRY(pfgm_atomic_tmp_name(path, tmp, sizeof tmp));
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return pfgm_error(PFGM_ERR_IO, "%s: cannot create", tmp);
    pfgm_status st = write_items(f, items, n_items, attrs, n_attrs);
    if (H5Fclose(f) < 0 && st == PFGM_OK) st = pfgm_error(PFGM_ERR_HDF5, "%s: closing failed", tmp);
    if (st != PFGM_OK) {
        remove(tmp);
        return pfgm_error_prefix(st, "%s", path);
    }
    return pfgm_atomic_publish(tmp, path);
}

int bench_config_attrs(const pfgm_config *c, bench_h5_attr *a) {
    int n = 0;
#define NUM(key, v) a[n++] = (bench_h5_attr){.name = key, .value = (double)(v)}
#define LIST(key, l) a[n++] = (bench_h5_attr){.name = key, .list = (l).v, .n = (int)(l).n}
    NUM("seed", c->seed);
    NUM("data.image_size", c->data.image_size);
    NUM("data.channels", c->data.channels);
    NUM("model.nf", c->model.nf);
    LIST("model.ch_mult", c->model.ch_mult);
    NUM("model.num_res_blocks", c->model.num_res_blocks);
    if (c->model.attn_resolutions.n > 0) LIST("model.attn_resolutions", c->model.attn_resolutions);
    else NUM("model.attn_resolutions", -1); /* an empty list: no attention */
    NUM("model.dropout", c->model.dropout);
    NUM("model.embedding_type", c->model.embedding_type == PFGM_EMBEDDING_FOURIER);
    NUM("model.fourier_scale", c->model.fourier_scale);
    NUM("model.skip_rescale", c->model.skip_rescale);
    NUM("model.sigma_end", c->model.sigma_end);
    NUM("model.ema_rate", c->model.ema_rate);
    NUM("training.batch_size", c->training.batch_size);
    NUM("training.small_batch_size", c->training.small_batch_size);
    NUM("training.M", c->training.M);
    NUM("training.tau", c->training.tau);
    NUM("training.gamma", c->training.gamma);
    NUM("training.restrict_M", c->training.restrict_M);
    NUM("training.reduce_mean", c->training.reduce_mean);
    NUM("optim.lr", c->optim.lr);
    NUM("optim.beta1", c->optim.beta1);
    NUM("optim.beta2", c->optim.beta2);
    NUM("optim.eps", c->optim.eps);
    NUM("optim.weight_decay", c->optim.weight_decay);
    NUM("optim.warmup", c->optim.warmup);
    NUM("optim.grad_clip", c->optim.grad_clip);
    NUM("sampling.N", c->sampling.N);
    NUM("sampling.z_max", c->sampling.z_max);
    NUM("sampling.z_min", c->sampling.z_min);
    NUM("sampling.z_exp", c->sampling.z_exp);
    NUM("sampling.upper_norm", c->sampling.upper_norm);
    NUM("sampling.batch_size", c->sampling.batch_size);
    NUM("sampling.ode_solver", c->sampling.ode_solver);
#undef NUM
#undef LIST
    return n;
}

void bench_report(const char *workload, const char *metric, double value) {
    printf("BENCH %s ours %s %.6g\n", workload, metric, value);
    fflush(stdout);
}
