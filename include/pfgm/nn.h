/* Network building blocks of DDPM++ with explicit forward and backward passes, written once
 * against the backend interface (backend.h "network layers"), and the parameter table that
 * holds every parameter in one contiguous buffer and every gradient in another, under the
 * authors' state_dict names (PFGM_SPEC.md §3; docs/model.md).
 *
 * Conventions (all layers):
 *   - activations are NCHW float32 in backend memory: x [batch, channels, height, width];
 *   - parameters use PyTorch's layouts: conv weight [out, in, k, k], Linear weight [out, in],
 *     NIN weight [in, out] (layerspp.NIN), GroupNorm weight/bias [channels];
 *   - backward() ADDS parameter gradients into the gradient buffer (zero it once per step with
 *     pfgm_nn_params_zero_grad) and writes (accumulate = 0) or adds (accumulate = 1) the
 *     gradient of each input, so several consumers of one tensor can sum their parts;
 *   - composite layers (embedding, residual block, attention, head) keep what their backward
 *     needs in caller-provided "slots" (pfgm_slot_spec gives each slot's size and lifetime), so
 *     a model plans all of them in one arena and nothing is allocated in a step;
 *   - every call returns pfgm_status; shape errors are PFGM_ERR_INVALID_ARG with a message
 *     naming the layer. */
#ifndef PFGM_NN_H
#define PFGM_NN_H

#include <stddef.h>
#include <stdint.h>

#include "pfgm/backend.h"
#include "pfgm/rng.h"
#include "pfgm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================================
 * Parameter table
 * ====================================================================================== */

#define PFGM_NN_NAME_MAX 96 /* bytes of a parameter name, NUL included */
#define PFGM_NN_MAX_DIMS 4

/* The z embedding (PFGM_SPEC.md §3.1): sinusoidal of raw z, or Fourier features of ln z
 * [model.embedding_type]. */
typedef enum { PFGM_EMBEDDING_POSITIONAL = 0, PFGM_EMBEDDING_FOURIER = 1 } pfgm_embedding_type;

/* Initialisers of spec §3.4 (models/layers.py). */
typedef enum {
    PFGM_INIT_DEFAULT = 0, /* default_init(scale): U(-a, a), a = sqrt(3 scale / fan_avg); scale 0 -> 1e-10 */
    PFGM_INIT_ZEROS = 1,   /* biases */
    PFGM_INIT_ONES = 2,    /* GroupNorm weights */
    PFGM_INIT_NORMAL = 3   /* N(0, scale^2): the fixed Gaussian Fourier weights */
} pfgm_init_kind;

typedef struct pfgm_nn_param {
    char name[PFGM_NN_NAME_MAX]; /* authors' state_dict name, e.g. "all_modules.3.Conv_0.weight" */
    int ndim;
    int64_t shape[PFGM_NN_MAX_DIMS];
    int64_t count;  /* elements */
    int64_t offset; /* first element in the value and gradient buffers (set by layout) */
    int trainable;  /* 0: fixed (Fourier W): no gradient, no optimizer, no EMA (spec §1.13) */
    pfgm_init_kind init;
    double init_scale;
    float **bind_value, **bind_grad; /* layer fields pointed at the buffers by alloc */
} pfgm_nn_param;

/* All parameters of a network. Zero-initialise (`pfgm_nn_params t = {0};`), register with the
 * layers' setup functions, then pfgm_nn_params_alloc (or only pfgm_nn_params_layout for a plan
 * without memory). Buffer layout: trainable parameters first, in registration order, then the
 * fixed ones, each starting on a 16-float (64-byte) boundary; padding is zero in both buffers
 * and stays zero under any elementwise optimizer, so norms and all-reduces may run over
 * [0, trainable_floats) as one flat vector. */
