/* Activation arena planning: interval-based first-fit offset assignment (see plan.h). */
#include "nn/plan.h"

#include <stdlib.h>
#include <string.h>

pfgm_status pfgm_nn_plan_add(nn_plan *p, int64_t per_image, size_t fixed_bytes, int step, int *id) {
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 256;
        nn_plan_buf *b = realloc(p->b, (size_t)cap * sizeof *b);
        if (!b) return pfgm_error(PFGM_ERR_NOMEM, "activation plan: cannot grow to %d buffers", cap);
        p->b = b;
        p->cap = cap;
    }
    p->b[p->n] = (nn_plan_buf){.per_image = per_image, .fixed_bytes = fixed_bytes, .first = step, .last = step};
    *id = p->n++;
    return PFGM_OK;
}

void pfgm_nn_plan_use(nn_plan *p, int id, int step) {
    if (step < p->b[id].first) p->b[id].first = step;
    if (step > p->b[id].last) p->b[id].last = step;
}

/* Sort records carry their keys, so the comparators need no context. */
typedef struct plan_key {
    size_t bytes, offset;
    int first, idx;
} plan_key;

/* Larger first, then earlier, then by index: a total order, the same plan every run. */
static int by_size_desc(const void *a, const void *b) {
    const plan_key *x = a, *y = b;
    if (x->bytes != y->bytes) return x->bytes > y->bytes ? -1 : 1;
    if (x->first != y->first) return x->first < y->first ? -1 : 1;
    return x->idx - y->idx;
}

static int by_offset(const void *a, const void *b) {
    const plan_key *x = a, *y = b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return x->idx - y->idx;
}

static pfgm_status plan_solve(nn_plan_buf *bufs, int n, int64_t batch, size_t *total) {
    for (int i = 0; i < n; ++i) {
        size_t bytes = (size_t)bufs[i].per_image * (size_t)batch * sizeof(float) + bufs[i].fixed_bytes;
        bufs[i].bytes = (bytes + 63) & ~(size_t)63;
        bufs[i].offset = 0;
    }
    plan_key *order = malloc((size_t)(n ? n : 1) * sizeof *order);
    int *placed = malloc((size_t)(n ? n : 1) * sizeof *placed);
    plan_key *live = malloc((size_t)(n ? n : 1) * sizeof *live);
    if (!order || !placed || !live) {
        free(order);
        free(placed);
        free(live);
        return pfgm_error(PFGM_ERR_NOMEM, "activation plan: cannot sort %d buffers", n);
    }
    for (int i = 0; i < n; ++i) order[i] = (plan_key){.bytes = bufs[i].bytes, .first = bufs[i].first, .idx = i};
    qsort(order, (size_t)n, sizeof *order, by_size_desc);
    int np = 0;
    size_t end = 0;
    for (int k = 0; k < n; ++k) {
        nn_plan_buf *x = &bufs[order[k].idx];
        if (x->bytes == 0) continue;
        int nl = 0;
        for (int j = 0; j < np; ++j) {
            const nn_plan_buf *y = &bufs[placed[j]];
            if (!(y->last < x->first || x->last < y->first))
                live[nl++] = (plan_key){.bytes = y->bytes, .offset = y->offset, .idx = placed[j]};
        }
        qsort(live, (size_t)nl, sizeof *live, by_offset);
        size_t off = 0;
        for (int j = 0; j < nl; ++j) {
            if (live[j].offset >= off + x->bytes) break; /* the gap before it fits */
            if (live[j].offset + live[j].bytes > off) off = live[j].offset + live[j].bytes;
        }
        x->offset = off;
        if (off + x->bytes > end) end = off + x->bytes;
        placed[np++] = order[k].idx;
    }
    free(order);
    free(placed);
    free(live);
    *total = end;
    return PFGM_OK;
}

pfgm_status pfgm_nn_plan_solve(nn_plan *p, int64_t batch) { return plan_solve(p->b, p->n, batch, &p->total); }

pfgm_status pfgm_nn_plan_bytes_at(const nn_plan *p, int64_t batch, size_t *bytes) {
    nn_plan_buf *copy = malloc((size_t)(p->n ? p->n : 1) * sizeof *copy);
    if (!copy) return pfgm_error(PFGM_ERR_NOMEM, "activation plan: cannot copy %d buffers", p->n);
    memcpy(copy, p->b, (size_t)p->n * sizeof *copy);
    pfgm_status st = plan_solve(copy, p->n, batch, bytes);
    free(copy);
    return st;
}

size_t pfgm_nn_plan_unshared_bytes(const nn_plan *p) {
    size_t s = 0;
    for (int i = 0; i < p->n; ++i) s += p->b[i].bytes;
    return s;
}

void pfgm_nn_plan_release(nn_plan *p) {
    free(p->b);
    memset(p, 0, sizeof *p);
}
