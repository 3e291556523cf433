/* bench_step_control: per-sample against batch-global RK45 step control (include/pfgm/ode.h;
 * docs/benchmarks.md "Per-sample RK45 step control"): one checkpoint's EMA weights, the same
 * prior draws (batch b keyed {seed, 0, PRIOR, b}, as pfgm-sample keys it), solved by both
 * step controls at the config's sampling.rk45_rtol and rk45_atol, and by a reference: the
 * per-sample solver at tolerances 100 times tighter. The two timed solves of a batch
 * alternate in order from batch to batch, so that a change of load on a shared machine
 * favours neither. Prints BENCH lines over the timed batches, per solver (workload
 * <name>_batch and <name>_per_sample): evals_per_image (network evaluations per image,
 * stats.sample_evals / B), nfe (batched calls of the network, mean per batch), batch_s and
 * cpu_s (mean seconds per batch, wall and process CPU), images_per_s, and its distance to
 * the reference (ref_max_abs, ref_rms); for the pair (workload <name>): max_abs_diff and
 * rms_diff (per pixel, over every pixel of every timed batch, in the data's [-1, 1] units)
 * and max_sample_rms_diff (the largest per-image RMS difference).
 * Usage: bench_step_control --params CHECKPOINT [--set k=v]... [--steps K] [--warmup W]
 *        [--workload NAME]
 *   --params: a checkpoint file or a run directory (its newest complete checkpoint, as
 *   pfgm-sample); the run's config embedded in it, with the --set assignments applied;
 *   --steps: timed batches of sampling.batch_size (default 5); --warmup: batches solved by
 *   both solvers before them, not counted (default 1). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "pfgm/backend.h"
#include "pfgm/checkpoint.h"
#include "pfgm/ddpmpp.h"
#include "pfgm/ode.h"
#include "pfgm/params_h5.h"
#include "pfgm/prior.h"
#include "pfgm/sampler.h"
#include "util/check.h"

typedef struct field_ctx {
    pfgm_ddpmpp *model;
    pfgm_backend *be;
    int64_t N;
} field_ctx;

/* The ODE's field: one evaluation-mode forward (as src/train/sampler.c). */
static pfgm_status network_field(void *user, int64_t B, const float *x, const float *z, float *v_x, float *v_z) {
    field_ctx *f = user;
    const float *nx = NULL, *nz = NULL;
    PFGM_TRY(pfgm_ddpmpp_forward(f->model, B, x, z, NULL, &nx, &nz));
    PFGM_TRY(f->be->copy(f->be, v_x, nx, sizeof(float) * (size_t)(B * f->N), PFGM_COPY_D2D));
    return f->be->copy(f->be, v_z, nz, sizeof(float) * (size_t)B, PFGM_COPY_D2D);
}

/* Distance between two sets of samples [B, N], accumulated over batches. */
typedef struct distance {
    double max_abs, sum_sq, max_sample_rms;
    int64_t count;
} distance;

static void distance_add(distance *d, const float *a, const float *b, int64_t B, int64_t N) {
    for (int64_t i = 0; i < B; ++i) {
        double s2 = 0.0;
        for (int64_t j = 0; j < N; ++j) {
            const double e = (double)a[i * N + j] - (double)b[i * N + j];
            d->max_abs = fmax(d->max_abs, fabs(e));
            s2 += e * e;
        }
        d->sum_sq += s2;
        d->max_sample_rms = fmax(d->max_sample_rms, sqrt(s2 / (double)N));
    }
    d->count += B * N;
}

static double distance_rms(const distance *d) { return d->count ? sqrt(d->sum_sq / (double)d->count) : 0.0; }

/* What one solver did over the timed batches. */
typedef struct tally {
    int64_t sample_evals, nfe, images;
    double wall, cpu;
    distance to_ref;
} tally;

