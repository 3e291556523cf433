/* data.* and model.* -> the DDPM++ descriptor, and optim.* -> the optimizer's
 * hyper-parameters: the one place where the configuration chooses the network and its
 * optimizer (include/pfgm/config.h, docs/config-reference.md "model"), beside the backend
 * mapping of config_backend.c, so that nn never reads a config. */
#include <string.h>

#include "pfgm/config.h"
#include "util/check.h"

static pfgm_status cfg_require(int ok, const char *key, const char *what) {
    if (ok) return PFGM_OK;
    return pfgm_error(PFGM_ERR_CONFIG, "config: %s: %s is not supported by the DDPM++ network", key, what);
}

pfgm_status pfgm_ddpmpp_desc_from_config(const pfgm_config *cfg, pfgm_ddpmpp_desc *d) {
    const pfgm_config_model *mo = &cfg->model;
    PFGM_TRY(cfg_require(strcmp(mo->name, "ncsnpp") == 0, "model.name", mo->name));
    PFGM_TRY(cfg_require(strcmp(mo->resblock_type, "biggan") == 0, "model.resblock_type", mo->resblock_type));
    PFGM_TRY(cfg_require(!mo->fir, "model.fir", "true (FIR resampling)"));
    PFGM_TRY(cfg_require(strcmp(mo->progressive, "none") == 0, "model.progressive", mo->progressive));
    PFGM_TRY(cfg_require(strcmp(mo->progressive_input, "none") == 0, "model.progressive_input",
                         mo->progressive_input));
    PFGM_TRY(cfg_require(mo->conditional, "model.conditional", "false"));
    PFGM_TRY(cfg_require(!mo->scale_by_sigma, "model.scale_by_sigma", "true"));
    PFGM_TRY(cfg_require(strcmp(mo->nonlinearity, "swish") == 0, "model.nonlinearity", mo->nonlinearity));
    PFGM_TRY(cfg_require(strcmp(mo->normalization, "GroupNorm") == 0, "model.normalization", mo->normalization));
    PFGM_TRY(cfg_require(mo->conv_size == 3, "model.conv_size", "a value other than 3"));
    PFGM_TRY(cfg_require(mo->ch_mult.n >= 1 && mo->ch_mult.n <= PFGM_DDPMPP_MAX_LEVELS, "model.ch_mult",
                         "this number of levels"));
    PFGM_TRY(cfg_require(mo->attn_resolutions.n <= PFGM_DDPMPP_MAX_ATTN, "model.attn_resolutions",
                         "this many entries"));
    memset(d, 0, sizeof *d);
    d->image_size = cfg->data.image_size;
    d->channels = cfg->data.channels;
    d->nf = mo->nf;
    d->num_levels = (int)mo->ch_mult.n;
    for (size_t i = 0; i < mo->ch_mult.n; ++i) d->ch_mult[i] = mo->ch_mult.v[i];
    d->num_res_blocks = mo->num_res_blocks;
    d->num_attn = (int)mo->attn_resolutions.n;
    for (size_t i = 0; i < mo->attn_resolutions.n; ++i) d->attn_resolutions[i] = mo->attn_resolutions.v[i];
    d->dropout = mo->dropout;
    d->embedding_type = mo->embedding_type;
    d->fourier_scale = mo->fourier_scale;
    d->skip_rescale = mo->skip_rescale;
    d->init_scale = mo->init_scale;
    return PFGM_OK;
}

void pfgm_optim_hparams_from_config(const pfgm_config *cfg, pfgm_optim_hparams *hp) {
    const pfgm_config_optim *o = &cfg->optim;
    *hp = (pfgm_optim_hparams){.lr = o->lr, .beta1 = o->beta1, .beta2 = o->beta2, .eps = o->eps,
                               .weight_decay = o->weight_decay, .warmup = o->warmup, .grad_clip = o->grad_clip,
                               .ema_rate = cfg->model.ema_rate};
}