typedef struct pfgm_nn_params {
    pfgm_nn_param *items;
    int n, cap;
    int64_t count;            /* parameters (elements), fixed ones included: the authors' count */
    int64_t trainable_count;  /* trainable elements */
    int64_t floats;           /* length of the value and gradient buffers, padding included */
    int64_t trainable_floats; /* the trainable prefix of the buffers */
    int64_t prefix_multiple;  /* set before the layout (0: none): trainable_floats is padded
                               * up to a multiple of it, so that the prefix splits into equal
                               * shards and gradient buckets (src/train/grad_sync.c) */
    pfgm_backend *be;         /* owner of the buffers (NULL until alloc) */
    float *value, *grad;      /* backend memory, `floats` each */
} pfgm_nn_params;

/* Registers a parameter (shape given in PyTorch order). value/grad (may be NULL) are the layer
 * fields that alloc points at the parameter's place in the buffers. Errors:
 * PFGM_ERR_INVALID_ARG (name too long, duplicate, bad shape), PFGM_ERR_NOMEM. */
pfgm_status pfgm_nn_params_add(pfgm_nn_params *t, const char *name, int ndim, const int64_t *shape, int trainable,
                               pfgm_init_kind init, double init_scale, float **value, float **grad);
/* Assigns offsets and the counts; no memory. Idempotent. */
void pfgm_nn_params_layout(pfgm_nn_params *t);
/* Layout, then one value and one gradient buffer from `be` (both zeroed), and binds the
 * layers' fields. Errors: PFGM_ERR_NOMEM. */
pfgm_status pfgm_nn_params_alloc(pfgm_nn_params *t, pfgm_backend *be);
/* Initialises every value as spec §3.4 from the Philox stream PFGM_STREAM_INIT keyed by
 * (seed, rank 0, step 0): element e of the value buffer uses stream element offset + e, so
 * the draw depends only on the seed and the layout (identical on every rank). Computed on the
 * host in float32 and uploaded. Errors: PFGM_ERR_NOMEM, the backend's copy errors. */
pfgm_status pfgm_nn_params_initialize(pfgm_nn_params *t, uint32_t seed);
/* Zeroes the gradient buffer. */
pfgm_status pfgm_nn_params_zero_grad(pfgm_nn_params *t);
/* Index of the parameter called `name`, or -1. */
int pfgm_nn_params_find(const pfgm_nn_params *t, const char *name);
/* Frees the buffers and the table (the struct is left zeroed). */
void pfgm_nn_params_release(pfgm_nn_params *t);

/* Parameter files (HDF5, by these names) are read and written by io: pfgm/params_h5.h. */

/* ======================================================================================
 * Run context and slots
 * ====================================================================================== */

/* Per-call settings of a forward/backward pair. */
typedef struct pfgm_nn_run {
    int train;            /* 1: dropout active (training); 0: evaluation/sampling */
    pfgm_rng dropout_rng; /* stream PFGM_STREAM_DROPOUT; step = the training step */
} pfgm_nn_run;

/* Lifetime class of a composite layer's slot. */
typedef enum {
    PFGM_SLOT_UNUSED = 0,   /* not needed in this configuration */
    PFGM_SLOT_SAVED = 1,    /* written by forward, read by backward */
    PFGM_SLOT_FWD_TEMP = 2, /* scratch of the forward only */
    PFGM_SLOT_BWD_TEMP = 3, /* scratch of the backward only */
    PFGM_SLOT_SCRATCH = 4   /* scratch of the forward and of the backward, nothing kept between
                               (conv workspaces): planned as two separate buffers */
} pfgm_slot_life;

/* Size of a slot: per_image floats times the batch, plus fixed_bytes (conv workspaces). */
typedef struct pfgm_slot_spec {
    int64_t per_image;
    size_t fixed_bytes;
    pfgm_slot_life life;
} pfgm_slot_spec;

/* ======================================================================================
 * Primitive layers
 * ====================================================================================== */

