/* Run-directory lock: flock on "<run_dir>/.pfgm-train.lock" (see include/pfgm/run_lock.h for
 * what flock guarantees on which file systems). */
#include "pfgm/run_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct pfgm_run_lock {
    int fd;
    int held;
    char path[4096];
    char note[4096 + 256];
};

/* "host H pid P since T\n" into buf; the holder's identity for whoever is refused. */
static int holder_line(char *buf, size_t cap) {
    char host[256];
    if (gethostname(host, sizeof host - 1) != 0) strcpy(host, "unknown");
    host[sizeof host - 1] = '\0';
    char since[32] = "unknown";
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm)) strftime(since, sizeof since, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return snprintf(buf, cap, "host %s pid %ld since %s\n", host, (long)getpid(), since);
}

/* Rewrites the lock file's contents. Informative only, but a run directory that cannot take
 * 60 bytes will not take a checkpoint either, so failures are reported. */
static pfgm_status write_holder(const pfgm_run_lock *l) {
    char line[512];
    int n = holder_line(line, sizeof line);
    if (n < 0 || (size_t)n >= sizeof line) n = (int)strlen(line);
    if (ftruncate(l->fd, 0) != 0 || pwrite(l->fd, line, (size_t)n, 0) != (ssize_t)n || fsync(l->fd) != 0)
        return pfgm_error(PFGM_ERR_IO, "%s: cannot write the lock file: %s", l->path, strerror(errno));
    return PFGM_OK;
}

/* The refusal message: names the run directory and the holder recorded in the file. */
static pfgm_status busy_error(const char *run_dir, int fd) {
    char buf[512];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    char host[256], since[64];
    long pid = 0;
    char who[600];
    if (sscanf(buf, "host %255s pid %ld since %63s", host, &pid, since) == 3) {
        snprintf(who, sizeof who, "host %s, pid %ld since %s", host, pid, since);
    } else if (buf[0] == '\0') {
        /* the holder has the lock but has not written its line yet (a few microseconds) */
        snprintf(who, sizeof who, "holder not recorded yet");
    } else {
        buf[strcspn(buf, "\n")] = '\0';
        snprintf(who, sizeof who, "holder: '%.200s'", buf);
    }
    return pfgm_error(PFGM_ERR_IO,
                      "%s: another pfgm-train is training in this run directory (%s); wait for it or use "
                      "another --run-dir",
                      run_dir, who);
}

pfgm_status pfgm_run_lock_acquire(const char *run_dir, pfgm_run_lock **out) {
    if (!out) return pfgm_error(PFGM_ERR_INVALID_ARG, "run lock: no output handle");
    *out = NULL;
    if (!run_dir || !run_dir[0])
        return pfgm_error(PFGM_ERR_INVALID_ARG, "run lock: no run directory given (--run-dir is required to train)");
    struct stat sb;
    if (stat(run_dir, &sb) != 0)
        return pfgm_error(PFGM_ERR_IO, "%s: cannot lock the run directory: %s (it is created before locking)",
                          run_dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return pfgm_error(PFGM_ERR_IO, "%s: cannot lock the run directory: not a directory", run_dir);
    pfgm_run_lock *l = calloc(1, sizeof *l);
    if (!l) return pfgm_error(PFGM_ERR_NOMEM, "%s: cannot allocate the run lock", run_dir);
    l->fd = -1;
    int n = snprintf(l->path, sizeof l->path, "%s/%s", run_dir, PFGM_RUN_LOCK_FILE);
    if (n < 0 || (size_t)n >= sizeof l->path) {
        free(l);
        return pfgm_error(PFGM_ERR_INVALID_ARG, "%s: run directory path too long", run_dir);
    }
    pfgm_status st = PFGM_OK;
    l->fd = open(l->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (l->fd < 0) {
        st = pfgm_error(PFGM_ERR_IO, "%s: cannot open the lock file: %s", l->path, strerror(errno));
        goto fail;
    }
    if (flock(l->fd, LOCK_EX | LOCK_NB) == 0) {
        l->held = 1;
    } else if (errno == EWOULDBLOCK) {
        st = busy_error(run_dir, l->fd);
        goto fail;
    } else if (errno == ENOLCK || errno == EOPNOTSUPP || errno == ENOSYS) {
        /* no flock on this mount (NFS without a lock service, Lustre without -o flock):
         * training on is more useful than refusing; the caller warns with the note */
        snprintf(l->note, sizeof l->note,
                 "%s: cannot lock (%s): this file system does not support flock; nothing stops a second "
                 "pfgm-train on this run directory",
                 l->path, strerror(errno));
    } else {
        st = pfgm_error(PFGM_ERR_IO, "%s: cannot lock: %s", l->path, strerror(errno));
        goto fail;
    }
    st = write_holder(l);
    if (st != PFGM_OK) goto fail;
    *out = l;
    return PFGM_OK;
fail:
    if (l->fd >= 0) close(l->fd);
    free(l);
    return st;
}

int pfgm_run_lock_held(const pfgm_run_lock *l) { return l ? l->held : 0; }

const char *pfgm_run_lock_note(const pfgm_run_lock *l) { return l ? l->note : ""; }

const char *pfgm_run_lock_path(const pfgm_run_lock *l) { return l ? l->path : ""; }

void pfgm_run_lock_release(pfgm_run_lock *l) {
    if (!l) return;
    /* closing the last descriptor of the open file description drops the flock */
    if (l->fd >= 0) close(l->fd);
    free(l);
}
