// s4op::cpu::ssm_step / ssm_chunk_state and their coefficient set-ups: S4D stepped sample by sample against the
// causal convolution with s4d_kernel's kernel (double, long L), S4 (rank-1 DPLR, bilinear) against the dense
// recurrence of the full conjugate-symmetric system built here in double; the chunk state (zero-input response +
// state after the chunk) against the steps; pruned channels as identity; the GELU epilogue; float against
// double; results independent of the thread count; in-place state; bad arguments.
#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdint>
#include <cstdio>
#include <random>
#include <stdexcept>
#include <vector>

#include "check.h"
#include "s4op/s4d_kernel.h"
#include "s4op/ssm_step.h"

namespace {

using cd = std::complex<double>;
using s4op::cpu::Epilogue;

struct Rng {  // mt19937_64's sequence is fixed by the standard; the distributions are derived here
  explicit Rng(uint64_t seed) : eng(seed) {}
  double uniform(double lo, double hi) { return lo + (hi - lo) * (static_cast<double>(eng() >> 11) * 0x1p-53); }
  double normal() {
    const double u1 = (static_cast<double>(eng() >> 11) + 1.0) * 0x1p-53;
    const double u2 = static_cast<double>(eng() >> 11) * 0x1p-53;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  std::mt19937_64 eng;
};

double rel_err(const std::vector<double>& a, const std::vector<double>& e) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < e.size(); ++i) {
    diff = std::max(diff, std::abs(a[i] - e[i]));
    scale = std::max(scale, std::abs(e[i]));
  }
  return scale > 0 ? diff / scale : diff;
}

template <class T>
std::vector<double> as_double(const std::vector<T>& v) {
  return std::vector<double>(v.begin(), v.end());
}

// Parameters of H channels (rounded to float so both precisions see the same values).
struct Params {
  int64_t H, N2;
  std::vector<double> C, log_dt, A_re, A_im, B, P, D;  // S4D uses C, log_dt, A_re (log_A_real), A_im, D
};

Params make_params(int64_t H, int64_t N2, uint64_t seed, bool legs) {
  Rng rng(seed);
  auto f = [](double x) { return static_cast<double>(static_cast<float>(x)); };
  Params p{H, N2, {}, {}, {}, {}, {}, {}, {}};
  for (int64_t h = 0; h < H; ++h) {
    p.log_dt.push_back(f(rng.uniform(std::log(1e-3), std::log(1e-1))));
    p.D.push_back(f(rng.normal()));
    for (int64_t n = 0; n < N2; ++n) {
      p.A_re.push_back(f(std::log(0.5) + 0.4 * rng.normal()));
      p.A_im.push_back(f(3.141592653589793 * static_cast<double>(n) + 0.3 * rng.normal()));
      const double r = legs ? std::sqrt(static_cast<double>(n) + 0.5) : 0.5;
      for (int i = 0; i < 2; ++i) {
        p.C.push_back(f(rng.normal() * 0.5));
        p.B.push_back(f(rng.normal() * (legs ? 1.0 : 0.7)));
        p.P.push_back(f(rng.normal() * r * std::sqrt(0.5)));
      }
    }
  }
  return p;
}

std::vector<double> random_vec(size_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<double> v(n);
  for (auto& x : v) x = static_cast<double>(static_cast<float>(rng.normal()));
  return v;
}

