/* Run configuration: the typed struct every subsystem reads, loaded from YAML through
 * libyaml with the authors' key names (PFGM_SPEC.md §2), overridden by `--set key=value`,
 * validated, and written back as YAML (into the run directory and every checkpoint).
 * docs/config-reference.md lists every key with its type, default, range and meaning.
 *
 * Error rules (all errors are one line "ORIGIN:LINE: section.key: what is wrong"; status
 * PFGM_ERR_CONFIG unless stated): unknown key (with a "did you mean" hint), duplicate key at
 * any depth, wrong type (a quoted "1e-4" in a numeric field, yes/no/on/off in a boolean
 * field, a scalar where a list is expected), out-of-range value (single-key ranges and the
 * cross-field checks of pfgm_config_validate), a value the authors' code accepts but pfgm does
 * not implement (e.g. model.fir: true; the message says "not supported"), a value of an inert
 * key other than the authors' (model.resamp_with_conv, model.fir_kernel: "would change
 * nothing"), any value of a key pfgm does not implement yet (training.eval_freq, eval.*: "not
 * implemented yet"; such keys have no field here), an empty file, a YAML syntax error. A
 * missing or unreadable file is PFGM_ERR_IO. No accepted key is ignored. */
#ifndef PFGM_CONFIG_H
#define PFGM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pfgm/backend.h"
#include "pfgm/ddpmpp.h"
#include "pfgm/log.h"
#include "pfgm/optim.h"
#include "pfgm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PFGM_CONFIG_PATH_MAX 1024 /* bytes, including the NUL, of path-valued keys */
#define PFGM_CONFIG_NAME_MAX 64   /* bytes, including the NUL, of name-valued keys */
#define PFGM_CONFIG_LIST_MAX 8    /* entries of an integer-list key (ch_mult, ...) */

/* An integer list such as model.ch_mult = [1, 2, 2, 2]: v[0..n-1] used, the rest zero. */
typedef struct pfgm_int_list {
    size_t n;
    int64_t v[PFGM_CONFIG_LIST_MAX];
} pfgm_int_list;

/* model.embedding_type is the network's pfgm_embedding_type (pfgm/nn.h): positional or Fourier. */

/* sampling.ode_solver (PFGM_SPEC.md §1.9 a-c). */
typedef enum {
    PFGM_SOLVER_RK45 = 0,
    PFGM_SOLVER_FORWARD_EULER = 1,
    PFGM_SOLVER_IMPROVED_EULER = 2
} pfgm_config_solver;

/* sampling.rk45_step_control: one RK45 step size for the whole batch (the authors', §1.9 a)
 * or one per sample (pfgm's variant, §3.6; include/pfgm/ode.h). */
typedef enum { PFGM_STEP_BATCH = 0, PFGM_STEP_PER_SAMPLE = 1 } pfgm_config_step_control;

/* field.reference (DESIGN.md "What runs"): charges of this rank only, or all-gathered. */
typedef enum { PFGM_FIELD_LOCAL = 0, PFGM_FIELD_GLOBAL = 1 } pfgm_field_reference;

typedef struct pfgm_config_data {
    char path[PFGM_CONFIG_PATH_MAX];    /* HDF5 dataset file written by pfgm-prep */
    char dataset[PFGM_CONFIG_NAME_MAX]; /* label only ("CIFAR10", "fashion_mnist") */
    int64_t image_size;                 /* H = W, pixels */
    int64_t channels;                   /* C: 1 or 3 */
    bool random_flip;                   /* random horizontal flip in training (§1.12) */
    bool centered;                      /* data scaled to [-1, 1] (§1.12); must be true */
    int64_t block_images;               /* rows per block of the streaming reader; 0: the
                                           file's chunk rows (docs/data-format.md) */
    int64_t shuffle_window;             /* shuffle window in blocks (K) */
    int64_t cache_mb;                   /* reader cache per rank, MiB (2^20 bytes) */
    bool prefetch;                      /* read the next batch in a thread while training */
} pfgm_config_data;

