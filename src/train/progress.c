/* Formatting and printing of the training and sampling progress lines (include/pfgm/progress.h). */
#include "pfgm/progress.h"

#include <math.h>

char *pfgm_format_duration(double s, char *buf, size_t cap) {
    if (!(s >= 0) || !isfinite(s)) {
        snprintf(buf, cap, "?");
        return buf;
    }
    long t = (long)(s + 0.5);
    if (t >= 86400) snprintf(buf, cap, "%ldd%02ldh", t / 86400, (t % 86400) / 3600);
    else if (t >= 3600) snprintf(buf, cap, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
    else if (t >= 60) snprintf(buf, cap, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, cap, "%lds", t);
    return buf;
}

char *pfgm_progress_format(const pfgm_progress_report *r, char *buf, size_t cap) {
    char eta[32];
    snprintf(buf, cap, "step %lld/%lld  loss %.4f  grad %.3f  lr %.2e  %.1f img/s  ETA %s", (long long)r->step,
             (long long)r->total, r->loss, r->grad_norm, r->lr, r->images_per_s,
             pfgm_format_duration(r->eta_s, eta, sizeof eta));
    return buf;
}

char *pfgm_sample_progress_format(const pfgm_sample_progress_report *r, char *buf, size_t cap) {
    char eta[32];
    snprintf(buf, cap, "batch %lld/%lld  NFE %lld  z %.3e  t %.0f%%  %.2f img/s  ETA %s", (long long)r->batch,
             (long long)r->batches, (long long)r->nfe, r->z, 100.0 * r->t_fraction, r->images_per_s,
             pfgm_format_duration(r->eta_s, eta, sizeof eta));
    return buf;
}

void pfgm_progress_emit(FILE *f, int tty, const char *line) {
    if (tty) fprintf(f, "\r%s\033[K", line);
    else fprintf(f, "%s\n", line);
    fflush(f);
}

void pfgm_progress_print(FILE *f, int tty, const pfgm_progress_report *r) {
    char line[256];
    pfgm_progress_emit(f, tty, pfgm_progress_format(r, line, sizeof line));
}

void pfgm_progress_finish(FILE *f, int tty) {
    if (tty) {
        fputc('\n', f);
        fflush(f);
    }
}
