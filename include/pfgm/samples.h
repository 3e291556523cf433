/* Generated samples as files: the uint8 conversion the authors use for saving and FID,
 * a PNG grid (torchvision make_grid layout) and an HDF5 samples file. */
#ifndef PFGM_SAMPLES_H
#define PFGM_SAMPLES_H

#include <stdint.h>

#include "pfgm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* x [n] in data scale [-1, 1] -> out [n] uint8 as the authors' run_lib.py: the inverse
 * scaler (x + 1) / 2, then clip(255 * v, 0, 255) and a truncating cast (spec §1.10).
 * Non-finite values become 0. */
void pfgm_samples_to_uint8(int64_t n, const float *x, uint8_t *out);

/* Tiles images [n, C, H, W] uint8 (C = 1 or 3) into a grid of `nrow` images per row with
 * `padding` pixels of value 0 between and around them (torchvision make_grid), and writes
 * it as a PNG (atomically). Errors: PFGM_ERR_INVALID_ARG (shape), PFGM_ERR_NOMEM,
 * PFGM_ERR_IO (the file). */
pfgm_status pfgm_samples_write_png_grid(const char *path, const uint8_t *images, int64_t n, int64_t C, int64_t H,
                                        int64_t W, int64_t nrow, int64_t padding);

/* Writes an HDF5 samples file atomically: /samples uint8 [n, C, H, W] (the same layout as
 * a dataset file, so pfgm-prep's readers and FID tools can consume it), root attributes
 * format = "pfgm-samples", checkpoint (path), step, solver, nfe (mean per batch), seed.
 * Errors: PFGM_ERR_IO, PFGM_ERR_HDF5 naming the file; nothing is left behind on error. */
typedef struct pfgm_samples_meta {
    const char *checkpoint;
    int64_t step;
    const char *solver;
    double nfe;
    int64_t seed;
} pfgm_samples_meta;

pfgm_status pfgm_samples_write_h5(const char *path, const uint8_t *images, int64_t n, int64_t C, int64_t H,
                                  int64_t W, const pfgm_samples_meta *meta);

#ifdef __cplusplus
}
#endif
#endif
