/* pfgm-sample: argument parsing and wiring of the sampler (src/train/sampler.c).
 *   pfgm-sample --checkpoint CKPT.h5 --out DIR [--num N] [--seed S] [--config FILE.yaml]
 *               [--set sampling.key=value ...] [--params] [--grid G]
 * The model and sampling settings come from the config stored in the checkpoint; --config
 * replaces it (the model keys must still match the checkpoint), --set overrides keys. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pfgm/backend.h"
#include "pfgm/checkpoint.h"
#include "pfgm/config.h"
#include "pfgm/log.h"
#include "pfgm/sampler.h"

#define MAX_SETS 256

static void usage(FILE *f) {
    fprintf(f,
            "usage: pfgm-sample --checkpoint CKPT.h5 --out DIR [options]\n"
            "  --num N                   samples to draw (default 64)\n"
            "  --seed S                  prior seed (default: the run's seed)\n"
            "  --config FILE.yaml        use this config instead of the checkpoint's\n"
            "  --set section.key=value   override a key, e.g. --set sampling.ode_solver=forward_euler\n"
            "  --params                  the raw parameters instead of the EMA\n"
            "  --grid G                  at most G images in samples.png (default 64)\n"
            "writes DIR/samples.png (grid) and DIR/samples.h5 (/samples uint8 [N, C, H, W])\n"
            "exit codes: 0 ok, 2 usage/config, 3 checkpoint or output file, 4 out of memory, 5 numeric\n");
}

static int parse_i64(const char *opt, const char *s, int64_t lo, int64_t *v) {
    char *end = NULL;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || !end || *end || x < lo) {
        fprintf(stderr, "pfgm-sample: %s: expected an integer >= %lld, got '%s'\n", opt, (long long)lo, s);
        return 0;
    }
    *v = x;
    return 1;
}

int main(int argc, char **argv) {
    const char *ckpt = NULL, *out = NULL, *config = NULL;
    const char *sets[MAX_SETS];
    size_t n_sets = 0;
    int64_t num = 64, seed = -1, grid = 64;
    int use_params = 0;
    for (int i = 1; i < argc; ++i) {
        const char *s = argv[i];
        int v = i + 1 < argc;
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(s, "--checkpoint") && v) ckpt = argv[++i];
        else if (!strcmp(s, "--out") && v) out = argv[++i];
        else if (!strcmp(s, "--config") && v) config = argv[++i];
        else if (!strcmp(s, "--num") && v) {
            if (!parse_i64(s, argv[++i], 1, &num)) return 2;
        } else if (!strcmp(s, "--seed") && v) {
            if (!parse_i64(s, argv[++i], 0, &seed)) return 2;
        } else if (!strcmp(s, "--grid") && v) {
            if (!parse_i64(s, argv[++i], 1, &grid)) return 2;
        } else if (!strcmp(s, "--set") && v) {
            if (n_sets == MAX_SETS) {
                fprintf(stderr, "pfgm-sample: more than %d --set options\n", MAX_SETS);
                return 2;
            }
            sets[n_sets++] = argv[++i];
        } else if (!strcmp(s, "--params")) use_params = 1;
        else {
            fprintf(stderr, "pfgm-sample: unknown or incomplete option '%s' (see --help)\n", s);
            return 2;
        }
    }
    if (!ckpt || !out) {
        fprintf(stderr, "pfgm-sample: --checkpoint and --out are required (see --help)\n");
        return 2;
    }
    pfgm_logger lg;
    pfgm_logger_init(&lg, 0);
    pfgm_config cfg;
    pfgm_status st;
    if (config) {
        st = pfgm_config_resolve(config, sets, n_sets, &cfg);
    } else {
        pfgm_ckpt_meta meta;
        st = pfgm_ckpt_read_meta(ckpt, &meta);
        if (st == PFGM_OK) {
            st = pfgm_config_load_string(meta.config_yaml, ckpt, &cfg);
            for (size_t k = 0; st == PFGM_OK && k < n_sets; ++k) st = pfgm_config_set(&cfg, sets[k]);
            if (st == PFGM_OK) st = pfgm_config_validate(&cfg);
            pfgm_ckpt_meta_free(&meta);
        }
    }
    if (st != PFGM_OK) {
        fprintf(stderr, "pfgm-sample: %s\n", pfgm_error_message());
        return pfgm_status_exit_code(st);
    }
    lg.level = cfg.logging.level;
    pfgm_backend *be = NULL;
    st = cfg.distributed.backend == PFGM_BACKEND_CUDA ? pfgm_backend_cuda_create(0, &be) : pfgm_backend_create("cpu", &be);
    pfgm_sample_result res;
    if (st == PFGM_OK) {
        pfgm_sample_options o = {.checkpoint = ckpt, .out_dir = out, .num_samples = num, .use_params = use_params,
                                 .seed = (uint32_t)(seed >= 0 ? seed : cfg.seed), .grid_max = grid};
        st = pfgm_sample(&cfg, &o, be, &lg, &res);
    }
    if (st != PFGM_OK) fprintf(stderr, "pfgm-sample: %s\n", pfgm_error_message());
    else
        pfgm_log_info(&lg, "pfgm-sample: %lld samples in %.1f s, mean NFE %.1f per batch; wrote %s/samples.png and %s/samples.h5",
                      (long long)res.samples, res.seconds, res.mean_nfe, out, out);
    pfgm_backend_destroy(be);
    return pfgm_status_exit_code(st);
}
