/* The self-attention block of DDPM++ ("AttnBlockpp" in layerspp.py; spec §3.1): single head,
 *   h = GN(x); q, k, v = NIN_0,1,2(h); w = softmax over the hw key positions of q.k / sqrt(C);
 *   h = NIN_3(sum_k w v); out = (x + h) / sqrt(2).
 * Per image the scores are one [hw, hw] matrix, so the block keeps the softmax weights for the
 * backward (hw^2 floats per image: 256^2 at 16x16) and uses batched gemms throughout. */
#include <math.h>
#include <stdio.h>

#include "pfgm/nn.h"
#include "pfgm/ops.h"
#include "util/check.h"

pfgm_status pfgm_attn_setup(pfgm_attn *a, pfgm_nn_params *t, const char *prefix, int64_t ch, int64_t height,
                            int64_t width, int skip_rescale, double init_scale) {
    if (ch <= 0 || height <= 0 || width <= 0)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "%s: attention over %lld channels at %lldx%lld", prefix,
                          (long long)ch, (long long)height, (long long)width);
    *a = (pfgm_attn){.ch = ch, .height = height, .width = width, .skip_rescale = skip_rescale};
    const int64_t hw = height * width;
    char name[PFGM_NN_NAME_MAX];
    if (snprintf(name, sizeof name, "%s.GroupNorm_0", prefix) >= (int)sizeof name)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "parameter prefix '%s' is too long", prefix);
    PFGM_TRY(pfgm_groupnorm_setup(&a->gn, t, name, ch, hw));
    for (int i = 0; i < 4; ++i) {
        snprintf(name, sizeof name, "%s.NIN_%d", prefix, i);
        PFGM_TRY(pfgm_nin_setup(&a->nin[i], t, name, ch, ch, hw, i < 3 ? 0.1 : init_scale));
    }
    a->flops = 4.0 * 2.0 * (double)(ch * ch * hw) + 2.0 * 2.0 * (double)(hw * hw * ch);
    return PFGM_OK;
}

void pfgm_attn_slots(const pfgm_attn *a, int train, pfgm_slot_spec spec[PFGM_ATTN_SLOTS]) {
    const int64_t hw = a->height * a->width, n = a->ch * hw;
    const pfgm_slot_life saved = train ? PFGM_SLOT_SAVED : PFGM_SLOT_FWD_TEMP;
    const pfgm_slot_life bwd = train ? PFGM_SLOT_BWD_TEMP : PFGM_SLOT_UNUSED;
    spec[PFGM_ATTN_GN] = (pfgm_slot_spec){pfgm_groupnorm_stats_per_image(&a->gn), 0, saved};
    spec[PFGM_ATTN_HN] = (pfgm_slot_spec){n, 0, saved};
    spec[PFGM_ATTN_Q] = (pfgm_slot_spec){n, 0, saved};
    spec[PFGM_ATTN_K] = (pfgm_slot_spec){n, 0, saved};
    spec[PFGM_ATTN_V] = (pfgm_slot_spec){n, 0, saved};
    spec[PFGM_ATTN_P] = (pfgm_slot_spec){hw * hw, 0, saved};
    spec[PFGM_ATTN_O] = (pfgm_slot_spec){n, 0, saved};
    spec[PFGM_ATTN_GO] = (pfgm_slot_spec){n, 0, bwd};
    spec[PFGM_ATTN_GQ] = (pfgm_slot_spec){n, 0, bwd};
    spec[PFGM_ATTN_GK] = (pfgm_slot_spec){n, 0, bwd};
    spec[PFGM_ATTN_GV] = (pfgm_slot_spec){n, 0, bwd};
    spec[PFGM_ATTN_GP] = (pfgm_slot_spec){hw * hw, 0, bwd};
    spec[PFGM_ATTN_GH] = (pfgm_slot_spec){n, 0, bwd};
}

static float attn_skip_scale(const pfgm_attn *a) { return a->skip_rescale ? (float)(1.0 / sqrt(2.0)) : 1.0f; }

