/* Reader of IDX files (LeCun's MNIST format, also used by Fashion-MNIST): a big-endian
 * magic number 0x000008nn (unsigned bytes, nn dims), nn big-endian int32 dims, then the data.
 * Gzipped and plain files are both read through zlib's gzopen/gzread. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "pfgm/prep.h"
#include "util/check.h"

void pfgm_idx_free(pfgm_idx *idx) {
    if (!idx) return;
    free(idx->data);
    idx->data = NULL;
}

/* Reads up to n bytes; returns the count read, or -1 with a message set on a zlib error. */
static int64_t gz_read_all(gzFile gz, const char *path, uint8_t *buf, int64_t n) {
    int64_t got = 0;
    while (got < n) {
        int64_t want = n - got;
        if (want > (1 << 20)) want = 1 << 20;
        int r = gzread(gz, buf + got, (unsigned)want);
        if (r < 0) {
            int zerr = 0;
            const char *msg = gzerror(gz, &zerr);
            pfgm_error(PFGM_ERR_FORMAT, "%s: corrupt gzip data: %s", path,
                       zerr == Z_ERRNO ? strerror(errno) : msg);
            return -1;
        }
        if (r == 0) break;
        got += r;
    }
    return got;
}

static uint32_t be32(const uint8_t *b) {
    return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
}

static const char *idx_kind(uint32_t magic) {
    return magic == PFGM_IDX_MAGIC_IMAGES   ? "IDX images, unsigned bytes [N, H, W]"
           : magic == PFGM_IDX_MAGIC_LABELS ? "IDX labels, unsigned bytes [N]"
                                            : "IDX";
}

/* Opens `path` and reads its IDX header (magic must be `magic`), filling out->ndim, dims
 * and size (no data). On success *gzp is open at the first data byte. */
