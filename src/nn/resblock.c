/* The BigGAN residual block of DDPM++ ("ResnetBlockBigGANpp" in layerspp.py, no FIR; spec §3.1):
 *   h = SiLU(GN_0(x)); [up: nearest 2x | down: 2x2 mean] of h and of x;
 *   h = Conv_0(h) + Dense_0(SiLU(zemb)); h = SiLU(GN_1(h)); Dropout; h = Conv_1(h);
 *   x = Conv_2(x) if in != out or up or down; out = (x + h) / sqrt(2).
 * In the up path the input is the channel concatenation [h, skip]; the block stores it once
 * (slot CAT) and its backward splits the gradient back into the two tensors. */
#include <math.h>
#include <stdio.h>

#include "pfgm/nn.h"
#include "pfgm/ops.h"
#include "util/check.h"

pfgm_status pfgm_resblock_setup(pfgm_resblock *rb, pfgm_nn_params *t, const char *prefix, int64_t in_ch,
                                int64_t skip_ch, int64_t out_ch, int64_t height, int64_t width, int up, int down,
                                float dropout, int skip_rescale, int64_t temb_dim, double init_scale,
                                uint64_t dropout_offset) {
    if (in_ch <= 0 || skip_ch < 0 || out_ch <= 0 || height <= 0 || width <= 0 || temb_dim <= 0 || (up && down) ||
        (down && (height % 2 || width % 2)) || !(dropout >= 0.0f && dropout < 1.0f))
        return pfgm_error(PFGM_ERR_INVALID_ARG,
                          "%s: residual block in=%lld skip=%lld out=%lld at %lldx%lld up=%d down=%d dropout=%g is "
                          "not valid",
                          prefix, (long long)in_ch, (long long)skip_ch, (long long)out_ch, (long long)height,
                          (long long)width, up, down, (double)dropout);
    const int64_t cin = in_ch + skip_ch;
    const int64_t oh = up ? 2 * height : down ? height / 2 : height, ow = up ? 2 * width : down ? width / 2 : width;
    *rb = (pfgm_resblock){.in_ch = in_ch, .skip_ch = skip_ch, .out_ch = out_ch, .height = height, .width = width,
                          .out_height = oh, .out_width = ow, .up = up, .down = down, .dropout = dropout,
                          .skip_rescale = skip_rescale, .has_conv2 = cin != out_ch || up || down,
                          .dropout_offset = dropout_offset};
    char name[PFGM_NN_NAME_MAX];
#define RB_NAME(leaf)                                                                              \
    do {                                                                                           \
        if (snprintf(name, sizeof name, "%s.%s", prefix, leaf) >= (int)sizeof name)                \
            return pfgm_error(PFGM_ERR_INVALID_ARG, "parameter prefix '%s' is too long", prefix); \
    } while (0)
    RB_NAME("GroupNorm_0");
    PFGM_TRY(pfgm_groupnorm_setup(&rb->gn0, t, name, cin, height * width));
    RB_NAME("Conv_0");
    PFGM_TRY(pfgm_conv2d_setup(&rb->conv0, t, name, cin, out_ch, 3, oh, ow, 1.0));
    RB_NAME("Dense_0");
    PFGM_TRY(pfgm_linear_setup(&rb->dense0, t, name, temb_dim, out_ch, 1.0));
    RB_NAME("GroupNorm_1");
    PFGM_TRY(pfgm_groupnorm_setup(&rb->gn1, t, name, out_ch, oh * ow));
    RB_NAME("Conv_1");
    PFGM_TRY(pfgm_conv2d_setup(&rb->conv1, t, name, out_ch, out_ch, 3, oh, ow, init_scale));
    if (rb->has_conv2) {
        RB_NAME("Conv_2");
        PFGM_TRY(pfgm_conv2d_setup(&rb->conv2, t, name, cin, out_ch, 1, oh, ow, 1.0));
    }
#undef RB_NAME
    const double hw2 = (double)(oh * ow);
    rb->flops = 2.0 * hw2 * (double)out_ch * (double)(9 * cin + 9 * out_ch + (rb->has_conv2 ? cin : 0)) +
                2.0 * (double)temb_dim * (double)out_ch;
    return PFGM_OK;
}

