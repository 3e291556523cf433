/* Private to the CPU backend: its context and the functions that fill its op table.
 * Each cpu_*.c file fills the ops of one group of backend.h. */
#ifndef PFGM_BACKEND_CPU_H
#define PFGM_BACKEND_CPU_H

#include "pfgm/backend.h"

typedef struct cpu_ctx {
    int reference; /* plain loops instead of OpenBLAS/OpenMP */
    int threads;
} cpu_ctx;

static inline int cpu_reference(const pfgm_backend *be) { return ((const cpu_ctx *)be->ctx)->reference; }

/* Fill the op groups of backend.h (defined in cpu_math.c, cpu_nn.c). */
void pfgm_cpu_math_ops_init(pfgm_backend *be);
void pfgm_cpu_nn_ops_init(pfgm_backend *be);
void pfgm_cpu_optim_ops_init(pfgm_backend *be); /* cpu_optim.c */

#endif
