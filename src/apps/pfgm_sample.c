/* pfgm-sample: argument parsing and wiring of the sampler (src/train/sampler.c).
 *   [mpirun -np W] pfgm-sample --checkpoint RUN_DIR_OR_FILE --num 64 --out samples.png
 *       [--solver rk45|euler|heun] [--steps N] [--rtol R --atol A] [--h5 samples.h5]
 *       [--seed S] [--no-ema] [--progress S|off] [--fill-ranks] [--config FILE.yaml]
 *       [--set section.key=value ...]
 * The model and sampling settings come from the config embedded in the checkpoint;
 * --config replaces it (the model keys must still match the checkpoint's tensors); --set
 * and the solver options override keys in command-line order. Rank 0 resolves the
 * checkpoint and the config and broadcasts them; the ranks split the samples
 * (include/pfgm/sampler.h); rank 0 writes the outputs. A fatal error on any rank aborts
 * the job. Exit codes: docs/user-guide.md. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pfgm/backend.h"
#include "pfgm/checkpoint.h"
#include "pfgm/comm.h"
#include "pfgm/config.h"
#include "pfgm/log.h"
#include "pfgm/sampler.h"
#include "pfgm/samples.h"

#define MAX_SETS 256
#define PATH_CAP 4096

static void usage(FILE *f) {
    fprintf(f,
            "usage: [mpirun -np W] pfgm-sample --checkpoint RUN_DIR_OR_FILE --out samples.png [options]\n"
            "  --checkpoint PATH         a run directory (its newest complete checkpoint) or a checkpoint file\n"
            "  --out FILE.png            PNG grid of all samples (as square as possible: 64 -> 8x8)\n"
            "  --num N                   samples to draw (default 64)\n"
            "  --solver rk45|euler|heun  sampling.ode_solver (rk45, forward_euler, improved_euler)\n"
            "  --steps N                 sampling.N: Euler/Heun steps (NFE N and 2N-1)\n"
            "  --rtol R, --atol A        sampling.rk45_rtol / rk45_atol\n"
            "  --h5 FILE.h5              also write /samples_float (float32) and /samples (uint8) [N, C, H, W]\n"
            "  --seed S                  prior seed, 0 .. 4294967295 (default: the run's seed)\n"
            "  --no-ema                  the raw parameters instead of the EMA weights\n"
            "  --progress S|off          progress line at most every S seconds (default 1 in a log,\n"
            "                            0.2 on a terminal; 0: every network evaluation)\n"
            "  --fill-ranks              with fewer batches than ranks, lower sampling.batch_size to\n"
            "                            ceil(N / ranks) so that every rank draws (samples then depend on W)\n"
            "  --config FILE.yaml        use this config instead of the checkpoint's\n"
            "  --set section.key=value   override a config key (repeatable)\n"
            "  --help\n"
            "exit codes: 0 ok, 2 usage/config, 3 checkpoint or output file, 4 out of memory, 5 numeric,\n"
            "            6 communication, 7 device, 8 internal\n");
}

typedef struct args {
    const char *checkpoint, *out, *h5, *config;
    const char *sets[MAX_SETS];
    size_t n_sets;
    char own[16][64]; /* texts of the --solver/--steps/--rtol/--atol assignments */
    int n_own;
    int64_t num, seed;
    int no_ema, fill_ranks;
    double progress; /* --progress seconds; < 0: the default; NAN: off */
} args;

static int bad(const char *opt, const char *what, const char *got) {
    fprintf(stderr, "pfgm-sample: %s: %s, got '%s'\n", opt, what, got);
    return 2;
}

static int add_set(args *a, const char *assignment) {
    if (a->n_sets == MAX_SETS) {
        fprintf(stderr, "pfgm-sample: more than %d --set options\n", MAX_SETS);
        return 2;
    }
    a->sets[a->n_sets++] = assignment;
    return 0;
}

/* An assignment built from one of the solver options, kept in a->own. */
static int add_own(args *a, const char *key, const char *value) {
    if (a->n_own == 16) { /* repeated options: the latest value wins, up to 16 of them */
        fprintf(stderr, "pfgm-sample: more than 16 --solver/--steps/--rtol/--atol options\n");
        return 2;
    }
    char *dst = a->own[a->n_own++];
    snprintf(dst, 64, "%s=%s", key, value);
    return add_set(a, dst);
}

static int parse_i64(const char *opt, const char *s, int64_t lo, int64_t hi, int64_t *v) {
    char *end = NULL;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || !end || end == s || *end || x < lo || x > hi) {
        char what[96];
        snprintf(what, sizeof what, "expected an integer in [%lld, %lld]", (long long)lo, (long long)hi);
        return bad(opt, what, s);
    }
    *v = x;
    return 0;
}

