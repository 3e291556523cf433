/* CUDA ops of the network-layer group of backend.h (callers: src/nn): the elementwise and
 * data-movement ops (SiLU, softmax backward, resampling, broadcast add, channel copy, the
 * z-field mean, the z embedding, dropout), and the init that gathers the group's other files
 * (cuda_conv.cu: convolutions and batched gemm; cuda_norm.cu: GroupNorm). Each op matches its
 * CPU counterpart in src/backend/cpu/cpu_nn.c (the argument checks of both are the op front
 * end's, src/backend/ops.c): the same float operations in the same order where the CPU has
 * no reduction (resampling, copies, broadcast add, dropout: the same bits; the CUDA sources
 * compile with --fmad=false, so a product is rounded before an add as on the CPU, and
 * __fmul_rn marks where it matters), and reductions in double through a fixed block tree
 * (deterministic, no atomics). tests/gpu/test_cuda_nn.c compares. */
#include "backend/cuda/cuda_nn.cuh"
#include "util/philox_impl.h"

namespace {

/* ---- SiLU -------------------------------------------------------------------------------- */

__global__ void k_silu_fwd(int64_t n, const float *x, float *y) {
    PFGM_GRID_STRIDE(int64_t, i, n) y[i] = x[i] / (1.0f + expf(-x[i]));
}

/* d/dx x*s(x) = s(x) * (1 + x * (1 - s(x))), s the logistic sigmoid. */
__global__ void k_silu_bwd(int64_t n, const float *x, const float *dy, float *dx, int accumulate) {
    PFGM_GRID_STRIDE(int64_t, i, n) {
        float s = 1.0f / (1.0f + expf(-x[i]));
        float g = dy[i] * s * (1.0f + x[i] * (1.0f - s));
        dx[i] = accumulate ? dx[i] + g : g;
    }
}

pfgm_status cuda_silu_fwd(pfgm_backend *be, int64_t n, const float *x, float *y) {
    if (n <= 0) return PFGM_OK;
    k_silu_fwd<<<blocks_for(n, kMaxGrid), kThreads, 0, stream_of(be)>>>(n, x, y);
    PFGM_CUDA_LAUNCH_CHECK();
    return PFGM_OK;
}

pfgm_status cuda_silu_bwd(pfgm_backend *be, int64_t n, const float *x, const float *dy, float *dx, int accumulate) {
    if (n <= 0) return PFGM_OK;
    k_silu_bwd<<<blocks_for(n, kMaxGrid), kThreads, 0, stream_of(be)>>>(n, x, dy, dx, accumulate);
    PFGM_CUDA_LAUNCH_CHECK();
    return PFGM_OK;
}

/* ---- softmax backward: one block per row, the row's dot product in double ---------------- */

__global__ void k_softmax_rows_bwd(int64_t rows, int64_t cols, const float *p, float *dp) {
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *pr = p + r * cols;
        float *dr = dp + r * cols;
        double s = 0.0;
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) s += (double)pr[c] * (double)dr[c];
        const float sf = (float)block_sum(s);
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) dr[c] = pr[c] * (dr[c] - sf);
    }
}

pfgm_status cuda_softmax_rows_bwd(pfgm_backend *be, int64_t rows, int64_t cols, const float *p, float *dp) {
    if (rows == 0) return PFGM_OK;
    k_softmax_rows_bwd<<<row_blocks(rows), kThreads, 0, stream_of(be)>>>(rows, cols, p, dp);
    PFGM_CUDA_LAUNCH_CHECK();
    return PFGM_OK;
}

/* ---- resampling (BigGAN blocks without FIR, spec §3.1 step 2) --------------------------- */

template <typename I>
__global__ void k_upsample2x_fwd(I planes, I h, I w, const float *x, float *y) {
    const I w2 = 2 * w, h2 = 2 * h;
    PFGM_GRID_STRIDE(I, e, planes * h2 * w2) {
        const I j = e % w2, t = e / w2, i = t % h2, p = t / h2;
        y[e] = x[(p * h + i / 2) * w + j / 2];
    }
}

