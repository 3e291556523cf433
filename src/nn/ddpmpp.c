/* DDPM++ forward and backward (spec §3.2; models/ncsnpp.py NCSNpp.forward with the PFGM head
 * of spec §1.6): walk the layer list built by ddpmpp_build.c forwards, then backwards. All
 * buffers come from the planned arena; nothing is allocated here. */
#include "nn/ddpmpp_impl.h"
#include "util/check.h"

static float *tv(pfgm_ddpmpp *m, int t) { return t >= 0 ? m->tensors[t].val : NULL; }

/* The gradient buffer of tensor t and whether the next write must add (a first write sets it). */
static float *tg(pfgm_ddpmpp *m, int t, int *acc) {
    if (t < 0) {
        *acc = 0;
        return NULL;
    }
    dd_tensor *T = &m->tensors[t];
    *acc = T->grad_ready;
    T->grad_ready = 1;
    return T->grad;
}

pfgm_status pfgm_ddpmpp_forward(pfgm_ddpmpp *m, int64_t batch, const float *x, const float *z,
                                const pfgm_nn_run *run, const float **net_x, const float **net_z) {
    if (batch < 1 || batch > m->max_batch)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "DDPM++ forward: batch %lld outside 1..%lld (the planned maximum)",
                          (long long)batch, (long long)m->max_batch);
    pfgm_backend *be = m->be;
    m->fwd_done = 0;
    m->batch = batch;
    m->x = x;
    m->z = z;
    m->run = run ? *run : (pfgm_nn_run){0};
    for (int j = 0; j < m->nl; ++j) {
        dd_layer *L = &m->layers[j];
        pfgm_status st = PFGM_OK;
        switch (L->kind) {
        case DL_EMBED: st = pfgm_zembed_forward(be, &L->u.emb, batch, z, L->fptr, tv(m, L->t_out)); break;
        case DL_CONV_IN:
            st = pfgm_conv2d_forward(be, &L->u.conv, batch, x, tv(m, L->t_out), L->fptr[0],
                                     L->fptr[0] ? pfgm_conv2d_workspace(be, &L->u.conv, batch) : 0);
            break;
        case DL_RES:
            st = pfgm_resblock_forward(be, &L->u.rb, batch, &m->run, tv(m, L->t_in), tv(m, L->t_skip),
                                       tv(m, m->t_temb), L->fptr, tv(m, L->t_out));
            break;
        case DL_ATTN: st = pfgm_attn_forward(be, &L->u.at, batch, tv(m, L->t_in), L->fptr, tv(m, L->t_out)); break;
        case DL_HEAD:
            st = pfgm_head_forward(be, &L->u.hd, batch, tv(m, L->t_in), L->fptr, tv(m, L->t_out), tv(m, L->t_out2));
            break;
        }
        if (st != PFGM_OK) return pfgm_error_prefix(st, "DDPM++ forward, all_modules.%d", L->module);
    }
    *net_x = tv(m, m->t_netx);
    *net_z = tv(m, m->t_netz);
    m->fwd_done = 1;
    return PFGM_OK;
}

pfgm_status pfgm_ddpmpp_backward(pfgm_ddpmpp *m, const float *dnet_x, const float *dnet_z, float *dx) {
    if (m->mode != PFGM_DDPMPP_TRAIN)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "DDPM++ backward: the model was built for inference only");
    if (!m->fwd_done) return pfgm_error(PFGM_ERR_INVALID_ARG, "DDPM++ backward: no forward pass to differentiate");
    m->fwd_done = 0; /* the backward reuses forward buffers: one backward per forward */
    pfgm_backend *be = m->be;
    const int64_t batch = m->batch;
    for (int t = 0; t < m->nt; ++t) m->tensors[t].grad_ready = 0;
    for (int j = m->nl - 1; j >= 0; --j) {
        dd_layer *L = &m->layers[j];
        pfgm_status st = PFGM_OK;
        int acc_in, acc_skip, acc_temb;
        if (L->t_out >= 0 && L->kind != DL_HEAD && !m->tensors[L->t_out].grad_ready)
            return pfgm_error(PFGM_ERR_INTERNAL, "DDPM++ backward: all_modules.%d has no output gradient", L->module);
        switch (L->kind) {
        case DL_HEAD: {
            float *gin = tg(m, L->t_in, &acc_in);
            st = pfgm_head_backward(be, &L->u.hd, batch, tv(m, L->t_in), L->bptr, dnet_x, dnet_z, gin, acc_in);
            break;
        }
        case DL_ATTN: {
            float *gin = tg(m, L->t_in, &acc_in);
            st = pfgm_attn_backward(be, &L->u.at, batch, tv(m, L->t_in), L->bptr, m->tensors[L->t_out].grad, gin,
                                    acc_in);
            break;
        }
        case DL_RES: {
            float *gin = tg(m, L->t_in, &acc_in);
            float *gskip = tg(m, L->t_skip, &acc_skip);
            float *gtemb = tg(m, m->t_temb, &acc_temb);
            st = pfgm_resblock_backward(be, &L->u.rb, batch, &m->run, tv(m, L->t_in), tv(m, m->t_temb), L->bptr,
                                        m->tensors[L->t_out].grad, gin, acc_in, gskip, acc_skip, gtemb, acc_temb);
            break;
        }
        case DL_CONV_IN:
            st = pfgm_conv2d_backward(be, &L->u.conv, batch, m->x, m->tensors[L->t_out].grad, dx, 0, L->bptr[0],
                                      L->bptr[0] ? pfgm_conv2d_workspace(be, &L->u.conv, batch) : 0);
            break;
        case DL_EMBED:
            st = pfgm_zembed_backward(be, &L->u.emb, batch, m->z, L->bptr, tv(m, m->t_temb), m->tensors[m->t_temb].grad,
                                      NULL, 0);
            break;
        }
        if (st != PFGM_OK) return pfgm_error_prefix(st, "DDPM++ backward, all_modules.%d", L->module);
        if (m->grad_hook) PFGM_TRY(m->grad_hook(m->grad_hook_user, L->grad_ready_from));
    }
    return PFGM_OK;
}
