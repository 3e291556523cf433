/* Which decoder reads an image file (include/pfgm/image.h): the file's first bytes decide
 * (PNG signature or JPEG SOI marker), not its name, so a mislabelled .jpg that is really a
 * PNG is still read, and a file that is neither is named in the error. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <png.h>

#include "pfgm/image.h"

const char *pfgm_image_kind_name(pfgm_image_kind kind) {
    return kind == PFGM_IMAGE_PNG ? "PNG" : kind == PFGM_IMAGE_JPEG ? "JPEG" : "unknown";
}

pfgm_status pfgm_image_sniff(const char *path, pfgm_image_kind *kind) {
    *kind = PFGM_IMAGE_UNKNOWN;
    FILE *f = fopen(path, "rb");
    if (!f) return pfgm_error(PFGM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char sig[8];
    size_t n = fread(sig, 1, sizeof sig, f);
    int bad = ferror(f);
    fclose(f);
    if (bad) return pfgm_error(PFGM_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    if (n == sizeof sig && png_sig_cmp(sig, 0, sizeof sig) == 0)
        *kind = PFGM_IMAGE_PNG;
    else if (pfgm_jpeg_signature(sig, n))
        *kind = PFGM_IMAGE_JPEG;
    else
        return pfgm_error(PFGM_ERR_FORMAT,
                          "%s: not a PNG or JPEG file (neither signature); the folder must "
                          "hold only PNG and JPEG images", path);
    return PFGM_OK;
}

pfgm_status pfgm_image_read(const char *path, int channels, pfgm_image *img) {
    return pfgm_image_read_idct(path, channels, PFGM_JPEG_IDCT_ACCURATE, img);
}

pfgm_status pfgm_image_read_idct(const char *path, int channels, pfgm_jpeg_idct idct,
                                 pfgm_image *img) {
    pfgm_image_kind kind;
    memset(img, 0, sizeof *img);
    pfgm_status st = pfgm_image_sniff(path, &kind);
    if (st != PFGM_OK) return st;
    return kind == PFGM_IMAGE_PNG ? pfgm_png_read(path, channels, img)
                                  : pfgm_jpeg_read_idct(path, channels, idct, img);
}
