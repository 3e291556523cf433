/* Building DDPM++ (spec §3.2, models/ncsnpp.py NCSNpp.__init__ and forward): the descriptor's
 * checks (io fills it from a config: src/io/config_model.c), the layer list in the authors'
 * construction order (which fixes the all_modules.<i> names), parameter registration, and the
 * activation plan. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/ddpmpp_impl.h"
#include "util/check.h"

/* ---- descriptor ----------------------------------------------------------------------- */

static int level_has_attn(const pfgm_ddpmpp_desc *d, int64_t res) {
    for (int i = 0; i < d->num_attn; ++i)
        if (d->attn_resolutions[i] == res) return 1;
    return 0;
}

pfgm_status pfgm_ddpmpp_desc_validate(const pfgm_ddpmpp_desc *d) {
#define BAD(...) return pfgm_error(PFGM_ERR_INVALID_ARG, "DDPM++: " __VA_ARGS__)
    if (d->num_levels < 1 || d->num_levels > PFGM_DDPMPP_MAX_LEVELS)
        BAD("ch_mult has %d entries (1 to %d allowed)", d->num_levels, PFGM_DDPMPP_MAX_LEVELS);
    if (d->num_attn < 0 || d->num_attn > PFGM_DDPMPP_MAX_ATTN)
        BAD("attn_resolutions has %d entries (at most %d)", d->num_attn, PFGM_DDPMPP_MAX_ATTN);
    if (d->channels < 1) BAD("channels = %lld", (long long)d->channels);
    if (d->nf < 4 || d->nf % 2) BAD("nf = %lld must be even and at least 4", (long long)d->nf);
    if (d->num_res_blocks < 0) BAD("num_res_blocks = %lld", (long long)d->num_res_blocks);
    if (d->param_multiple < 0 || d->param_multiple % 16)
        BAD("param_multiple = %lld is not 0 or a positive multiple of 16", (long long)d->param_multiple);
    const int64_t div = (int64_t)1 << (d->num_levels - 1);
    if (d->image_size < 1 || d->image_size % div)
        BAD("image_size %lld is not divisible by 2^(len(ch_mult)-1) = %lld", (long long)d->image_size,
            (long long)div);
    for (int i = 0; i < d->num_levels; ++i)
        if (d->ch_mult[i] < 1) BAD("ch_mult[%d] = %lld", i, (long long)d->ch_mult[i]);
    for (int a = 0; a < d->num_attn; ++a) {
        int found = 0;
        for (int i = 0; i < d->num_levels; ++i) found |= (d->image_size >> i) == d->attn_resolutions[a];
        if (!found)
            BAD("attention resolution %lld is not one of the levels' resolutions (image_size %lld, %d levels)",
                (long long)d->attn_resolutions[a], (long long)d->image_size, d->num_levels);
    }
    if (!(d->dropout >= 0.0 && d->dropout < 1.0)) BAD("dropout = %g must be in [0, 1)", d->dropout);
    if (!(d->init_scale >= 0.0)) BAD("init_scale = %g", d->init_scale);
    if (d->embedding_type != PFGM_EMBEDDING_POSITIONAL && d->embedding_type != PFGM_EMBEDDING_FOURIER)
        BAD("unknown embedding type %d", (int)d->embedding_type);
    if (d->embedding_type == PFGM_EMBEDDING_FOURIER && !(d->fourier_scale > 0.0))
        BAD("fourier_scale = %g must be positive", d->fourier_scale);
#undef BAD
    return PFGM_OK;
}

/* ---- graph ---------------------------------------------------------------------------- */

static pfgm_status dd_layer_new(pfgm_ddpmpp *m, dd_kind kind, int *module, int nmod, dd_layer **out) {
    if (m->nl == m->cap_l) {
        int cap = m->cap_l ? 2 * m->cap_l : 64;
        dd_layer *l = realloc(m->layers, (size_t)cap * sizeof *l);
        if (!l) return pfgm_error(PFGM_ERR_NOMEM, "DDPM++: cannot grow the layer list to %d", cap);
        m->layers = l;
        m->cap_l = cap;
    }
    dd_layer *L = &m->layers[m->nl++];
    memset(L, 0, sizeof *L);
    L->kind = kind;
    L->module = *module;
    *module += nmod;
    L->t_in = L->t_skip = L->t_out = L->t_out2 = -1;
    *out = L;
    return PFGM_OK;
}