/* Conv2d, stride 1, kernel 1 or 3 with padding (k-1)/2 ("conv1x1"/"conv3x3" of layers.py). */
typedef struct pfgm_conv2d {
    int64_t in_ch, out_ch, height, width;
    int kernel;
    float *w, *b, *dw, *db; /* w [out, in, k, k], b [out] */
} pfgm_conv2d;

/* Registers "<prefix>.weight" (default_init(init_scale)) and "<prefix>.bias" (zeros). */
pfgm_status pfgm_conv2d_setup(pfgm_conv2d *c, pfgm_nn_params *t, const char *prefix, int64_t in_ch, int64_t out_ch,
                              int kernel, int64_t height, int64_t width, double init_scale);
/* Workspace bytes of forward and backward at this batch size (0 on the reference backend). */
size_t pfgm_conv2d_workspace(pfgm_backend *be, const pfgm_conv2d *c, int64_t batch);
/* y [batch, out, h, w] = conv(x [batch, in, h, w]) + b. */
pfgm_status pfgm_conv2d_forward(pfgm_backend *be, const pfgm_conv2d *c, int64_t batch, const float *x, float *y,
                                void *ws, size_t ws_bytes);
/* dw, db += ; dx (may be NULL) = / += dL/dx. */
pfgm_status pfgm_conv2d_backward(pfgm_backend *be, const pfgm_conv2d *c, int64_t batch, const float *x,
                                 const float *dy, float *dx, int accumulate, void *ws, size_t ws_bytes);

/* nn.Linear ("Dense"): y [batch, out] = x [batch, in] W^T + b, W [out, in]. */
typedef struct pfgm_linear {
    int64_t in, out;
    float *w, *b, *dw, *db;
} pfgm_linear;

pfgm_status pfgm_linear_setup(pfgm_linear *l, pfgm_nn_params *t, const char *prefix, int64_t in, int64_t out,
                              double init_scale);
pfgm_status pfgm_linear_forward(pfgm_backend *be, const pfgm_linear *l, int64_t batch, const float *x, float *y);
pfgm_status pfgm_linear_backward(pfgm_backend *be, const pfgm_linear *l, int64_t batch, const float *x,
                                 const float *dy, float *dx, int accumulate);

/* layerspp.NIN: per-pixel linear map, y[b, o, p] = sum_i W[i, o] x[b, i, p] + b[o],
 * W [in, out] named "<prefix>.W", bias "<prefix>.b"; x [batch, in, hw], y [batch, out, hw]. */
typedef struct pfgm_nin {
    int64_t in, out, hw;
    float *w, *b, *dw, *db;
} pfgm_nin;

pfgm_status pfgm_nin_setup(pfgm_nin *l, pfgm_nn_params *t, const char *prefix, int64_t in, int64_t out, int64_t hw,
                           double init_scale);
pfgm_status pfgm_nin_forward(pfgm_backend *be, const pfgm_nin *l, int64_t batch, const float *x, float *y);
pfgm_status pfgm_nin_backward(pfgm_backend *be, const pfgm_nin *l, int64_t batch, const float *x, const float *dy,
                              float *dx, int accumulate);

/* GroupNorm with groups = min(channels / 4, 32), eps 1e-6, affine (spec §3.1). */
typedef struct pfgm_groupnorm {
    int64_t channels, groups, hw;
    float eps;
    float *gamma, *beta, *dgamma, *dbeta;
} pfgm_groupnorm;

/* Registers "<prefix>.weight" (ones) and "<prefix>.bias" (zeros). Errors: channels < 4 or not
 * a multiple of the group count. */
pfgm_status pfgm_groupnorm_setup(pfgm_groupnorm *g, pfgm_nn_params *t, const char *prefix, int64_t channels,
                                 int64_t hw);
