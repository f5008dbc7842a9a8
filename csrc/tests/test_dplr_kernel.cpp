// dplr_kernel: against a naive complex evaluation of the reference formula (long double) away from the Nyquist
// bin and its analytic limits at DC and Nyquist; float vs double; rows in any order with repeats; thread-count
// independence; the conv variant against irfft/truncate/rfft composed with RealFFT; bad arguments; a NaN row.
#include <cmath>
#include <complex>
#include <cstdint>
#include <cstdio>
#include <random>
#include <stdexcept>
#include <vector>

#include "check.h"
#include "s4op/dplr_kernel.h"
#include "s4op/fft.h"

using s4op::cpu::dplr_conv_spectrum_f32;
using s4op::cpu::dplr_conv_spectrum_f64;
using s4op::cpu::dplr_spectrum_f32;
using s4op::cpu::dplr_spectrum_f64;
using cl = std::complex<long double>;

struct Params {
  int64_t H, N2;
  std::vector<double> log_dt, A_real, A_imag, B, P, C;
};

Params make(int64_t H, int64_t N2, unsigned seed) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::normal_distribution<double> n(0.0, 1.0);
  Params p{H, N2, {}, {}, {}, {}, {}, {}};
  for (int64_t h = 0; h < H; ++h) p.log_dt.push_back(std::log(1e-3) + u(g) * (std::log(0.1) - std::log(1e-3)));
  for (int64_t i = 0; i < H * N2; ++i) {
    p.A_real.push_back(std::log(0.5 + 0.05 * u(g)));
    p.A_imag.push_back(0.1 * std::exp(u(g) * std::log(3000.0)));
  }
  for (int64_t i = 0; i < 2 * H * N2; ++i) p.B.push_back(n(g)), p.P.push_back(0.5 * n(g)), p.C.push_back(n(g));
  return p;
}

// kf[k] of row h by the formula as written (z, omega), in long double; k must not be the Nyquist bin.
cl naive(const Params& p, int64_t h, int64_t M, int64_t k) {
  const long double pi = 3.141592653589793238462643383279502884L;
  const cl om = std::polar(1.0L, -2 * pi * k / M);
  const cl z = 2.0L * (1.0L - om) / (1.0L + om);
  const long double dt = std::exp(static_cast<long double>(p.log_dt[h]));
  cl r[4] = {0, 0, 0, 0};
  for (int64_t n = 0; n < p.N2; ++n) {
    const int64_t i = h * p.N2 + n;
    const cl w = dt * cl(-std::exp(static_cast<long double>(p.A_real[i])), -p.A_imag[i]);
    const cl b(p.B[2 * i], p.B[2 * i + 1]), q(p.P[2 * i], p.P[2 * i + 1]), c(p.C[2 * i], p.C[2 * i + 1]);
    const cl v[4] = {dt * b * c, dt * b * std::conj(q), dt * q * c, dt * q * std::conj(q)};
    for (int j = 0; j < 4; ++j) r[j] += v[j] / (z - w) + std::conj(v[j]) / (z - std::conj(w));
  }
  return (r[0] - r[1] * r[2] / (1.0L + r[3])) * 2.0L / (1.0L + om);
}

template <typename T>
std::vector<T> cast(const std::vector<double>& x) {
  return std::vector<T>(x.begin(), x.end());
}

template <typename T>
std::vector<T> spectrum(const Params& p, const std::vector<int64_t>& rows, int64_t M, int threads) {
  std::vector<T> out(rows.size() * (M / 2 + 1) * 2);
  auto a = cast<T>(p.log_dt), b = cast<T>(p.A_real), c = cast<T>(p.A_imag), d = cast<T>(p.B), e = cast<T>(p.P),
       f = cast<T>(p.C);
  if constexpr (sizeof(T) == 4)
    dplr_spectrum_f32(a.data(), b.data(), c.data(), d.data(), e.data(), f.data(), p.H, p.N2, rows.data(),
                      static_cast<int64_t>(rows.size()), M, out.data(), threads);
  else
    dplr_spectrum_f64(a.data(), b.data(), c.data(), d.data(), e.data(), f.data(), p.H, p.N2, rows.data(),
                      static_cast<int64_t>(rows.size()), M, out.data(), threads);
  return out;
}