template <typename I>
__global__ void k_upsample2x_bwd(I planes, I h, I w, const float *dy, float *dx, int accumulate) {
    PFGM_GRID_STRIDE(I, e, planes * h * w) {
        const I j = e % w, t = e / w, i = t % h, p = t / h;
        const float *d0 = dy + (p * 2 * h + 2 * i) * 2 * w + 2 * j, *d1 = d0 + 2 * w;
        const float g = (d0[0] + d0[1]) + (d1[0] + d1[1]);
        dx[e] = accumulate ? dx[e] + g : g;
    }
}

template <typename I>
__global__ void k_avgpool2x2_fwd(I planes, I h, I w, const float *x, float *y) {
    const I ho = h / 2, wo = w / 2;
    PFGM_GRID_STRIDE(I, e, planes * ho * wo) {
        const I j = e % wo, t = e / wo, i = t % ho, p = t / ho;
        const float *s0 = x + (p * h + 2 * i) * w + 2 * j, *s1 = s0 + w;
        y[e] = ((s0[0] + s0[1]) + (s1[0] + s1[1])) * 0.25f;
    }
}

template <typename I>
__global__ void k_avgpool2x2_bwd(I planes, I h, I w, const float *dy, float *dx, int accumulate) {
    const I ho = h / 2, wo = w / 2;
    PFGM_GRID_STRIDE(I, e, planes * h * w) {
        const I j = e % w, t = e / w, i = t % h, p = t / h;
        const float g = __fmul_rn(0.25f, dy[(p * ho + i / 2) * wo + j / 2]);
        dx[e] = accumulate ? dx[e] + g : g;
    }
}

pfgm_status cuda_upsample2x_fwd(pfgm_backend *be, int64_t planes, int64_t h, int64_t w, const float *x, float *y) {
    const int64_t n = planes * h * w * 4;
    if (n == 0) return PFGM_OK;
    PFGM_LAUNCH_IDX(k_upsample2x_fwd, n, n, stream_of(be), planes, h, w, x, y);
    PFGM_CUDA_LAUNCH_CHECK();
    return PFGM_OK;
}

pfgm_status cuda_upsample2x_bwd(pfgm_backend *be, int64_t planes, int64_t h, int64_t w, const float *dy, float *dx,
                                int accumulate) {
    const int64_t n = planes * h * w;
    if (n == 0) return PFGM_OK;
    PFGM_LAUNCH_IDX(k_upsample2x_bwd, n, 4 * n, stream_of(be), planes, h, w, dy, dx, accumulate);
    PFGM_CUDA_LAUNCH_CHECK();
    return PFGM_OK;
}

pfgm_status cuda_avgpool2x2_fwd(pfgm_backend *be, int64_t planes, int64_t h, int64_t w, const float *x, float *y) {
    const int64_t n = planes * h * w;
    if (n == 0) return PFGM_OK;
    PFGM_LAUNCH_IDX(k_avgpool2x2_fwd, n / 4, n, stream_of(be), planes, h, w, x, y);
    PFGM_CUDA_LAUNCH_CHECK();
    return PFGM_OK;
}

pfgm_status cuda_avgpool2x2_bwd(pfgm_backend *be, int64_t planes, int64_t h, int64_t w, const float *dy, float *dx,
                                int accumulate) {
    const int64_t n = planes * h * w;
    if (n == 0) return PFGM_OK;
    PFGM_LAUNCH_IDX(k_avgpool2x2_bwd, n, n, stream_of(be), planes, h, w, dy, dx, accumulate);
    PFGM_CUDA_LAUNCH_CHECK();
    return PFGM_OK;
}

/* ---- broadcast add, channel copy, z-field mean ------------------------------------------ */

template <typename I>
__global__ void k_bcast_add_fwd(I batch, I c, I hw, const float *v, I v_stride, float *y) {
    PFGM_GRID_STRIDE(I, e, batch * c * hw) {
        const I bc = e / hw;
        y[e] += v[(bc / c) * v_stride + bc % c];
    }
}

