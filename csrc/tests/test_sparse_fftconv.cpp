// sparse_fftconv against a direct (scalar, double) causal convolution; identity on pruned rows; thread
// counts; argument validation.
#include "s4op/sparse_fftconv.h"

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

#include "check.h"
#include "s4op/fft.h"

namespace {

template <typename T>
struct Case {
  int64_t B, H, L, n;
  std::vector<int64_t> active;
  std::vector<T> u, K, D;
  std::vector<std::complex<T>> k_f;
};

template <typename T>
Case<T> make_case(int64_t B, int64_t H, int64_t L, std::vector<int64_t> active, unsigned seed) {
  Case<T> c{B, H, L, s4op::cpu::next_fast_size(2 * L - 1), std::move(active), {}, {}, {}, {}};
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal;
  const int64_t A = static_cast<int64_t>(c.active.size());
  for (int64_t i = 0; i < B * H * L; ++i) c.u.push_back(static_cast<T>(normal(rng)));
  for (int64_t i = 0; i < A * L; ++i) c.K.push_back(static_cast<T>(normal(rng) * std::exp(-double(i % L) / 30.0)));
  for (int64_t i = 0; i < A; ++i) c.D.push_back(static_cast<T>(normal(rng)));
  // Spectra by a naive DFT in double (independent of the FFT under test).
  const int64_t F = c.n / 2 + 1;
  for (int64_t j = 0; j < A; ++j) {
    for (int64_t f = 0; f < F; ++f) {
      std::complex<double> acc = 0;
      for (int64_t t = 0; t < L; ++t) {
        const double ang = -2.0 * M_PI * double((f * t) % c.n) / double(c.n);
        acc += double(c.K[j * L + t]) * std::complex<double>(std::cos(ang), std::sin(ang));
      }
      c.k_f.push_back(std::complex<T>(acc));
    }
  }
  return c;
}

template <typename T>
std::vector<T> run(const Case<T>& c, int threads) {
  std::vector<T> y(c.u.size(), T(-7));
  const int64_t A = static_cast<int64_t>(c.active.size());
  if constexpr (std::is_same_v<T, float>) {
    s4op::cpu::sparse_fftconv_f32(c.u.data(), c.k_f.data(), c.D.data(), c.active.data(), c.B, c.H, c.L, A, c.n,
                                  y.data(), threads);
  } else {
    s4op::cpu::sparse_fftconv_f64(c.u.data(), c.k_f.data(), c.D.data(), c.active.data(), c.B, c.H, c.L, A, c.n,
                                  y.data(), threads);
  }
  return y;
}

template <typename T>
void check_case(int64_t B, int64_t H, int64_t L, std::vector<int64_t> active, double tol) {
  const Case<T> c = make_case<T>(B, H, L, active, static_cast<unsigned>(B * 1000 + H * 10 + L));
  const std::vector<T> y = run(c, 1);
  double max_err = 0, max_ref = 0;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0, j = 0; h < H; ++h) {
      const T* u = &c.u[(b * H + h) * L];
      const T* out = &y[(b * H + h) * L];
      const bool is_active = j < int64_t(active.size()) && active[j] == h;
      for (int64_t t = 0; t < L; ++t) {
        if (!is_active) {
          S4OP_CHECK(out[t] == u[t]);  // identity, bit for bit
          continue;
        }
        double ref = double(c.D[j]) * double(u[t]);
        for (int64_t s = 0; s <= t; ++s) ref += double(c.K[j * L + s]) * double(u[t - s]);
        max_err = std::max(max_err, std::abs(double(out[t]) - ref));
        max_ref = std::max(max_ref, std::abs(ref));
      }
      if (is_active) ++j;
    }
  }
  S4OP_CHECK(max_err <= tol * std::max(max_ref, 1e-30));
  const std::vector<T> y2 = run(c, 2), y3 = run(c, 3);
  S4OP_CHECK(std::memcmp(y.data(), y2.data(), y.size() * sizeof(T)) == 0);
  S4OP_CHECK(std::memcmp(y.data(), y3.data(), y.size() * sizeof(T)) == 0);
}