// Runs ssm_step over L samples of u {B, H, L} from state x0 and returns y {B, H, L}.
template <class T>
std::vector<double> run_steps(const std::vector<T>& modes, const std::vector<T>& scal, int fields,
                              const std::vector<int64_t>& active, int64_t B, int64_t H, int64_t N2, int64_t L,
                              const std::vector<double>& u, std::vector<T>& x, Epilogue ep = Epilogue::identity,
                              int threads = 1) {
  const int64_t A = static_cast<int64_t>(active.size());
  std::vector<T> ut(static_cast<size_t>(B * H)), yt(static_cast<size_t>(B * H));
  std::vector<double> y(static_cast<size_t>(B * H * L));
  for (int64_t t = 0; t < L; ++t) {
    for (int64_t i = 0; i < B * H; ++i) ut[i] = static_cast<T>(u[i * L + t]);
    if constexpr (std::is_same_v<T, float>) {
      s4op::cpu::ssm_step_f32(modes.data(), scal.data(), fields, active.data(), B, H, A, N2, ut.data(), x.data(),
                              x.data(), yt.data(), ep, threads);
    } else {
      s4op::cpu::ssm_step_f64(modes.data(), scal.data(), fields, active.data(), B, H, A, N2, ut.data(), x.data(),
                              x.data(), yt.data(), ep, threads);
    }
    for (int64_t i = 0; i < B * H; ++i) y[i * L + t] = yt[i];
  }
  return y;
}

template <class T>
void s4d_setup(const Params& p, const std::vector<int64_t>& rows, std::vector<T>& modes, std::vector<T>& scal) {
  const int64_t A = static_cast<int64_t>(rows.size());
  modes.assign(static_cast<size_t>(A * 3 * 2 * p.N2), T(0));
  scal.assign(static_cast<size_t>(A * 3), T(0));
  auto C = std::vector<T>(p.C.begin(), p.C.end()), dt = std::vector<T>(p.log_dt.begin(), p.log_dt.end()),
       re = std::vector<T>(p.A_re.begin(), p.A_re.end()), im = std::vector<T>(p.A_im.begin(), p.A_im.end()),
       D = std::vector<T>(p.D.begin(), p.D.end());
  if constexpr (std::is_same_v<T, float>) {
    s4op::cpu::s4d_step_setup_f32(C.data(), dt.data(), re.data(), im.data(), D.data(), p.H, p.N2, rows.data(), A,
                                  modes.data(), scal.data());
  } else {
    s4op::cpu::s4d_step_setup_f64(C.data(), dt.data(), re.data(), im.data(), D.data(), p.H, p.N2, rows.data(), A,
                                  modes.data(), scal.data());
  }
}

template <class T>
void dplr_setup(const Params& p, const std::vector<int64_t>& rows, std::vector<T>& modes, std::vector<T>& scal) {
  const int64_t A = static_cast<int64_t>(rows.size());
  modes.assign(static_cast<size_t>(A * 7 * 2 * p.N2), T(0));
  scal.assign(static_cast<size_t>(A * 3), T(0));
  auto cv = [](const std::vector<double>& v) { return std::vector<T>(v.begin(), v.end()); };
  auto dt = cv(p.log_dt), re = cv(p.A_re), im = cv(p.A_im), B = cv(p.B), P = cv(p.P), C = cv(p.C), D = cv(p.D);
  if constexpr (std::is_same_v<T, float>) {
    s4op::cpu::dplr_step_setup_f32(dt.data(), re.data(), im.data(), B.data(), P.data(), C.data(), D.data(), p.H,
                                   p.N2, rows.data(), A, modes.data(), scal.data());
  } else {
    s4op::cpu::dplr_step_setup_f64(dt.data(), re.data(), im.data(), B.data(), P.data(), C.data(), D.data(), p.H,
                                   p.N2, rows.data(), A, modes.data(), scal.data());
  }
}

