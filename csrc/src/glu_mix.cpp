#include "s4op/glu_mix.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "s4op/parallel.h"
#include "simd.h"

namespace s4op::cpu {
namespace {

constexpr int64_t kRows = 4;      // output channels per block (each with its gate row: 8 accumulator rows)
constexpr int64_t kPanel = 256;   // columns of y kept in cache while every row block passes over them

[[noreturn]] void fail(const std::string& what) { throw std::invalid_argument("s4op::cpu::glu_mix: " + what); }

int64_t row_blocks(int64_t H) { return (H + kRows - 1) / kRows; }

// sigmoid(g) * a without library calls or branches, so the loop vectorizes in each entry point:
// exp(-g) = 2^n e^r with n = round(-g log2 e), |r| <= ln 2 / 2, e^r by its Taylor polynomial through r^7
// (relative error < 2e-9 before rounding), 2^n built in the exponent bits; -g is clamped to [-87, 87], where
// sigmoid is 0 or 1 to float precision anyway.  NaN propagates (the clamp keeps NaN: std::min/max with NaN
// first return it).
S4OP_INLINE float glu_scalar(float a, float g) {
  // NaN is taken out before the integer conversion (converting NaN to int is undefined) and put back by the
  // final select; both are blends, so the loop still vectorizes.
  float x = g == g ? -g : 0.f;
  x = x > 87.f ? 87.f : x;
  x = x < -87.f ? -87.f : x;
  constexpr float log2e = 1.44269504088896341f, ln2_hi = 0.693145751953125f, ln2_lo = 1.42860682030941723e-6f;
  constexpr float magic = 12582912.f;  // 1.5 * 2^23: adding it rounds to an integer (ties to even)
  const float n = (x * log2e + magic) - magic;
  const float r = (x - n * ln2_hi) - n * ln2_lo;
  const float p = 1.f + r * (1.f + r * (0.5f + r * (1.f / 6 + r * (1.f / 24 + r * (1.f / 120 + r * (1.f / 720 +
                                                                                               r * (1.f / 5040)))))));
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;  // n in [-126, 126]
  float two_n;
  std::memcpy(&two_n, &bits, sizeof(float));
  const float out = a / (1.f + p * two_n);
  return g == g ? out : g;
}

// The same on a vector of lanes (GNU vector arithmetic; the exponent bits through an int vector of the
// same width), so the epilogue runs on the accumulators while they are in registers.
// (Vectors pass by reference, as in simd.h: a wide vector in a default-target signature changes the ABI.)
template <class VT>
S4OP_INLINE void glu_vec(typename VT::V& out, const typename VT::V& a, const typename VT::V& g) {
  if constexpr (VT::kLanes == 1) {
    out = glu_scalar(a, g);
  } else {
#if S4OP_SIMD_VECTORS  // GNU vector syntax: only in builds with vector paths (the generic build has one lane)
    using V = typename VT::V;
    typedef int32_t IV __attribute__((vector_size(sizeof(V))));
    typedef uint32_t UV __attribute__((vector_size(sizeof(V))));
    constexpr float log2e = 1.44269504088896341f, ln2_hi = 0.693145751953125f, ln2_lo = 1.42860682030941723e-6f;
    constexpr float magic = 12582912.f;
    const auto finite = g == g;  // NaN lanes: computed on 0, then put back below
    V x = finite ? -g : V{};
    x = x > 87.f ? V{} + 87.f : x;
    x = x < -87.f ? V{} - 87.f : x;
    const V n = (x * log2e + magic) - magic;
    const V r = (x - n * ln2_hi) - n * ln2_lo;
    const V p = 1.f + r * (1.f + r * (0.5f + r * (1.f / 6 + r * (1.f / 24 + r * (1.f / 120 + r * (1.f / 720 +
                                                                                           r * (1.f / 5040)))))));
    const IV biased = __builtin_convertvector(n, IV) + 127;  // n in [-126, 126]: in [1, 253]
    UV bits;
    std::memcpy(&bits, &biased, sizeof(V));
    bits <<= 23;  // shifted as unsigned
    V two_n;
    std::memcpy(&two_n, &bits, sizeof(V));
    const V res = a / (1.f + p * two_n);
    out = finite ? res : g;
#endif
  }
}

#if defined(__GNUC__) && !defined(__clang__)
// GCC 12 reports the accumulators as maybe uninitialized when simd.h's broadcast() (v = V{} + 1; v *= s)
// writes them inside the unrolled loop below; every element is written before it is read.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// One tile: kRows output channels (and their gate rows) x NV vectors of columns starting at y; GLU and the
// optional residual add applied to the accumulators in registers, then written to out (rows past `rows` are
// the zero padding of the last block: computed, never written).
template <class VT, int NV>
S4OP_INLINE void tile(const float* S4OP_RESTRICT wp /*{K, 2 kRows}*/, const float* S4OP_RESTRICT bias /*{2 kRows}*/,
                      const float* S4OP_RESTRICT y /*{K, L} at the tile's column*/, int64_t K, int64_t L,
                      float* S4OP_RESTRICT out /*{rows, L} at the tile's row and column*/, int64_t rows,
                      bool accumulate) {
  using V = typename VT::V;
  constexpr int W = VT::kLanes;
  V c[2 * kRows][NV];
  S4OP_UNROLL
  for (int r = 0; r < 2 * kRows; ++r) {
    S4OP_UNROLL
    for (int v = 0; v < NV; ++v) VT::broadcast(c[r][v], bias[r]);
  }
  for (int64_t k = 0; k < K; ++k) {
    V x[NV];
    S4OP_UNROLL
    for (int v = 0; v < NV; ++v) VT::load(x[v], y + k * L + v * W);
    const float* w = wp + k * 2 * kRows;
    S4OP_UNROLL
    for (int r = 0; r < 2 * kRows; ++r) {
      V s;
      VT::broadcast(s, w[r]);
      S4OP_UNROLL
      for (int v = 0; v < NV; ++v) VT::fma(c[r][v], s, x[v]);
    }
  }
  S4OP_UNROLL
  for (int r = 0; r < kRows; ++r) {
    if (r >= rows) break;
    S4OP_UNROLL
    for (int v = 0; v < NV; ++v) {
      V res;
      glu_vec<VT>(res, c[r][v], c[kRows + r][v]);
      float* o = out + r * L + v * W;
      if (accumulate) {
        V prev;
        VT::load(prev, o);
        res = prev + res;
      }
      VT::store(o, res);
    }
  }
}

struct Problem {
  const float* packed;
  const float* y;
  int64_t B, H, K, L;
  float* out;
  bool accumulate;
};

int64_t panels_of(int64_t L) { return (L + kPanel - 1) / kPanel; }

// L = 1: out[b, :] (+)= GLU(W y[b, :] + bias).  The column tile would run one scalar lane per weight; here the
// 2 kRows weights of one input k are contiguous in the packed block, so each k is one 8-lane multiply-add over
// the block's accumulators (the compiler vectorizes the fixed-length r loop in each entry point), and the
// weights stream through once.  Same order of summation per output as the tile (bias, then k = 0, 1, ...).
S4OP_INLINE void matvec(const Problem& p, int64_t b) {
  const int64_t blocks = row_blocks(p.H), K = p.K, H = p.H;
  const int64_t block_floats = 2 * kRows * (K + 1);
  const float* yb = p.y + b * K;
  for (int64_t q = 0; q < blocks; ++q) {
    const float* wp = p.packed + q * block_floats;
    const float* bias = wp + 2 * kRows * K;
    float acc[2 * kRows];
    for (int r = 0; r < 2 * kRows; ++r) acc[r] = bias[r];
    for (int64_t k = 0; k < K; ++k) {
      const float yk = yb[k];
      const float* w = wp + k * 2 * kRows;
      for (int r = 0; r < 2 * kRows; ++r) acc[r] += w[r] * yk;
    }
    const int64_t rows = std::min(kRows, H - q * kRows);
    float* ob = p.out + b * H + q * kRows;
    for (int64_t r = 0; r < rows; ++r) {
      const float v = glu_scalar(acc[r], acc[kRows + r]);
      ob[r] = p.accumulate ? ob[r] + v : v;
    }
  }
}

// Tasks [t0, t1) of the B x panels (batch, column panel) pairs.  Compiled inside each entry point (the
// parallel loop stays outside: a lambda would be compiled for the baseline ISA).
template <class VT, int NV>
S4OP_INLINE void run_tasks(const Problem& p, int64_t t0, int64_t t1) {
  using Scalar = simd::Vec<SimdPath::kScalar, float>;
  constexpr int64_t step = VT::kLanes * NV;
  const int64_t panels = panels_of(p.L), blocks = row_blocks(p.H), K = p.K, L = p.L, H = p.H;
  const int64_t block_floats = 2 * kRows * (K + 1);
  if (L == 1) {  // one position (a streaming step): a matrix-vector product per batch element
    for (int64_t b = t0; b < t1; ++b) matvec(p, b);
    return;
  }
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t b = t / panels, l0 = (t % panels) * kPanel, width = std::min(kPanel, L - l0);
    const float* yb = p.y + b * K * L + l0;
    for (int64_t q = 0; q < blocks; ++q) {
      const float* wp = p.packed + q * block_floats;
      const float* bias = wp + 2 * kRows * K;
      const int64_t rows = std::min(kRows, H - q * kRows);
      float* ob = p.out + (b * H + q * kRows) * L + l0;
      int64_t col = 0;
      for (; col + step <= width; col += step) tile<VT, NV>(wp, bias, yb + col, K, L, ob + col, rows, p.accumulate);
      for (; col < width; ++col) tile<Scalar, 1>(wp, bias, yb + col, K, L, ob + col, rows, p.accumulate);
    }
  }
}

using RunFn = void (*)(const Problem&, int64_t, int64_t);

void run_scalar(const Problem& p, int64_t t0, int64_t t1) {
  run_tasks<simd::Vec<SimdPath::kScalar, float>, 4>(p, t0, t1);
}
#if S4OP_SIMD_X86
S4OP_TARGET_AVX2 void run_avx2(const Problem& p, int64_t t0, int64_t t1) {
  run_tasks<simd::Vec<SimdPath::kAVX2, float>, 1>(p, t0, t1);  // 8 accumulators of the 16 registers
}
S4OP_TARGET_AVX512 void run_avx512(const Problem& p, int64_t t0, int64_t t1) {
  run_tasks<simd::Vec<SimdPath::kAVX512, float>, 2>(p, t0, t1);  // 16 accumulators of the 32 registers
}
#endif

SimdPath glu_mix_path() {
  static const SimdPath path = simd::widest_supported({SimdPath::kAVX2, SimdPath::kAVX512});
  return path;
}

RunFn run_fn() {
  switch (glu_mix_path()) {
#if S4OP_SIMD_X86
    case SimdPath::kAVX512:
      return &run_avx512;
    case SimdPath::kAVX2:
      return &run_avx2;
#endif
    default:
      return &run_scalar;
  }
}

}  // namespace

