/* What the converters of prep.c share with the parallel writer of prep_parallel.c: the
 * source abstraction (n images fetched by source index) and the rank-agreement helper.
 * Private header (io layer). */
#ifndef PFGM_IO_PREP_INTERNAL_H
#define PFGM_IO_PREP_INTERNAL_H

#include <stdint.h>

#include "pfgm/comm.h"
#include "pfgm/prep.h"

/* Where the images come from: n images of [C, H, W], fetched by source index. */
typedef struct prep_source {
    int64_t n, C, H, W;
    int has_labels;
    /* Writes image i ([C, H, W] uint8) and its label. */
    pfgm_status (*get)(void *ctx, int64_t i, uint8_t *image, int32_t *label);
    /* Optional (parallel runs): called by each rank after its part [lo, hi) was read
     * without error, for the checks a streaming reader can only make at the end (the IDX
     * file's exact length, by the rank whose part ends the file). NULL: none. */
    pfgm_status (*finish)(void *ctx, int64_t lo, int64_t hi);
    void *ctx;
} prep_source;

/* Source images [lo, hi) are rank r's part of the input: lo = floor(r n / W). */
int64_t prep_part_start(int64_t n, int rank, int world);

/* Collective over comm: every rank passes its own status (message in pfgm_error_message);
 * if any failed, the lowest failing rank's status and message become every rank's (so all
 * ranks return the same error and exit alike); else PFGM_OK. A failure of the
 * communication itself is returned as such. */
pfgm_status prep_agree(pfgm_comm *comm, pfgm_status st);

/* The parallel form of the shuffled write (docs/data-format.md, "Parallel prep"): called
 * by every rank of opt->comm with the same source (same n and order), output and options.
 * Writes the same file as the serial path. Errors: those of the source and the writer,
 * the same on every rank. */
pfgm_status prep_write_parallel(const prep_source *src, const char *out, const char *source,
                                const pfgm_prep_options *opt);

#endif