/* x_dev <- prior, solved by `solver`; the result to host. Counted into t when t != NULL. */
static pfgm_status solve_one(pfgm_backend *be, pfgm_ode_solver *solver, field_ctx *f, const float *prior_dev,
                             float *x_dev, float *host, int64_t B, tally *t) {
    const size_t bytes = sizeof(float) * (size_t)(B * f->N);
    PFGM_TRY(be->copy(be, x_dev, prior_dev, bytes, PFGM_COPY_D2D));
    if (be->sync) PFGM_TRY(be->sync(be));
    pfgm_ode_stats st;
    const double w0 = bench_now(), c0 = bench_cpu_now();
    PFGM_TRY(pfgm_ode_solve(solver, x_dev, network_field, f, &st));
    if (be->sync) PFGM_TRY(be->sync(be));
    const double w1 = bench_now(), c1 = bench_cpu_now();
    if (t) {
        t->sample_evals += st.sample_evals;
        t->nfe += st.nfe;
        t->images += B;
        t->wall += w1 - w0;
        t->cpu += c1 - c0;
    }
    return pfgm_backend_download(be, host, x_dev, B * f->N);
}

static void report(const char *w, const char *suffix, const tally *t, int batches) {
    char name[256];
    snprintf(name, sizeof name, "%s_%s", w, suffix);
    bench_report(name, "evals_per_image", (double)t->sample_evals / (double)t->images);
    bench_report(name, "nfe", (double)t->nfe / batches);
    bench_report(name, "batch_s", t->wall / batches);
    bench_report(name, "cpu_s", t->cpu / batches);
    bench_report(name, "images_per_s", (double)t->images / t->wall);
    bench_report(name, "ref_max_abs", t->to_ref.max_abs);
    bench_report(name, "ref_rms", distance_rms(&t->to_ref));
}

