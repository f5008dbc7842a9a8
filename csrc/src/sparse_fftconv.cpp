#include "s4op/sparse_fftconv.h"

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
              int64_t L, int64_t A, int64_t n_fft, const T* y) {
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
  check(n == 0 || y + n <= u || u + n <= y, "y must not overlap u");
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

template <typename T>
void sparse_fftconv_impl(const T* u, const std::complex<T>* k_f, const T* D, const int64_t* active, int64_t B,
                         int64_t H, int64_t L, int64_t A, int64_t n_fft, T* y, int num_threads) {
  validate(u, k_f, D, active, B, H, L, A, n_fft, y);
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
        std::memcpy(y + (b * H + h) * L, u + (b * H + h) * L, sizeof(T) * static_cast<size_t>(L));
      }
      const int64_t a0 = n_active * t / T_, a1 = n_active * (t + 1) / T_;
      if (a0 == a1) continue;
      std::vector<std::complex<T>> X(static_cast<size_t>(F));   // {F}
      std::vector<T> work(static_cast<size_t>(plan->work_size()));
      for (int64_t i = a0; i < a1; ++i) {
        const int64_t b = i / A, j = i % A, h = active[j];
        const T* x = u + (b * H + h) * L;  // {L}
        T* out = y + (b * H + h) * L;      // {L}
        const std::complex<T>* kj = k_f + j * F;  // {F}
        plan->forward(x, L, X.data(), work.data());
        complex_multiply(X.data(), kj, F);
        plan->inverse(X.data(), out, L, work.data());
        const T d = D[j];
        for (int64_t l = 0; l < L; ++l) out[l] += d * x[l];
      }
    }
  });
}

}  // namespace

void sparse_fftconv_f32(const float* u, const std::complex<float>* k_f, const float* D, const int64_t* active,
                        int64_t B, int64_t H, int64_t L, int64_t A, int64_t n_fft, float* y, int num_threads) {
  sparse_fftconv_impl(u, k_f, D, active, B, H, L, A, n_fft, y, num_threads);
}

void sparse_fftconv_f64(const double* u, const std::complex<double>* k_f, const double* D, const int64_t* active,
                        int64_t B, int64_t H, int64_t L, int64_t A, int64_t n_fft, double* y, int num_threads) {
  sparse_fftconv_impl(u, k_f, D, active, B, H, L, A, n_fft, y, num_threads);
}

}  // namespace s4op::cpu
