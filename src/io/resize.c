/* Crops and antialiased resizes of 8-bit images (include/pfgm/image.h), the geometry
 * pfgm-prep applies to folders of images. Two resamplers: PIL's ImagingResample with the
 * bilinear (triangle) filter, which torchvision's Resize uses on PIL images, so a folder
 * prepared here matches the authors' CelebA pipeline (CenterCrop 140, Resize 64,
 * PFGM_SPEC.md §1.12) up to PIL's 8-bit fixed-point rounding; and TensorFlow's antialiased
 * scale_and_translate (Keys cubic or triangle), which the authors' LSUN pipeline uses
 * through tf.image.resize (Poisson_flow datasets.py crop_resize, resize_small). */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pfgm/image.h"

int64_t pfgm_center_offset(int64_t len, int64_t crop) {
    /* torchvision: int(round((len - crop) / 2.0)); Python rounds ties to even, as rint does
     * in the default rounding mode. */
    return (int64_t)llrint((double)(len - crop) / 2.0);
}

/* Resampling weights of one axis: output i takes weights w[i*span .. i*span + n[i]) on
 * input samples first[i] .. first[i] + n[i] - 1 of the axis (crop-relative). */
typedef struct axis_weights {
    int64_t span;      /* maximum taps per output sample */
    int64_t *first;    /* [out] */
    int64_t *n;        /* [out] */
    double *w;         /* [out, span] normalized weights */
} axis_weights;

