/* Fixture writers for the dataset and pfgm-prep tests: a scratch folder, small dataset files
 * whose pixels and labels encode each image's index, IDX files (plain or gzipped, written
 * through zlib), CIFAR-10 batches, PNG files of every colour type (written with libpng's
 * own writer) and JPEG files (libjpeg's encoder). Header-only (static inline), included by several test files. */
#ifndef PFGM_TESTS_DATA_FIXTURES_H
#define PFGM_TESTS_DATA_FIXTURES_H

#include <dirent.h>
#include <hdf5.h>
#include <jpeglib.h>
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "pfgm/dataset.h"

/* Pixel (c, h, w) of fixture image i: distinct per image (through the label as well) and
 * asymmetric in w, so a horizontal flip is visible. */
static inline uint8_t fx_pixel(int64_t i, int64_t c, int64_t h, int64_t w) {
    return (uint8_t)((i * 7 + c * 50 + h * 13 + w * 29) & 0xff);
}

static inline void fx_mkdtemp(char *buf, size_t cap) {
    const char *base = getenv("TMPDIR");
    snprintf(buf, cap, "%s/pfgm-test-XXXXXX", base && base[0] ? base : "/tmp");
    if (!mkdtemp(buf)) {
        perror("mkdtemp");
        abort();
    }
}

/* Removes a folder tree (the fixtures are plain files and folders). */
static inline void fx_rm_rf(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    if (d) {
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char p[1024];
            struct stat sb;
            if ((size_t)snprintf(p, sizeof p, "%s/%s", dir, e->d_name) >= sizeof p) continue;
            if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
                fx_rm_rf(p);
            else
                unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

static inline void fx_join(char *buf, size_t cap, const char *dir, const char *name) {
    snprintf(buf, cap, "%s/%s", dir, name);
}

/* Number of entries in dir whose name starts with prefix (checks that a failed conversion
 * left neither the output nor its temporary behind). */
static inline int fx_count_prefix(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    if (!d) return -1;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) ++n;
    closedir(d);
    return n;
}

static inline int fx_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static inline void fx_write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n) abort();
    fclose(f);
}

/* A pfgm dataset of n images [C, S, S] with fx_pixel contents and labels i (or none). */
static inline pfgm_status fx_write_dataset(const char *path, int64_t n, int64_t C, int64_t S,
                                           int with_labels) {
    pfgm_dataset_writer *w = NULL;
    pfgm_status st = pfgm_dataset_writer_create(path, n, C, S, S, with_labels, "test fixture",
                                                7, &w);
    if (st != PFGM_OK) return st;
    uint8_t *img = malloc((size_t)(C * S * S));
    for (int64_t i = 0; i < n && st == PFGM_OK; ++i) {
        for (int64_t c = 0; c < C; ++c)
            for (int64_t h = 0; h < S; ++h)
                for (int64_t x = 0; x < S; ++x) img[(c * S + h) * S + x] = fx_pixel(i, c, h, x);
        st = pfgm_dataset_writer_append(w, img, (int32_t)i);
    }
    free(img);
    if (st != PFGM_OK) {
        pfgm_dataset_writer_abort(w);
        return st;
    }
    return pfgm_dataset_writer_commit(w);
}

/* An IDX file: big-endian magic, dims, then data; gzipped when gz. */
static inline void fx_write_idx(const char *path, uint32_t magic, int ndim, const uint32_t *dims,
                                const uint8_t *data, size_t ndata, int gz) {
    uint8_t head[16];
    size_t hn = 0;
    uint32_t words[4] = {magic, 0, 0, 0};
    for (int d = 0; d < ndim; ++d) words[1 + d] = dims[d];
    for (int k = 0; k <= ndim; ++k) {
        head[hn++] = (uint8_t)(words[k] >> 24);
        head[hn++] = (uint8_t)(words[k] >> 16);
        head[hn++] = (uint8_t)(words[k] >> 8);
        head[hn++] = (uint8_t)words[k];
    }
    if (gz) {
        gzFile g = gzopen(path, "wb");
        if (!g) abort();
        gzwrite(g, head, (unsigned)hn);
        if (ndata) gzwrite(g, data, (unsigned)ndata);
        gzclose(g);
    } else {
        FILE *f = fopen(path, "wb");
        if (!f) abort();
        fwrite(head, 1, hn, f);
        if (ndata) fwrite(data, 1, ndata, f);
        fclose(f);
    }
}

/* Truncates a file to n bytes. */
/* Copies the file `from` to `to` (created or replaced); 0 on success, -1 on any failure. */
static inline int fx_copy_file(const char *from, const char *to) {
    FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
    char buf[65536];
    size_t n;
    int ok = in && out;
    while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0) ok = fwrite(buf, 1, n, out) == n;
    if (in) fclose(in);
    if (out && fclose(out) != 0) ok = 0;
    return ok ? 0 : -1;
}

