/* The parameter table: registration under the authors' names, the layout of the one value
 * buffer and the one gradient buffer, and the initialisation of spec §3.4. */
#include "pfgm/nn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/check.h"

#define PARAM_ALIGN 16 /* floats: every parameter starts on a 64-byte boundary */

pfgm_status pfgm_nn_params_add(pfgm_nn_params *t, const char *name, int ndim, const int64_t *shape, int trainable,
                               pfgm_init_kind init, double init_scale, float **value, float **grad) {
    if (!name || strlen(name) >= PFGM_NN_NAME_MAX)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "parameter name '%s' is longer than %d bytes", name ? name : "(null)",
                          PFGM_NN_NAME_MAX - 1);
    if (ndim < 1 || ndim > PFGM_NN_MAX_DIMS)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "parameter %s: %d dimensions (1 to %d allowed)", name, ndim,
                          PFGM_NN_MAX_DIMS);
    if (init == PFGM_INIT_DEFAULT && ndim < 2)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "parameter %s: default_init needs a matrix or a conv kernel", name);
    if (pfgm_nn_params_find(t, name) >= 0)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "parameter %s registered twice", name);
    int64_t count = 1;
    for (int d = 0; d < ndim; ++d) {
        if (shape[d] <= 0)
            return pfgm_error(PFGM_ERR_INVALID_ARG, "parameter %s: dimension %d is %lld", name, d,
                              (long long)shape[d]);
        count *= shape[d];
    }
    if (t->n == t->cap) {
        int cap = t->cap ? 2 * t->cap : 64;
        pfgm_nn_param *items = realloc(t->items, (size_t)cap * sizeof *items);
        if (!items) return pfgm_error(PFGM_ERR_NOMEM, "parameter table: cannot grow to %d entries", cap);
        t->items = items;
        t->cap = cap;
    }
    pfgm_nn_param *p = &t->items[t->n++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    for (int d = 0; d < ndim; ++d) p->shape[d] = shape[d];
    p->count = count;
    p->trainable = trainable;
    p->init = init;
    p->init_scale = init_scale;
    p->bind_value = value;
    p->bind_grad = grad;
    return PFGM_OK;
}

void pfgm_nn_params_layout(pfgm_nn_params *t) {
    int64_t off = 0;
    t->count = t->trainable_count = 0;
    /* trainable first, then fixed: the optimizer and the EMA see one prefix */
    for (int pass = 0; pass < 2; ++pass) {
        for (int i = 0; i < t->n; ++i) {
            pfgm_nn_param *p = &t->items[i];
            if ((pass == 0) != (p->trainable != 0)) continue;
            p->offset = off;
            off += (p->count + PARAM_ALIGN - 1) / PARAM_ALIGN * PARAM_ALIGN;
            t->count += p->count;
            if (p->trainable) t->trainable_count += p->count;
        }
        if (pass == 0 && t->prefix_multiple > 0) off = (off + t->prefix_multiple - 1) / t->prefix_multiple * t->prefix_multiple;
        if (pass == 0) t->trainable_floats = off;
    }
    t->floats = off;
}

static void params_bind(pfgm_nn_params *t) {
    for (int i = 0; i < t->n; ++i) {
        pfgm_nn_param *p = &t->items[i];
        if (p->bind_value) *p->bind_value = t->value + p->offset;
        if (p->bind_grad) *p->bind_grad = p->trainable ? t->grad + p->offset : NULL;
    }
}

pfgm_status pfgm_nn_params_alloc(pfgm_nn_params *t, pfgm_backend *be) {
    pfgm_nn_params_layout(t);
    if (t->value) return pfgm_error(PFGM_ERR_INVALID_ARG, "parameter table: buffers already allocated");
    size_t bytes = (size_t)t->floats * sizeof(float);
    PFGM_TRY(be->alloc(be, bytes, (void **)&t->value));
    pfgm_status st = be->alloc(be, bytes, (void **)&t->grad);
    if (st != PFGM_OK) {
        be->free(be, t->value);
        t->value = NULL;
        return pfgm_error_prefix(st, "parameter gradients");
    }
    t->be = be;
    params_bind(t);
    return PFGM_OK;
}

/* _compute_fans of models/layers.py with in_axis 1, out_axis 0: the receptive field is the
 * product of the trailing dimensions. fan_avg = (fan_in + fan_out) / 2. */
static double fan_avg(const pfgm_nn_param *p) {
    double rf = 1.0;
    for (int d = 2; d < p->ndim; ++d) rf *= (double)p->shape[d];
    return 0.5 * ((double)p->shape[1] * rf + (double)p->shape[0] * rf);
}

pfgm_status pfgm_nn_params_initialize(pfgm_nn_params *t, uint32_t seed) {
    if (!t->value) return pfgm_error(PFGM_ERR_INVALID_ARG, "parameter table: initialize before alloc");
    float *host = calloc((size_t)t->floats, sizeof(float));
    if (!host) return pfgm_error(PFGM_ERR_NOMEM, "parameter init: cannot allocate %lld floats", (long long)t->floats);
    const pfgm_rng rng = {.seed = seed, .rank = 0, .stream = PFGM_STREAM_INIT, .step = 0};
    for (int i = 0; i < t->n; ++i) {
        const pfgm_nn_param *p = &t->items[i];
        float *v = host + p->offset;
        switch (p->init) {
        case PFGM_INIT_ZEROS: break;
        case PFGM_INIT_ONES:
            for (int64_t e = 0; e < p->count; ++e) v[e] = 1.0f;
            break;
        case PFGM_INIT_NORMAL:
            pfgm_rng_normal(&rng, (uint64_t)p->offset, (size_t)p->count, v);
            for (int64_t e = 0; e < p->count; ++e) v[e] *= (float)p->init_scale;
            break;
        case PFGM_INIT_DEFAULT: {
            /* variance_scaling(scale, 'fan_avg', 'uniform'): (2u - 1) * sqrt(3 scale / fan_avg) */
            double scale = p->init_scale == 0.0 ? 1e-10 : p->init_scale;
            float a = (float)sqrt(3.0 * scale / fan_avg(p));
            pfgm_rng_uniform(&rng, (uint64_t)p->offset, (size_t)p->count, v);
            for (int64_t e = 0; e < p->count; ++e) v[e] = (v[e] * 2.0f - 1.0f) * a;
            break;
        }
        }
    }
    pfgm_status st = pfgm_backend_upload(t->be, t->value, host, t->floats);
    free(host);
    return st;
}

pfgm_status pfgm_nn_params_zero_grad(pfgm_nn_params *t) {
    if (!t->grad) return pfgm_error(PFGM_ERR_INVALID_ARG, "parameter table: zero_grad before alloc");
    return t->be->memzero(t->be, t->grad, (size_t)t->floats * sizeof(float));
}

int pfgm_nn_params_find(const pfgm_nn_params *t, const char *name) {
    for (int i = 0; i < t->n; ++i)
        if (strcmp(t->items[i].name, name) == 0) return i;
    return -1;
}

void pfgm_nn_params_release(pfgm_nn_params *t) {
    if (!t) return;
    if (t->be) {
        t->be->free(t->be, t->value);
        t->be->free(t->be, t->grad);
    }
    free(t->items);
    memset(t, 0, sizeof *t);
}

size_t pfgm_slot_bytes(const pfgm_slot_spec *s, int64_t batch) {
    if (s->life == PFGM_SLOT_UNUSED) return 0;
    size_t b = (size_t)s->per_image * (size_t)batch * sizeof(float) + s->fixed_bytes;
    return (b + 63) & ~(size_t)63;
}
