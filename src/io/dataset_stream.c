/* The streaming side of the dataset reader (include/pfgm/dataset.h, docs/data-format.md
 * "Epoch order" and "Streaming"): the epoch order as a pure function of (epoch, index),
 * the bounded cache of whole blocks (evicting the block done soonest), the prefetch thread
 * that prepares batch k + 1 while the caller trains on batch k, and the caller's
 * next_batch / position calls.
 *
 * Threads: the filler (the prefetch thread, or the caller itself with data.prefetch false)
 * owns the cache, the orders and the staging batch; the caller owns the position. They
 * meet only under ds->mu: the caller asks for a position (want), the thread fills the
 * staging batch and marks it ready; the caller copies it out and asks for the next. HDF5
 * is entered only under the process-wide HDF5 lock (io/h5util.h), because the trainer may
 * write a checkpoint while the thread reads. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "io/dataset_internal.h"
#include "pfgm/rng.h"
#include "util/check.h"

/* ---- the epoch order (a pure function of epoch and position) ---------------------------- */

/* The block order of `epoch`: one permutation shared by every rank (rank 0 of the stream). */
static void block_order(pfgm_dataset *ds, int64_t epoch) {
    if (ds->perm_epoch == epoch) return;
    pfgm_permutation(ds->seed, 0, PFGM_STREAM_DATA_BLOCKS, (uint64_t)epoch, ds->nblocks,
                     ds->block_perm);
    for (int64_t j = 0; j < ds->nblocks; ++j)
        if (ds->block_perm[j] == ds->nblocks - 1) ds->last_at = j;
    ds->perm_epoch = epoch;
}

/* Position g of the epoch's sequence of all images (blocks in block_perm order) as
 * (block, row in block, end: the sequence position just past the block). Only the file's
 * last block may be short; it sits at last_at. */
static void locate(const pfgm_dataset *ds, int64_t g, int64_t *block, int64_t *row,
                   int64_t *end) {
    const int64_t B = ds->B, head = ds->last_at * B;
    const int64_t last_rows = ds->count - (ds->nblocks - 1) * B;
    int64_t j, r;
    if (g < head) {
        j = g / B;
        r = g % B;
        *end = (j + 1) * B;
    } else if (g < head + last_rows) {
        j = ds->last_at;
        r = g - head;
        *end = head + last_rows;
    } else {
        j = ds->last_at + 1 + (g - head - last_rows) / B;
        r = (g - head - last_rows) % B;
        *end = head + last_rows + (j - ds->last_at) * B;
    }
    *block = ds->block_perm[j];
    *row = r;
}

/* The order of window w of `epoch` on this rank: a permutation of the window's n_w slice
 * positions, kept in one of two slots (a batch may straddle two windows). */
static const int64_t *window_order(pfgm_dataset *ds, int64_t epoch, int64_t w) {
    const uint64_t key = (uint64_t)epoch * (uint64_t)ds->nwindows + (uint64_t)w;
    for (int s = 0; s < 2; ++s)
        if (ds->win_key[s] == key) return ds->win_perm[s];
    /* replace the slot not holding the previous window (windows are visited in order) */
    const int s = ds->win_key[0] == key - 1 ? 1 : 0;
    const int64_t start = w * ds->Q;
    const int64_t n = ds->per_rank - start < ds->Q ? ds->per_rank - start : ds->Q;
    pfgm_permutation(ds->seed, (uint32_t)ds->rank, PFGM_STREAM_DATA_SHUFFLE, key, n,
                     ds->win_perm[s]);
    ds->win_key[s] = key;
    return ds->win_perm[s];
}

/* ---- the block cache ------------------------------------------------------------------ */

/* The slot holding block b, reading it into a free slot or the one whose block is done
 * soonest. `until` orders the blocks by when they are last needed: epoch * count + the
 * epoch sequence position just past the block. The windows walk the sequence in order, so
 * a block whose end lies before the current window is done (smaller keys than any block
 * still needed), and a cache of K + 2 slots holds every block the current window needs:
 * each block is read at most once per epoch. Plain LRU is not enough: it can evict a block
 * that the previous window used first and the current one still needs. */