static int parse_tol(const char *opt, const char *s) {
    char *end = NULL;
    errno = 0;
    double x = strtod(s, &end);
    if (errno || !end || end == s || *end || !isfinite(x) || x <= 0) return bad(opt, "expected a number > 0", s);
    return 0;
}

static int parse(int argc, char **argv, args *a) {
    memset(a, 0, sizeof *a);
    a->num = 64;
    a->seed = -1;
    a->progress = -1.0;
    for (int i = 1; i < argc; ++i) {
        const char *s = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) return 1;
        if (!strcmp(s, "--no-ema")) {
            a->no_ema = 1;
            continue;
        }
        if (!strcmp(s, "--fill-ranks")) {
            a->fill_ranks = 1;
            continue;
        }
        if (!v || strncmp(s, "--", 2) != 0) {
            fprintf(stderr, "pfgm-sample: unknown or incomplete option '%s' (see --help)\n", s);
            return 2;
        }
        ++i;
        if (!strcmp(s, "--checkpoint")) a->checkpoint = v;
        else if (!strcmp(s, "--out")) a->out = v;
        else if (!strcmp(s, "--h5")) a->h5 = v;
        else if (!strcmp(s, "--config")) a->config = v;
        else if (!strcmp(s, "--set")) rc = add_set(a, v);
        else if (!strcmp(s, "--num")) rc = parse_i64(s, v, 1, INT64_C(1) << 40, &a->num);
        else if (!strcmp(s, "--progress")) {
            char *end = NULL;
            errno = 0;
            double x = strtod(v, &end);
            if (!strcmp(v, "off")) a->progress = NAN;
            else if (errno || !end || end == v || *end || !isfinite(x) || x < 0 || x > 86400)
                rc = bad(s, "expected seconds in [0, 86400] or 'off'", v);
            else a->progress = x;
        }
        else if (!strcmp(s, "--seed")) rc = parse_i64(s, v, 0, UINT32_MAX, &a->seed);
        else if (!strcmp(s, "--steps")) {
            int64_t n;
            rc = parse_i64(s, v, 1, INT64_C(1) << 30, &n);
            if (!rc) rc = add_own(a, "sampling.N", v);
        } else if (!strcmp(s, "--rtol") || !strcmp(s, "--atol")) {
            rc = parse_tol(s, v);
            if (!rc) rc = add_own(a, s[2] == 'r' ? "sampling.rk45_rtol" : "sampling.rk45_atol", v);
        } else if (!strcmp(s, "--solver")) {
            const char *name = !strcmp(v, "rk45")                                         ? "rk45"
                               : !strcmp(v, "euler") || !strcmp(v, "forward_euler")       ? "forward_euler"
                               : !strcmp(v, "heun") || !strcmp(v, "improved_euler")       ? "improved_euler"
                                                                                          : NULL;
            rc = name ? add_own(a, "sampling.ode_solver", name)
                      : bad(s, "unknown solver (expected rk45, euler or heun)", v);
        } else {
            fprintf(stderr, "pfgm-sample: unknown option '%s' (see --help)\n", s);
            return 2;
        }
        if (rc) return rc;
    }
    if (!a->checkpoint || !a->out) {
        fprintf(stderr, "pfgm-sample: --checkpoint and --out are required (see --help)\n");
        return 2;
    }
    if (a->h5 && !strcmp(a->h5, a->out)) {
        fprintf(stderr, "pfgm-sample: --out and --h5 name the same file '%s'\n", a->out);
        return 2;
    }
    return 0;
}

/* The directory of an output file must be a writable directory when it exists (it is
 * created after sampling otherwise), so that a long run does not end in a refusal. */
static pfgm_status check_output(const char *path) {
    char dir[PATH_CAP];
    if ((size_t)snprintf(dir, sizeof dir, "%s", path) >= sizeof dir)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "%s: path too long", path);
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == dir) dir[1] = '\0';
    else *slash = '\0';
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) return pfgm_error(PFGM_ERR_IO, "%s: is a directory", path);
    if (stat(dir, &sb) != 0) return PFGM_OK;
    if (!S_ISDIR(sb.st_mode)) return pfgm_error(PFGM_ERR_IO, "%s: %s is not a directory", path, dir);
    if (access(dir, W_OK) != 0) return pfgm_error(PFGM_ERR_IO, "%s: cannot write in %s: %s", path, dir, strerror(errno));
    return PFGM_OK;
}

/* Rank 0's set-up: the checkpoint file, its step, the config, the seed. */
typedef struct plan {
    pfgm_config cfg;
    char checkpoint[PATH_CAP];
    int64_t step, seed;
} plan;

