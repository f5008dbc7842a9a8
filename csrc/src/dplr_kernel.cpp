// S4 (DPLR, rank 1) kernel spectrum for a list of rows (see dplr_kernel.h for the formula and contract).
//
// Method.  Per row, the per-mode constants (|w|^2, 4 Re w, and alpha_ij = 4 Re v_ij, beta_ij = -2 Re(v_ij conj w)
// for the four sums) are formed once in double.  The bins are processed in blocks of kBlock consecutive k; for
// each block the per-bin angles (c^2, 4 s^2, s c, c, s) come from a table of the length M built once per call,
// and the loop over modes runs an inner loop over the block's bins with eight accumulators per bin, written so
// the compiler vectorizes it across bins.  The cancelling term |w|^2 c^2 - 4 s^2 is formed in double and then
// rounded to T; |den|^2, the reciprocal and the 16 multiply-adds per (mode, bin) run in T.
//
// Work items are (row, block) for the spectrum and rows for the conv variant (which follows with irfft(M),
// truncation to L and rfft(n_fft) on the row's own buffers); an item's arithmetic does not depend on the thread
// that runs it, so results are bitwise independent of num_threads.
#include "s4op/dplr_kernel.h"

#include <algorithm>
#include <cmath>
#include <complex>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "s4op/fft.h"
#include "s4op/parallel.h"
#include "simd.h"

