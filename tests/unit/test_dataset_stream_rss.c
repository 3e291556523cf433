/* Datasets larger than memory (docs/data-format.md "Streaming"): a 154 MB dataset file
 * (50000 images of 3 x 32 x 32, written through the writer API) is read for one whole
 * epoch and a few batches of the next by a reader whose cache the test caps at 16 MiB,
 * with the prefetch thread on. The process's peak resident memory (VmHWM of
 * /proc/self/status) may grow by at most the cache, the staging batch and the caller's
 * batch plus 24 MiB (HDF5's chunk cache, the block order, allocator slack) over its peak
 * before the reader opened, and that bound is asserted to be under a third of the file.
 * The whole-shard reader this one replaced would have grown by the file size. It also
 * checks that every image of the epoch is used at most once and that each block was read
 * once. Its own executable, so nothing else in the process raises the peak. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "data_fixtures.h"
#include "pfgm/dataset.h"

enum { COUNT = 50000, CH = 3, SIDE = 32, DIM = CH * SIDE * SIDE, LB = 250 };
#define CACHE_BYTES (16LL << 20)

/* VmHWM of this process in bytes, -1 when /proc is unreadable. */
static long long peak_rss(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long long kb = -1;
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %lld kB", &kb) == 1) break;
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

static void t_epoch_in_bounded_memory(void **state) {
    (void)state;
    char dir[256], path[320];
    fx_mkdtemp(dir, sizeof dir);
    fx_join(path, sizeof path, dir, "big.h5");
    {   /* images whose bytes depend on the index, so a wrong row would be a wrong label */
        pfgm_dataset_writer *w = NULL;
        assert_int_equal(pfgm_dataset_writer_create(path, COUNT, CH, SIDE, SIDE, 1, "rss test",
                                                    1, &w), PFGM_OK);
        uint8_t img[DIM];
        for (int64_t i = 0; i < COUNT; ++i) {
            for (int64_t p = 0; p < DIM; ++p) img[p] = (uint8_t)((i * 31 + p) & 0xff);
            assert_int_equal(pfgm_dataset_writer_append(w, img, (int32_t)i), PFGM_OK);
        }
        assert_int_equal(pfgm_dataset_writer_commit(w), PFGM_OK);
    }
    const long long file_bytes = (long long)COUNT * DIM;
    float *batch = malloc((size_t)LB * DIM * sizeof *batch);
    int32_t labels[LB];
    unsigned char *seen = calloc(COUNT, 1);
    assert_non_null(batch);
    assert_non_null(seen);
    memset(batch, 0, (size_t)LB * DIM * sizeof *batch); /* resident before the baseline */
    const long long before = peak_rss();
    if (before < 0) skip(); /* no /proc: nothing to measure */

    pfgm_dataset_options o = {.path = path, .rank = 0, .world_size = 1, .channels = CH,
                              .image_size = SIDE, .batch_size = LB, .seed = 11,
                              .random_flip = 1, .shuffle_window = 8, .cache_bytes = CACHE_BYTES};
    pfgm_dataset *ds = NULL;
    assert_int_equal(pfgm_dataset_open(&o, &ds), PFGM_OK);
    pfgm_dataset_stats st;
    pfgm_dataset_get_stats(ds, &st);
    assert_true(st.cache_bytes <= CACHE_BYTES);
    const int64_t steps = pfgm_dataset_steps_per_epoch(ds);
    for (int64_t s = 0; s < steps + 5; ++s) {
        assert_int_equal(pfgm_dataset_next_batch(ds, batch, labels), PFGM_OK);
        if (s >= steps) continue;
        for (int k = 0; k < LB; ++k) {
            assert_true(labels[k] >= 0 && labels[k] < COUNT);
            assert_int_equal(seen[labels[k]], 0);
            seen[labels[k]] = 1;
            /* pixel 1 of channel 0 row 0 (either orientation: check both ends of the row) */
            const uint8_t a = (uint8_t)((labels[k] * 31 + 0) & 0xff);
            const uint8_t b = (uint8_t)((labels[k] * 31 + SIDE - 1) & 0xff);
            const float x = batch[(size_t)k * DIM];
            assert_true(x == 2.0f * (a / 255.0f) - 1.0f || x == 2.0f * (b / 255.0f) - 1.0f);
        }
    }
    pfgm_dataset_get_stats(ds, &st);
    const long long after = peak_rss();
    const long long bound = st.cache_bytes + st.staging_bytes + (long long)LB * DIM * 4 + (24LL << 20);
    print_message("file %.1f MiB, cache %.1f MiB (%lld slots of %lld blocks), staging %.1f MiB, "
                  "blocks read %lld; peak RSS %.1f MiB before the reader, %.1f MiB after "
                  "(growth %.1f MiB, bound %.1f MiB)\n",
                  file_bytes / 1048576.0, st.cache_bytes / 1048576.0, (long long)st.cache_slots,
                  (long long)st.blocks, st.staging_bytes / 1048576.0, (long long)st.blocks_read,
                  before / 1048576.0, after / 1048576.0, (after - before) / 1048576.0,
                  bound / 1048576.0);
    assert_true(bound < file_bytes / 3);
    if (after - before > bound)
        fail_msg("peak RSS grew by %lld bytes reading a %lld-byte file, over the bound %lld",
                 after - before, file_bytes, bound);
    /* each block once in the epoch; the next epoch's first batches stay in its first window,
     * at most K + 2 = 10 blocks */
    assert_true(st.blocks_read >= st.blocks && st.blocks_read <= st.blocks + 10);
    pfgm_dataset_close(ds);
    free(batch);
    free(seen);
    fx_rm_rf(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_epoch_in_bounded_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
