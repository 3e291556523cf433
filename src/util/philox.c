/* Philox4x32-10 (Salmon et al., SC'11) and the uniform/normal fills built on it. The
 * round function lives in philox_impl.h, shared with the CUDA kernels; tests/unit/
 * test_philox.c checks the Random123 known-answer vectors. */
#include "pfgm/rng.h"
#include "util/philox_impl.h"

void pfgm_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    pfgm_philox_rounds(ctr[0], ctr[1], ctr[2], ctr[3], key[0], key[1], out);
}

static inline void rng_block(const pfgm_rng *r, uint64_t block, uint32_t out[4]) {
    pfgm_philox_block(r->seed, r->rank, r->stream, r->step, block, out);
}

static inline uint32_t rng_word(const pfgm_rng *r, uint64_t w) {
    uint32_t out[4];
    rng_block(r, w >> 2, out);
    return out[w & 3u];
}

void pfgm_rng_u32(const pfgm_rng *r, uint64_t offset, size_t n, uint32_t *out) {
    size_t j = 0;
    while (j < n) {
        uint64_t w = offset + j;
        uint32_t blk[4];
        rng_block(r, w >> 2, blk);
        for (unsigned lane = (unsigned)(w & 3u); lane < 4 && j < n; ++lane) out[j++] = blk[lane];
    }
}

void pfgm_rng_uniform(const pfgm_rng *r, uint64_t offset, size_t n, float *out) {
    size_t j = 0;
    while (j < n) {
        uint64_t w = offset + j;
        uint32_t blk[4];
        rng_block(r, w >> 2, blk);
        for (unsigned lane = (unsigned)(w & 3u); lane < 4 && j < n; ++lane) out[j++] = pfgm_philox_u24(blk[lane]);
    }
}

void pfgm_rng_normal(const pfgm_rng *r, uint64_t offset, size_t n, float *out) {
    size_t j = 0;
    while (j < n) {
        uint64_t e = offset + j;
        uint32_t blk[4];
        rng_block(r, e >> 2, blk);
        float z[4];
        pfgm_philox_box_muller(blk[0], blk[1], &z[0], &z[1]);
        pfgm_philox_box_muller(blk[2], blk[3], &z[2], &z[3]);
        for (unsigned lane = (unsigned)(e & 3u); lane < 4 && j < n; ++lane) out[j++] = z[lane];
    }
}

double pfgm_rng_uniform_f64(const pfgm_rng *r, uint64_t element) {
    uint32_t a = rng_word(r, 2 * element), b = rng_word(r, 2 * element + 1);
    uint64_t bits = (((uint64_t)a << 21) | (uint64_t)(b >> 11)) & ((1ull << 53) - 1);
    return ((double)bits + 0.5) * (1.0 / 9007199254740992.0);
}
