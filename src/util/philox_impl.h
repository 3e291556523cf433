/* The Philox4x32-10 bijection, the word -> float conversions and the element layouts built
 * on them (the perturbation kernel's per-sample window, block spans), as inline functions
 * that compile for the host (C) and the device (CUDA), so both backends produce the same bits
 * from one definition. Private header; the public API is include/pfgm/rng.h. */
#ifndef PFGM_UTIL_PHILOX_IMPL_H
#define PFGM_UTIL_PHILOX_IMPL_H

#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define PFGM_HD __host__ __device__ __forceinline__
#else
#define PFGM_HD static inline
#endif

#define PFGM_PHILOX_M0 0xD2511F53u
#define PFGM_PHILOX_M1 0xCD9E8D57u
#define PFGM_PHILOX_W0 0x9E3779B9u
#define PFGM_PHILOX_W1 0xBB67AE85u

/* out = Philox4x32-10(ctr, key): 10 rounds, key bumped by the Weyl constants between rounds. */
PFGM_HD void pfgm_philox_rounds(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0,
                                uint32_t k1, uint32_t out[4]) {
    for (int round = 0; round < 10; ++round) {
        if (round > 0) {
            k0 += PFGM_PHILOX_W0;
            k1 += PFGM_PHILOX_W1;
        }
        uint64_t p0 = (uint64_t)PFGM_PHILOX_M0 * (uint64_t)c0;
        uint64_t p1 = (uint64_t)PFGM_PHILOX_M1 * (uint64_t)c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
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

/* Block `block` of the stream keyed {seed, rank}, ctr {block, stream, step_lo, step_hi}. */
PFGM_HD void pfgm_philox_block(uint32_t seed, uint32_t rank, uint32_t stream, uint64_t step,
                               uint64_t block, uint32_t out[4]) {
    pfgm_philox_rounds((uint32_t)block, stream, (uint32_t)step, (uint32_t)(step >> 32), seed, rank, out);
}

/* Uniform in [0, 1) from the top 24 bits: exactly representable in float. */
PFGM_HD float pfgm_philox_u24(uint32_t x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }

/* Box-Muller in double on a word pair (u1 in (0, 1], u2 in [0, 1)), rounded to float. */
PFGM_HD void pfgm_philox_box_muller(uint32_t a, uint32_t b, float *z0, float *z1) {
    const double two_pi = 6.283185307179586476925286766559;
    double u1 = ((double)a + 1.0) * (1.0 / 4294967296.0);
    double u2 = (double)b * (1.0 / 4294967296.0);
    double rad = sqrt(-2.0 * log(u1));
    *z0 = (float)(rad * cos(two_pi * u2));
    *z1 = (float)(rad * sin(two_pi * u2));
}

/* ---- Philox layouts shared by the host and the kernels (docs/numerics.md) ----------------- */

/* n rounded up to a multiple of 4: a run of n elements that starts on a block boundary and
 * fills whole blocks. */
PFGM_HD uint64_t pfgm_philox_ceil4(uint64_t n) { return (n + 3u) & ~(uint64_t)3u; }

/* Elements of the perturbation kernel's window per sample for dimension n (spec §1.4; the one
 * definition behind pfgm_perturb_stride and both backends' perturb): 2 uniforms and the z
 * normal in the first block, then eps_x and the direction, each ceil4(n) long. A multiple of
 * 4, so every sample's window starts on a block boundary. */
PFGM_HD uint64_t pfgm_philox_perturb_stride(uint64_t n) { return 4u + 2u * pfgm_philox_ceil4(n); }

/* The Philox blocks that elements [offset, offset + n) of a stream touch, n >= 1: blocks
 * offset / 4 through pfgm_philox_last_block, pfgm_philox_block_count of them. */
PFGM_HD uint64_t pfgm_philox_last_block(uint64_t offset, uint64_t n) { return (offset + n - 1) >> 2; }
PFGM_HD uint64_t pfgm_philox_block_count(uint64_t offset, uint64_t n) {
    return pfgm_philox_last_block(offset, n) - (offset >> 2) + 1;
}

#endif
