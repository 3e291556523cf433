/* pfgm-prep under an MPI launcher (docs/data-format.md, "Parallel prep"): every rank
 * converts its contiguous part of the input into a part file of fixed-size records, then
 * rank 0 writes the dataset file in the shuffled order, reading each image from the part
 * that holds it. No rank holds more than one image and one HDF5 chunk of pixels (plus the
 * n-entry permutation every converter draws), and the file is the one the serial path
 * writes: the same permutation, writer, chunking and attributes.
 *
 * Part files are raw records pfgm writes and reads itself (image [C, H, W] uint8, then the
 * int32 label in host order), named <out>.tmp.<pid of rank 0>.part<r>, next to the output
 * (so the output's directory must be visible to every rank, as it must for the dataset
 * itself); record k of part r is source image lo_r + k, at byte k * record size (records
 * of images that --limit leaves out are holes). Every part is removed at the end, after an
 * error too; the output appears only complete (the writer's temporary + rename). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/prep_internal.h"
#include "pfgm/dataset.h"
#include "pfgm/rng.h"
#include "util/check.h"

int64_t prep_part_start(int64_t n, int rank, int world) {
    /* floor(r n / W) = r floor(n / W) + floor(r (n mod W) / W), no product above 2^62 */
    const int64_t q = n / world, rem = n % world;
    return rank * q + ((int64_t)rank * rem) / world;
}

/* The rank whose part holds source index s: the largest q with start(q) <= s (binary
 * search; starts are non-decreasing in q). */
static int part_owner(int64_t n, int world, int64_t s) {
    int lo = 0, hi = world - 1;
    while (lo < hi) {
        const int mid = lo + (hi - lo + 1) / 2;
        if (prep_part_start(n, mid, world) <= s)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

pfgm_status prep_agree(pfgm_comm *comm, pfgm_status st) {
    int32_t first = st != PFGM_OK ? comm->rank : comm->world_size;
    pfgm_status cs = comm->allreduce(comm, &first, 1, PFGM_I32, PFGM_REDUCE_MIN);
    if (cs != PFGM_OK) return cs;
    if (first == comm->world_size) return PFGM_OK;
    int32_t code = (int32_t)st;
    char msg[1024] = "";
    if (comm->rank == first) snprintf(msg, sizeof msg, "%s", pfgm_error_message());
    if ((cs = comm->broadcast(comm, &code, 1, PFGM_I32, first)) != PFGM_OK ||
        (cs = comm->broadcast(comm, msg, sizeof msg, PFGM_U8, first)) != PFGM_OK)
        return cs;
    if (comm->rank != first) pfgm_error((pfgm_status)code, "%s", msg);
    return (pfgm_status)code;
}

static void part_name(char *buf, size_t cap, const char *out, int32_t pid0, int r) {
    snprintf(buf, cap, "%s.tmp.%d.part%d", out, (int)pid0, r);
}

/* Writes this rank's part: the selected source images of [lo, hi), each at its record. */
static pfgm_status write_part(const prep_source *src, const char *path, int64_t lo, int64_t hi,
                              const uint8_t *selected, size_t rec, const pfgm_prep_options *opt) {
    pfgm_status st = PFGM_OK;
    uint8_t *buf = malloc(rec);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (!buf || fd < 0) {
        st = !buf ? pfgm_error(PFGM_ERR_NOMEM, "%s: out of memory", path)
                  : pfgm_error(PFGM_ERR_IO, "%s: cannot create part file: %s", path,
                               strerror(errno));
        goto done;
    }
    int64_t todo = 0, done_n = 0;
    for (int64_t s = lo; s < hi; ++s) todo += selected[s - lo];
    const size_t dim = rec - sizeof(int32_t);
    for (int64_t s = lo; s < hi; ++s) {
        if (!selected[s - lo]) continue;
        int32_t label = -1;
        PFGM_TRY_GOTO(src->get(src->ctx, s, buf, &label), done);
        memcpy(buf + dim, &label, sizeof label);
        const off_t off = (off_t)((size_t)(s - lo) * rec);
        size_t put = 0;
        while (put < rec) {
            ssize_t k = pwrite(fd, buf + put, rec - put, off + (off_t)put);
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0) {
                st = pfgm_error(PFGM_ERR_IO, "%s: write failed: %s", path,
                                k < 0 ? strerror(errno) : "no progress");
                goto done;
            }
            put += (size_t)k;
        }
        ++done_n;
        /* every rank asks, so a signal stops every rank (the caller shows rank 0's part) */
        if (opt->progress && opt->progress(opt->progress_ctx, done_n, todo)) {
            st = pfgm_error(PFGM_STOPPED, "stopped on request; nothing written");
            goto done;
        }
    }
    if (src->finish) st = src->finish(src->ctx, lo, hi);
done:
    if (fd >= 0 && close(fd) != 0 && st == PFGM_OK)
        st = pfgm_error(PFGM_ERR_IO, "%s: close failed: %s", path, strerror(errno));
    free(buf);
    return st;
}

/* Rank 0: the dataset file in shuffled order, each image read from its part. */
static pfgm_status assemble(const prep_source *src, const char *out, const char *source,
                            const pfgm_prep_options *opt, const int64_t *perm, int64_t m,
                            int world, int32_t pid0, size_t rec) {
    pfgm_status st = PFGM_OK;
    pfgm_dataset_writer *w = NULL;
    int *fds = malloc((size_t)world * sizeof *fds);
    uint8_t *buf = malloc(rec);
    char path[4200];
    if (!fds || !buf) {
        free(fds);
        free(buf);
        return pfgm_error(PFGM_ERR_NOMEM, "%s: out of memory", out);
    }
    for (int q = 0; q < world; ++q) fds[q] = -1;
    for (int q = 0; q < world; ++q) {
        part_name(path, sizeof path, out, pid0, q);
        fds[q] = open(path, O_RDONLY);
        if (fds[q] < 0) {
            st = pfgm_error(PFGM_ERR_IO, "%s: cannot open part file of rank %d: %s (is the "
                            "output's folder shared by every rank?)", path, q, strerror(errno));
            goto done;
        }
    }
    PFGM_TRY_GOTO(pfgm_dataset_writer_create(out, m, src->C, src->H, src->W, src->has_labels,
                                             source, opt->seed, &w), done);
    const size_t dim = rec - sizeof(int32_t);
    for (int64_t i = 0; i < m; ++i) {
        const int64_t s = perm[i];
        const int q = part_owner(src->n, world, s);
        const off_t off = (off_t)((size_t)(s - prep_part_start(src->n, q, world)) * rec);
        size_t got = 0;
        while (got < rec) {
            ssize_t k = pread(fds[q], buf + got, rec - got, off + (off_t)got);
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0) {
                part_name(path, sizeof path, out, pid0, q);
                st = pfgm_error(PFGM_ERR_IO, "%s: read failed at image %lld: %s", path,
                                (long long)s, k < 0 ? strerror(errno) : "file too short");
                goto done;
            }
            got += (size_t)k;
        }
        int32_t label;
        memcpy(&label, buf + dim, sizeof label);
        PFGM_TRY_GOTO(pfgm_dataset_writer_append(w, buf, label), done);
        if (opt->progress && opt->progress(opt->progress_ctx, i + 1, m)) {
            st = pfgm_error(PFGM_STOPPED, "%s: stopped on request after %lld of %lld images; "
                            "nothing written", out, (long long)(i + 1), (long long)m);
            goto done;
        }
    }
    st = pfgm_dataset_writer_commit(w);
    w = NULL;
done:
    pfgm_dataset_writer_abort(w);
    for (int q = 0; q < world; ++q)
        if (fds[q] >= 0) close(fds[q]);
    free(fds);
    free(buf);
    return st;
}

