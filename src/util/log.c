/* Rank-aware console logging, the metrics JSON-lines writer, and the metrics file's
 * clean-up on resume. */
#include "pfgm/log.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/atomic_file.h"

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

/* --- resuming ------------------------------------------------------------------------- */

/* One pass over the metrics file: classifies every line into ri, and copies the kept ones
 * (verbatim, so numbers keep their digits) to out when out is not NULL. *final_nl says
 * whether the last line ended with a newline (a crash between the record and its '\n'). */
static pfgm_status resume_pass(FILE *in, const char *path, int64_t resumed_step, FILE *out,
                               pfgm_metrics_resume_info *ri, int *final_nl) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    *final_nl = 1;
    ri->kept = ri->dropped = ri->unparsable = 0;
    errno = 0;
    while ((n = getline(&line, &cap, in)) >= 0) {
        *final_nl = n > 0 && line[n - 1] == '\n';
        size_t len = (size_t)n - (*final_nl ? 1 : 0);
        if (len == 0) continue;
        /* json_loadb, not json_loads: a zero-filled tail (a crash on a delayed-allocation
         * file system) holds NUL bytes and must be rejected, not read up to the first NUL */
        json_t *rec = json_loadb(line, len, 0, NULL);
        json_t *step = json_is_object(rec) ? json_object_get(rec, "step") : NULL;
        int keep = 0;
        if (!json_is_object(rec) || (step && !json_is_integer(step))) ++ri->unparsable;
        else if (step && json_integer_value(step) > resumed_step) ++ri->dropped;
        else keep = 1, ++ri->kept;
        json_decref(rec);
        if (keep && out && (fwrite(line, 1, len, out) != len || fputc('\n', out) == EOF)) break;
    }
    int err = errno;
    free(line);
    if (ferror(in))
        return pfgm_error(PFGM_ERR_IO, "%s: cannot read the metrics file to resume it: %s", path, strerror(err));
    return PFGM_OK;
}

pfgm_status pfgm_metrics_resume(const char *path, int64_t resumed_step, pfgm_metrics_resume_info *info) {
    pfgm_metrics_resume_info ri = {.resumed_step = resumed_step};
    if (info) *info = ri;
    if (!path) return pfgm_error(PFGM_ERR_INVALID_ARG, "metrics resume: no file given");
    FILE *in = fopen(path, "r");
    if (!in) {
        if (errno == ENOENT) return PFGM_OK; /* a first run, or metrics logging was off */
        return pfgm_error(PFGM_ERR_IO, "%s: cannot open the metrics file to resume it: %s", path, strerror(errno));
    }
    ri.existed = 1;
    int final_nl = 1;
    pfgm_status st = resume_pass(in, path, resumed_step, NULL, &ri, &final_nl);
    if (st != PFGM_OK || (ri.dropped == 0 && ri.unparsable == 0 && final_nl)) goto done;

    /* second pass into a temporary, published by rename: a crash now leaves the old file */
    char tmp[4096];
    st = pfgm_atomic_tmp_name(path, tmp, sizeof tmp);
    if (st != PFGM_OK) goto done;
    FILE *out = fopen(tmp, "w");
    if (!out) {
        st = pfgm_error(PFGM_ERR_IO, "%s: cannot create %s to rewrite the metrics file: %s", path, tmp,
                        strerror(errno));
        goto done;
    }
    struct stat sb;
    if (fstat(fileno(in), &sb) == 0) (void)fchmod(fileno(out), sb.st_mode & 07777);
    rewind(in);
    st = resume_pass(in, path, resumed_step, out, &ri, &final_nl);
    int wr_err = ferror(out) ? EIO : 0;
    if (fflush(out) != 0 && !wr_err) wr_err = errno;
    if (fclose(out) != 0 && !wr_err) wr_err = errno;
    if (st == PFGM_OK && wr_err)
        st = pfgm_error(PFGM_ERR_IO, "%s: cannot write %s to rewrite the metrics file: %s", path, tmp,
                        strerror(wr_err));
    if (st != PFGM_OK) {
        unlink(tmp);
        goto done;
    }
    st = pfgm_atomic_publish(tmp, path);
    if (st == PFGM_OK) ri.rewritten = 1;
done:
    fclose(in);
    if (info) *info = ri;
    return st;
}

pfgm_status pfgm_metrics_resumed_event(pfgm_metrics *m, const pfgm_metrics_resume_info *info) {
    if (!m || !info) return pfgm_error(PFGM_ERR_INVALID_ARG, "metrics: resumed event without a writer or info");
    char when[32] = "unknown";
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm)) strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    pfgm_metrics_begin(m);
    pfgm_metrics_str(m, "event", "resumed");
    pfgm_metrics_int(m, "resumed_from", info->resumed_step);
    pfgm_metrics_int(m, "dropped", info->dropped);
    pfgm_metrics_int(m, "unparsable", info->unparsable);
    pfgm_metrics_str(m, "time", when);
    return pfgm_metrics_end(m);
}