typedef struct pfgm_config_model {
    char name[PFGM_CONFIG_NAME_MAX];          /* "ncsnpp" (the DDPM++/NCSN++ class, §3) */
    double sigma_end;                         /* σ of the z⁰ draw in the perturbation (§1.4) */
    int64_t nf;                               /* base channel count */
    pfgm_int_list ch_mult;                    /* channel multiplier per resolution level */
    int64_t num_res_blocks;                   /* residual blocks per level */
    pfgm_int_list attn_resolutions;           /* resolutions (pixels) that get attention */
    double dropout;                           /* dropout probability in residual blocks */
    pfgm_embedding_type embedding_type;       /* z embedding (§1.6, §3.1) */
    double fourier_scale;                     /* std of the fixed Fourier weights (§3.1) */
    double ema_rate;                          /* EMA decay (§1.13), in [0, 1) */
    char resblock_type[PFGM_CONFIG_NAME_MAX]; /* "biggan" */
    bool skip_rescale;                        /* residual/attention outputs scaled by 1/√2 */
    double init_scale;                        /* init scale of the zero-init convs (§3.4) */
    int64_t conv_size;                        /* 3 */
    bool resamp_with_conv;                    /* true only: inert in the BigGAN network */
    bool fir;                                 /* FIR resampling; only false is supported */
    pfgm_int_list fir_kernel;                 /* [1, 3, 3, 1] only: inert while fir is false */
    char progressive[PFGM_CONFIG_NAME_MAX];         /* "none" */
    char progressive_input[PFGM_CONFIG_NAME_MAX];   /* "none" */
    char progressive_combine[PFGM_CONFIG_NAME_MAX]; /* "sum" */
    char attention_type[PFGM_CONFIG_NAME_MAX];      /* "ddpm" */
    char normalization[PFGM_CONFIG_NAME_MAX];       /* "GroupNorm" */
    char nonlinearity[PFGM_CONFIG_NAME_MAX];        /* "swish" (SiLU) */
    bool scale_by_sigma;                      /* must be false for PFGM (§1.6) */
    bool conditional;                         /* network conditioned on z; must be true */
} pfgm_config_model;

typedef struct pfgm_config_training {
    char sde[PFGM_CONFIG_NAME_MAX];       /* "poisson" */
    int64_t batch_size;                   /* large batch L: the reference charges (§1.2) */
    int64_t small_batch_size;             /* small batch B: perturbed points, ≤ batch_size */
    int64_t n_iters;                      /* training steps */
    int64_t snapshot_freq;                /* checkpoint + samples every this many steps */
    int64_t snapshot_freq_for_preemption; /* "latest" checkpoint every this many steps */
    int64_t log_freq;                     /* metrics line every this many steps */
    int64_t max_skipped;                  /* abort after this many non-finite steps in a row */
    int64_t M;                            /* perturbation exponent range m ~ U[0, M) (§1.4) */
    double tau;                           /* multiplier base: (1+τ)^m (§1.4) */
    double gamma;                         /* target normalisation √N·E/(‖E‖+γ) (§1.3) */
    bool restrict_M;                      /* redraw m in [0, int(0.7M)) near z = 0 (§1.4) */
    bool reduce_mean;                     /* loss: mean over N+1 dims (true) or 0.5·sum (§1.5) */
} pfgm_config_training;

typedef struct pfgm_config_sampling {
    char method[PFGM_CONFIG_NAME_MAX]; /* "ode" */
    pfgm_config_solver ode_solver;        /* §1.9 */
    int64_t N;                         /* Euler/Heun steps (not the data dimension) */
    double z_max;                      /* prior hyperplane z (§1.7) */
    double z_min;                      /* ODE end point ε (§1.10) */
    double upper_norm;                 /* prior radius clip (§1.7) */
    double z_exp;                      /* z below which v_z is substituted (§1.8) */
    double rk45_rtol;                  /* RK45 tolerances (§1.9 a) */
    double rk45_atol;
    pfgm_config_step_control rk45_step_control; /* batch (default) or per_sample; rk45 only */
    int64_t batch_size;                /* samples per ODE solve */
    int64_t max_nfe;                   /* network evaluations allowed per batch; 0 = no cap */
} pfgm_config_sampling;

