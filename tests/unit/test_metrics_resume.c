/* Resuming the metrics file (issue 11, defect 5): after a kill and a resume from step S, the
 * file keeps the records up to S and those without a step, loses the later ones and the line
 * cut by the crash, and the appended records continue with strictly increasing steps. */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "pfgm/log.h"

typedef struct {
    char dir[64];
    char path[128];
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    if (!f) return -1;
    strcpy(f->dir, "/tmp/pfgm_metrics_resume_XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    snprintf(f->path, sizeof f->path, "%s/metrics.jsonl", f->dir);
    *state = f;
    return 0;
}

/* Removes every entry (files and one level of directories) and the directory. */
static int teardown(void **state) {
    fixture *f = *state;
    chmod(f->dir, 0755);
    DIR *d = opendir(f->dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name);
        if (unlink(p) != 0) rmdir(p);
    }
    if (d) closedir(d);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void write_text(const char *path, const char *text) {
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
}

/* The whole file, NUL-terminated (the caller frees). */
static char *read_text(const char *path) {
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = 2 * cap + 4096 + 1;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        size_t r = fread(buf + n, 1, 4096, fp);
        n += r;
        if (r == 0) break;
    }
    fclose(fp);
    buf[n] = '\0';
    return buf;
}

/* Appends the crashed run's file: steps 1..30, one record without a step after step 10,
 * and a last line cut mid-record (no newline). */
static void write_crashed_run(const char *path) {
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    for (int s = 1; s <= 30; ++s) {
        fprintf(fp, "{\"step\":%d,\"loss\":0.12345678901234567,\"lr\":2e-4}\n", s);
        if (s == 10) fprintf(fp, "{\"event\":\"note\",\"text\":\"no step here\"}\n");
    }
    fprintf(fp, "{\"step\":31,\"loss\":0.12");
    assert_int_equal(fclose(fp), 0);
}

/* Checks that every line is a JSON object, that the steps strictly increase and end at
 * last_step, and returns how many records had no step; *events gets the "resumed" ones. */
static int check_lines(const char *path, int64_t last_step, int *events, json_t **last_event) {
    char *text = read_text(path);
    size_t len = strlen(text);
    assert_true(len > 0 && text[len - 1] == '\n');
    int64_t prev = 0;
    int no_step = 0;
    *events = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        json_error_t err;
        json_t *rec = json_loads(line, 0, &err);
        if (!json_is_object(rec)) fail_msg("%s: not a JSON object: '%s' (%s)", path, line, err.text);
        json_t *step = json_object_get(rec, "step");
        if (step) {
            int64_t s = json_integer_value(step);
            if (s <= prev) fail_msg("%s: step %lld after step %lld", path, (long long)s, (long long)prev);
            prev = s;
        } else {
            ++no_step;
            const char *ev = json_string_value(json_object_get(rec, "event"));
            if (ev && strcmp(ev, "resumed") == 0) {
                ++*events;
                if (*last_event) json_decref(*last_event);
                *last_event = json_incref(rec);
            }
        }
        json_decref(rec);
    }
    assert_int_equal(prev, last_step);
    free(text);
    return no_step;
}

static int count_temporaries(const char *dir) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) ++n;
    closedir(d);
    return n;
}