static pfgm_status cache_get(pfgm_dataset *ds, int64_t b, int64_t until, int64_t *slot) {
    int64_t s = ds->block_slot[b];
    if (s < 0) {
        s = 0;
        for (int64_t i = 0; i < ds->nslots; ++i) {
            if (ds->slot_block[i] < 0) {
                s = i;
                break;
            }
            if (ds->slot_until[i] < ds->slot_until[s]) s = i;
        }
        if (ds->slot_block[s] >= 0) ds->block_slot[ds->slot_block[s]] = -1;
        ds->slot_block[s] = -1;
        PFGM_TRY(pfgm_dataset_read_block(ds, b, ds->slot_pixels + (size_t)(s * ds->B * ds->dim),
                                         ds->slot_labels ? ds->slot_labels + s * ds->B : NULL));
        ds->slot_block[s] = b;
        ds->block_slot[b] = s;
        atomic_fetch_add_explicit(&ds->blocks_read, 1, memory_order_relaxed);
    }
    ds->slot_until[s] = until;
    *slot = s;
    return PFGM_OK;
}

/* Fills the staging batch with batch `pos`: image k is slice position
 * j = index * L + k, taken through its window's order, located in the epoch's block
 * sequence, fetched through the cache, scaled to [-1, 1] and mirrored when its flip bit is
 * set (word k of PFGM_STREAM_DATA_FLIP keyed (seed, rank) at step epoch * steps + index). */
static pfgm_status fill(pfgm_dataset *ds, pfgm_dataset_position pos) {
    block_order(ds, pos.epoch);
    const pfgm_rng flip_rng = {.seed = ds->seed, .rank = (uint32_t)ds->rank,
                               .stream = PFGM_STREAM_DATA_FLIP,
                               .step = (uint64_t)(pos.epoch * ds->steps + pos.index)};
    const int64_t C = ds->C, H = ds->H, W = ds->W, dim = ds->dim;
    for (int64_t k = 0; k < ds->L; ++k) {
        const int64_t j = pos.index * ds->L + k;
        const int64_t w = j / ds->Q;
        const int64_t q = w * ds->Q + window_order(ds, pos.epoch, w)[j - w * ds->Q];
        int64_t block, row, end, slot;
        locate(ds, (int64_t)ds->rank * ds->per_rank + q, &block, &row, &end);
        PFGM_TRY(cache_get(ds, block, pos.epoch * ds->count + end, &slot));
        const uint8_t *x = ds->slot_pixels + (size_t)((slot * ds->B + row) * dim); /* [C,H,W] */
        float *y = ds->stage + k * dim;                                            /* [C,H,W] */
        int flip = 0;
        if (ds->random_flip) {
            uint32_t wd;
            pfgm_rng_u32(&flip_rng, (uint64_t)k, 1, &wd);
            flip = (int)(wd >> 31);
        }
        for (int64_t r = 0; r < C * H; ++r) {
            const uint8_t *xr = x + r * W;
            float *yr = y + r * W;
            if (flip)
                for (int64_t c = 0; c < W; ++c) yr[c] = ds->to_unit[xr[W - 1 - c]];
            else
                for (int64_t c = 0; c < W; ++c) yr[c] = ds->to_unit[xr[c]];
        }
        ds->stage_labels[k] = ds->has_labels ? ds->slot_labels[slot * ds->B + row] : -1;
    }
    return PFGM_OK;
}

/* ---- the prefetch thread ------------------------------------------------------------------ */

static void *prefetch_main(void *arg) {
    pfgm_dataset *ds = arg;
    pthread_mutex_lock(&ds->mu);
    for (;;) {
        while (!ds->quit && !ds->want) pthread_cond_wait(&ds->cv, &ds->mu);
        if (ds->quit) break;
        const pfgm_dataset_position pos = ds->want_pos;
        ds->want = 0;
        ds->busy = 1;
        pthread_mutex_unlock(&ds->mu);
        pfgm_error_clear();
        const pfgm_status st = fill(ds, pos);
        pthread_mutex_lock(&ds->mu);
        ds->busy = 0;
        ds->ready = 1;
        ds->ready_pos = pos;
        ds->ready_st = st;
        snprintf(ds->ready_msg, sizeof ds->ready_msg, "%s", st == PFGM_OK ? "" : pfgm_error_message());
        pthread_cond_broadcast(&ds->cv);
    }
    pthread_mutex_unlock(&ds->mu);
    return NULL;
}