static pfgm_status run(const bench_args *a, const pfgm_config *c, pfgm_ckpt *ck) {
    const int64_t B = c->sampling.batch_size, N = pfgm_config_data_dim(c);
    pfgm_backend *be = NULL;
    field_ctx f = {.N = N};
    pfgm_ode_solver *sg = NULL, *sp = NULL, *sr = NULL;
    float *prior_dev = NULL, *x_dev = NULL;
    const size_t bn = sizeof(float) * (size_t)(B * N);
    float *hg = malloc(bn), *hp = malloc(bn), *hr = malloc(bn);
    tally tg = {0}, tp = {0}, tr = {0};
    distance pair = {0};
    pfgm_ddpmpp_desc desc;
    pfgm_status st = hg && hp && hr ? PFGM_OK : pfgm_error(PFGM_ERR_NOMEM, "bench_step_control: host buffers");
    if (st == PFGM_OK) st = pfgm_config_backend_create(c, 0, &be);
    f.be = be;
    if (st == PFGM_OK) st = pfgm_ddpmpp_desc_from_config(c, &desc);
    if (st == PFGM_OK) st = pfgm_ddpmpp_create(be, &desc, B, PFGM_DDPMPP_INFER, &f.model);
    /* a checkpoint holds /ema/<name> in the parameter-file layout */
    if (st == PFGM_OK) st = pfgm_ddpmpp_load_h5(f.model, pfgm_ckpt_file(ck), "ema");
    pfgm_ode_options og = pfgm_sample_ode_options(c), op = og, oref = og;
    og.per_sample_step = 0;
    op.per_sample_step = 1;
    oref.per_sample_step = 1;
    oref.rtol = og.rtol / 100.0;
    oref.atol = og.atol / 100.0;
    if (st == PFGM_OK) st = pfgm_ode_create(be, B, N, &og, &sg);
    if (st == PFGM_OK) st = pfgm_ode_create(be, B, N, &op, &sp);
    if (st == PFGM_OK) st = pfgm_ode_create(be, B, N, &oref, &sr);
    if (st == PFGM_OK) st = be->alloc(be, sizeof(float) * (size_t)(B * N), (void **)&prior_dev);
    if (st == PFGM_OK) st = be->alloc(be, sizeof(float) * (size_t)(B * N), (void **)&x_dev);
    if (st == PFGM_OK)
        printf("checkpoint %s (step %lld), backend %s: %lld images of %lld values per batch, rtol %g atol %g "
               "(reference %g, %g), %d warm-up + %d timed batches\n",
               pfgm_ckpt_file(ck), (long long)pfgm_ckpt_meta_of(ck)->step, be->name, (long long)B, (long long)N,
               og.rtol, og.atol, oref.rtol, oref.atol, a->warmup, a->steps);
    for (int b = 0; st == PFGM_OK && b < a->warmup + a->steps; ++b) {
        pfgm_rng r = {.seed = (uint32_t)c->seed, .rank = 0, .stream = PFGM_STREAM_PRIOR, .step = (uint64_t)b};
        st = pfgm_prior_sample(be, &r, B, N, c->sampling.z_max, c->sampling.upper_norm, prior_dev, NULL);
        const int timed = b >= a->warmup;
        for (int k = 0; st == PFGM_OK && k < 2; ++k) {
            const int per_sample = (k + b) % 2; /* the order alternates by batch */
            st = solve_one(be, per_sample ? sp : sg, &f, prior_dev, x_dev, per_sample ? hp : hg, B,
                           timed ? (per_sample ? &tp : &tg) : NULL);
        }
        if (st != PFGM_OK || !timed) continue;
        st = solve_one(be, sr, &f, prior_dev, x_dev, hr, B, &tr);
        distance_add(&pair, hg, hp, B, N);
        distance_add(&tg.to_ref, hg, hr, B, N);
        distance_add(&tp.to_ref, hp, hr, B, N);
    }
    if (st == PFGM_OK) {
        report(a->workload, "batch", &tg, a->steps);
        report(a->workload, "per_sample", &tp, a->steps);
        char name[256];
        snprintf(name, sizeof name, "%s_reference", a->workload);
        bench_report(name, "evals_per_image", (double)tr.sample_evals / (double)tr.images);
        bench_report(a->workload, "max_abs_diff", pair.max_abs);
        bench_report(a->workload, "rms_diff", distance_rms(&pair));
        bench_report(a->workload, "max_sample_rms_diff", pair.max_sample_rms);
        bench_report(a->workload, "peak_rss_mib", (double)bench_peak_rss_kib() / 1024.0);
    }
    if (be) {
        if (prior_dev) be->free(be, prior_dev);
        if (x_dev) be->free(be, x_dev);
    }
    pfgm_ode_destroy(sg);
    pfgm_ode_destroy(sp);
    pfgm_ode_destroy(sr);
    pfgm_ddpmpp_destroy(f.model);
    pfgm_backend_destroy(be);
    free(hg);
    free(hp);
    free(hr);
    return st;
}

int main(int argc, char **argv) {
    bench_args a;
    if (bench_parse_args(argc, argv, "--params CHECKPOINT [--set k=v]... [--steps K] [--warmup W] [--workload NAME]",
                         &a))
        return 2;
    if (!a.params || a.config) {
        fprintf(stderr, "bench_step_control: --params CHECKPOINT is required; the config is the checkpoint's own "
                        "(--config is not used)\n");
        return 2;
    }
    pfgm_ckpt *ck = NULL;
    pfgm_config cfg;
    pfgm_status st = pfgm_sample_open_checkpoint(a.params, NULL, &ck);
    if (st == PFGM_OK) {
        cfg = *pfgm_ckpt_config(ck);
        for (size_t i = 0; st == PFGM_OK && i < a.n_sets; ++i) st = pfgm_config_set(&cfg, a.sets[i]);
        if (st == PFGM_OK) st = pfgm_config_validate(&cfg);
        if (st == PFGM_OK && cfg.sampling.ode_solver != PFGM_SOLVER_RK45)
            st = pfgm_error(PFGM_ERR_CONFIG, "bench_step_control: sampling.ode_solver must be rk45 (add --set "
                            "sampling.ode_solver=rk45)");
    }
    if (st == PFGM_OK) st = run(&a, &cfg, ck);
    if (st != PFGM_OK) fprintf(stderr, "bench_step_control: %s\n", pfgm_error_message());
    pfgm_ckpt_close(ck);
    return st == PFGM_OK ? 0 : 1;
}
