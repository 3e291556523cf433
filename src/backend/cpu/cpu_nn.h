/* Private to the CPU backend's network-layer group: the pieces that cpu_nn.c (the group's
 * init) gathers from the other files of the group, and the thread count they share. */
#ifndef PFGM_BACKEND_CPU_NN_H
#define PFGM_BACKEND_CPU_NN_H

#include "backend/cpu/cpu.h"

/* Fill the convolution and batched-gemm ops (cpu_conv.c) and the GroupNorm ops (cpu_norm.c). */
void pfgm_cpu_conv_ops_init(pfgm_backend *be);
void pfgm_cpu_norm_ops_init(pfgm_backend *be);

/* Winograd F(2x2, 3x3) convolutions (cpu_winograd.c). Scratch floats for one call of
 * pfgm_cpu_wino_conv or pfgm_cpu_wino_grad_image (the same for cin <-> cout); the
 * transformed weights U [16][out][in] of W [cout, cin, 3, 3] for the output channels
 * [o0, o1) (transpose_flip = 1: of the input gradient's weights, a convolution from cout to
 * cin channels, o0..o1 then range over cin); y [nimg, cout, h, w] (= or += by acc) the
 * convolution of x [nimg, cin, h, w] with zero padding 1, plus bias (may be NULL). */
size_t pfgm_cpu_wino_scratch_floats(int64_t cin, int64_t cout, int64_t h, int64_t w);
void pfgm_cpu_wino_weights(const float *wt, int64_t cin, int64_t cout, int transpose_flip, int64_t o0, int64_t o1,
                           float *U);
void pfgm_cpu_wino_conv(const float *x, int64_t nimg, int64_t cin, int64_t cout, int64_t h, int64_t w, const float *U,
                        const float *bias, float *y, int acc, float *scratch);
/* Weight gradient of one image: dU [16][cout][cin] += the transformed-domain gradient of
 * x_n [cin, h, w] and dy_n [cout, h, w] (scratch: pfgm_cpu_wino_scratch_floats(cin, cout,
 * h, w)); pfgm_cpu_wino_grad_finish adds its 3x3 form to dw [cout, cin, 3, 3]. */
void pfgm_cpu_wino_grad_image(const float *xn, const float *dyn, int64_t cin, int64_t cout, int64_t h, int64_t w,
                              float *dU, float *scratch);
void pfgm_cpu_wino_grad_finish(const float *dU, int64_t cin, int64_t cout, float *dw);

/* Threads that run over the batch in the fast path: 1 when OpenBLAS itself runs
 * multi-threaded (then each sgemm is threaded instead, so the two never oversubscribe),
 * else the backend's OpenMP thread count. Always 1 in the reference mode. */
int pfgm_cpu_batch_threads(const pfgm_backend *be);

#endif