static pfgm_status dd_tensor_new(pfgm_ddpmpp *m, int64_t ch, int64_t res, int *id) {
    if (m->nt == m->cap_t) {
        int cap = m->cap_t ? 2 * m->cap_t : 64;
        dd_tensor *t = realloc(m->tensors, (size_t)cap * sizeof *t);
        if (!t) return pfgm_error(PFGM_ERR_NOMEM, "DDPM++: cannot grow the tensor list to %d", cap);
        m->tensors = t;
        m->cap_t = cap;
    }
    dd_tensor *T = &m->tensors[m->nt];
    *T = (dd_tensor){.ch = ch, .res = res, .per_image = ch * res * res, .producer = m->nl - 1, .last_use = -1,
                     .first_saved = -1, .buf = -1, .gbuf = -1};
    *id = m->nt++;
    return PFGM_OK;
}

/* Layer `j` reads tensor t in its forward, and in its backward too when saved. */
static void dd_read(pfgm_ddpmpp *m, int t, int j, int saved) {
    dd_tensor *T = &m->tensors[t];
    if (j > T->last_use) T->last_use = j;
    if (saved && (T->first_saved < 0 || j < T->first_saved)) T->first_saved = j;
}

static pfgm_status dd_res(pfgm_ddpmpp *m, int *module, int t_in, int t_skip, int64_t out_ch, int up, int down,
                          int *t_out) {
    dd_layer *L = NULL;
    PFGM_TRY(dd_layer_new(m, DL_RES, module, 1, &L));
    const dd_tensor *in = &m->tensors[t_in];
    L->in_ch = in->ch;
    L->skip_ch = t_skip >= 0 ? m->tensors[t_skip].ch : 0;
    L->out_ch = out_ch;
    L->res = in->res;
    L->up = up;
    L->down = down;
    L->t_in = t_in;
    L->t_skip = t_skip;
    const int j = m->nl - 1;
    dd_read(m, t_in, j, t_skip < 0); /* with a skip the block keeps its own concatenation */
    if (t_skip >= 0) dd_read(m, t_skip, j, 0);
    dd_read(m, m->t_temb, j, 1);
    PFGM_TRY(dd_tensor_new(m, out_ch, up ? 2 * L->res : down ? L->res / 2 : L->res, t_out));
    m->layers[j].t_out = *t_out;
    return PFGM_OK;
}

static pfgm_status dd_attn(pfgm_ddpmpp *m, int *module, int t_in, int *t_out) {
    dd_layer *L = NULL;
    PFGM_TRY(dd_layer_new(m, DL_ATTN, module, 1, &L));
    L->in_ch = L->out_ch = m->tensors[t_in].ch;
    L->res = m->tensors[t_in].res;
    L->t_in = t_in;
    const int j = m->nl - 1;
    dd_read(m, t_in, j, 1);
    PFGM_TRY(dd_tensor_new(m, L->in_ch, L->res, t_out));
    m->layers[j].t_out = *t_out;
    return PFGM_OK;
}

