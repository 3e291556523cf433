/* The run-directory lock: a second process is refused with the holder's pid in the message,
 * a release or the holder's death (SIGKILL) frees the directory, bad arguments are named.
 * Other processes are real ones (fork), since flock conflicts are between open files. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "pfgm/run_lock.h"

typedef struct {
    char dir[64];
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    if (!f) return -1;
    strcpy(f->dir, "/tmp/pfgm_run_lock_XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    char p[128];
    snprintf(p, sizeof p, "%s/%s", f->dir, PFGM_RUN_LOCK_FILE);
    unlink(p);
    snprintf(p, sizeof p, "%s/file", f->dir);
    unlink(p);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Tries the lock in a new process; returns its status and message (msg[cap]). */
static pfgm_status child_try(const char *dir, char *msg, size_t cap) {
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        pfgm_run_lock *l = NULL;
        int st = (int)pfgm_run_lock_acquire(dir, &l);
        char out[1100];
        int n = snprintf(out, sizeof out, "%d %s", st, st == PFGM_OK ? "" : pfgm_error_message());
        if (write(fds[1], out, (size_t)n) != n) _exit(2);
        pfgm_run_lock_release(l);
        _exit(0);
    }
    close(fds[1]);
    char buf[1100];
    size_t got = 0;
    ssize_t r;
    while (got < sizeof buf - 1 && (r = read(fds[0], buf + got, sizeof buf - 1 - got)) > 0) got += (size_t)r;
    buf[got] = '\0';
    close(fds[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    int st = -1, off = 0;
    assert_int_equal(sscanf(buf, "%d %n", &st, &off), 1);
    snprintf(msg, cap, "%s", buf + off);
    return (pfgm_status)st;
}

static void expect_busy(const char *msg, const char *dir, long holder_pid) {
    char pid_s[64];
    snprintf(pid_s, sizeof pid_s, "pid %ld since ", holder_pid);
    if (!strstr(msg, dir)) fail_msg("message lacks the run directory '%s': '%s'", dir, msg);
    if (!strstr(msg, pid_s)) fail_msg("message lacks the holder '%s': '%s'", pid_s, msg);
    if (!strstr(msg, "another pfgm-train is training in this run directory"))
        fail_msg("message does not say why: '%s'", msg);
    if (!strstr(msg, "another --run-dir")) fail_msg("message lacks the hint: '%s'", msg);
    if (strchr(msg, '\n')) fail_msg("message is not one line: '%s'", msg);
}

static void test_second_process_refused(void **state) {
    fixture *f = *state;
    pfgm_run_lock *l = NULL;
    assert_int_equal(pfgm_run_lock_acquire(f->dir, &l), PFGM_OK);
    assert_non_null(l);
    assert_int_equal(pfgm_run_lock_held(l), 1); /* tmpfs / ext4 under /tmp support flock */
    assert_string_equal(pfgm_run_lock_note(l), "");
    assert_non_null(strstr(pfgm_run_lock_path(l), PFGM_RUN_LOCK_FILE));

    /* the file names this process */
    char content[512] = "";
    FILE *fp = fopen(pfgm_run_lock_path(l), "r");
    assert_non_null(fp);
    size_t n = fread(content, 1, sizeof content - 1, fp);
    content[n] = '\0';
    fclose(fp);
    char want[64];
    snprintf(want, sizeof want, " pid %ld since ", (long)getpid());
    assert_true(strncmp(content, "host ", 5) == 0);
    assert_non_null(strstr(content, want));
    assert_true(n > 0 && content[n - 1] == '\n');

    char msg[1100];
    pfgm_status st = child_try(f->dir, msg, sizeof msg);
    assert_int_equal(st, PFGM_ERR_IO);
    assert_int_equal(pfgm_status_exit_code(st), 3); /* not 75: train_until_done.sh must not retry */
    expect_busy(msg, f->dir, (long)getpid());

    /* the lock belongs to the open file, not the process: a second open here is refused too */
    pfgm_run_lock *again = NULL;
    assert_int_equal(pfgm_run_lock_acquire(f->dir, &again), PFGM_ERR_IO);
    assert_null(again);

    pfgm_run_lock_release(l);
    assert_int_equal(child_try(f->dir, msg, sizeof msg), PFGM_OK);
    assert_int_equal(pfgm_run_lock_acquire(f->dir, &l), PFGM_OK);
    pfgm_run_lock_release(l);
}

static void test_killed_holder_releases(void **state) {
    fixture *f = *state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* never outlive a failed test: an orphan would keep ctest's output pipe open */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        alarm(60);
        close(fds[0]);
        pfgm_run_lock *l = NULL;
        char ok = pfgm_run_lock_acquire(f->dir, &l) == PFGM_OK ? 'y' : 'n';
        if (write(fds[1], &ok, 1) != 1) _exit(2);
        for (;;) pause(); /* holds the lock until killed; never releases it */
    }
    close(fds[1]);
    char ok = 0;
    ssize_t got = read(fds[0], &ok, 1);
    close(fds[0]);
    pfgm_run_lock *l = NULL;
    pfgm_status busy = pfgm_run_lock_acquire(f->dir, &l);
    char msg[1100];
    snprintf(msg, sizeof msg, "%s", pfgm_error_message());
    /* kill the holder before any assertion can end the test */
    assert_int_equal(kill(pid, SIGKILL), 0);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    assert_int_equal(got, 1);
    assert_int_equal(ok, 'y');
    assert_int_equal(busy, PFGM_ERR_IO);
    assert_null(l);
    expect_busy(msg, f->dir, (long)pid);
    /* no clean-up in between: the kernel dropped the dead holder's lock */
    assert_int_equal(pfgm_run_lock_acquire(f->dir, &l), PFGM_OK);
    assert_int_equal(pfgm_run_lock_held(l), 1);
    pfgm_run_lock_release(l);
}

static void test_bad_arguments(void **state) {
    fixture *f = *state;
    pfgm_run_lock *l = (pfgm_run_lock *)f; /* must be reset to NULL on failure */
    assert_int_equal(pfgm_run_lock_acquire(NULL, &l), PFGM_ERR_INVALID_ARG);
    assert_null(l);
    assert_non_null(strstr(pfgm_error_message(), "no run directory given"));
    assert_int_equal(pfgm_run_lock_acquire("", &l), PFGM_ERR_INVALID_ARG);
    assert_int_equal(pfgm_run_lock_acquire(f->dir, NULL), PFGM_ERR_INVALID_ARG);

    char missing[128];
    snprintf(missing, sizeof missing, "%s/not_there", f->dir);
    assert_int_equal(pfgm_run_lock_acquire(missing, &l), PFGM_ERR_IO);
    assert_null(l);
    assert_non_null(strstr(pfgm_error_message(), missing));
    assert_non_null(strstr(pfgm_error_message(), strerror(ENOENT)));

    char file[128];
    snprintf(file, sizeof file, "%s/file", f->dir);
    FILE *fp = fopen(file, "w");
    assert_non_null(fp);
    fclose(fp);
    assert_int_equal(pfgm_run_lock_acquire(file, &l), PFGM_ERR_IO);
    assert_non_null(strstr(pfgm_error_message(), "not a directory"));

    pfgm_run_lock_release(NULL);
    assert_int_equal(pfgm_run_lock_held(NULL), 0);
    assert_string_equal(pfgm_run_lock_note(NULL), "");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_second_process_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killed_holder_releases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
