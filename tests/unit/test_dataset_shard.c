/* Sharded dataset reader: W = 1, 2, 3 ranks simulated in one process on the same file show
 * disjoint contiguous shards, every kept image used exactly once per epoch (also when the
 * dataset size does not divide evenly), equal steps per epoch on every rank, pixels mapped
 * to 2x/255 - 1, exact resume from a saved position, deterministic and resumable flips, and
 * the Fisher-Yates permutation. Images are identified by their /labels (= file index) and
 * checked against their pixel contents. The files here are one block each (the writer's
 * chunks hold 256 images, the default block): the streaming reader's order is then the
 * contiguous-shard order (docs/data-format.md "Epoch order"); tests/unit/test_dataset_stream.c
 * covers files of many blocks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>

#include "data_fixtures.h"
#include "pfgm/dataset.h"
#include "pfgm/rng.h"

enum { N_IMAGES = 103, C = 1, S = 4, DIM = C * S * S };

typedef struct fixture {
    char dir[256];
    char path[320];
    char path3[320]; /* 3-channel file of 40 images */
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    fx_mkdtemp(f->dir, sizeof f->dir);
    fx_join(f->path, sizeof f->path, f->dir, "d103.h5");
    fx_join(f->path3, sizeof f->path3, f->dir, "rgb40.h5");
    if (fx_write_dataset(f->path, N_IMAGES, C, S, 1) != PFGM_OK) return -1;
    if (fx_write_dataset(f->path3, 40, 3, 8, 1) != PFGM_OK) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    fx_rm_rf(f->dir);
    free(f);
    return 0;
}

static pfgm_dataset *open_rank(const char *path, int r, int w, int64_t L, uint32_t seed, int flip) {
    pfgm_dataset_options o = {.path = path, .rank = r, .world_size = w, .channels = C,
                              .image_size = S, .batch_size = L, .seed = seed, .random_flip = flip};
    pfgm_dataset *ds = NULL;
    pfgm_status st = pfgm_dataset_open(&o, &ds);
    if (st != PFGM_OK) fail_msg("open %s rank %d/%d: %s", path, r, w, pfgm_error_message());
    return ds;
}

/* 1 when image k of a batch (float [C,S,S]) is fixture image `label`, mirrored when
 * `flipped`, with every pixel exactly 2 * (x / 255) - 1. */
static int image_matches(const float *img, int64_t label, int64_t ch, int64_t side, int flipped) {
    for (int64_t c = 0; c < ch; ++c)
        for (int64_t h = 0; h < side; ++h)
            for (int64_t w = 0; w < side; ++w) {
                int64_t sw = flipped ? side - 1 - w : w;
                float want = 2.0f * ((float)fx_pixel(label, c, h, sw) / 255.0f) - 1.0f;
                if (img[(c * side + h) * side + w] != want) return 0;
            }
    return 1;
}

/* For each (W, L): shards are contiguous and disjoint, steps are equal on every rank, and
 * within each epoch every kept image appears once and no image twice. When L divides the
 * shard, every image of every shard is used exactly once per epoch. */
