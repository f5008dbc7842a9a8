#include "s4op/sparse_fftconv.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "s4op/fft.h"
#include "s4op/parallel.h"
#include "simd.h"

namespace s4op::cpu {
namespace {

// The message is built only when the check fails (a string per check on every call was measurable at the
// runtime's small sizes).
template <class Msg>
void check(bool ok, Msg&& msg) {
  if (!ok) throw std::invalid_argument("sparse_fftconv: " + std::string(msg()));
}

template <typename T>
void validate(const T* u, const std::complex<T>* k_f, const T* D, const int64_t* active, int64_t B, int64_t H,
              int64_t L, int64_t A, int64_t n_fft, const T* y, int64_t ys, bool fills_extra) {
  check(B >= 0 && H >= 1 && L >= 1, [&] { return "need B >= 0, H >= 1, L >= 1, got B=" + std::to_string(B) + " H=" +
                                         std::to_string(H) + " L=" + std::to_string(L); });
  check(A >= 0 && A <= H, [&] { return "number of active channels A=" + std::to_string(A) + " must be in [0, H=" +
                              std::to_string(H) + "]"; });
  check(n_fft >= 2 * L - 1, [&] {
    return "n_fft=" + std::to_string(n_fft) + " is too short for a linear convolution of L=" + std::to_string(L) +
           " (need >= 2L - 1)";
  });
  check(next_fast_size(n_fft) == n_fft,
        [&] { return "n_fft=" + std::to_string(n_fft) + " is not of the form 2^a 3^b 5^c"; });
  const int64_t n = B * H * L;
  check(n == 0 || (u != nullptr && y != nullptr), [&] { return "u and y must not be null"; });
  check(A == 0 || (k_f != nullptr && D != nullptr && active != nullptr),
        [&] { return "k_f, D and active must not be null"; });
  // The rows are read and written concurrently: in-place or partially overlapping buffers are refused.
  check(ys >= H * L, [&] {
    return "y_batch_stride=" + std::to_string(ys) + " is smaller than H * L=" + std::to_string(H * L);
  });
  const int64_t n_y = B > 0 ? (B - 1) * ys + (fills_extra ? ys : H * L) : 0;  // extent of what is written
  check(n == 0 || y + n_y <= u || u + n <= y, [&] { return "y must not overlap u"; });
  for (int64_t j = 0; j < A; ++j) {
    check(active[j] >= 0 && active[j] < H, [&] { return "active[" + std::to_string(j) + "]=" + std::to_string(active[j]) +
                                               " is out of range [0, " + std::to_string(H) + ")"; });
    check(j == 0 || active[j] > active[j - 1], [&] { return "active must be strictly increasing (sorted, no duplicates); "
                                               "active[" + std::to_string(j) + "]=" + std::to_string(active[j]) +
                                               " follows " + std::to_string(j ? active[j - 1] : 0); });
  }
}

// X *= k elementwise.  Written out because std::complex's operator* must honour C99 Annex G infinities
// (a library call per element unless -ffast-math); the spectra here are finite or already NaN.
template <typename T>
void complex_multiply(std::complex<T>* X /*{F}*/, const std::complex<T>* k /*{F}*/, int64_t F) {
  T* x = reinterpret_cast<T*>(X);
  const T* kk = reinterpret_cast<const T*>(k);
  for (int64_t f = 0; f < F; ++f) {
    const T xr = x[2 * f], xi = x[2 * f + 1], kr = kk[2 * f], ki = kk[2 * f + 1];
    x[2 * f] = xr * kr - xi * ki;
    x[2 * f + 1] = xr * ki + xi * kr;
  }
}

// The two elementwise steps of an active row, compiled once per SIMD path for float (the row loop itself is
// a lambda, compiled for the baseline); double keeps the baseline loops.
S4OP_INLINE void row_product_skip_body(float* X, const float* k, int64_t F, float* out, const float* x, float d,
                                       int64_t L, bool product) {
  if (product) {
    for (int64_t f = 0; f < F; ++f) {
      const float xr = X[2 * f], xi = X[2 * f + 1], kr = k[2 * f], ki = k[2 * f + 1];
      X[2 * f] = xr * kr - xi * ki;
      X[2 * f + 1] = xr * ki + xi * kr;
    }
  } else {
    for (int64_t l = 0; l < L; ++l) out[l] += d * x[l];
  }
}
using RowFn = void (*)(float*, const float*, int64_t, float*, const float*, float, int64_t, bool);
void row_scalar(float* X, const float* k, int64_t F, float* o, const float* x, float d, int64_t L, bool p) {
  row_product_skip_body(X, k, F, o, x, d, L, p);
}
#if S4OP_SIMD_X86
S4OP_TARGET_AVX2 void row_avx2(float* X, const float* k, int64_t F, float* o, const float* x, float d, int64_t L,
                               bool p) {
  row_product_skip_body(X, k, F, o, x, d, L, p);
}
S4OP_TARGET_AVX512 void row_avx512(float* X, const float* k, int64_t F, float* o, const float* x, float d, int64_t L,
                                   bool p) {
  row_product_skip_body(X, k, F, o, x, d, L, p);
}
#endif
RowFn row_fn() {
  static const RowFn fn = [] {
    switch (simd::widest_supported({SimdPath::kAVX2, SimdPath::kAVX512})) {
#if S4OP_SIMD_X86
      case SimdPath::kAVX512:
        return &row_avx512;
      case SimdPath::kAVX2:
        return &row_avx2;
#endif
      default:
        return &row_scalar;
    }
  }();
  return fn;
}
void product(std::complex<float>* X, const std::complex<float>* k, int64_t F) {
  row_fn()(reinterpret_cast<float*>(X), reinterpret_cast<const float*>(k), F, nullptr, nullptr, 0.f, 0, true);
}
void product(std::complex<double>* X, const std::complex<double>* k, int64_t F) { complex_multiply(X, k, F); }
void skip(float* out, const float* x, float d, int64_t L) { row_fn()(nullptr, nullptr, 0, out, x, d, L, false); }
void skip(double* out, const double* x, double d, int64_t L) {
  for (int64_t l = 0; l < L; ++l) out[l] += d * x[l];
}

void gelu(const float* x, float* y, int64_t n) { gelu_f32(x, y, n); }
void gelu(const double* x, double* y, int64_t n) { gelu_f64(x, y, n); }

constexpr int64_t kAlign = 64;
int64_t aligned(int64_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

// The scratch layout: the pruned rows' list {H} int64, then per thread its spectrum {F} complex and FFT work.
int64_t scratch_layout(int64_t H, int64_t F, int64_t work, int threads, int element_size, int64_t* per_thread) {
  *per_thread = aligned(2 * F * element_size) + aligned(work * element_size);
  return aligned(H * static_cast<int64_t>(sizeof(int64_t))) + threads * *per_thread + kAlign;
}

template <typename T>
void sparse_fftconv_impl(const T* u, const std::complex<T>* k_f, const T* D, const int64_t* active, int64_t B,
                         int64_t H, int64_t L, int64_t A, int64_t n_fft, T* y, int num_threads, Epilogue epilogue,
                         int64_t ys, const T* extra_value, void* scratch, int64_t scratch_bytes) {
  if (ys == 0) ys = H * L;
  validate(u, k_f, D, active, B, H, L, A, n_fft, y, ys, extra_value != nullptr);
  if (B == 0) return;
  const int64_t F = n_fft / 2 + 1;
  std::shared_ptr<const RealFFT<T>> plan;
  if (B * A > 0) plan = get_real_fft<T>(n_fft);
  // With enough caller scratch nothing below allocates; otherwise the call owns its buffers.
  int64_t per_thread = 0;
  const int64_t need =
      scratch_layout(H, F, plan ? plan->work_size() : 0, std::max(num_threads, 1), sizeof(T), &per_thread);
  std::vector<char> owned;
  if (scratch == nullptr || scratch_bytes < need) {
    owned.resize(static_cast<size_t>(need));
    scratch = owned.data();
  }
  char* base = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(scratch) + kAlign - 1) / kAlign * kAlign);
  char* thread_base = base + aligned(H * static_cast<int64_t>(sizeof(int64_t)));
  // Pruned rows (identity) are a copy each; list them once so threads can split both kinds of work.
  int64_t* pruned = reinterpret_cast<int64_t*>(base);
  int64_t P = 0;
  for (int64_t h = 0, j = 0; h < H; ++h) {
    if (j < A && active[j] == h) {
      ++j;
    } else {
      pruned[P++] = h;
    }
  }
  const int64_t n_active = B * A, n_pruned = B * P;
  // The extra elements [H L, ys) of each batch, filled with *extra_value: B * E elements in all.
  const int64_t E = extra_value ? ys - H * L : 0, n_extra = B * E;
  const T extra = extra_value ? *extra_value : T(0);
  // Rows of L to share out (the extra elements counted as rows too).
  const int64_t rows = n_active + n_pruned + (E > 0 ? B * ((E + L - 1) / L) : 0);
  const int T_ = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(num_threads, rows)));

  // One chunk per thread; each takes its share of the active rows, of the copies and of the extra
  // elements.  The arithmetic of a row does not depend on which thread runs it, so results are
  // identical for any thread count.
  parallel_for(T_, T_, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      for (int64_t i = n_pruned * t / T_; i < n_pruned * (t + 1) / T_; ++i) {
        const int64_t b = i / P, h = pruned[i % P];
        if (epilogue == Epilogue::gelu) {
          gelu(u + (b * H + h) * L, y + b * ys + h * L, L);
        } else {
          std::memcpy(y + b * ys + h * L, u + (b * H + h) * L, sizeof(T) * static_cast<size_t>(L));
        }
      }
      // This thread's share [e, e1) of the B * E extra elements: one run per batch it touches.
      for (int64_t e = n_extra * t / T_, e1 = n_extra * (t + 1) / T_; e < e1;) {
        const int64_t b = e / E, off = e % E, len = std::min(E - off, e1 - e);
        T* dst = y + b * ys + H * L + off;  // {len}
        std::fill(dst, dst + len, extra);
        e += len;
      }
      const int64_t a0 = n_active * t / T_, a1 = n_active * (t + 1) / T_;
      if (a0 == a1) continue;
      char* mine = thread_base + t * per_thread;
      std::complex<T>* X = reinterpret_cast<std::complex<T>*>(mine);  // {F}
      T* work = reinterpret_cast<T*>(mine + aligned(2 * F * static_cast<int64_t>(sizeof(T))));
      for (int64_t i = a0; i < a1; ++i) {
        const int64_t b = i / A, j = i % A, h = active[j];
        const T* x = u + (b * H + h) * L;  // {L}
        T* out = y + b * ys + h * L;       // {L}
        const std::complex<T>* kj = k_f + j * F;  // {F}
        plan->forward(x, L, X, work);
        product(X, kj, F);
        plan->inverse(X, out, L, work);
        const T d = D[j];
        skip(out, x, d, L);
        if (epilogue == Epilogue::gelu) gelu(out, out, L);  // while the row is still in cache
      }
    }
  });
}

}  // namespace