// S4D: the steps equal the causal convolution with the kernel (+ D u) on active channels, identity elsewhere.
void test_s4d_steps_equal_the_convolution() {
  const int64_t B = 2, H = 5, N2 = 6, L = 3000;
  const Params p = make_params(H, N2, 11, false);
  const std::vector<int64_t> active = {0, 2, 3};
  const auto u = random_vec(static_cast<size_t>(B * H * L), 12);
  std::vector<double> K(static_cast<size_t>(3 * L));
  s4op::cpu::s4d_kernel_f64(p.C.data(), p.log_dt.data(), p.A_re.data(), p.A_im.data(), H, N2, active.data(), 3, L,
                            K.data(), 1);
  std::vector<double> expected(u);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = 0; j < 3; ++j) {
      const int64_t h = active[j];
      for (int64_t t = 0; t < L; ++t) {
        long double acc = 0;
        for (int64_t s = 0; s <= t; ++s) acc += static_cast<long double>(K[j * L + t - s]) * u[(b * H + h) * L + s];
        expected[(b * H + h) * L + t] = static_cast<double>(acc) + p.D[h] * u[(b * H + h) * L + t];
      }
    }
  std::vector<double> m64, s64;
  s4d_setup(p, active, m64, s64);
  std::vector<double> x64(static_cast<size_t>(B * 3 * N2 * 2), 0.0);
  const double e64 = rel_err(run_steps(m64, s64, 3, active, B, H, N2, L, u, x64), expected);
  std::vector<float> m32, s32;
  s4d_setup(p, active, m32, s32);
  std::vector<float> x32(static_cast<size_t>(B * 3 * N2 * 2), 0.f);
  const double e32 = rel_err(run_steps(m32, s32, 3, active, B, H, N2, L, u, x32), expected);
  std::printf("s4d step vs convolution, L=%lld: f64 %.2e, f32 %.2e\n", static_cast<long long>(L), e64, e32);
  S4OP_CHECK(e64 < 1e-12);
  S4OP_CHECK(e32 < 2e-5);
}

// Dense complex solve (Gaussian elimination, partial pivoting): X = M^-1 R, M {n, n}, R {n, k}.
std::vector<cd> solve(std::vector<cd> M, std::vector<cd> R, int64_t n, int64_t k) {
  for (int64_t c = 0; c < n; ++c) {
    int64_t piv = c;
    for (int64_t r = c + 1; r < n; ++r)
      if (std::abs(M[r * n + c]) > std::abs(M[piv * n + c])) piv = r;
    for (int64_t q = 0; q < n; ++q) std::swap(M[c * n + q], M[piv * n + q]);
    for (int64_t q = 0; q < k; ++q) std::swap(R[c * k + q], R[piv * k + q]);
    for (int64_t r = c + 1; r < n; ++r) {
      const cd f = M[r * n + c] / M[c * n + c];
      for (int64_t q = c; q < n; ++q) M[r * n + q] -= f * M[c * n + q];
      for (int64_t q = 0; q < k; ++q) R[r * k + q] -= f * R[c * k + q];
    }
  }
  for (int64_t c = n - 1; c >= 0; --c) {
    for (int64_t q = 0; q < k; ++q) {
      cd acc = R[c * k + q];
      for (int64_t r = c + 1; r < n; ++r) acc -= M[c * n + r] * R[r * k + q];
      R[c * k + q] = acc / M[c * n + c];
    }
  }
  return R;
}

