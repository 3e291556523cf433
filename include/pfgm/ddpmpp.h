/* DDPM++ with the PFGM head: the authors' NCSNpp class as PFGM configures it (BigGAN residual
 * blocks without FIR, no progressive paths, skip rescale, positional or Fourier z embedding,
 * C+1 output channels), assembled from a small descriptor (PFGM_SPEC.md §3.2; docs/model.md).
 *
 * A model owns: the parameter table (one value buffer, one gradient buffer, the authors'
 * state_dict names, pfgm/nn.h) and one activation arena planned at build time for a maximum
 * batch size, so forward and backward allocate nothing. Forward takes the perturbed images
 * x [B, C, H, W] and the conditioning z [B] and returns the x-field net_x [B, C, H, W] and
 * the z-field net_z [B] (spec §1.6); backward takes their gradients and accumulates the
 * parameter gradients (and, optionally, the gradient of x). The network knows neither the
 * configuration nor file formats: io maps a config onto the descriptor (pfgm/config.h) and
 * reads and writes the parameter files (pfgm/params_h5.h). */
#ifndef PFGM_DDPMPP_H
#define PFGM_DDPMPP_H

#include <stddef.h>
#include <stdint.h>

#include "pfgm/backend.h"
#include "pfgm/nn.h"
#include "pfgm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PFGM_DDPMPP_MAX_LEVELS 8
#define PFGM_DDPMPP_MAX_ATTN 8

/* The architecture (the authors' config keys in brackets). */
typedef struct pfgm_ddpmpp_desc {
    int64_t image_size;                            /* H = W [data.image_size] */
    int64_t channels;                              /* C [data.channels]; the head emits C+1 */
    int64_t nf;                                    /* base channels [model.nf] */
    int64_t ch_mult[PFGM_DDPMPP_MAX_LEVELS];       /* [model.ch_mult] */
    int num_levels;                                /* entries of ch_mult */
    int64_t num_res_blocks;                        /* [model.num_res_blocks] */
    int64_t attn_resolutions[PFGM_DDPMPP_MAX_ATTN]; /* [model.attn_resolutions] */
    int num_attn;
    double dropout;                                /* [model.dropout] */
    pfgm_embedding_type embedding_type;            /* [model.embedding_type] */
    double fourier_scale;                          /* [model.fourier_scale] */
    int skip_rescale;                              /* [model.skip_rescale] */
    double init_scale;                             /* [model.init_scale]; 0 -> 1e-10 (§3.4) */
    int64_t param_multiple;  /* not a config key: the trainable prefix of the parameter buffer
                              * is padded with zeros to a multiple of this many floats (0: no
                              * padding; else a multiple of 16), set by the training step for
                              * its gradient buckets and shards (pfgm_step_param_multiple) */
} pfgm_ddpmpp_desc;

/* TRAIN plans what backward needs; INFER plans a forward only (sampling), whose arena is
 * much smaller because activations die as soon as they are consumed. */
typedef enum { PFGM_DDPMPP_TRAIN = 0, PFGM_DDPMPP_INFER = 1 } pfgm_ddpmpp_mode;

/* Figures of a model (or of a plan without memory). */
typedef struct pfgm_ddpmpp_info {
    int64_t param_count;     /* elements, the fixed Fourier weights included (the authors' count) */
    int64_t trainable_count; /* elements that get gradients, optimizer state and EMA */
    int num_tensors;         /* named parameter tensors */
    int num_modules;         /* all_modules.<i> entries */
    int num_resblocks, num_attn;
    double flops_per_image;  /* forward, 2 per multiply-add of convs, Dense, NIN and attention */
    size_t param_bytes;      /* value buffer (the gradient buffer is the same size) */
    size_t activation_bytes; /* arena at the planned batch, conv workspaces included */
    size_t unshared_bytes;   /* what the arena would be without reuse (for docs/model.md) */
} pfgm_ddpmpp_info;

typedef struct pfgm_ddpmpp pfgm_ddpmpp;

/* The descriptor is filled from a config by io (pfgm_ddpmpp_desc_from_config, pfgm/config.h),
 * so the network never reads the configuration; tests and tools may fill it directly. */