int64_t sparse_fftconv_scratch_bytes(int64_t H, int64_t n_fft, int num_threads, int element_size) {
  check(H >= 1 && n_fft >= 1 && num_threads >= 1 && (element_size == 4 || element_size == 8),
        [&] { return std::string("sparse_fftconv_scratch_bytes: bad arguments"); });
  const int64_t work = element_size == 4 ? get_real_fft<float>(n_fft)->work_size()
                                         : get_real_fft<double>(n_fft)->work_size();
  int64_t per_thread = 0;
  return scratch_layout(H, n_fft / 2 + 1, work, num_threads, element_size, &per_thread);
}

void sparse_fftconv_f32(const float* u, const std::complex<float>* k_f, const float* D, const int64_t* active,
                        int64_t B, int64_t H, int64_t L, int64_t A, int64_t n_fft, float* y, int num_threads,
                        Epilogue epilogue, int64_t y_batch_stride, const float* extra_value, void* scratch,
                        int64_t scratch_bytes) {
  sparse_fftconv_impl(u, k_f, D, active, B, H, L, A, n_fft, y, num_threads, epilogue, y_batch_stride, extra_value,
                      scratch, scratch_bytes);
}

void sparse_fftconv_f64(const double* u, const std::complex<double>* k_f, const double* D, const int64_t* active,
                        int64_t B, int64_t H, int64_t L, int64_t A, int64_t n_fft, double* y, int num_threads,
                        Epilogue epilogue, int64_t y_batch_stride, const double* extra_value, void* scratch,
                        int64_t scratch_bytes) {
  sparse_fftconv_impl(u, k_f, D, active, B, H, L, A, n_fft, y, num_threads, epilogue, y_batch_stride, extra_value,
                      scratch, scratch_bytes);
}

