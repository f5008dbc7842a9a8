// The elementwise and reduction steps of the classifier around its SSM layers, in the (H, L) layout of one batch
// element (channels are rows, positions are contiguous), float32: what the torch-free runtime runs between
// sparse_fftconv and glu_mix.  Each is a loop the compiler vectorizes along L, compiled once per SIMD path
// (AVX-512, AVX2 + FMA, the portable baseline) and chosen at run time like the GELU epilogue.  No allocation:
// the caller passes scratch.
#pragma once

#include <cstdint>

namespace s4op::cpu {

// LayerNorm over the H channels at each of the L positions (two passes: the mean, then the variance of the
// centered values), then out = normalized * weight[c] + bias[c]; out may equal x.  One thread: it is
// residual_layer_norm_f32 of one batch element without z.
void channel_layer_norm_f32(const float* x, float* out, int64_t H, int64_t L, const float* weight, const float* bias,
                            float eps);

// The post-norm residual block's tail over a batch: out[b] = LayerNorm over channels of (x[b] + z[b]) (z null:
// of x[b]), with weight / bias per channel (either may be null: 1 / 0), for x, z, out {B, H, L}.  One sweep per
// tile of positions (the sum written into out while the means accumulate, the centered variance, then the
// normalization in place), so the sum never makes a separate pass; tiles of (batch, positions) split over
// num_threads, with results that do not depend on the thread count.  out may equal x or z (exactly) but must not
// otherwise overlap them.  Throws std::invalid_argument for null x / out (unless B H L = 0), B < 0, H < 1, L < 0,
// eps < 0 or num_threads < 1, before anything is written.
void residual_layer_norm_f32(const float* x, const float* z, float* out, int64_t B, int64_t H, int64_t L,
                             const float* weight, const float* bias, float eps, int num_threads);

// out[c, l] = x[c, l] * scale[c] + shift[c] (an eval-mode BatchNorm folded); out may equal x.
void channel_affine_f32(const float* x, float* out, int64_t H, int64_t L, const float* scale, const float* shift);

// out[c, l] = bias[c] + sum_k W[c, k] u[l, k] for u {L, C} (a position-major input), W {H, C}; ut: {C, L} scratch.
void linear_encode_f32(const float* u, const float* W, const float* bias, int64_t H, int64_t L, int64_t C, float* out,
                       float* ut);

// out[c] = sum_l x[c, l] mask[l] / max(sum_l mask[l], 1), or the plain mean over L when mask is null.
void masked_mean_f32(const float* x, int64_t H, int64_t L, const float* mask, float* out);

// The SIMD path of the functions above on this CPU (cpu_features' names).
const char* block_ops_isa();

}  // namespace s4op::cpu
