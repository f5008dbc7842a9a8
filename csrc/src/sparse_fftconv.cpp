#include "s4op/sparse_fftconv.h"

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "s4op/fft.h"
#include "s4op/parallel.h"

namespace s4op::cpu {
namespace {

void check(bool ok, const std::string& msg) {
  if (!ok) throw std::invalid_argument("sparse_fftconv: " + msg);
}

template <typename T>
void validate(const T* u, const std::complex<T>* k_f, const T* D, const int64_t* active, int64_t B, int64_t H,
              int64_t L, int64_t A, int64_t n_fft, const T* y, int64_t ys) {
  check(B >= 0 && H >= 1 && L >= 1, "need B >= 0, H >= 1, L >= 1, got B=" + std::to_string(B) + " H=" +
                                         std::to_string(H) + " L=" + std::to_string(L));
  check(A >= 0 && A <= H, "number of active channels A=" + std::to_string(A) + " must be in [0, H=" +
                              std::to_string(H) + "]");
  check(n_fft >= 2 * L - 1, "n_fft=" + std::to_string(n_fft) + " is too short for a linear convolution of L=" +
                                std::to_string(L) + " (need >= 2L - 1)");
  check(next_fast_size(n_fft) == n_fft, "n_fft=" + std::to_string(n_fft) + " is not of the form 2^a 3^b 5^c");
  const int64_t n = B * H * L;
  check(n == 0 || (u != nullptr && y != nullptr), "u and y must not be null");
  check(A == 0 || (k_f != nullptr && D != nullptr && active != nullptr), "k_f, D and active must not be null");
  // The rows are read and written concurrently: in-place or partially overlapping buffers are refused.
  check(ys >= H * L, "y_batch_stride=" + std::to_string(ys) + " is smaller than H * L=" + std::to_string(H * L));
  const int64_t n_y = B > 0 ? (B - 1) * ys + H * L : 0;  // extent of y
  check(n == 0 || y + n_y <= u || u + n <= y, "y must not overlap u");
  for (int64_t j = 0; j < A; ++j) {
    check(active[j] >= 0 && active[j] < H, "active[" + std::to_string(j) + "]=" + std::to_string(active[j]) +
                                               " is out of range [0, " + std::to_string(H) + ")");
    check(j == 0 || active[j] > active[j - 1], "active must be strictly increasing (sorted, no duplicates); "
                                               "active[" + std::to_string(j) + "]=" + std::to_string(active[j]) +
                                               " follows " + std::to_string(j ? active[j - 1] : 0));
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

void gelu(const float* x, float* y, int64_t n) { gelu_f32(x, y, n); }
void gelu(const double* x, double* y, int64_t n) { gelu_f64(x, y, n); }

template <typename T>
void sparse_fftconv_impl(const T* u, const std::complex<T>* k_f, const T* D, const int64_t* active, int64_t B,
                         int64_t H, int64_t L, int64_t A, int64_t n_fft, T* y, int num_threads, Epilogue epilogue,
                         bool write_pruned, int64_t ys) {
  if (ys == 0) ys = H * L;
  validate(u, k_f, D, active, B, H, L, A, n_fft, y, ys);
  if (B == 0) return;
  const int64_t F = n_fft / 2 + 1;
  // Pruned rows (identity) are a copy each; list them once so threads can split both kinds of work.
  std::vector<int64_t> pruned;
  pruned.reserve(static_cast<size_t>(H - A));
  for (int64_t h = 0, j = 0; h < H; ++h) {
    if (j < A && active[j] == h) {
      ++j;
    } else {
      pruned.push_back(h);
    }
  }
  if (!write_pruned) pruned.clear();
  const int64_t P = static_cast<int64_t>(pruned.size());
  const int64_t n_active = B * A, n_pruned = B * P;
  std::shared_ptr<const RealFFT<T>> plan;
  if (n_active > 0) plan = get_real_fft<T>(n_fft);
  const int T_ = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(num_threads, n_active + n_pruned)));

  // One chunk per thread; each takes its share of the active rows and of the copies.  The arithmetic of a
  // row does not depend on which thread runs it, so results are identical for any thread count.
  parallel_for(T_, T_, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      for (int64_t i = n_pruned * t / T_; i < n_pruned * (t + 1) / T_; ++i) {
        const int64_t b = i / P, h = pruned[static_cast<size_t>(i % P)];
        if (epilogue == Epilogue::gelu) {
          gelu(u + (b * H + h) * L, y + b * ys + h * L, L);
        } else {
          std::memcpy(y + b * ys + h * L, u + (b * H + h) * L, sizeof(T) * static_cast<size_t>(L));
        }
      }
      const int64_t a0 = n_active * t / T_, a1 = n_active * (t + 1) / T_;
      if (a0 == a1) continue;
      std::vector<std::complex<T>> X(static_cast<size_t>(F));   // {F}
      std::vector<T> work(static_cast<size_t>(plan->work_size()));
      for (int64_t i = a0; i < a1; ++i) {
        const int64_t b = i / A, j = i % A, h = active[j];
        const T* x = u + (b * H + h) * L;  // {L}
        T* out = y + b * ys + h * L;       // {L}
        const std::complex<T>* kj = k_f + j * F;  // {F}
        plan->forward(x, L, X.data(), work.data());
        complex_multiply(X.data(), kj, F);
        plan->inverse(X.data(), out, L, work.data());
        const T d = D[j];
        for (int64_t l = 0; l < L; ++l) out[l] += d * x[l];
        if (epilogue == Epilogue::gelu) gelu(out, out, L);  // while the row is still in cache
      }
    }
  });
}

}  // namespace