/* v_stride = 0: one block per channel, summed over the batch and the pixels. */
__global__ void k_bcast_add_bwd_shared(int64_t batch, int64_t c, int64_t hw, const float *dy, float *dv,
                                       int accumulate) {
    for (int64_t ch = blockIdx.x; ch < c; ch += gridDim.x) {
        double s = 0.0;
        for (int64_t t = threadIdx.x; t < batch * hw; t += blockDim.x) {
            const int64_t b = t / hw, i = t - b * hw;
            s += dy[(b * c + ch) * hw + i];
        }
        const float sf = (float)block_sum(s);
        if (threadIdx.x == 0) dv[ch] = accumulate ? dv[ch] + sf : sf;
    }
}

/* v_stride > 0: one block per (sample, channel) row of pixels. */
__global__ void k_bcast_add_bwd_rows(int64_t batch, int64_t c, int64_t hw, const float *dy, int64_t v_stride,
                                     float *dv, int accumulate) {
    for (int64_t bc = blockIdx.x; bc < batch * c; bc += gridDim.x) {
        const float *row = dy + bc * hw;
        double s = 0.0;
        for (int64_t i = threadIdx.x; i < hw; i += blockDim.x) s += row[i];
        const float sf = (float)block_sum(s);
        if (threadIdx.x == 0) {
            float *o = dv + (bc / c) * v_stride + bc % c;
            *o = accumulate ? *o + sf : sf;
        }
    }
}

pfgm_status cuda_bcast_add_fwd(pfgm_backend *be, int64_t batch, int64_t c, int64_t hw, const float *v,
                               int64_t v_stride, float *y) {
    const int64_t n = batch * c * hw;
    if (n == 0) return PFGM_OK;
    PFGM_LAUNCH_IDX(k_bcast_add_fwd, n, n + batch * v_stride, stream_of(be), batch, c, hw, v, v_stride, y);
    PFGM_CUDA_LAUNCH_CHECK();
    return PFGM_OK;
}

pfgm_status cuda_bcast_add_bwd(pfgm_backend *be, int64_t batch, int64_t c, int64_t hw, const float *dy,
                               int64_t v_stride, float *dv, int accumulate) {
    if (v_stride == 0) {
        /* batch 0: the CPU writes zeros (or leaves dv) for every channel; so does this */
        k_bcast_add_bwd_shared<<<row_blocks(c), kThreads, 0, stream_of(be)>>>(batch, c, hw, dy, dv, accumulate);
    } else {
        if (batch == 0) return PFGM_OK;
        k_bcast_add_bwd_rows<<<row_blocks(batch * c), kThreads, 0, stream_of(be)>>>(batch, c, hw, dy, v_stride, dv,
                                                                                   accumulate);
    }
    PFGM_CUDA_LAUNCH_CHECK();
    return PFGM_OK;
}

template <typename I>
__global__ void k_copy_channels(I batch, I hw, I nc, const float *src, I src_c, I src_c0, float *dst, I dst_c,
                                I dst_c0, int accumulate) {
    const I per = nc * hw;
    PFGM_GRID_STRIDE(I, e, batch * per) {
        const I b = e / per, r = e - b * per;
        const float s = src[(b * src_c + src_c0) * hw + r];
        float *d = dst + (b * dst_c + dst_c0) * hw + r;
        *d = accumulate ? *d + s : s;
    }
}

pfgm_status cuda_copy_channels(pfgm_backend *be, int64_t batch, int64_t hw, int64_t nc, const float *src,
                               int64_t src_c, int64_t src_c0, float *dst, int64_t dst_c, int64_t dst_c0,
                               int accumulate) {
    const int64_t n = batch * nc * hw;
    if (n == 0) return PFGM_OK;
    const int64_t extent = batch * (src_c > dst_c ? src_c : dst_c) * hw;
    PFGM_LAUNCH_IDX(k_copy_channels, n, extent, stream_of(be), batch, hw, nc, src, src_c, src_c0, dst, dst_c, dst_c0,
                    accumulate);
    PFGM_CUDA_LAUNCH_CHECK();
    return PFGM_OK;
}

__global__ void k_channel_mean_fwd(int64_t batch, int64_t c, int64_t hw, int64_t ch, const float *x, float *out) {
    for (int64_t b = blockIdx.x; b < batch; b += gridDim.x) {
        const float *row = x + (b * c + ch) * hw;
        double s = 0.0;
        for (int64_t i = threadIdx.x; i < hw; i += blockDim.x) s += row[i];
        s = block_sum(s);
        if (threadIdx.x == 0) out[b] = (float)(s / (double)hw);
    }
}

