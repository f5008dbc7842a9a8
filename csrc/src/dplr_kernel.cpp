// S4 (DPLR, rank 1) kernel spectrum for a list of rows (see dplr_kernel.h for the formula and contract).
//
// Method.  Per row, the per-mode constants |w|^2, -4 Re w and, for the four sums ij, alpha = 4 Re v_ij and
// beta = -2 Re(v_ij conj w) are formed once in double.  Per bin, c^2, 4 s^2, s c, c, s come from a table of
// the length M (built once per M and kept, like get_real_fft's plans).  With den = dre + i di,
//   dre = |w|^2 c^2 - 4 s^2,  di = -4 Re(w) s c,  inv = 1 / (dre^2 + di^2),  x = dre inv,  y = di inv,
// num / den = (beta c + i alpha s)(x - i y), so every sum is the combination of four mode sums
//   R_ij = c Sbx + s Say + i (s Sax - c Sby),   Sbx = sum_n beta x, Say = sum_n alpha y, ...
// and the mode loop is 16 multiply-adds per (mode, bin) after the reciprocal, with c and s applied once per
// bin afterwards.  The loop runs on simd.h's vectors with the lanes over consecutive bins (one entry point per
// SIMD path, chosen at run time), accumulating a group of bins in registers over all modes.
//
// Precision.  Everything runs in double, for both output types; float output is the double result rounded (the
// numbers and the measured float alternative are in the header).
//
// Work items are (row, block of kBlock bins) for the spectrum and rows for the conv variant (which follows
// with irfft(M), truncation to L and rfft(n_fft) on the row's own buffers); an item's arithmetic does not
// depend on the thread that runs it, so results are bitwise independent of num_threads.
#include "s4op/dplr_kernel.h"

#include <algorithm>
#include <cmath>
#include <complex>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "s4op/fft.h"
#include "s4op/parallel.h"
#include "simd.h"

