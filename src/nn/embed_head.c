/* The two ends of DDPM++ (spec §3.1, §3.2 steps 0 and 11, §1.6): the z embedding with its
 * MLP, and the PFGM head that turns the last feature map into the x-field (C channels) and the
 * z-field (spatial mean of one extra channel). */
#include <stdio.h>

#include "pfgm/nn.h"
#include "pfgm/ops.h"
#include "util/check.h"

/* ---- z embedding ---------------------------------------------------------------------- */

pfgm_status pfgm_zembed_setup(pfgm_zembed *m, pfgm_nn_params *t, int *module, pfgm_embedding_type type, int64_t nf,
                              double fourier_scale) {
    if (nf < 4 || nf % 2)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "z embedding: nf = %lld must be even and at least 4", (long long)nf);
    *m = (pfgm_zembed){.type = type, .nf = nf, .temb_dim = 4 * nf};
    char name[PFGM_NN_NAME_MAX];
    if (type == PFGM_EMBEDDING_FOURIER) {
        /* GaussianFourierProjection(embedding_size = nf, scale): W ~ N(0, scale^2), fixed */
        const int64_t s[1] = {nf};
        snprintf(name, sizeof name, "all_modules.%d.W", (*module)++);
        PFGM_TRY(pfgm_nn_params_add(t, name, 1, s, 0, PFGM_INIT_NORMAL, fourier_scale, &m->fourier_w, NULL));
        m->emb_dim = 2 * nf;
    } else {
        m->emb_dim = nf;
    }
    snprintf(name, sizeof name, "all_modules.%d", (*module)++);
    PFGM_TRY(pfgm_linear_setup(&m->dense0, t, name, m->emb_dim, m->temb_dim, 1.0));
    snprintf(name, sizeof name, "all_modules.%d", (*module)++);
    PFGM_TRY(pfgm_linear_setup(&m->dense1, t, name, m->temb_dim, m->temb_dim, 1.0));
    m->flops = 2.0 * (double)(m->emb_dim * m->temb_dim + m->temb_dim * m->temb_dim);
    return PFGM_OK;
}

void pfgm_zembed_slots(const pfgm_zembed *m, int train, pfgm_slot_spec spec[PFGM_ZEMB_SLOTS]) {
    const pfgm_slot_life saved = train ? PFGM_SLOT_SAVED : PFGM_SLOT_FWD_TEMP;
    const pfgm_slot_life bwd = train ? PFGM_SLOT_BWD_TEMP : PFGM_SLOT_UNUSED;
    const int64_t t = m->temb_dim, g2 = m->emb_dim > t ? m->emb_dim : t;
    spec[PFGM_ZEMB_EMB] = (pfgm_slot_spec){m->emb_dim, 0, saved};
    spec[PFGM_ZEMB_T1] = (pfgm_slot_spec){t, 0, saved};
    spec[PFGM_ZEMB_A1] = (pfgm_slot_spec){t, 0, saved};
    spec[PFGM_ZEMB_TEMB] = (pfgm_slot_spec){t, 0, saved};
    spec[PFGM_ZEMB_G1] = (pfgm_slot_spec){t, 0, bwd};
    spec[PFGM_ZEMB_G2] = (pfgm_slot_spec){g2, 0, bwd};
}

static int64_t zembed_half(const pfgm_zembed *m) { return m->type == PFGM_EMBEDDING_FOURIER ? m->nf : m->nf / 2; }

pfgm_status pfgm_zembed_forward(pfgm_backend *be, const pfgm_zembed *m, int64_t batch, const float *z,
                                float *const *slots, float *act_temb) {
    if (batch == 0) return PFGM_OK;
    const int64_t t = m->temb_dim;
    PFGM_TRY(pfgm_op_zembed_fwd(be, batch, zembed_half(m), m->type == PFGM_EMBEDDING_FOURIER, z, m->fourier_w,
                                slots[PFGM_ZEMB_EMB]));
    PFGM_TRY(pfgm_linear_forward(be, &m->dense0, batch, slots[PFGM_ZEMB_EMB], slots[PFGM_ZEMB_T1]));
    PFGM_TRY(pfgm_op_silu_fwd(be, batch * t, slots[PFGM_ZEMB_T1], slots[PFGM_ZEMB_A1]));
    PFGM_TRY(pfgm_linear_forward(be, &m->dense1, batch, slots[PFGM_ZEMB_A1], slots[PFGM_ZEMB_TEMB]));
    /* every residual block applies SiLU to zemb before its Dense_0: do it once here */
    return pfgm_op_silu_fwd(be, batch * t, slots[PFGM_ZEMB_TEMB], act_temb);
}

pfgm_status pfgm_zembed_backward(pfgm_backend *be, const pfgm_zembed *m, int64_t batch, const float *z,
                                 float *const *slots, const float *act_temb, const float *d_act_temb, float *dz,
                                 int accumulate) {
    if (batch == 0) return PFGM_OK;
    (void)act_temb;
    const int64_t t = m->temb_dim;
    float *g1 = slots[PFGM_ZEMB_G1], *g2 = slots[PFGM_ZEMB_G2];
    PFGM_TRY(pfgm_op_silu_bwd(be, batch * t, slots[PFGM_ZEMB_TEMB], d_act_temb, g1, 0));
    PFGM_TRY(pfgm_linear_backward(be, &m->dense1, batch, slots[PFGM_ZEMB_A1], g1, g2, 0));
    PFGM_TRY(pfgm_op_silu_bwd(be, batch * t, slots[PFGM_ZEMB_T1], g2, g1, 0));
    PFGM_TRY(pfgm_linear_backward(be, &m->dense0, batch, slots[PFGM_ZEMB_EMB], g1, dz ? g2 : NULL, 0));
    if (!dz) return PFGM_OK;
    return pfgm_op_zembed_bwd(be, batch, zembed_half(m), m->type == PFGM_EMBEDDING_FOURIER, z, m->fourier_w, g2, dz,
                              accumulate);
}