// S4: the steps equal the dense bilinear recurrence of the full system, x' = dA x + dB u, y = C_f x' + D u.
void test_dplr_steps_equal_the_dense_recurrence(bool legs) {
  const int64_t B = 1, H = 3, N2 = legs ? 16 : 5, L = 2000, n = 2 * N2;
  const Params p = make_params(H, N2, legs ? 21 : 22, legs);
  const std::vector<int64_t> active = {0, 1, 2};
  const auto u = random_vec(static_cast<size_t>(B * H * L), 23);
  std::vector<double> expected(u);
  for (int64_t h = 0; h < H; ++h) {
    const double dt = std::exp(p.log_dt[h]);
    std::vector<cd> Af(static_cast<size_t>(n * n)), Bf(static_cast<size_t>(n)), Cf(static_cast<size_t>(n)),
        Pf(static_cast<size_t>(n));
    for (int64_t k = 0; k < N2; ++k) {
      const int64_t i = h * N2 + k;
      Pf[k] = {p.P[2 * i], p.P[2 * i + 1]};
      Pf[k + N2] = std::conj(Pf[k]);
      Bf[k] = {p.B[2 * i], p.B[2 * i + 1]};
      Bf[k + N2] = std::conj(Bf[k]);
      Cf[k] = {p.C[2 * i], p.C[2 * i + 1]};
      Cf[k + N2] = std::conj(Cf[k]);
      const cd lam(-std::exp(p.A_re[i]), -p.A_im[i]);
      Af[k * n + k] = lam;
      Af[(k + N2) * n + k + N2] = std::conj(lam);
    }
    std::vector<cd> Ml(static_cast<size_t>(n * n)), Rr(static_cast<size_t>(n * (n + 1)));
    for (int64_t r = 0; r < n; ++r) {
      for (int64_t c = 0; c < n; ++c) {
        const cd a = Af[r * n + c] - Pf[r] * std::conj(Pf[c]);
        Ml[r * n + c] = (r == c ? 1.0 : 0.0) - dt / 2 * a;
        Rr[r * (n + 1) + c] = (r == c ? 1.0 : 0.0) + dt / 2 * a;
      }
      Rr[r * (n + 1) + n] = dt * Bf[r];
    }
    const auto X = solve(Ml, Rr, n, n + 1);  // [dA | dB]
    std::vector<cd> x(static_cast<size_t>(n)), nx(static_cast<size_t>(n));
    for (int64_t t = 0; t < L; ++t) {
      const double ut = u[h * L + t];
      cd y = 0;
      for (int64_t r = 0; r < n; ++r) {
        cd acc = X[r * (n + 1) + n] * ut;
        for (int64_t c = 0; c < n; ++c) acc += X[r * (n + 1) + c] * x[c];
        nx[r] = acc;
        y += Cf[r] * acc;
      }
      x.swap(nx);
      expected[h * L + t] = y.real() + p.D[h] * ut;
    }
  }
  std::vector<double> m64, s64;
  dplr_setup(p, active, m64, s64);
  std::vector<double> x64(static_cast<size_t>(B * H * N2 * 2), 0.0);
  const double e64 = rel_err(run_steps(m64, s64, 7, active, B, H, N2, L, u, x64), expected);
  std::vector<float> m32, s32;
  dplr_setup(p, active, m32, s32);
  std::vector<float> x32(static_cast<size_t>(B * H * N2 * 2), 0.f);
  const double e32 = rel_err(run_steps(m32, s32, 7, active, B, H, N2, L, u, x32), expected);
  std::printf("dplr step (%s) vs dense recurrence, L=%lld: f64 %.2e, f32 %.2e\n", legs ? "LegS-like" : "random",
              static_cast<long long>(L), e64, e32);
  S4OP_CHECK(e64 < 1e-11);
  S4OP_CHECK(e32 < 2e-5);
}

// The chunk state: conv-free part equals the steps' outputs minus the zero-state ones, state after the chunk equals
// the stepped state; for both kinds, with pruned channels and batch > 1, and in place.
template <int Fields>
void test_chunk_state_matches_the_steps() {
  const int64_t B = 3, H = 6, N2 = 4, L1 = 37, L2 = 53;
  const Params p = make_params(H, N2, 31 + Fields, Fields == 7);
  const std::vector<int64_t> active = {1, 4, 5};
  const int64_t A = 3;
  std::vector<double> modes, scal;
  if (Fields == 7) {
    dplr_setup(p, active, modes, scal);
  } else {
    s4d_setup(p, active, modes, scal);
  }
  const auto u1 = random_vec(static_cast<size_t>(B * H * L1), 32), u2 = random_vec(static_cast<size_t>(B * H * L2), 33);
  std::vector<double> x(static_cast<size_t>(B * A * N2 * 2), 0.0);
  run_steps(modes, scal, Fields, active, B, H, N2, L1, u1, x);  // some state
  std::vector<double> x_steps = x, x_zero(x.size(), 0.0);
  const auto y_steps = run_steps(modes, scal, Fields, active, B, H, N2, L2, u2, x_steps);
  const auto y_zero = run_steps(modes, scal, Fields, active, B, H, N2, L2, u2, x_zero);
  std::vector<double> y_free(static_cast<size_t>(B * A * L2));
  s4op::cpu::ssm_chunk_state_f64(modes.data(), scal.data(), Fields, active.data(), B, H, A, N2, L2, u2.data(),
                                 x.data(), x.data(), y_free.data(), 2);
  std::vector<double> got(y_zero), expected(y_steps);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = 0; j < A; ++j)
      for (int64_t t = 0; t < L2; ++t) got[(b * H + active[j]) * L2 + t] += y_free[(b * A + j) * L2 + t];
  S4OP_CHECK(rel_err(got, expected) < 1e-13);
  S4OP_CHECK(rel_err(x, x_steps) < 1e-13);
  std::vector<double> x_copy = x, out(x.size()), yf0(0);
  s4op::cpu::ssm_chunk_state_f64(modes.data(), scal.data(), Fields, active.data(), B, H, A, N2, 0, u2.data(),
                                 x_copy.data(), out.data(), yf0.data(), 1);
  S4OP_CHECK(out == x_copy);  // L = 0: the state passes unchanged
}

