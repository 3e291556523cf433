/* pfgm-prep: converts a raw dataset into one pfgm HDF5 dataset file (docs/data-format.md).
 * Argument parsing and wiring only; the work is in src/io (prep.c, prep_parallel.c, idx.c,
 * cifar.c, image_png.c, image_jpeg.c, resize.c, dataset_h5_write.c).
 *   pfgm-prep idx     --images FILE [--labels FILE] --out OUT.h5
 *   pfgm-prep cifar10 --input DIR --out OUT.h5
 *   pfgm-prep folder  --input DIR --size S [--crop C] [--channels 1|3]
 *                     [--resize bilinear|bicubic] [--pipeline center|lsun] --out OUT.h5
 *   pfgm-prep info    --input FILE.h5
 *   common: --seed N (42), --limit N (0: all), --quiet
 * Under mpirun/srun (more than one rank) the conversion is split over the ranks
 * (pfgm_prep_options.comm); rank 0 alone prints progress, the result and errors, and every
 * rank exits with the same code. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pfgm/comm.h"
#include "pfgm/dataset.h"
#include "pfgm/prep.h"
#include "pfgm/status.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: pfgm-prep COMMAND [options]\n"
            "  idx     --images FILE [--labels FILE] --out OUT.h5   MNIST/Fashion-MNIST IDX (.gz or plain)\n"
            "  cifar10 --input DIR --out OUT.h5                     CIFAR-10 binary batches data_batch_1..5.bin\n"
            "  folder  --input DIR --size S [--crop C] [--channels 1|3] [--resize bilinear|bicubic]\n"
            "          [--pipeline center|lsun] --out OUT.h5        PNG and JPEG images, cropped and resized:\n"
            "                                                       center: --crop C square (default: largest),\n"
            "                                                       --resize bilinear (PIL, default) or bicubic\n"
            "                                                       (TensorFlow); lsun: the authors' LSUN crop +\n"
            "                                                       resize (bicubic; bilinear for --size 128)\n"
            "  info    --input FILE.h5                              validate a dataset file and print its facts\n"
            "options: --seed N (shuffle seed, default 42)  --limit N (first N after shuffling, 0: all)\n"
            "         --quiet (no progress display)  --help\n"
            "under mpirun/srun: each rank converts its part of the input; same file as one process\n"
            "exit codes: 0 ok, 2 usage, 3 bad or missing input/output file, 4 out of memory, "
            "75 interrupted\n");
}

/* ---- progress display ------------------------------------------------------------------- */

static volatile sig_atomic_t g_interrupted = 0;

static void on_signal(int sig) {
    (void)sig;
    g_interrupted = 1;
}

typedef struct progress_state {
    int enabled;           /* stderr is a terminal and --quiet was not given */
    struct timespec t0;    /* program start */
    int started;           /* the first image was written */
    struct timespec t1;    /* time of the first image: rates count from here */
    double last_shown;     /* seconds since t1 of the last update */
    int line_open;         /* a progress line is on screen without its newline */
} progress_state;

static double seconds_since(const struct timespec *t0) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + 1e-9 * (double)(t.tv_nsec - t0->tv_nsec);
}

/* Redraws one status line in place (carriage return), at most ten times a second. */
static int on_progress(void *ctx, int64_t done, int64_t total) {
    progress_state *p = ctx;
    if (p->enabled) {
        if (!p->started || done == 1) { /* a parallel run counts its part, then the writing */
            p->started = 1;
            p->last_shown = 0.0;
            clock_gettime(CLOCK_MONOTONIC, &p->t1);
        }
        double t = seconds_since(&p->t1);
        if (done == total || t - p->last_shown >= 0.1) {
            p->last_shown = t;
            double rate = t > 0 ? (double)(done - 1) / t : 0.0;
            double eta = rate > 0 ? (double)(total - done) / rate : 0.0;
            fprintf(stderr, "\rpfgm-prep: %" PRId64 "/%" PRId64 " images (%5.1f%%), %.0f img/s, "
                            "eta %.0f s   ", done, total, 100.0 * (double)done / (double)total,
                    rate, eta);
            p->line_open = done != total;
            if (done == total) fputc('\n', stderr);
            fflush(stderr);
        }
    }
    return g_interrupted;
}

/* ---- arguments -------------------------------------------------------------------------- */

