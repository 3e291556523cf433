/* Center crop and antialiased resize of 8-bit images (include/pfgm/image.h), the geometry
 * pfgm-prep applies to folders of images. The resampling follows PIL's ImagingResample with
 * the bilinear (triangle) filter, which torchvision's Resize uses on PIL images, so a folder
 * prepared here matches the authors' CelebA pipeline (CenterCrop 140, Resize 64,
 * PFGM_SPEC.md §1.12) up to PIL's 8-bit fixed-point rounding. */
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
