/* The progress lines (training and sampling): fields, durations, in-place versus plain-line output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "pfgm/progress.h"

static void test_durations(void **state) {
    (void)state;
    char b[32];
    assert_string_equal(pfgm_format_duration(41.2, b, sizeof b), "41s");
    assert_string_equal(pfgm_format_duration(511, b, sizeof b), "8m31s");
    assert_string_equal(pfgm_format_duration(7500, b, sizeof b), "2h05m");
    assert_string_equal(pfgm_format_duration(90000, b, sizeof b), "1d01h");
    assert_string_equal(pfgm_format_duration(-1, b, sizeof b), "?");
}

static void test_line(void **state) {
    (void)state;
    pfgm_progress_report r = {.step = 1200, .total = 5000, .loss = 412.30714, .grad_norm = 3.2141,
                              .lr = 2e-4, .images_per_s = 118.43, .eta_s = 511};
    char b[256];
    assert_string_equal(pfgm_progress_format(&r, b, sizeof b),
                        "step 1200/5000  loss 412.3071  grad 3.214  lr 2.00e-04  118.4 img/s  ETA 8m31s");
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    pfgm_progress_print(f, 0, &r);
    pfgm_progress_print(f, 1, &r);
    pfgm_progress_finish(f, 1);
    fclose(f);
    assert_non_null(strstr(buf, "ETA 8m31s\n\rstep 1200/5000"));
    assert_non_null(strstr(buf, "\033[K\n"));
    free(buf);
}

/* The sampler's line, through the same emitter: plain lines in a log, in place on a tty. */
static void test_sample_line(void **state) {
    (void)state;
    pfgm_sample_progress_report r = {.batch = 2, .batches = 16, .nfe = 134, .z = 0.0321, .t_fraction = 0.683,
                                     .images_per_s = 12.5, .eta_s = 41};
    char b[256];
    assert_string_equal(pfgm_sample_progress_format(&r, b, sizeof b),
                        "batch 2/16  NFE 134  z 3.210e-02  t 68%  12.50 img/s  ETA 41s");
    r.eta_s = -1;
    assert_non_null(strstr(pfgm_sample_progress_format(&r, b, sizeof b), "ETA ?"));
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    pfgm_progress_emit(f, 0, "one");
    pfgm_progress_emit(f, 0, "two");
    pfgm_progress_emit(f, 1, "three");
    pfgm_progress_emit(f, 1, "four");
    pfgm_progress_finish(f, 1);
    pfgm_progress_finish(f, 0); /* nothing in a log */
    fclose(f);
    assert_string_equal(buf, "one\ntwo\n\rthree\033[K\rfour\033[K\n");
    free(buf);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_durations), cmocka_unit_test(test_line),
                                       cmocka_unit_test(test_sample_line)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
