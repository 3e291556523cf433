/* Logging for single- and multi-rank runs: informational lines from rank 0 only, warnings
 * and errors from every rank tagged "[rank R@host]", and a metrics JSON-lines writer (one
 * JSON object per line, appended, flushed after every line, encoded by jansson). */
#ifndef PFGM_LOG_H
#define PFGM_LOG_H

#include <stdint.h>
#include <stdio.h>

#include "pfgm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { PFGM_LOG_DEBUG = 0, PFGM_LOG_INFO, PFGM_LOG_WARN, PFGM_LOG_ERROR } pfgm_log_level;

/* Who is speaking and where to. Plain value type, passed by pointer; no global logger. */
typedef struct pfgm_logger {
    int rank;              /* this process's rank in the job (0 for a single process) */
    char host[64];         /* host name, for error lines */
    pfgm_log_level level;  /* messages below this level are dropped */
    FILE *out;             /* info/debug stream (stdout when NULL) */
    FILE *err;             /* warn/error stream (stderr when NULL) */
} pfgm_logger;

/* Fills *lg for `rank` with this host's name, level INFO, stdout/stderr. Never fails. */
void pfgm_logger_init(pfgm_logger *lg, int rank);

/* Informational line, printed by rank 0 only. A trailing newline is added. */
void pfgm_log_info(const pfgm_logger *lg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pfgm_log_debug(const pfgm_logger *lg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Warning / error lines, printed by every rank as "[rank R@host] warning|error: ...". */
void pfgm_log_warn(const pfgm_logger *lg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pfgm_log_error(const pfgm_logger *lg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Metrics: JSON lines. A record is begun, filled with key/value pairs, and ended; ending
 * writes one line and flushes it, so a crash loses at most the record being filled. */
typedef struct pfgm_metrics pfgm_metrics;

/* Opens `path` for appending (created when missing). Errors: PFGM_ERR_IO naming the path. */
pfgm_status pfgm_metrics_open(const char *path, pfgm_metrics **out);
void pfgm_metrics_close(pfgm_metrics *m);
void pfgm_metrics_begin(pfgm_metrics *m);
void pfgm_metrics_int(pfgm_metrics *m, const char *key, int64_t v);
/* Non-finite values are written as null (JSON has no NaN). */
void pfgm_metrics_num(pfgm_metrics *m, const char *key, double v);
void pfgm_metrics_str(pfgm_metrics *m, const char *key, const char *v);
/* Writes the record as one line and flushes. Errors: PFGM_ERR_IO (disk full, closed). */
pfgm_status pfgm_metrics_end(pfgm_metrics *m);

#ifdef __cplusplus
}
#endif
#endif /* PFGM_LOG_H */