/* Rank 0: opens the checkpoint once (*ck: the weights are read through it later, even if
 * retention unlinks the file meanwhile) and makes the plan from it. */
static pfgm_status make_plan(const args *a, int world, const pfgm_logger *lg, plan *p, pfgm_ckpt **ck) {
    memset(p, 0, sizeof *p);
    pfgm_status st = pfgm_sample_open_checkpoint(a->checkpoint, lg, ck);
    if (st != PFGM_OK) return st;
    snprintf(p->checkpoint, sizeof p->checkpoint, "%s", pfgm_ckpt_file(*ck));
    p->step = pfgm_ckpt_meta_of(*ck)->step;
    if (a->config) {
        st = pfgm_config_resolve(a->config, a->sets, a->n_sets, &p->cfg);
    } else {
        p->cfg = *pfgm_ckpt_config(*ck);
        for (size_t k = 0; st == PFGM_OK && k < a->n_sets; ++k) st = pfgm_config_set(&p->cfg, a->sets[k]);
        if (st == PFGM_OK) st = pfgm_config_validate(&p->cfg);
    }
    if (st != PFGM_OK) return st;
    /* --fill-ranks: ranks take whole batches (pfgm_sample_partition), so with fewer batches
     * than ranks some would idle; smaller batches give every rank one. The batch size decides
     * which prior draws make up each sample, so the samples differ from another W's. */
    const int64_t bs = p->cfg.sampling.batch_size, per_rank = (a->num + world - 1) / world;
    if (a->fill_ranks && world > 1 && (a->num + bs - 1) / bs < world && per_rank < bs) {
        pfgm_log_info(lg, "--fill-ranks: sampling.batch_size %lld -> %lld, so that each of the %d ranks draws",
                      (long long)bs, (long long)per_rank, world);
        p->cfg.sampling.batch_size = per_rank;
    }
    p->seed = a->seed >= 0 ? a->seed : p->cfg.seed;
    st = check_output(a->out);
    if (st == PFGM_OK && a->h5) st = check_output(a->h5);
    return st;
}

/* Rank 0 decides, every rank learns the outcome and the plan. */
static pfgm_status share_plan(pfgm_comm *c, pfgm_status st, plan *p) {
    if (c->world_size == 1) return st;
    int64_t code = (int64_t)st;
    pfgm_status cs = c->broadcast(c, &code, 1, PFGM_I64, 0);
    if (cs != PFGM_OK) return cs;
    if (code != PFGM_OK) return (pfgm_status)code;
    return c->broadcast(c, p, sizeof *p, PFGM_U8, 0);
}

/* The end of a failed run: rank 0 (or the rank that alone saw the error) prints the one
 * line; with several ranks the job is aborted so that no rank is left waiting. When every
 * rank agrees on the error (agreed != 0), the ranks meet at a barrier first, so the line
 * is out before the abort. */
static int fail(pfgm_comm *c, const pfgm_logger *lg, pfgm_status st, int agreed) {
    int code = pfgm_status_exit_code(st);
    if (!agreed || c->rank == 0) {
        if (c->world_size > 1) pfgm_log_error(lg, "pfgm-sample: %s", pfgm_error_message());
        else fprintf(stderr, "pfgm-sample: %s\n", pfgm_error_message());
    }
    if (c->world_size > 1) {
        if (agreed) c->barrier(c);
        c->abort(c, code); /* never returns */
    }
    return code;
}