double max_abs(const std::vector<double>& x) {
  double m = 0;
  for (double v : x) m = std::max(m, std::fabs(v));
  return m;
}

void test_against_naive(int64_t H, int64_t N2, int64_t M) {
  Params p = make(H, N2, static_cast<unsigned>(H * 1000 + M));
  std::vector<int64_t> rows;
  for (int64_t h = H - 1; h >= 0; --h) rows.push_back(h);
  const auto out = spectrum<double>(p, rows, M, 2);
  const int64_t K = M / 2 + 1;
  for (size_t j = 0; j < rows.size(); ++j) {
    const int64_t h = rows[j];
    double scale = 0, err = 0;
    for (int64_t k = 0; k < K; ++k) scale = std::max(scale, std::abs(std::complex<double>(out[2 * (j * K + k)], out[2 * (j * K + k) + 1])));
    for (int64_t k = 0; k < K; ++k) {
      if (2 * k == M) continue;  // z is infinite there: the limit is checked below
      const cl ref = naive(p, h, M, k);
      err = std::max(err, static_cast<double>(std::abs(cl(out[2 * (j * K + k)], out[2 * (j * K + k) + 1]) - ref)));
    }
    S4OP_CHECK(err <= 1e-9 * scale);
    if (M % 2 == 0 && M >= 2) {  // Nyquist: sum_n Re(v00)
      const long double dt = std::exp(static_cast<long double>(p.log_dt[h]));
      long double s = 0;
      for (int64_t n = 0; n < N2; ++n) {
        const int64_t i = h * N2 + n;
        s += (dt * cl(p.B[2 * i], p.B[2 * i + 1]) * cl(p.C[2 * i], p.C[2 * i + 1])).real();
      }
      S4OP_CHECK(std::fabs(out[2 * (j * K + K - 1)] - static_cast<double>(s)) <= 1e-12 * scale + 1e-300);
      S4OP_CHECK(std::fabs(out[2 * (j * K + K - 1) + 1]) <= 1e-12 * scale);
    }
    S4OP_CHECK(std::fabs(out[2 * j * K + 1]) <= 1e-13 * scale);  // DC is real
  }
}

void test_float_vs_double_and_threads() {
  for (int64_t M : {1, 2, 7, 1000, 4096, 16384}) {
    Params p = make(5, 32, static_cast<unsigned>(M));
    for (auto* v : {&p.log_dt, &p.A_real, &p.A_imag, &p.B, &p.P, &p.C})  // the float inputs, exactly, for both
      for (double& x : *v) x = static_cast<float>(x);
    const std::vector<int64_t> rows = {3, 0, 3, 4};
    const auto d = spectrum<double>(p, rows, M, 1);
    const auto f1 = spectrum<float>(p, rows, M, 1);
    const auto f2 = spectrum<float>(p, rows, M, 2);
    S4OP_CHECK(f1 == f2);  // bitwise independent of the thread count
    const int64_t K = M / 2 + 1;
    for (size_t j = 0; j < rows.size(); ++j) {
      double scale = 0, err = 0;
      for (int64_t i = 0; i < 2 * K; ++i) {
        scale = std::max(scale, std::fabs(d[j * 2 * K + i]));
        err = std::max(err, std::fabs(d[j * 2 * K + i] - static_cast<double>(f1[j * 2 * K + i])));
      }
      if (err > 2e-5 * scale) std::fprintf(stderr, "M=%lld row %zu: float error %.3g of %.3g\n", (long long)M, j, err / scale, scale);
      S4OP_CHECK(err <= 2e-5 * scale);
    }
    for (int64_t i = 0; i < 2 * K; ++i) S4OP_CHECK(d[i] == d[2 * 2 * K + i]);  // rows 3 and 3 agree
  }
}

