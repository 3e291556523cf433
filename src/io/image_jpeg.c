/* JPEG decoding through libjpeg (libjpeg-turbo's libjpeg API, include/pfgm/image.h): any
 * baseline or progressive JPEG of gray, YCbCr/RGB, CMYK or YCCK colour is brought to 8-bit
 * gray or RGB. libjpeg's fatal errors come back through a setjmp/longjmp error manager
 * (libjpeg's documented replacement for its default error_exit, which would end the
 * process), and the warnings that mean lost image data (a truncated file, a damaged
 * entropy-coded segment) are errors too, so a damaged file is reported instead of being
 * decoded with grey blocks. */
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h> /* before jerror.h: its jconfig.h decides which messages exist */
#include <jerror.h>

#include "pfgm/image.h"

typedef struct jpeg_err_ctx {
    struct jpeg_error_mgr mgr; /* first: libjpeg hands back a pointer to this member */
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
} jpeg_err_ctx;

static void on_jpeg_error(j_common_ptr cinfo) {
    jpeg_err_ctx *ctx = (jpeg_err_ctx *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, ctx->msg);
    longjmp(ctx->jump, 1);
}

/* libjpeg calls this with level -1 for warnings and >= 0 for trace messages. The warnings
 * after which decoded pixels are missing or invented (libjpeg then fills in grey or skips
 * data) become errors: end of file inside the image, a damaged entropy-coded segment or
 * restart sequence, bad Huffman/arithmetic codes, inconsistent scan parameters. The others
 * leave the pixels as encoded and are ignored, as PIL ignores them: stray bytes before a
 * marker, an unknown JFIF revision or Adobe transform code, a damaged ICC marker (no
 * profile is used). Trace messages are dropped. */
static void on_jpeg_message(j_common_ptr cinfo, int level) {
    if (level >= 0) return;
    switch (cinfo->err->msg_code) {
    case JWRN_JPEG_EOF:
    case JWRN_HIT_MARKER:
    case JWRN_MUST_RESYNC:
    case JWRN_HUFF_BAD_CODE:
    case JWRN_ARITH_BAD_CODE:
    case JWRN_NOT_SEQUENTIAL:
    case JWRN_BOGUS_PROGRESSION:
        on_jpeg_error(cinfo);
        break;
    default:
        break;
    }
}

int pfgm_jpeg_signature(const unsigned char *bytes, size_t n) {
    /* SOI marker FF D8 followed by the next marker's FF */
    return n >= 3 && bytes[0] == 0xff && bytes[1] == 0xd8 && bytes[2] == 0xff;
}

pfgm_status pfgm_jpeg_read(const char *path, int channels, pfgm_image *img) {
    return pfgm_jpeg_read_idct(path, channels, PFGM_JPEG_IDCT_ACCURATE, img);
}

pfgm_status pfgm_jpeg_read_idct(const char *path, int channels, pfgm_jpeg_idct idct,
                                pfgm_image *img) {
    memset(img, 0, sizeof *img);
    if (channels != 1 && channels != 3)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "%s: cannot decode to %d channels (1 or 3)", path,
                          channels);
    FILE *f = fopen(path, "rb");
    if (!f) return pfgm_error(PFGM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char sig[3];
    size_t nsig = fread(sig, 1, sizeof sig, f);
    if (!pfgm_jpeg_signature(sig, nsig)) {
        fclose(f);
        return pfgm_error(PFGM_ERR_FORMAT, "%s: not a JPEG file (no SOI marker)", path);
    }
    rewind(f);

    struct jpeg_decompress_struct cinfo;
    jpeg_err_ctx err;
    memset(&err, 0, sizeof err);
    cinfo.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = on_jpeg_error;
    err.mgr.emit_message = on_jpeg_message;
    uint8_t *volatile pixels = NULL;
    uint8_t *volatile row4 = NULL; /* one CMYK row */
    if (setjmp(err.jump)) {
        jpeg_destroy_decompress(&cinfo);
        free(pixels);
        free(row4);
        fclose(f);
        /* libjpeg's data warnings start "Corrupt JPEG data: ", which the prefix already says */
        static const char lead[] = "Corrupt JPEG data: ";
        const char *why = strncmp(err.msg, lead, sizeof lead - 1) ? err.msg : err.msg + sizeof lead - 1;
        return pfgm_error(PFGM_ERR_FORMAT, "%s: corrupt JPEG: %s", path, why);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_stdio_src(&cinfo, f);
    jpeg_read_header(&cinfo, TRUE);

    /* Output colour: libjpeg converts YCbCr/RGB/gray to RGB or to gray itself (gray is Y,
     * the 0.299/0.587/0.114 luma of ITU-R 601, the weights the PNG path uses); CMYK and
     * YCCK come out as CMYK and are converted below. */
    const int cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    if (cmyk)
        cinfo.out_color_space = JCS_CMYK;
    else
        cinfo.out_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    cinfo.dct_method = idct == PFGM_JPEG_IDCT_FAST ? JDCT_IFAST : JDCT_ISLOW;
    jpeg_start_decompress(&cinfo);
    const size_t width = cinfo.output_width, height = cinfo.output_height;
    if ((int)cinfo.output_components != (cmyk ? 4 : channels)) {
        snprintf(err.msg, sizeof err.msg, "unexpected %d components after conversion",
                 cinfo.output_components);
        longjmp(err.jump, 1);
    }
    pixels = malloc(width * height * (size_t)channels);
    if (cmyk) row4 = malloc(width * 4);
    if (!pixels || (cmyk && !row4)) {
        snprintf(err.msg, sizeof err.msg, "out of memory for %zux%zu pixels", width, height);
        longjmp(err.jump, 1);
    }
    /* Adobe's CMYK JPEGs (the CMYK JPEGs there are in practice) store inverted samples,
     * 255 - ink; libjpeg passes them through. With ink-free values c' = 255 - C etc.,
     * R = c' k' / 255 (the naive CMYK -> RGB without a colour profile, as TensorFlow's
     * decode_jpeg and PIL's convert("RGB") compute it); a CMYK file without the Adobe
     * marker holds plain ink values and is inverted first. Gray: the 601 luma of that RGB. */
    const int inverted = cinfo.saw_Adobe_marker;
    while (cinfo.output_scanline < cinfo.output_height) {
        uint8_t *dst = pixels + (size_t)cinfo.output_scanline * width * (size_t)channels;
        JSAMPROW row = cmyk ? (JSAMPROW)row4 : (JSAMPROW)dst;
        if (jpeg_read_scanlines(&cinfo, &row, 1) != 1) {
            snprintf(err.msg, sizeof err.msg, "no scanline %u", cinfo.output_scanline);
            longjmp(err.jump, 1);
        }
        if (!cmyk) continue;
        for (size_t x = 0; x < width; ++x) {
            unsigned v[4];
            for (int k = 0; k < 4; ++k) v[k] = inverted ? row4[x * 4 + k] : 255u - row4[x * 4 + k];
            unsigned rgb[3];
            for (int k = 0; k < 3; ++k) rgb[k] = (v[k] * v[3] + 127u) / 255u;
            if (channels == 3)
                for (int k = 0; k < 3; ++k) dst[x * 3 + k] = (uint8_t)rgb[k];
            else
                dst[x] = (uint8_t)((299u * rgb[0] + 587u * rgb[1] + 114u * rgb[2] + 500u) / 1000u);
        }
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    free(row4);
    fclose(f);
    img->width = (int64_t)width;
    img->height = (int64_t)height;
    img->channels = channels;
    img->pixels = pixels;
    return PFGM_OK;
}
