/* The training loop (include/pfgm/trainer.h): on every rank, each iteration takes the next
 * large batch of this rank's shard (io/dataset), runs THE training step on it
 * (src/train/step.c: perturbation, field targets, DDPM++ forward/backward, the finite
 * agreement, the gradient all-reduce, clip/Adam/EMA), then agrees on the loss and stop
 * requests, logs, and every snapshot has rank 0 checkpoint (train_state.c). Nothing is
 * allocated inside the loop: every buffer is sized at start. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pfgm/checkpoint.h"
#include "pfgm/field.h"
#include "pfgm/preempt.h"
#include "pfgm/progress.h"
#include "pfgm/run_lock.h"
#include "pfgm/step.h"
#include "train/train_internal.h"
#include "util/atomic_file.h"
#include "util/check.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* FNV-1a over the parameter bytes: ranks compare it to prove identical starting weights. */
static uint64_t fnv1a(const float *v, int64_t n) {
    const unsigned char *p = (const unsigned char *)v;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < (size_t)n * sizeof(float); ++i) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* The ranks' weights must be the same bits (at the start, and when training ends: a skipped
 * or averaged step must leave them so); `when` says which. *sum: this rank's checksum. */
static pfgm_status check_identical_weights(trainer *t, const char *when, uint64_t *sum) {
    PFGM_TRY(pfgm_backend_download(t->be, t->h_params, t->params->value, t->params->floats));
    uint64_t h = fnv1a(t->h_params, t->params->floats), hmin = h, hmax = h;
    if (sum) *sum = h;
    PFGM_TRY(t->comm->allreduce(t->comm, &hmin, 1, PFGM_U64, PFGM_REDUCE_MIN));
    PFGM_TRY(t->comm->allreduce(t->comm, &hmax, 1, PFGM_U64, PFGM_REDUCE_MAX));
    if (hmin != hmax)
        return pfgm_error(PFGM_ERR_INTERNAL, "ranks hold different weights %s (checksum %016llx on rank %d)", when,
                          (unsigned long long)h, t->comm->rank);
    if (t->comm->rank == 0) pfgm_log_info(t->lg, "weights identical on all %d ranks %s (checksum %016llx)",
                                          t->comm->world_size, when, (unsigned long long)h);
    return PFGM_OK;
}

/* The test-only fault of PFGM_TEST_FAULT="RANK:STEP:loss|grad", read once at the start of
 * pfgm_train (pfgm_step_fault). Errors: PFGM_ERR_CONFIG naming the variable and what is wrong. */
static pfgm_status read_fault(pfgm_step_fault *f) {
    memset(f, 0, sizeof *f);
    const char *s = getenv("PFGM_TEST_FAULT");
    if (!s || !*s) return PFGM_OK;
    /* strtol/strtoll (not sscanf's %d, whose overflow is undefined): RANK:STEP:WHAT */
    char *end = NULL;
    errno = 0;
    long rank = strtol(s, &end, 10);
    long long step = 0;
    int ok = errno == 0 && end != s && *end == ':' && rank >= 0 && rank <= INT32_MAX;
    if (ok) {
        const char *p = end + 1;
        step = strtoll(p, &end, 10);
        ok = errno == 0 && end != p && *end == ':' && step >= 1;
    }
    const char *what = ok ? end + 1 : "";
    if (!ok || (strcmp(what, "loss") != 0 && strcmp(what, "grad") != 0))
        return pfgm_error(PFGM_ERR_CONFIG, "PFGM_TEST_FAULT='%s': expected RANK:STEP:loss or RANK:STEP:grad (a test hook; STEP >= 1)", s);
    f->rank = (int)rank;
    f->step = step;
    f->grad = strcmp(what, "grad") == 0;
    return PFGM_OK;
}