/* Shape checks: image_size divisible by 2^(levels-1), every channel count a valid GroupNorm
 * size (C >= 4 and a multiple of min(C/4, 32) groups), nf even, dropout in [0, 1), attention
 * resolutions that occur. Errors: PFGM_ERR_INVALID_ARG naming the field. */
pfgm_status pfgm_ddpmpp_desc_validate(const pfgm_ddpmpp_desc *d);

/* Plan only: parameter counts, FLOPs and the activation arena for `batch` images in `mode`,
 * without allocating parameters or activations (be may be NULL: conv workspaces are then
 * counted as 0). Errors: those of pfgm_ddpmpp_desc_validate, PFGM_ERR_NOMEM. */
pfgm_status pfgm_ddpmpp_plan(const pfgm_ddpmpp_desc *d, pfgm_backend *be, int64_t batch, pfgm_ddpmpp_mode mode,
                             pfgm_ddpmpp_info *info);

/* Builds the model on `be` for batches of up to max_batch images: parameters (zeroed; call
 * pfgm_ddpmpp_init_params or load them) and the activation arena. Errors: as
 * pfgm_ddpmpp_desc_validate, PFGM_ERR_NOMEM naming the buffer. */
pfgm_status pfgm_ddpmpp_create(pfgm_backend *be, const pfgm_ddpmpp_desc *d, int64_t max_batch, pfgm_ddpmpp_mode mode,
                               pfgm_ddpmpp **out);
void pfgm_ddpmpp_destroy(pfgm_ddpmpp *m);

const pfgm_ddpmpp_desc *pfgm_ddpmpp_get_desc(const pfgm_ddpmpp *m);
void pfgm_ddpmpp_get_info(const pfgm_ddpmpp *m, pfgm_ddpmpp_info *info);
/* The parameter table: names, shapes, offsets, and the value/gradient buffers. */
pfgm_nn_params *pfgm_ddpmpp_params(pfgm_ddpmpp *m);

/* Activation arena bytes this model's plan needs for `batch` images (for reports). */
pfgm_status pfgm_ddpmpp_activation_bytes(const pfgm_ddpmpp *m, int64_t batch, size_t *bytes);

/* Initialisation of spec §3.4 from the Philox stream PFGM_STREAM_INIT (pfgm_nn_params_initialize). */
pfgm_status pfgm_ddpmpp_init_params(pfgm_ddpmpp *m, uint32_t seed);

/* Forward pass. x [batch, C, H, W] and z [batch] in backend memory (z > 0; the trainer clamps
 * it at 1e-10, spec §1.4); x must stay unchanged until backward. run: dropout on when
 * run->train (NULL: evaluation). *net_x [batch, C, H, W] and *net_z [batch] point into the
 * arena and stay valid until the next forward or backward. Errors: PFGM_ERR_INVALID_ARG
 * (batch outside 1..max_batch), the backend's errors. */
pfgm_status pfgm_ddpmpp_forward(pfgm_ddpmpp *m, int64_t batch, const float *x, const float *z,
                                const pfgm_nn_run *run, const float **net_x, const float **net_z);

/* Backward pass of the last forward (same batch and run): dnet_x [batch, C, H, W], dnet_z
 * [batch] (backend memory). Parameter gradients are ADDED to the gradient buffer (zero it
 * once per step); dx (may be NULL) receives dL/dx. Errors: PFGM_ERR_INVALID_ARG when the
 * model was built for inference or no forward preceded, the backend's errors. */
pfgm_status pfgm_ddpmpp_backward(pfgm_ddpmpp *m, const float *dnet_x, const float *dnet_z, float *dx);

/* Called by pfgm_ddpmpp_backward after each layer's backward with ready_from: every
 * trainable gradient at an offset >= ready_from of the parameter buffer is final for this
 * backward (its layers are done; a parameter belongs to one layer). ready_from falls
 * monotonically to 0 after the last layer. The training step starts a gradient bucket's
 * all-reduce from here (src/train/grad_sync.c). A non-OK status ends the backward with it. */
typedef pfgm_status (*pfgm_grad_ready_fn)(void *user, int64_t ready_from);
/* Sets (fn NULL: clears) the hook of the model's later backward passes. */
void pfgm_ddpmpp_set_grad_hook(pfgm_ddpmpp *m, pfgm_grad_ready_fn fn, void *user);

#ifdef __cplusplus
}
#endif
#endif /* PFGM_DDPMPP_H */