void pfgm_resblock_slots(pfgm_backend *be, const pfgm_resblock *rb, int64_t max_batch, int train,
                         pfgm_slot_spec spec[PFGM_RB_SLOTS]) {
    const int64_t cin = rb->in_ch + rb->skip_ch, hw = rb->height * rb->width, hw2 = rb->out_height * rb->out_width;
    const int resamp = rb->up || rb->down;
    const pfgm_slot_life saved = train ? PFGM_SLOT_SAVED : PFGM_SLOT_FWD_TEMP;
    const pfgm_slot_life bwd = train ? PFGM_SLOT_BWD_TEMP : PFGM_SLOT_UNUSED;
    for (int i = 0; i < PFGM_RB_SLOTS; ++i) spec[i] = (pfgm_slot_spec){0, 0, PFGM_SLOT_UNUSED};
#define SLOT(i, n, life) spec[i] = (pfgm_slot_spec){(n), 0, (life)}
    if (rb->skip_ch) SLOT(PFGM_RB_CAT, cin * hw, saved);
    SLOT(PFGM_RB_GN0, pfgm_groupnorm_stats_per_image(&rb->gn0), saved);
    SLOT(PFGM_RB_A0, cin * hw, resamp ? PFGM_SLOT_FWD_TEMP : saved);
    if (resamp) {
        SLOT(PFGM_RB_A0R, cin * hw2, saved);
        SLOT(PFGM_RB_XR, cin * hw2, saved);
    }
    SLOT(PFGM_RB_H0, rb->out_ch * hw2, saved);
    SLOT(PFGM_RB_T, rb->out_ch, PFGM_SLOT_FWD_TEMP);
    SLOT(PFGM_RB_GN1, pfgm_groupnorm_stats_per_image(&rb->gn1), saved);
    if (rb->dropout > 0.0f) SLOT(PFGM_RB_A1, rb->out_ch * hw2, PFGM_SLOT_FWD_TEMP);
    SLOT(PFGM_RB_D1, rb->out_ch * hw2, saved);
    if (rb->has_conv2) SLOT(PFGM_RB_H1, rb->out_ch * hw2, PFGM_SLOT_FWD_TEMP);
    SLOT(PFGM_RB_G1, rb->out_ch * hw2, bwd);
    SLOT(PFGM_RB_G2, rb->out_ch * hw2, bwd);
    SLOT(PFGM_RB_GT, rb->out_ch, bwd);
    SLOT(PFGM_RB_G3, cin * hw2, bwd);
    if (resamp) SLOT(PFGM_RB_G4, cin * hw, bwd);
    if (rb->skip_ch) SLOT(PFGM_RB_G5, cin * hw, bwd);
#undef SLOT
    size_t ws = 0;
    if (be) {
        size_t w0 = pfgm_conv2d_workspace(be, &rb->conv0, max_batch);
        size_t w1 = pfgm_conv2d_workspace(be, &rb->conv1, max_batch);
        size_t w2 = rb->has_conv2 ? pfgm_conv2d_workspace(be, &rb->conv2, max_batch) : 0;
        ws = w0 > w1 ? w0 : w1;
        ws = ws > w2 ? ws : w2;
    }
    spec[PFGM_RB_WS] = (pfgm_slot_spec){0, ws, ws ? (train ? PFGM_SLOT_SCRATCH : PFGM_SLOT_FWD_TEMP) : PFGM_SLOT_UNUSED};
}

static float rb_scale(const pfgm_resblock *rb) { return rb->skip_rescale ? (float)(1.0 / sqrt(2.0)) : 1.0f; }

static size_t rb_ws_bytes(pfgm_backend *be, const pfgm_resblock *rb, int64_t batch) {
    size_t w0 = pfgm_conv2d_workspace(be, &rb->conv0, batch), w1 = pfgm_conv2d_workspace(be, &rb->conv1, batch);
    size_t w2 = rb->has_conv2 ? pfgm_conv2d_workspace(be, &rb->conv2, batch) : 0;
    size_t ws = w0 > w1 ? w0 : w1;
    return ws > w2 ? ws : w2;
}

/* Nearest 2x up or 2x2 mean down of `planes` planes at the block's input resolution. */
static pfgm_status rb_resample(pfgm_backend *be, const pfgm_resblock *rb, int64_t planes, const float *x, float *y) {
    if (rb->up) return pfgm_op_upsample2x_fwd(be, planes, rb->height, rb->width, x, y);
    return pfgm_op_avgpool2x2_fwd(be, planes, rb->height, rb->width, x, y);
}