/* NCSNpp.__init__/forward with resblock_type biggan, no progressive paths (spec §3.2). */
static pfgm_status dd_graph(pfgm_ddpmpp *m) {
    const pfgm_ddpmpp_desc *d = &m->desc;
    int module = 0, t;
    dd_layer *L = NULL;
    /* 0. z embedding and its MLP (Fourier adds the W module first) */
    PFGM_TRY(dd_layer_new(m, DL_EMBED, &module, d->embedding_type == PFGM_EMBEDDING_FOURIER ? 3 : 2, &L));
    PFGM_TRY(dd_tensor_new(m, 4 * d->nf, 1, &m->t_temb));
    m->layers[0].t_out = m->t_temb;
    /* 1. input conv, the first skip */
    PFGM_TRY(dd_layer_new(m, DL_CONV_IN, &module, 1, &L));
    L->in_ch = d->channels;
    L->out_ch = d->nf;
    L->res = d->image_size;
    PFGM_TRY(dd_tensor_new(m, d->nf, d->image_size, &t));
    m->layers[1].t_out = t;
    const int max_hs = 2 + d->num_levels * (int)(d->num_res_blocks + 1);
    int *hs = malloc((size_t)max_hs * sizeof *hs), nhs = 0;
    if (!hs) return pfgm_error(PFGM_ERR_NOMEM, "DDPM++: skip stack");
    pfgm_status st = PFGM_OK;
    hs[nhs++] = t;
    /* 2. down path */
    for (int lv = 0; lv < d->num_levels; ++lv) {
        for (int64_t b = 0; b < d->num_res_blocks; ++b) {
            PFGM_TRY_GOTO(dd_res(m, &module, hs[nhs - 1], -1, d->nf * d->ch_mult[lv], 0, 0, &t), done);
            if (level_has_attn(d, m->tensors[t].res)) PFGM_TRY_GOTO(dd_attn(m, &module, t, &t), done);
            hs[nhs++] = t;
        }
        if (lv != d->num_levels - 1) {
            PFGM_TRY_GOTO(dd_res(m, &module, hs[nhs - 1], -1, m->tensors[hs[nhs - 1]].ch, 0, 1, &t), done);
            hs[nhs++] = t;
        }
    }
    /* 3. middle: ResBlock, Attn, ResBlock */
    int h = hs[nhs - 1];
    PFGM_TRY_GOTO(dd_res(m, &module, h, -1, m->tensors[h].ch, 0, 0, &h), done);
    PFGM_TRY_GOTO(dd_attn(m, &module, h, &h), done);
    PFGM_TRY_GOTO(dd_res(m, &module, h, -1, m->tensors[h].ch, 0, 0, &h), done);
    /* 4. up path: num_res_blocks + 1 blocks per level on [h, hs.pop()] */
    for (int lv = d->num_levels - 1; lv >= 0; --lv) {
        for (int64_t b = 0; b < d->num_res_blocks + 1; ++b) {
            int skip = hs[--nhs];
            PFGM_TRY_GOTO(dd_res(m, &module, h, skip, d->nf * d->ch_mult[lv], 0, 0, &h), done);
        }
        if (level_has_attn(d, m->tensors[h].res)) PFGM_TRY_GOTO(dd_attn(m, &module, h, &h), done);
        if (lv != 0) PFGM_TRY_GOTO(dd_res(m, &module, h, -1, m->tensors[h].ch, 1, 0, &h), done);
    }
    if (nhs != 0) {
        st = pfgm_error(PFGM_ERR_INTERNAL, "DDPM++: %d skip tensors left on the stack", nhs);
        goto done;
    }
    /* 5. head: GroupNorm, SiLU, conv to C+1 channels; x-field and z-field */
    PFGM_TRY_GOTO(dd_layer_new(m, DL_HEAD, &module, 2, &L), done);
    L->in_ch = m->tensors[h].ch;
    L->out_ch = d->channels;
    L->res = m->tensors[h].res;
    L->t_in = h;
    dd_read(m, h, m->nl - 1, 1);
    PFGM_TRY_GOTO(dd_tensor_new(m, d->channels, d->image_size, &m->t_netx), done);
    PFGM_TRY_GOTO(dd_tensor_new(m, 1, 1, &m->t_netz), done);
    m->layers[m->nl - 1].t_out = m->t_netx;
    m->layers[m->nl - 1].t_out2 = m->t_netz;
    m->info.num_modules = module;
done:
    free(hs);
    return st;
}

/* ---- parameters (module construction order = forward order) ----------------------------- */

static pfgm_status dd_setup_layers(pfgm_ddpmpp *m) {
    const pfgm_ddpmpp_desc *d = &m->desc;
    int nres = 0;
    char prefix[32];
    for (int j = 0; j < m->nl; ++j) {
        dd_layer *L = &m->layers[j];
        int module = L->module;
        L->item_first = m->params.n;
        snprintf(prefix, sizeof prefix, "all_modules.%d", L->module);
        switch (L->kind) {
        case DL_EMBED:
            PFGM_TRY(pfgm_zembed_setup(&L->u.emb, &m->params, &module, d->embedding_type, d->nf, d->fourier_scale));
            m->info.flops_per_image += L->u.emb.flops;
            break;
        case DL_CONV_IN:
            PFGM_TRY(pfgm_conv2d_setup(&L->u.conv, &m->params, prefix, L->in_ch, L->out_ch, 3, L->res, L->res, 1.0));
            m->info.flops_per_image += 2.0 * (double)(L->res * L->res) * (double)(L->out_ch * L->in_ch * 9);
            break;
        case DL_RES:
            /* each block's dropout masks start 2^40 elements apart in the stream */
            PFGM_TRY(pfgm_resblock_setup(&L->u.rb, &m->params, prefix, L->in_ch, L->skip_ch, L->out_ch, L->res, L->res,
                                         L->up, L->down, (float)d->dropout, d->skip_rescale, 4 * d->nf, d->init_scale,
                                         (uint64_t)nres << 40));
            ++nres;
            m->info.flops_per_image += L->u.rb.flops;
            break;
        case DL_ATTN:
            PFGM_TRY(pfgm_attn_setup(&L->u.at, &m->params, prefix, L->in_ch, L->res, L->res, d->skip_rescale,
                                     d->init_scale));
            m->info.num_attn++;
            m->info.flops_per_image += L->u.at.flops;
            break;
        case DL_HEAD:
            PFGM_TRY(pfgm_head_setup(&L->u.hd, &m->params, &module, L->in_ch, d->channels, L->res, L->res,
                                     d->init_scale));
            m->info.flops_per_image += L->u.hd.flops;
            break;
        }
        L->item_end = m->params.n;
    }
    m->info.num_resblocks = nres;
    return PFGM_OK;
}