static pfgm_status open_header(const char *path, uint32_t magic, pfgm_idx *out, gzFile *gzp) {
    pfgm_status st = PFGM_OK;
    memset(out, 0, sizeof *out);
    *gzp = NULL;
    const int ndim = (int)(magic & 0xffu);
    if ((magic & 0xffffff00u) != 0x00000800u || ndim < 1 || ndim > 3)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "%s: unsupported IDX magic 0x%08x", path, magic);

    /* fopen first: gzopen's failure does not always carry a reliable errno. */
    FILE *probe = fopen(path, "rb");
    if (!probe) return pfgm_error(PFGM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    fclose(probe);
    gzFile gz = gzopen(path, "rb");
    if (!gz) return pfgm_error(PFGM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    gzbuffer(gz, 1 << 18);

    uint8_t head[4 + 4 * 3];
    int64_t hlen = 4 + 4 * (int64_t)ndim;
    int64_t got = gz_read_all(gz, path, head, 4);
    if (got < 0) {
        st = PFGM_ERR_FORMAT;
        goto done;
    }
    if (got < 4) {
        st = pfgm_error(PFGM_ERR_FORMAT, "%s: truncated: %lld bytes, too short for an IDX header",
                        path, (long long)got);
        goto done;
    }
    const uint32_t m = be32(head);
    if (m != magic) {
        const char *hint = m == PFGM_IDX_MAGIC_LABELS && magic == PFGM_IDX_MAGIC_IMAGES
                               ? " ---> HINT: this is a labels file; pass it with --labels"
                           : m == PFGM_IDX_MAGIC_IMAGES && magic == PFGM_IDX_MAGIC_LABELS
                               ? " ---> HINT: this is an images file; pass it with --images"
                               : "";
        st = pfgm_error(PFGM_ERR_FORMAT, "%s: wrong magic number 0x%08x, expected 0x%08x (%s)%s",
                        path, m, magic, idx_kind(magic), hint);
        goto done;
    }
    got = gz_read_all(gz, path, head + 4, hlen - 4);
    if (got < 0) {
        st = PFGM_ERR_FORMAT;
        goto done;
    }
    if (got < hlen - 4) {
        st = pfgm_error(PFGM_ERR_FORMAT, "%s: truncated IDX header (%d dims expected)", path, ndim);
        goto done;
    }
    out->ndim = ndim;
    out->size = 1;
    for (int d = 0; d < ndim; ++d) {
        uint32_t v = be32(head + 4 + 4 * d);
        if (v < 1 || v > 0x7fffffffu) {
            st = pfgm_error(PFGM_ERR_FORMAT, "%s: IDX dim %d is %u, expected 1..2^31-1", path, d, v);
            goto done;
        }
        out->dims[d] = v;
        if (out->size > ((int64_t)1 << 40) / (int64_t)v) {
            st = pfgm_error(PFGM_ERR_FORMAT, "%s: IDX dims give more than 2^40 bytes", path);
            goto done;
        }
        out->size *= v;
    }
done:
    if (st != PFGM_OK)
        gzclose(gz);
    else
        *gzp = gz;
    return st;
}

pfgm_status pfgm_idx_read(const char *path, uint32_t magic, pfgm_idx *out) {
    gzFile gz;
    int64_t got;
    pfgm_status st = open_header(path, magic, out, &gz);
    if (st != PFGM_OK) return st;
    /* Grow the buffer as data arrives, so a corrupt header claiming a huge size reports
     * "truncated" rather than exhausting memory. */
    int64_t cap = out->size < (64 << 20) ? out->size : (64 << 20), have = 0;
    out->data = malloc((size_t)cap);
    if (!out->data) {
        st = pfgm_error(PFGM_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    for (;;) {
        got = gz_read_all(gz, path, out->data + have, cap - have);
        if (got < 0) {
            st = PFGM_ERR_FORMAT;
            goto done;
        }
        have += got;
        if (have < cap || have == out->size) break;
        int64_t ncap = cap * 2 < out->size ? cap * 2 : out->size;
        uint8_t *nd = realloc(out->data, (size_t)ncap);
        if (!nd) {
            st = pfgm_error(PFGM_ERR_NOMEM, "%s: out of memory", path);
            goto done;
        }
        out->data = nd;
        cap = ncap;
    }
    if (have < out->size) {
        st = pfgm_error(PFGM_ERR_FORMAT,
                        "%s: truncated: %lld of the %lld data bytes the IDX header declares",
                        path, (long long)have, (long long)out->size);
        goto done;
    }
    uint8_t extra;
    got = gz_read_all(gz, path, &extra, 1);
    if (got < 0) {
        st = PFGM_ERR_FORMAT;
        goto done;
    }
    if (got > 0) {
        st = pfgm_error(PFGM_ERR_FORMAT,
                        "%s: trailing bytes after the %lld data bytes the IDX header declares",
                        path, (long long)out->size);
        goto done;
    }
done:
    gzclose(gz);
    if (st != PFGM_OK) pfgm_idx_free(out);
    return st;
}

/* ---- streaming reader (parallel pfgm-prep) ------------------------------------------------ */

struct pfgm_idx_stream {
    char *path;
    gzFile gz;
    int64_t hlen;  /* header bytes */
    int64_t pos;   /* data bytes consumed so far */
    int64_t size;  /* data bytes the header declares */
};

pfgm_status pfgm_idx_stream_open(const char *path, uint32_t magic, pfgm_idx *header,
                                 pfgm_idx_stream **out) {
    *out = NULL;
    gzFile gz;
    PFGM_TRY(open_header(path, magic, header, &gz));
    pfgm_idx_stream *s = calloc(1, sizeof *s);
    if (s) s->path = strdup(path);
    if (!s || !s->path) {
        free(s);
        gzclose(gz);
        return pfgm_error(PFGM_ERR_NOMEM, "%s: out of memory", path);
    }
    s->gz = gz;
    s->hlen = 4 + 4 * (int64_t)header->ndim;
    s->size = header->size;
    *out = s;
    return PFGM_OK;
}

pfgm_status pfgm_idx_stream_read(pfgm_idx_stream *s, int64_t offset, uint8_t *buf, int64_t n) {
    if (offset < s->pos || n < 0 || offset + n > s->size)
        return pfgm_error(PFGM_ERR_INVALID_ARG, "%s: IDX stream read of %lld bytes at %lld "
                          "(position %lld of %lld)", s->path, (long long)n, (long long)offset,
                          (long long)s->pos, (long long)s->size);
    if (offset > s->pos) {
        /* forward only: gzseek decompresses and drops the bytes in between */
        if (gzseek(s->gz, (z_off_t)(s->hlen + offset), SEEK_SET) < 0) {
            int zerr = 0;
            const char *msg = gzerror(s->gz, &zerr);
            return pfgm_error(PFGM_ERR_FORMAT, "%s: corrupt gzip data: %s", s->path,
                              zerr == Z_ERRNO ? strerror(errno) : msg);
        }
        s->pos = offset;
    }
    int64_t got = gz_read_all(s->gz, s->path, buf, n);
    if (got < 0) return PFGM_ERR_FORMAT;
    if (got < n)
        return pfgm_error(PFGM_ERR_FORMAT,
                          "%s: truncated: %lld of the %lld data bytes the IDX header declares",
                          s->path, (long long)(offset + got), (long long)s->size);
    s->pos = offset + n;
    return PFGM_OK;
}

pfgm_status pfgm_idx_stream_check_end(pfgm_idx_stream *s) {
    if (s->pos < s->size) {
        uint8_t last;
        PFGM_TRY(pfgm_idx_stream_read(s, s->size - 1, &last, 1));
    }
    uint8_t extra;
    int64_t got = gz_read_all(s->gz, s->path, &extra, 1);
    if (got < 0) return PFGM_ERR_FORMAT;
    if (got > 0)
        return pfgm_error(PFGM_ERR_FORMAT,
                          "%s: trailing bytes after the %lld data bytes the IDX header declares",
                          s->path, (long long)s->size);
    return PFGM_OK;
}

void pfgm_idx_stream_close(pfgm_idx_stream *s) {
    if (!s) return;
    gzclose(s->gz);
    free(s->path);
    free(s);
}