int64_t glu_mix_packed_size(int64_t H, int64_t K) {
  if (H < 1 || K < 1) fail("need H >= 1 and K >= 1, got H=" + std::to_string(H) + " K=" + std::to_string(K));
  return row_blocks(H) * 2 * kRows * (K + 1);
}

void glu_mix_pack(const float* W, const float* bias, int64_t H, int64_t K, float* packed) {
  const int64_t size = glu_mix_packed_size(H, K);
  if (W == nullptr || bias == nullptr || packed == nullptr) fail("W, bias and packed must not be null");
  std::fill(packed, packed + size, 0.f);  // rows past H in the last block stay zero (computed, never written)
  for (int64_t q = 0; q < row_blocks(H); ++q) {
    float* wp = packed + q * 2 * kRows * (K + 1);
    for (int64_t r = 0; r < kRows && q * kRows + r < H; ++r) {
      const int64_t o = q * kRows + r;
      for (int64_t k = 0; k < K; ++k) {
        wp[k * 2 * kRows + r] = W[o * K + k];
        wp[k * 2 * kRows + kRows + r] = W[(o + H) * K + k];
      }
      wp[2 * kRows * K + r] = bias[o];
      wp[2 * kRows * K + kRows + r] = bias[o + H];
    }
  }
}

void glu_mix_f32(const float* packed, const float* y, int64_t B, int64_t H, int64_t K, int64_t L, float* out,
                 bool accumulate, int num_threads) {
  if (B < 0 || H < 1 || K < 1 || L < 0) {
    fail("need B >= 0, H >= 1, K >= 1, L >= 0, got B=" + std::to_string(B) + " H=" + std::to_string(H) +
         " K=" + std::to_string(K) + " L=" + std::to_string(L));
  }
  if (num_threads < 1) fail("num_threads must be >= 1, got " + std::to_string(num_threads));
  if (B == 0 || L == 0) return;
  if (packed == nullptr || y == nullptr || out == nullptr) fail("packed, y and out must not be null");
  const float* out_end = out + B * H * L;
  if ((out < y + B * K * L && y < out_end) || (out < packed + glu_mix_packed_size(H, K) && packed < out_end)) {
    fail("out must not overlap y or packed");
  }
  const Problem p{packed, y, B, H, K, L, out, accumulate};
  const RunFn fn = run_fn();
  parallel_for(B * panels_of(L), num_threads, [&](int64_t t0, int64_t t1) { fn(p, t0, t1); });
}

const char* glu_mix_isa() { return simd_path_name(glu_mix_path()); }

}  // namespace s4op::cpu
