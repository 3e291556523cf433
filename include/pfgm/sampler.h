/* Sampling from a trained model (pfgm-sample): the EMA weights of a checkpoint, the
 * hemisphere prior on z = z_max (spec §1.7), the backward ODE through the network
 * (spec §1.8-1.9), and the images as a PNG grid and an HDF5 samples file (spec §1.10). */
#ifndef PFGM_SAMPLER_H
#define PFGM_SAMPLER_H

#include <stdint.h>

#include "pfgm/backend.h"
#include "pfgm/config.h"
#include "pfgm/log.h"
#include "pfgm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pfgm_sample_options {
    const char *checkpoint; /* checkpoint file (its /ema or /params group) */
    const char *out_dir;    /* writes samples.png (grid) and samples.h5 there */
    int64_t num_samples;    /* total samples; drawn in batches of sampling.batch_size */
    int use_params;         /* 1: the raw parameters instead of the EMA (debugging) */
    uint32_t seed;          /* keys the prior draws: batch i uses {seed, 0, PRIOR, i} */
    int64_t grid_max;       /* at most this many images in the PNG grid */
} pfgm_sample_options;

typedef struct pfgm_sample_result {
    int64_t samples;
    double mean_nfe;        /* network evaluations per batch, averaged */
    int64_t rho_guard;      /* z_exp rows clamped (docs/numerics.md) */
    double seconds;
} pfgm_sample_result;

/* Draws o->num_samples samples with the sampling section of cfg (normally the checkpoint's
 * config with the user's overrides) on backend be. Errors: PFGM_ERR_IO / PFGM_ERR_FORMAT
 * (checkpoint, outputs), PFGM_ERR_CONFIG (model shape vs checkpoint), PFGM_ERR_NUMERIC
 * (ODE), PFGM_ERR_NOMEM, the backend's. Outputs are written atomically. */
pfgm_status pfgm_sample(const pfgm_config *cfg, const pfgm_sample_options *o, pfgm_backend *be,
                        const pfgm_logger *lg, pfgm_sample_result *res);

#ifdef __cplusplus
}
#endif
#endif
