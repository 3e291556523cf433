/* 8-bit images on the host: PNG decoding and encoding through libpng, and the center crop +
 * antialiased resize that pfgm-prep applies to folders of images (as the authors prepare
 * CelebA: CenterCrop(140), Resize(64), PFGM_SPEC.md §1.12). */
#ifndef PFGM_IMAGE_H
#define PFGM_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "pfgm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An interleaved 8-bit image: pixels [height, width, channels], row-major. */
typedef struct pfgm_image {
    int64_t width, height, channels;
    uint8_t *pixels;
} pfgm_image;

void pfgm_image_free(pfgm_image *img);

/* Decodes the PNG file `path` to 8 bits per sample with `channels` = 1 (gray) or 3 (RGB),
 * whatever the file holds: palette images are expanded, gray of 1/2/4 bits is expanded to 8,
 * 16-bit samples are scaled to 8 bits (x * 255 / 65535, rounded), alpha is dropped (as
 * PIL's convert("RGB") does), gray is replicated to RGB, and RGB becomes gray with the
 * ITU-R 601-2 weights 0.299 R + 0.587 G + 0.114 B (PIL's convert("L")). Interlaced files
 * are read whole. On success img->pixels is malloc'ed; free with pfgm_image_free.
 * Errors: PFGM_ERR_IO (missing/unreadable), PFGM_ERR_FORMAT ("not a PNG file" for a bad
 * signature; "corrupt PNG: <libpng's reason>" for a damaged or truncated file),
 * PFGM_ERR_INVALID_ARG (channels not 1 or 3), PFGM_ERR_NOMEM. */
pfgm_status pfgm_png_read(const char *path, int channels, pfgm_image *img);

/* Encodes pixels [height, width, channels] (channels 1 = gray, 3 = RGB, 8 bits) to the PNG
 * file `path`, written to `<path>.tmp.<pid>` and renamed when complete.
 * Errors: PFGM_ERR_INVALID_ARG, PFGM_ERR_IO (cannot create/rename), PFGM_ERR_FORMAT (libpng
 * refused the image). */
pfgm_status pfgm_png_write(const char *path, int64_t width, int64_t height, int channels,
                           const uint8_t *pixels);

/* Offset of a centered crop of length `crop` in a side of length `len`:
 * round((len - crop) / 2) with ties to even, as torchvision's CenterCrop computes it. */
int64_t pfgm_center_offset(int64_t len, int64_t crop);

/* Center-crops the interleaved image `src` [h, w, c] to a crop x crop square at
 * (pfgm_center_offset(w, crop), pfgm_center_offset(h, crop)) and resizes it to
 * size x size, writing planar dst [c, size, size] (the dataset's layout).
 * Resampling is PIL's antialiased "bilinear" (ImagingResample): separable, a triangle
 * filter whose support is stretched by the scale factor when downsampling, so every output
 * pixel averages its whole footprint; output pixel i samples around input coordinate
 * (i + 0.5) * crop / size. Horizontal pass first, kept in float, then vertical, rounded to
 * nearest and clamped to 0..255. size == crop copies the crop exactly.
 * Requires 1 <= size, 1 <= crop <= min(w, h). Errors: PFGM_ERR_INVALID_ARG, PFGM_ERR_NOMEM. */
pfgm_status pfgm_image_crop_resize(const uint8_t *src, int64_t w, int64_t h, int64_t c,
                                   int64_t crop, int64_t size, uint8_t *dst);

#ifdef __cplusplus
}
#endif
#endif /* PFGM_IMAGE_H */