/* A CMocka group state: a scratch folder holding one fixture dataset "good.h5" of n images
 * [C, S, S] with labels (fx_write_dataset). Set up with fx_dataset_dir_setup, removed with
 * fx_dataset_dir_teardown. */
typedef struct fx_dataset_dir {
    char dir[256];
    char good[320];
} fx_dataset_dir;

static inline int fx_dataset_dir_setup(void **state, int64_t n, int64_t C, int64_t S) {
    fx_dataset_dir *f = calloc(1, sizeof *f);
    if (!f) return -1;
    fx_mkdtemp(f->dir, sizeof f->dir);
    fx_join(f->good, sizeof f->good, f->dir, "good.h5");
    *state = f;
    return fx_write_dataset(f->good, n, C, S, 1) == PFGM_OK ? 0 : -1;
}

static inline int fx_dataset_dir_teardown(void **state) {
    fx_dataset_dir *f = *state;
    if (f) fx_rm_rf(f->dir);
    free(f);
    return 0;
}

static inline void fx_truncate(const char *path, off_t n) {
    if (truncate(path, n) != 0) abort();
}

/* A PNG through libpng's writer: color_type/bit_depth as libpng names them; rows holds
 * height rows of rowbytes each (16-bit samples big-endian, as PNG stores them). For
 * PNG_COLOR_TYPE_PALETTE, palette/npal give the colours. */
static inline void fx_write_png(const char *path, uint32_t width, uint32_t height,
                                int color_type, int bit_depth, const uint8_t *data,
                                size_t rowbytes, const png_color *palette, int npal) {
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (!f || !png || !info || setjmp(png_jmpbuf(png))) abort();
    png_init_io(png, f);
    png_set_IHDR(png, info, width, height, bit_depth, color_type, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_PLTE(png, info, palette, npal);
    png_write_info(png, info);
    for (uint32_t y = 0; y < height; ++y) png_write_row(png, data + (size_t)y * rowbytes);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
}

/* A baseline JPEG through libjpeg's encoder (default error manager: a failure ends the
 * test process, which is what a fixture writer should do): pixels [height, width,
 * channels], channels 1 (gray) or 3 (RGB, stored YCbCr 4:4:4 so that only the DCT
 * quantization loses), at `quality` 1..100, entropy-coded with arithmetic coding when
 * `arithmetic` is set, else Huffman. */
static inline void fx_write_jpeg_coding(const char *path, uint32_t width, uint32_t height,
                                        int channels, const uint8_t *pixels, int quality,
                                        int arithmetic) {
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = width;
    c.image_height = height;
    c.input_components = channels;
    c.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    c.arith_code = arithmetic ? TRUE : FALSE;
    for (int k = 0; k < c.num_components; ++k) c.comp_info[k].h_samp_factor = c.comp_info[k].v_samp_factor = 1;
    jpeg_start_compress(&c, TRUE);
    for (uint32_t y = 0; y < height; ++y) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)y * width * (size_t)channels);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(f);
}

/* fx_write_jpeg_coding with Huffman coding (baseline). */
static inline void fx_write_jpeg(const char *path, uint32_t width, uint32_t height, int channels,
                                 const uint8_t *pixels, int quality) {
    fx_write_jpeg_coding(path, width, height, channels, pixels, quality, 0);
}

/* Reads a whole dataset file back with the HDF5 API (independently of the reader):
 * *images [count, C, H, W] and *labels [count] (NULL without /labels) are malloc'ed. */
typedef struct fx_dataset {
    int64_t count, C, H, W;
    uint8_t *images;
    int32_t *labels;
    int64_t seed;
} fx_dataset;

static inline int fx_read_dataset(const char *path, fx_dataset *d) {
    memset(d, 0, sizeof *d);
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) return 0;
    hid_t ds = H5Dopen2(file, "images", H5P_DEFAULT);
    hid_t sp = H5Dget_space(ds);
    hsize_t dims[4];
    H5Sget_simple_extent_dims(sp, dims, NULL);
    d->count = (int64_t)dims[0];
    d->C = (int64_t)dims[1];
    d->H = (int64_t)dims[2];
    d->W = (int64_t)dims[3];
    d->images = malloc((size_t)(d->count * d->C * d->H * d->W));
    H5Dread(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, d->images);
    H5Sclose(sp);
    H5Dclose(ds);
    if (H5Lexists(file, "labels", H5P_DEFAULT) > 0) {
        ds = H5Dopen2(file, "labels", H5P_DEFAULT);
        d->labels = malloc((size_t)d->count * sizeof *d->labels);
        H5Dread(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, d->labels);
        H5Dclose(ds);
    }
    hid_t a = H5Aopen(file, "seed", H5P_DEFAULT);
    H5Aread(a, H5T_NATIVE_INT64, &d->seed);
    H5Aclose(a);
    H5Fclose(file);
    return 1;
}

static inline void fx_free_dataset(fx_dataset *d) {
    free(d->images);
    free(d->labels);
}

#endif /* PFGM_TESTS_DATA_FIXTURES_H */