pfgm_status prep_write_parallel(const prep_source *src, const char *out, const char *source,
                                const pfgm_prep_options *opt) {
    pfgm_comm *comm = opt->comm;
    const int r = comm->rank, world = comm->world_size;
    pfgm_status st = PFGM_OK;
    const int64_t n = src->n;
    const int64_t m = opt->limit > 0 && opt->limit < n ? opt->limit : n;
    const int64_t lo = prep_part_start(n, r, world), hi = prep_part_start(n, r + 1, world);
    const size_t rec = (size_t)(src->C * src->H * src->W) + sizeof(int32_t);
    int64_t *perm = NULL;
    uint8_t *selected = NULL;
    char part[4200];
    int part_made = 0;

    if (n > (int64_t)UINT32_MAX)
        st = pfgm_error(PFGM_ERR_INVALID_ARG, "%s: %lld images exceed 2^32 - 1", out, (long long)n);
    if (st == PFGM_OK) {
        perm = malloc((size_t)n * sizeof *perm);
        selected = calloc((size_t)(hi - lo) + 1, 1);
        if (!perm || !selected) st = pfgm_error(PFGM_ERR_NOMEM, "%s: out of memory", out);
    }
    int32_t pid0 = (int32_t)getpid();
    pfgm_status cs = comm->broadcast(comm, &pid0, 1, PFGM_I32, 0);
    if (cs != PFGM_OK) {
        st = cs;
        goto done;
    }
    if (st == PFGM_OK) {
        /* the serial path's permutation; this rank decodes the selected images of its part */
        pfgm_permutation(opt->seed, 0, PFGM_STREAM_PREP, 0, n, perm);
        for (int64_t i = 0; i < m; ++i)
            if (perm[i] >= lo && perm[i] < hi) selected[perm[i] - lo] = 1;
        part_name(part, sizeof part, out, pid0, r);
        part_made = 1;
        st = write_part(src, part, lo, hi, selected, rec, opt);
    }
    st = prep_agree(comm, st);
    if (st != PFGM_OK) goto done;
    if (r == 0) st = assemble(src, out, source, opt, perm, m, world, pid0, rec);
    st = prep_agree(comm, st);
done:
    if (part_made) unlink(part);
    free(perm);
    free(selected);
    return st;
}
