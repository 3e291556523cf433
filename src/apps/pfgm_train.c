/* pfgm-train: argument parsing and wiring of the training loop (src/train/trainer.c).
 *   [mpirun -np W] pfgm-train --config FILE.yaml --run-dir DIR [--set key=value ...]
 *                             [--resume auto|never|fresh|PATH] [--allow-reshard] [--dry-run]
 * Exit codes: docs/user-guide.md (0 done, 2 config, 3 data/checkpoint files, 75 stopped by
 * SIGTERM/SIGUSR1 after a checkpoint: requeue). A fatal error on any rank aborts the whole
 * job (MPI_Abort) with the rank, host and message, so no rank waits in a collective. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pfgm/backend.h"
#include "pfgm/comm.h"
#include "pfgm/config.h"
#include "pfgm/log.h"
#include "pfgm/preempt.h"
#include "pfgm/trainer.h"

#define MAX_SETS 256

static void usage(FILE *f) {
    fprintf(f,
            "usage: [mpirun -np W] pfgm-train --config FILE.yaml --run-dir DIR [options]\n"
            "  --set section.key=value   override a config key (repeatable)\n"
            "  --resume auto|never|fresh|PATH\n"
            "                            auto (default): newest usable checkpoint in DIR, fresh start when\n"
            "                            there is none; a DIR whose checkpoints are all unusable is refused\n"
            "                            (exit 3); never: refuse a DIR with checkpoints; fresh: start over\n"
            "                            when none is usable (they move to checkpoints/damaged/);\n"
            "                            PATH: that checkpoint\n"
            "  --allow-reshard           resume a checkpoint written with another world size, per-rank\n"
            "                            batch size or dataset size (the data position is mapped by the\n"
            "                            number of images consumed)\n"
            "  --dry-run                 print the resolved config, parameters, memory and FLOPs, then exit\n"
            "  --help\n"
            "exit codes: 0 done, 2 usage/config, 3 data or checkpoint file, 4 out of memory, 5 numeric,\n"
            "            6 communication, 7 device, 8 internal, 75 stopped by a signal after a checkpoint\n");
}

typedef struct args {
    const char *config, *run_dir, *resume;
    const char *sets[MAX_SETS];
    size_t n_sets;
    int allow_reshard, dry_run;
} args;

static int parse(int argc, char **argv, args *a) {
    memset(a, 0, sizeof *a);
    a->resume = "auto";
    for (int i = 1; i < argc; ++i) {
        const char *s = argv[i];
        int has_val = i + 1 < argc;
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) return 1;
        else if (!strcmp(s, "--config") && has_val) a->config = argv[++i];
        else if (!strcmp(s, "--run-dir") && has_val) a->run_dir = argv[++i];
        else if (!strcmp(s, "--resume") && has_val) a->resume = argv[++i];
        else if (!strcmp(s, "--set") && has_val) {
            if (a->n_sets == MAX_SETS) {
                fprintf(stderr, "pfgm-train: more than %d --set options\n", MAX_SETS);
                return 2;
            }
            a->sets[a->n_sets++] = argv[++i];
        } else if (!strcmp(s, "--allow-reshard")) a->allow_reshard = 1;
        else if (!strcmp(s, "--dry-run")) a->dry_run = 1;
        else {
            fprintf(stderr, "pfgm-train: unknown or incomplete option '%s' (see --help)\n", s);
            return 2;
        }
    }
    if (!a->config || (!a->run_dir && !a->dry_run)) {
        fprintf(stderr, "pfgm-train: --config and --run-dir are required (see --help)\n");
        return 2;
    }
    return 0;
}

int main(int argc, char **argv) {
    /* Before any long start-up work, so an early SIGTERM is not lost (it stops after the
     * first step with a checkpoint). */
    pfgm_status installed = pfgm_preempt_install();
    if (installed != PFGM_OK) {
        fprintf(stderr, "pfgm-train: %s\n", pfgm_error_message());
        return pfgm_status_exit_code(installed);
    }
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
        fprintf(stderr, "pfgm-train: %s\n", pfgm_error_message());
        return pfgm_status_exit_code(st);
    }
    pfgm_logger lg;
    pfgm_logger_init(&lg, comm->rank);

    pfgm_config cfg;
    st = pfgm_config_resolve(a.config, a.sets, a.n_sets, &cfg);
    if (st != PFGM_OK) {
        /* identical on every rank: rank 0 reports, all leave cleanly */
        if (comm->rank == 0) fprintf(stderr, "pfgm-train: %s\n", pfgm_error_message());
        pfgm_comm_destroy(comm);
        return pfgm_status_exit_code(st);
    }
    lg.level = cfg.logging.level;

    /* On GPUs with several ranks, the NCCL communicator picks this rank's GPU and carries
     * the collectives on device memory; `comm` keeps the host-side ones. */
    pfgm_backend *be = NULL;
    pfgm_comm *device_comm = NULL;
    int device = comm->local_rank;
    int use_cuda = cfg.distributed.backend == PFGM_BACKEND_CUDA;
    if (use_cuda && comm->world_size > 1 && !a.dry_run) st = pfgm_comm_nccl_create(comm, &device, &device_comm);
    if (st == PFGM_OK) st = pfgm_config_backend_create(&cfg, device, &be);
    /* the gradient buckets' collectives are ordered against the backend's stream by events */
    if (st == PFGM_OK && device_comm) st = pfgm_comm_nccl_set_backend(device_comm, be);
    if (st == PFGM_ERR_UNSUPPORTED && a.dry_run) {
        /* a plan needs no device: count on the CPU backend and say so */
        pfgm_log_info(&lg, "dry run: %s; planning with the CPU backend", pfgm_error_message());
        st = pfgm_backend_create("cpu", &be);
    }

    pfgm_train_result res = {0};
    if (st == PFGM_OK) {
        pfgm_train_options opt = {.run_dir = a.run_dir, .resume = a.resume, .allow_reshard = a.allow_reshard,
                                  .dry_run = a.dry_run,
                                  /* under a launcher stdout is often a pseudo-terminal even when the
                                   * job's output goes to a file: plain lines there */
                                  .progress_tty = isatty(STDOUT_FILENO) && !pfgm_comm_launched_by_mpi(),
                                  .device_comm = device_comm};
        st = pfgm_train(&cfg, &opt, comm, be, &lg, &res);
    }
    int code = pfgm_status_exit_code(st);
    if (st != PFGM_OK && st != PFGM_STOPPED) {
        pfgm_log_error(&lg, "pfgm-train: %s", pfgm_error_message());
        if (comm->world_size > 1) comm->abort(comm, code); /* never returns */
    } else if (st == PFGM_OK && !a.dry_run) {
        if (res.end_step > res.start_step)
            pfgm_log_info(&lg, "pfgm-train: done, %lld steps (%lld this run), last step's loss %.6g (mean over ranks; the progress lines show the mean over each logging interval)", (long long)res.end_step,
                          (long long)(res.end_step - res.start_step), res.last_loss);
        else
            pfgm_log_info(&lg, "pfgm-train: nothing to do, the run already has %lld of %lld steps",
                          (long long)res.end_step, (long long)cfg.training.n_iters);
    }
    pfgm_backend_destroy(be);
    pfgm_comm_destroy(device_comm);
    pfgm_comm_destroy(comm);
    return code;
}