// GELU(x) = x Phi(x), Phi(x) = erfc(-x / sqrt 2) / 2.  With z = |x| / sqrt 2:
//  - z < 1/2: erf(z) from its Taylor series (terms through z^13, truncation < 2e-9);
//  - z >= 1/2: erfc(z) = (1 + a1 z + ... + a6 z^6)^-16, Abramowitz & Stegun, Handbook of Mathematical
//    Functions, eq. 7.1.28 (|error| <= 3e-7);
// then Phi = 1 - erfc(z)/2 for x >= 0 and erfc(z)/2 for x < 0, so the negative tail never cancels.
// No library calls and no branches: the compiler vectorizes the loop, and the loop is compiled into one
// entry point per SIMD path (AVX-512, AVX2 + FMA, the baseline), the widest the CPU runs chosen once.
namespace {

S4OP_INLINE void gelu_f32_body(const float* x /*{n}*/, float* y /*{n}*/, int64_t n) {
  constexpr float a1 = 0.0705230784f, a2 = 0.0422820123f, a3 = 0.0092705272f, a4 = 0.0001520143f,
                  a5 = 0.0002765672f, a6 = 0.0000430638f;
  constexpr float two_over_sqrt_pi = 1.12837916709551257f, inv_sqrt2 = 0.70710678118654752f;
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    const float z = std::fabs(v) * inv_sqrt2;
    const float z2 = z * z;
    const float erf_small =
        two_over_sqrt_pi * z *
        (1.f + z2 * (-1.f / 3 + z2 * (1.f / 10 + z2 * (-1.f / 42 + z2 * (1.f / 216 + z2 * (-1.f / 1320 +
                                                                                          z2 * (1.f / 9360)))))));
    float t = 1.f + z * (a1 + z * (a2 + z * (a3 + z * (a4 + z * (a5 + z * a6)))));
    t = t * t;
    t = t * t;
    t = t * t;
    t = t * t;
    const float erfc_z = z < 0.5f ? 1.f - erf_small : 1.f / t;
    const float phi = v >= 0.f ? 1.f - 0.5f * erfc_z : 0.5f * erfc_z;
    y[i] = v * phi;  // NaN stays NaN (z, t and so phi are NaN for it; every comparison above is false)
  }
}

