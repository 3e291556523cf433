/* Philox4x32-10 (Salmon et al., SC'11) and the uniform/normal fills built on it. The
 * constants are the published ones; tests/unit/test_philox.c checks the Random123
 * known-answer vectors. */
#include "pfgm/rng.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static inline void mulhilo32(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo) {
    uint64_t p = (uint64_t)a * (uint64_t)b;
    *hi = (uint32_t)(p >> 32);
    *lo = (uint32_t)p;
}

void pfgm_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; ++round) {
        if (round > 0) {
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        uint32_t hi0, lo0, hi1, lo1;
        mulhilo32(PHILOX_M0, c0, &hi0, &lo0);
        mulhilo32(PHILOX_M1, c2, &hi1, &lo1);
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

static inline void rng_block(const pfgm_rng *r, uint64_t block, uint32_t out[4]) {
    const uint32_t key[2] = {r->seed, r->rank};
    const uint32_t ctr[4] = {(uint32_t)block, r->stream, (uint32_t)r->step,
                             (uint32_t)(r->step >> 32)};
    pfgm_philox4x32_10(ctr, key, out);
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

static inline float u24(uint32_t x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }

void pfgm_rng_uniform(const pfgm_rng *r, uint64_t offset, size_t n, float *out) {
    size_t j = 0;
    while (j < n) {
        uint64_t w = offset + j;
        uint32_t blk[4];
        rng_block(r, w >> 2, blk);
        for (unsigned lane = (unsigned)(w & 3u); lane < 4 && j < n; ++lane) out[j++] = u24(blk[lane]);
    }
}

/* Box-Muller on a word pair: u1 in (0, 1] from the even word (never 0, so log is finite),
 * u2 in [0, 1) from the odd word; double precision so both backends round identically. */
static inline void box_muller(uint32_t a, uint32_t b, float *z0, float *z1) {
    const double two_pi = 6.283185307179586476925286766559;
    double u1 = ((double)a + 1.0) * (1.0 / 4294967296.0);
    double u2 = (double)b * (1.0 / 4294967296.0);
    double rad = sqrt(-2.0 * log(u1));
    *z0 = (float)(rad * cos(two_pi * u2));
    *z1 = (float)(rad * sin(two_pi * u2));
}

void pfgm_rng_normal(const pfgm_rng *r, uint64_t offset, size_t n, float *out) {
    size_t j = 0;
    while (j < n) {
        uint64_t e = offset + j;
        uint32_t blk[4];
        rng_block(r, e >> 2, blk);
        float z[4];
        box_muller(blk[0], blk[1], &z[0], &z[1]);
        box_muller(blk[2], blk[3], &z[2], &z[3]);
        for (unsigned lane = (unsigned)(e & 3u); lane < 4 && j < n; ++lane) out[j++] = z[lane];
    }
}

double pfgm_rng_uniform_f64(const pfgm_rng *r, uint64_t element) {
    uint32_t a = rng_word(r, 2 * element), b = rng_word(r, 2 * element + 1);
    uint64_t bits = ((uint64_t)a << 21) ^ (uint64_t)(b >> 11); /* 53 bits */
    bits &= (1ull << 53) - 1;
    return ((double)bits + 0.5) * (1.0 / 9007199254740992.0);
}
