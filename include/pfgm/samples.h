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

/* Grid columns for n images: ceil(sqrt(n)), so that the grid is as close to square as
 * possible (64 -> 8 x 8, 10 -> 4 columns x 3 rows). 0 for n < 1. */
int64_t pfgm_samples_grid_columns(int64_t n);

/* Attributes of an HDF5 samples file. */
typedef struct pfgm_samples_meta {
    const char *checkpoint; /* the checkpoint file sampled */
    int64_t step;           /* its training step */
    const char *solver;     /* sampling.ode_solver ("rk45", "forward_euler", "improved_euler") */
    double nfe;             /* network evaluations per batch, mean over batches */
    int64_t seed;           /* prior seed */
    const char *weights;    /* "ema" or "params" (NULL: attribute not written) */
} pfgm_samples_meta;

/* Writes an HDF5 samples file atomically: /samples uint8 [n, C, H, W] (the same layout as
 * a dataset file, so pfgm-prep's readers and FID tools can consume it), root attributes
 * format = "pfgm-samples", checkpoint (path), step, solver, nfe (mean per batch), seed,
 * weights (when meta->weights is set). /samples carries layout = "NCHW", range = [0, 255]
 * (float64 [2]) and conversion (the formula from samples_float, spec §1.10). Errors: PFGM_ERR_IO, PFGM_ERR_HDF5 naming the file;
 * nothing is left behind on error. */
pfgm_status pfgm_samples_write_h5(const char *path, const uint8_t *images, int64_t n, int64_t C, int64_t H,
                                  int64_t W, const pfgm_samples_meta *meta);

/* As pfgm_samples_write_h5, plus /samples_float float32 [n, C, H, W]: the samples x in
 * data scale as the ODE left them (images must be pfgm_samples_to_uint8 of x), with the
 * attributes layout = "NCHW", range = [-1, 1] (the nominal data scale, float64 [2]),
 * centering (x = 2 v - 1 for an image v in [0, 1], spec §1.12; unclipped), min_max (the
 * finite values' smallest and largest, float64 [2]), outside_range (values outside
 * [-1, 1]) and nonfinite (NaN/Inf values, int64). x may be NULL (then only /samples).
 * Errors as pfgm_samples_write_h5. */
pfgm_status pfgm_samples_write_h5_float(const char *path, const float *x, const uint8_t *images, int64_t n,
                                        int64_t C, int64_t H, int64_t W, const pfgm_samples_meta *meta);

/* pfgm-sample's outputs from samples x [n, C, H, W] (data scale): the authors' uint8
 * conversion, then the HDF5 file h5_path (both datasets; skipped when h5_path is NULL)
 * and the PNG grid png_path (pfgm_samples_grid_columns(n) columns, 2 pixels of padding;
 * skipped when NULL). Missing parent directories are created. All or nothing: each file is written atomically, and a failure of
 * the PNG removes the HDF5 file just written. Errors: those of the writers, naming the
 * file; PFGM_ERR_NOMEM. */
pfgm_status pfgm_samples_write_outputs(const char *png_path, const char *h5_path, const float *x, int64_t n,
                                       int64_t C, int64_t H, int64_t W, const pfgm_samples_meta *meta);

#ifdef __cplusplus
}
#endif
#endif
