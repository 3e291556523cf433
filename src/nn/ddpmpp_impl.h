/* Private to src/nn: the DDPM++ model object shared by ddpmpp_build.c (descriptor, layer
 * graph, parameters, activation plan) and ddpmpp.c (forward, backward).
 *
 * The model is a flat list of layers in execution order. The NCSNpp skip-connection stack is
 * resolved when the list is built: each layer names the tensors it reads (t_in, t_skip, the
 * shared SiLU(zemb) tensor) and writes (t_out). Step j of the forward runs layer j; step
 * 2L-1-j of the backward runs its backward. Every tensor, gradient and layer slot is a buffer
 * of the activation plan, live over the steps that use it. */
#ifndef PFGM_NN_DDPMPP_IMPL_H
#define PFGM_NN_DDPMPP_IMPL_H

#include "nn/plan.h"
#include "pfgm/ddpmpp.h"

#define DD_MAX_SLOTS 20

typedef enum { DL_EMBED = 0, DL_CONV_IN, DL_RES, DL_ATTN, DL_HEAD } dd_kind;

typedef struct dd_layer {
    dd_kind kind;
    int module;                  /* all_modules index of the layer's (first) module */
    int64_t in_ch, skip_ch, out_ch, res; /* res: input resolution (pixels per side) */
    int up, down;
    int t_in, t_skip, t_out, t_out2;     /* tensor ids; -1 = none (t_in -1: the model input) */
    union {
        pfgm_zembed emb;
        pfgm_conv2d conv;
        pfgm_resblock rb;
        pfgm_attn at;
        pfgm_head hd;
    } u;
    int nslots;
    pfgm_slot_spec spec[DD_MAX_SLOTS];
    int fbuf[DD_MAX_SLOTS], bbuf[DD_MAX_SLOTS]; /* plan buffers seen by forward / backward */
    float *fptr[DD_MAX_SLOTS], *bptr[DD_MAX_SLOTS];
    int item_first, item_end;    /* its parameters: items [item_first, item_end) of the table */
    int64_t grad_ready_from;     /* after its backward, gradients at offsets >= this are final */
} dd_layer;

typedef struct dd_tensor {
    int64_t ch, res;   /* channels and resolution; per image ch * res^2 (res 1: vectors) */
    int64_t per_image;
    int producer;      /* layer that writes it */
    int last_use;      /* last layer that reads it in the forward */
    int first_saved;   /* earliest layer whose backward reads it (-1: none); its backward
                          step is the latest one, so the value lives until then */
    int buf, gbuf;     /* plan buffers of the value and of the gradient (-1: none) */
    float *val, *grad;
    int grad_ready;    /* during a backward: the gradient holds a first contribution */
} dd_tensor;

struct pfgm_ddpmpp {
    pfgm_backend *be; /* NULL for a plan without memory */
    pfgm_ddpmpp_desc desc;
    pfgm_ddpmpp_mode mode;
    int64_t max_batch;
    dd_layer *layers;
    int nl, cap_l;
    dd_tensor *tensors;
    int nt, cap_t;
    int t_temb, t_netx, t_netz;
    pfgm_nn_params params;
    nn_plan plan;
    void *arena;
    pfgm_ddpmpp_info info;
    /* the last forward, replayed by backward */
    int64_t batch;
    const float *x, *z;
    pfgm_nn_run run;
    int fwd_done;
    pfgm_grad_ready_fn grad_hook; /* pfgm_ddpmpp_set_grad_hook */
    void *grad_hook_user;
};

/* Builds graph, parameters and plan; allocates when `alloc` (model) or not (plan only).
 * be may be NULL only when !alloc. */
pfgm_status pfgm_dd_build(pfgm_ddpmpp *m, pfgm_backend *be, const pfgm_ddpmpp_desc *d, int64_t max_batch,
                     pfgm_ddpmpp_mode mode, int alloc);
/* Frees what pfgm_dd_build made (not the struct). */
void pfgm_dd_release(pfgm_ddpmpp *m);

#endif
