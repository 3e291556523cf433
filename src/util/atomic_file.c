/* Atomic publication of output files (temporary name, fsync, rename, directory fsync). */
#include "util/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

pfgm_status pfgm_atomic_tmp_name(const char *path, char *buf, size_t cap) {
    int n = snprintf(buf, cap, "%s.tmp.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= cap) return pfgm_error(PFGM_ERR_INVALID_ARG, "%s: path too long", path);
    return PFGM_OK;
}

pfgm_status pfgm_fsync_path(const char *path, int dir) {
    int fd = open(path, dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0) return pfgm_error(PFGM_ERR_IO, "%s: cannot open for fsync: %s", path, strerror(errno));
    int rc = fsync(fd), err = errno;
    close(fd);
    /* some filesystems refuse fsync on a directory; the rename is then as durable as it gets */
    if (rc != 0 && !(dir && (err == EINVAL || err == EROFS)))
        return pfgm_error(PFGM_ERR_IO, "%s: fsync failed: %s", path, strerror(err));
    return PFGM_OK;
}

pfgm_status pfgm_atomic_publish(const char *tmp, const char *path) {
    pfgm_status st = pfgm_fsync_path(tmp, 0);
    if (st != PFGM_OK) {
        unlink(tmp);
        return st;
    }
    if (rename(tmp, path) != 0) {
        int err = errno;
        unlink(tmp);
        return pfgm_error(PFGM_ERR_IO, "%s: cannot rename %s into place: %s", path, tmp, strerror(err));
    }
    char *dir = strdup(path);
    if (!dir) return pfgm_error(PFGM_ERR_NOMEM, "%s: out of memory", path);
    char *slash = strrchr(dir, '/');
    const char *d = ".";
    if (slash == dir) d = "/";
    else if (slash) {
        *slash = '\0';
        d = dir;
    }
    st = pfgm_fsync_path(d, 1);
    free(dir);
    return st;
}

pfgm_status pfgm_mkdirs(const char *path) {
    size_t n = strlen(path);
    char *p = malloc(n + 1);
    if (!p) return pfgm_error(PFGM_ERR_NOMEM, "%s: out of memory", path);
    memcpy(p, path, n + 1);
    for (size_t i = 1; i <= n; ++i) {
        if (p[i] != '/' && p[i] != '\0') continue;
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            int err = errno;
            pfgm_status st = pfgm_error(PFGM_ERR_IO, "%s: cannot create directory: %s", p, strerror(err));
            free(p);
            return st;
        }
        struct stat sb;
        if (stat(p, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            pfgm_status st = pfgm_error(PFGM_ERR_IO, "%s: exists and is not a directory", p);
            free(p);
            return st;
        }
        p[i] = c;
    }
    free(p);
    return PFGM_OK;
}