/* Floats per image of the saved statistics (mean and rstd per group). */
int64_t pfgm_groupnorm_stats_per_image(const pfgm_groupnorm *g);
/* y = GN(x) (silu = 0) or SiLU(GN(x)) (silu = 1); stats [2 * batch * groups] for backward. */
pfgm_status pfgm_groupnorm_forward(pfgm_backend *be, const pfgm_groupnorm *g, int64_t batch, int silu,
                                   const float *x, float *y, float *stats);
pfgm_status pfgm_groupnorm_backward(pfgm_backend *be, const pfgm_groupnorm *g, int64_t batch, int silu,
                                    const float *x, const float *stats, const float *dy, float *dx, int accumulate);

/* ======================================================================================
 * z embedding: positional(z) or Fourier(ln z), then Dense -> SiLU -> Dense (spec §3.1).
 * The output handed to the residual blocks is SiLU(zemb) (each block's Dense_0 input), so it
 * is computed once.
 * ====================================================================================== */

enum {
    PFGM_ZEMB_EMB = 0, /* [emb_dim] saved: Dense 0 input */
    PFGM_ZEMB_T1,      /* [4nf] saved: Dense 0 output */
    PFGM_ZEMB_A1,      /* [4nf] saved: SiLU(T1), Dense 1 input */
    PFGM_ZEMB_TEMB,    /* [4nf] saved: zemb = Dense 1 output */
    PFGM_ZEMB_G1,      /* [4nf] bwd temp */
    PFGM_ZEMB_G2,      /* [max(4nf, emb_dim)] bwd temp */
    PFGM_ZEMB_SLOTS
};

typedef struct pfgm_zembed {
    pfgm_embedding_type type;
    int64_t nf;       /* positional: emb_dim = nf; Fourier: nf weights, emb_dim = 2 nf */
    int64_t emb_dim;  /* Dense 0 input */
    int64_t temb_dim; /* 4 nf */
    float *fourier_w; /* [nf], fixed; NULL for positional */
    pfgm_linear dense0, dense1;
    double flops; /* per image, forward */
} pfgm_zembed;

/* Registers the modules starting at all_modules.<*module> and advances *module:
 * Fourier: "<i>.W" (N(0, fourier_scale^2), fixed) then two Dense; positional: two Dense. */
pfgm_status pfgm_zembed_setup(pfgm_zembed *m, pfgm_nn_params *t, int *module, pfgm_embedding_type type, int64_t nf,
                              double fourier_scale);
void pfgm_zembed_slots(const pfgm_zembed *m, int train, pfgm_slot_spec spec[PFGM_ZEMB_SLOTS]);
/* z [batch] (host-side clamping to >= 1e-10 is the caller's, spec §1.4) -> act_temb
 * [batch, 4nf] = SiLU(zemb). */
pfgm_status pfgm_zembed_forward(pfgm_backend *be, const pfgm_zembed *m, int64_t batch, const float *z,
                                float *const *slots, float *act_temb);
/* d_act_temb [batch, 4nf] -> parameter gradients; dz (may be NULL) = / += dL/dz. */
pfgm_status pfgm_zembed_backward(pfgm_backend *be, const pfgm_zembed *m, int64_t batch, const float *z,
                                 float *const *slots, const float *act_temb, const float *d_act_temb, float *dz,
                                 int accumulate);

/* ======================================================================================
 * BigGAN residual block "ResnetBlockBigGANpp" without FIR (spec §3.1): with an optional
 * channel-concatenated skip input (the up path's torch.cat([h, hs.pop()], 1)).
 * ====================================================================================== */

