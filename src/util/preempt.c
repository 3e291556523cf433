/* SIGTERM/SIGUSR1 handler that only records the signal (include/pfgm/preempt.h). */
#include "pfgm/preempt.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

static volatile sig_atomic_t received_;

static void on_signal(int sig) {
    if (!received_) received_ = sig;
}

pfgm_status pfgm_preempt_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    const int sigs[] = {SIGTERM, SIGUSR1};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; ++i)
        if (sigaction(sigs[i], &sa, NULL) != 0)
            return pfgm_error(PFGM_ERR_INTERNAL, "cannot install the handler for signal %d: %s", sigs[i],
                              strerror(errno));
    return PFGM_OK;
}

int pfgm_preempt_signal(void) { return (int)received_; }

void pfgm_preempt_clear(void) { received_ = 0; }