typedef struct pfgm_config_optim {
    char optimizer[PFGM_CONFIG_NAME_MAX]; /* "Adam" */
    double lr;                            /* peak learning rate lr₀ (§1.13) */
    double beta1, beta2, eps;             /* Adam */
    double weight_decay;
    int64_t warmup;                       /* linear warmup steps; 0 = none */
    double grad_clip;                     /* global L2 norm clip; 0 = no clipping */
} pfgm_config_optim;

typedef struct pfgm_config_field {
    pfgm_field_reference reference; /* local: this rank's charges; global: all-gathered */
} pfgm_config_field;

typedef struct pfgm_config_checkpoint {
    int64_t keep_last;  /* newest checkpoints kept (≥ 1) */
    int64_t keep_every; /* also keep every checkpoint whose step is a multiple; 0 = none */
} pfgm_config_checkpoint;

typedef struct pfgm_config_distributed {
    pfgm_backend_kind backend; /* "cpu" or "cuda" */
    bool allow_tf32;           /* cuBLAS GEMMs may use TF32 inputs (CUDA backend; fp32 on the CPU) */
    bool bf16;                 /* refused when true: bf16 GEMMs/convs are not implemented */
    double bucket_mb;          /* gradient bucket size in MiB; 0: one all-reduce after backward */
    int64_t zero;              /* 1: ZeRO-1, optimizer state sharded over ranks; 0: replicated */
} pfgm_config_distributed;

typedef struct pfgm_config_logging {
    pfgm_log_level level;                 /* "debug", "info", "warn", "error" */
    char metrics[PFGM_CONFIG_PATH_MAX];   /* JSON-lines file name, relative to the run dir */
} pfgm_config_logging;

/* The whole configuration. A plain value type: copy it with `=`. Produced only by
 * pfgm_config_defaults/load/set, which zero every unused byte, so two configs with equal
 * values are also memcmp-equal. */
typedef struct pfgm_config {
    pfgm_config_data data;
    pfgm_config_model model;
    pfgm_config_training training;
    pfgm_config_sampling sampling;
    pfgm_config_optim optim;
    /* eval (eval.batch_size, eval.num_samples) and training.eval_freq: refused until
     * evaluation is implemented */
    pfgm_config_field field;
    pfgm_config_checkpoint checkpoint;
    pfgm_config_distributed distributed;
    pfgm_config_logging logging;
    int64_t seed; /* run seed, 0 .. 2^32-1 (the Philox key, rng.h) */
} pfgm_config;

/* Fills *cfg with the defaults: the authors' CIFAR-10 DDPM++ values (PFGM_SPEC.md §2,
 * column cifar10_ddpmpp) plus pfgm's own keys (field, checkpoint, distributed, logging).
 * Never fails. */
void pfgm_config_defaults(pfgm_config *cfg);

/* Reads the YAML file `path` through libyaml and applies it on top of the defaults, then
 * runs the cross-field checks. On success *cfg holds the result; on failure *cfg is left
 * unchanged. Errors: PFGM_ERR_IO (missing/unreadable file), PFGM_ERR_CONFIG (every rule in
 * this header's opening comment, message "path:line: key: ..."). */
pfgm_status pfgm_config_load(const char *path, pfgm_config *cfg);

/* As pfgm_config_load, for YAML text held in memory (the config embedded in a checkpoint);
 * `origin_name` stands for the file name in messages. One difference: the keys not
 * implemented yet (training.eval_freq, eval.*) are read and dropped instead of refused, since
 * an earlier pfgm wrote them into every checkpoint. */
pfgm_status pfgm_config_load_string(const char *text, const char *origin_name, pfgm_config *cfg);

/* What a binary does with `--config PATH --set A --set B ...`: defaults, then the file
 * (path may be NULL: defaults only), then each assignment in order, then one validation, so
 * a file may rely on an override to become consistent. Cross-field errors name the line of
 * the file or "--set" where the offending key was given. *cfg unchanged on failure. */
pfgm_status pfgm_config_resolve(const char *path, const char *const *sets, size_t n_sets,
                                pfgm_config *cfg);

