/* The authors' network, replayed on both CPU modes ("cpu" and "cpu-reference"): the fixture
 * check of tests/ddpmpp_fixture.h (what it compares, the fixture path and the tolerances are
 * described there). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "ddpmpp_fixture.h"

static void test_fixture_cpu(void **state) {
    (void)state;
    run_fixture("cpu");
}

static void test_fixture_cpu_reference(void **state) {
    (void)state;
    run_fixture("cpu-reference");
}

int main(void) {
    fixture_path();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_cpu),
        cmocka_unit_test(test_fixture_cpu_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
