/* The progress line: fields, durations, in-place versus plain-line output. */
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

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_durations), cmocka_unit_test(test_line)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