namespace s4op {
namespace cpu {
namespace {

constexpr int64_t kBlock = 256;  // bins per work item of the spectrum
constexpr int64_t kPad = 64;     // the bin table is padded to a multiple of this (>= any path's group)
constexpr double kPi = 3.14159265358979323846;

// ---- Per-M bin table: c = cos(phi), s = sin(phi), phi = pi k / M, k = 0 .. M/2, in double, padded with copies
// of bin 0 (harmless finite values) to a multiple of kPad.
struct BinTable {
  int64_t K = 0;  // M / 2 + 1
  std::vector<double> c, s, c2, s2x4, sc;
};

std::shared_ptr<const BinTable> make_bin_table(int64_t M) {
  auto t = std::make_shared<BinTable>();
  const int64_t K = M / 2 + 1, Kp = (K + kPad - 1) / kPad * kPad;
  t->K = K;
  for (auto* v : {&t->c, &t->s, &t->c2, &t->s2x4, &t->sc}) v->assign(static_cast<size_t>(Kp), 0.0);
  for (int64_t k = 0; k < Kp; ++k) {
    double c = 1.0, s = 0.0;
    if (k < K) {
      const double phi = kPi * static_cast<double>(k) / static_cast<double>(M);
      c = 2 * k == M ? 0.0 : std::cos(phi);  // exactly zero at Nyquist (cos(pi/2) rounds to 6e-17)
      s = std::sin(phi);
    }
    t->c[k] = c, t->s[k] = s, t->c2[k] = c * c, t->s2x4[k] = 4 * s * s, t->sc[k] = s * c;
  }
  return t;
}

// Shared table of length M, built once per M and kept for the life of the process (a model uses a handful of
// lengths); safe to call from several threads at once.
std::shared_ptr<const BinTable> get_bin_table(int64_t M) {
  static std::mutex mutex;
  static std::map<int64_t, std::shared_ptr<const BinTable>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto& slot = cache[M];
  if (!slot) slot = make_bin_table(M);
  return slot;
}

// ---- Per-row constants, double.  modes {N2, kRec}: |w|^2, -4 Re w, then (beta, alpha) of the sums 00, 01,
// 10, 11.
constexpr int kRec = 10;

struct RowConsts {
  std::vector<double> modes;
  bool finite = true;
};

template <typename T>
void row_consts(const T* log_dt, const T* A_real, const T* A_imag, const T* B, const T* P, const T* C, int64_t N2,
                int64_t h, RowConsts& r) {
  using cd = std::complex<double>;
  r.modes.resize(static_cast<size_t>(kRec * N2));
  const double dt = std::exp(static_cast<double>(log_dt[h]));
  bool finite = std::isfinite(dt);
  for (int64_t n = 0; n < N2; ++n) {
    const int64_t i = h * N2 + n;
    const cd w = dt * cd(-std::exp(static_cast<double>(A_real[i])), -static_cast<double>(A_imag[i]));
    const cd b(static_cast<double>(B[2 * i]), static_cast<double>(B[2 * i + 1]));
    const cd p(static_cast<double>(P[2 * i]), static_cast<double>(P[2 * i + 1]));
    const cd c(static_cast<double>(C[2 * i]), static_cast<double>(C[2 * i + 1]));
    const cd v[4] = {dt * b * c, dt * b * std::conj(p), dt * p * c, cd(dt * std::norm(p), 0.0)};
    double* m = &r.modes[static_cast<size_t>(kRec * n)];
    m[0] = std::norm(w);
    m[1] = -4 * w.real();
    for (int j = 0; j < 4; ++j) {
      m[2 + 2 * j] = -2 * (v[j] * std::conj(w)).real();
      m[3 + 2 * j] = 4 * v[j].real();
    }
    for (int j = 0; j < kRec; ++j) finite = finite && std::isfinite(m[j]);
    finite = finite && std::isfinite(w.imag()) && std::isfinite(v[0].imag()) && std::isfinite(v[1].imag()) &&
             std::isfinite(v[2].imag());
  }
  r.finite = finite;
}

// ---- The kernel, written once over VT = simd::Vec<path, double> (W lanes): a group of G = NV W consecutive
// bins keeps 16 NV accumulators in registers over the whole mode loop.
using simd::SimdPath;

template <class VT, int NV>
S4OP_INLINE void group(const double* S4OP_RESTRICT modes, int64_t N2, const BinTable& t, int64_t k0,
                       double* S4OP_RESTRICT res /*{2 NV W}: (re, im) per bin*/) {
  using V = typename VT::V;
  constexpr int W = VT::kLanes;
  V acc[NV][16];
  for (int v = 0; v < NV; ++v)
    for (int a = 0; a < 16; ++a) acc[v][a] = V{};
  V c2[NV], s4[NV], sc[NV];
  for (int v = 0; v < NV; ++v) {
    VT::load(c2[v], &t.c2[k0 + v * W]);
    VT::load(s4[v], &t.s2x4[k0 + v * W]);
    VT::load(sc[v], &t.sc[k0 + v * W]);
  }
  for (int64_t n = 0; n < N2; ++n) {
    const double* m = modes + kRec * n;
    V w2, nrw;
    VT::broadcast(w2, m[0]);
    VT::broadcast(nrw, m[1]);
    V x[NV], y[NV];
    for (int v = 0; v < NV; ++v) {
      V dre = -s4[v];
      VT::fma(dre, w2, c2[v]);  // |w|^2 c^2 - 4 s^2: cancels at resonance, the reason for double
      const V di = nrw * sc[v];
      V d2 = dre * dre;
      VT::fma(d2, di, di);
      const V inv = (V{} + 1.0) / d2;
      x[v] = dre * inv;
      y[v] = di * inv;
    }
    for (int j = 0; j < 4; ++j) {
      V be, al;
      VT::broadcast(be, m[2 + 2 * j]);
      VT::broadcast(al, m[3 + 2 * j]);
      for (int v = 0; v < NV; ++v) {
        VT::fma(acc[v][4 * j + 0], be, x[v]);  // Sbx
        VT::fma(acc[v][4 * j + 1], al, y[v]);  // Say
        VT::fma(acc[v][4 * j + 2], al, x[v]);  // Sax
        VT::fma(acc[v][4 * j + 3], be, y[v]);  // Sby
      }
    }
  }
  for (int v = 0; v < NV; ++v) {
    V c, s;
    VT::load(c, &t.c[k0 + v * W]);
    VT::load(s, &t.s[k0 + v * W]);
    V re[4], im[4];
    for (int j = 0; j < 4; ++j) {
      re[j] = c * acc[v][4 * j + 0] + s * acc[v][4 * j + 1];
      im[j] = s * acc[v][4 * j + 2] - c * acc[v][4 * j + 3];
    }
    // q = c R01 R10 / (1 + c R11);  r = R00 - q;  out = (c + i s) r
    const V nr = c * (re[1] * re[2] - im[1] * im[2]), ni = c * (re[1] * im[2] + im[1] * re[2]);
    const V dr = 1.0 + c * re[3], dim = c * im[3];
    const V id = (V{} + 1.0) / (dr * dr + dim * dim);
    const V qr = (nr * dr + ni * dim) * id, qi = (ni * dr - nr * dim) * id;
    const V rr = re[0] - qr, ri = im[0] - qi;
    VT::store_interleave(res + 2 * v * W, c * rr - s * ri, s * rr + c * ri);
  }
}

// kf[k0 .. k0 + nk) of one row into out (interleaved re, im), T the output type.
template <class VT, int NV, typename T>
S4OP_INLINE void spectrum_range(const RowConsts& r, int64_t N2, const BinTable& t, int64_t k0, int64_t nk,
                                T* out) {
  constexpr int64_t G = NV * VT::kLanes;
  if (!r.finite) {
    std::fill(out, out + 2 * nk, std::numeric_limits<T>::quiet_NaN());
    return;
  }
  double res[2 * G];
  for (int64_t k = 0; k < nk; k += G) {
    group<VT, NV>(r.modes.data(), N2, t, k0 + k, res);
    const int64_t n = std::min(G, nk - k);
    for (int64_t i = 0; i < 2 * n; ++i) out[2 * k + i] = static_cast<T>(res[i]);
  }
}

// ---- Entry points, one per path: the target attribute compiles the inlined kernel for that instruction set.
// Groups: 2 bins on the portable path, 4 (one vector) on AVX2 (16 of its 16 registers hold the accumulators;
// the compiler keeps the rest in L1), 8 (one vector) on AVX-512 (16 of its 32).
template <typename T>
using RangeFn = void (*)(const RowConsts&, int64_t, const BinTable&, int64_t, int64_t, T*);

template <typename T>
void range_scalar(const RowConsts& r, int64_t N2, const BinTable& t, int64_t k0, int64_t nk, T* out) {
  spectrum_range<simd::Vec<SimdPath::kScalar, double>, 2, T>(r, N2, t, k0, nk, out);
}
#if S4OP_SIMD_X86
template <typename T>
S4OP_TARGET_AVX2 void range_avx2(const RowConsts& r, int64_t N2, const BinTable& t, int64_t k0, int64_t nk,
                                 T* out) {
  spectrum_range<simd::Vec<SimdPath::kAVX2, double>, 1, T>(r, N2, t, k0, nk, out);
}
template <typename T>
S4OP_TARGET_AVX512 void range_avx512(const RowConsts& r, int64_t N2, const BinTable& t, int64_t k0, int64_t nk,
                                     T* out) {
  spectrum_range<simd::Vec<SimdPath::kAVX512, double>, 1, T>(r, N2, t, k0, nk, out);
}
#endif

// The paths this kernel implements: no kVec128 (on x86 the portable path is compiled for the SSE2 baseline).
bool path_supported(SimdPath path) {
  switch (path) {
    case SimdPath::kScalar:
      return true;
    case SimdPath::kAVX2:
    case SimdPath::kAVX512:
      return S4OP_SIMD_X86 && simd_path_supported(path);
    default:
      return false;
  }
}

SimdPath best_path() {
  static const SimdPath best = simd::widest_supported({SimdPath::kAVX2, SimdPath::kAVX512});
  return best;
}

template <typename T>
RangeFn<T> range_fn(SimdPath path) {
  switch (path) {
#if S4OP_SIMD_X86
    case SimdPath::kAVX512:
      return &range_avx512<T>;
    case SimdPath::kAVX2:
      return &range_avx2<T>;
#endif
    default:
      return &range_scalar<T>;
  }
}

// ---- Argument checks and the two drivers.
[[noreturn]] void fail(const char* name, const std::string& what) {
  throw std::invalid_argument(std::string("s4op::cpu::") + name + ": " + what);
}

template <typename T>
void validate(const char* name, const T* log_dt, const T* A_real, const T* A_imag, const T* B, const T* P,
              const T* C, int64_t H, int64_t N2, const int64_t* rows, int64_t num_rows, int64_t M, int64_t bins,
              const T* out, int num_threads, SimdPath path) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  if (H < 1) fail(name, "H must be >= 1, got " + std::to_string(H));
  if (N2 < 1) fail(name, "N2 must be >= 1, got " + std::to_string(N2));
  if (M < 1) fail(name, "M must be >= 1, got " + std::to_string(M));
  if (num_rows < 0) fail(name, "num_rows must be >= 0, got " + std::to_string(num_rows));
  if (num_threads < 1) fail(name, "num_threads must be >= 1, got " + std::to_string(num_threads));
  if (N2 > kMax / 2 / H || 2 * H * N2 > kMax / static_cast<int64_t>(sizeof(T))) fail(name, "H * N2 is too large");
  // bins <= M / 2 + 1 for M < kMax: the (padded) bin table and the output sizes below cannot overflow.
  if (M > kMax / 2 / static_cast<int64_t>(sizeof(double))) fail(name, "M is too large");
  if (num_rows > 0 && num_rows > kMax / 2 / static_cast<int64_t>(sizeof(T)) / bins)
    fail(name, "num_rows * bins is too large");
  if (!log_dt) fail(name, "log_dt is null");
  if (!A_real) fail(name, "A_real is null");
  if (!A_imag) fail(name, "A_imag is null");
  if (!B) fail(name, "B is null");
  if (!P) fail(name, "P is null");
  if (!C) fail(name, "C is null");
  if (num_rows > 0 && !rows) fail(name, "rows is null");
  if (num_rows > 0 && !out) fail(name, "out is null");
  for (int64_t j = 0; j < num_rows; ++j) {
    if (rows[j] < 0 || rows[j] >= H)
      fail(name, "rows[" + std::to_string(j) + "] = " + std::to_string(rows[j]) + " is outside [0, H) with H = " +
                     std::to_string(H));
  }
  if (!path_supported(path)) fail(name, "the requested SIMD path is not available on this CPU");
}

template <typename T>
void spectrum_impl(const char* name, const T* log_dt, const T* A_real, const T* A_imag, const T* B, const T* P,
                   const T* C, int64_t H, int64_t N2, const int64_t* rows, int64_t num_rows, int64_t M, T* out,
                   int num_threads, SimdPath path) {
  validate(name, log_dt, A_real, A_imag, B, P, C, H, N2, rows, num_rows, M, M / 2 + 1, out, num_threads, path);
  if (num_rows == 0) return;
  const int64_t K = M / 2 + 1, nb = (K + kBlock - 1) / kBlock;
  const auto table = get_bin_table(M);
  const RangeFn<T> range = range_fn<T>(path);
  parallel_for(num_rows * nb, num_threads, [&](int64_t begin, int64_t end) {
    RowConsts r;
    int64_t have = -1;
    for (int64_t item = begin; item < end; ++item) {
      const int64_t j = item / nb, b = item % nb;
      if (j != have) row_consts(log_dt, A_real, A_imag, B, P, C, N2, rows[j], r), have = j;
      const int64_t k0 = b * kBlock, nk = std::min(kBlock, K - k0);
      range(r, N2, *table, k0, nk, out + 2 * (j * K + k0));
    }
  });
}

template <typename T>
void conv_spectrum_impl(const char* name, const T* log_dt, const T* A_real, const T* A_imag, const T* B,
                        const T* P, const T* C, int64_t H, int64_t N2, const int64_t* rows, int64_t num_rows,
                        int64_t M, int64_t L, int64_t n_fft, T* out, int num_threads, SimdPath path) {
  if (L < 1 || L > M) fail(name, "L must be in [1, M], got L = " + std::to_string(L) + ", M = " + std::to_string(M));
  if (n_fft < L) fail(name, "n_fft must be >= L, got n_fft = " + std::to_string(n_fft) + ", L = " + std::to_string(L));
  if (!is_fast_size(M)) fail(name, "M must be 2^a 3^b 5^c (a RealFFT length), got " + std::to_string(M));
  if (!is_fast_size(n_fft)) fail(name, "n_fft must be 2^a 3^b 5^c (a RealFFT length), got " + std::to_string(n_fft));
  validate(name, log_dt, A_real, A_imag, B, P, C, H, N2, rows, num_rows, M, n_fft / 2 + 1, out, num_threads, path);
  if (num_rows == 0) return;
  const int64_t K = M / 2 + 1, F = n_fft / 2 + 1;
  const auto table = get_bin_table(M);
  const auto inv_plan = get_real_fft<T>(M);
  const auto fwd_plan = get_real_fft<T>(n_fft);
  const RangeFn<T> range = range_fn<T>(path);
  parallel_for(num_rows, num_threads, [&](int64_t begin, int64_t end) {
    RowConsts r;
    std::vector<std::complex<T>> kf(static_cast<size_t>(K));
    std::vector<T> taps(static_cast<size_t>(L));
    std::vector<T> work(static_cast<size_t>(std::max(inv_plan->work_size(), fwd_plan->work_size())));
    for (int64_t j = begin; j < end; ++j) {
      row_consts(log_dt, A_real, A_imag, B, P, C, N2, rows[j], r);
      if (!r.finite) {  // every output value NaN (the transforms would leave the DC and Nyquist imaginary parts 0)
        std::fill(out + 2 * j * F, out + 2 * (j + 1) * F, std::numeric_limits<T>::quiet_NaN());
        continue;
      }
      range(r, N2, *table, 0, K, reinterpret_cast<T*>(kf.data()));
      inv_plan->inverse(kf.data(), taps.data(), L, work.data());
      fwd_plan->forward(taps.data(), L, reinterpret_cast<std::complex<T>*>(out) + j * F, work.data());
    }
  });
}

}  // namespace

void dplr_spectrum_f32(const float* log_dt, const float* A_real, const float* A_imag, const float* B,
                       const float* P, const float* C, int64_t H, int64_t N2, const int64_t* rows,
                       int64_t num_rows, int64_t M, float* out, int num_threads) {
  spectrum_impl<float>("dplr_spectrum_f32", log_dt, A_real, A_imag, B, P, C, H, N2, rows, num_rows, M, out,
                       num_threads, best_path());
}

void dplr_spectrum_f64(const double* log_dt, const double* A_real, const double* A_imag, const double* B,
                       const double* P, const double* C, int64_t H, int64_t N2, const int64_t* rows,
                       int64_t num_rows, int64_t M, double* out, int num_threads) {
  spectrum_impl<double>("dplr_spectrum_f64", log_dt, A_real, A_imag, B, P, C, H, N2, rows, num_rows, M, out,
                        num_threads, best_path());
}

void dplr_conv_spectrum_f32(const float* log_dt, const float* A_real, const float* A_imag, const float* B,
                            const float* P, const float* C, int64_t H, int64_t N2, const int64_t* rows,
                            int64_t num_rows, int64_t M, int64_t L, int64_t n_fft, float* out, int num_threads) {
  conv_spectrum_impl<float>("dplr_conv_spectrum_f32", log_dt, A_real, A_imag, B, P, C, H, N2, rows, num_rows, M,
                            L, n_fft, out, num_threads, best_path());
}

void dplr_conv_spectrum_f64(const double* log_dt, const double* A_real, const double* A_imag, const double* B,
                            const double* P, const double* C, int64_t H, int64_t N2, const int64_t* rows,
                            int64_t num_rows, int64_t M, int64_t L, int64_t n_fft, double* out, int num_threads) {
  conv_spectrum_impl<double>("dplr_conv_spectrum_f64", log_dt, A_real, A_imag, B, P, C, H, N2, rows, num_rows, M,
                             L, n_fft, out, num_threads, best_path());
}

const char* dplr_kernel_isa() { return simd_path_name(best_path()); }

namespace detail {

bool dplr_isa_supported(SimdPath path) { return path_supported(path); }

void dplr_spectrum_f32_isa(const float* log_dt, const float* A_real, const float* A_imag, const float* B,
                           const float* P, const float* C, int64_t H, int64_t N2, const int64_t* rows,
                           int64_t num_rows, int64_t M, float* out, int num_threads, SimdPath path) {
  spectrum_impl<float>("dplr_spectrum_f32", log_dt, A_real, A_imag, B, P, C, H, N2, rows, num_rows, M, out,
                       num_threads, path);
}

void dplr_spectrum_f64_isa(const double* log_dt, const double* A_real, const double* A_imag, const double* B,
                           const double* P, const double* C, int64_t H, int64_t N2, const int64_t* rows,
                           int64_t num_rows, int64_t M, double* out, int num_threads, SimdPath path) {
  spectrum_impl<double>("dplr_spectrum_f64", log_dt, A_real, A_imag, B, P, C, H, N2, rows, num_rows, M, out,
                        num_threads, path);
}

void dplr_conv_spectrum_f32_isa(const float* log_dt, const float* A_real, const float* A_imag, const float* B,
                                const float* P, const float* C, int64_t H, int64_t N2, const int64_t* rows,
                                int64_t num_rows, int64_t M, int64_t L, int64_t n_fft, float* out, int num_threads,
                                SimdPath path) {
  conv_spectrum_impl<float>("dplr_conv_spectrum_f32", log_dt, A_real, A_imag, B, P, C, H, N2, rows, num_rows, M,
                            L, n_fft, out, num_threads, path);
}

void dplr_conv_spectrum_f64_isa(const double* log_dt, const double* A_real, const double* A_imag, const double* B,
                                const double* P, const double* C, int64_t H, int64_t N2, const int64_t* rows,
                                int64_t num_rows, int64_t M, int64_t L, int64_t n_fft, double* out, int num_threads,
                                SimdPath path) {
  conv_spectrum_impl<double>("dplr_conv_spectrum_f64", log_dt, A_real, A_imag, B, P, C, H, N2, rows, num_rows, M,
                             L, n_fft, out, num_threads, path);
}

}  // namespace detail
}  // namespace cpu
}  // namespace s4op