int main(int argc, char **argv) {
    args a;
    int rc = parse(argc, argv, &a);
    if (rc == 1) {
        usage(stdout);
        return 0;
    }
    if (rc) return rc;

    pfgm_comm *comm = NULL;
    pfgm_status st = pfgm_comm_create_auto(&argc, &argv, &comm);
    if (st != PFGM_OK) {
        fprintf(stderr, "pfgm-sample: %s\n", pfgm_error_message());
        return pfgm_status_exit_code(st);
    }
    pfgm_logger lg;
    pfgm_logger_init(&lg, comm->rank);

    plan *p = calloc(1, sizeof *p);
    pfgm_ckpt *ck = NULL; /* rank 0's open checkpoint */
    if (!p) st = pfgm_error(PFGM_ERR_NOMEM, "out of memory");
    else if (comm->rank == 0) st = make_plan(&a, comm->world_size, &lg, p, &ck);
    st = share_plan(comm, st, p); /* an agreed outcome: rank 0's */
    if (st != PFGM_OK) {
        free(p);
        pfgm_ckpt_close(ck);
        int code = fail(comm, &lg, st, 1);
        pfgm_comm_destroy(comm);
        return code;
    }
    lg.level = p->cfg.logging.level;
    const pfgm_config *cfg = &p->cfg;
    const int64_t C = cfg->data.channels, H = cfg->data.image_size, N = pfgm_config_data_dim(cfg);
    pfgm_log_info(&lg, "pfgm-sample: %s (step %lld, %s weights), %lld samples of %lldx%lldx%lld on %d rank%s, "
                       "solver %s, seed %lld",
                  p->checkpoint, (long long)p->step, a.no_ema ? "raw" : "EMA", (long long)a.num, (long long)C,
                  (long long)H, (long long)H, comm->world_size, comm->world_size > 1 ? "s" : "",
                  pfgm_config_solver_name(cfg->sampling.ode_solver), (long long)p->seed);

    /* the GPU of this rank: local_rank % visible devices (0 when one device is visible per
     * rank); sampling needs no NCCL, so ranks sharing a GPU are allowed */
    pfgm_backend *be = NULL;
    int ndev = pfgm_backend_cuda_device_count();
    st = pfgm_config_backend_create(cfg, ndev > 0 ? comm->local_rank % ndev : 0, &be);
    float *x = NULL;
    if (st == PFGM_OK && comm->rank == 0) {
        x = malloc(sizeof(float) * (size_t)(a.num * N));
        if (!x) st = pfgm_error(PFGM_ERR_NOMEM, "cannot allocate %lld samples of %lld floats", (long long)a.num,
                                (long long)N);
    }
    pfgm_sample_result res = {.failed_rank = -1};
    int agreed = 0;
    if (st == PFGM_OK) {
        /* a device or memory failure above is this rank's alone; the draw itself agrees */
        /* the progress line on stdout, in place on a terminal as pfgm-train's (not under
         * mpirun, whose forwarded output is not the terminal) */
        const int tty = isatty(STDOUT_FILENO) && !pfgm_comm_launched_by_mpi();
        pfgm_sample_options o = {.checkpoint = ck, .num_samples = a.num, .seed = (uint32_t)p->seed,
                                 .use_params = a.no_ema, .progress = isnan(a.progress) ? NULL : stdout,
                                 .progress_tty = tty,
                                 .progress_interval_s = a.progress >= 0 ? a.progress : tty ? 0.2 : 1.0};
        st = pfgm_sample_draw(cfg, &o, comm, be, &lg, x, &res);
        agreed = res.failed_rank >= 0;
    }
    if (st == PFGM_OK && comm->rank == 0) {
        pfgm_samples_meta meta = {.checkpoint = p->checkpoint, .step = p->step,
                                  .solver = pfgm_config_solver_name(cfg->sampling.ode_solver), .nfe = res.mean_nfe,
                                  .seed = p->seed, .weights = a.no_ema ? "params" : "ema"};
        st = pfgm_samples_write_outputs(a.out, a.h5, x, a.num, C, H, H, &meta);
    }
    if (st == PFGM_OK) {
        int64_t cols = pfgm_samples_grid_columns(a.num), rows = (a.num + cols - 1) / cols;
        if (res.nfe_min == res.nfe_max)
            pfgm_log_info(&lg, "pfgm-sample: %lld samples in %.2f s: %.2f images/s, NFE %lld per batch (%lld batch%s)",
                          (long long)a.num, res.seconds, res.images_per_s, (long long)res.nfe_min,
                          (long long)res.batches, res.batches == 1 ? "" : "es");
        else
            pfgm_log_info(&lg,
                          "pfgm-sample: %lld samples in %.2f s: %.2f images/s, NFE %.1f per batch (min %lld, max "
                          "%lld, %lld batch%s)",
                          (long long)a.num, res.seconds, res.images_per_s, res.mean_nfe, (long long)res.nfe_min,
                          (long long)res.nfe_max, (long long)res.batches, res.batches == 1 ? "" : "es");
        pfgm_log_info(&lg, "pfgm-sample: wrote %s (%lldx%lld grid)%s%s", a.out, (long long)cols, (long long)rows,
                      a.h5 ? " and " : "", a.h5 ? a.h5 : "");
        if (res.rho_guard)
            pfgm_log_info(&lg, "pfgm-sample: the rho = 1 drift guard fired on %lld rows (docs/numerics.md)",
                          (long long)res.rho_guard);
        if (comm->world_size > 1) st = comm->barrier(comm); /* rank 0 has written when all leave */
    }
    free(x);
    pfgm_ckpt_close(ck);
    int code = st == PFGM_OK ? 0 : fail(comm, &lg, st, agreed);
    pfgm_backend_destroy(be);
    free(p);
    pfgm_comm_destroy(comm);
    return code;
}