static void t_shards_disjoint_exactly_once(void **state) {
    fixture *f = *state;
    const struct { int W; int64_t L; } cases[] = {{1, 5}, {1, 103}, {2, 1}, {2, 7}, {3, 5},
                                                  {3, 17}, {3, 34}};
    float *batch = malloc(N_IMAGES * DIM * sizeof *batch);
    int32_t labels[N_IMAGES];
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ++ci) {
        const int W = cases[ci].W;
        const int64_t L = cases[ci].L, per_rank = N_IMAGES / W, steps = per_rank / L;
        pfgm_dataset *ds[3];
        for (int r = 0; r < W; ++r) {
            ds[r] = open_rank(f->path, r, W, L, 1234, 0);
            assert_int_equal(pfgm_dataset_count(ds[r]), N_IMAGES);
            assert_int_equal(pfgm_dataset_per_rank(ds[r]), per_rank);
            assert_int_equal(pfgm_dataset_steps_per_epoch(ds[r]), steps);
            assert_int_equal(pfgm_dataset_steps_per_epoch(ds[r]),
                             pfgm_dataset_steps_per_epoch(ds[0]));
        }
        for (int epoch = 0; epoch < 3; ++epoch) {
            int seen[N_IMAGES] = {0};
            int64_t used = 0;
            for (int64_t s = 0; s < steps; ++s)
                for (int r = 0; r < W; ++r) {
                    pfgm_dataset_position p;
                    pfgm_dataset_get_position(ds[r], &p);
                    assert_int_equal(p.epoch, epoch);
                    assert_int_equal(p.index, s);
                    assert_int_equal(pfgm_dataset_next_batch(ds[r], batch, labels), PFGM_OK);
                    for (int64_t k = 0; k < L; ++k) {
                        const int32_t id = labels[k];
                        /* rank r owns the contiguous rows [r * per_rank, (r+1) * per_rank) */
                        assert_true(id >= r * per_rank && id < (r + 1) * per_rank);
                        assert_int_equal(seen[id], 0);
                        seen[id] = 1;
                        ++used;
                        assert_true(image_matches(batch + k * DIM, id, C, S, 0));
                    }
                }
            assert_int_equal(used, (int64_t)W * steps * L);
            /* the dropped tail of the file (N mod W images) is never used */
            for (int64_t id = W * per_rank; id < N_IMAGES; ++id) assert_int_equal(seen[id], 0);
            if (per_rank % L == 0)
                for (int64_t id = 0; id < W * per_rank; ++id) assert_int_equal(seen[id], 1);
            for (int r = 0; r < W; ++r) { /* after the last step: next epoch, index 0 */
                pfgm_dataset_position p;
                pfgm_dataset_get_position(ds[r], &p);
                assert_int_equal(p.epoch, epoch + 1);
                assert_int_equal(p.index, 0);
            }
        }
        for (int r = 0; r < W; ++r) pfgm_dataset_close(ds[r]);
    }
    free(batch);
}

/* Each epoch draws a new order of the shard; the same (seed, rank, epoch) draws the same. */
static void t_epoch_reshuffle(void **state) {
    fixture *f = *state;
    const int64_t L = 51;
    pfgm_dataset *a = open_rank(f->path, 1, 2, L, 99, 0);
    pfgm_dataset *b = open_rank(f->path, 1, 2, L, 99, 0);
    pfgm_dataset *c = open_rank(f->path, 1, 2, L, 100, 0);
    float *img = malloc(L * DIM * sizeof *img);
    int32_t e0[51], e1[51], b0[51], c0[51];
    assert_int_equal(pfgm_dataset_next_batch(a, img, e0), PFGM_OK);
    assert_int_equal(pfgm_dataset_next_batch(a, img, e1), PFGM_OK);
    assert_int_equal(pfgm_dataset_next_batch(b, img, b0), PFGM_OK);
    assert_int_equal(pfgm_dataset_next_batch(c, img, c0), PFGM_OK);
    assert_memory_equal(e0, b0, sizeof e0);
    assert_memory_not_equal(e0, e1, sizeof e0);
    assert_memory_not_equal(e0, c0, sizeof e0);
    /* the epoch order is exactly the documented permutation of the shard */
    int64_t perm[51];
    pfgm_permutation(99, 1, PFGM_STREAM_DATA_SHUFFLE, 1, 51, perm);
    for (int k = 0; k < 51; ++k) assert_int_equal(e1[k], 51 + perm[k]);
    free(img);
    pfgm_dataset_close(a);
    pfgm_dataset_close(b);
    pfgm_dataset_close(c);
}

/* Saving the position and restoring it (in the same reader, or in a fresh one, as a resumed
 * run does) gives the identical next batches, flips included, across an epoch boundary. */