__global__ void k_channel_mean_bwd(int64_t batch, int64_t c, int64_t hw, int64_t ch, const float *dout, float *dx,
                                   int accumulate) {
    PFGM_GRID_STRIDE(int64_t, e, batch * hw) {
        const int64_t b = e / hw, i = e - b * hw;
        float *o = dx + (b * c + ch) * hw + i;
        const float g = (float)((double)dout[b] / (double)hw);
        *o = accumulate ? *o + g : g;
    }
}

pfgm_status cuda_channel_mean_fwd(pfgm_backend *be, int64_t batch, int64_t c, int64_t hw, int64_t ch, const float *x,
                                  float *out) {
    if (batch == 0) return PFGM_OK;
    k_channel_mean_fwd<<<row_blocks(batch), kThreads, 0, stream_of(be)>>>(batch, c, hw, ch, x, out);
    PFGM_CUDA_LAUNCH_CHECK();
    return PFGM_OK;
}

pfgm_status cuda_channel_mean_bwd(pfgm_backend *be, int64_t batch, int64_t c, int64_t hw, int64_t ch,
                                  const float *dout, float *dx, int accumulate) {
    if (batch == 0) return PFGM_OK;
    k_channel_mean_bwd<<<blocks_for(batch * hw, kMaxGrid), kThreads, 0, stream_of(be)>>>(batch, c, hw, ch, dout, dx,
                                                                                          accumulate);
    PFGM_CUDA_LAUNCH_CHECK();
    return PFGM_OK;
}

/* ---- z embedding (spec §3.1): float32 in the authors' order of operations --------------- */

/* Frequencies of get_timestep_embedding: exp(k * -(ln(10000) / (half - 1))), in float. */
__device__ __forceinline__ float pos_freq(int64_t k, int64_t half) {
    const float step = (float)(-log(10000.0) / (double)(half - 1));
    return expf((float)k * step);
}

__device__ const float kPi = 3.14159265358979323846f;

__global__ void k_zembed_fwd(int64_t batch, int64_t half, int fourier, const float *z, const float *w, float *out) {
    PFGM_GRID_STRIDE(int64_t, e, batch * half) {
        const int64_t b = e / half, k = e - b * half;
        /* Fourier: x_proj = ln(z) * W * 2 * pi, left to right as in layerspp.py */
        const float a = fourier ? logf(z[b]) * w[k] * 2.0f * kPi : z[b] * pos_freq(k, half);
        out[b * 2 * half + k] = sinf(a);
        out[b * 2 * half + half + k] = cosf(a);
    }
}

__global__ void k_zembed_bwd(int64_t batch, int64_t half, int fourier, const float *z, const float *w,
                             const float *dout, float *dz, int accumulate) {
    for (int64_t b = blockIdx.x; b < batch; b += gridDim.x) {
        const float *d = dout + b * 2 * half;
        const float lz = fourier ? logf(z[b]) : 0.0f;
        double s = 0.0;
        for (int64_t k = threadIdx.x; k < half; k += blockDim.x) {
            /* da/dz: f_k (positional), 2 pi W_k / z (Fourier of ln z) */
            float a, dadz;
            if (fourier) {
                a = lz * w[k] * 2.0f * kPi;
                dadz = w[k] * 2.0f * kPi / z[b];
            } else {
                dadz = pos_freq(k, half);
                a = z[b] * dadz;
            }
            s += ((double)d[k] * (double)cosf(a) - (double)d[half + k] * (double)sinf(a)) * (double)dadz;
        }
        const float sf = (float)block_sum(s);
        if (threadIdx.x == 0) dz[b] = accumulate ? dz[b] + sf : sf;
    }
}

pfgm_status cuda_zembed_fwd(pfgm_backend *be, int64_t batch, int64_t half, int fourier, const float *z,
                            const float *w, float *out) {
    if (batch == 0) return PFGM_OK;
    k_zembed_fwd<<<blocks_for(batch * half, kMaxGrid), kThreads, 0, stream_of(be)>>>(batch, half, fourier, z, w, out);
    PFGM_CUDA_LAUNCH_CHECK();
    return PFGM_OK;
}