// y (B, H', L) with H' = H + extra_rows (and extra_elems more elements per batch): the core's output rows,
// the rest of each batch filled with *extra (or left at -7 when extra is null).
template <typename T>
std::vector<T> run_epilogue(const Case<T>& c, int threads, s4op::cpu::Epilogue e, const T* extra = nullptr,
                            int64_t extra_rows = 0, int64_t extra_elems = 0) {
  const int64_t ys = (c.H + extra_rows) * c.L + extra_elems;
  std::vector<T> y(static_cast<size_t>(c.B * ys), T(-7));
  const int64_t A = static_cast<int64_t>(c.active.size());
  if constexpr (std::is_same_v<T, float>) {
    s4op::cpu::sparse_fftconv_f32(c.u.data(), c.k_f.data(), c.D.data(), c.active.data(), c.B, c.H, c.L, A, c.n,
                                  y.data(), threads, e, ys, extra);
  } else {
    s4op::cpu::sparse_fftconv_f64(c.u.data(), c.k_f.data(), c.D.data(), c.active.data(), c.B, c.H, c.L, A, c.n,
                                  y.data(), threads, e, ys, extra);
  }
  return y;
}

double gelu_ref(double x) { return 0.5 * x * std::erfc(-x / std::sqrt(2.0)); }

// The GELU epilogue equals GELU (in double) of the identity epilogue's rows (pruned rows become GELU(u));
// results do not depend on the thread count.
template <typename T>
void check_epilogue(int64_t B, int64_t H, int64_t L, std::vector<int64_t> active, double tol) {
  using s4op::cpu::Epilogue;
  const Case<T> c = make_case<T>(B, H, L, active, static_cast<unsigned>(7 + B * 100 + H * 10 + L));
  const std::vector<T> plain = run(c, 1);
  const std::vector<T> g = run_epilogue(c, 1, Epilogue::gelu);
  double max_err = 0, max_ref = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    const double ref = gelu_ref(double(plain[i]));
    max_err = std::max(max_err, std::abs(double(g[i]) - ref));
    max_ref = std::max(max_ref, std::abs(ref));
  }
  S4OP_CHECK(max_err <= tol * std::max(max_ref, 1e-30));
  const std::vector<T> g2 = run_epilogue(c, 2, Epilogue::gelu);
  S4OP_CHECK(std::memcmp(g.data(), g2.data(), g.size() * sizeof(T)) == 0);
}

// extra_value fills the rest of each batch's stride (whole extra rows, and a partial one when the stride is
// not a multiple of L) inside the parallel loop: the core's rows are those of the dense call, every extra
// element is the value (never passed through the epilogue), for any thread count.
template <typename T>
void check_extra_value(int64_t B, int64_t H, int64_t L, std::vector<int64_t> active, int64_t extra_rows,
                       int64_t extra_elems) {
  using s4op::cpu::Epilogue;
  const Case<T> c = make_case<T>(B, H, L, active, static_cast<unsigned>(11 + B * 100 + H * 10 + L));
  const int64_t ys = (H + extra_rows) * L + extra_elems;
  const T one = T(1);
  for (Epilogue e : {Epilogue::identity, Epilogue::gelu}) {
    const std::vector<T> dense = run_epilogue(c, 1, e);
    const std::vector<T> y1 = run_epilogue(c, 1, e, &one, extra_rows, extra_elems);
    for (int64_t b = 0; b < B; ++b) {
      S4OP_CHECK(std::memcmp(&y1[b * ys], &dense[b * H * L], H * L * sizeof(T)) == 0);
      for (int64_t i = H * L; i < ys; ++i) S4OP_CHECK(y1[b * ys + i] == one);
    }
    for (int threads : {2, 3, 7}) {
      const std::vector<T> yt = run_epilogue(c, threads, e, &one, extra_rows, extra_elems);
      S4OP_CHECK(std::memcmp(y1.data(), yt.data(), y1.size() * sizeof(T)) == 0);
    }
    // Without extra_value the extra elements are left alone.
    const std::vector<T> untouched = run_epilogue(c, 2, e, static_cast<const T*>(nullptr), extra_rows, extra_elems);
    for (int64_t b = 0; b < B; ++b) {
      S4OP_CHECK(std::memcmp(&untouched[b * ys], &dense[b * H * L], H * L * sizeof(T)) == 0);
      for (int64_t i = H * L; i < ys; ++i) S4OP_CHECK(untouched[b * ys + i] == T(-7));
    }
  }
}

