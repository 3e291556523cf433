/* Status codes returned by every fallible pfgm call, the per-thread error message that
 * goes with them, and the mapping of statuses to the binaries' documented exit codes. */
#ifndef PFGM_STATUS_H
#define PFGM_STATUS_H

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum pfgm_status {
    PFGM_OK = 0,
    PFGM_ERR_INVALID_ARG,  /* a caller passed an impossible value (shape, size, pointer) */
    PFGM_ERR_NOMEM,        /* host or device allocation failed */
    PFGM_ERR_IO,           /* file missing, unreadable, unwritable, rename/fsync failed */
    PFGM_ERR_FORMAT,       /* file present but wrong: truncated, bad magic, dtype, rank, checksum */
    PFGM_ERR_CONFIG,       /* configuration: unknown key, wrong type, out of range */
    PFGM_ERR_UNSUPPORTED,  /* the backend or build lacks the capability asked for */
    PFGM_ERR_NUMERIC,      /* NaN/Inf or a value outside the math's domain */
    PFGM_ERR_MPI,          /* an MPI call failed */
    PFGM_ERR_CUDA,         /* a CUDA runtime call failed */
    PFGM_ERR_CUBLAS,       /* a cuBLAS call failed */
    PFGM_ERR_NCCL,         /* an NCCL call failed or timed out */
    PFGM_ERR_HDF5,         /* an HDF5 call failed */
    PFGM_ERR_YAML,         /* libyaml failed to scan/parse/emit */
    PFGM_ERR_INTERNAL,     /* a broken invariant inside pfgm (a bug) */
    PFGM_STOPPED,          /* stopped on request (SIGTERM/SIGUSR1) after a checkpoint */
    PFGM_STATUS_COUNT
} pfgm_status;

/* Short stable name of a status ("ok", "io", "format", ...). Never NULL. */
const char *pfgm_status_name(pfgm_status st);

/* Process exit code a pfgm binary uses for a status (docs/user-guide.md, "Exit codes"):
 * 0 ok, 2 usage/config, 3 input data (io/format), 4 out of memory, 5 numeric,
 * 6 communication (MPI/NCCL), 7 device (CUDA/cuBLAS), 8 internal, 75 stopped/requeue
 * (EX_TEMPFAIL: SLURM requeue scripts test for it), 1 anything else. */
int pfgm_status_exit_code(pfgm_status st);

/* Records a one-line message for the calling thread and returns st, so that library code
 * can write `return pfgm_error(PFGM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));`.
 * Later calls overwrite the message; messages longer than 1023 bytes are truncated. The
 * message is kept per thread (like errno) so library code needs no global context. */
pfgm_status pfgm_error(pfgm_status st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
pfgm_status pfgm_verror(pfgm_status st, const char *fmt, va_list ap);

/* Prefixes the current message with "<prefix>: " (context added while unwinding). Returns st. */
pfgm_status pfgm_error_prefix(pfgm_status st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The calling thread's last message ("" when none), and the call that clears it. */
const char *pfgm_error_message(void);
void pfgm_error_clear(void);

#ifdef __cplusplus
}
#endif
#endif /* PFGM_STATUS_H */