static pfgm_status rb_resample_bwd(pfgm_backend *be, const pfgm_resblock *rb, int64_t planes, const float *dy,
                                   float *dx, int acc) {
    if (rb->up) return pfgm_op_upsample2x_bwd(be, planes, rb->height, rb->width, dy, dx, acc);
    return pfgm_op_avgpool2x2_bwd(be, planes, rb->height, rb->width, dy, dx, acc);
}

pfgm_status pfgm_resblock_forward(pfgm_backend *be, const pfgm_resblock *rb, int64_t batch, const pfgm_nn_run *run,
                                  const float *x, const float *skip, const float *act_temb, float *const *slots,
                                  float *out) {
    if (batch == 0) return PFGM_OK;
    const int64_t cin = rb->in_ch + rb->skip_ch, hw = rb->height * rb->width, hw2 = rb->out_height * rb->out_width;
    const int resamp = rb->up || rb->down;
    const int drop = run && run->train && rb->dropout > 0.0f;
    void *ws = slots[PFGM_RB_WS];
    const size_t wsb = ws ? rb_ws_bytes(be, rb, batch) : 0;
    if (drop && !slots[PFGM_RB_A1])
        return pfgm_error(PFGM_ERR_INVALID_ARG, "residual block: dropout needs the A1 slot");
    const float *in = x;
    if (rb->skip_ch) {
        float *cat = slots[PFGM_RB_CAT];
        PFGM_TRY(pfgm_op_copy_channels(be, batch, hw, rb->in_ch, x, rb->in_ch, 0, cat, cin, 0, 0));
        PFGM_TRY(pfgm_op_copy_channels(be, batch, hw, rb->skip_ch, skip, rb->skip_ch, 0, cat, cin, rb->in_ch, 0));
        in = cat;
    }
    PFGM_TRY(pfgm_groupnorm_forward(be, &rb->gn0, batch, 1, in, slots[PFGM_RB_A0], slots[PFGM_RB_GN0]));
    const float *c0in = slots[PFGM_RB_A0], *xs = in;
    if (resamp) {
        PFGM_TRY(rb_resample(be, rb, batch * cin, slots[PFGM_RB_A0], slots[PFGM_RB_A0R]));
        PFGM_TRY(rb_resample(be, rb, batch * cin, in, slots[PFGM_RB_XR]));
        c0in = slots[PFGM_RB_A0R];
        xs = slots[PFGM_RB_XR];
    }
    float *h0 = slots[PFGM_RB_H0];
    PFGM_TRY(pfgm_conv2d_forward(be, &rb->conv0, batch, c0in, h0, ws, wsb));
    PFGM_TRY(pfgm_linear_forward(be, &rb->dense0, batch, act_temb, slots[PFGM_RB_T]));
    PFGM_TRY(pfgm_op_bcast_add_fwd(be, batch, rb->out_ch, hw2, slots[PFGM_RB_T], rb->out_ch, h0));
    float *d1 = slots[PFGM_RB_D1];
    const int64_t n2 = batch * rb->out_ch * hw2;
    if (drop) {
        PFGM_TRY(pfgm_groupnorm_forward(be, &rb->gn1, batch, 1, h0, slots[PFGM_RB_A1], slots[PFGM_RB_GN1]));
        PFGM_TRY(pfgm_op_dropout_fwd(be, n2, rb->dropout, &run->dropout_rng, rb->dropout_offset, slots[PFGM_RB_A1],
                                     d1));
    } else {
        PFGM_TRY(pfgm_groupnorm_forward(be, &rb->gn1, batch, 1, h0, d1, slots[PFGM_RB_GN1]));
    }
    const float s = rb_scale(rb);
    if (rb->has_conv2) {
        PFGM_TRY(pfgm_conv2d_forward(be, &rb->conv2, batch, xs, out, ws, wsb));
        PFGM_TRY(pfgm_conv2d_forward(be, &rb->conv1, batch, d1, slots[PFGM_RB_H1], ws, wsb));
        return pfgm_op_axpby(be, n2, s, slots[PFGM_RB_H1], s, out);
    }
    PFGM_TRY(pfgm_conv2d_forward(be, &rb->conv1, batch, d1, out, ws, wsb));
    return pfgm_op_axpby(be, n2, s, xs, s, out);
}