/* Applies one `section.key=value` (or `seed=value`) to *cfg with the file's typing rules;
 * value is YAML parsed by libyaml, so lists are written `[1,2,2,2]` and `"..."` quotes a
 * string. Checks the key's own range, not cross-field rules: call pfgm_config_validate after
 * the last assignment. *cfg unchanged on failure. Errors: PFGM_ERR_CONFIG
 * ("--set: key: ..."), PFGM_ERR_INVALID_ARG for NULL arguments. */
pfgm_status pfgm_config_set(pfgm_config *cfg, const char *assignment);

/* Single-key ranges and cross-field checks (small_batch_size ≤ batch_size, z_min < z_max,
 * image_size divisible by 2^(len(ch_mult)-1), attention resolutions that exist, GroupNorm
 * group counts, ...). Errors: PFGM_ERR_CONFIG, "config: key: ...". */
pfgm_status pfgm_config_validate(const pfgm_config *cfg);

/* The resolved config as YAML text (libyaml emitter): every key of the struct, none of those
 * not implemented yet; NUL-terminated, malloc'ed: release with free(). Re-reading it with
 * pfgm_config_load_string gives a config equal to *cfg (floats are written with the fewest
 * digits that read back to the same double). *len (may be NULL) gets strlen. Errors:
 * PFGM_ERR_NOMEM, PFGM_ERR_YAML. */
pfgm_status pfgm_config_to_yaml_string(const pfgm_config *cfg, char **text, size_t *len);

/* Writes the YAML text to `path` through a temporary file in the same directory that is
 * flushed, fsynced and renamed, so a failure leaves no file behind. Errors: PFGM_ERR_IO
 * naming the path, and those of pfgm_config_to_yaml_string. */
pfgm_status pfgm_config_write_yaml(const pfgm_config *cfg, const char *path);

/* True when every key of a equals that of b (what a write/read round trip must preserve). */
bool pfgm_config_equal(const pfgm_config *a, const pfgm_config *b);

/* Data dimension N = channels · image_size² (PFGM_SPEC.md "Notation"): 784 for
 * Fashion-MNIST, 3072 for CIFAR-10. Not to be confused with sampling.N. */
int64_t pfgm_config_data_dim(const pfgm_config *cfg);

/* The backend that distributed.* names, the one mapping of those keys (pfgm-train, pfgm-sample
 * and the benchmarks): distributed.backend cpu -> the OpenBLAS/OpenMP backend; cuda -> the
 * CUDA backend on `device` (an index into the visible devices) with cuBLAS in TF32 math when
 * distributed.allow_tf32 is true, else fp32. allow_tf32 has no effect on the CPU backend (it
 * has no TF32); distributed.bf16 is refused by the config reader. Errors: those of
 * pfgm_backend_cpu_create and pfgm_backend_cuda_create. */
pfgm_status pfgm_config_backend_create(const pfgm_config *cfg, int device, pfgm_backend **out);

/* The network that data.* and model.* describe, the one mapping of those keys onto the DDPM++
 * descriptor (pfgm-train, pfgm-sample, the benchmarks; src/io/config_model.c): image_size and
 * channels from data, the rest from model. Errors: PFGM_ERR_CONFIG naming the key when the
 * config asks for what this network does not build (model.name other than ncsnpp,
 * resblock_type other than biggan, fir, progressive paths, conditional false, scale_by_sigma,
 * nonlinearity other than swish, normalization other than GroupNorm, conv_size other than 3,
 * too many ch_mult or attn_resolutions entries). Shapes are checked later, by
 * pfgm_ddpmpp_desc_validate. */
pfgm_status pfgm_ddpmpp_desc_from_config(const pfgm_config *cfg, pfgm_ddpmpp_desc *d);

/* optim.* and model.ema_rate -> the optimizer's hyper-parameters (include/pfgm/optim.h):
 * the one mapping, used by the training step. Never fails (the reader checked the ranges). */
void pfgm_optim_hparams_from_config(const pfgm_config *cfg, pfgm_optim_hparams *hp);

/* The YAML name of a solver ("rk45", "forward_euler", "improved_euler"; "?" out of range). */
const char *pfgm_config_solver_name(pfgm_config_solver s);

#ifdef __cplusplus
}
#endif
#endif /* PFGM_CONFIG_H */
