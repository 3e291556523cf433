/* Philox4x32-10 counter-based random numbers (Salmon, Moraes, Dror, Shaw, "Parallel random
 * numbers: as easy as 1, 2, 3", SC'11; the Random123 reference). A draw is a pure function
 * of (seed, rank, stream, step, element index), so that
 *   - every rank and every step draws independent numbers without shared state,
 *   - a checkpoint stores integers (seed, step), never generator state, and resume is exact,
 *   - the CPU and CUDA backends produce the same bits.
 * Key and counter layout (docs/numerics.md):
 *   key  = { seed, rank }
 *   ctr  = { block, stream, step_lo32, step_hi32 }, block = element_index / 4
 * Element i of a stream is lane i % 4 of block i / 4. */
#ifndef PFGM_RNG_H
#define PFGM_RNG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Stream ids: one per consumer, so draws never overlap between consumers at the same step. */
enum {
    PFGM_STREAM_DATA_SHUFFLE = 1, /* dataset shuffle window (step = epoch * windows + window) */
    PFGM_STREAM_DATA_FLIP = 2,    /* random horizontal flips */
    PFGM_STREAM_PERTURB = 3,      /* perturbation kernel (spec §1.4) */
    PFGM_STREAM_DROPOUT = 4,      /* dropout masks */
    PFGM_STREAM_PRIOR = 5,        /* hemisphere prior (spec §1.7) */
    PFGM_STREAM_INIT = 6,         /* parameter initialisation (spec §3.4) */
    PFGM_STREAM_PREP = 7,         /* pfgm-prep shuffle */
    PFGM_STREAM_DATA_BLOCKS = 8,  /* dataset epoch order of the file's blocks (rank 0, step = epoch) */
    PFGM_STREAM_USER = 16         /* first id free for tests and tools */
};

/* One keyed stream at one step. Plain value type; copy freely. */
typedef struct pfgm_rng {
    uint32_t seed;   /* run seed (config `seed`) */
    uint32_t rank;   /* rank that draws, or 0 for draws every rank must share */
    uint32_t stream; /* PFGM_STREAM_* */
    uint64_t step;   /* training step, epoch, or sampling batch index */
} pfgm_rng;

/* The Philox4x32-10 bijection: out = philox(ctr, key). All arrays length as declared. */
void pfgm_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* n raw 32-bit words: out[j] = word (offset + j) of the stream. */
void pfgm_rng_u32(const pfgm_rng *r, uint64_t offset, size_t n, uint32_t *out);

/* n uniforms in [0, 1): out[j] = (word(offset+j) >> 8) * 2^-24 (exactly representable). */
void pfgm_rng_uniform(const pfgm_rng *r, uint64_t offset, size_t n, float *out);

/* n standard normals N(0, 1), Box-Muller in double precision rounded to float. Words come
 * in pairs (2k, 2k+1) of the stream: element e uses words (e & ~1, e | 1), cosine branch for
 * even e, sine branch for odd e, so any offset gives the same value for the same element. */
void pfgm_rng_normal(const pfgm_rng *r, uint64_t offset, size_t n, float *out);

/* Double-precision uniform in (0, 1) from words (2e, 2e+1): 53 random bits, never 0 or 1. */
double pfgm_rng_uniform_f64(const pfgm_rng *r, uint64_t element);

#ifdef __cplusplus
}
#endif
#endif /* PFGM_RNG_H */