void check_gelu_f32() {
  // Phi's absolute error is about 3e-7 (A&S 7.1.28) and the Taylor branch is tighter.
  double worst = 0;
  for (int i = -200000; i <= 200000; ++i) {
    const float x = static_cast<float>(i) * 1e-4f;
    float y;
    s4op::cpu::gelu_f32(&x, &y, 1);
    worst = std::max(worst, std::abs(double(y) - gelu_ref(double(x))) / std::max(1.0, std::abs(double(x))));
  }
  S4OP_CHECK(worst < 5e-7);
  const float specials[] = {0.f, -0.f, 1e-30f, -1e-30f, 1e30f, -1e30f, NAN, INFINITY};
  float out[8];
  s4op::cpu::gelu_f32(specials, out, 8);
  S4OP_CHECK(out[0] == 0.f && out[1] == 0.f && out[4] == 1e30f && out[5] == -0.f);
  S4OP_CHECK(std::isnan(out[6]) && out[7] == INFINITY);
  S4OP_CHECK(std::abs(out[2] - 0.5e-30f) < 1e-36f);
  // in place, and lengths that are not a multiple of any vector width
  std::vector<float> v(37), w(37);
  for (int i = 0; i < 37; ++i) v[i] = w[i] = 0.37f * float(i - 18);
  s4op::cpu::gelu_f32(v.data(), v.data(), 37);
  s4op::cpu::gelu_f32(w.data(), w.data(), 37);
  S4OP_CHECK(v == w && std::abs(v[20] - float(gelu_ref(0.37 * 2))) < 1e-6f);
}

template <typename Fn>
bool throws(Fn&& fn) {
  try {
    fn();
  } catch (const std::invalid_argument&) {
    return true;
  }
  return false;
}

}  // namespace

