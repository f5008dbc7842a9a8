#include "s4op/block_ops.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "s4op/parallel.h"

#include "simd.h"

namespace s4op::cpu {
namespace {

// The bodies: plain loops over L (contiguous), vectorized by the compiler inside each entry point.
// One tile of residual_layer_norm_f32: positions [l0, l0 + n) of one batch element, rows of stride L.
constexpr int64_t kNormTile = 512;  // positions per tile: H x 512 floats stay in L2 for H up to a few hundred

S4OP_INLINE void residual_norm_body(const float* x, const float* z, float* out, int64_t H, int64_t L, int64_t n,
                                    const float* w, const float* b, float eps) {
  float mean[kNormTile], var[kNormTile];
  for (int64_t l = 0; l < n; ++l) mean[l] = var[l] = 0.f;
  for (int64_t c = 0; c < H; ++c) {
    const float* xc = x + c * L;
    float* oc = out + c * L;
    if (z != nullptr) {
      const float* zc = z + c * L;
      for (int64_t l = 0; l < n; ++l) {
        const float s = xc[l] + zc[l];
        oc[l] = s;
        mean[l] += s;
      }
    } else {
      for (int64_t l = 0; l < n; ++l) mean[l] += xc[l];
    }
  }
  const float* src = z != nullptr ? out : x;  // the sum, or x itself
  const float inv_h = 1.f / static_cast<float>(H);
  for (int64_t l = 0; l < n; ++l) mean[l] *= inv_h;
  for (int64_t c = 0; c < H; ++c) {
    const float* sc = src + c * L;
    for (int64_t l = 0; l < n; ++l) {
      const float d = sc[l] - mean[l];
      var[l] += d * d;
    }
  }
  for (int64_t l = 0; l < n; ++l) var[l] = 1.f / std::sqrt(var[l] * inv_h + eps);
  for (int64_t c = 0; c < H; ++c) {
    const float* sc = src + c * L;
    float* oc = out + c * L;
    const float wc = w != nullptr ? w[c] : 1.f, bc = b != nullptr ? b[c] : 0.f;
    for (int64_t l = 0; l < n; ++l) oc[l] = (sc[l] - mean[l]) * var[l] * wc + bc;
  }
}

S4OP_INLINE void affine_body(const float* x, float* out, int64_t H, int64_t L, const float* s, const float* t) {
  for (int64_t c = 0; c < H; ++c) {
    const float sc = s[c], tc = t[c];
    for (int64_t l = 0; l < L; ++l) out[c * L + l] = x[c * L + l] * sc + tc;
  }
}

S4OP_INLINE void encode_body(const float* u, const float* W, const float* bias, int64_t H, int64_t L, int64_t C,
                             float* out, float* ut) {
  for (int64_t l = 0; l < L; ++l)
    for (int64_t k = 0; k < C; ++k) ut[k * L + l] = u[l * C + k];
  for (int64_t c = 0; c < H; ++c) {
    float* oc = out + c * L;
    const float bc = bias[c];
    for (int64_t l = 0; l < L; ++l) oc[l] = bc;
    for (int64_t k = 0; k < C; ++k) {
      const float w = W[c * C + k];
      const float* uk = ut + k * L;
      for (int64_t l = 0; l < L; ++l) oc[l] += w * uk[l];
    }
  }
}

S4OP_INLINE void mean_body(const float* x, int64_t H, int64_t L, const float* mask, float* out) {
  float count = static_cast<float>(L);
  if (mask != nullptr) {
    count = 0.f;
    for (int64_t l = 0; l < L; ++l) count += mask[l];
  }
  const float inv = 1.f / std::max(count, 1.f);
  // 16 partial sums, so the loop vectorizes without reassociating a single sum (no fast-math needed).
  constexpr int64_t kParts = 16;
  for (int64_t c = 0; c < H; ++c) {
    const float* xc = x + c * L;
    float part[kParts] = {};
    int64_t l = 0;
    if (mask != nullptr) {
      for (; l + kParts <= L; l += kParts)
        for (int64_t j = 0; j < kParts; ++j) part[j] += xc[l + j] * mask[l + j];
      for (; l < L; ++l) part[0] += xc[l] * mask[l];
    } else {
      for (; l + kParts <= L; l += kParts)
        for (int64_t j = 0; j < kParts; ++j) part[j] += xc[l + j];
      for (; l < L; ++l) part[0] += xc[l];
    }
    float acc = 0.f;
    for (int64_t j = 0; j < kParts; ++j) acc += part[j];
    out[c] = acc * inv;
  }
}

struct Ops {
  void (*affine)(const float*, float*, int64_t, int64_t, const float*, const float*);
  void (*encode)(const float*, const float*, const float*, int64_t, int64_t, int64_t, float*, float*);
  void (*mean)(const float*, int64_t, int64_t, const float*, float*);
  void (*residual_norm)(const float*, const float*, float*, int64_t, int64_t, int64_t, const float*, const float*,
                        float);
};

#define S4OP_BLOCK_OPS(SUFFIX, TARGET)                                                                              \
  TARGET void affine_##SUFFIX(const float* x, float* o, int64_t H, int64_t L, const float* s, const float* t) {     \
    affine_body(x, o, H, L, s, t);                                                                                  \
  }                                                                                                                 \
  TARGET void encode_##SUFFIX(const float* u, const float* W, const float* b, int64_t H, int64_t L, int64_t C,      \
                              float* o, float* ut) {                                                                \
    encode_body(u, W, b, H, L, C, o, ut);                                                                           \
  }                                                                                                                 \
  TARGET void mean_##SUFFIX(const float* x, int64_t H, int64_t L, const float* m, float* o) {                       \
    mean_body(x, H, L, m, o);                                                                                       \
  }                                                                                                                 \
  TARGET void residual_norm_##SUFFIX(const float* x, const float* z, float* o, int64_t H, int64_t L, int64_t n,     \
                                     const float* w, const float* b, float e) {                                     \
    residual_norm_body(x, z, o, H, L, n, w, b, e);                                                                  \
  }

