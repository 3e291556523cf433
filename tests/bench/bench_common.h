/* Shared pieces of the benchmark programs that compare pfgm with the PyTorch reference
 * (tests/bench/run.sh, tests/bench/torch_reference.py): clocks, medians, peak RSS, the
 * command line (--config PATH, --set key=value, --out FILE, ...), synthetic images and the
 * HDF5 exchange files through which the PyTorch side receives the same inputs.
 *
 * Every benchmark prints its figures as lines
 *   BENCH <workload> ours <metric> <value>
 * which tests/bench/summarize.py turns into the table (torch_reference.py prints the same
 * lines with side "torch"). Benchmarks print figures; they assert nothing about time. */
#ifndef PFGM_BENCH_COMMON_H
#define PFGM_BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "pfgm/config.h"
#include "pfgm/status.h"

#define BENCH_MAX_SETS 32
#define BENCH_MAX_ITEMS 16

/* Options shared by the programs; each program reads the ones it uses. */
typedef struct bench_args {
    const char *config;   /* --config PATH (YAML) */
    const char *sets[BENCH_MAX_SETS];
    size_t n_sets;        /* --set key=value, in order */
    const char *workload; /* --workload NAME: the first word of the BENCH lines */
    const char *out;      /* --out FILE: the HDF5 exchange file for the PyTorch side */
    const char *params;   /* --params FILE: load the weights (group "params") instead of initialising */
    int steps;            /* --steps K: timed repetitions */
    int warmup;           /* --warmup W: untimed repetitions before them */
    double init_scale;    /* --init-scale S: model.init_scale for the weights drawn here (< 0: the config's) */
    int64_t size[3];      /* --size B,L,N: field targets of B points against L charges in N dimensions */
} bench_args;

/* Parses argv into *a (defaults: steps 5, warmup 1, init_scale -1, size 128,4096,3072). Returns 0, or prints the
 * usage line to stderr and returns 2 on an unknown or incomplete option. */
int bench_parse_args(int argc, char **argv, const char *usage, bench_args *a);

/* The config of a->config with a->sets applied (pfgm_config_resolve). */
pfgm_status bench_config(const bench_args *a, pfgm_config *cfg);

/* Monotonic seconds. */
double bench_now(void);

/* CPU seconds of this process (all threads, spinning included): under a loaded machine it
 * shows the work a run did better than the wall clock does. */
double bench_cpu_now(void);

/* Peak resident set of this process so far, in KiB (getrusage). */
long bench_peak_rss_kib(void);

/* n images (or any floats) uniform in [-1, 1) from Philox stream PFGM_STREAM_USER keyed by
 * `seed`: the data scale of centered images (spec §1.12). Host memory. */
void bench_fill_images(uint32_t seed, int64_t n, float *x);

/* One dataset of an exchange file: float32 with up to 4 dimensions. */
typedef struct bench_h5_item {
    const char *name;
    const float *data; /* host */
    int ndim;
    int64_t dims[4];
} bench_h5_item;

/* One attribute on the file's root: a float64 scalar, or (n > 0) an int64 list. */
typedef struct bench_h5_attr {
    const char *name;
    double value;
    const int64_t *list;
    int n;
} bench_h5_attr;

#define BENCH_CONFIG_ATTRS 40

/* The resolved config keys the PyTorch side needs (data, model, training, optim and sampling
 * keys under their YAML names, e.g. "model.nf", "training.M"), so that both sides run the
 * same configuration without a second reading of the YAML. Fills attrs[BENCH_CONFIG_ATTRS];
 * returns the count. Booleans and enums are 0/1 (model.embedding_type: 0 positional,
 * 1 fourier). */
int bench_config_attrs(const pfgm_config *c, bench_h5_attr *attrs);

/* Writes a new HDF5 file `path` (a temporary name, then renamed: a failure leaves nothing)
 * with the items as root datasets and the attributes on the root. Errors: PFGM_ERR_IO,
 * PFGM_ERR_HDF5. */
pfgm_status bench_h5_write(const char *path, const bench_h5_item *items, int n_items, const bench_h5_attr *attrs,
                           int n_attrs);

/* Prints "BENCH <workload> ours <metric> <value>" (value with %.6g). */
void bench_report(const char *workload, const char *metric, double value);

#endif
