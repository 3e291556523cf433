/* Private to the CPU backend: 8-wide AVX2/FMA helpers for the fast path (exp, sigmoid,
 * horizontal sums) and the runtime check that selects them. The library is built for the
 * baseline x86-64 (SSE2), so these functions carry a target attribute and the ops call them
 * only when cpu_have_avx2() says the processor has AVX2 and FMA; otherwise the ops run their
 * portable loops. The reference mode never uses them.
 *
 * exp: Cody-Waite range reduction x = n ln2 + r (|r| <= ln2/2, ln2 split in two parts) and the
 * degree-6 minimax polynomial of Cephes expf, then 2^n through the exponent bits: about 1 ulp
 * over [-87.3, 88.37] (measured max relative error against double exp 1.2e-7); 0 below
 * -87.3 (where expf gives subnormals), e^88.37 above (no infinity). */
#ifndef PFGM_BACKEND_CPU_SIMD_H
#define PFGM_BACKEND_CPU_SIMD_H

#if defined(__x86_64__) && defined(__GNUC__)
#define PFGM_CPU_SIMD 1
#include <immintrin.h>

#define PFGM_AVX2 __attribute__((target("avx2,fma")))
#define PFGM_AVX2_INLINE static inline __attribute__((target("avx2,fma"), always_inline))

/* AVX2 and FMA present (cpuid, cached by the compiler's runtime). */
static inline int cpu_have_avx2(void) { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }

PFGM_AVX2_INLINE __m256 simd_exp(__m256 x) {
    const __m256 hi = _mm256_set1_ps(88.37f), lo = _mm256_set1_ps(-87.3365478515625f);
    const __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(under, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

/* 1 / (1 + e^-x), with an IEEE division. */
PFGM_AVX2_INLINE __m256 simd_sigmoid(__m256 x) {
    const __m256 one = _mm256_set1_ps(1.0f);
    return _mm256_div_ps(one, _mm256_add_ps(one, simd_exp(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

/* Sum of the 8 lanes in double, in a fixed order. */
PFGM_AVX2_INLINE double simd_hsum_pd(__m256 v) {
    __m256d a = _mm256_cvtps_pd(_mm256_castps256_ps128(v)), b = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
    __m256d s = _mm256_add_pd(a, b);
    __m128d t = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
    return _mm_cvtsd_f64(_mm_add_sd(t, _mm_unpackhi_pd(t, t)));
}

/* Mask of the first n (0..8) lanes, for the tails of rows. */
PFGM_AVX2_INLINE __m256i simd_tail_mask(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

#else
#define PFGM_CPU_SIMD 0
static inline int cpu_have_avx2(void) { return 0; }
#endif

#endif