/* ---- activation plan -------------------------------------------------------------------- */

static void dd_layer_slots(pfgm_ddpmpp *m, dd_layer *L, int train) {
    pfgm_backend *be = m->be;
    switch (L->kind) {
    case DL_EMBED:
        L->nslots = PFGM_ZEMB_SLOTS;
        pfgm_zembed_slots(&L->u.emb, train, L->spec);
        break;
    case DL_CONV_IN: {
        size_t ws = be ? pfgm_conv2d_workspace(be, &L->u.conv, m->max_batch) : 0;
        L->nslots = 1;
        L->spec[0] = (pfgm_slot_spec){0, ws,
                                      ws ? (train ? PFGM_SLOT_SCRATCH : PFGM_SLOT_FWD_TEMP) : PFGM_SLOT_UNUSED};
        break;
    }
    case DL_RES:
        L->nslots = PFGM_RB_SLOTS;
        pfgm_resblock_slots(be, &L->u.rb, m->max_batch, train, L->spec);
        break;
    case DL_ATTN:
        L->nslots = PFGM_ATTN_SLOTS;
        pfgm_attn_slots(&L->u.at, train, L->spec);
        break;
    case DL_HEAD:
        L->nslots = PFGM_HEAD_SLOTS;
        pfgm_head_slots(be, &L->u.hd, m->max_batch, train, L->spec);
        break;
    }
}

static pfgm_status dd_plan(pfgm_ddpmpp *m) {
    const int train = m->mode == PFGM_DDPMPP_TRAIN, nl = m->nl;
#define BWD(j) (2 * nl - 1 - (j))
    for (int j = 0; j < nl; ++j) {
        dd_layer *L = &m->layers[j];
        dd_layer_slots(m, L, train);
        for (int s = 0; s < L->nslots; ++s) {
            const pfgm_slot_spec *S = &L->spec[s];
            L->fbuf[s] = L->bbuf[s] = -1;
            switch (S->life) {
            case PFGM_SLOT_UNUSED: break;
            case PFGM_SLOT_SAVED:
                PFGM_TRY(pfgm_nn_plan_add(&m->plan, S->per_image, S->fixed_bytes, j, &L->fbuf[s]));
                pfgm_nn_plan_use(&m->plan, L->fbuf[s], BWD(j));
                L->bbuf[s] = L->fbuf[s];
                break;
            case PFGM_SLOT_FWD_TEMP: PFGM_TRY(pfgm_nn_plan_add(&m->plan, S->per_image, S->fixed_bytes, j, &L->fbuf[s])); break;
            case PFGM_SLOT_BWD_TEMP:
                PFGM_TRY(pfgm_nn_plan_add(&m->plan, S->per_image, S->fixed_bytes, BWD(j), &L->bbuf[s]));
                break;
            case PFGM_SLOT_SCRATCH:
                PFGM_TRY(pfgm_nn_plan_add(&m->plan, S->per_image, S->fixed_bytes, j, &L->fbuf[s]));
                PFGM_TRY(pfgm_nn_plan_add(&m->plan, S->per_image, S->fixed_bytes, BWD(j), &L->bbuf[s]));
                break;
            }
        }
    }
    for (int t = 0; t < m->nt; ++t) {
        dd_tensor *T = &m->tensors[t];
        PFGM_TRY(pfgm_nn_plan_add(&m->plan, T->per_image, 0, T->producer, &T->buf));
        if (T->last_use >= 0) pfgm_nn_plan_use(&m->plan, T->buf, T->last_use);
        const int is_output = t == m->t_netx || t == m->t_netz;
        if (is_output) /* read by the caller's loss between the passes */
            pfgm_nn_plan_use(&m->plan, T->buf, train ? nl : nl - 1);
        if (!train) continue;
        if (T->first_saved >= 0) pfgm_nn_plan_use(&m->plan, T->buf, BWD(T->first_saved));
        if (!is_output && T->last_use >= 0) {
            /* written by the backward of the last reader, consumed by the producer's */
            PFGM_TRY(pfgm_nn_plan_add(&m->plan, T->per_image, 0, BWD(T->last_use), &T->gbuf));
            pfgm_nn_plan_use(&m->plan, T->gbuf, BWD(T->producer));
        }
    }
#undef BWD
    PFGM_TRY(pfgm_nn_plan_solve(&m->plan, m->max_batch));
    m->info.activation_bytes = m->plan.total;
    m->info.unshared_bytes = pfgm_nn_plan_unshared_bytes(&m->plan);
    return PFGM_OK;
}

