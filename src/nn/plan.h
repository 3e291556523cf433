/* Activation memory planning for a network (private to src/nn): every buffer a forward or
 * backward pass touches is an interval of steps [first, last] and a size that scales with
 * the batch (plus a fixed part, for conv workspaces). pfgm_nn_plan_solve packs them into one
 * arena so that buffers whose intervals overlap never share bytes: greedy first-fit by
 * decreasing size (the usual offset-assignment heuristic of DNN memory planners). The arena
 * is allocated once when the model is built; no step allocates. */
#ifndef PFGM_NN_PLAN_H
#define PFGM_NN_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "pfgm/status.h"

typedef struct nn_plan_buf {
    int64_t per_image;  /* floats per image */
    size_t fixed_bytes; /* added once, whatever the batch */
    int first, last;    /* steps during which the buffer holds live data (inclusive) */
    size_t offset;      /* bytes into the arena (set by pfgm_nn_plan_solve) */
    size_t bytes;       /* size at the solved batch, rounded to 64 */
} nn_plan_buf;

typedef struct nn_plan {
    nn_plan_buf *b;
    int n, cap;
    size_t total; /* arena bytes at the solved batch */
} nn_plan;

/* New buffer live at `step`; *id its index. Errors: PFGM_ERR_NOMEM. */
pfgm_status pfgm_nn_plan_add(nn_plan *p, int64_t per_image, size_t fixed_bytes, int step, int *id);
/* Extends buffer `id` to be live at `step` too. */
void pfgm_nn_plan_use(nn_plan *p, int id, int step);
/* Assigns offsets for `batch` images and sets p->total. Errors: PFGM_ERR_NOMEM. */
pfgm_status pfgm_nn_plan_solve(nn_plan *p, int64_t batch);
/* Arena bytes the plan would need at `batch` (the plan itself is left as it was). */
pfgm_status pfgm_nn_plan_bytes_at(const nn_plan *p, int64_t batch, size_t *bytes);
/* Sum of the sizes at the solved batch: what the arena would be without any reuse. */
size_t pfgm_nn_plan_unshared_bytes(const nn_plan *p);
void pfgm_nn_plan_release(nn_plan *p);

#endif