/* Asks the thread for batch `pos` (caller holds mu, the thread is idle). */
static void request(pfgm_dataset *ds, pfgm_dataset_position pos) {
    ds->ready = 0;
    ds->want = 1;
    ds->want_pos = pos;
    pthread_cond_broadcast(&ds->cv);
}

pfgm_status pfgm_dataset_stream_start(pfgm_dataset *ds) {
    const size_t dim = (size_t)ds->dim, slot_rows = (size_t)(ds->nslots * ds->B);
    ds->perm_epoch = -1;
    ds->win_key[0] = ds->win_key[1] = UINT64_MAX;
    ds->slot_pixels = malloc(slot_rows * dim);
    if (ds->has_labels) ds->slot_labels = malloc(slot_rows * sizeof *ds->slot_labels);
    ds->slot_block = malloc((size_t)ds->nslots * sizeof *ds->slot_block);
    ds->slot_until = calloc((size_t)ds->nslots, sizeof *ds->slot_until);
    ds->block_slot = malloc((size_t)ds->nblocks * sizeof *ds->block_slot);
    ds->block_perm = malloc((size_t)ds->nblocks * sizeof *ds->block_perm);
    for (int s = 0; s < 2; ++s) ds->win_perm[s] = malloc((size_t)ds->Q * sizeof(int64_t));
    ds->stage = malloc((size_t)ds->L * dim * sizeof *ds->stage);
    ds->stage_labels = malloc((size_t)ds->L * sizeof *ds->stage_labels);
    if (!ds->slot_pixels || (ds->has_labels && !ds->slot_labels) || !ds->slot_block ||
        !ds->slot_until || !ds->block_slot || !ds->block_perm || !ds->win_perm[0] ||
        !ds->win_perm[1] || !ds->stage || !ds->stage_labels)
        return pfgm_error(PFGM_ERR_NOMEM, "%s: cannot allocate the reader's cache (%zu bytes)",
                          ds->path, slot_rows * dim);
    for (int64_t s = 0; s < ds->nslots; ++s) ds->slot_block[s] = -1;
    for (int64_t b = 0; b < ds->nblocks; ++b) ds->block_slot[b] = -1;
    if (pthread_mutex_init(&ds->mu, NULL) != 0)
        return pfgm_error(PFGM_ERR_INTERNAL, "%s: cannot create the reader's lock", ds->path);
    if (pthread_cond_init(&ds->cv, NULL) != 0) {
        pthread_mutex_destroy(&ds->mu);
        return pfgm_error(PFGM_ERR_INTERNAL, "%s: cannot create the reader's lock", ds->path);
    }
    ds->lock_ready = 1;
    if (!ds->prefetch) return PFGM_OK;
    pthread_mutex_lock(&ds->mu);
    request(ds, (pfgm_dataset_position){0, 0});
    pthread_mutex_unlock(&ds->mu);
    /* The thread blocks the asynchronous signals (it inherits the mask), so SIGTERM/SIGINT
     * and the like reach the caller's thread, where pfgm-train's preemption handling runs;
     * faults stay deliverable. */
    sigset_t async, old;
    sigfillset(&async);
    const int faults[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP};
    for (size_t i = 0; i < sizeof faults / sizeof *faults; ++i) sigdelset(&async, faults[i]);
    pthread_sigmask(SIG_BLOCK, &async, &old);
    const int rc = pthread_create(&ds->thread, NULL, prefetch_main, ds);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return pfgm_error(PFGM_ERR_INTERNAL, "%s: cannot start the prefetch thread", ds->path);
    ds->thread_started = 1;
    return PFGM_OK;
}

void pfgm_dataset_stream_stop(pfgm_dataset *ds) {
    if (ds->thread_started) {
        pthread_mutex_lock(&ds->mu);
        ds->quit = 1;
        pthread_cond_broadcast(&ds->cv);
        pthread_mutex_unlock(&ds->mu);
        pthread_join(ds->thread, NULL);
        ds->thread_started = 0;
    }
    if (ds->lock_ready) {
        pthread_cond_destroy(&ds->cv);
        pthread_mutex_destroy(&ds->mu);
        ds->lock_ready = 0;
    }
    free(ds->slot_pixels);
    free(ds->slot_labels);
    free(ds->slot_block);
    free(ds->slot_until);
    free(ds->block_slot);
    free(ds->block_perm);
    free(ds->win_perm[0]);
    free(ds->win_perm[1]);
    free(ds->stage);
    free(ds->stage_labels);
}