typedef struct prep_args {
    const char *cmd, *images, *labels, *input, *out;
    int64_t size, crop, limit, seed;
    int channels, quiet;
    pfgm_prep_pipeline pipeline;
    pfgm_prep_resize resize;
    int resize_given;
} prep_args;

static int parse_int(const char *flag, const char *s, int64_t lo, int64_t hi, int64_t *v) {
    char *end = NULL;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || !end || *end || end == s || x < lo || x > hi) {
        fprintf(stderr, "pfgm-prep: %s '%s': expected an integer in %lld..%lld\n", flag, s,
                (long long)lo, (long long)hi);
        return 0;
    }
    *v = x;
    return 1;
}

/* Returns 1 on success, 0 after printing a usage error. */
static int parse_args(int argc, char **argv, prep_args *a) {
    *a = (prep_args){.seed = 42, .channels = 3};
    if (argc < 2) {
        usage(stderr);
        return 0;
    }
    a->cmd = argv[1];
    for (int i = 2; i < argc; ++i) {
        const char *f = argv[i];
        if (!strcmp(f, "--quiet")) {
            a->quiet = 1;
            continue;
        }
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            usage(stdout);
            exit(0);
        }
        if (i + 1 >= argc || strncmp(f, "--", 2) != 0) {
            fprintf(stderr, "pfgm-prep: %s: %s\n", f,
                    strncmp(f, "--", 2) ? "unexpected argument" : "missing value");
            return 0;
        }
        const char *v = argv[++i];
        int64_t x = 0;
        if (!strcmp(f, "--images")) a->images = v;
        else if (!strcmp(f, "--labels")) a->labels = v;
        else if (!strcmp(f, "--input")) a->input = v;
        else if (!strcmp(f, "--out")) a->out = v;
        else if (!strcmp(f, "--size")) { if (!parse_int(f, v, 1, 65536, &a->size)) return 0; }
        else if (!strcmp(f, "--crop")) { if (!parse_int(f, v, 1, 1 << 30, &a->crop)) return 0; }
        else if (!strcmp(f, "--limit")) { if (!parse_int(f, v, 0, INT64_MAX, &a->limit)) return 0; }
        else if (!strcmp(f, "--seed")) { if (!parse_int(f, v, 0, UINT32_MAX, &a->seed)) return 0; }
        else if (!strcmp(f, "--channels")) {
            if (!parse_int(f, v, 1, 3, &x) || x == 2) {
                if (x == 2) fprintf(stderr, "pfgm-prep: --channels 2: expected 1 or 3\n");
                return 0;
            }
            a->channels = (int)x;
        } else if (!strcmp(f, "--resize")) {
            if (!strcmp(v, "bilinear")) a->resize = PFGM_PREP_BILINEAR;
            else if (!strcmp(v, "bicubic")) a->resize = PFGM_PREP_BICUBIC;
            else {
                fprintf(stderr, "pfgm-prep: --resize '%s': expected bilinear or bicubic\n", v);
                return 0;
            }
            a->resize_given = 1;
        } else if (!strcmp(f, "--pipeline")) {
            if (!strcmp(v, "center")) a->pipeline = PFGM_PREP_CENTER;
            else if (!strcmp(v, "lsun")) a->pipeline = PFGM_PREP_LSUN;
            else {
                fprintf(stderr, "pfgm-prep: --pipeline '%s': expected center or lsun\n", v);
                return 0;
            }
        } else {
            fprintf(stderr, "pfgm-prep: unknown option %s (see pfgm-prep --help)\n", f);
            return 0;
        }
    }
    if (a->pipeline == PFGM_PREP_LSUN && (a->resize_given || a->crop)) {
        fprintf(stderr, "pfgm-prep: --pipeline lsun chooses its own crop and resize: drop %s\n",
                a->crop ? "--crop" : "--resize");
        return 0;
    }
    return 1;
}

static int need(const char *value, const char *flag, const char *cmd) {
    if (value) return 1;
    fprintf(stderr, "pfgm-prep: %s needs %s (see pfgm-prep --help)\n", cmd, flag);
    return 0;
}

static int run(const prep_args *ap, const pfgm_prep_options *optp, pfgm_status *stp);

static pfgm_status run_info(const char *path) {
    pfgm_dataset_info info;
    pfgm_status st = pfgm_dataset_probe(path, &info);
    if (st != PFGM_OK) return st;
    printf("%s: %" PRId64 " images [%" PRId64 ", %" PRId64 ", %" PRId64 "] uint8, labels %s, "
           "version %d, seed %u\nsource: %s\n",
           path, info.count, info.channels, info.height, info.width,
           info.has_labels ? "int32" : "none", info.version, info.seed, info.source);
    return PFGM_OK;
}

