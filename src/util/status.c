/* Status names, exit codes, and the per-thread last-error message. */
#include "pfgm/status.h"

#include <stdio.h>
#include <string.h>

#define PFGM_ERRMSG_LEN 1024

/* Per-thread, like errno: library calls set it on failure, main() prints it. */
static _Thread_local char errmsg_[PFGM_ERRMSG_LEN];

static const char *const names_[PFGM_STATUS_COUNT] = {
    [PFGM_OK] = "ok",
    [PFGM_ERR_INVALID_ARG] = "invalid argument",
    [PFGM_ERR_NOMEM] = "out of memory",
    [PFGM_ERR_IO] = "i/o error",
    [PFGM_ERR_FORMAT] = "bad file format",
    [PFGM_ERR_CONFIG] = "configuration error",
    [PFGM_ERR_UNSUPPORTED] = "unsupported",
    [PFGM_ERR_NUMERIC] = "numerical error",
    [PFGM_ERR_MPI] = "MPI error",
    [PFGM_ERR_CUDA] = "CUDA error",
    [PFGM_ERR_CUBLAS] = "cuBLAS error",
    [PFGM_ERR_NCCL] = "NCCL error",
    [PFGM_ERR_HDF5] = "HDF5 error",
    [PFGM_ERR_YAML] = "YAML error",
    [PFGM_ERR_INTERNAL] = "internal error",
    [PFGM_STOPPED] = "stopped",
};

const char *pfgm_status_name(pfgm_status st) {
    if ((int)st < 0 || st >= PFGM_STATUS_COUNT) return "unknown status";
    return names_[st];
}

int pfgm_status_exit_code(pfgm_status st) {
    switch (st) {
    case PFGM_OK: return 0;
    case PFGM_ERR_INVALID_ARG:
    case PFGM_ERR_CONFIG:
    case PFGM_ERR_YAML: return 2;
    case PFGM_ERR_IO:
    case PFGM_ERR_FORMAT:
    case PFGM_ERR_HDF5: return 3;
    case PFGM_ERR_NOMEM: return 4;
    case PFGM_ERR_NUMERIC: return 5;
    case PFGM_ERR_MPI:
    case PFGM_ERR_NCCL: return 6;
    case PFGM_ERR_CUDA:
    case PFGM_ERR_CUBLAS:
    case PFGM_ERR_UNSUPPORTED: return 7;
    case PFGM_ERR_INTERNAL: return 8;
    case PFGM_STOPPED: return 75;
    default: return 1;
    }
}

pfgm_status pfgm_verror(pfgm_status st, const char *fmt, va_list ap) {
    vsnprintf(errmsg_, sizeof errmsg_, fmt, ap);
    return st;
}

pfgm_status pfgm_error(pfgm_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    pfgm_verror(st, fmt, ap);
    va_end(ap);
    return st;
}

pfgm_status pfgm_error_prefix(pfgm_status st, const char *fmt, ...) {
    char old[PFGM_ERRMSG_LEN];
    memcpy(old, errmsg_, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(errmsg_, sizeof errmsg_, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n + 2 < sizeof errmsg_) {
        size_t room = sizeof errmsg_ - (size_t)n;
        memcpy(errmsg_ + n, ": ", 2);
        size_t len = strnlen(old, room - 3);
        memcpy(errmsg_ + n + 2, old, len);
        errmsg_[(size_t)n + 2 + len] = '\0';
    }
    return st;
}

const char *pfgm_error_message(void) { return errmsg_; }

void pfgm_error_clear(void) { errmsg_[0] = '\0'; }