pfgm_status cuda_zembed_bwd(pfgm_backend *be, int64_t batch, int64_t half, int fourier, const float *z,
                            const float *w, const float *dout, float *dz, int accumulate) {
    if (batch == 0) return PFGM_OK;
    k_zembed_bwd<<<row_blocks(batch), kThreads, 0, stream_of(be)>>>(batch, half, fourier, z, w, dout, dz, accumulate);
    PFGM_CUDA_LAUNCH_CHECK();
    return PFGM_OK;
}

/* ---- dropout from the Philox stream ------------------------------------------------------
 * One thread per Philox block of 4 stream elements; element i of the op is element
 * offset + i of the stream, as pfgm_rng_uniform on the host, so the mask has the CPU's bits. */

__global__ void k_dropout(int64_t n, float p, float scale, pfgm_rng r, uint64_t offset, const float *x, float *y,
                          int accumulate) {
    const uint64_t first = offset >> 2, last = pfgm_philox_last_block(offset, (uint64_t)n);
    for (uint64_t blk = first + blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; blk <= last;
         blk += (uint64_t)gridDim.x * blockDim.x) {
        uint32_t wd[4];
        pfgm_philox_block(r.seed, r.rank, r.stream, r.step, blk, wd);
        for (int l = 0; l < 4; ++l) {
            const uint64_t e = blk * 4 + (uint64_t)l;
            if (e < offset || e >= offset + (uint64_t)n) continue;
            const int64_t i = (int64_t)(e - offset);
            const float v = pfgm_philox_u24(wd[l]) >= p ? __fmul_rn(x[i], scale) : 0.0f;
            y[i] = accumulate ? y[i] + v : v;
        }
    }
}

pfgm_status dropout_apply(pfgm_backend *be, int64_t n, float p, const pfgm_rng *r, uint64_t offset, const float *x,
                          float *y, int accumulate) {
    if (n == 0) return PFGM_OK;
    const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    const int64_t blocks = (int64_t)pfgm_philox_block_count(offset, (uint64_t)n);
    k_dropout<<<blocks_for(blocks, kMaxGrid), kThreads, 0, stream_of(be)>>>(n, p, scale, *r, offset, x, y, accumulate);
    PFGM_CUDA_LAUNCH_CHECK();
    return PFGM_OK;
}

pfgm_status cuda_dropout_fwd(pfgm_backend *be, int64_t n, float p, const pfgm_rng *r, uint64_t offset, const float *x,
                             float *y) {
    return dropout_apply(be, n, p, r, offset, x, y, 0);
}

pfgm_status cuda_dropout_bwd(pfgm_backend *be, int64_t n, float p, const pfgm_rng *r, uint64_t offset,
                             const float *dy, float *dx, int accumulate) {
    return dropout_apply(be, n, p, r, offset, dy, dx, accumulate);
}

} // namespace

void pfgm_cuda_nn_ops_init(pfgm_backend *be) {
    be->silu_fwd = cuda_silu_fwd;
    be->silu_bwd = cuda_silu_bwd;
    be->softmax_rows_bwd = cuda_softmax_rows_bwd;
    be->upsample2x_fwd = cuda_upsample2x_fwd;
    be->upsample2x_bwd = cuda_upsample2x_bwd;
    be->avgpool2x2_fwd = cuda_avgpool2x2_fwd;
    be->avgpool2x2_bwd = cuda_avgpool2x2_bwd;
    be->bcast_add_fwd = cuda_bcast_add_fwd;
    be->bcast_add_bwd = cuda_bcast_add_bwd;
    be->copy_channels = cuda_copy_channels;
    be->channel_mean_fwd = cuda_channel_mean_fwd;
    be->channel_mean_bwd = cuda_channel_mean_bwd;
    be->zembed_fwd = cuda_zembed_fwd;
    be->zembed_bwd = cuda_zembed_bwd;
    be->dropout_fwd = cuda_dropout_fwd;
    be->dropout_bwd = cuda_dropout_bwd;
    pfgm_cuda_conv_ops_init(be);
    pfgm_cuda_norm_ops_init(be);
}
