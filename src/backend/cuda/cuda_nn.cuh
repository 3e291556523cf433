/* Private to the CUDA network-layer group (cuda_nn.cu, cuda_conv.cu, cuda_norm.cu): the init
 * functions that cuda_nn.cu (the group's init) gathers, and the launch helpers they share:
 * grid-stride loops with 32-bit indices where every index of a launch fits, 64-bit otherwise
 * (64-bit division costs several times more on the device). */
#ifndef PFGM_BACKEND_CUDA_NN_CUH
#define PFGM_BACKEND_CUDA_NN_CUH

#include "backend/cuda/cuda_internal.cuh"

/* Fill the convolution and batched-gemm ops (cuda_conv.cu) and the GroupNorm ops
 * (cuda_norm.cu) of backend.h's network-layer group. */
void pfgm_cuda_conv_ops_init(pfgm_backend *be);
void pfgm_cuda_norm_ops_init(pfgm_backend *be);

/* Grid cap of the grid-stride loops. */
static const int kMaxGrid = 65535;

/* Grid-stride loop over [0, n) with index type I. */
#define PFGM_GRID_STRIDE(I, i, n)                                                                       \
    for (I i = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; i < (I)(n); i += (I)gridDim.x * (I)blockDim.x)

/* 32-bit indices are safe when every index of the launch, plus one grid stride, stays below
 * 2^31: callers pass the largest element count any array of the launch holds. */
static inline bool pfgm_idx32(int64_t extent) { return extent <= ((int64_t)1 << 30); }

/* Launch kern<int> or kern<int64_t> over `n` work items with the grid-stride grid;
 * `extent` is the largest array extent the kernel indexes. */
#define PFGM_LAUNCH_IDX(kern, n, extent, stream, ...)                                                       \
    do {                                                                                                 \
        if (pfgm_idx32(extent))                                                                          \
            kern<int><<<blocks_for((n), kMaxGrid), kThreads, 0, (stream)>>>(__VA_ARGS__);                 \
        else                                                                                             \
            kern<int64_t><<<blocks_for((n), kMaxGrid), kThreads, 0, (stream)>>>(__VA_ARGS__);             \
    } while (0)

/* Blocks of a one-block-per-row kernel (rows > 0), grid-striding past the cap. */
static inline int row_blocks(int64_t rows) { return (int)(rows < kMaxGrid ? (rows > 0 ? rows : 1) : kMaxGrid); }

#endif