enum {
    PFGM_RB_CAT = 0, /* [in+skip, h, w] saved: the concatenated input */
    PFGM_RB_GN0,     /* GroupNorm_0 stats, saved */
    PFGM_RB_A0,      /* SiLU(GN0(in)) [in, h, w]: saved, or forward temp when resampled */
    PFGM_RB_A0R,     /* A0 resampled [in, h', w'] saved (up/down only) */
    PFGM_RB_XR,      /* input resampled [in, h', w'] saved (up/down only) */
    PFGM_RB_H0,      /* Conv_0 + Dense_0 [out, h', w'] saved */
    PFGM_RB_T,       /* Dense_0(SiLU(zemb)) [out] forward temp */
    PFGM_RB_GN1,     /* GroupNorm_1 stats, saved */
    PFGM_RB_A1,      /* SiLU(GN1(h0)) [out, h', w']: forward temp when dropout is on */
    PFGM_RB_D1,      /* Conv_1 input (after dropout) [out, h', w'] saved */
    PFGM_RB_H1,      /* Conv_1 output [out, h', w'] forward temp */
    PFGM_RB_WS,      /* conv workspace */
    PFGM_RB_G1,      /* bwd temps: [out, h', w'] x2, [out], [in, h', w'] x2, [in, h, w] */
    PFGM_RB_G2,
    PFGM_RB_GT,
    PFGM_RB_G3,
    PFGM_RB_G4,
    PFGM_RB_G5,
    PFGM_RB_SLOTS
};

typedef struct pfgm_resblock {
    int64_t in_ch;   /* channels of x */
    int64_t skip_ch; /* channels of the concatenated skip; 0: none */
    int64_t out_ch;
    int64_t height, width;         /* input resolution; output is 2x (up), /2 (down) or equal */
    int64_t out_height, out_width;
    int up, down;
    float dropout;
    int skip_rescale;              /* output (x + h) / sqrt(2) */
    int has_conv2;                 /* Conv_2 1x1 on the skip path: in != out, up or down */
    uint64_t dropout_offset;       /* first Philox element of this block's masks */
    pfgm_groupnorm gn0, gn1;
    pfgm_conv2d conv0, conv1, conv2;
    pfgm_linear dense0;
    double flops; /* per image, forward */
} pfgm_resblock;

/* Registers under "<prefix>.": GroupNorm_0, Conv_0, Dense_0, GroupNorm_1, Conv_1 (init_scale),
 * Conv_2 (when needed), the authors' order. */
pfgm_status pfgm_resblock_setup(pfgm_resblock *rb, pfgm_nn_params *t, const char *prefix, int64_t in_ch,
                                int64_t skip_ch, int64_t out_ch, int64_t height, int64_t width, int up, int down,
                                float dropout, int skip_rescale, int64_t temb_dim, double init_scale,
                                uint64_t dropout_offset);
void pfgm_resblock_slots(pfgm_backend *be, const pfgm_resblock *rb, int64_t max_batch, int train,
                         pfgm_slot_spec spec[PFGM_RB_SLOTS]);
/* x [batch, in, h, w], skip [batch, skip, h, w] (NULL when skip_ch = 0), act_temb [batch, T]
 * -> out [batch, out, h', w']. */
pfgm_status pfgm_resblock_forward(pfgm_backend *be, const pfgm_resblock *rb, int64_t batch, const pfgm_nn_run *run,
                                  const float *x, const float *skip, const float *act_temb, float *const *slots,
                                  float *out);
/* dout is used as scratch (overwritten). dx, dskip, d_act_temb: = / += per their flags. */
pfgm_status pfgm_resblock_backward(pfgm_backend *be, const pfgm_resblock *rb, int64_t batch, const pfgm_nn_run *run,
                                   const float *x, const float *act_temb, float *const *slots, float *dout,
                                   float *dx, int acc_dx, float *dskip, int acc_dskip, float *d_act_temb,
                                   int acc_temb);

/* ======================================================================================
 * Self-attention "AttnBlockpp" (spec §3.1): single head, NIN q/k/v/out, softmax over the
 * h*w key positions of q.k / sqrt(C).
 * ====================================================================================== */

