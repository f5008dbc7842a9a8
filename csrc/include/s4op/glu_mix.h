// The output mixing of an S4/S4D layer with its GLU, and the residual add of the block around it, as one
// pass over the activations (float32):
//
//   a[b, o, l] = bias[o]     + sum_k W[o, k]     y[b, k, l]
//   g[b, o, l] = bias[o + H] + sum_k W[o + H, k] y[b, k, l]          o < H, W {2H, K}, y {B, K, L}
//   out[b, o, l] = (accumulate ? out[b, o, l] : 0) + a * sigmoid(g)
//
// i.e. GLU(Conv1d(K, 2H, 1)(y)) over channels (the reference S4D block; S4's Linear(H, 2H) + GLU is the same
// map), added into out (the residual stream) when accumulate is set.  The weights are packed once
// (glu_mix_pack) into blocks of four output channels with their gate rows, so the inner loop broadcasts
// consecutive weights; the kernel keeps a column panel of y in cache while every row block passes over it,
// then applies GLU (an exp without library calls, vectorized) and the add while the block is in registers'
// reach.  No heap allocation: the scratch is on the stack.  Threads split (batch, column panel) pairs;
// results do not depend on the thread count.  SIMD: AVX-512 / AVX2 + FMA / the portable path, chosen once at
// run time (glu_mix_isa()).
#pragma once

#include <cstdint>

namespace s4op::cpu {

// Floats glu_mix_pack writes for H output channels over K inputs: 2 * ceil(H / 4) * 4 * (K + 1).
int64_t glu_mix_packed_size(int64_t H, int64_t K);

// Packs W {2H, K} and bias {2H} (row-major) into packed {glu_mix_packed_size(H, K)}.  Throws
// std::invalid_argument for null pointers or H < 1, K < 1.
void glu_mix_pack(const float* W, const float* bias, int64_t H, int64_t K, float* packed);

// out {B, H, L} (+)= GLU mixing of y {B, K, L} with the packed weights.  out must not overlap y or packed.
// Throws std::invalid_argument for null pointers (unless B L = 0), B < 0, H < 1, K < 1, L < 0 or
// num_threads < 1, before anything is written.
void glu_mix_f32(const float* packed, const float* y, int64_t B, int64_t H, int64_t K, int64_t L, float* out,
                 bool accumulate, int num_threads);

// The SIMD path glu_mix_f32 uses on this CPU ("avx512", "avx2+fma", "scalar"; "generic" in the generic build).
const char* glu_mix_isa();

}  // namespace s4op::cpu