static void dd_bind(pfgm_ddpmpp *m) {
    char *base = m->arena;
    for (int j = 0; j < m->nl; ++j) {
        dd_layer *L = &m->layers[j];
        for (int s = 0; s < L->nslots; ++s) {
            L->fptr[s] = L->fbuf[s] >= 0 ? (float *)(base + m->plan.b[L->fbuf[s]].offset) : NULL;
            L->bptr[s] = L->bbuf[s] >= 0 ? (float *)(base + m->plan.b[L->bbuf[s]].offset) : NULL;
        }
    }
    for (int t = 0; t < m->nt; ++t) {
        dd_tensor *T = &m->tensors[t];
        T->val = (float *)(base + m->plan.b[T->buf].offset);
        T->grad = T->gbuf >= 0 ? (float *)(base + m->plan.b[T->gbuf].offset) : NULL;
    }
}

/* Every op the network calls: a backend that lacks one is refused at build time, not with a
 * NULL call in the middle of a step. */
static pfgm_status dd_check_ops(const pfgm_backend *be) {
#define NEED(op)                                                                                             \
    if (!be->op)                                                                                             \
        return pfgm_error(PFGM_ERR_UNSUPPORTED, "DDPM++: the %s backend lacks the op " #op " the network needs", \
                          be->name);
    NEED(alloc) NEED(free) NEED(copy) NEED(memzero) NEED(gemm) NEED(axpby) NEED(softmax_rows) NEED(silu_fwd)
    NEED(silu_bwd) NEED(conv2d_workspace) NEED(conv2d_fwd) NEED(conv2d_bwd) NEED(gemm_batched)
    NEED(softmax_rows_bwd) NEED(groupnorm_fwd) NEED(groupnorm_bwd) NEED(upsample2x_fwd) NEED(upsample2x_bwd)
    NEED(avgpool2x2_fwd) NEED(avgpool2x2_bwd) NEED(bcast_add_fwd) NEED(bcast_add_bwd) NEED(copy_channels)
    NEED(channel_mean_fwd) NEED(channel_mean_bwd) NEED(zembed_fwd) NEED(zembed_bwd) NEED(dropout_fwd)
    NEED(dropout_bwd)
#undef NEED
    return PFGM_OK;
}

/* ready_from of each layer's backward (pfgm_ddpmpp_set_grad_hook): once layers j..nl-1 are
 * done, the gradients at offsets >= the end of the trainable parameters of layers 0..j-1
 * are final (those layers write only below it). */
static void dd_grad_ready_offsets(pfgm_ddpmpp *m) {
    int64_t end = 0;
    for (int j = 0; j < m->nl; ++j) {
        dd_layer *L = &m->layers[j];
        L->grad_ready_from = end;
        for (int i = L->item_first; i < L->item_end; ++i) {
            const pfgm_nn_param *p = &m->params.items[i];
            if (p->trainable && p->offset + p->count > end) end = p->offset + p->count;
        }
    }
}

