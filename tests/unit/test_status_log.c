/* Status codes, the checked-call macros, rank-aware logging and the metrics JSON-lines
 * writer (read back with jansson, line by line). */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "pfgm/log.h"
#include "util/check.h"

static void test_exit_codes(void **state) {
    (void)state;
    assert_int_equal(pfgm_status_exit_code(PFGM_OK), 0);
    assert_int_equal(pfgm_status_exit_code(PFGM_ERR_CONFIG), 2);
    assert_int_equal(pfgm_status_exit_code(PFGM_ERR_FORMAT), 3);
    assert_int_equal(pfgm_status_exit_code(PFGM_ERR_IO), 3);
    assert_int_equal(pfgm_status_exit_code(PFGM_STOPPED), 75);
    for (int s = 0; s < PFGM_STATUS_COUNT; ++s) {
        assert_non_null(pfgm_status_name((pfgm_status)s));
        assert_string_not_equal(pfgm_status_name((pfgm_status)s), "unknown status");
    }
    assert_string_equal(pfgm_status_name((pfgm_status)999), "unknown status");
}

static int fails_negative(void) { return -1; }
static int succeeds(void) { return 5; }

static pfgm_status checked(int fail) {
    PFGM_H5_CHECK(succeeds());
    if (fail) PFGM_H5_CHECK(fails_negative());
    return PFGM_OK;
}

static pfgm_status checked_goto(int *cleaned) {
    pfgm_status st = PFGM_OK;
    PFGM_H5_CHECK_GOTO(fails_negative(), done);
    st = PFGM_ERR_INTERNAL; /* not reached */
done:
    *cleaned = 1;
    return st;
}

static void test_checked_calls(void **state) {
    (void)state;
    pfgm_error_clear();
    assert_int_equal(checked(0), PFGM_OK);
    assert_string_equal(pfgm_error_message(), "");
    assert_int_equal(checked(1), PFGM_ERR_HDF5);
    const char *msg = pfgm_error_message();
    assert_non_null(strstr(msg, "fails_negative()")); /* the statement */
    assert_null(strstr(msg, ".c:")); /* HDF5 messages name no source file (test_h5_messages) */
    int cleaned = 0;
    assert_int_equal(checked_goto(&cleaned), PFGM_ERR_HDF5);
    assert_int_equal(cleaned, 1);
    pfgm_error(PFGM_ERR_IO, "data.h5: cannot open");
    assert_int_equal(pfgm_error_prefix(PFGM_ERR_IO, "loading step %d", 3), PFGM_ERR_IO);
    assert_string_equal(pfgm_error_message(), "loading step 3: data.h5: cannot open");
}

static void test_logger_ranks(void **state) {
    (void)state;
    char *buf0 = NULL, *buf1 = NULL, *ebuf = NULL;
    size_t n0 = 0, n1 = 0, ne = 0;
    FILE *o0 = open_memstream(&buf0, &n0), *o1 = open_memstream(&buf1, &n1), *e = open_memstream(&ebuf, &ne);
    pfgm_logger l0, l1;
    pfgm_logger_init(&l0, 0);
    pfgm_logger_init(&l1, 1);
    l0.out = o0;
    l1.out = o1;
    l0.err = l1.err = e;
    pfgm_log_info(&l0, "step %d", 10);
    pfgm_log_info(&l1, "step %d", 10); /* rank 1 stays quiet */
    pfgm_log_debug(&l0, "hidden");     /* below INFO */
    pfgm_log_error(&l1, "bad %s", "thing");
    fclose(o0);
    fclose(o1);
    fclose(e);
    assert_string_equal(buf0, "step 10\n");
    assert_string_equal(buf1, "");
    char expect[256];
    snprintf(expect, sizeof expect, "[rank 1@%s] error: bad thing\n", l1.host);
    assert_string_equal(ebuf, expect);
    free(buf0);
    free(buf1);
    free(ebuf);
}

static void test_metrics_jsonl(void **state) {
    (void)state;
    char dir[] = "/tmp/pfgm_metrics_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    for (int pass = 0; pass < 2; ++pass) { /* reopen appends (resume) */
        pfgm_metrics *m = NULL;
        assert_int_equal(pfgm_metrics_open(path, &m), PFGM_OK);
        for (int s = 0; s < 3; ++s) {
            pfgm_metrics_begin(m);
            pfgm_metrics_int(m, "step", pass * 3 + s);
            pfgm_metrics_num(m, "loss", 0.5 * s);
            pfgm_metrics_num(m, "bad", 0.0 / 0.0);
            pfgm_metrics_str(m, "phase", "train \"quoted\"\n");
            assert_int_equal(pfgm_metrics_end(m), PFGM_OK);
        }
        pfgm_metrics_close(m);
    }
    FILE *f = fopen(path, "r");
    char line[512];
    int lines = 0;
    while (fgets(line, sizeof line, f)) {
        json_error_t err;
        json_t *o = json_loads(line, 0, &err);
        assert_non_null(o);
        assert_int_equal(json_integer_value(json_object_get(o, "step")), lines);
        assert_float_equal(json_real_value(json_object_get(o, "loss")), 0.5 * (lines % 3), 1e-12);
        assert_true(json_is_null(json_object_get(o, "bad")));
        assert_string_equal(json_string_value(json_object_get(o, "phase")), "train \"quoted\"\n");
        json_decref(o);
        ++lines;
    }
    fclose(f);
    assert_int_equal(lines, 6);
    unlink(path);
    rmdir(dir);
    pfgm_metrics *m = NULL;
    assert_int_equal(pfgm_metrics_open("/nonexistent-dir/m.jsonl", &m), PFGM_ERR_IO);
    assert_non_null(strstr(pfgm_error_message(), "/nonexistent-dir/m.jsonl"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exit_codes),
        cmocka_unit_test(test_checked_calls),
        cmocka_unit_test(test_logger_ranks),
        cmocka_unit_test(test_metrics_jsonl),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
