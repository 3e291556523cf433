/* Preemption: SIGTERM and SIGUSR1 (what SLURM sends before a time limit or a preemption,
 * with `--signal=USR1@120` or on scancel) only set a flag; the training loop polls it once
 * per step, the ranks agree on it with an all-reduce, and all stop at the same step after
 * writing a checkpoint (exit code 75, "stopped, requeue me"). The flag is the one piece of
 * process-wide state in pfgm, as a signal handler can touch nothing else safely. */
#ifndef PFGM_PREEMPT_H
#define PFGM_PREEMPT_H

#include "pfgm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Installs the handlers for SIGTERM and SIGUSR1 (SA_RESTART; the previous handlers are
 * replaced). Call it before any long start-up work. Errors: PFGM_ERR_INTERNAL if sigaction
 * fails. */
pfgm_status pfgm_preempt_install(void);

/* The number of the first signal received since install or the last clear, or 0. */
int pfgm_preempt_signal(void);

/* Forgets a received signal (tests). */
void pfgm_preempt_clear(void);

#ifdef __cplusplus
}
#endif
#endif