static double triangle(double x) {
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

static void axis_free(axis_weights *a) {
    free(a->first);
    free(a->n);
    free(a->w);
}

/* PIL precompute_coeffs with the bilinear filter (support 1). */
static int axis_init(axis_weights *a, int64_t in, int64_t out) {
    const double scale = (double)in / (double)out;
    const double fscale = scale > 1.0 ? scale : 1.0; /* stretch the filter when shrinking */
    const double support = 1.0 * fscale;
    a->span = (int64_t)ceil(support) * 2 + 1;
    a->first = malloc((size_t)out * sizeof *a->first);
    a->n = malloc((size_t)out * sizeof *a->n);
    a->w = calloc((size_t)out * (size_t)a->span, sizeof *a->w);
    if (!a->first || !a->n || !a->w) {
        axis_free(a);
        return 0;
    }
    for (int64_t i = 0; i < out; ++i) {
        const double center = ((double)i + 0.5) * scale;
        int64_t lo = (int64_t)(center - support + 0.5);
        int64_t hi = (int64_t)(center + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in) hi = in;
        int64_t n = hi - lo;
        if (n > a->span) n = a->span;
        double *w = a->w + i * a->span, sum = 0.0;
        for (int64_t k = 0; k < n; ++k) {
            w[k] = triangle(((double)(k + lo) - center + 0.5) / fscale);
            sum += w[k];
        }
        if (sum > 0.0)
            for (int64_t k = 0; k < n; ++k) w[k] /= sum;
        a->first[i] = lo;
        a->n[i] = n;
    }
    return 1;
}

pfgm_status pfgm_image_crop_resize(const uint8_t *src, int64_t w, int64_t h, int64_t c,
                                   int64_t crop, int64_t size, uint8_t *dst) {
    if (!src || !dst || c < 1 || size < 1 || crop < 1 || crop > w || crop > h)
        return pfgm_error(PFGM_ERR_INVALID_ARG,
                          "crop_resize: cannot crop %lld and resize to %lld an image of %lldx%lld",
                          (long long)crop, (long long)size, (long long)w, (long long)h);
    const int64_t x0 = pfgm_center_offset(w, crop), y0 = pfgm_center_offset(h, crop);
    if (size == crop) { /* plain crop: interleaved [h, w, c] -> planar [c, size, size] */
        for (int64_t ch = 0; ch < c; ++ch)
            for (int64_t y = 0; y < size; ++y)
                for (int64_t x = 0; x < size; ++x)
                    dst[(ch * size + y) * size + x] = src[((y0 + y) * w + x0 + x) * c + ch];
        return PFGM_OK;
    }
    axis_weights ax = {0}, ay = {0};
    float *tmp = malloc((size_t)crop * (size_t)size * (size_t)c * sizeof *tmp); /* [crop, size, c] */
    if (!tmp || !axis_init(&ax, crop, size) || !axis_init(&ay, crop, size)) {
        free(tmp);
        axis_free(&ax);
        axis_free(&ay);
        return pfgm_error(PFGM_ERR_NOMEM, "crop_resize: out of memory");
    }
    /* Horizontal pass over the crop rows: tmp[y, i, ch] = sum_k wx[i,k] src[y0+y, x0+first+k, ch]. */
    for (int64_t y = 0; y < crop; ++y) {
        const uint8_t *row = src + ((y0 + y) * w + x0) * c;
        for (int64_t i = 0; i < size; ++i) {
            const double *wt = ax.w + i * ax.span;
            for (int64_t ch = 0; ch < c; ++ch) {
                double acc = 0.0;
                for (int64_t k = 0; k < ax.n[i]; ++k) acc += wt[k] * row[(ax.first[i] + k) * c + ch];
                tmp[(y * size + i) * c + ch] = (float)acc;
            }
        }
    }
    /* Vertical pass: dst[ch, j, i] = round(sum_k wy[j,k] tmp[first+k, i, ch]). */
    for (int64_t j = 0; j < size; ++j) {
        const double *wt = ay.w + j * ay.span;
        for (int64_t i = 0; i < size; ++i)
            for (int64_t ch = 0; ch < c; ++ch) {
                double acc = 0.0;
                for (int64_t k = 0; k < ay.n[j]; ++k)
                    acc += wt[k] * tmp[((ay.first[j] + k) * size + i) * c + ch];
                long v = (long)floor(acc + 0.5); /* round half up, as PIL does */
                dst[(ch * size + j) * size + i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    }
    free(tmp);
    axis_free(&ax);
    axis_free(&ay);
    return PFGM_OK;
}

/* ---- TensorFlow's antialiased resampling (tf.image.resize with antialias=True) ----------
 * The authors' LSUN pipeline resizes with tf.image.resize(..., antialias=True), which runs
 * the scale_and_translate kernel: separable, each output sample a normalized weighted sum
 * of the input samples under a kernel centered at the output's position mapped back to the
 * input, the kernel widened by the downscaling factor so that it low-pass filters. The math
 * below is that of scale_and_translate (TensorFlow, tensorflow/core/kernels/image/
 * scale_and_translate_op.cc, sampling_kernels.h), written here for pfgm: float32 throughout
 * as there, so results agree with TensorFlow's to float rounding (tests/unit/test_resize_tf.c). */

/* Keys' cubic convolution kernel with a = -0.5 (R. G. Keys, "Cubic convolution
 * interpolation for digital image processing", IEEE Trans. ASSP 29(6), 1981), radius 2. */
static float keys_cubic(float x) {
    x = fabsf(x);
    if (x >= 2.0f) return 0.0f;
    if (x >= 1.0f) return ((-0.5f * x + 2.5f) * x - 4.0f) * x + 2.0f;
    return ((1.5f * x - 2.5f) * x) * x + 1.0f;
}

static float triangle_f(float x) {
    x = fabsf(x);
    return x < 1.0f ? 1.0f - x : 0.0f;
}

/* Spans of one axis for outputs o0 .. o0 + n - 1 of a full output length out_full resampled
 * from `in` input samples: output o takes taps w[(o - o0) * span + k], k < cnt, on inputs
 * start + k. */
typedef struct tf_spans {
    int64_t span;
    int64_t *start, *cnt;
    float *w;
} tf_spans;

static void tf_spans_free(tf_spans *s) {
    free(s->start);
    free(s->cnt);
    free(s->w);
}

static int tf_spans_init(tf_spans *s, pfgm_tf_kernel kernel, int64_t in, int64_t out_full,
                         int64_t o0, int64_t n) {
    float (*const k)(float) = kernel == PFGM_TF_KEYS_CUBIC ? keys_cubic : triangle_f;
    const float radius = kernel == PFGM_TF_KEYS_CUBIC ? 2.0f : 1.0f;
    const float scale = (float)out_full / (float)in;   /* TF: float(new_size) / float(in_size) */
    const float inv_scale = (float)(1.0 / scale);
    const float kernel_scale = inv_scale > 1.0f ? inv_scale : 1.0f; /* antialias: widen when shrinking */
    const float one_over_kernel_scale = 1.0f / kernel_scale;
    int64_t span = 2 * (int64_t)ceilf(radius * kernel_scale) + 1;
    if (span > in) span = in;
    s->span = span;
    s->start = malloc((size_t)n * sizeof *s->start);
    s->cnt = malloc((size_t)n * sizeof *s->cnt);
    s->w = calloc((size_t)n * (size_t)span, sizeof *s->w);
    if (!s->start || !s->cnt || !s->w) {
        tf_spans_free(s);
        return 0;
    }
    for (int64_t i = 0; i < n; ++i) {
        const float sample = ((float)(o0 + i) + 0.5f) * inv_scale;
        int64_t lo = (int64_t)ceilf(sample - radius * kernel_scale - 0.5f);
        int64_t hi = (int64_t)floorf(sample + radius * kernel_scale - 0.5f);
        lo = lo < 0 ? 0 : lo > in - 1 ? in - 1 : lo;
        hi = (hi < 0 ? 0 : hi > in - 1 ? in - 1 : hi) + 1;
        int64_t cnt = hi - lo;
        if (cnt > span) cnt = span; /* cannot happen (TF reports an internal error) */
        float *w = s->w + i * span, sum = 0.0f;
        for (int64_t t = 0; t < cnt; ++t) {
            const float pos = (float)(lo + t) + 0.5f - sample;
            w[t] = k(fabsf(pos * one_over_kernel_scale));
            sum += w[t];
        }
        if (fabsf(sum) >= 1000.0f * FLT_MIN) {
            const float inv = 1.0f / sum;
            for (int64_t t = 0; t < cnt; ++t) w[t] *= inv;
        } else {
            for (int64_t t = 0; t < cnt; ++t) w[t] = 0.0f;
        }
        s->start[i] = lo;
        s->cnt[i] = cnt;
    }
    return 1;
}

pfgm_status pfgm_image_resize_tf(const uint8_t *src, int64_t w, int64_t h, int64_t c,
                                 int64_t x0, int64_t y0, int64_t rw, int64_t rh,
                                 int64_t out_w, int64_t out_h, int64_t ox0, int64_t oy0,
                                 int64_t nw, int64_t nh, pfgm_tf_kernel kernel, float *dst) {
    if (!src || !dst || c < 1 || rw < 1 || rh < 1 || x0 < 0 || y0 < 0 || x0 + rw > w ||
        y0 + rh > h || out_w < 1 || out_h < 1 || nw < 1 || nh < 1 || ox0 < 0 || oy0 < 0 ||
        ox0 + nw > out_w || oy0 + nh > out_h ||
        (kernel != PFGM_TF_KEYS_CUBIC && kernel != PFGM_TF_TRIANGLE))
        return pfgm_error(PFGM_ERR_INVALID_ARG,
                          "resize_tf: cannot resize the %lldx%lld region at (%lld, %lld) of a "
                          "%lldx%lld image to %lldx%lld (window %lldx%lld at (%lld, %lld))",
                          (long long)rw, (long long)rh, (long long)x0, (long long)y0,
                          (long long)w, (long long)h, (long long)out_w, (long long)out_h,
                          (long long)nw, (long long)nh, (long long)ox0, (long long)oy0);
    tf_spans sx = {0}, sy = {0};
    float *tmp = malloc((size_t)rh * (size_t)nw * (size_t)c * sizeof *tmp); /* [rh, nw, c] */
    if (!tmp || !tf_spans_init(&sx, kernel, rw, out_w, ox0, nw) ||
        !tf_spans_init(&sy, kernel, rh, out_h, oy0, nh)) {
        free(tmp);
        tf_spans_free(&sx);
        tf_spans_free(&sy);
        return pfgm_error(PFGM_ERR_NOMEM, "resize_tf: out of memory");
    }
    /* Rows first (TF's GatherRows): tmp[y, i, ch] = sum_t wx[i, t] src[y0 + y, x0 + start + t, ch],
     * accumulated in float in tap order. */
    for (int64_t y = 0; y < rh; ++y) {
        const uint8_t *row = src + ((y0 + y) * w + x0) * c;
        for (int64_t i = 0; i < nw; ++i) {
            const float *wt = sx.w + i * sx.span;
            for (int64_t ch = 0; ch < c; ++ch) {
                float acc = 0.0f;
                for (int64_t t = 0; t < sx.cnt[i]; ++t)
                    acc += wt[t] * (float)row[(sx.start[i] + t) * c + ch];
                tmp[(y * nw + i) * c + ch] = acc;
            }
        }
    }
    /* Then columns (GatherColumns): dst[j, i, ch] = sum_t wy[j, t] tmp[start + t, i, ch]. */
    for (int64_t j = 0; j < nh; ++j) {
        const float *wt = sy.w + j * sy.span;
        for (int64_t i = 0; i < nw; ++i)
            for (int64_t ch = 0; ch < c; ++ch) {
                float acc = 0.0f;
                for (int64_t t = 0; t < sy.cnt[j]; ++t)
                    acc += wt[t] * tmp[((sy.start[j] + t) * nw + i) * c + ch];
                dst[(j * nw + i) * c + ch] = acc;
            }
    }
    free(tmp);
    tf_spans_free(&sx);
    tf_spans_free(&sy);
    return PFGM_OK;
}

/* Float [nh, nw, c] -> planar uint8 [c, nh, nw]: clamped to 0..255, then truncated toward
 * zero (truncate = 1, tf.cast's rounding) or rounded half up. */
static void quantize_planar(const float *f, int64_t nw, int64_t nh, int64_t c, int truncate,
                            uint8_t *dst) {
    for (int64_t j = 0; j < nh; ++j)
        for (int64_t i = 0; i < nw; ++i)
            for (int64_t ch = 0; ch < c; ++ch) {
                float v = f[(j * nw + i) * c + ch];
                v = v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v; /* also maps NaN to 255: none occur */
                dst[(ch * nh + j) * nw + i] = (uint8_t)(truncate ? v : floorf(v + 0.5f));
            }
}

/* Resizes the region with TF's kernel to nw x nh outputs (window of out_w x out_h) and
 * quantizes to planar dst. */
static pfgm_status tf_to_planar(const uint8_t *src, int64_t w, int64_t h, int64_t c, int64_t x0,
                                int64_t y0, int64_t rw, int64_t rh, int64_t out_w, int64_t out_h,
                                int64_t ox0, int64_t oy0, int64_t n, pfgm_tf_kernel kernel,
                                int truncate, uint8_t *dst) {
    float *f = malloc((size_t)n * (size_t)n * (size_t)c * sizeof *f);
    if (!f) return pfgm_error(PFGM_ERR_NOMEM, "resize: out of memory");
    pfgm_status st = pfgm_image_resize_tf(src, w, h, c, x0, y0, rw, rh, out_w, out_h, ox0, oy0,
                                          n, n, kernel, f);
    if (st == PFGM_OK) quantize_planar(f, n, n, c, truncate, dst);
    free(f);
    return st;
}

pfgm_status pfgm_image_crop_resize_bicubic(const uint8_t *src, int64_t w, int64_t h, int64_t c,
                                           int64_t crop, int64_t size, uint8_t *dst) {
    if (!src || !dst || c < 1 || size < 1 || crop < 1 || crop > w || crop > h)
        return pfgm_error(PFGM_ERR_INVALID_ARG,
                          "crop_resize_bicubic: cannot crop %lld and resize to %lld an image "
                          "of %lldx%lld", (long long)crop, (long long)size, (long long)w,
                          (long long)h);
    return tf_to_planar(src, w, h, c, pfgm_center_offset(w, crop), pfgm_center_offset(h, crop),
                        crop, crop, size, size, 0, 0, size, PFGM_TF_KEYS_CUBIC, 1, dst);
}

int64_t pfgm_lsun_short_side_length(int64_t len, int64_t short_side, int64_t size) {
    /* Python: h * (size / min(h, w)) in double, then tf.round (half to even) */
    return (int64_t)nearbyint((double)len * ((double)size / (double)short_side));
}

pfgm_status pfgm_image_lsun(const uint8_t *src, int64_t w, int64_t h, int64_t c, int64_t size,
                            uint8_t *dst) {
    const int64_t side = w < h ? w : h;
    if (!src || !dst || c < 1 || size < 1 || side < size)
        return pfgm_error(PFGM_ERR_INVALID_ARG,
                          "lsun: cannot resize an image of %lldx%lld to %lld (no upsampling)",
                          (long long)w, (long long)h, (long long)size);
    if (size != 128) /* crop_resize: largest central square (floor offsets), bicubic, tf.cast */
        return tf_to_planar(src, w, h, c, (w - side) / 2, (h - side) / 2, side, side, size,
                            size, 0, 0, size, PFGM_TF_KEYS_CUBIC, 1, dst);
    /* resize_small (short side to 128, bilinear = triangle), then central_crop (floor
     * offsets into the resized image); only the cropped window is computed. */
    const int64_t rw = pfgm_lsun_short_side_length(w, side, size);
    const int64_t rh = pfgm_lsun_short_side_length(h, side, size);
    return tf_to_planar(src, w, h, c, 0, 0, w, h, rw, rh, (rw - size) / 2, (rh - size) / 2, size,
                        PFGM_TF_TRIANGLE, 0, dst);
}