void sparse_fftconv_f32(const float* u, const std::complex<float>* k_f, const float* D, const int64_t* active,
                        int64_t B, int64_t H, int64_t L, int64_t A, int64_t n_fft, float* y, int num_threads,
                        Epilogue epilogue, bool write_pruned, int64_t y_batch_stride) {
  sparse_fftconv_impl(u, k_f, D, active, B, H, L, A, n_fft, y, num_threads, epilogue, write_pruned, y_batch_stride);
}

void sparse_fftconv_f64(const double* u, const std::complex<double>* k_f, const double* D, const int64_t* active,
                        int64_t B, int64_t H, int64_t L, int64_t A, int64_t n_fft, double* y, int num_threads,
                        Epilogue epilogue, bool write_pruned, int64_t y_batch_stride) {
  sparse_fftconv_impl(u, k_f, D, active, B, H, L, A, n_fft, y, num_threads, epilogue, write_pruned, y_batch_stride);
}

// GELU(x) = x Phi(x), Phi(x) = erfc(-x / sqrt 2) / 2.  With z = |x| / sqrt 2:
//  - z < 1/2: erf(z) from its Taylor series (terms through z^13, truncation < 2e-9);
//  - z >= 1/2: erfc(z) = (1 + a1 z + ... + a6 z^6)^-16, Abramowitz & Stegun, Handbook of Mathematical
//    Functions, eq. 7.1.28 (|error| <= 3e-7);
// then Phi = 1 - erfc(z)/2 for x >= 0 and erfc(z)/2 for x < 0, so the negative tail never cancels.
// No library calls and no branches: GCC vectorizes the loop, and target_clones builds it for AVX-512,
// AVX2 and baseline, picked at load time.
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && !defined(S4OP_NO_TARGET_CLONES)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
void gelu_f32(const float* x, float* y, int64_t n) {
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
    y[i] = v * phi;  // NaN stays NaN (every comparison above is false for it, phi is finite)
  }
}

void gelu_f64(const double* x, double* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = 0.5 * x[i] * std::erfc(-x[i] * 0.70710678118654752440);
}

}  // namespace s4op::cpu