enum {
    PFGM_ATTN_GN = 0, /* stats, saved */
    PFGM_ATTN_HN,     /* GN(x) [C, hw] saved */
    PFGM_ATTN_Q,      /* [C, hw] saved */
    PFGM_ATTN_K,
    PFGM_ATTN_V,
    PFGM_ATTN_P, /* softmax weights [hw, hw] saved */
    PFGM_ATTN_O, /* sum w v [C, hw] saved: NIN_3 input */
    PFGM_ATTN_GO, /* bwd temps */
    PFGM_ATTN_GQ,
    PFGM_ATTN_GK,
    PFGM_ATTN_GV,
    PFGM_ATTN_GP,
    PFGM_ATTN_GH,
    PFGM_ATTN_SLOTS
};

typedef struct pfgm_attn {
    int64_t ch, height, width;
    int skip_rescale;
    pfgm_groupnorm gn;
    pfgm_nin nin[4];
    double flops;
} pfgm_attn;

/* Registers "<prefix>.GroupNorm_0", "<prefix>.NIN_0..2" (init 0.1), "<prefix>.NIN_3" (init_scale). */
pfgm_status pfgm_attn_setup(pfgm_attn *a, pfgm_nn_params *t, const char *prefix, int64_t ch, int64_t height,
                            int64_t width, int skip_rescale, double init_scale);
void pfgm_attn_slots(const pfgm_attn *a, int train, pfgm_slot_spec spec[PFGM_ATTN_SLOTS]);
pfgm_status pfgm_attn_forward(pfgm_backend *be, const pfgm_attn *a, int64_t batch, const float *x,
                              float *const *slots, float *out);
/* dout is used as scratch (overwritten); dx = / += (acc). */
pfgm_status pfgm_attn_backward(pfgm_backend *be, const pfgm_attn *a, int64_t batch, const float *x,
                               float *const *slots, float *dout, float *dx, int acc);

/* ======================================================================================
 * PFGM head (spec §1.6, §3.2 step 11): SiLU(GN(h)) -> Conv 3x3 to C+1 channels; the x-field
 * is channels 0..C-1, the z-field the spatial mean of channel C.
 * ====================================================================================== */

enum {
    PFGM_HEAD_GN = 0, /* stats saved */
    PFGM_HEAD_A,      /* SiLU(GN(x)) [in, hw] saved */
    PFGM_HEAD_H,      /* conv output [C+1, hw] forward temp */
    PFGM_HEAD_WS,     /* conv workspace */
    PFGM_HEAD_GH,     /* bwd temps [C+1, hw], [in, hw] */
    PFGM_HEAD_GA,
    PFGM_HEAD_SLOTS
};

typedef struct pfgm_head {
    int64_t in_ch, channels, height, width;
    pfgm_groupnorm gn;
    pfgm_conv2d conv;
    double flops;
} pfgm_head;

/* Registers "all_modules.<*module>.weight/bias" (GroupNorm) and "all_modules.<*module+1>"
 * (conv, init_scale), advancing *module by 2. */
pfgm_status pfgm_head_setup(pfgm_head *h, pfgm_nn_params *t, int *module, int64_t in_ch, int64_t channels,
                            int64_t height, int64_t width, double init_scale);
void pfgm_head_slots(pfgm_backend *be, const pfgm_head *h, int64_t max_batch, int train,
                     pfgm_slot_spec spec[PFGM_HEAD_SLOTS]);
/* x [batch, in, h, w] -> net_x [batch, C, h, w], net_z [batch]. */
pfgm_status pfgm_head_forward(pfgm_backend *be, const pfgm_head *h, int64_t batch, const float *x,
                              float *const *slots, float *net_x, float *net_z);
pfgm_status pfgm_head_backward(pfgm_backend *be, const pfgm_head *h, int64_t batch, const float *x,
                               float *const *slots, const float *dnet_x, const float *dnet_z, float *dx, int acc);

/* Bytes of a slot at a batch size (rounded up to 64; 0 when unused). */
size_t pfgm_slot_bytes(const pfgm_slot_spec *s, int64_t batch);

#ifdef __cplusplus
}
#endif
#endif /* PFGM_NN_H */