int main(int argc, char **argv) {
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage(stdout);
        return 0;
    }
    prep_args a;
    if (!parse_args(argc, argv, &a)) return pfgm_status_exit_code(PFGM_ERR_INVALID_ARG);

    pfgm_comm *comm = NULL;
    pfgm_status cs = pfgm_comm_create_auto(&argc, &argv, &comm);
    if (cs != PFGM_OK) {
        fprintf(stderr, "pfgm-prep: %s\n", pfgm_error_message());
        return pfgm_status_exit_code(cs);
    }
    const int rank0 = comm->rank == 0;
    if (!rank0 && !strcmp(a.cmd, "info")) { /* nothing to split: rank 0 answers */
        pfgm_comm_destroy(comm);
        return 0;
    }
    progress_state prog = {.enabled = rank0 && !a.quiet && isatty(STDERR_FILENO)};
    clock_gettime(CLOCK_MONOTONIC, &prog.t0);
    pfgm_prep_options opt = {.seed = (uint32_t)a.seed, .limit = a.limit,
                             .progress = on_progress, .progress_ctx = &prog,
                             .pipeline = a.pipeline, .resize = a.resize, .comm = comm};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    pfgm_status st = PFGM_OK;
    int code = run(&a, &opt, &st);
    if (code == 0 && st != PFGM_OK) {
        if (prog.line_open) fputc('\n', stderr);
        if (rank0) fprintf(stderr, "pfgm-prep: %s\n", pfgm_error_message());
        code = pfgm_status_exit_code(st);
    }
    if (code == 0 && rank0 && !a.quiet && strcmp(a.cmd, "info") != 0) {
        pfgm_dataset_info info;
        if (pfgm_dataset_probe(a.out, &info) == PFGM_OK)
            printf("pfgm-prep: wrote %s: %" PRId64 " images [%" PRId64 ", %" PRId64
                            ", %" PRId64 "]%s in %.1f s%s\n",
                    a.out, info.count, info.channels, info.height, info.width,
                    info.has_labels ? " with labels" : "", seconds_since(&prog.t0),
                    comm->world_size > 1 ? " (parallel)" : "");
    }
    pfgm_comm_destroy(comm);
    return code;
}

/* Runs the command; returns a usage exit code (non-zero) before starting, else 0 with *st
 * the command's status. */
static int run(const prep_args *ap, const pfgm_prep_options *optp, pfgm_status *stp) {
    const prep_args a = *ap;
    const pfgm_prep_options opt = *optp;
    pfgm_status st = PFGM_OK;
    const char *cmd = a.cmd;
    if (!strcmp(cmd, "idx")) {
        if (!need(a.images, "--images FILE", cmd) || !need(a.out, "--out OUT.h5", cmd))
            return pfgm_status_exit_code(PFGM_ERR_INVALID_ARG);
        st = pfgm_prep_idx(a.images, a.labels, a.out, &opt);
    } else if (!strcmp(cmd, "cifar10")) {
        if (!need(a.input, "--input DIR", cmd) || !need(a.out, "--out OUT.h5", cmd))
            return pfgm_status_exit_code(PFGM_ERR_INVALID_ARG);
        st = pfgm_prep_cifar10(a.input, a.out, &opt);
    } else if (!strcmp(cmd, "folder")) {
        if (!need(a.input, "--input DIR", cmd) || !need(a.out, "--out OUT.h5", cmd) ||
            !need(a.size ? "" : NULL, "--size S", cmd))
            return pfgm_status_exit_code(PFGM_ERR_INVALID_ARG);
        st = pfgm_prep_folder(a.input, a.size, a.crop, a.channels, a.out, &opt);
    } else if (!strcmp(cmd, "info")) {
        if (!need(a.input, "--input FILE.h5", cmd)) return pfgm_status_exit_code(PFGM_ERR_INVALID_ARG);
        st = run_info(a.input);
    } else {
        fprintf(stderr, "pfgm-prep: unknown command '%s' (idx, cifar10, folder, info)\n", cmd);
        return pfgm_status_exit_code(PFGM_ERR_INVALID_ARG);
    }
    *stp = st;
    return 0;
}