namespace s4op {
namespace cpu {
namespace {

constexpr int64_t kBlock = 64;  // bins per work item / inner loop
constexpr double kPi = 3.14159265358979323846;

struct Angles {  // per bin k = 0 .. M/2, in double
  std::vector<double> c, s, c2, s2x4, sc;
};

Angles make_angles(int64_t M) {
  const int64_t K = M / 2 + 1;
  Angles a;
  a.c.resize(K), a.s.resize(K), a.c2.resize(K), a.s2x4.resize(K), a.sc.resize(K);
  for (int64_t k = 0; k < K; ++k) {
    double c = std::cos(kPi * static_cast<double>(k) / static_cast<double>(M));
    double s = std::sin(kPi * static_cast<double>(k) / static_cast<double>(M));
    if (2 * k == M) c = 0.0;  // exactly the Nyquist bin (cos(pi/2) rounds to 6e-17)
    a.c[k] = c, a.s[k] = s, a.c2[k] = c * c, a.s2x4[k] = 4 * s * s, a.sc[k] = s * c;
  }
  return a;
}

struct Modes {  // per-mode constants of one row, double
  std::vector<double> w2, rew4, alpha, beta;  // alpha, beta: {N2, 4} (sums 00, 01, 10, 11)
};

template <typename T>
void row_modes(const T* log_dt, const T* A_real, const T* A_imag, const T* B, const T* P, const T* C, int64_t N2,
               int64_t h, Modes& m) {
  using cd = std::complex<double>;
  m.w2.resize(N2), m.rew4.resize(N2), m.alpha.resize(4 * N2), m.beta.resize(4 * N2);
  const double dt = std::exp(static_cast<double>(log_dt[h]));
  for (int64_t n = 0; n < N2; ++n) {
    const int64_t i = h * N2 + n;
    const cd w = dt * cd(-std::exp(static_cast<double>(A_real[i])), -static_cast<double>(A_imag[i]));
    const cd b(B[2 * i], B[2 * i + 1]), p(P[2 * i], P[2 * i + 1]), c(C[2 * i], C[2 * i + 1]);
    const cd v[4] = {dt * b * c, dt * b * std::conj(p), dt * p * c, cd(dt * std::norm(p), 0.0)};
    m.w2[n] = std::norm(w);
    m.rew4[n] = 4 * w.real();
    for (int j = 0; j < 4; ++j) {
      m.alpha[4 * n + j] = 4 * v[j].real();
      m.beta[4 * n + j] = -2 * (v[j] * std::conj(w)).real();
    }
  }
}

// kf[k0 .. k0+nk) of one row into out (interleaved re, im).  Plain loops: inlined into one entry point per
// SIMD path (below), where the compiler vectorizes the loop over bins for that path's ISA.
template <typename T>
S4OP_INLINE void spectrum_block_impl(const Modes& m, const Angles& a, int64_t N2, int64_t k0, int64_t nk, T* out) {
  T c[kBlock], s[kBlock], sc[kBlock];
  double c2[kBlock], s2x4[kBlock];
  T acc[8][kBlock];  // (re, im) of R00, R01, R10, R11
  for (int64_t k = 0; k < nk; ++k) {
    c[k] = static_cast<T>(a.c[k0 + k]), s[k] = static_cast<T>(a.s[k0 + k]), sc[k] = static_cast<T>(a.sc[k0 + k]);
    c2[k] = a.c2[k0 + k], s2x4[k] = a.s2x4[k0 + k];
  }
  for (auto& row : acc)
    for (int64_t k = 0; k < kBlock; ++k) row[k] = T(0);
  for (int64_t n = 0; n < N2; ++n) {
    const double w2 = m.w2[n];
    const T rew4 = static_cast<T>(m.rew4[n]);
    const double* al = &m.alpha[4 * n];
    const double* be = &m.beta[4 * n];
    const T a0 = T(al[0]), a1 = T(al[1]), a2 = T(al[2]), a3 = T(al[3]);
    const T b0 = T(be[0]), b1 = T(be[1]), b2 = T(be[2]), b3 = T(be[3]);
    for (int64_t k = 0; k < nk; ++k) {
      const T dre = static_cast<T>(w2 * c2[k] - s2x4[k]);  // the cancelling part, in double
      const T dim = -rew4 * sc[k];
      const T inv = T(1) / (dre * dre + dim * dim);
      const T p = dre * inv, q = -dim * inv;  // 1 / den = p + i q
      const T pc = p * c[k], qc = q * c[k], ps = p * s[k], qs = q * s[k];
      // num = beta c + i alpha s;  num * (p + i q) = (beta pc - alpha qs) + i (beta qc + alpha ps)
      acc[0][k] += b0 * pc - a0 * qs, acc[1][k] += b0 * qc + a0 * ps;
      acc[2][k] += b1 * pc - a1 * qs, acc[3][k] += b1 * qc + a1 * ps;
      acc[4][k] += b2 * pc - a2 * qs, acc[5][k] += b2 * qc + a2 * ps;
      acc[6][k] += b3 * pc - a3 * qs, acc[7][k] += b3 * qc + a3 * ps;
    }
  }
  for (int64_t k = 0; k < nk; ++k) {
    using ct = std::complex<T>;
    const ct R00(acc[0][k], acc[1][k]), R01(acc[2][k], acc[3][k]), R10(acc[4][k], acc[5][k]), R11(acc[6][k], acc[7][k]);
    const T ck = c[k];
    const ct corr = R01 * R10 * ck;
    const ct den = T(1) + ck * R11;
    // complex division written out (std::complex's operator/ honours Annex G infinities: slow, not needed)
    const T dd = den.real() * den.real() + den.imag() * den.imag();
    const ct q((corr.real() * den.real() + corr.imag() * den.imag()) / dd,
               (corr.imag() * den.real() - corr.real() * den.imag()) / dd);
    const ct r = R00 - q;
    // times exp(i phi) = c + i s
    const T co = c[k], si = s[k];
    out[2 * k] = r.real() * co - r.imag() * si;
    out[2 * k + 1] = r.real() * si + r.imag() * co;
  }
}

using cpu::SimdPath;

template <typename T>
void block_scalar(const Modes& m, const Angles& a, int64_t N2, int64_t k0, int64_t nk, T* out) {
  spectrum_block_impl<T>(m, a, N2, k0, nk, out);
}
#if S4OP_SIMD_X86
template <typename T>
S4OP_TARGET_AVX2 void block_avx2(const Modes& m, const Angles& a, int64_t N2, int64_t k0, int64_t nk, T* out) {
  spectrum_block_impl<T>(m, a, N2, k0, nk, out);
}
template <typename T>
S4OP_TARGET_AVX512 void block_avx512(const Modes& m, const Angles& a, int64_t N2, int64_t k0, int64_t nk, T* out) {
  spectrum_block_impl<T>(m, a, N2, k0, nk, out);
}
#endif

SimdPath best_path() {
  static const SimdPath best = simd::widest_supported({SimdPath::kAVX2, SimdPath::kAVX512});
  return best;
}

template <typename T>
using BlockFn = void (*)(const Modes&, const Angles&, int64_t, int64_t, int64_t, T*);

template <typename T>
BlockFn<T> block_fn() {
  switch (best_path()) {
#if S4OP_SIMD_X86
    case SimdPath::kAVX512:
      return &block_avx512<T>;
    case SimdPath::kAVX2:
      return &block_avx2<T>;
#endif
    default:
      return &block_scalar<T>;
  }
}

int64_t checked_mul(int64_t a, int64_t b, const char* what) {
  if (a != 0 && b > std::numeric_limits<int64_t>::max() / a)
    throw std::invalid_argument(std::string("dplr_spectrum: size overflow in ") + what);
  return a * b;
}

template <typename T>
void validate(const T* log_dt, const T* A_real, const T* A_imag, const T* B, const T* P, const T* C, int64_t H,
              int64_t N2, const int64_t* rows, int64_t num_rows, int64_t M, const T* out, int num_threads) {
  if (!log_dt || !A_real || !A_imag || !B || !P || !C || !out || (num_rows > 0 && !rows))
    throw std::invalid_argument("dplr_spectrum: null pointer");
  if (H < 1 || N2 < 1) throw std::invalid_argument("dplr_spectrum: need H >= 1 and N2 >= 1");
  if (M < 1) throw std::invalid_argument("dplr_spectrum: need M >= 1");
  if (num_rows < 0) throw std::invalid_argument("dplr_spectrum: need num_rows >= 0");
  if (num_threads < 1) throw std::invalid_argument("dplr_spectrum: need num_threads >= 1");
  checked_mul(checked_mul(H, N2, "H * N2"), 2, "H * N2 * 2");
  checked_mul(num_rows, M / 2 + 1, "num_rows * bins");
  for (int64_t j = 0; j < num_rows; ++j)
    if (rows[j] < 0 || rows[j] >= H)
      throw std::invalid_argument("dplr_spectrum: row " + std::to_string(rows[j]) + " outside [0, " +
                                  std::to_string(H) + ")");
}

template <typename T>
void spectrum_impl(const T* log_dt, const T* A_real, const T* A_imag, const T* B, const T* P, const T* C, int64_t H,
                   int64_t N2, const int64_t* rows, int64_t num_rows, int64_t M, T* out, int num_threads) {
  validate(log_dt, A_real, A_imag, B, P, C, H, N2, rows, num_rows, M, out, num_threads);
  if (num_rows == 0) return;
  const int64_t K = M / 2 + 1, nb = (K + kBlock - 1) / kBlock;
  const Angles angles = make_angles(M);
  const BlockFn<T> block = block_fn<T>();
  parallel_for(checked_mul(num_rows, nb, "items"), num_threads, [&](int64_t begin, int64_t end) {
    Modes m;
    int64_t have = -1;
    for (int64_t item = begin; item < end; ++item) {
      const int64_t j = item / nb, b = item % nb;
      if (j != have) row_modes(log_dt, A_real, A_imag, B, P, C, N2, rows[j], m), have = j;
      const int64_t k0 = b * kBlock, nk = std::min(kBlock, K - k0);
      block(m, angles, N2, k0, nk, out + 2 * (j * K + k0));
    }
  });
}

template <typename T>
void conv_spectrum_impl(const T* log_dt, const T* A_real, const T* A_imag, const T* B, const T* P, const T* C,
                        int64_t H, int64_t N2, const int64_t* rows, int64_t num_rows, int64_t M, int64_t L,
                        int64_t n_fft, T* out, int num_threads) {
  validate(log_dt, A_real, A_imag, B, P, C, H, N2, rows, num_rows, M, out, num_threads);
  if (L < 1 || L > M || n_fft < L)
    throw std::invalid_argument("dplr_conv_spectrum: need 1 <= L <= M and n_fft >= L");
  if (!is_fast_size(M) || !is_fast_size(n_fft))
    throw std::invalid_argument("dplr_conv_spectrum: M and n_fft must be 2^a 3^b 5^c");
  if (num_rows == 0) return;
  const int64_t K = M / 2 + 1, nb = (K + kBlock - 1) / kBlock, F = n_fft / 2 + 1;
  const Angles angles = make_angles(M);
  const auto inv_plan = get_real_fft<T>(M);
  const auto fwd_plan = get_real_fft<T>(n_fft);
  const BlockFn<T> block = block_fn<T>();
  parallel_for(num_rows, num_threads, [&](int64_t begin, int64_t end) {
    Modes m;
    std::vector<std::complex<T>> kf(static_cast<size_t>(K));
    std::vector<T> taps(static_cast<size_t>(L));
    std::vector<T> work(static_cast<size_t>(std::max(inv_plan->work_size(), fwd_plan->work_size())));
    for (int64_t j = begin; j < end; ++j) {
      row_modes(log_dt, A_real, A_imag, B, P, C, N2, rows[j], m);
      for (int64_t b = 0; b < nb; ++b) {
        const int64_t k0 = b * kBlock, nk = std::min(kBlock, K - k0);
        block(m, angles, N2, k0, nk, reinterpret_cast<T*>(kf.data() + k0));
      }
      inv_plan->inverse(kf.data(), taps.data(), L, work.data());
      fwd_plan->forward(taps.data(), L, reinterpret_cast<std::complex<T>*>(out) + j * F, work.data());
    }
  });
}

}  // namespace

void dplr_spectrum_f32(const float* log_dt, const float* A_real, const float* A_imag, const float* B,
                       const float* P, const float* C, int64_t H, int64_t N2, const int64_t* rows,
                       int64_t num_rows, int64_t M, float* out, int num_threads) {
  spectrum_impl<float>(log_dt, A_real, A_imag, B, P, C, H, N2, rows, num_rows, M, out, num_threads);
}

void dplr_spectrum_f64(const double* log_dt, const double* A_real, const double* A_imag, const double* B,
                       const double* P, const double* C, int64_t H, int64_t N2, const int64_t* rows,
                       int64_t num_rows, int64_t M, double* out, int num_threads) {
  spectrum_impl<double>(log_dt, A_real, A_imag, B, P, C, H, N2, rows, num_rows, M, out, num_threads);
}

void dplr_conv_spectrum_f32(const float* log_dt, const float* A_real, const float* A_imag, const float* B,
                            const float* P, const float* C, int64_t H, int64_t N2, const int64_t* rows,
                            int64_t num_rows, int64_t M, int64_t L, int64_t n_fft, float* out, int num_threads) {
  conv_spectrum_impl<float>(log_dt, A_real, A_imag, B, P, C, H, N2, rows, num_rows, M, L, n_fft, out, num_threads);
}

void dplr_conv_spectrum_f64(const double* log_dt, const double* A_real, const double* A_imag, const double* B,
                            const double* P, const double* C, int64_t H, int64_t N2, const int64_t* rows,
                            int64_t num_rows, int64_t M, int64_t L, int64_t n_fft, double* out, int num_threads) {
  conv_spectrum_impl<double>(log_dt, A_real, A_imag, B, P, C, H, N2, rows, num_rows, M, L, n_fft, out, num_threads);
}

const char* dplr_kernel_isa() { return simd_path_name(best_path()); }

}  // namespace cpu
}  // namespace s4op
