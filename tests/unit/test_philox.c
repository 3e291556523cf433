/* Philox4x32-10 against the Random123 known-answer vectors (kat_vectors, philox4x32 10
 * rounds), and the properties the trainer relies on: fills are pure functions of
 * (seed, rank, stream, step, index), offsets compose, and the distributions are right. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "pfgm/rng.h"

static void test_known_answers(void **state) {
    (void)state;
    static const struct { uint32_t ctr[4], key[2], out[4]; } kat[] = {
        {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
        {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu},
         {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
        {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, {0xa4093822u, 0x299f31d0u},
         {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
    };
    for (size_t i = 0; i < sizeof kat / sizeof kat[0]; ++i) {
        uint32_t out[4];
        pfgm_philox4x32_10(kat[i].ctr, kat[i].key, out);
        for (int j = 0; j < 4; ++j) assert_int_equal(out[j], kat[i].out[j]);
    }
}

static void test_offsets_compose(void **state) {
    (void)state;
    pfgm_rng r = {.seed = 49, .rank = 1, .stream = PFGM_STREAM_USER, .step = 7};
    float all[103], part[103];
    uint32_t wall[37], wpart[37];
    pfgm_rng_normal(&r, 5, 103, all);
    pfgm_rng_normal(&r, 5, 10, part);
    pfgm_rng_normal(&r, 15, 93, part + 10);
    assert_memory_equal(all, part, sizeof all);
    pfgm_rng_uniform(&r, 3, 103, all);
    pfgm_rng_uniform(&r, 3, 1, part);
    pfgm_rng_uniform(&r, 4, 102, part + 1);
    assert_memory_equal(all, part, sizeof all);
    pfgm_rng_u32(&r, 1, 37, wall);
    pfgm_rng_u32(&r, 1, 2, wpart);
    pfgm_rng_u32(&r, 3, 35, wpart + 2);
    assert_memory_equal(wall, wpart, sizeof wall);
}

static void test_keys_separate_streams(void **state) {
    (void)state;
    pfgm_rng base = {.seed = 49, .rank = 0, .stream = PFGM_STREAM_PERTURB, .step = 0};
    uint32_t a[8], b[8];
    pfgm_rng variants[4] = {base, base, base, base};
    variants[0].seed = 50;
    variants[1].rank = 1;
    variants[2].stream = PFGM_STREAM_DROPOUT;
    variants[3].step = 1ull << 32; /* the high word of the step is part of the counter */
    pfgm_rng_u32(&base, 0, 8, a);
    for (int v = 0; v < 4; ++v) {
        pfgm_rng_u32(&variants[v], 0, 8, b);
        assert_memory_not_equal(a, b, sizeof a);
    }
}

static void test_distributions(void **state) {
    (void)state;
    enum { n = 1 << 18 };
    static float x[n];
    pfgm_rng r = {.seed = 1, .rank = 0, .stream = PFGM_STREAM_USER, .step = 3};
    pfgm_rng_uniform(&r, 0, n, x);
    double s = 0, s2 = 0;
    for (int i = 0; i < n; ++i) {
        assert_true(x[i] >= 0.0f && x[i] < 1.0f);
        s += x[i];
        s2 += (double)x[i] * x[i];
    }
    /* mean 1/2, variance 1/12; 6 standard errors of the estimates */
    assert_true(fabs(s / n - 0.5) < 6 * sqrt(1.0 / 12 / n));
    assert_true(fabs(s2 / n - s * s / n / n - 1.0 / 12) < 6 * 0.09 / sqrt(n));
    pfgm_rng_normal(&r, 0, n, x);
    s = s2 = 0;
    double s4 = 0;
    for (int i = 0; i < n; ++i) {
        assert_true(isfinite(x[i]));
        s += x[i];
        s2 += (double)x[i] * x[i];
        s4 += (double)x[i] * x[i] * x[i] * x[i];
    }
    assert_true(fabs(s / n) < 6 / sqrt(n));
    assert_true(fabs(s2 / n - 1.0) < 6 * sqrt(2.0 / n));
    assert_true(fabs(s4 / n - 3.0) < 6 * sqrt(96.0 / n));
    double u = 0;
    for (int i = 0; i < 1000; ++i) {
        double d = pfgm_rng_uniform_f64(&r, (uint64_t)i);
        assert_true(d > 0.0 && d < 1.0);
        u += d;
    }
    assert_true(fabs(u / 1000 - 0.5) < 6 * sqrt(1.0 / 12 / 1000));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answers),
        cmocka_unit_test(test_offsets_compose),
        cmocka_unit_test(test_keys_separate_streams),
        cmocka_unit_test(test_distributions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
