/* Private to the dataset reader: the reader object shared by dataset_h5.c (the file side:
 * validation, opening, reading one block's rows with checksum diagnosis) and
 * dataset_stream.c (the epoch order, the block cache, the prefetch thread, batches). */
#ifndef PFGM_IO_DATASET_INTERNAL_H
#define PFGM_IO_DATASET_INTERNAL_H

#include <hdf5.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "pfgm/dataset.h"

#define PFGM_DATASET_MSG_LEN 1024

struct pfgm_dataset {
    /* ---- fixed at open ---- */
    char path[4096];
    int rank, world_size;
    int64_t count;     /* images in the file */
    int64_t per_rank;  /* floor(count / W): images of this rank's slice of an epoch */
    int64_t steps;     /* floor(per_rank / L) */
    int64_t L;         /* large batch size */
    int64_t C, H, W, dim;
    uint32_t seed;
    int random_flip, has_labels;
    int64_t B;         /* rows per block */
    int64_t nblocks;   /* ceil(count / B); the last block holds count - (nblocks-1)*B rows */
    int64_t K;         /* shuffle window in blocks */
    int64_t Q;         /* shuffle window in images: K * B */
    int64_t nwindows;  /* ceil(per_rank / Q) */
    float to_unit[256]; /* x -> 2 * (x / 255) - 1 */

    /* ---- HDF5 (only under the HDF5 lock; after open, only the filling thread) ---- */
    hid_t file, images, labels;

    /* ---- the filling side: the prefetch thread, or the caller without prefetch ---- */
    int64_t nslots;
    uint8_t *slot_pixels;  /* [nslots, B, C, H, W] */
    int32_t *slot_labels;  /* [nslots, B], NULL without /labels */
    int64_t *slot_block;   /* [nslots]: block held, -1 when empty */
    int64_t *slot_until;   /* [nslots]: when the block is done (cache_get in dataset_stream.c) */
    int64_t *block_slot;   /* [nblocks]: slot holding the block, -1 */
    _Atomic int64_t blocks_read; /* read from the file since open (by the filler) */
    int64_t *block_perm;   /* [nblocks]: the block order of epoch perm_epoch */
    int64_t perm_epoch;    /* -1 before the first draw */
    int64_t last_at;       /* index in block_perm of the file's last (possibly short) block */
    int64_t *win_perm[2];  /* [Q] each: two window orders (a batch may straddle two) */
    uint64_t win_key[2];   /* epoch * nwindows + window of each, UINT64_MAX when unset */
    float *stage;          /* [L, C, H, W]: the prepared batch */
    int32_t *stage_labels; /* [L] */

    /* ---- the hand-over between the caller and the prefetch thread (under mu) ---- */
    int prefetch, lock_ready, thread_started;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int want;                        /* a batch is asked for at want_pos */
    int busy;                        /* the thread is preparing a batch */
    int ready;                       /* stage holds the batch at ready_pos, or its failure */
    int quit;
    pfgm_dataset_position want_pos, ready_pos;
    pfgm_status ready_st;
    char ready_msg[PFGM_DATASET_MSG_LEN];

    /* ---- the caller's side ---- */
    pfgm_dataset_position pos;       /* batches delivered */
    pfgm_status failed;              /* sticky failure of next_batch, PFGM_OK before */
    char failed_msg[PFGM_DATASET_MSG_LEN];
};

/* Reads block b (rows [b*B, b*B + n), n = B or the last block's rows) of /images, and of
 * /labels when present, into pixels ([n, C, H, W]) and labels ([n]) under the HDF5 lock.
 * HDF5 verifies the chunks' Fletcher32 sums; a mismatch is PFGM_ERR_FORMAT naming the
 * damaged chunk's rows, any other failure PFGM_ERR_HDF5 (both prefixed with the file). */
pfgm_status pfgm_dataset_read_block(pfgm_dataset *ds, int64_t b, uint8_t *pixels, int32_t *labels);

/* The stream side of open and close (dataset_stream.c): allocates the cache, the orders
 * and the staging batch, and starts the prefetch thread asking for batch (0, 0); stops
 * and joins it and frees them. Errors: PFGM_ERR_NOMEM, PFGM_ERR_INTERNAL. */
pfgm_status pfgm_dataset_stream_start(pfgm_dataset *ds);
void pfgm_dataset_stream_stop(pfgm_dataset *ds);

#endif /* PFGM_IO_DATASET_INTERNAL_H */
