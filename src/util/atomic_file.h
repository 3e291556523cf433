/* Writing outputs atomically: a file is written under a temporary name in the same
 * directory, flushed and fsynced, then renamed over the final name and the directory is
 * fsynced, so a reader sees either the old complete file or the new complete file, never a
 * partial one, and a failure leaves nothing behind. Private header (util layer). */
#ifndef PFGM_UTIL_ATOMIC_FILE_H
#define PFGM_UTIL_ATOMIC_FILE_H

#include <stddef.h>

#include "pfgm/status.h"

/* Writes "<path>.tmp.<pid>" into buf[cap]. Errors: PFGM_ERR_INVALID_ARG if it does not fit. */
pfgm_status pfgm_atomic_tmp_name(const char *path, char *buf, size_t cap);

/* fsync of a file (dir = 0) or a directory (dir = 1) by name. Errors: PFGM_ERR_IO naming it. */
pfgm_status pfgm_fsync_path(const char *path, int dir);

/* Publishes a finished temporary: fsync(tmp), rename(tmp, path), fsync(dirname(path)).
 * On failure the temporary is removed. Errors: PFGM_ERR_IO naming the file and the cause. */
pfgm_status pfgm_atomic_publish(const char *tmp, const char *path);

/* Makes a directory and its missing parents (mode 0755); existing directories are fine.
 * Errors: PFGM_ERR_IO naming the component that failed. */
pfgm_status pfgm_mkdirs(const char *path);

#endif