static void test_crash_then_resume(void **state) {
    fixture *f = *state;
    write_crashed_run(f->path);
    assert_int_equal(chmod(f->path, 0640), 0);

    pfgm_metrics_resume_info info;
    memset(&info, 0x5a, sizeof info);
    assert_int_equal(pfgm_metrics_resume(f->path, 20, &info), PFGM_OK);
    assert_int_equal(info.resumed_step, 20);
    assert_int_equal(info.existed, 1);
    assert_int_equal(info.rewritten, 1);
    assert_int_equal(info.kept, 21); /* steps 1..20 and the record without a step */
    assert_int_equal(info.dropped, 10); /* steps 21..30 */
    assert_int_equal(info.unparsable, 1); /* the cut step 31 */
    assert_int_equal(count_temporaries(f->dir), 0);

    /* kept lines are copied, not re-encoded: the 17 digits stay as they were written */
    char *text = read_text(f->path);
    assert_non_null(strstr(text, "{\"step\":20,\"loss\":0.12345678901234567,\"lr\":2e-4}\n"));
    assert_null(strstr(text, "\"step\":21"));
    assert_non_null(strstr(text, "{\"event\":\"note\",\"text\":\"no step here\"}\n{\"step\":11,"));
    free(text);
    struct stat sb;
    assert_int_equal(stat(f->path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0640);

    int events = 0;
    json_t *ev = NULL;
    assert_int_equal(check_lines(f->path, 20, &events, &ev), 1);
    assert_int_equal(events, 0);

    /* the resumed run appends its event and steps 21..25 */
    pfgm_metrics *m = NULL;
    assert_int_equal(pfgm_metrics_open(f->path, &m), PFGM_OK);
    assert_int_equal(pfgm_metrics_resumed_event(m, &info), PFGM_OK);
    for (int s = 21; s <= 25; ++s) {
        pfgm_metrics_begin(m);
        pfgm_metrics_int(m, "step", s);
        pfgm_metrics_num(m, "loss", 0.25);
        assert_int_equal(pfgm_metrics_end(m), PFGM_OK);
    }
    pfgm_metrics_close(m);
    assert_int_equal(check_lines(f->path, 25, &events, &ev), 2);
    assert_int_equal(events, 1);
    assert_int_equal(json_integer_value(json_object_get(ev, "resumed_from")), 20);
    assert_int_equal(json_integer_value(json_object_get(ev, "dropped")), 10);
    assert_int_equal(json_integer_value(json_object_get(ev, "unparsable")), 1);
    const char *t = json_string_value(json_object_get(ev, "time"));
    assert_non_null(t);
    int y, mo, d, h, mi, sec;
    char z = 0;
    assert_int_equal(sscanf(t, "%4d-%2d-%2dT%2d:%2d:%2d%c", &y, &mo, &d, &h, &mi, &sec, &z), 7);
    assert_int_equal(z, 'Z');
    assert_int_equal(strlen(t), 20);
    json_decref(ev);

    /* a second resume at the same step finds nothing to do */
    assert_int_equal(pfgm_metrics_resume(f->path, 25, &info), PFGM_OK);
    assert_int_equal(info.rewritten, 0);
    assert_int_equal(info.kept, 27); /* 20 + note + event + 5 */
    assert_int_equal(info.dropped + info.unparsable, 0);
}

/* A file an older pfgm appended to after a crash: the cut line and the next record share a
 * line, and the steps go back from 24 to 21. Resuming at 22 drops what lies past 22 and
 * both broken lines, but cannot undo the old repetition (22 stays twice). */
static void test_older_file_repaired(void **state) {
    fixture *f = *state;
    write_text(f->path,
               "{\"step\":21}\n{\"step\":22}\n{\"step\":23}\n{\"step\":24,\"lo"
               "{\"step\":21}\n{\"step\":22}\n{\"step\":23}\n\n{\"step\":\"x\"}\n");
    pfgm_metrics_resume_info info;
    assert_int_equal(pfgm_metrics_resume(f->path, 22, &info), PFGM_OK);
    assert_int_equal(info.kept, 3); /* 21, 22, and the second run's 22: still not increasing ... */
    assert_int_equal(info.dropped, 2); /* the 23s */
    assert_int_equal(info.unparsable, 2); /* the joined line (with the second 21), the step "x" */
    char *text = read_text(f->path);
    assert_string_equal(text, "{\"step\":21}\n{\"step\":22}\n{\"step\":22}\n");
    free(text);
    /* ... which is why the reader (plot_metrics.py) keeps the last record of each step */
}

static void test_clean_file_untouched(void **state) {
    fixture *f = *state;
    write_text(f->path, "{\"step\":1}\n{\"event\":\"resumed\",\"resumed_from\":0}\n{\"step\":2}\n");
    struct stat before, after;
    assert_int_equal(stat(f->path, &before), 0);
    pfgm_metrics_resume_info info;
    assert_int_equal(pfgm_metrics_resume(f->path, 2, &info), PFGM_OK);
    assert_int_equal(info.rewritten, 0);
    assert_int_equal(info.kept, 3);
    assert_int_equal(stat(f->path, &after), 0);
    assert_int_equal(before.st_ino, after.st_ino); /* not replaced */

    /* a complete last record without its newline (killed between the two writes) would
     * glue the next appended record to it: the file is rewritten with the newline */
    write_text(f->path, "{\"step\":1}\n{\"step\":2}");
    assert_int_equal(pfgm_metrics_resume(f->path, 2, &info), PFGM_OK);
    assert_int_equal(info.rewritten, 1);
    assert_int_equal(info.kept, 2);
    assert_int_equal(info.unparsable, 0);
    char *text = read_text(f->path);
    assert_string_equal(text, "{\"step\":1}\n{\"step\":2}\n");
    free(text);

    /* a zero-filled tail (delayed allocation after a power loss) is one unparsable line,
     * even where it follows a whole record whose newline it replaced: no NUL is copied */
    FILE *fp = fopen(f->path, "wb");
    assert_non_null(fp);
    static const char zeros[64] = {0};
    fputs("{\"step\":1}\n{\"step\":2}", fp);
    fwrite(zeros, 1, sizeof zeros, fp);
    fclose(fp);
    assert_int_equal(pfgm_metrics_resume(f->path, 5, &info), PFGM_OK);
    assert_int_equal(info.unparsable, 1);
    text = read_text(f->path);
    assert_string_equal(text, "{\"step\":1}\n");
    free(text);
}

static void test_missing_file(void **state) {
    fixture *f = *state;
    pfgm_metrics_resume_info info;
    memset(&info, 0x5a, sizeof info);
    assert_int_equal(pfgm_metrics_resume(f->path, 7, &info), PFGM_OK);
    assert_int_equal(info.existed, 0);
    assert_int_equal(info.rewritten, 0);
    assert_int_equal(info.resumed_step, 7);
    assert_int_equal(info.kept + info.dropped + info.unparsable, 0);
    assert_int_equal(access(f->path, F_OK), -1); /* not created */
    assert_int_equal(pfgm_metrics_resume(f->path, 7, NULL), PFGM_OK);
}

static void expect_io(const char *path, int64_t step, const char *n1, const char *n2) {
    pfgm_error_clear();
    assert_int_equal(pfgm_metrics_resume(path, step, NULL), PFGM_ERR_IO);
    const char *msg = pfgm_error_message();
    if (!strstr(msg, n1)) fail_msg("message lacks '%s': '%s'", n1, msg);
    if (n2 && !strstr(msg, n2)) fail_msg("message lacks '%s': '%s'", n2, msg);
}

static void test_errors_name_the_file(void **state) {
    fixture *f = *state;
    assert_int_equal(pfgm_metrics_resume(NULL, 0, NULL), PFGM_ERR_INVALID_ARG);

    /* the run directory is not a directory: the metrics file cannot be reached */
    char blocker[160], below[200];
    snprintf(blocker, sizeof blocker, "%s/run", f->dir);
    write_text(blocker, "");
    snprintf(below, sizeof below, "%s/metrics.jsonl", blocker);
    expect_io(below, 0, below, strerror(ENOTDIR));

    /* the metrics name is a directory: opening works, reading does not */
    char sub[160];
    snprintf(sub, sizeof sub, "%s/subdir", f->dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    expect_io(sub, 0, sub, strerror(EISDIR));

    /* the temporary cannot be created: the error names both, the file is left as it was */
    write_crashed_run(f->path);
    char *before = read_text(f->path);
    char tmp[200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", f->path, (long)getpid());
    assert_int_equal(mkdir(tmp, 0755), 0);
    expect_io(f->path, 20, f->path, tmp);
    char *after = read_text(f->path);
    assert_string_equal(before, after);
    free(before);
    free(after);
    rmdir(tmp);

    /* an unreadable directory (permissions do not stop root, so only as a normal user) */
    if (geteuid() != 0) {
        assert_int_equal(chmod(f->dir, 0), 0);
        expect_io(f->path, 20, f->path, strerror(EACCES));
        chmod(f->dir, 0755);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_crash_then_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_older_file_repaired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clean_file_untouched, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_name_the_file, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
