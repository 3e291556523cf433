/* Private to the CPU backend's network-layer group: the pieces that cpu_nn.c (the group's
 * init) gathers from the other files of the group, and the thread count they share. */
#ifndef PFGM_BACKEND_CPU_NN_H
#define PFGM_BACKEND_CPU_NN_H

#include "backend/cpu/cpu.h"

/* Fill the convolution and batched-gemm ops (cpu_conv.c) and the GroupNorm ops (cpu_norm.c). */
void pfgm_cpu_conv_ops_init(pfgm_backend *be);
void pfgm_cpu_norm_ops_init(pfgm_backend *be);

/* Threads that run over the batch in the fast path: 1 when OpenBLAS itself runs
 * multi-threaded (then each sgemm is threaded instead, so the two never oversubscribe),
 * else the backend's OpenMP thread count. Always 1 in the reference mode. */
int pfgm_cpu_batch_threads(const pfgm_backend *be);

#endif
