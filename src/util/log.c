/* Rank-aware console logging and the metrics JSON-lines writer. */
#include "pfgm/log.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void pfgm_logger_init(pfgm_logger *lg, int rank) {
    memset(lg, 0, sizeof *lg);
    lg->rank = rank;
    lg->level = PFGM_LOG_INFO;
    if (gethostname(lg->host, sizeof lg->host - 1) != 0) strcpy(lg->host, "unknown");
    lg->host[sizeof lg->host - 1] = '\0';
}

static void vlog(const pfgm_logger *lg, pfgm_log_level lvl, const char *fmt, va_list ap) {
    if (lvl < lg->level) return;
    if (lvl <= PFGM_LOG_INFO) {
        if (lg->rank != 0) return;
        FILE *f = lg->out ? lg->out : stdout;
        vfprintf(f, fmt, ap);
        fputc('\n', f);
        fflush(f);
        return;
    }
    /* One fprintf per line so ranks sharing a terminal do not interleave mid-line. */
    char line[2048];
    int n = snprintf(line, sizeof line, "[rank %d@%s] %s: ", lg->rank, lg->host,
                     lvl == PFGM_LOG_WARN ? "warning" : "error");
    if (n < 0) n = 0;
    if ((size_t)n < sizeof line) vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    FILE *f = lg->err ? lg->err : stderr;
    fprintf(f, "%s\n", line);
    fflush(f);
}

#define PFGM_LOG_FN(name, lvl)                                  \
    void name(const pfgm_logger *lg, const char *fmt, ...) {    \
        va_list ap;                                             \
        va_start(ap, fmt);                                      \
        vlog(lg, lvl, fmt, ap);                                 \
        va_end(ap);                                             \
    }
PFGM_LOG_FN(pfgm_log_debug, PFGM_LOG_DEBUG)
PFGM_LOG_FN(pfgm_log_info, PFGM_LOG_INFO)
PFGM_LOG_FN(pfgm_log_warn, PFGM_LOG_WARN)
PFGM_LOG_FN(pfgm_log_error, PFGM_LOG_ERROR)

struct pfgm_metrics {
    FILE *f;
    char *path;
    json_t *rec;
};

pfgm_status pfgm_metrics_open(const char *path, pfgm_metrics **out) {
    *out = NULL;
    pfgm_metrics *m = calloc(1, sizeof *m);
    if (!m) return pfgm_error(PFGM_ERR_NOMEM, "%s: cannot allocate metrics writer", path);
    m->f = fopen(path, "a");
    if (!m->f) {
        int e = errno;
        free(m);
        return pfgm_error(PFGM_ERR_IO, "%s: cannot open metrics file for appending: %s", path,
                          strerror(e));
    }
    m->path = strdup(path);
    *out = m;
    return PFGM_OK;
}

void pfgm_metrics_close(pfgm_metrics *m) {
    if (!m) return;
    if (m->rec) json_decref(m->rec);
    if (m->f) fclose(m->f);
    free(m->path);
    free(m);
}

void pfgm_metrics_begin(pfgm_metrics *m) {
    if (m->rec) json_decref(m->rec);
    m->rec = json_object();
}

void pfgm_metrics_int(pfgm_metrics *m, const char *key, int64_t v) {
    if (m->rec) json_object_set_new(m->rec, key, json_integer((json_int_t)v));
}

void pfgm_metrics_num(pfgm_metrics *m, const char *key, double v) {
    if (m->rec) json_object_set_new(m->rec, key, isfinite(v) ? json_real(v) : json_null());
}

void pfgm_metrics_str(pfgm_metrics *m, const char *key, const char *v) {
    if (m->rec) json_object_set_new(m->rec, key, json_string(v ? v : ""));
}

pfgm_status pfgm_metrics_end(pfgm_metrics *m) {
    if (!m->rec) return pfgm_error(PFGM_ERR_INTERNAL, "%s: metrics record ended without begin", m->path);
    int rc = json_dumpf(m->rec, m->f, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    json_decref(m->rec);
    m->rec = NULL;
    if (rc != 0 || fputc('\n', m->f) == EOF || fflush(m->f) != 0)
        return pfgm_error(PFGM_ERR_IO, "%s: cannot write metrics line: %s", m->path, strerror(errno));
    return PFGM_OK;
}
