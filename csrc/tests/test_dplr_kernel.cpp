// s4op::cpu::dplr_spectrum / dplr_conv_spectrum: against a naive long double evaluation of the reference formula
// (z, omega) away from the Nyquist bin and its analytic limits at DC and Nyquist; float against double on the
// spectrum and on the time-domain kernel (M up to 16384, random and HiPPO-LegS-like parameters); every SIMD path
// against the portable one; odd, tiny and non-power-of-two M; rows in any order with repeats; thread-count
// independence; the conv variant against irfft / truncate / rfft composed with RealFFT; bad arguments; NaN rows.
#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "check.h"
#include "s4op/dplr_kernel.h"
#include "s4op/fft.h"

namespace {

using s4op::cpu::SimdPath;
using cl = std::complex<long double>;
using cd = std::complex<double>;

// mt19937_64's output sequence is fixed by the standard; the std distributions are not, so uniforms and normals
// are derived here to keep the data identical across standard libraries.
struct Rng {
  explicit Rng(uint64_t seed) : eng(seed) {}
  double uniform(double lo, double hi) { return lo + (hi - lo) * (static_cast<double>(eng() >> 11) * 0x1p-53); }
  double normal() {
    const double u1 = (static_cast<double>(eng() >> 11) + 1.0) * 0x1p-53;
    const double u2 = static_cast<double>(eng() >> 11) * 0x1p-53;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  std::mt19937_64 eng;
};

enum class Init {
  kRandom,  // Re Lambda = -0.5, Im Lambda log-uniform in [0.1, 500], B, P, C complex normal
  kLegS,    // HiPPO-LegS-like: |P_n| = sqrt(n + 1/2) (|P|^2 ~ N^2 / 2: the rank-1 correction cancels heavily),
            // B = sqrt(2) P, Im Lambda ~ pi n; rows with dt = 1e-3 and Re Lambda down to -1e-3 (tiny |Re w|)
};

// Parameters rounded to float, so the float and double kernels see the same values.
struct Params {
  int64_t H, N2;
  std::vector<double> log_dt, A_real, A_imag, B, P, C;
  template <class T>
  static std::vector<T> as(const std::vector<double>& v) {
    return std::vector<T>(v.begin(), v.end());
  }
};

Params make_params(int64_t H, int64_t N2, uint64_t seed, Init init) {
  Rng rng(seed);
  Params p{H, N2, {}, {}, {}, {}, {}, {}};
  auto f = [](double x) { return static_cast<double>(static_cast<float>(x)); };
  for (int64_t h = 0; h < H; ++h) {
    double log_dt = rng.uniform(std::log(1e-3), std::log(1e-1));
    double re_lambda = 0.5;
    if (init == Init::kLegS && h % 3 == 1) log_dt = std::log(1e-3);
    if (init == Init::kLegS && h % 3 == 2) log_dt = std::log(1e-3), re_lambda = 1e-3;
    p.log_dt.push_back(f(log_dt));
    for (int64_t n = 0; n < N2; ++n) {
      p.A_real.push_back(f(std::log(re_lambda)));
      if (init == Init::kRandom) {
        p.A_imag.push_back(f(std::exp(rng.uniform(std::log(0.1), std::log(500.0)))));
        for (int i = 0; i < 2; ++i) {
          p.B.push_back(f(rng.normal() * std::sqrt(0.5)));
          p.P.push_back(f(rng.normal() * std::sqrt(0.5)));
        }
      } else {
        p.A_imag.push_back(f(3.141592653589793 * (static_cast<double>(n) + rng.uniform(0.1, 0.9))));
        const double r = std::sqrt(static_cast<double>(n) + 0.5), th = rng.uniform(0.0, 6.283185307179586);
        p.P.push_back(f(r * std::cos(th)));
        p.P.push_back(f(r * std::sin(th)));
        p.B.push_back(f(std::sqrt(2.0) * r * std::cos(th)));
        p.B.push_back(f(std::sqrt(2.0) * r * std::sin(th)));
      }
      p.C.push_back(f(rng.normal() * std::sqrt(0.5)));
      p.C.push_back(f(rng.normal() * std::sqrt(0.5)));
    }
  }
  return p;
}

// kf[k] of row h by the formula as written (z, omega), in long double; k must not be the Nyquist bin.
cl naive(const Params& p, int64_t h, int64_t M, int64_t k) {
  const long double pi = 3.141592653589793238462643383279502884L;
  const cl om = std::polar(1.0L, -2 * pi * static_cast<long double>(k) / static_cast<long double>(M));
  const cl z = 2.0L * (1.0L - om) / (1.0L + om);
  const long double dt = std::exp(static_cast<long double>(p.log_dt[h]));
  cl r[4] = {0, 0, 0, 0};
  for (int64_t n = 0; n < p.N2; ++n) {
    const size_t i = static_cast<size_t>(h * p.N2 + n);
    const cl w = dt * cl(-std::exp(static_cast<long double>(p.A_real[i])), -static_cast<long double>(p.A_imag[i]));
    const cl b(p.B[2 * i], p.B[2 * i + 1]), q(p.P[2 * i], p.P[2 * i + 1]), c(p.C[2 * i], p.C[2 * i + 1]);
    const cl v[4] = {dt * b * c, dt * b * std::conj(q), dt * q * c, dt * q * std::conj(q)};
    for (int j = 0; j < 4; ++j) r[j] += v[j] / (z - w) + std::conj(v[j]) / (z - std::conj(w));
  }
  return (r[0] - r[1] * r[2] / (1.0L + r[3])) * 2.0L / (1.0L + om);
}

// The analytic limits: DC is sum_n -2 Re(v00 / w) + the Woodbury step with the same sums; Nyquist is
// sum_n Re(v00) (c = 0 removes the correction).
long double nyquist_limit(const Params& p, int64_t h) {
  const long double dt = std::exp(static_cast<long double>(p.log_dt[h]));
  long double s = 0;
  for (int64_t n = 0; n < p.N2; ++n) {
    const size_t i = static_cast<size_t>(h * p.N2 + n);
    s += (dt * cl(p.B[2 * i], p.B[2 * i + 1]) * cl(p.C[2 * i], p.C[2 * i + 1])).real();
  }
  return s;
}
long double dc_limit(const Params& p, int64_t h) {
  const long double dt = std::exp(static_cast<long double>(p.log_dt[h]));
  long double r[4] = {0, 0, 0, 0};
  for (int64_t n = 0; n < p.N2; ++n) {
    const size_t i = static_cast<size_t>(h * p.N2 + n);
    const cl w = dt * cl(-std::exp(static_cast<long double>(p.A_real[i])), -static_cast<long double>(p.A_imag[i]));
    const cl b(p.B[2 * i], p.B[2 * i + 1]), q(p.P[2 * i], p.P[2 * i + 1]), c(p.C[2 * i], p.C[2 * i + 1]);
    const cl v[4] = {dt * b * c, dt * b * std::conj(q), dt * q * c, dt * q * std::conj(q)};
    for (int j = 0; j < 4; ++j) r[j] += -2 * (v[j] / w).real();
  }
  return r[0] - r[1] * r[2] / (1 + r[3]);
}

// Entry point 1 (n_fft == 0) or 2 on the automatic path or a given one; out is filled with a sentinel first.
template <class T>
std::vector<T> run(const Params& p, const std::vector<int64_t>& rows, int64_t M, int threads,
                   std::optional<SimdPath> path = std::nullopt, int64_t L = 0, int64_t n_fft = 0) {
  const auto a = Params::as<T>(p.log_dt), b = Params::as<T>(p.A_real), c = Params::as<T>(p.A_imag),
             d = Params::as<T>(p.B), e = Params::as<T>(p.P), f = Params::as<T>(p.C);
  const int64_t A = static_cast<int64_t>(rows.size());
  std::vector<T> out(static_cast<size_t>(A * ((n_fft ? n_fft : M) / 2 + 1) * 2), T(-12345));
  namespace cpu = s4op::cpu;
  if constexpr (std::is_same<T, float>::value) {
    if (n_fft == 0 && path)
      cpu::detail::dplr_spectrum_f32_isa(a.data(), b.data(), c.data(), d.data(), e.data(), f.data(), p.H, p.N2,
                                         rows.data(), A, M, out.data(), threads, *path);
    else if (n_fft == 0)
      cpu::dplr_spectrum_f32(a.data(), b.data(), c.data(), d.data(), e.data(), f.data(), p.H, p.N2, rows.data(), A,
                             M, out.data(), threads);
    else if (path)
      cpu::detail::dplr_conv_spectrum_f32_isa(a.data(), b.data(), c.data(), d.data(), e.data(), f.data(), p.H, p.N2,
                                              rows.data(), A, M, L, n_fft, out.data(), threads, *path);
    else
      cpu::dplr_conv_spectrum_f32(a.data(), b.data(), c.data(), d.data(), e.data(), f.data(), p.H, p.N2,
                                  rows.data(), A, M, L, n_fft, out.data(), threads);
  } else {
    if (n_fft == 0 && path)
      cpu::detail::dplr_spectrum_f64_isa(a.data(), b.data(), c.data(), d.data(), e.data(), f.data(), p.H, p.N2,
                                         rows.data(), A, M, out.data(), threads, *path);
    else if (n_fft == 0)
      cpu::dplr_spectrum_f64(a.data(), b.data(), c.data(), d.data(), e.data(), f.data(), p.H, p.N2, rows.data(), A,
                             M, out.data(), threads);
    else if (path)
      cpu::detail::dplr_conv_spectrum_f64_isa(a.data(), b.data(), c.data(), d.data(), e.data(), f.data(), p.H, p.N2,
                                              rows.data(), A, M, L, n_fft, out.data(), threads, *path);
    else
      cpu::dplr_conv_spectrum_f64(a.data(), b.data(), c.data(), d.data(), e.data(), f.data(), p.H, p.N2,
                                  rows.data(), A, M, L, n_fft, out.data(), threads);
  }
  return out;
}

template <class T>
cd bin(const std::vector<T>& out, int64_t K, size_t j, int64_t k) {
  const size_t i = 2 * (j * static_cast<size_t>(K) + static_cast<size_t>(k));
  return cd(static_cast<double>(out[i]), static_cast<double>(out[i + 1]));
}

// Worst over rows of max_k |x - ref| / max_k |ref| (complex bins); NaN counts as infinite.
template <class T>
double spectrum_error(const std::vector<T>& x, const std::vector<double>& ref, size_t rows, int64_t K) {
  double worst = 0;
  for (size_t j = 0; j < rows; ++j) {
    double err = 0, scale = 0;
    for (int64_t k = 0; k < K; ++k) {
      const double d = std::abs(bin(x, K, j, k) - bin(ref, K, j, k));
      err = std::isnan(d) ? std::numeric_limits<double>::infinity() : std::max(err, d);
      scale = std::max(scale, std::abs(bin(ref, K, j, k)));
    }
    worst = std::max(worst, err / scale);
  }
  return worst;
}

// irfft(X, M) in double (numpy's convention): RealFFT for its lengths, the direct sum otherwise.
void irfft(const cd* X /*{M/2+1}*/, int64_t M, double* y /*{M}*/) {
  if (s4op::cpu::is_fast_size(M)) {
    s4op::cpu::RealFFT<double> plan(M);
    std::vector<double> work(static_cast<size_t>(plan.work_size()));
    plan.inverse(X, y, M, work.data());
    return;
  }
  for (int64_t t = 0; t < M; ++t) {
    long double s = 0;
    for (int64_t k = 0; k < M; ++k) {
      const int64_t kk = std::min(k, M - k);
      const cl Xk = k <= M / 2 ? cl(X[k]) : std::conj(cl(X[M - k]));
      const cl v = (kk == 0 || 2 * kk == M) ? cl(Xk.real(), 0) : Xk;  // numpy drops these imaginary parts
      s += (v * std::polar(1.0L, 2 * 3.141592653589793238462643383279502884L * static_cast<long double>(k * t % M) /
                                     static_cast<long double>(M)))
               .real();
    }
    y[t] = static_cast<double>(s / static_cast<long double>(M));
  }
}

// The same on the time-domain kernels irfft(., M), both transformed in double.
template <class T>
double kernel_error(const std::vector<T>& x, const std::vector<double>& ref, size_t rows, int64_t M) {
  const int64_t K = M / 2 + 1;
  std::vector<double> kx(static_cast<size_t>(M)), kr(kx);
  std::vector<cd> X(static_cast<size_t>(K));
  double worst = 0;
  for (size_t j = 0; j < rows; ++j) {
    for (int64_t k = 0; k < K; ++k) X[static_cast<size_t>(k)] = bin(x, K, j, k);
    irfft(X.data(), M, kx.data());
    irfft(reinterpret_cast<const cd*>(ref.data()) + j * static_cast<size_t>(K), M, kr.data());
    double err = 0, scale = 0;
    for (int64_t l = 0; l < M; ++l) {
      const double d = std::fabs(kx[static_cast<size_t>(l)] - kr[static_cast<size_t>(l)]);
      err = std::isnan(d) ? std::numeric_limits<double>::infinity() : std::max(err, d);
      scale = std::max(scale, std::fabs(kr[static_cast<size_t>(l)]));
    }
    worst = std::max(worst, err / scale);
  }
  return worst;
}

std::vector<int64_t> reversed(int64_t H) {
  std::vector<int64_t> rows;
  for (int64_t h = H - 1; h >= 0; --h) rows.push_back(h);
  return rows;
}

const char* init_name(Init init) { return init == Init::kRandom ? "random" : "legs"; }

// Double against the formula as written (long double) off Nyquist, and the limits at DC and Nyquist.
void check_against_naive(int64_t H, int64_t N2, int64_t M, Init init, double tol) {
  const Params p = make_params(H, N2, static_cast<uint64_t>(H * 1000 + M), init);
  const std::vector<int64_t> rows = reversed(H);
  const auto out = run<double>(p, rows, M, 2);
  const int64_t K = M / 2 + 1;
  double worst = 0;
  for (size_t j = 0; j < rows.size(); ++j) {
    const int64_t h = rows[j];
    double scale = 0, err = 0;
    for (int64_t k = 0; k < K; ++k) scale = std::max(scale, std::abs(bin(out, K, j, k)));
    for (int64_t k = 0; k < K; ++k) {
      if (2 * k == M) continue;  // z is infinite there: the limit is checked below
      const cl ref = naive(p, h, M, k);
      err = std::max(err, static_cast<double>(std::abs(cl(bin(out, K, j, k)) - ref)));
    }
    const cd dc = bin(out, K, j, 0);
    err = std::max(err, std::fabs(dc.real() - static_cast<double>(dc_limit(p, h))));
    S4OP_CHECK(dc.imag() == 0.0);  // s = 0: exactly real
    if (M % 2 == 0) {
      const cd ny = bin(out, K, j, K - 1);
      err = std::max(err, std::fabs(ny.real() - static_cast<double>(nyquist_limit(p, h))));
      S4OP_CHECK(ny.imag() == 0.0);  // c = 0, exp(i phi) = i: exactly real
    }
    worst = std::max(worst, err / scale);
  }
  std::printf("naive H=%lld N2=%lld M=%lld %s: f64 err %.2e\n", static_cast<long long>(H), static_cast<long long>(N2),
              static_cast<long long>(M), init_name(init), worst);
  S4OP_CHECK(worst <= tol);
}

// Float against double on the same (float) inputs, spectrum and kernel; threads 1, 2, 3 bitwise equal.
void check_float_vs_double(int64_t H, int64_t N2, int64_t M, Init init) {
  const Params p = make_params(H, N2, static_cast<uint64_t>(7 * M + 3), init);
  std::vector<int64_t> rows = reversed(H);
  rows.push_back(0);
  rows.push_back(H - 1);
  const int64_t K = M / 2 + 1;
  const auto d = run<double>(p, rows, M, 1);
  const auto f1 = run<float>(p, rows, M, 1);
  const auto f2 = run<float>(p, rows, M, 2);
  const auto f3 = run<float>(p, rows, M, 3);
  const auto d2 = run<double>(p, rows, M, 2);
  S4OP_CHECK(f1 == f2);
  S4OP_CHECK(f1 == f3);
  S4OP_CHECK(std::memcmp(d.data(), d2.data(), d.size() * sizeof(double)) == 0);
  const double es = spectrum_error(f1, d, rows.size(), K), ek = kernel_error(f1, d, rows.size(), M);
  std::printf("float vs double H=%lld N2=%lld M=%lld %s: spectrum %.2e, kernel %.2e\n", static_cast<long long>(H),
              static_cast<long long>(N2), static_cast<long long>(M), init_name(init), es, ek);
  // The contract is 1e-5; the double sums leave only the rounding of the output (~6e-8).
  S4OP_CHECK(es <= 1e-6);
  S4OP_CHECK(ek <= 1e-6);
  // Repeated rows are identical.
  const size_t A = rows.size(), row = 2 * static_cast<size_t>(K);
  S4OP_CHECK(std::memcmp(f1.data() + (A - 1) * row, f1.data(), row * sizeof(float)) == 0);
  S4OP_CHECK(std::memcmp(f1.data() + (A - 2) * row, f1.data() + (A - 3) * row, row * sizeof(float)) == 0);
  // The rows of a subset equal (bitwise) the same rows of the dense run.
  const std::vector<int64_t> subset = {H - 1, 0, H / 2};
  const auto fs = run<float>(p, subset, M, 2);
  for (size_t j = 0; j < subset.size(); ++j) {
    const size_t dense_j = static_cast<size_t>(H - 1 - subset[j]);  // rows are reversed in the dense run
    S4OP_CHECK(std::memcmp(fs.data() + j * row, f1.data() + dense_j * row, row * sizeof(float)) == 0);
  }
}

// Every SIMD path available here against the portable one (to rounding: they differ in FMA use).
void check_isa_paths() {
  for (Init init : {Init::kRandom, Init::kLegS}) {
    const Params p = make_params(6, 32, 41, init);
    const std::vector<int64_t> rows = {5, 1, 3, 1};
    const int64_t M = 3000, K = M / 2 + 1;
    const auto d_ref = run<double>(p, rows, M, 1, SimdPath::kScalar);
    const auto f_ref = run<float>(p, rows, M, 1, SimdPath::kScalar);
    for (SimdPath path : {SimdPath::kScalar, SimdPath::kAVX2, SimdPath::kAVX512}) {
      const char* name = s4op::cpu::simd_path_name(path);
      if (!s4op::cpu::detail::dplr_isa_supported(path)) {
        std::printf("path %s not available here, skipped\n", name);
        continue;
      }
      const auto d = run<double>(p, rows, M, 2, path);
      const auto f = run<float>(p, rows, M, 1, path);
      const auto f2 = run<float>(p, rows, M, 2, path);
      const double e64 = spectrum_error(d, d_ref, rows.size(), K), e32 = spectrum_error(f, d_ref, rows.size(), K);
      std::printf("path %s %s: f64 vs scalar %.2e, f32 vs scalar f64 %.2e\n", name, init_name(init), e64, e32);
      S4OP_CHECK(e64 <= 1e-11);
      S4OP_CHECK(e32 <= 1e-6);
      S4OP_CHECK(f == f2);
      if (path == SimdPath::kScalar) S4OP_CHECK(f == f_ref);
      // The conv variant on this path agrees with the automatic one to rounding.
      const auto cv = run<double>(p, rows, M, 2, path, 2000, 4000);
      const auto ca = run<double>(p, rows, M, 2, std::nullopt, 2000, 4000);
      S4OP_CHECK(spectrum_error(cv, ca, rows.size(), 2001) <= 1e-11);
    }
  }
  const std::string name = s4op::cpu::dplr_kernel_isa();
  if (s4op::cpu::simd_is_generic()) {
    S4OP_CHECK(name == "generic");
  } else {
    S4OP_CHECK(name == "avx512" || name == "avx2+fma" || name == "scalar");
  }
}

// The conv variant is rfft(irfft(kf, M)[:L], n_fft) composed by hand with the shared RealFFT plans: bitwise.
template <class T>
void check_conv_variant() {
  struct Case {
    int64_t M, L, n_fft;
  };
  for (const Case& cs : {Case{1, 1, 1}, Case{2, 1, 2}, Case{64, 64, 128}, Case{64, 40, 80}, Case{100, 1, 1},
                         Case{4096, 3000, 6000}, Case{3 * 4096, 12288, 24576}, Case{1000, 999, 1000}}) {
    const Params p = make_params(3, 16, static_cast<uint64_t>(cs.M + cs.L), Init::kRandom);
    const std::vector<int64_t> rows = {2, 0, 2};
    const int64_t K = cs.M / 2 + 1, F = cs.n_fft / 2 + 1;
    const auto kf = run<T>(p, rows, cs.M, 1);
    const auto out = run<T>(p, rows, cs.M, 2, std::nullopt, cs.L, cs.n_fft);
    const auto out1 = run<T>(p, rows, cs.M, 1, std::nullopt, cs.L, cs.n_fft);
    S4OP_CHECK(out == out1);
    const auto inv = s4op::cpu::get_real_fft<T>(cs.M), fwd = s4op::cpu::get_real_fft<T>(cs.n_fft);
    std::vector<T> work(static_cast<size_t>(std::max(inv->work_size(), fwd->work_size()))), taps(cs.L);
    std::vector<std::complex<T>> X(static_cast<size_t>(F));
    bool same = true;
    for (size_t j = 0; j < rows.size(); ++j) {
      inv->inverse(reinterpret_cast<const std::complex<T>*>(kf.data()) + j * K, taps.data(), cs.L, work.data());
      fwd->forward(taps.data(), cs.L, X.data(), work.data());
      same = same && std::memcmp(X.data(), out.data() + 2 * j * F, static_cast<size_t>(F) * sizeof(X[0])) == 0;
    }
    S4OP_CHECK(same);
  }
}

// Float conv spectrum (float FFTs included) against the double one, at the longest length.
void check_conv_float_vs_double() {
  for (Init init : {Init::kRandom, Init::kLegS}) {
    const Params p = make_params(4, 32, 77, init);
    const std::vector<int64_t> rows = {3, 1, 0};
    const int64_t M = 16384, L = 16384, n_fft = 32768;
    const auto d = run<double>(p, rows, M, 2, std::nullopt, L, n_fft);
    const auto f = run<float>(p, rows, M, 2, std::nullopt, L, n_fft);
    const double e = spectrum_error(f, d, rows.size(), n_fft / 2 + 1);
    std::printf("conv float vs double M=%lld L=%lld n_fft=%lld %s: %.2e\n", static_cast<long long>(M),
                static_cast<long long>(L), static_cast<long long>(n_fft), init_name(init), e);
    S4OP_CHECK(e <= 1e-5);
  }
}

template <class Fn>
bool throws_invalid(Fn&& fn) {
  try {
    fn();
  } catch (const std::invalid_argument&) {
    return true;
  } catch (...) {
    return false;
  }
  return false;
}

void check_invalid() {
  const Params p = make_params(3, 4, 1, Init::kRandom);
  const auto a = Params::as<double>(p.log_dt), b = p.A_real, c = p.A_imag, d = p.B, e = p.P, f = p.C;
  std::vector<double> out(3 * 9 * 2, 7.0);
  const std::vector<int64_t> ok = {0, 1, 2}, bad = {0, 3}, negative = {-1};
  using s4op::cpu::dplr_conv_spectrum_f64;
  using s4op::cpu::dplr_spectrum_f64;
  auto spec = [&](const double* x0, const double* x1, const double* x2, const double* x3, const double* x4,
                  const double* x5, int64_t H, int64_t N2, const int64_t* r, int64_t A, int64_t M, double* o, int t) {
    return [=] { dplr_spectrum_f64(x0, x1, x2, x3, x4, x5, H, N2, r, A, M, o, t); };
  };
  const double *pa = a.data(), *pb = b.data(), *pc = c.data(), *pd = d.data(), *pe = e.data(), *pf = f.data();
  double* po = out.data();
  S4OP_CHECK(!throws_invalid(spec(pa, pb, pc, pd, pe, pf, 3, 4, ok.data(), 3, 16, po, 1)));
  S4OP_CHECK(throws_invalid(spec(nullptr, pb, pc, pd, pe, pf, 3, 4, ok.data(), 3, 16, po, 1)));
  S4OP_CHECK(throws_invalid(spec(pa, nullptr, pc, pd, pe, pf, 3, 4, ok.data(), 3, 16, po, 1)));
  S4OP_CHECK(throws_invalid(spec(pa, pb, nullptr, pd, pe, pf, 3, 4, ok.data(), 3, 16, po, 1)));
  S4OP_CHECK(throws_invalid(spec(pa, pb, pc, nullptr, pe, pf, 3, 4, ok.data(), 3, 16, po, 1)));
  S4OP_CHECK(throws_invalid(spec(pa, pb, pc, pd, nullptr, pf, 3, 4, ok.data(), 3, 16, po, 1)));
  S4OP_CHECK(throws_invalid(spec(pa, pb, pc, pd, pe, nullptr, 3, 4, ok.data(), 3, 16, po, 1)));
  S4OP_CHECK(throws_invalid(spec(pa, pb, pc, pd, pe, pf, 3, 4, nullptr, 3, 16, po, 1)));
  S4OP_CHECK(throws_invalid(spec(pa, pb, pc, pd, pe, pf, 3, 4, ok.data(), 3, 16, nullptr, 1)));
  S4OP_CHECK(throws_invalid(spec(pa, pb, pc, pd, pe, pf, 0, 4, ok.data(), 3, 16, po, 1)));   // H < 1
  S4OP_CHECK(throws_invalid(spec(pa, pb, pc, pd, pe, pf, 3, 0, ok.data(), 3, 16, po, 1)));   // N2 < 1
  S4OP_CHECK(throws_invalid(spec(pa, pb, pc, pd, pe, pf, 3, 4, ok.data(), 3, 0, po, 1)));    // M < 1
  S4OP_CHECK(throws_invalid(spec(pa, pb, pc, pd, pe, pf, 3, 4, ok.data(), -1, 16, po, 1)));  // num_rows < 0
  S4OP_CHECK(throws_invalid(spec(pa, pb, pc, pd, pe, pf, 3, 4, ok.data(), 3, 16, po, 0)));   // threads
  S4OP_CHECK(throws_invalid(spec(pa, pb, pc, pd, pe, pf, 3, 4, bad.data(), 2, 16, po, 1)));  // row 3 >= H
  S4OP_CHECK(throws_invalid(spec(pa, pb, pc, pd, pe, pf, 3, 4, negative.data(), 1, 16, po, 1)));
  const int64_t huge = std::numeric_limits<int64_t>::max() / 2;
  S4OP_CHECK(throws_invalid(spec(pa, pb, pc, pd, pe, pf, huge, huge, ok.data(), 3, 16, po, 1)));
  S4OP_CHECK(throws_invalid(spec(pa, pb, pc, pd, pe, pf, 3, 4, ok.data(), 3, huge, po, 1)));
  S4OP_CHECK(throws_invalid(spec(pa, pb, pc, pd, pe, pf, 3, 4, ok.data(), 3, int64_t{1} << 60, po, 1)));
  // Nothing to compute: null rows and out are fine.
  S4OP_CHECK(!throws_invalid(spec(pa, pb, pc, pd, pe, pf, 3, 4, nullptr, 0, 16, nullptr, 2)));
  // A rejected call writes nothing.
  std::vector<double> untouched(out.size(), 7.0);
  S4OP_CHECK(throws_invalid(spec(pa, pb, pc, pd, pe, pf, 3, 4, bad.data(), 2, 16, untouched.data(), 1)));
  for (double v : untouched) S4OP_CHECK(v == 7.0);

  auto conv = [&](int64_t M, int64_t L, int64_t n_fft) {
    return [=] { dplr_conv_spectrum_f64(pa, pb, pc, pd, pe, pf, 3, 4, ok.data(), 3, M, L, n_fft, po, 1); };
  };
  S4OP_CHECK(!throws_invalid(conv(16, 10, 16)));
  S4OP_CHECK(throws_invalid(conv(16, 0, 16)));    // L < 1
  S4OP_CHECK(throws_invalid(conv(16, 17, 40)));   // L > M
  S4OP_CHECK(throws_invalid(conv(16, 10, 9)));    // n_fft < L
  S4OP_CHECK(throws_invalid(conv(14, 10, 16)));   // M not 2^a 3^b 5^c
  S4OP_CHECK(throws_invalid(conv(16, 10, 14)));   // n_fft not 2^a 3^b 5^c
  S4OP_CHECK(throws_invalid(conv(0, 1, 16)));     // M < 1
  S4OP_CHECK(throws_invalid([&] {
    dplr_conv_spectrum_f64(pa, pb, pc, pd, pe, pf, 3, 4, bad.data(), 2, 16, 10, 16, po, 1);
  }));
  // The float entry points validate the same way.
  const auto a32 = Params::as<float>(p.log_dt), b32 = Params::as<float>(p.A_real), c32 = Params::as<float>(p.A_imag),
             d32 = Params::as<float>(p.B), e32 = Params::as<float>(p.P), f32 = Params::as<float>(p.C);
  std::vector<float> o32(out.size());
  S4OP_CHECK(throws_invalid([&] {
    s4op::cpu::dplr_spectrum_f32(a32.data(), b32.data(), c32.data(), d32.data(), e32.data(), f32.data(), 3, 4,
                                 bad.data(), 2, 16, o32.data(), 1);
  }));
  S4OP_CHECK(throws_invalid([&] {
    s4op::cpu::dplr_conv_spectrum_f32(a32.data(), b32.data(), c32.data(), d32.data(), e32.data(), f32.data(), 3, 4,
                                      ok.data(), 3, 16, 10, 7, o32.data(), 1);
  }));
  // An unknown or unavailable SIMD path is refused, not run; so is one this kernel does not have.
  S4OP_CHECK(throws_invalid([&] {
    s4op::cpu::detail::dplr_spectrum_f64_isa(pa, pb, pc, pd, pe, pf, 3, 4, ok.data(), 3, 16, po, 1,
                                             static_cast<SimdPath>(99));
  }));
  S4OP_CHECK(!s4op::cpu::detail::dplr_isa_supported(SimdPath::kVec128));
  S4OP_CHECK(throws_invalid([&] {
    s4op::cpu::detail::dplr_conv_spectrum_f64_isa(pa, pb, pc, pd, pe, pf, 3, 4, ok.data(), 3, 16, 10, 16, po, 1,
                                                  SimdPath::kVec128);
  }));
}

// A row with a non-finite input (or one that overflows) is NaN, the others are untouched by it.
void check_nan_rows() {
  Params p = make_params(4, 8, 5, Init::kRandom);
  const std::vector<int64_t> rows = {0, 1, 2, 3, 1};
  const int64_t M = 64, K = M / 2 + 1;
  const auto clean = run<float>(p, rows, M, 2);
  p.A_imag[1 * 8 + 2] = std::numeric_limits<double>::quiet_NaN();  // row 1
  p.C[2 * (2 * 8 + 5) + 1] = std::numeric_limits<double>::infinity();  // row 2
  p.A_real[3 * 8 + 0] = 800.0;  // row 3: exp overflows
  for (int64_t n_fft : {int64_t{0}, int64_t{128}}) {
    const int64_t F = (n_fft ? n_fft : M) / 2 + 1;
    const auto f = run<float>(p, rows, M, 2, std::nullopt, n_fft ? 64 : 0, n_fft);
    const auto d = run<double>(p, rows, M, 1, std::nullopt, n_fft ? 64 : 0, n_fft);
    for (size_t j = 0; j < rows.size(); ++j) {
      bool all_nan = true, all_finite = true;
      for (int64_t i = 0; i < 2 * F; ++i) {
        all_nan = all_nan && std::isnan(f[2 * j * F + i]) && std::isnan(d[2 * j * F + i]);
        all_finite = all_finite && std::isfinite(f[2 * j * F + i]) && std::isfinite(d[2 * j * F + i]);
      }
      S4OP_CHECK(rows[j] == 0 ? all_finite : all_nan);
    }
    if (n_fft == 0) S4OP_CHECK(std::memcmp(f.data(), clean.data(), 2 * K * sizeof(float)) == 0);
  }
}

}  // namespace

int main() {
  // Tiny, odd, even and non-power-of-two M; the LegS-like rows with a tiny |Re w| are the ill-conditioned ones
  // (resonance peaks ~ |w| / |Re w| ~ 1e5 times the rounding of the bin's angle).
  struct Case {
    int64_t H, N2, M;
  };
  for (const Case& c : {Case{1, 1, 1}, Case{1, 4, 2}, Case{3, 8, 7}, Case{2, 3, 5}, Case{5, 16, 100},
                        Case{2, 32, 1000}, Case{3, 32, 3000}, Case{2, 32, 3 * 4096}}) {
    check_against_naive(c.H, c.N2, c.M, Init::kRandom, 1e-12);
  }
  for (const Case& c : {Case{3, 8, 7}, Case{3, 32, 1000}, Case{3, 32, 4096}, Case{3, 32, 16384}})
    check_against_naive(c.H, c.N2, c.M, Init::kLegS, 1e-10);
  for (Init init : {Init::kRandom, Init::kLegS}) {
    for (int64_t M : {1, 2, 7, 1000, 3000, 4096, 3 * 4096, 16384}) check_float_vs_double(6, 32, M, init);
  }
  check_float_vs_double(5, 64, 16384, Init::kLegS);
  check_isa_paths();
  check_conv_variant<float>();
  check_conv_variant<double>();
  check_conv_float_vs_double();
  check_invalid();
  check_nan_rows();
  S4OP_TEST_MAIN_END();
}