/* 61805572 -> "61,805,572" into buf[cap]. */
static const char *with_commas(int64_t v, char *buf, size_t cap) {
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%lld", (long long)(v < 0 ? -v : v));
    size_t o = 0;
    if (v < 0 && o + 1 < cap) buf[o++] = '-';
    for (int i = 0; i < n && o + 1 < cap; ++i) {
        if (i > 0 && (n - i) % 3 == 0 && o + 1 < cap) buf[o++] = ',';
        if (o + 1 < cap) buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}

/* sv: the step's view (NULL in a dry run, which builds no step: the optimizer state is then
 * estimated from the parameter bytes). */
static void print_startup(const trainer *t, const pfgm_ddpmpp_info *info, size_t field_ws, const pfgm_step_view *sv) {
    char count[40];
    const pfgm_config *c = t->cfg;
    const pfgm_logger *lg = t->lg;
    int W = t->comm->world_size;
    pfgm_log_info(lg, "pfgm-train %s", PFGM_VERSION_STRING);
    if (t->dcomm != t->comm)
        pfgm_log_info(lg, "  %-26s %d (%s backend, %s communicator; %s for gradients and charges)", "world size", W,
                      t->be->name, t->comm->name, t->dcomm->name);
    else
        pfgm_log_info(lg, "  %-26s %d (%s backend, %s communicator)", "world size", W, t->be->name, t->comm->name);
    if (t->data) {
        pfgm_dataset_stats ds;
        pfgm_dataset_get_stats(t->data, &ds);
        pfgm_log_info(lg, "  %-26s %s: %lld images, %lld per rank, %lld steps per epoch", "data", c->data.path,
                      (long long)pfgm_dataset_count(t->data), (long long)pfgm_dataset_per_rank(t->data),
                      (long long)pfgm_dataset_steps_per_epoch(t->data));
        pfgm_log_info(lg, "  %-26s cache %.1f MiB per rank (%lld of %lld blocks of %lld images), staging %.1f MiB, "
                      "shuffle window %lld blocks, prefetch %s", "reader", ds.cache_bytes / 1048576.0,
                      (long long)ds.cache_slots, (long long)ds.blocks, (long long)ds.block_images,
                      ds.staging_bytes / 1048576.0, (long long)ds.window_blocks, ds.prefetch ? "on" : "off");
    } else
        pfgm_log_info(lg, "  %-26s %s (not opened: %s)", "data", c->data.path, pfgm_error_message());
    pfgm_log_info(lg, "  %-26s %lld x %lld x %lld (N = %lld)", "image", (long long)c->data.channels,
                  (long long)c->data.image_size, (long long)c->data.image_size, (long long)t->N);
    pfgm_log_info(lg, "  %-26s %lld charges, %lld perturbed points per rank; global batch %lld (W x %lld)",
                  "batch", (long long)t->L, (long long)t->B, (long long)(W * t->B), (long long)t->B);
    pfgm_log_info(lg, "  %-26s %s", "field reference", c->field.reference == PFGM_FIELD_GLOBAL ? "global (all ranks' charges)" : "local (this rank's charges)");
    pfgm_log_info(lg, "  %-26s M %lld, tau %g, sigma_end %g, gamma %g, restrict_M %s, loss %s", "PFGM",
                  (long long)c->training.M, c->training.tau, c->model.sigma_end, c->training.gamma,
                  c->training.restrict_M ? "true" : "false", c->training.reduce_mean ? "mean" : "0.5*sum");
    pfgm_log_info(lg, "  %-26s nf %lld, %d levels, %lld res blocks, %d attention blocks; %s parameters", "DDPM++",
                  (long long)c->model.nf, (int)c->model.ch_mult.n, (long long)c->model.num_res_blocks, info->num_attn,
                  with_commas(info->param_count, count, sizeof count));
    pfgm_log_info(lg, "  %-26s Adam lr %g (not rescaled by world size), beta1 %g, warmup %lld, clip %g, EMA %g",
                  "optimizer", c->optim.lr, c->optim.beta1, (long long)c->optim.warmup, c->optim.grad_clip,
                  c->model.ema_rate);
    const int sharded = W > 1 && c->distributed.zero;
    const double optim_mib = sv ? sv->optim_state_bytes / 1048576.0 : 3.0 * info->param_bytes / (sharded ? W : 1) / 1048576.0;
    pfgm_log_info(lg, "  %-26s params %.1f MiB, grads %.1f MiB, Adam+EMA %.1f MiB%s, activations %.1f MiB, field %.1f MiB",
                  "memory per rank", info->param_bytes / 1048576.0, info->param_bytes / 1048576.0, optim_mib,
                  sharded ? " (ZeRO-1 shard: 1/W)" : "", info->activation_bytes / 1048576.0, field_ws / 1048576.0);
    if (sv && W == 1)
        pfgm_log_info(lg, "  %-26s none (one process)", "gradient average");
    else if (sv)
        pfgm_log_info(lg, "  %-26s %d bucket%s of up to %.1f KiB (distributed.bucket_mb %g%s), %s", "gradient average",
                      sv->buckets, sv->buckets == 1 ? "" : "s", sv->bucket_floats * 4.0 / 1024.0, c->distributed.bucket_mb,
                      c->distributed.bucket_mb > 0 ? ": started during backward" : ": one, after backward",
                      sharded ? "reduce-scatter + parameter all-gather (distributed.zero 1)" : "all-reduce");
    pfgm_log_info(lg, "  %-26s %.3g GFLOP forward per image; %.3g GFLOP per step and rank (forward + backward ~ 3x)",
                  "compute", info->flops_per_image / 1e9, 3.0 * info->flops_per_image * (double)t->B / 1e9);
    /* a checkpoint comes at every multiple of either frequency (is_snapshot) */
    pfgm_log_info(lg, "  %-26s %lld steps, checkpoints every %lld and every %lld for preemption (keep last %lld, every %lld), log every %lld",
                  "schedule", (long long)c->training.n_iters, (long long)c->training.snapshot_freq,
                  (long long)c->training.snapshot_freq_for_preemption, (long long)c->checkpoint.keep_last,
                  (long long)c->checkpoint.keep_every, (long long)c->training.log_freq);
    pfgm_log_info(lg, "  %-26s %s", "run directory", t->opt->run_dir ? t->opt->run_dir : "(none: dry run)");
}

static int is_snapshot(const pfgm_config *c, int64_t done) {
    return done == c->training.n_iters || (c->training.snapshot_freq > 0 && done % c->training.snapshot_freq == 0) ||
           (c->training.snapshot_freq_for_preemption > 0 && done % c->training.snapshot_freq_for_preemption == 0);
}

static pfgm_status run_loop(trainer *t, pfgm_metrics *metrics, pfgm_train_result *res) {
    const pfgm_config *c = t->cfg;
    const int64_t total = c->training.n_iters, log_freq = c->training.log_freq > 0 ? c->training.log_freq : 1;
    const int W = t->comm->world_size;
    double window_loss = 0.0, t_window = now_s();
    int64_t window_steps = 0, steps_since = 0, skipped_in_row = 0, skipped_total = 0;
    while (t->step < total) {
        pfgm_step_result sr;
        PFGM_TRY(pfgm_dataset_next_batch(t->data, t->host_batch, NULL));
        PFGM_TRY(pfgm_step_run(t->stepper, t->step, t->host_batch, NULL, &sr));
        t->step++;
        const pfgm_optim_stats stats = sr.stats;
        const int skipped = sr.skipped;
        double loss = sr.loss;
        if (skipped) {
            skipped_total++;
            if (++skipped_in_row > c->training.max_skipped)
                return pfgm_error(PFGM_ERR_NUMERIC, "step %lld: %lld steps in a row had non-finite loss or gradients (training.max_skipped = %lld); stopping without a checkpoint of this state",
                                  (long long)t->step, (long long)skipped_in_row, (long long)c->training.max_skipped);
            loss = 0.0; /* not part of the mean below */
        } else {
            skipped_in_row = 0;
        }
        /* One small all-reduce per step: the mean loss and whether any rank got a stop
         * signal, so every rank stops at the same step. */
        double agree[2] = {loss, (double)(pfgm_preempt_signal() != 0)};
        PFGM_TRY(t->comm->allreduce(t->comm, agree, 2, PFGM_F64, PFGM_REDUCE_SUM));
        double mean_loss = skipped ? NAN : agree[0] / W;
        if (!skipped) res->last_loss = mean_loss;
        if (!skipped) {
            window_loss += mean_loss;
            window_steps++;
        }
        steps_since++;
        int stop = agree[1] > 0.0;
        if (t->step % log_freq == 0 || t->step == total || stop) {
            double now = now_s(), dt = now - t_window;
            double ips = dt > 0 ? (double)(steps_since * t->B * W) / dt : 0.0;
            pfgm_progress_report r = {.step = t->step, .total = total,
                                      .loss = window_steps ? window_loss / (double)window_steps : NAN,
                                      .grad_norm = stats.grad_norm, .lr = stats.lr, .images_per_s = ips,
                                      .eta_s = ips > 0 ? (double)(total - t->step) * (double)(t->B * W) / ips : -1};
            if (t->comm->rank == 0) {
                pfgm_progress_print(stdout, t->opt->progress_tty, &r);
                pfgm_dataset_position pos;
                pfgm_dataset_get_position(t->data, &pos);
                pfgm_metrics_begin(metrics);
                pfgm_metrics_int(metrics, "step", t->step);
                pfgm_metrics_num(metrics, "loss", mean_loss);
                pfgm_metrics_num(metrics, "loss_window", r.loss);
                pfgm_metrics_num(metrics, "grad_norm", stats.grad_norm);
                pfgm_metrics_num(metrics, "lr", stats.lr);
                pfgm_metrics_int(metrics, "clipped", stats.clipped);
                pfgm_metrics_num(metrics, "images_per_s", ips);
                pfgm_metrics_num(metrics, "grad_wait_ms", 1e3 * sr.grad_wait_s);
                pfgm_metrics_num(metrics, "param_gather_ms", 1e3 * sr.param_gather_s);
                pfgm_metrics_int(metrics, "epoch", pos.epoch);
                pfgm_metrics_int(metrics, "world_size", W);
                pfgm_metrics_int(metrics, "skipped", skipped);
                if (skipped) pfgm_metrics_str(metrics, "nonfinite_ranks", sr.nonfinite_ranks);
                pfgm_metrics_int(metrics, "skipped_total", skipped_total);
                PFGM_TRY(pfgm_metrics_end(metrics));
            }
            window_loss = 0.0;
            window_steps = 0;
            steps_since = 0;
            t_window = now;
        }
        if (is_snapshot(c, t->step) || stop) {
            if (t->comm->rank == 0) pfgm_progress_finish(stdout, t->opt->progress_tty);
            PFGM_TRY(pfgm_train_save_checkpoint(t));
        }
        if (stop && t->step == total) {
            /* the stop came with the last step: its checkpoint is the final one and nothing is
             * left to resume, so this is the normal end (exit 0), not a request to requeue */
            if (t->comm->rank == 0)
                pfgm_log_info(t->lg, "stop requested on the last step (%lld): training is complete", (long long)t->step);
        } else if (stop) {
            res->stopped_signal = pfgm_preempt_signal();
            if (t->comm->rank == 0)
                pfgm_log_info(t->lg, "stop requested: checkpoint of step %lld written; exiting for requeue", (long long)t->step);
            return PFGM_STOPPED;
        }
    }
    if (t->comm->rank == 0) pfgm_progress_finish(stdout, t->opt->progress_tty);
    return PFGM_OK;
}

static pfgm_status open_data(trainer *t) {
    const pfgm_config *c = t->cfg;
    pfgm_dataset_options o = {.path = c->data.path, .rank = t->comm->rank, .world_size = t->comm->world_size,
                              .channels = c->data.channels, .image_size = c->data.image_size,
                              .batch_size = c->training.batch_size, .seed = (uint32_t)c->seed,
                              .random_flip = c->data.random_flip, .block_images = c->data.block_images,
                              .shuffle_window = c->data.shuffle_window, .cache_bytes = c->data.cache_mb << 20,
                              .no_prefetch = !c->data.prefetch, .log = t->lg};
    return pfgm_dataset_open(&o, &t->data);
}

/* The collectives on backend memory need a communicator that reaches that memory: host
 * memory for the CPU backend (any communicator), device memory otherwise (NCCL). Checked on
 * every rank alike (same backend kind and communicators everywhere). */
static pfgm_status check_device_comm(const trainer *t) {
    const pfgm_comm *c = t->comm, *d = t->dcomm;
    if (d->world_size != c->world_size || d->rank != c->rank)
        return pfgm_error(PFGM_ERR_INVALID_ARG,
                          "trainer: the device communicator (%s) has rank %d of %d, the communicator (%s) rank %d of %d",
                          d->name, d->rank, d->world_size, c->name, c->rank, c->world_size);
    if ((t->be->caps(t->be) & PFGM_CAP_DEVICE_MEMORY) && c->world_size > 1 && strcmp(d->name, "nccl") != 0)
        return pfgm_error(PFGM_ERR_UNSUPPORTED,
                          "multi-rank training on the %s backend needs a communicator on device memory (NCCL); "
                          "the %s communicator reduces host buffers",
                          t->be->name, d->name);
    return PFGM_OK;
}

/* Fresh start: an existing, non-empty metrics file (an earlier run in this directory whose
 * checkpoints were moved aside or deleted) is renamed to <path>.<n> (the first free n) and
 * said so, never truncated. */
static pfgm_status keep_old_metrics(const trainer *t, const char *path) {
    struct stat sb;
    if (stat(path, &sb) != 0 || sb.st_size == 0) return PFGM_OK;
    char to[4200];
    int n = 1;
    do snprintf(to, sizeof to, "%s.%d", path, n++);
    while (access(to, F_OK) == 0 && n < 10000);
    if (rename(path, to) != 0) return pfgm_error(PFGM_ERR_IO, "%s: cannot keep it as %s: %s", path, to, strerror(errno));
    pfgm_log_warn(t->lg, "fresh start: the earlier metrics in %s were kept as %s", path, to);
    return PFGM_OK;
}

/* Temporaries "<metrics>.tmp.<pid>" of a metrics rewrite that a crash interrupted (the run
 * directory is locked: no other trainer writes them). */
static pfgm_status remove_stale_temporaries(const char *run_dir, const char *metrics) {
    char prefix[1100];
    snprintf(prefix, sizeof prefix, "%s.tmp.", metrics);
    DIR *d = opendir(run_dir);
    if (!d) return PFGM_OK;
    pfgm_status st = PFGM_OK;
    struct dirent *e;
    while (st == PFGM_OK && (e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0 || atol(e->d_name + strlen(prefix)) == (long)getpid()) continue;
        char p[4096 + 256];
        snprintf(p, sizeof p, "%s/%s", run_dir, e->d_name);
        if (unlink(p) != 0 && errno != ENOENT)
            st = pfgm_error(PFGM_ERR_IO, "%s: cannot remove a stale temporary: %s", p, strerror(errno));
    }
    closedir(d);
    return st;
}

static pfgm_status setup_and_run(trainer *t, pfgm_train_result *res) {
    const pfgm_config *c = t->cfg;
    if (c->seed < 0 || c->seed > (int64_t)UINT32_MAX)
        return pfgm_error(PFGM_ERR_CONFIG, "seed %lld is outside [0, 4294967295]", (long long)c->seed);
    t->N = pfgm_config_data_dim(c);
    t->L = c->training.batch_size;
    t->B = c->training.small_batch_size;
    pfgm_ddpmpp_desc desc;
    PFGM_TRY(pfgm_ddpmpp_desc_from_config(c, &desc));
    desc.param_multiple = pfgm_step_param_multiple(t->comm->world_size);
    if (t->opt->dry_run) {
        pfgm_ddpmpp_info info;
        PFGM_TRY(pfgm_ddpmpp_plan(&desc, t->be, t->B, PFGM_DDPMPP_TRAIN, &info));
        if (open_data(t) != PFGM_OK) t->data = NULL; /* a plan needs no data; say why it is missing */
        print_startup(t, &info, pfgm_field_workspace_bytes(t->B, t->L), NULL);
        if (t->comm->rank == 0) {
            char *yaml = NULL;
            size_t n = 0;
            PFGM_TRY(pfgm_config_to_yaml_string(c, &yaml, &n));
            pfgm_log_info(t->lg, "resolved configuration:\n%s", yaml);
            free(yaml);
        }
        return PFGM_OK;
    }
    PFGM_TRY(check_device_comm(t));
    pfgm_step_fault fault;
    PFGM_TRY(read_fault(&fault));
    if (fault.step > 0) {
        if (fault.rank >= t->comm->world_size)
            return pfgm_error(PFGM_ERR_CONFIG, "PFGM_TEST_FAULT: rank %d does not exist (world size %d)", fault.rank,
                              t->comm->world_size);
        if (fault.step > c->training.n_iters)
            return pfgm_error(PFGM_ERR_CONFIG, "PFGM_TEST_FAULT: step %lld is past training.n_iters = %lld",
                              (long long)fault.step, (long long)c->training.n_iters);
        if (t->comm->rank == 0)
            pfgm_log_warn(t->lg, "PFGM_TEST_FAULT (a test hook): rank %d gets a non-finite %s at step %lld", fault.rank,
                          fault.grad ? "gradient" : "loss", (long long)fault.step);
    }
    /* The data first: a missing or bad dataset file stops the run before anything is
     * created, so it leaves no empty run directory behind. */
    PFGM_TRY(open_data(t));
    /* Rank 0 owns the run directory: it creates it and takes its lock (one trainer per run
     * directory, pfgm/run_lock.h); every rank learns the outcome before any returns. */
    int64_t shared[1] = {PFGM_OK};
    if (t->comm->rank == 0) {
        pfgm_status st = pfgm_mkdirs(t->opt->run_dir);
        if (st == PFGM_OK) st = pfgm_run_lock_acquire(t->opt->run_dir, &t->lock);
        if (st == PFGM_OK && !pfgm_run_lock_held(t->lock)) pfgm_log_warn(t->lg, "%s", pfgm_run_lock_note(t->lock));
        shared[0] = st;
    }
    PFGM_TRY(t->comm->broadcast(t->comm, shared, 1, PFGM_I64, 0));
    if (shared[0] != PFGM_OK) {
        if (t->comm->rank == 0) return (pfgm_status)shared[0];
        return pfgm_error((pfgm_status)shared[0], "rank 0 could not prepare the run directory (see its message)");
    }
    PFGM_TRY(pfgm_ddpmpp_create(t->be, &desc, t->B, PFGM_DDPMPP_TRAIN, &t->model));
    t->params = pfgm_ddpmpp_params(t->model);
    PFGM_TRY(pfgm_ddpmpp_init_params(t->model, (uint32_t)c->seed));
    size_t floats = (size_t)t->params->floats;
    t->h_params = malloc(floats * sizeof(float));
    t->h_m = malloc(floats * sizeof(float));
    t->h_v = malloc(floats * sizeof(float));
    t->h_ema = malloc(floats * sizeof(float));
    if (!t->h_params || !t->h_m || !t->h_v || !t->h_ema)
        return pfgm_error(PFGM_ERR_NOMEM, "trainer: cannot allocate checkpoint staging (4 x %zu floats)", floats);
    pfgm_step_setup ss = {.cfg = c, .be = t->be, .model = t->model, .comm = t->comm, .dcomm = t->dcomm,
                          .lg = t->lg, .fault = fault};
    PFGM_TRY(pfgm_step_create(&ss, &t->stepper));
    t->optim = pfgm_step_optim(t->stepper);
    t->host_batch = malloc(sizeof(float) * (size_t)(t->L * t->N));
    if (!t->host_batch) return pfgm_error(PFGM_ERR_NOMEM, "trainer: cannot allocate the batch staging buffer");
    PFGM_TRY(check_identical_weights(t, "at initialisation", NULL));
    PFGM_TRY(pfgm_train_resume(t));
    res->start_step = t->step;
    pfgm_ddpmpp_info info;
    pfgm_ddpmpp_get_info(t->model, &info);
    pfgm_step_view sv;
    pfgm_step_get_view(t->stepper, &sv);
    print_startup(t, &info, sv.field_workspace_bytes, &sv);

    pfgm_metrics *metrics = NULL;
    if (t->comm->rank == 0) {
        char path[4096];
        snprintf(path, sizeof path, "%s/config.yaml", t->opt->run_dir);
        PFGM_TRY(pfgm_config_write_yaml(c, path));
        snprintf(path, sizeof path, "%s/%s", t->opt->run_dir, c->logging.metrics);
        PFGM_TRY(remove_stale_temporaries(t->opt->run_dir, c->logging.metrics));
        pfgm_metrics_resume_info mi = {0};
        if (t->resumed_from < 0) {
            /* a fresh start keeps an earlier run's metrics under another name */
            PFGM_TRY(keep_old_metrics(t, path));
        } else {
            /* records of steps past the resumed one (logged again below) and a line cut by a
             * crash are dropped, so "step" stays strictly increasing */
            PFGM_TRY(pfgm_metrics_resume(path, t->step, &mi));
            if (mi.dropped + mi.unparsable > 0)
                pfgm_log_info(t->lg, "%s: dropped %lld records past step %lld and %lld unreadable lines", path,
                              (long long)mi.dropped, (long long)t->step, (long long)mi.unparsable);
        }
        PFGM_TRY(pfgm_metrics_open(path, &metrics));
        if (t->resumed_from >= 0) {
            pfgm_status st = pfgm_metrics_resumed_event(metrics, &mi);
            if (st != PFGM_OK) {
                pfgm_metrics_close(metrics);
                return st;
            }
        }
    }
    pfgm_status st = run_loop(t, metrics, res);
    pfgm_metrics_close(metrics);
    if (st == PFGM_OK || st == PFGM_STOPPED) {
        pfgm_status cs = check_identical_weights(t, "at the end", &res->weights_checksum);
        if (cs != PFGM_OK) return cs;
    }
    return st;
}

pfgm_status pfgm_train(const pfgm_config *cfg, const pfgm_train_options *opt, pfgm_comm *comm, pfgm_backend *be,
                       const pfgm_logger *lg, pfgm_train_result *result) {
    pfgm_train_result res = {0};
    trainer t = {.cfg = cfg, .opt = opt, .comm = comm, .dcomm = opt->device_comm ? opt->device_comm : comm,
                 .be = be, .lg = lg, .resumed_from = -1};
    pfgm_status st = setup_and_run(&t, &res);
    res.end_step = t.step;
    pfgm_step_destroy(t.stepper);
    free(t.host_batch);

    pfgm_ddpmpp_destroy(t.model);
    pfgm_dataset_close(t.data);
    pfgm_run_lock_release(t.lock);
    free(t.h_params);
    free(t.h_m);
    free(t.h_v);
    free(t.h_ema);
    if (result) *result = res;
    return st;
}
