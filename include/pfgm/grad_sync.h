/* Gradient synchronisation of the training step (src/train/grad_sync.c): the average of the
 * gradients over W ranks in buckets that start while the backward pass is still running, and
 * ZeRO-1, where each rank keeps the optimizer state (Adam m, v, EMA) of its shard only.
 *
 * Layout. The trainable prefix [0, T) of the parameter buffer (include/pfgm/nn.h) is padded
 * to a multiple of W * PFGM_GRAD_BLOCK floats (pfgm_grad_sync_param_multiple; the model is
 * built with it). Buckets cut [0, T) from the top down, in the order the backward pass
 * finishes gradients (the last layers' parameters sit highest): bucket 0 is
 * [T - S, T), bucket 1 the S floats below, ..., the last bucket whatever remains at 0, each
 * a multiple of W * PFGM_GRAD_BLOCK, S = distributed.bucket_mb MiB rounded down to that
 * multiple (at least one multiple). distributed.bucket_mb: 0 makes one bucket [0, T),
 * started after the whole backward pass: the unbucketed path.
 *
 * Overlap. pfgm_grad_sync_ready(ready_from) is called after each layer's backward
 * (pfgm_ddpmpp_set_grad_hook): every bucket lying wholly at or above ready_from is final and
 * its collective starts at once (MPI_Iallreduce on host memory, NCCL on its stream on GPUs;
 * comm.h), then the communicator is given a chance to progress. pfgm_grad_sync_finish starts
 * what is left and waits for all.
 *
 * Results. zero 0: each bucket is all-reduced with AVG (sum, then times 1/W). zero 1: each
 * bucket is reduce-scattered with AVG: rank r receives block r (the bucket's r-th 1/W), its
 * shard; the optimizer updates only its shards (pfgm_optim_create_sharded) and
 * pfgm_grad_sync_gather_params all-gathers the parameters bucket by bucket. For W = 2 every
 * element is a + b then times 1/2 either way, so buckets, no buckets and ZeRO give the same
 * bits. The global gradient norm (clipping, spec §1.13) is the square root of the sum, in
 * block order, of the sums of squares of PFGM_GRAD_BLOCK-float blocks (backend op
 * sumsq_blocks): every shard boundary is a block boundary, so each block's sum is the same
 * bits whichever rank computes it, and with ZeRO the ranks exchange block sums (an all-reduce
 * of T / PFGM_GRAD_BLOCK doubles, in which every entry has one non-zero term). The norm is
 * therefore the same bits for any bucket size and for ZeRO on or off.
 *
 * Finiteness. Before a bucket's collective starts, the sum of squares of this rank's own
 * gradients in it is added to a local total (the step names the ranks whose total is not
 * finite, as before buckets). */
#ifndef PFGM_GRAD_SYNC_H
#define PFGM_GRAD_SYNC_H

#include <stdint.h>

#include "pfgm/backend.h"
#include "pfgm/comm.h"
#include "pfgm/nn.h"
#include "pfgm/optim.h"
#include "pfgm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Floats per norm block; also the unit of every shard (4096 floats = 16 KiB). */
#define PFGM_GRAD_BLOCK 4096

/* W * PFGM_GRAD_BLOCK: what the model's trainable prefix is padded to (ddpmpp desc
 * param_multiple) for world size W >= 1. */
int64_t pfgm_grad_sync_param_multiple(int world_size);

typedef struct pfgm_grad_sync_setup {
    pfgm_backend *be;
    pfgm_nn_params *params; /* trainable_floats a multiple of pfgm_grad_sync_param_multiple(W) */
    pfgm_comm *dcomm;       /* collectives on backend memory (NULL or W = 1: none) */
    pfgm_comm *comm;        /* host collectives (the norm's block sums under ZeRO) */
    double bucket_mb;       /* distributed.bucket_mb, >= 0 (0: one bucket after backward) */
    int zero;               /* distributed.zero: 0 or 1 */
} pfgm_grad_sync_setup;

typedef struct pfgm_grad_sync pfgm_grad_sync;

/* Plans the buckets and shards and allocates a host array of T / PFGM_GRAD_BLOCK doubles.
 * Errors: PFGM_ERR_INVALID_ARG (NULL pieces, bucket_mb < 0, zero not 0/1, a prefix that is
 * not a multiple of pfgm_grad_sync_param_multiple(W): the model was built without it),
 * PFGM_ERR_NOMEM. */
pfgm_status pfgm_grad_sync_create(const pfgm_grad_sync_setup *setup, pfgm_grad_sync **out);
void pfgm_grad_sync_destroy(pfgm_grad_sync *gs);

/* The ranges of the parameter buffer this rank's optimizer updates: [0, T) (zero 0), or its
 * block of every bucket (zero 1), ascending. Valid until destroy. */
const pfgm_optim_range *pfgm_grad_sync_owned(const pfgm_grad_sync *gs, int64_t *n);
/* Number of buckets, and bucket i's range [lo, hi) (i = 0: the top one). */
int pfgm_grad_sync_buckets(const pfgm_grad_sync *gs);
void pfgm_grad_sync_bucket(const pfgm_grad_sync *gs, int i, int64_t *lo, int64_t *hi);

/* A new step: no bucket started, local total 0. */
void pfgm_grad_sync_begin(pfgm_grad_sync *gs);
/* After a layer's backward: starts every not yet started bucket with lo >= ready_from (with
 * bucket_mb > 0; none otherwise), then lets the communicator progress. Errors: the
 * backend's and the communicator's. */
pfgm_status pfgm_grad_sync_ready(pfgm_grad_sync *gs, int64_t ready_from);
/* Starts the remaining buckets and waits for every collective; *local_sumsq (may be NULL)
 * = this rank's sum of squares of its own gradients before the reduction. A collective
 * over ranks. Errors: the backend's and the communicator's. */
pfgm_status pfgm_grad_sync_finish(pfgm_grad_sync *gs, double *local_sumsq);
/* The global L2 norm of the averaged trainable gradients (see the header comment); a
 * collective over comm with ZeRO. Errors: the backend's and the communicator's. */
pfgm_status pfgm_grad_sync_norm(pfgm_grad_sync *gs, double *norm);
/* ZeRO: all-gathers every bucket of the parameter buffer (rank r's block from rank r) so
 * that every rank holds all parameters after the sharded update; nothing with zero 0 or
 * W = 1. A collective. Errors: the communicator's. */
pfgm_status pfgm_grad_sync_gather_params(pfgm_grad_sync *gs);

#ifdef __cplusplus
}
#endif
#endif /* PFGM_GRAD_SYNC_H */
