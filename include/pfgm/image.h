/* 8-bit images on the host: PNG decoding and encoding through libpng, JPEG decoding through
 * libjpeg (libjpeg-turbo), a reader that picks the decoder by the file's first bytes, and the
 * crops + antialiased resizes that pfgm-prep applies to folders of images: PIL's bilinear
 * (as the authors prepare CelebA: CenterCrop(140), Resize(64), PFGM_SPEC.md §1.12) and
 * TensorFlow's antialiased Keys bicubic / triangle (the authors' LSUN pipeline, datasets.py
 * crop_resize / resize_small + central_crop). */
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

/* 1 when bytes[0..n) start with a JPEG SOI marker (FF D8 FF), else 0. */
int pfgm_jpeg_signature(const unsigned char *bytes, size_t n);

/* Decodes the JPEG file `path` (baseline or progressive, as libjpeg-turbo reads them) to
 * 8 bits per sample with `channels` = 1 (gray) or 3 (RGB), with libjpeg's default decoder
 * settings (accurate integer IDCT, fancy upsampling: what PIL uses; TensorFlow's
 * decode_jpeg differs only in its fast IDCT, see pfgm_jpeg_read_idct):
 *   gray JPEG    -> gray, or replicated to RGB (libjpeg's conversion);
 *   YCbCr / RGB  -> RGB, or gray = the Y (luma, 0.299 R + 0.587 G + 0.114 B) plane;
 *   CMYK / YCCK  -> RGB = (255 - C)(255 - K) / 255 per channel, rounded (no colour profile;
 *                   TensorFlow's decode_jpeg and PIL's convert("RGB") compute the same),
 *                   Adobe-inverted samples (the usual CMYK JPEG) read as such; gray is the
 *                   601 luma of that RGB.
 * EXIF orientation is not applied (neither PIL's open nor TF's decode_jpeg applies it).
 * libjpeg's errors never end the process (setjmp/longjmp error manager), and its warnings
 * that mean missing or invented pixels (premature end of file, a damaged entropy-coded
 * segment or restart sequence, bad Huffman/arithmetic codes, inconsistent scans) count as
 * errors; the others (stray bytes before a marker, unknown JFIF revision or Adobe
 * transform code, a bad ICC marker) are ignored, as PIL ignores them.
 * On success img->pixels is malloc'ed; free with pfgm_image_free.
 * Errors: PFGM_ERR_IO (missing/unreadable), PFGM_ERR_FORMAT ("not a JPEG file" without the
 * SOI marker; "corrupt JPEG: <libjpeg's reason>" for a damaged or truncated file),
 * PFGM_ERR_INVALID_ARG (channels not 1 or 3). */
pfgm_status pfgm_jpeg_read(const char *path, int channels, pfgm_image *img);

/* libjpeg's inverse DCTs: ACCURATE (JDCT_ISLOW, libjpeg's and PIL's default) and FAST
 * (JDCT_IFAST: TensorFlow's decode_jpeg default, so what tensorflow_datasets fed the
 * authors' TF pipelines; up to a few levels from ACCURATE, measured 4 on the test
 * fixtures). */
typedef enum pfgm_jpeg_idct { PFGM_JPEG_IDCT_ACCURATE = 0, PFGM_JPEG_IDCT_FAST = 1 } pfgm_jpeg_idct;

/* pfgm_jpeg_read with the inverse DCT chosen (same output and errors otherwise). */
pfgm_status pfgm_jpeg_read_idct(const char *path, int channels, pfgm_jpeg_idct idct,
                                pfgm_image *img);

/* The image formats pfgm_image_read knows, told apart by their first bytes. */
typedef enum pfgm_image_kind { PFGM_IMAGE_UNKNOWN = 0, PFGM_IMAGE_PNG, PFGM_IMAGE_JPEG } pfgm_image_kind;

/* "PNG", "JPEG" or "unknown". */
const char *pfgm_image_kind_name(pfgm_image_kind kind);

/* Reads the first 8 bytes of `path`: the PNG signature or the JPEG SOI marker (the name's
 * extension plays no part). Errors: PFGM_ERR_IO (cannot open/read), PFGM_ERR_FORMAT ("not a
 * PNG or JPEG file (neither signature)"). */
pfgm_status pfgm_image_sniff(const char *path, pfgm_image_kind *kind);

/* pfgm_png_read or pfgm_jpeg_read, as pfgm_image_sniff finds; same output and errors. */
pfgm_status pfgm_image_read(const char *path, int channels, pfgm_image *img);
/* The same with JPEGs decoded with the given inverse DCT (PNGs are unaffected). */
pfgm_status pfgm_image_read_idct(const char *path, int channels, pfgm_jpeg_idct idct,
                                 pfgm_image *img);

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