static void t_position_restore(void **state) {
    fixture *f = *state;
    const int64_t L = 5, K = 9; /* 6 steps per epoch on 3 ranks: K crosses two epochs */
    const size_t bytes = (size_t)(K * L * DIM) * sizeof(float);
    float *x = malloc(bytes), *y = malloc(bytes), *z = malloc(bytes);
    int32_t lx[45], ly[45], lz[45];
    pfgm_dataset *a = open_rank(f->path, 2, 3, L, 5, 1);
    float *tmp = malloc(L * DIM * sizeof *tmp);
    for (int s = 0; s < 4; ++s) assert_int_equal(pfgm_dataset_next_batch(a, tmp, NULL), PFGM_OK);
    pfgm_dataset_position saved;
    pfgm_dataset_get_position(a, &saved);
    assert_int_equal(saved.epoch, 0);
    assert_int_equal(saved.index, 4);
    for (int s = 0; s < K; ++s)
        assert_int_equal(pfgm_dataset_next_batch(a, x + s * L * DIM, lx + s * L), PFGM_OK);
    assert_int_equal(pfgm_dataset_set_position(a, &saved), PFGM_OK);
    for (int s = 0; s < K; ++s)
        assert_int_equal(pfgm_dataset_next_batch(a, y + s * L * DIM, ly + s * L), PFGM_OK);
    pfgm_dataset *b = open_rank(f->path, 2, 3, L, 5, 1);
    assert_int_equal(pfgm_dataset_set_position(b, &saved), PFGM_OK);
    for (int s = 0; s < K; ++s)
        assert_int_equal(pfgm_dataset_next_batch(b, z + s * L * DIM, lz + s * L), PFGM_OK);
    assert_memory_equal(x, y, bytes);
    assert_memory_equal(x, z, bytes);
    assert_memory_equal(lx, ly, sizeof lx);
    assert_memory_equal(lx, lz, sizeof lx);

    pfgm_dataset_position bad = {0, pfgm_dataset_steps_per_epoch(a)};
    assert_int_equal(pfgm_dataset_set_position(a, &bad), PFGM_ERR_INVALID_ARG);
    bad = (pfgm_dataset_position){-1, 0};
    assert_int_equal(pfgm_dataset_set_position(a, &bad), PFGM_ERR_INVALID_ARG);
    free(x);
    free(y);
    free(z);
    free(tmp);
    pfgm_dataset_close(a);
    pfgm_dataset_close(b);
}

/* With random_flip every image is its original or its mirror, both occur, the choice is
 * the documented Philox bit, and it repeats for the same seed; without it, no flips. */
static void t_flips(void **state) {
    fixture *f = *state;
    const int64_t L = 8, side = 8, dim = 3 * side * side;
    pfgm_dataset_options o = {.path = f->path3, .rank = 0, .world_size = 1, .channels = 3,
                              .image_size = 8, .batch_size = L, .seed = 77, .random_flip = 1};
    pfgm_dataset *a = NULL, *b = NULL, *plain = NULL;
    assert_int_equal(pfgm_dataset_open(&o, &a), PFGM_OK);
    assert_int_equal(pfgm_dataset_open(&o, &b), PFGM_OK);
    o.random_flip = 0;
    assert_int_equal(pfgm_dataset_open(&o, &plain), PFGM_OK);
    const int64_t steps = pfgm_dataset_steps_per_epoch(a);
    assert_int_equal(steps, 5);
    float *x = malloc(L * dim * sizeof *x), *y = malloc(L * dim * sizeof *y);
    int32_t lx[8], ly[8];
    int nflip = 0, nkeep = 0;
    for (int64_t s = 0; s < 3 * steps; ++s) {
        assert_int_equal(pfgm_dataset_next_batch(a, x, lx), PFGM_OK);
        assert_int_equal(pfgm_dataset_next_batch(b, y, ly), PFGM_OK);
        assert_memory_equal(x, y, (size_t)(L * dim) * sizeof *x);
        const pfgm_rng rng = {.seed = 77, .rank = 0, .stream = PFGM_STREAM_DATA_FLIP,
                              .step = (uint64_t)s};
        uint32_t words[8];
        pfgm_rng_u32(&rng, 0, 8, words);
        for (int k = 0; k < L; ++k) {
            const int flipped = (int)(words[k] >> 31);
            assert_true(image_matches(x + k * dim, lx[k], 3, side, flipped));
            assert_false(image_matches(x + k * dim, lx[k], 3, side, !flipped));
            nflip += flipped;
            nkeep += !flipped;
        }
        assert_int_equal(pfgm_dataset_next_batch(plain, x, lx), PFGM_OK);
        for (int k = 0; k < L; ++k) assert_true(image_matches(x + k * dim, lx[k], 3, side, 0));
    }
    assert_true(nflip > 0 && nkeep > 0);
    free(x);
    free(y);
    pfgm_dataset_close(a);
    pfgm_dataset_close(b);
    pfgm_dataset_close(plain);
}

