/* Logging for single- and multi-rank runs: informational lines from rank 0 only, warnings
 * and errors from every rank tagged "[rank R@host]", and a metrics JSON-lines writer (one
 * JSON object per line, appended, flushed after every line, encoded by jansson) with the
 * clean-up of its file when a run resumes from a checkpoint. */
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

/* Resuming: after a crash the metrics file holds lines for steps past the checkpoint the run
 * resumes from (they are logged again), and possibly a last line cut mid-write.
 * pfgm_metrics_resume removes both before the writer appends again, so the file's "step"
 * values stay strictly increasing. */
typedef struct pfgm_metrics_resume_info {
    int64_t resumed_step; /* the step passed in: the checkpoint's step (0 for a fresh start) */
    int existed;          /* 1 when the file was there */
    int rewritten;        /* 1 when the file was replaced (anything dropped, or no final newline) */
    int64_t kept;         /* records kept: "step" <= resumed_step, or no "step" key */
    int64_t dropped;      /* records removed because their "step" > resumed_step */
    int64_t unparsable;   /* lines removed that were not a JSON object with an integer (or
                             absent) "step": a line cut by the crash, a zero-filled tail */
} pfgm_metrics_resume_info;

/* Keeps, in order and byte for byte, the records of `path` whose "step" is <= resumed_step
 * and those without a "step" key; drops the others and every unparsable line (blank lines
 * are not counted; a rewrite leaves them out). When something is dropped, or the last line lacks its newline, the
 * file is replaced atomically (temporary in the same directory, fsync, rename, directory
 * fsync: util/atomic_file.h), keeping its permission bits; otherwise it is not touched. A
 * missing file is not an error (info->existed = 0, nothing to do). info may be NULL.
 * Call it on the writing rank only, under the run-directory lock (pfgm/run_lock.h), before
 * pfgm_metrics_open. Errors: PFGM_ERR_INVALID_ARG (path NULL), PFGM_ERR_IO naming the file
 * (or its temporary) and the cause, PFGM_ERR_NOMEM; on error the file is left as it was. */
pfgm_status pfgm_metrics_resume(const char *path, int64_t resumed_step, pfgm_metrics_resume_info *info);

/* Appends the record {"event": "resumed", "resumed_from": info->resumed_step, "dropped":
 * info->dropped, "unparsable": info->unparsable, "time": "YYYY-MM-DDTHH:MM:SSZ"} (UTC) to an
 * open writer, so that readers (launch/plot_metrics.py) can cut what an older pfgm left
 * behind. Errors: as pfgm_metrics_end. */
pfgm_status pfgm_metrics_resumed_event(pfgm_metrics *m, const pfgm_metrics_resume_info *info);

#ifdef __cplusplus
}
#endif
#endif /* PFGM_LOG_H */