void test_conv_variant() {
  for (auto [M, L] : {std::pair<int64_t, int64_t>{64, 64}, {64, 40}, {100, 1}, {4096, 3000}}) {
    Params p = make(3, 16, static_cast<unsigned>(M + L));
    const int64_t n_fft = s4op::cpu::next_fast_size(2 * L - 1) < L ? L : s4op::cpu::next_fast_size(2 * L - 1);
    const std::vector<int64_t> rows = {2, 0};
    const auto kf = spectrum<double>(p, rows, M, 1);
    std::vector<double> out(rows.size() * (n_fft / 2 + 1) * 2);
    auto a = p.log_dt, b = p.A_real, c = p.A_imag, d = p.B, e = p.P, f = p.C;
    dplr_conv_spectrum_f64(a.data(), b.data(), c.data(), d.data(), e.data(), f.data(), p.H, p.N2, rows.data(), 2, M,
                           L, n_fft, out.data(), 2);
    s4op::cpu::RealFFT<double> inv(M), fwd(n_fft);
    std::vector<double> work(std::max(inv.work_size(), fwd.work_size())), taps(L);
    std::vector<std::complex<double>> X(n_fft / 2 + 1);
    for (size_t j = 0; j < rows.size(); ++j) {
      inv.inverse(reinterpret_cast<const std::complex<double>*>(kf.data()) + j * (M / 2 + 1), taps.data(), L, work.data());
      fwd.forward(taps.data(), L, X.data(), work.data());
      for (int64_t k = 0; k <= n_fft / 2; ++k) {
        S4OP_CHECK(std::abs(X[k] - std::complex<double>(out[2 * (j * (n_fft / 2 + 1) + k)],
                                                       out[2 * (j * (n_fft / 2 + 1) + k) + 1])) <= 1e-12 * (1 + std::abs(X[k])));
      }
    }
  }
}

void test_bad_arguments_and_nan_rows() {
  Params p = make(3, 4, 1);
  auto a = p.log_dt, b = p.A_real, c = p.A_imag, d = p.B, e = p.P, f = p.C;
  std::vector<double> out(3 * 9 * 2);
  auto throws = [&](auto&& fn) {
    try {
      fn();
    } catch (const std::invalid_argument&) {
      return true;
    }
    return false;
  };
  const std::vector<int64_t> bad = {3}, ok = {0, 1, 2};
  S4OP_CHECK(throws([&] { dplr_spectrum_f64(a.data(), b.data(), c.data(), d.data(), e.data(), f.data(), 3, 4, bad.data(), 1, 16, out.data(), 1); }));
  S4OP_CHECK(throws([&] { dplr_spectrum_f64(a.data(), b.data(), c.data(), d.data(), e.data(), f.data(), 3, 4, ok.data(), 3, 0, out.data(), 1); }));
  S4OP_CHECK(throws([&] { dplr_spectrum_f64(nullptr, b.data(), c.data(), d.data(), e.data(), f.data(), 3, 4, ok.data(), 3, 16, out.data(), 1); }));
  S4OP_CHECK(throws([&] { dplr_spectrum_f64(a.data(), b.data(), c.data(), d.data(), e.data(), f.data(), 3, 4, ok.data(), 3, 16, out.data(), 0); }));
  S4OP_CHECK(throws([&] { dplr_conv_spectrum_f64(a.data(), b.data(), c.data(), d.data(), e.data(), f.data(), 3, 4, ok.data(), 3, 16, 17, 40, out.data(), 1); }));
  S4OP_CHECK(throws([&] { dplr_conv_spectrum_f64(a.data(), b.data(), c.data(), d.data(), e.data(), f.data(), 3, 4, ok.data(), 3, 14 * 7, 10, 20, out.data(), 1); }));
  c[1 * 4 + 2] = std::nan("");  // row 1 only
  dplr_spectrum_f64(a.data(), b.data(), c.data(), d.data(), e.data(), f.data(), 3, 4, ok.data(), 3, 16, out.data(), 2);
  for (int64_t i = 0; i < 18; ++i) S4OP_CHECK(std::isfinite(out[i]) && std::isfinite(out[36 + i]));
  S4OP_CHECK(std::isnan(out[18]));
}

int main() {
  for (auto [H, N2, M] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {1, 4, 2}, {3, 8, 7}, {5, 16, 100},
                          {2, 32, 1000}, {2, 32, 3 * 4096}}) {
    test_against_naive(H, N2, M);
  }
  test_float_vs_double_and_threads();
  test_conv_variant();
  test_bad_arguments_and_nan_rows();
  S4OP_TEST_MAIN_END();
}