/* The kernels of TensorFlow's scale_and_translate that tf.image.resize(antialias=True) uses. */
typedef enum pfgm_tf_kernel {
    PFGM_TF_KEYS_CUBIC = 0, /* method=BICUBIC: Keys' cubic, a = -0.5, radius 2 */
    PFGM_TF_TRIANGLE = 1    /* method=BILINEAR: 1 - |x|, radius 1 */
} pfgm_tf_kernel;

/* tf.image.resize(region, (out_h, out_w), method, antialias=True) of the rw x rh region at
 * (x0, y0) of the interleaved uint8 image src [h, w, c], computed only for the output
 * window of nw x nh samples at (ox0, oy0) of the out_w x out_h result; dst: float32
 * [nh, nw, c], interleaved, values on the 0..255 scale, not clamped (the cubic overshoots).
 * Math (TensorFlow's scale_and_translate with translation 0, written for pfgm): per axis,
 * scale = out / in (float32), output o samples the input at s = (o + 0.5) / scale; with
 * antialiasing the kernel is widened by ks = max(1 / scale, 1) (downscaling low-passes,
 * upscaling only interpolates); taps are the inputs t with
 * ceil(s - r ks - 0.5) <= t <= floor(s + r ks - 0.5) (r the kernel's radius), clipped to the
 * image, weighing kernel((t + 0.5 - s) / ks), normalized to sum 1. Rows are resampled first
 * into a float buffer [rh, nw, c], then columns; float32 arithmetic in TF's order, so the
 * result equals TensorFlow's to float rounding (measured: tests/unit/test_resize_tf.c).
 * Errors: PFGM_ERR_INVALID_ARG (region or window outside, sizes < 1), PFGM_ERR_NOMEM. */
pfgm_status pfgm_image_resize_tf(const uint8_t *src, int64_t w, int64_t h, int64_t c,
                                 int64_t x0, int64_t y0, int64_t rw, int64_t rh,
                                 int64_t out_w, int64_t out_h, int64_t ox0, int64_t oy0,
                                 int64_t nw, int64_t nh, pfgm_tf_kernel kernel, float *dst);

/* As pfgm_image_crop_resize (the same crop x crop square at torchvision's centered offset,
 * planar dst [c, size, size]) but resampled with TensorFlow's antialiased Keys bicubic
 * (pfgm_image_resize_tf, PFGM_TF_KEYS_CUBIC) and converted to uint8 as the authors'
 * crop_resize does with tf.cast: truncated toward zero, after clamping to 0..255 (tf.cast
 * itself wraps values outside 0..255 modulo 256, e.g. 256.2 -> 0 and -1.5 -> 255, which
 * turns a cubic overshoot at a bright edge into a black pixel; pfgm clamps instead).
 * Requires 1 <= size, 1 <= crop <= min(w, h). Errors: PFGM_ERR_INVALID_ARG, PFGM_ERR_NOMEM. */
pfgm_status pfgm_image_crop_resize_bicubic(const uint8_t *src, int64_t w, int64_t h, int64_t c,
                                           int64_t crop, int64_t size, uint8_t *dst);

/* The length a side of `len` gets when the short side `short_side` is scaled to `size`:
 * round-half-even(len * (size / short_side)), the double arithmetic of the authors'
 * resize_small (datasets.py) followed by tf.round. */
int64_t pfgm_lsun_short_side_length(int64_t len, int64_t short_side, int64_t size);

/* The authors' LSUN preprocessing (Poisson_flow datasets.py, from score_sde), src [h, w, c]
 * uint8 -> planar dst [c, size, size]:
 *   size != 128: crop_resize: the largest central square, offsets floor((h - s) / 2),
 *                floor((w - s) / 2) (s = min(h, w); Python's // on the slice bounds), then
 *                tf.image.resize(BICUBIC, antialias=True) to size x size and tf.cast to
 *                uint8: truncated, after clamping to 0..255 (see crop_resize_bicubic);
 *   size == 128: resize_small: the short side to 128 and the long side to
 *                pfgm_lsun_short_side_length, with tf.image.resize(BILINEAR,
 *                antialias=True) (PFGM_TF_TRIANGLE), then central_crop to 128 x 128 at
 *                floor offsets; the authors keep this float (x / 255 in [0, 1]), pfgm
 *                stores it rounded to the nearest level (error <= 0.5 / 255; the triangle
 *                filter never leaves 0..255).
 * Requires min(w, h) >= size (pfgm-prep does not upsample; the authors' code would).
 * Errors: PFGM_ERR_INVALID_ARG, PFGM_ERR_NOMEM. */
pfgm_status pfgm_image_lsun(const uint8_t *src, int64_t w, int64_t h, int64_t c, int64_t size,
                            uint8_t *dst);

#ifdef __cplusplus
}
#endif
#endif /* PFGM_IMAGE_H */