/* ---- the caller's side ------------------------------------------------------------------- */

static pfgm_dataset_position after(const pfgm_dataset *ds, pfgm_dataset_position p) {
    if (p.index + 1 < ds->steps) return (pfgm_dataset_position){p.epoch, p.index + 1};
    return (pfgm_dataset_position){p.epoch + 1, 0};
}

pfgm_status pfgm_dataset_next_batch(pfgm_dataset *ds, float *images, int32_t *labels) {
    if (!ds || !images)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "dataset_next_batch: NULL dataset or buffer");
    if (ds->failed != PFGM_OK) return pfgm_error(ds->failed, "%s", ds->failed_msg);
    const size_t bytes = (size_t)(ds->L * ds->dim) * sizeof(float);
    pfgm_status st = PFGM_OK;
    if (!ds->prefetch) {
        st = fill(ds, ds->pos);
        if (st == PFGM_OK) {
            memcpy(images, ds->stage, bytes);
            if (labels) memcpy(labels, ds->stage_labels, (size_t)ds->L * sizeof *labels);
        }
    } else {
        pthread_mutex_lock(&ds->mu);
        while (!ds->ready) pthread_cond_wait(&ds->cv, &ds->mu);
        if (ds->ready_pos.epoch != ds->pos.epoch || ds->ready_pos.index != ds->pos.index) {
            st = pfgm_error(PFGM_ERR_INTERNAL, "%s: prefetched batch (%lld, %lld) is not the "
                            "position (%lld, %lld)", ds->path, (long long)ds->ready_pos.epoch,
                            (long long)ds->ready_pos.index, (long long)ds->pos.epoch,
                            (long long)ds->pos.index);
        } else if (ds->ready_st != PFGM_OK) {
            st = pfgm_error(ds->ready_st, "%s", ds->ready_msg);
        } else {
            memcpy(images, ds->stage, bytes);
            if (labels) memcpy(labels, ds->stage_labels, (size_t)ds->L * sizeof *labels);
            request(ds, after(ds, ds->pos)); /* read batch k + 1 while the caller trains */
        }
        pthread_mutex_unlock(&ds->mu);
    }
    if (st != PFGM_OK) {
        ds->failed = st;
        snprintf(ds->failed_msg, sizeof ds->failed_msg, "%s", pfgm_error_message());
        return st;
    }
    ds->pos = after(ds, ds->pos);
    return PFGM_OK;
}

void pfgm_dataset_get_position(const pfgm_dataset *ds, pfgm_dataset_position *pos) {
    *pos = ds->pos;
}

pfgm_status pfgm_dataset_set_position(pfgm_dataset *ds, const pfgm_dataset_position *pos) {
    if (pos->epoch < 0 || pos->index < 0 || pos->index >= ds->steps)
        return pfgm_error(PFGM_ERR_INVALID_ARG,
                          "dataset position (epoch %lld, index %lld) is outside epochs >= 0, "
                          "index 0..%lld",
                          (long long)pos->epoch, (long long)pos->index, (long long)ds->steps - 1);
    ds->pos = *pos;
    if (ds->prefetch) {
        pthread_mutex_lock(&ds->mu);
        while (ds->want || ds->busy) pthread_cond_wait(&ds->cv, &ds->mu);
        if (!ds->ready || ds->ready_pos.epoch != pos->epoch || ds->ready_pos.index != pos->index)
            request(ds, *pos);
        pthread_mutex_unlock(&ds->mu);
    }
    return PFGM_OK;
}

void pfgm_dataset_get_stats(const pfgm_dataset *ds, pfgm_dataset_stats *st) {
    memset(st, 0, sizeof *st);
    st->block_images = ds->B;
    st->blocks = ds->nblocks;
    st->window_blocks = ds->K;
    st->cache_slots = ds->nslots;
    st->cache_bytes = ds->nslots * ds->B * (ds->dim + (ds->has_labels ? 4 : 0));
    st->staging_bytes = ds->L * (ds->dim * (int64_t)sizeof(float) + 4);
    st->prefetch = ds->prefetch;
    st->blocks_read = atomic_load_explicit(&((pfgm_dataset *)ds)->blocks_read, memory_order_relaxed);
}