pfgm_status pfgm_attn_forward(pfgm_backend *be, const pfgm_attn *a, int64_t batch, const float *x,
                              float *const *slots, float *out) {
    if (batch == 0) return PFGM_OK;
    const int64_t c = a->ch, hw = a->height * a->width, n = c * hw;
    float *hn = slots[PFGM_ATTN_HN], *q = slots[PFGM_ATTN_Q], *k = slots[PFGM_ATTN_K], *v = slots[PFGM_ATTN_V];
    float *p = slots[PFGM_ATTN_P], *o = slots[PFGM_ATTN_O];
    PFGM_TRY(pfgm_groupnorm_forward(be, &a->gn, batch, 0, x, hn, slots[PFGM_ATTN_GN]));
    PFGM_TRY(pfgm_nin_forward(be, &a->nin[0], batch, hn, q));
    PFGM_TRY(pfgm_nin_forward(be, &a->nin[1], batch, hn, k));
    PFGM_TRY(pfgm_nin_forward(be, &a->nin[2], batch, hn, v));
    /* scores_b [hw_q, hw_k] = q_b^T k_b / sqrt(C), then softmax over the keys */
    const float scale = (float)(1.0 / sqrt((double)c));
    PFGM_TRY(pfgm_op_gemm_batched(be, 1, 0, hw, hw, c, scale, q, hw, n, k, hw, n, 0.0f, p, hw, hw * hw, batch));
    PFGM_TRY(pfgm_op_softmax_rows(be, batch * hw, hw, p));
    /* o_b [C, hw_q] = v_b [C, hw_k] . w_b^T */
    PFGM_TRY(pfgm_op_gemm_batched(be, 0, 1, c, hw, hw, 1.0f, v, hw, n, p, hw, hw * hw, 0.0f, o, hw, n, batch));
    PFGM_TRY(pfgm_nin_forward(be, &a->nin[3], batch, o, out));
    const float s = attn_skip_scale(a);
    return pfgm_op_axpby(be, batch * n, s, x, s, out);
}

pfgm_status pfgm_attn_backward(pfgm_backend *be, const pfgm_attn *a, int64_t batch, const float *x,
                               float *const *slots, float *dout, float *dx, int acc) {
    if (batch == 0) return PFGM_OK;
    const int64_t c = a->ch, hw = a->height * a->width, n = c * hw;
    const float *hn = slots[PFGM_ATTN_HN], *q = slots[PFGM_ATTN_Q], *k = slots[PFGM_ATTN_K];
    const float *v = slots[PFGM_ATTN_V], *p = slots[PFGM_ATTN_P], *o = slots[PFGM_ATTN_O];
    float *go = slots[PFGM_ATTN_GO], *gq = slots[PFGM_ATTN_GQ], *gk = slots[PFGM_ATTN_GK];
    float *gv = slots[PFGM_ATTN_GV], *gp = slots[PFGM_ATTN_GP], *gh = slots[PFGM_ATTN_GH];
    const float scale = (float)(1.0 / sqrt((double)c));

    /* out = s (x + h): the identity path takes s * dout straight to dx */
    PFGM_TRY(pfgm_op_axpby(be, batch * n, attn_skip_scale(a), dout, 0.0f, dout));
    PFGM_TRY(pfgm_op_axpby(be, batch * n, 1.0f, dout, acc ? 1.0f : 0.0f, dx));
    PFGM_TRY(pfgm_nin_backward(be, &a->nin[3], batch, o, dout, go, 0));
    /* o = v w^T: dv = do . w, dw = do^T . v */
    PFGM_TRY(pfgm_op_gemm_batched(be, 0, 0, c, hw, hw, 1.0f, go, hw, n, p, hw, hw * hw, 0.0f, gv, hw, n, batch));
    PFGM_TRY(pfgm_op_gemm_batched(be, 1, 0, hw, hw, c, 1.0f, go, hw, n, v, hw, n, 0.0f, gp, hw, hw * hw, batch));
    PFGM_TRY(pfgm_op_softmax_rows_bwd(be, batch * hw, hw, p, gp));
    /* scores = scale q^T k: dq = scale k . dS^T, dk = scale q . dS */
    PFGM_TRY(pfgm_op_gemm_batched(be, 0, 1, c, hw, hw, scale, k, hw, n, gp, hw, hw * hw, 0.0f, gq, hw, n, batch));
    PFGM_TRY(pfgm_op_gemm_batched(be, 0, 0, c, hw, hw, scale, q, hw, n, gp, hw, hw * hw, 0.0f, gk, hw, n, batch));
    PFGM_TRY(pfgm_nin_backward(be, &a->nin[0], batch, hn, gq, gh, 0));
    PFGM_TRY(pfgm_nin_backward(be, &a->nin[1], batch, hn, gk, gh, 1));
    PFGM_TRY(pfgm_nin_backward(be, &a->nin[2], batch, hn, gv, gh, 1));
    return pfgm_groupnorm_backward(be, &a->gn, batch, 0, x, slots[PFGM_ATTN_GN], gh, dx, 1);
}
