/* Reader throughput (docs/benchmarks.md "Dataset reader"): images per second that
 * pfgm_dataset_next_batch hands out with and without the prefetch thread, on a synthetic
 * dataset file written here through the writer API (or --file PATH), optionally with a
 * simulated training step of --compute-ms milliseconds between batches (a sleep: the host
 * waiting on a GPU step), so the overlap of reading with training shows. Prints
 *   BENCH reader[_cold] <prefetch|sync> compute_ms <c> images_per_s <x> step_ms <t> blocks_read <n>
 * one line per run; asserts nothing about time.
 * With --cold 1 the file's pages are dropped from the page cache before each run
 * (posix_fadvise POSIX_FADV_DONTNEED on this file only), so the blocks come from the disk.
 * Usage: bench_reader [--file PATH] [--count N] [--size S] [--channels C] [--batch L]
 *                     [--steps K] [--compute-ms T[,T...]] [--cache-mb M] [--window K]
 *                     [--cold 0|1]
 * Defaults: a 50,000-image 3x32x32 file (146 MiB), L 256, 150 steps, compute 0 and 20 ms,
 * cache 64 MiB, window 32 blocks. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pfgm/dataset.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_ms(double ms) {
    if (ms <= 0) return;
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)((ms - 1000.0 * (double)(time_t)(ms / 1000)) * 1e6)};
    nanosleep(&ts, NULL);
}

/* Drops the file's pages from the page cache (only this file's). */
static void drop_cached(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return;
    fdatasync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
}

static int write_file(const char *path, int64_t n, int64_t c, int64_t s) {
    pfgm_dataset_writer *w = NULL;
    const int64_t dim = c * s * s;
    if (pfgm_dataset_writer_create(path, n, c, s, s, 1, "bench_reader synthetic", 1, &w) != PFGM_OK) return 1;
    uint8_t *img = malloc((size_t)dim);
    for (int64_t i = 0; i < n; ++i) {
        for (int64_t p = 0; p < dim; ++p) img[p] = (uint8_t)((i * 31 + p * 7) & 0xff);
        if (pfgm_dataset_writer_append(w, img, (int32_t)(i % 10)) != PFGM_OK) {
            free(img);
            pfgm_dataset_writer_abort(w);
            return 1;
        }
    }
    free(img);
    return pfgm_dataset_writer_commit(w) != PFGM_OK;
}

int main(int argc, char **argv) {
    const char *file = NULL;
    int64_t count = 50000, size = 32, channels = 3, L = 256, steps = 150, cache_mb = 64, window = 32, cold = 0;
    char compute[256] = "0,20";
    for (int i = 1; i < argc; ++i) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) goto usage;
        if (!strcmp(a, "--file")) file = v;
        else if (!strcmp(a, "--count")) count = atoll(v);
        else if (!strcmp(a, "--size")) size = atoll(v);
        else if (!strcmp(a, "--channels")) channels = atoll(v);
        else if (!strcmp(a, "--batch")) L = atoll(v);
        else if (!strcmp(a, "--steps")) steps = atoll(v);
        else if (!strcmp(a, "--cache-mb")) cache_mb = atoll(v);
        else if (!strcmp(a, "--window")) window = atoll(v);
        else if (!strcmp(a, "--cold")) cold = atoll(v);
        else if (!strcmp(a, "--compute-ms")) snprintf(compute, sizeof compute, "%s", v);
        else goto usage;
        ++i;
    }
    char tmpdir[256] = "", path[512];
    if (!file) {
        const char *base = getenv("TMPDIR");
        snprintf(tmpdir, sizeof tmpdir, "%s/pfgm-bench-XXXXXX", base && base[0] ? base : "/tmp");
        if (!mkdtemp(tmpdir)) {
            perror("bench_reader: mkdtemp");
            return 1;
        }
        snprintf(path, sizeof path, "%s/synthetic.h5", tmpdir);
        double t0 = now_s();
        if (write_file(path, count, channels, size)) {
            fprintf(stderr, "bench_reader: %s\n", pfgm_error_message());
            return 1;
        }
        printf("# wrote %s: %lld images of %lldx%lldx%lld in %.2f s\n", path, (long long)count,
               (long long)channels, (long long)size, (long long)size, now_s() - t0);
        file = path;
    }
    pfgm_dataset_info info;
    if (pfgm_dataset_probe(file, &info) != PFGM_OK) {
        fprintf(stderr, "bench_reader: %s\n", pfgm_error_message());
        return 1;
    }
    const int64_t dim = info.channels * info.height * info.width;
    float *batch = malloc((size_t)(L * dim) * sizeof *batch);
    int rc = 0;
    for (char *tok = strtok(compute, ","); tok && !rc; tok = strtok(NULL, ",")) {
        const double ms = atof(tok);
        for (int prefetch = 0; prefetch < 2 && !rc; ++prefetch) {
            pfgm_dataset_options o = {.path = file, .rank = 0, .world_size = 1, .batch_size = L,
                                      .seed = 5, .random_flip = 1, .shuffle_window = window,
                                      .cache_bytes = cache_mb << 20, .no_prefetch = !prefetch};
            pfgm_dataset *ds = NULL;
            if (cold) drop_cached(file);
            if (pfgm_dataset_open(&o, &ds) != PFGM_OK) {
                fprintf(stderr, "bench_reader: %s\n", pfgm_error_message());
                rc = 1;
                break;
            }
            /* one untimed batch: the thread's first read overlaps nothing */
            if (pfgm_dataset_next_batch(ds, batch, NULL) != PFGM_OK) rc = 1;
            const double t0 = now_s();
            for (int64_t s = 0; s < steps && !rc; ++s) {
                if (pfgm_dataset_next_batch(ds, batch, NULL) != PFGM_OK) rc = 1;
                sleep_ms(ms);
            }
            const double dt = now_s() - t0;
            pfgm_dataset_stats st;
            pfgm_dataset_get_stats(ds, &st);
            if (rc) fprintf(stderr, "bench_reader: %s\n", pfgm_error_message());
            else
                printf("BENCH reader%s %s compute_ms %g images_per_s %.0f step_ms %.2f blocks_read %lld\n",
                       cold ? "_cold" : "", prefetch ? "prefetch" : "sync", ms, (double)(steps * L) / dt, 1e3 * dt / (double)steps,
                       (long long)st.blocks_read);
            pfgm_dataset_close(ds);
        }
    }
    free(batch);
    if (tmpdir[0]) {
        unlink(path);
        rmdir(tmpdir);
    }
    return rc;
usage:
    fprintf(stderr, "usage: bench_reader [--file PATH] [--count N] [--size S] [--channels C] [--batch L] "
                    "[--steps K] [--compute-ms T[,T...]] [--cache-mb M] [--window K] [--cold 0|1]\n");
    return 2;
}
