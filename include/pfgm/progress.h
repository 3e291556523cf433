/* The progress lines of pfgm-train and pfgm-sample, printed by rank 0.
 * Training, every training.log_freq steps:
 *   step 1200/5000  loss 412.3071  grad 3.214  lr 2.00e-04  118.4 img/s  ETA 8m31s
 * Sampling, at most once per interval during the ODE solves (src/train/sampler.c):
 *   batch 2/16  NFE 134  z 3.21e-02  t 68%  12.5 img/s  ETA 41s
 * On a terminal the line is rewritten in place (carriage return, erase to end of line);
 * when stdout is a file or pipe every report is its own plain line. Both go through
 * pfgm_progress_emit, the one place that decides between the two. */
#ifndef PFGM_PROGRESS_H
#define PFGM_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pfgm_progress_report {
    int64_t step;       /* steps completed */
    int64_t total;      /* training.n_iters */
    double loss;        /* mean loss over the steps since the last report */
    double grad_norm;   /* pre-clip global gradient norm of the last step */
    double lr;          /* learning rate of the last step */
    double images_per_s;/* global perturbed points per second (all ranks) since the last report */
    double eta_s;       /* seconds to total at the current rate; < 0 when unknown */
} pfgm_progress_report;

/* The sampler's report (pfgm_sample_draw). */
typedef struct pfgm_sample_progress_report {
    int64_t batch;       /* rank 0's current global batch, 1-based */
    int64_t batches;     /* global batches in all */
    int64_t nfe;         /* network evaluations of this batch so far */
    double z;            /* height of the latest evaluation (largest over the batch's rows) */
    double t_fraction;   /* (ln z_max - ln z) / (ln z_max - ln z_min) in [0, 1]: how far the
                          * solve has come in t = ln z, the variable every solver integrates */
    double images_per_s; /* estimated samples per second, all ranks */
    double eta_s;        /* seconds to the end; < 0 when unknown */
} pfgm_sample_progress_report;

/* Formats a sampler report into buf[cap] (no newline). Returns buf. */
char *pfgm_sample_progress_format(const pfgm_sample_progress_report *r, char *buf, size_t cap);

/* Prints an already formatted line to f: in place when `tty` is nonzero (carriage return,
 * the line, erase to end of line, no newline), else the line and a newline. Flushes f. */
void pfgm_progress_emit(FILE *f, int tty, const char *line);

/* Formats a report into buf[cap] (no newline). Returns buf. */
char *pfgm_progress_format(const pfgm_progress_report *r, char *buf, size_t cap);

/* Prints a report to f: in place when `tty` is nonzero, else as a line. */
void pfgm_progress_print(FILE *f, int tty, const pfgm_progress_report *r);

/* Ends an in-place line (prints the newline) so that other output starts on a fresh line. */
void pfgm_progress_finish(FILE *f, int tty);

/* "8m31s", "2h05m", "41s", "?" for a negative value: buf[cap]. Returns buf. */
char *pfgm_format_duration(double seconds, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