// Pruned channels are identity (then the epilogue); GELU applies to every channel; thread counts agree bitwise.
void test_pruned_identity_gelu_and_threads() {
  const int64_t B = 4, H = 300, N2 = 32;
  const Params p = make_params(H, N2, 41, true);
  std::vector<int64_t> active;
  for (int64_t h = 0; h < H; h += 2) active.push_back(h);
  const int64_t A = static_cast<int64_t>(active.size());
  std::vector<float> modes, scal;
  dplr_setup(p, active, modes, scal);
  const auto u = random_vec(static_cast<size_t>(B * H), 42);
  std::vector<float> uf(u.begin(), u.end()), x0(static_cast<size_t>(B * A * N2 * 2));
  const auto xr = random_vec(x0.size(), 43);
  std::copy(xr.begin(), xr.end(), x0.begin());
  std::vector<float> x1(x0.size()), x3(x0.size()), y1(static_cast<size_t>(B * H)), y3(y1.size()), yg(y1.size());
  s4op::cpu::ssm_step_f32(modes.data(), scal.data(), 7, active.data(), B, H, A, N2, uf.data(), x0.data(), x1.data(),
                          y1.data(), Epilogue::identity, 1);
  s4op::cpu::ssm_step_f32(modes.data(), scal.data(), 7, active.data(), B, H, A, N2, uf.data(), x0.data(), x3.data(),
                          y3.data(), Epilogue::identity, 3);
  S4OP_CHECK(x1 == x3 && y1 == y3);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 1; h < H; h += 2) S4OP_CHECK(y1[b * H + h] == uf[b * H + h]);
  s4op::cpu::ssm_step_f32(modes.data(), scal.data(), 7, active.data(), B, H, A, N2, uf.data(), x0.data(), x3.data(),
                          yg.data(), Epilogue::gelu, 2);
  double worst = 0;
  for (int64_t i = 0; i < B * H; ++i) {
    const double v = y1[i], g = 0.5 * v * std::erfc(-v / std::sqrt(2.0));
    worst = std::max(worst, std::abs(yg[i] - g) / std::max(1.0, std::abs(g)));
  }
  S4OP_CHECK(worst < 1e-6);
  // No active channel: every row is identity and the (empty) state is untouched.
  std::vector<float> ye(static_cast<size_t>(B * H));
  s4op::cpu::ssm_step_f32(nullptr, nullptr, 3, nullptr, B, H, 0, N2, uf.data(), nullptr, nullptr, ye.data(),
                          Epilogue::identity, 1);
  S4OP_CHECK(ye == uf);
}

template <class F>
bool throws(F&& f) {
  try {
    f();
  } catch (const std::invalid_argument&) {
    return true;
  }
  return false;
}