void gelu_f32_scalar(const float* x, float* y, int64_t n) { gelu_f32_body(x, y, n); }
#if S4OP_SIMD_X86
S4OP_TARGET_AVX2 void gelu_f32_avx2(const float* x, float* y, int64_t n) { gelu_f32_body(x, y, n); }
S4OP_TARGET_AVX512 void gelu_f32_avx512(const float* x, float* y, int64_t n) { gelu_f32_body(x, y, n); }
#endif

SimdPath gelu_f32_path() {
  static const SimdPath path = simd::widest_supported({SimdPath::kAVX2, SimdPath::kAVX512});
  return path;
}

using GeluFn = void (*)(const float*, float*, int64_t);
GeluFn gelu_f32_fn() {
  static const GeluFn fn = [] {
    switch (gelu_f32_path()) {
#if S4OP_SIMD_X86
      case SimdPath::kAVX512:
        return &gelu_f32_avx512;
      case SimdPath::kAVX2:
        return &gelu_f32_avx2;
#endif
      default:
        return &gelu_f32_scalar;
    }
  }();
  return fn;
}

}  // namespace

void gelu_f32(const float* x, float* y, int64_t n) { gelu_f32_fn()(x, y, n); }

const char* gelu_f32_isa() { return simd_path_name(gelu_f32_path()); }

void gelu_f64(const double* x, double* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = 0.5 * x[i] * std::erfc(-x[i] * 0.70710678118654752440);
}

}  // namespace s4op::cpu
