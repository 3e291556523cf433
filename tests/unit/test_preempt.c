/* The preemption flag: a signal only sets it, the process keeps running. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "pfgm/preempt.h"

static void test_signals_set_flag(void **state) {
    (void)state;
    assert_int_equal(pfgm_preempt_install(), PFGM_OK);
    pfgm_preempt_clear();
    assert_int_equal(pfgm_preempt_signal(), 0);
    assert_int_equal(raise(SIGUSR1), 0); /* would kill the process without the handler */
    assert_int_equal(pfgm_preempt_signal(), SIGUSR1);
    assert_int_equal(raise(SIGTERM), 0); /* the first signal is kept */
    assert_int_equal(pfgm_preempt_signal(), SIGUSR1);
    pfgm_preempt_clear();
    assert_int_equal(raise(SIGTERM), 0);
    assert_int_equal(pfgm_preempt_signal(), SIGTERM);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_signals_set_flag)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