void test_bad_arguments() {
  const int64_t H = 4, N2 = 2;
  const Params p = make_params(H, N2, 51, false);
  const std::vector<int64_t> rows = {0, 3};
  std::vector<double> modes, scal;
  s4d_setup(p, rows, modes, scal);
  std::vector<double> u(8, 1.0), x(16, 0.0), y(8);
  const int64_t* act = rows.data();
  using s4op::cpu::ssm_step_f64;
  auto step = [&](int fields, const int64_t* a, int64_t B, int64_t Hh, int64_t A, int64_t n2, double* xo, double* yy,
                  int threads) {
    ssm_step_f64(modes.data(), scal.data(), fields, a, B, Hh, A, n2, u.data(), x.data(), xo, yy, Epilogue::identity,
                 threads);
  };
  S4OP_CHECK(!throws([&] { step(3, act, 2, H, 2, N2, x.data(), y.data(), 1); }));
  S4OP_CHECK(throws([&] { step(5, act, 2, H, 2, N2, x.data(), y.data(), 1); }));     // fields
  S4OP_CHECK(throws([&] { step(3, act, -1, H, 2, N2, x.data(), y.data(), 1); }));    // B
  S4OP_CHECK(throws([&] { step(3, act, 2, 0, 2, N2, x.data(), y.data(), 1); }));     // H
  S4OP_CHECK(throws([&] { step(3, act, 2, H, 5, N2, x.data(), y.data(), 1); }));     // A > H
  S4OP_CHECK(throws([&] { step(3, act, 2, H, 2, 0, x.data(), y.data(), 1); }));      // N2
  S4OP_CHECK(throws([&] { step(3, act, 2, H, 2, N2, x.data(), y.data(), 0); }));     // threads
  S4OP_CHECK(throws([&] { step(3, nullptr, 2, H, 2, N2, x.data(), y.data(), 1); }));  // null active
  S4OP_CHECK(throws([&] { step(3, act, 2, H, 2, N2, x.data() + 1, y.data(), 1); }));  // partial overlap of x_out
  S4OP_CHECK(throws([&] { step(3, act, 2, H, 2, N2, x.data(), x.data() + 8, 1); }));  // y overlaps x
  const std::vector<int64_t> bad = {3, 0};
  S4OP_CHECK(throws([&] { step(3, bad.data(), 2, H, 2, N2, x.data(), y.data(), 1); }));  // unsorted
  const std::vector<int64_t> out_of_range = {0, 4};
  S4OP_CHECK(throws([&] { step(3, out_of_range.data(), 2, H, 2, N2, x.data(), y.data(), 1); }));
  std::vector<double> m2(modes.size()), s2(scal.size());
  S4OP_CHECK(throws([&] {
    s4op::cpu::s4d_step_setup_f64(p.C.data(), p.log_dt.data(), p.A_re.data(), p.A_im.data(), p.D.data(), H, N2,
                                  out_of_range.data(), 2, m2.data(), s2.data());
  }));
  S4OP_CHECK(throws([&] {
    s4op::cpu::dplr_step_setup_f64(p.log_dt.data(), p.A_re.data(), nullptr, p.B.data(), p.P.data(), p.C.data(),
                                   p.D.data(), H, N2, rows.data(), 2, m2.data(), s2.data());
  }));
  S4OP_CHECK(throws([&] {
    s4op::cpu::ssm_chunk_state_f64(modes.data(), scal.data(), 3, act, 2, H, 2, N2, -1, u.data(), x.data(), x.data(),
                                   y.data(), 1);
  }));
}

}  // namespace

int main() {
  test_s4d_steps_equal_the_convolution();
  test_dplr_steps_equal_the_dense_recurrence(false);
  test_dplr_steps_equal_the_dense_recurrence(true);
  test_chunk_state_matches_the_steps<3>();
  test_chunk_state_matches_the_steps<7>();
  test_pruned_identity_gelu_and_threads();
  test_bad_arguments();
  S4OP_TEST_MAIN_END();
}
