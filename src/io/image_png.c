/* PNG decoding and encoding through libpng (include/pfgm/image.h): any PNG colour type and
 * bit depth is brought to 8-bit gray or RGB with libpng's own transforms; writing goes to a
 * temporary name that is renamed when complete. */
#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pfgm/image.h"
#include "util/atomic_file.h"

void pfgm_image_free(pfgm_image *img) {
    if (!img) return;
    free(img->pixels);
    img->pixels = NULL;
}

/* libpng reports errors through this callback; it keeps libpng's reason and longjmps back
 * to the setjmp in the caller (libpng's documented error-handling protocol). */
typedef struct png_err_ctx {
    char msg[256];
} png_err_ctx;

static void on_png_error(png_structp png, png_const_charp msg) {
    png_err_ctx *ctx = png_get_error_ptr(png);
    if (ctx) snprintf(ctx->msg, sizeof ctx->msg, "%s", msg ? msg : "libpng error");
    png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg; /* warnings (e.g. a bad optional chunk) do not stop decoding */
}

pfgm_status pfgm_png_read(const char *path, int channels, pfgm_image *img) {
    memset(img, 0, sizeof *img);
    if (channels != 1 && channels != 3)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "%s: cannot decode to %d channels (1 or 3)", path,
                          channels);
    FILE *f = fopen(path, "rb");
    if (!f) return pfgm_error(PFGM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char sig[8];
    size_t nsig = fread(sig, 1, sizeof sig, f);
    if (nsig < sizeof sig || png_sig_cmp(sig, 0, sizeof sig) != 0) {
        fclose(f);
        return pfgm_error(PFGM_ERR_FORMAT, "%s: not a PNG file (bad signature)", path);
    }

    png_err_ctx ctx = {""};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, on_png_error,
                                             on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_read_struct(&png, &info, NULL);
        fclose(f);
        return pfgm_error(PFGM_ERR_NOMEM, "%s: cannot create the PNG decoder", path);
    }
    uint8_t *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        free(rows);
        free(pixels);
        png_destroy_read_struct(&png, &info, NULL);
        fclose(f);
        return pfgm_error(PFGM_ERR_FORMAT, "%s: corrupt PNG: %s", path, ctx.msg);
    }
    png_init_io(png, f);
    png_set_sig_bytes(png, (int)sizeof sig);
    png_read_info(png, info);

    const png_uint_32 width = png_get_image_width(png, info);
    const png_uint_32 height = png_get_image_height(png, info);
    const int color = png_get_color_type(png, info);
    const int depth = png_get_bit_depth(png, info);

    /* Palette -> RGB, gray < 8 bits -> 8 bits, tRNS -> alpha: everything becomes 8/16-bit
     * gray, gray+alpha, RGB or RGBA. */
    png_set_expand(png);
    if (depth == 16) png_set_scale_16(png);
    png_set_strip_alpha(png);
    const int is_gray = !(color & PNG_COLOR_MASK_COLOR);
    if (channels == 3 && is_gray) png_set_gray_to_rgb(png);
    if (channels == 1 && !is_gray)
        png_set_rgb_to_gray_fixed(png, PNG_ERROR_ACTION_NONE, 29900, 58700); /* 0.299, 0.587 */
    png_set_interlace_handling(png);
    png_read_update_info(png, info);

    const size_t rowbytes = png_get_rowbytes(png, info);
    if (png_get_channels(png, info) != channels || png_get_bit_depth(png, info) != 8 ||
        rowbytes != (size_t)width * (size_t)channels) {
        snprintf(ctx.msg, sizeof ctx.msg, "unexpected layout after conversion");
        png_longjmp(png, 1);
    }
    pixels = malloc(rowbytes * height);
    rows = malloc(sizeof(png_bytep) * height);
    if (!pixels || !rows) {
        snprintf(ctx.msg, sizeof ctx.msg, "out of memory for %ux%u pixels", width, height);
        png_longjmp(png, 1);
    }
    for (png_uint_32 y = 0; y < height; ++y) rows[y] = pixels + (size_t)y * rowbytes;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    free(rows);
    img->width = width;
    img->height = height;
    img->channels = channels;
    img->pixels = pixels;
    return PFGM_OK;
}

pfgm_status pfgm_png_write(const char *path, int64_t width, int64_t height, int channels,
                           const uint8_t *pixels) {
    if ((channels != 1 && channels != 3) || width < 1 || height < 1 || width > 0x7fffffff ||
        height > 0x7fffffff || !pixels)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "%s: cannot encode a %lldx%lldx%d image", path,
                          (long long)width, (long long)height, channels);
    char tmp[4096];
    if (pfgm_atomic_tmp_name(path, tmp, sizeof tmp) != PFGM_OK)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "%s: path too long", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return pfgm_error(PFGM_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));

    png_err_ctx ctx = {""};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ctx, on_png_error,
                                              on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        unlink(tmp);
        return pfgm_error(PFGM_ERR_NOMEM, "%s: cannot create the PNG encoder", path);
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        unlink(tmp);
        return pfgm_error(PFGM_ERR_FORMAT, "%s: PNG encoding failed: %s", path, ctx.msg);
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8,
                 channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    const size_t rowbytes = (size_t)width * (size_t)channels;
    for (int64_t y = 0; y < height; ++y)
        png_write_row(png, (png_const_bytep)(pixels + (size_t)y * rowbytes));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        int err = errno;
        unlink(tmp);
        return pfgm_error(PFGM_ERR_IO, "%s: write failed: %s", tmp, strerror(err));
    }
    return pfgm_atomic_publish(tmp, path);
}