pfgm_status pfgm_resblock_backward(pfgm_backend *be, const pfgm_resblock *rb, int64_t batch, const pfgm_nn_run *run,
                                   const float *x, const float *act_temb, float *const *slots, float *dout,
                                   float *dx, int acc_dx, float *dskip, int acc_dskip, float *d_act_temb,
                                   int acc_temb) {
    if (batch == 0) return PFGM_OK;
    const int64_t cin = rb->in_ch + rb->skip_ch, hw = rb->height * rb->width, hw2 = rb->out_height * rb->out_width;
    const int resamp = rb->up || rb->down;
    const int drop = run && run->train && rb->dropout > 0.0f;
    void *ws = slots[PFGM_RB_WS];
    const size_t wsb = ws ? rb_ws_bytes(be, rb, batch) : 0;
    const int64_t n2 = batch * rb->out_ch * hw2;
    const float *in = rb->skip_ch ? slots[PFGM_RB_CAT] : x;
    const float *c0in = resamp ? slots[PFGM_RB_A0R] : slots[PFGM_RB_A0];
    const float *xs = resamp ? slots[PFGM_RB_XR] : in;
    float *g1 = slots[PFGM_RB_G1], *g2 = slots[PFGM_RB_G2], *g3 = slots[PFGM_RB_G3];

    /* out = s (skip + h): both branches receive s * dout */
    PFGM_TRY(pfgm_op_axpby(be, n2, rb_scale(rb), dout, 0.0f, dout));
    PFGM_TRY(pfgm_conv2d_backward(be, &rb->conv1, batch, slots[PFGM_RB_D1], dout, g1, 0, ws, wsb));
    if (drop) PFGM_TRY(pfgm_op_dropout_bwd(be, n2, rb->dropout, &run->dropout_rng, rb->dropout_offset, g1, g1, 0));
    PFGM_TRY(pfgm_groupnorm_backward(be, &rb->gn1, batch, 1, slots[PFGM_RB_H0], slots[PFGM_RB_GN1], g1, g2, 0));
    /* h0 = Conv_0(.) + Dense_0(SiLU(zemb)) broadcast over pixels */
    PFGM_TRY(pfgm_op_bcast_add_bwd(be, batch, rb->out_ch, hw2, g2, rb->out_ch, slots[PFGM_RB_GT], 0));
    PFGM_TRY(pfgm_linear_backward(be, &rb->dense0, batch, act_temb, slots[PFGM_RB_GT], d_act_temb, acc_temb));
    PFGM_TRY(pfgm_conv2d_backward(be, &rb->conv0, batch, c0in, g2, g3, 0, ws, wsb));

    /* gradient of the block input (the concatenation when there is a skip) */
    float *din = rb->skip_ch ? slots[PFGM_RB_G5] : dx;
    int acc_in = rb->skip_ch ? 0 : acc_dx;
    const float *ga0 = g3;
    if (resamp) {
        PFGM_TRY(rb_resample_bwd(be, rb, batch * cin, g3, slots[PFGM_RB_G4], 0));
        ga0 = slots[PFGM_RB_G4];
    }
    PFGM_TRY(pfgm_groupnorm_backward(be, &rb->gn0, batch, 1, in, slots[PFGM_RB_GN0], ga0, din, acc_in));
    if (rb->has_conv2) {
        if (resamp) {
            PFGM_TRY(pfgm_conv2d_backward(be, &rb->conv2, batch, xs, dout, g3, 0, ws, wsb));
            PFGM_TRY(rb_resample_bwd(be, rb, batch * cin, g3, din, 1));
        } else {
            PFGM_TRY(pfgm_conv2d_backward(be, &rb->conv2, batch, xs, dout, din, 1, ws, wsb));
        }
    } else {
        PFGM_TRY(pfgm_op_axpby(be, batch * cin * hw, 1.0f, dout, 1.0f, din));
    }
    if (rb->skip_ch) {
        PFGM_TRY(pfgm_op_copy_channels(be, batch, hw, rb->in_ch, din, cin, 0, dx, rb->in_ch, 0, acc_dx));
        PFGM_TRY(
            pfgm_op_copy_channels(be, batch, hw, rb->skip_ch, din, cin, rb->in_ch, dskip, rb->skip_ch, 0, acc_dskip));
    }
    return PFGM_OK;
}