/* Fisher-Yates from Philox: a permutation, reproducible, keyed by seed, rank and step, and
 * near-uniform: over 4000 steps each of 10 elements lands first 400 +- 5 sd (sd = 19). */
static void t_permutation(void **state) {
    (void)state;
    int64_t p[10], q[10];
    int64_t first[10] = {0};
    for (uint64_t step = 0; step < 4000; ++step) {
        pfgm_permutation(3, 0, PFGM_STREAM_USER, step, 10, p);
        int hit[10] = {0};
        for (int i = 0; i < 10; ++i) {
            assert_true(p[i] >= 0 && p[i] < 10);
            assert_int_equal(hit[p[i]], 0);
            hit[p[i]] = 1;
        }
        first[p[0]]++;
    }
    for (int i = 0; i < 10; ++i) assert_true(first[i] > 400 - 95 && first[i] < 400 + 95);
    pfgm_permutation(3, 0, PFGM_STREAM_USER, 17, 10, p);
    pfgm_permutation(3, 0, PFGM_STREAM_USER, 17, 10, q);
    assert_memory_equal(p, q, sizeof p);
    pfgm_permutation(3, 1, PFGM_STREAM_USER, 17, 10, q);
    assert_memory_not_equal(p, q, sizeof p);
    pfgm_permutation(4, 0, PFGM_STREAM_USER, 17, 10, q);
    assert_memory_not_equal(p, q, sizeof p);
    pfgm_permutation(3, 0, PFGM_STREAM_USER, 17, 1, q);
    assert_int_equal(q[0], 0);
}

/* A position moved to another world size or batch size keeps the epoch and the images the
 * job consumed in it, rounded down to whole new steps; past the new epoch's end it is the
 * next epoch's start. The cases: index 10 at W=1, L=64 -> L=32 is 20 (it used to
 * resume at 10); W=2 -> 1 with 64 -> 32 is 40; 64 -> 128 is 5 (it used to be refused). */
static void t_reshard_position(void **state) {
    (void)state;
    pfgm_dataset_position p = {3, 10}, q;
    q = pfgm_dataset_position_map(p, 64, 32, 100);
    assert_int_equal(q.epoch, 3);
    assert_int_equal(q.index, 20);
    q = pfgm_dataset_position_map(p, 2 * 64, 1 * 32, 100);
    assert_int_equal(q.index, 40);
    q = pfgm_dataset_position_map(p, 64, 128, 100);
    assert_int_equal(q.index, 5);
    q = pfgm_dataset_position_map(p, 64, 48, 100); /* 640 images = 13.3 steps of 48 */
    assert_int_equal(q.index, 13);
    q = pfgm_dataset_position_map(p, 64, 32, 20); /* 20 is past a 20-batch epoch */
    assert_int_equal(q.epoch, 4);
    assert_int_equal(q.index, 0);
    p.index = 0;
    q = pfgm_dataset_position_map(p, 64, 32, 7);
    assert_int_equal(q.epoch, 3);
    assert_int_equal(q.index, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_shards_disjoint_exactly_once),
        cmocka_unit_test(t_epoch_reshuffle),
        cmocka_unit_test(t_position_restore),
        cmocka_unit_test(t_flips),
        cmocka_unit_test(t_permutation),
        cmocka_unit_test(t_reshard_position),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