S4OP_BLOCK_OPS(scalar, )
#if S4OP_SIMD_X86
S4OP_BLOCK_OPS(avx2, S4OP_TARGET_AVX2)
S4OP_BLOCK_OPS(avx512, S4OP_TARGET_AVX512)
#endif
#undef S4OP_BLOCK_OPS

SimdPath ops_path() {
  static const SimdPath path = simd::widest_supported({SimdPath::kAVX2, SimdPath::kAVX512});
  return path;
}

const Ops& ops() {
  static const Ops table = [] {
    switch (ops_path()) {
#if S4OP_SIMD_X86
      case SimdPath::kAVX512:
        return Ops{&affine_avx512, &encode_avx512, &mean_avx512, &residual_norm_avx512};
      case SimdPath::kAVX2:
        return Ops{&affine_avx2, &encode_avx2, &mean_avx2, &residual_norm_avx2};
#endif
      default:
        return Ops{&affine_scalar, &encode_scalar, &mean_scalar, &residual_norm_scalar};
    }
  }();
  return table;
}

}  // namespace

void channel_layer_norm_f32(const float* x, float* out, int64_t H, int64_t L, const float* weight, const float* bias,
                            float eps) {
  residual_layer_norm_f32(x, nullptr, out, 1, H, L, weight, bias, eps, 1);
}

void channel_affine_f32(const float* x, float* out, int64_t H, int64_t L, const float* scale, const float* shift) {
  ops().affine(x, out, H, L, scale, shift);
}

void linear_encode_f32(const float* u, const float* W, const float* bias, int64_t H, int64_t L, int64_t C, float* out,
                       float* ut) {
  ops().encode(u, W, bias, H, L, C, out, ut);
}

void masked_mean_f32(const float* x, int64_t H, int64_t L, const float* mask, float* out) {
  ops().mean(x, H, L, mask, out);
}

void residual_layer_norm_f32(const float* x, const float* z, float* out, int64_t B, int64_t H, int64_t L,
                             const float* weight, const float* bias, float eps, int num_threads) {
  if (B < 0 || H < 1 || L < 0) {
    throw std::invalid_argument("residual_layer_norm_f32: expected B >= 0, H >= 1, L >= 0, got B=" +
                                std::to_string(B) + " H=" + std::to_string(H) + " L=" + std::to_string(L));
  }
  if (!(eps >= 0.f)) throw std::invalid_argument("residual_layer_norm_f32: eps must be >= 0");
  if (num_threads < 1) throw std::invalid_argument("residual_layer_norm_f32: num_threads must be >= 1");
  if (B * L == 0) return;
  if (x == nullptr || out == nullptr) throw std::invalid_argument("residual_layer_norm_f32: null x or out");
  const int64_t tiles = (L + kNormTile - 1) / kNormTile;
  const auto fn = ops().residual_norm;
  parallel_for(B * tiles, num_threads, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / tiles, l0 = (t % tiles) * kNormTile, at = b * H * L + l0;
      fn(x + at, z != nullptr ? z + at : nullptr, out + at, H, L, std::min(kNormTile, L - l0), weight, bias, eps);
    }
  });
}

const char* block_ops_isa() { return simd_path_name(ops_path()); }

}  // namespace s4op::cpu