/* ---- PFGM head ------------------------------------------------------------------------ */

pfgm_status pfgm_head_setup(pfgm_head *h, pfgm_nn_params *t, int *module, int64_t in_ch, int64_t channels,
                            int64_t height, int64_t width, double init_scale) {
    if (channels <= 0)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "PFGM head: %lld data channels", (long long)channels);
    *h = (pfgm_head){.in_ch = in_ch, .channels = channels, .height = height, .width = width};
    char name[PFGM_NN_NAME_MAX];
    snprintf(name, sizeof name, "all_modules.%d", (*module)++);
    PFGM_TRY(pfgm_groupnorm_setup(&h->gn, t, name, in_ch, height * width));
    snprintf(name, sizeof name, "all_modules.%d", (*module)++);
    PFGM_TRY(pfgm_conv2d_setup(&h->conv, t, name, in_ch, channels + 1, 3, height, width, init_scale));
    h->flops = 2.0 * (double)(height * width) * (double)((channels + 1) * in_ch * 9);
    return PFGM_OK;
}

void pfgm_head_slots(pfgm_backend *be, const pfgm_head *h, int64_t max_batch, int train,
                     pfgm_slot_spec spec[PFGM_HEAD_SLOTS]) {
    const int64_t hw = h->height * h->width;
    const pfgm_slot_life saved = train ? PFGM_SLOT_SAVED : PFGM_SLOT_FWD_TEMP;
    const pfgm_slot_life bwd = train ? PFGM_SLOT_BWD_TEMP : PFGM_SLOT_UNUSED;
    spec[PFGM_HEAD_GN] = (pfgm_slot_spec){pfgm_groupnorm_stats_per_image(&h->gn), 0, saved};
    spec[PFGM_HEAD_A] = (pfgm_slot_spec){h->in_ch * hw, 0, saved};
    spec[PFGM_HEAD_H] = (pfgm_slot_spec){(h->channels + 1) * hw, 0, PFGM_SLOT_FWD_TEMP};
    size_t ws = be ? pfgm_conv2d_workspace(be, &h->conv, max_batch) : 0;
    spec[PFGM_HEAD_WS] =
        (pfgm_slot_spec){0, ws, ws ? (train ? PFGM_SLOT_SCRATCH : PFGM_SLOT_FWD_TEMP) : PFGM_SLOT_UNUSED};
    spec[PFGM_HEAD_GH] = (pfgm_slot_spec){(h->channels + 1) * hw, 0, bwd};
    spec[PFGM_HEAD_GA] = (pfgm_slot_spec){h->in_ch * hw, 0, bwd};
}

pfgm_status pfgm_head_forward(pfgm_backend *be, const pfgm_head *h, int64_t batch, const float *x,
                              float *const *slots, float *net_x, float *net_z) {
    if (batch == 0) return PFGM_OK;
    const int64_t hw = h->height * h->width, co = h->channels + 1;
    void *ws = slots[PFGM_HEAD_WS];
    const size_t wsb = ws ? pfgm_conv2d_workspace(be, &h->conv, batch) : 0;
    PFGM_TRY(pfgm_groupnorm_forward(be, &h->gn, batch, 1, x, slots[PFGM_HEAD_A], slots[PFGM_HEAD_GN]));
    PFGM_TRY(pfgm_conv2d_forward(be, &h->conv, batch, slots[PFGM_HEAD_A], slots[PFGM_HEAD_H], ws, wsb));
    PFGM_TRY(pfgm_op_copy_channels(be, batch, hw, h->channels, slots[PFGM_HEAD_H], co, 0, net_x, h->channels, 0, 0));
    return pfgm_op_channel_mean_fwd(be, batch, co, hw, h->channels, slots[PFGM_HEAD_H], net_z);
}

pfgm_status pfgm_head_backward(pfgm_backend *be, const pfgm_head *h, int64_t batch, const float *x,
                               float *const *slots, const float *dnet_x, const float *dnet_z, float *dx, int acc) {
    if (batch == 0) return PFGM_OK;
    const int64_t hw = h->height * h->width, co = h->channels + 1;
    void *ws = slots[PFGM_HEAD_WS];
    const size_t wsb = ws ? pfgm_conv2d_workspace(be, &h->conv, batch) : 0;
    float *gh = slots[PFGM_HEAD_GH], *ga = slots[PFGM_HEAD_GA];
    PFGM_TRY(pfgm_op_copy_channels(be, batch, hw, h->channels, dnet_x, h->channels, 0, gh, co, 0, 0));
    PFGM_TRY(pfgm_op_channel_mean_bwd(be, batch, co, hw, h->channels, dnet_z, gh, 0));
    PFGM_TRY(pfgm_conv2d_backward(be, &h->conv, batch, slots[PFGM_HEAD_A], gh, ga, 0, ws, wsb));
    return pfgm_groupnorm_backward(be, &h->gn, batch, 1, x, slots[PFGM_HEAD_GN], ga, dx, acc);
}