int main() {
  for (int pass = 0; pass < 2; ++pass) {
    const double tol = pass == 0 ? 2e-6 : 1e-13;
    auto go = [&](int64_t B, int64_t H, int64_t L, std::vector<int64_t> active) {
      if (pass == 0) check_case<float>(B, H, L, active, tol);
      else check_case<double>(B, H, L, active, tol);
    };
    go(1, 1, 1, {0});
    go(1, 1, 1, {});
    go(2, 3, 2, {1});
    go(3, 7, 17, {0, 2, 3, 6});
    go(1, 5, 100, {0, 1, 2, 3, 4});
    go(2, 4, 257, {});
    go(1, 13, 300, {1, 5, 12});
    go(1, 2, 1000, {1});
  }
  check_gelu_f32();
  for (int pass = 0; pass < 2; ++pass) {
    auto go = [&](int64_t B, int64_t H, int64_t L, std::vector<int64_t> active) {
      if (pass == 0) check_epilogue<float>(B, H, L, active, 1e-6);
      else check_epilogue<double>(B, H, L, active, 1e-14);
    };
    go(1, 1, 1, {0});
    go(2, 3, 2, {1});
    go(3, 7, 17, {0, 2, 3, 6});
    go(2, 4, 257, {});
    go(1, 13, 300, {1, 5, 12});
  }
  {
    // y as the first H channels of a (B, H + 1, L) buffer: same rows, the extra channel untouched.
    const Case<float> w = make_case<float>(3, 5, 33, {0, 3}, 9);
    const std::vector<float> dense = run(w, 2);
    std::vector<float> big(static_cast<size_t>(3 * 6 * 33), 1.f);
    s4op::cpu::sparse_fftconv_f32(w.u.data(), w.k_f.data(), w.D.data(), w.active.data(), 3, 5, 33, 2, w.n,
                                  big.data(), 2, s4op::cpu::Epilogue::identity, 6 * 33);
    for (int64_t b = 0; b < 3; ++b) {
      S4OP_CHECK(std::memcmp(&big[b * 6 * 33], &dense[b * 5 * 33], 5 * 33 * sizeof(float)) == 0);
      for (int64_t t = 0; t < 33; ++t) S4OP_CHECK(big[(b * 6 + 5) * 33 + t] == 1.f);
    }
    S4OP_CHECK(throws([&] {
      s4op::cpu::sparse_fftconv_f32(w.u.data(), w.k_f.data(), w.D.data(), w.active.data(), 3, 5, 33, 2, w.n,
                                    big.data(), 1, s4op::cpu::Epilogue::identity, 4 * 33);
    }));
    // A refused call with extra_value writes nothing, the extra channel included.
    const float two = 2.f;
    const int64_t bad_order[] = {3, 0};
    std::vector<float> before = big;
    S4OP_CHECK(throws([&] {
      s4op::cpu::sparse_fftconv_f32(w.u.data(), w.k_f.data(), w.D.data(), bad_order, 3, 5, 33, 2, w.n, big.data(), 2,
                                    s4op::cpu::Epilogue::identity, 6 * 33, &two);
    }));
    S4OP_CHECK(big == before);
    // With extra_value the extra channel of the last batch is written too, so u may not start there; without
    // it that is no overlap.
    std::vector<float> shared(static_cast<size_t>(2 * 6 * 33 + 2 * 5 * 33));
    float* ys_ = shared.data();
    float* us_ = shared.data() + (6 * 33 + 5 * 33);  // right after the last batch's H channels
    std::copy(w.u.begin(), w.u.begin() + 2 * 5 * 33, us_);
    S4OP_CHECK(throws([&] {
      s4op::cpu::sparse_fftconv_f32(us_, w.k_f.data(), w.D.data(), w.active.data(), 2, 5, 33, 2, w.n, ys_, 1,
                                    s4op::cpu::Epilogue::identity, 6 * 33, &two);
    }));
    S4OP_CHECK(!throws([&] {
      s4op::cpu::sparse_fftconv_f32(us_, w.k_f.data(), w.D.data(), w.active.data(), 2, 5, 33, 2, w.n, ys_, 1,
                                    s4op::cpu::Epilogue::identity, 6 * 33);
    }));
  }
  for (int pass = 0; pass < 2; ++pass) {
    auto go = [&](int64_t B, int64_t H, int64_t L, std::vector<int64_t> active, int64_t rows, int64_t elems) {
      if (pass == 0) check_extra_value<float>(B, H, L, active, rows, elems);
      else check_extra_value<double>(B, H, L, active, rows, elems);
    };
    go(3, 5, 33, {0, 3}, 1, 0);  // the folded bias: one channel of ones
    go(2, 4, 17, {1, 2}, 3, 5);  // several rows and a partial one
    go(1, 2, 8, {}, 0, 3);       // only a partial row; no active channel
    go(4, 1, 1, {0}, 2, 0);      // L = 1
  }
  // Validation: bad arguments throw std::invalid_argument, never crash.
  Case<float> c = make_case<float>(1, 4, 10, {0, 2}, 1);
  std::vector<float> y(c.u.size());
  auto call = [&](const int64_t* act, int64_t A, int64_t n, const float* u, float* out) {
    s4op::cpu::sparse_fftconv_f32(u, c.k_f.data(), c.D.data(), act, 1, 4, 10, A, n, out, 1);
  };
  const int64_t bad_high[] = {0, 4}, bad_dup[] = {2, 2}, bad_order[] = {2, 0}, bad_neg[] = {-1, 2};
  S4OP_CHECK(throws([&] { call(bad_high, 2, c.n, c.u.data(), y.data()); }));
  S4OP_CHECK(throws([&] { call(bad_dup, 2, c.n, c.u.data(), y.data()); }));
  S4OP_CHECK(throws([&] { call(bad_order, 2, c.n, c.u.data(), y.data()); }));
  S4OP_CHECK(throws([&] { call(bad_neg, 2, c.n, c.u.data(), y.data()); }));
  S4OP_CHECK(throws([&] { call(c.active.data(), 2, 18, c.u.data(), y.data()); }));   // too short
  S4OP_CHECK(throws([&] { call(c.active.data(), 2, 21, c.u.data(), y.data()); }));   // 3*7: not fast
  S4OP_CHECK(throws([&] { call(c.active.data(), 5, c.n, c.u.data(), y.data()); }));  // A > H
  S4OP_CHECK(throws([&] { call(c.active.data(), 2, c.n, nullptr, y.data()); }));
  S4OP_CHECK(throws([&] { call(c.active.data(), 2, c.n, c.u.data(), c.u.data()); }));  // aliasing
  S4OP_CHECK(throws([&] { call(nullptr, 2, c.n, c.u.data(), y.data()); }));
  S4OP_TEST_MAIN_END();
}