pfgm_status pfgm_dd_build(pfgm_ddpmpp *m, pfgm_backend *be, const pfgm_ddpmpp_desc *d, int64_t max_batch,
                     pfgm_ddpmpp_mode mode, int alloc) {
    PFGM_TRY(pfgm_ddpmpp_desc_validate(d));
    if (be) PFGM_TRY(dd_check_ops(be));
    if (max_batch < 1) return pfgm_error(PFGM_ERR_INVALID_ARG, "DDPM++: max_batch = %lld", (long long)max_batch);
    if (mode != PFGM_DDPMPP_TRAIN && mode != PFGM_DDPMPP_INFER)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "DDPM++: unknown mode %d", (int)mode);
    m->be = be;
    m->desc = *d;
    m->mode = mode;
    m->max_batch = max_batch;
    PFGM_TRY(dd_graph(m));
    PFGM_TRY(dd_setup_layers(m));
    m->params.prefix_multiple = d->param_multiple;
    pfgm_nn_params_layout(&m->params);
    dd_grad_ready_offsets(m);
    m->info.param_count = m->params.count;
    m->info.trainable_count = m->params.trainable_count;
    m->info.num_tensors = m->params.n;
    m->info.param_bytes = (size_t)m->params.floats * sizeof(float);
    PFGM_TRY(dd_plan(m));
    if (!alloc) return PFGM_OK;
    PFGM_TRY(pfgm_nn_params_alloc(&m->params, be));
    pfgm_status st = be->alloc(be, m->plan.total, &m->arena);
    if (st != PFGM_OK)
        return pfgm_error_prefix(st, "DDPM++ activation arena for batch %lld", (long long)max_batch);
    dd_bind(m);
    return PFGM_OK;
}

void pfgm_dd_release(pfgm_ddpmpp *m) {
    if (m->be && m->arena) m->be->free(m->be, m->arena);
    m->arena = NULL;
    pfgm_nn_params_release(&m->params);
    pfgm_nn_plan_release(&m->plan);
    free(m->layers);
    free(m->tensors);
    m->layers = NULL;
    m->tensors = NULL;
    m->nl = m->nt = m->cap_l = m->cap_t = 0;
}

/* ---- public construction API ------------------------------------------------------------ */

pfgm_status pfgm_ddpmpp_plan(const pfgm_ddpmpp_desc *d, pfgm_backend *be, int64_t batch, pfgm_ddpmpp_mode mode,
                             pfgm_ddpmpp_info *info) {
    pfgm_ddpmpp m;
    memset(&m, 0, sizeof m);
    pfgm_status st = pfgm_dd_build(&m, be, d, batch, mode, 0);
    if (st == PFGM_OK) *info = m.info;
    pfgm_dd_release(&m);
    return st;
}

pfgm_status pfgm_ddpmpp_create(pfgm_backend *be, const pfgm_ddpmpp_desc *d, int64_t max_batch, pfgm_ddpmpp_mode mode,
                               pfgm_ddpmpp **out) {
    *out = NULL;
    if (!be) return pfgm_error(PFGM_ERR_INVALID_ARG, "DDPM++: no backend");
    pfgm_ddpmpp *m = calloc(1, sizeof *m);
    if (!m) return pfgm_error(PFGM_ERR_NOMEM, "DDPM++: model struct");
    pfgm_status st = pfgm_dd_build(m, be, d, max_batch, mode, 1);
    if (st != PFGM_OK) {
        pfgm_dd_release(m);
        free(m);
        return st;
    }
    *out = m;
    return PFGM_OK;
}

void pfgm_ddpmpp_destroy(pfgm_ddpmpp *m) {
    if (!m) return;
    pfgm_dd_release(m);
    free(m);
}

void pfgm_ddpmpp_set_grad_hook(pfgm_ddpmpp *m, pfgm_grad_ready_fn fn, void *user) {
    m->grad_hook = fn;
    m->grad_hook_user = user;
}

const pfgm_ddpmpp_desc *pfgm_ddpmpp_get_desc(const pfgm_ddpmpp *m) { return &m->desc; }
void pfgm_ddpmpp_get_info(const pfgm_ddpmpp *m, pfgm_ddpmpp_info *info) { *info = m->info; }
pfgm_nn_params *pfgm_ddpmpp_params(pfgm_ddpmpp *m) { return &m->params; }

pfgm_status pfgm_ddpmpp_activation_bytes(const pfgm_ddpmpp *m, int64_t batch, size_t *bytes) {
    if (batch < 1) return pfgm_error(PFGM_ERR_INVALID_ARG, "DDPM++: batch = %lld", (long long)batch);
    return pfgm_nn_plan_bytes_at(&m->plan, batch, bytes);
}

pfgm_status pfgm_ddpmpp_init_params(pfgm_ddpmpp *m, uint32_t seed) {
    return pfgm_nn_params_initialize(&m->params, seed);
}
