// s4op::cpu::s4d_kernel_{f32,f64} against a direct double evaluation of the S4D kernel formula.
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
#include "s4op/s4d_kernel.h"

namespace {

using s4op::cpu::SimdPath;

// mt19937_64's output sequence is fixed by the standard; the std distributions are not, so
// uniforms and normals are derived here to keep the data identical across standard libraries.
struct Rng {
  explicit Rng(uint64_t seed) : eng(seed) {}
  double uniform(double lo, double hi) {
    return lo + (hi - lo) * (static_cast<double>(eng() >> 11) * 0x1p-53);
  }
  double normal() {
    const double u1 = (static_cast<double>(eng() >> 11) + 1.0) * 0x1p-53;
    const double u2 = static_cast<double>(eng() >> 11) * 0x1p-53;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  std::mt19937_64 eng;
};

enum class Init {
  kLin,     // the reference S4D init: log_A_real = log 0.5, A_imag = pi n,
            // log_dt U[log 1e-3, log 1e-1], C complex normal
  kRandom,  // log_A_real U[-3, 2], A_imag = pi n + U[-5, 5] (some modes random in [-200, 200])
  kInv,     // S4D-Inv: A_imag = N/pi (N/(2n+1) - 1), large imaginary parts
};

struct Params {
  int64_t H, N2;
  std::vector<double> C, log_dt, log_A_real, A_imag;  // double copies, the truth for both dtypes
  template <class T>
  std::vector<T> as(const std::vector<double>& v) const {
    return std::vector<T>(v.begin(), v.end());
  }
};

// Parameters are rounded to float first so the float and double kernels see the same values.
Params make_params(int64_t H, int64_t N2, uint64_t seed, Init init) {
  Rng rng(seed);
  Params p{H, N2, {}, {}, {}, {}};
  const double pi = 3.141592653589793;
  for (int64_t h = 0; h < H; ++h) {
    p.log_dt.push_back(static_cast<float>(rng.uniform(std::log(1e-3), std::log(1e-1))));
    for (int64_t n = 0; n < N2; ++n) {
      double lar = std::log(0.5), ai = pi * static_cast<double>(n);
      if (init == Init::kRandom) {
        lar = rng.uniform(-3.0, 2.0);
        ai = rng.uniform(0.0, 4.0) < 1.0 ? rng.uniform(-200.0, 200.0) : ai + rng.uniform(-5.0, 5.0);
      } else if (init == Init::kInv) {
        const double N = 2.0 * static_cast<double>(N2);
        ai = N / pi * (N / (2.0 * static_cast<double>(n) + 1.0) - 1.0);
      }
      p.log_A_real.push_back(static_cast<float>(lar));
      p.A_imag.push_back(static_cast<float>(ai));
      p.C.push_back(static_cast<float>(rng.normal() * std::sqrt(0.5)));
      p.C.push_back(static_cast<float>(rng.normal() * std::sqrt(0.5)));
    }
  }
  return p;
}

// The formula, term by term: K[j, l] = 2 Re sum_n C (exp(dt A) - 1) / A * exp(dt A l), with
// (exp(x) - 1) / x taken from its Taylor series when |x| is tiny (where exp(x) - 1 cancels).
std::vector<double> reference(const Params& p, const std::vector<int64_t>& active, int64_t L) {
  std::vector<double> K(active.size() * static_cast<size_t>(L), 0.0);
  for (size_t j = 0; j < active.size(); ++j) {
    const int64_t h = active[j];
    const double dt = std::exp(p.log_dt[h]);
    for (int64_t n = 0; n < p.N2; ++n) {
      const size_t k = static_cast<size_t>(h * p.N2 + n);
      const std::complex<double> A(-std::exp(p.log_A_real[k]), p.A_imag[k]);
      const std::complex<double> C(p.C[2 * k], p.C[2 * k + 1]);
      const std::complex<double> x = dt * A;
      const std::complex<double> phi1 =
          std::abs(x) < 1e-4 ? 1.0 + x / 2.0 + x * x / 6.0 + x * x * x / 24.0
                             : (std::exp(x) - 1.0) / x;
      const std::complex<double> w = C * dt * phi1;
      for (int64_t l = 0; l < L; ++l)
        K[j * L + l] += 2.0 * (w * std::exp(dt * A * static_cast<double>(l))).real();
    }
  }
  return K;
}

// Worst over rows of max_l |K - ref| / max_l |ref| (normwise per row); NaN counts as infinite.
template <class T>
double worst_row_error(const std::vector<T>& K, const std::vector<double>& ref, size_t rows,
                       int64_t L) {
  double worst = 0.0;
  for (size_t j = 0; j < rows; ++j) {
    double err = 0.0, scale = 0.0;
    for (int64_t l = 0; l < L; ++l) {
      const double d = std::fabs(static_cast<double>(K[j * L + l]) - ref[j * L + l]);
      err = std::isnan(d) ? std::numeric_limits<double>::infinity() : std::max(err, d);
      scale = std::max(scale, std::fabs(ref[j * L + l]));
    }
    worst = std::max(worst, scale > 0 ? err / scale : err);
  }
  return worst;
}

// Runs the SIMD path `path`, or the automatic choice (the public entry points) when there is none.
template <class T>
void run_kernel(const Params& p, const std::vector<int64_t>& active, int64_t L, std::vector<T>& K,
                int threads, std::optional<SimdPath> path = std::nullopt) {
  const std::vector<T> C = p.as<T>(p.C), log_dt = p.as<T>(p.log_dt),
                       lar = p.as<T>(p.log_A_real), ai = p.as<T>(p.A_imag);
  K.assign(active.size() * static_cast<size_t>(L), T(-12345));
  const int64_t A = static_cast<int64_t>(active.size());
  if constexpr (std::is_same<T, float>::value) {
    if (path) {
      s4op::cpu::detail::s4d_kernel_f32_isa(C.data(), log_dt.data(), lar.data(), ai.data(), p.H,
                                            p.N2, active.data(), A, L, K.data(), threads, *path);
    } else {
      s4op::cpu::s4d_kernel_f32(C.data(), log_dt.data(), lar.data(), ai.data(), p.H, p.N2,
                                active.data(), A, L, K.data(), threads);
    }
  } else {
    if (path) {
      s4op::cpu::detail::s4d_kernel_f64_isa(C.data(), log_dt.data(), lar.data(), ai.data(), p.H,
                                            p.N2, active.data(), A, L, K.data(), threads, *path);
    } else {
      s4op::cpu::s4d_kernel_f64(C.data(), log_dt.data(), lar.data(), ai.data(), p.H, p.N2,
                                active.data(), A, L, K.data(), threads);
    }
  }
}

const char* init_name(Init init) {
  return init == Init::kLin ? "lin" : init == Init::kRandom ? "random" : "inv";
}

// Compares float and double kernels (threads 1 and 2, bitwise equal) against the reference.
void check_case(int64_t H, int64_t N2, const std::vector<int64_t>& active, int64_t L,
                uint64_t seed, Init init) {
  const Params p = make_params(H, N2, seed, init);
  const std::vector<double> ref = reference(p, active, L);
  std::vector<float> k32a, k32b;
  std::vector<double> k64a, k64b;
  run_kernel(p, active, L, k32a, 1);
  run_kernel(p, active, L, k32b, 2);
  run_kernel(p, active, L, k64a, 1);
  run_kernel(p, active, L, k64b, 2);
  const double e32 = worst_row_error(k32a, ref, active.size(), L);
  const double e64 = worst_row_error(k64a, ref, active.size(), L);
  std::printf("H=%lld N2=%lld A=%zu L=%lld seed=%llu init=%s: f32 err %.2e, f64 err %.2e\n",
              static_cast<long long>(H), static_cast<long long>(N2), active.size(),
              static_cast<long long>(L), static_cast<unsigned long long>(seed), init_name(init),
              e32, e64);
  S4OP_CHECK(e32 <= 1e-5);
  // The double reference itself carries ~1e-16 * |phase| (phase up to ~1e5 rad) of error.
  S4OP_CHECK(e64 <= 1e-9);
  S4OP_CHECK(std::memcmp(k32a.data(), k32b.data(), k32a.size() * sizeof(float)) == 0);
  S4OP_CHECK(std::memcmp(k64a.data(), k64b.data(), k64a.size() * sizeof(double)) == 0);
}

std::vector<int64_t> iota(int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = i;
  return v;
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
  const Params p = make_params(3, 4, 7, Init::kLin);
  const std::vector<float> C = p.as<float>(p.C), dt = p.as<float>(p.log_dt),
                           lar = p.as<float>(p.log_A_real), ai = p.as<float>(p.A_imag);
  const std::vector<int64_t> act = {2, 0};
  std::vector<float> K(2 * 10);
  using s4op::cpu::s4d_kernel_f32;
  auto call = [&](const float* c, const float* d, const float* r, const float* i, int64_t H,
                  int64_t N2, const int64_t* a, int64_t A, int64_t L, float* k, int t) {
    return [=] { s4d_kernel_f32(c, d, r, i, H, N2, a, A, L, k, t); };
  };
  const float *c = C.data(), *d = dt.data(), *r = lar.data(), *i = ai.data();
  float* k = K.data();
  S4OP_CHECK(!throws_invalid(call(c, d, r, i, 3, 4, act.data(), 2, 10, k, 1)));
  S4OP_CHECK(throws_invalid(call(nullptr, d, r, i, 3, 4, act.data(), 2, 10, k, 1)));
  S4OP_CHECK(throws_invalid(call(c, nullptr, r, i, 3, 4, act.data(), 2, 10, k, 1)));
  S4OP_CHECK(throws_invalid(call(c, d, nullptr, i, 3, 4, act.data(), 2, 10, k, 1)));
  S4OP_CHECK(throws_invalid(call(c, d, r, nullptr, 3, 4, act.data(), 2, 10, k, 1)));
  S4OP_CHECK(throws_invalid(call(c, d, r, i, 3, 4, nullptr, 2, 10, k, 1)));
  S4OP_CHECK(throws_invalid(call(c, d, r, i, 3, 4, act.data(), 2, 10, nullptr, 1)));
  S4OP_CHECK(throws_invalid(call(c, d, r, i, 0, 4, act.data(), 2, 10, k, 1)));   // H < 1
  S4OP_CHECK(throws_invalid(call(c, d, r, i, -1, 4, act.data(), 2, 10, k, 1)));  // H < 1
  S4OP_CHECK(throws_invalid(call(c, d, r, i, 3, 0, act.data(), 2, 10, k, 1)));   // N2 < 1
  S4OP_CHECK(throws_invalid(call(c, d, r, i, 3, 4, act.data(), 2, -1, k, 1)));   // L < 0
  S4OP_CHECK(throws_invalid(call(c, d, r, i, 3, 4, act.data(), -1, 10, k, 1)));  // A < 0
  S4OP_CHECK(throws_invalid(call(c, d, r, i, 3, 4, act.data(), 2, 10, k, 0)));   // threads
  S4OP_CHECK(throws_invalid(call(c, d, r, i, 2, 4, act.data(), 2, 10, k, 1)));   // 2 >= H
  const std::vector<int64_t> negative = {0, -1};
  S4OP_CHECK(throws_invalid(call(c, d, r, i, 3, 4, negative.data(), 2, 10, k, 1)));
  const int64_t huge = std::numeric_limits<int64_t>::max() / 2;
  S4OP_CHECK(throws_invalid(call(c, d, r, i, huge, huge, act.data(), 2, 10, k, 1)));
  S4OP_CHECK(throws_invalid(call(c, d, r, i, 3, 4, act.data(), 2, huge, k, 1)));
  // Null pointers are fine where nothing is read or written: A = 0 and/or L = 0.
  S4OP_CHECK(!throws_invalid(call(c, d, r, i, 3, 4, nullptr, 0, 10, nullptr, 1)));
  S4OP_CHECK(!throws_invalid(call(c, d, r, i, 3, 4, act.data(), 2, 0, nullptr, 2)));
  // A rejected call writes nothing.
  std::vector<float> untouched(K.size(), 7.0f);
  const std::vector<int64_t> bad_last = {1, 3};
  S4OP_CHECK(throws_invalid(call(c, d, r, i, 3, 4, bad_last.data(), 2, 10, untouched.data(), 1)));
  for (float v : untouched) S4OP_CHECK(v == 7.0f);
  // The double entry point validates the same way.
  const std::vector<double> C64 = p.C, dt64 = p.log_dt, lar64 = p.log_A_real, ai64 = p.A_imag;
  std::vector<double> K64(20);
  S4OP_CHECK(throws_invalid([&] {
    s4op::cpu::s4d_kernel_f64(C64.data(), dt64.data(), lar64.data(), ai64.data(), 3, 4,
                              bad_last.data(), 2, 10, K64.data(), 1);
  }));
  S4OP_CHECK(throws_invalid([&] {
    s4op::cpu::s4d_kernel_f64(nullptr, dt64.data(), lar64.data(), ai64.data(), 3, 4, act.data(),
                              2, 10, K64.data(), 1);
  }));
  // An unknown or unavailable SIMD path is refused, not run; so is one this kernel does not have.
  S4OP_CHECK(throws_invalid([&] {
    s4op::cpu::detail::s4d_kernel_f32_isa(c, d, r, i, 3, 4, act.data(), 2, 10, k, 1,
                                          static_cast<SimdPath>(99));
  }));
  S4OP_CHECK(!s4op::cpu::detail::s4d_isa_supported(SimdPath::kVec128));
  S4OP_CHECK(throws_invalid([&] {
    s4op::cpu::detail::s4d_kernel_f32_isa(c, d, r, i, 3, 4, act.data(), 2, 10, k, 1,
                                          SimdPath::kVec128);
  }));
}

// A = 0 and L = 0 write nothing; duplicates give identical rows.
void check_degenerate() {
  const Params p = make_params(5, 3, 11, Init::kLin);
  std::vector<float> K;
  run_kernel(p, {}, 100, K, 2);
  S4OP_CHECK(K.empty());
  const std::vector<float> C = p.as<float>(p.C), dt = p.as<float>(p.log_dt),
                           lar = p.as<float>(p.log_A_real), ai = p.as<float>(p.A_imag);
  std::vector<float> sentinel(4, 3.0f);
  const std::vector<int64_t> act = {1, 4};
  s4op::cpu::s4d_kernel_f32(C.data(), dt.data(), lar.data(), ai.data(), 5, 3, act.data(), 2, 0,
                            sentinel.data(), 2);
  s4op::cpu::s4d_kernel_f32(C.data(), dt.data(), lar.data(), ai.data(), 5, 3, act.data(), 0, 7,
                            sentinel.data(), 2);
  for (float v : sentinel) S4OP_CHECK(v == 3.0f);

  const int64_t L = 3000;
  run_kernel(p, {3, 1, 3}, L, K, 2);
  S4OP_CHECK(std::memcmp(K.data(), K.data() + 2 * L, L * sizeof(float)) == 0);

  // Pruning invariant: the rows of a subset equal (bitwise) the same rows of the dense run.
  std::vector<float> dense, subset;
  run_kernel(p, iota(5), L, dense, 1);
  const std::vector<int64_t> act_subset = {4, 0, 2};
  run_kernel(p, act_subset, L, subset, 2);
  for (size_t j = 0; j < act_subset.size(); ++j) {
    S4OP_CHECK(std::memcmp(subset.data() + j * L, dense.data() + act_subset[j] * L,
                           L * sizeof(float)) == 0);
  }
}

// Zero C gives exact zeros; non-finite parameters give a NaN row and leave other rows alone;
// extreme but finite parameters stay finite and accurate.
void check_special_values() {
  Params p = make_params(4, 6, 21, Init::kLin);
  for (int64_t n = 0; n < 2 * p.N2; ++n) p.C[static_cast<size_t>(2 * p.N2 + n)] = 0.0;  // row 1
  p.log_A_real[static_cast<size_t>(3 * p.N2 + 2)] = std::numeric_limits<double>::quiet_NaN();
  const int64_t L = 2500;
  std::vector<float> K;
  run_kernel(p, {0, 1, 3, 2}, L, K, 2);
  const std::vector<double> ref = reference(p, {0}, L);
  S4OP_CHECK(worst_row_error(K, ref, 1, L) <= 1e-5);
  bool zeros = true, nans = true;
  for (int64_t l = 0; l < L; ++l) {
    zeros = zeros && K[static_cast<size_t>(L + l)] == 0.0f;
    nans = nans && std::isnan(K[static_cast<size_t>(2 * L + l)]);
  }
  S4OP_CHECK(zeros);
  S4OP_CHECK(nans);

  // Very slow (A -> 0), very fast decay, zero imaginary part, tiny and large dt, tiny C.
  Params q = make_params(4, 5, 23, Init::kRandom);
  const double lar[5] = {-30.0, 6.0, -12.0, 0.0, 3.0};
  const double ai[5] = {0.0, 3.0, 1e-6, 0.0, 1000.0};
  for (int64_t h = 0; h < 4; ++h) {
    for (int64_t n = 0; n < 5; ++n) {
      q.log_A_real[static_cast<size_t>(h * 5 + n)] = static_cast<float>(lar[n]);
      q.A_imag[static_cast<size_t>(h * 5 + n)] = static_cast<float>(ai[n]);
    }
  }
  q.log_dt[0] = static_cast<float>(std::log(1e-6));
  q.log_dt[1] = static_cast<float>(std::log(1.0));
  q.log_dt[2] = static_cast<float>(std::log(0.05));
  for (double& c : q.C) c = static_cast<float>(c * 1e-30);  // must not lose precision to scaling
  const std::vector<int64_t> act = {0, 1, 2, 3};
  const std::vector<double> qref = reference(q, act, 5000);
  std::vector<float> Kq;
  std::vector<double> Kq64;
  run_kernel(q, act, 5000, Kq, 1);
  run_kernel(q, act, 5000, Kq64, 1);
  const double e32 = worst_row_error(Kq, qref, act.size(), 5000);
  const double e64 = worst_row_error(Kq64, qref, act.size(), 5000);
  std::printf("extreme parameters: f32 err %.2e, f64 err %.2e\n", e32, e64);
  S4OP_CHECK(e32 <= 1e-5);
  S4OP_CHECK(e64 <= 1e-9);
}

// Every SIMD path available here agrees with the automatic one to rounding.
void check_isa_paths() {
  const Params p = make_params(9, 17, 31, Init::kRandom);
  const std::vector<int64_t> act = {8, 2, 5, 0};
  const int64_t L = 4133;
  const std::vector<double> ref = reference(p, act, L);
  for (SimdPath path : {SimdPath::kScalar, SimdPath::kAVX2, SimdPath::kAVX512}) {
    const char* name = s4op::cpu::simd_path_name(path);
    if (!s4op::cpu::detail::s4d_isa_supported(path)) {
      std::printf("path %s not available here, skipped\n", name);
      continue;
    }
    std::vector<float> k32, k32t;
    std::vector<double> k64;
    run_kernel(p, act, L, k32, 1, path);
    run_kernel(p, act, L, k32t, 2, path);
    run_kernel(p, act, L, k64, 2, path);
    const double e32 = worst_row_error(k32, ref, act.size(), L);
    const double e64 = worst_row_error(k64, ref, act.size(), L);
    std::printf("path %s: f32 err %.2e, f64 err %.2e\n", name, e32, e64);
    S4OP_CHECK(e32 <= 1e-5);
    S4OP_CHECK(e64 <= 1e-9);
    S4OP_CHECK(std::memcmp(k32.data(), k32t.data(), k32.size() * sizeof(float)) == 0);
  }
  const std::string name = s4op::cpu::s4d_kernel_isa();
  if (s4op::cpu::simd_is_generic()) {
    S4OP_CHECK(name == "generic");
  } else {
    S4OP_CHECK(name == "avx512" || name == "avx2+fma" || name == "scalar");
  }
}

}  // namespace

int main() {
  // Shapes: H = 1; odd/prime H and N2; L = 1; lengths around the block (64 / 32) and segment
  // (2048) boundaries; non-power-of-two L; long L on a subset of rows; shuffled active order.
  check_case(1, 1, {0}, 1, 1, Init::kLin);
  check_case(1, 64, {0}, 1, 2, Init::kRandom);
  // Very short rows sum few terms with cancellation; float must still meet 1e-5 (seeds chosen to
  // include rows where a plain float sum does not).
  check_case(64, 64, iota(64), 1, 35, Init::kRandom);  // 2.7e-4 with a plain float sum
  check_case(64, 64, iota(64), 3, 18, Init::kRandom);
  check_case(1, 32, {0}, 777, 3, Init::kLin);
  check_case(7, 5, {6, 0, 3, 1, 5, 2, 4}, 1000, 4, Init::kRandom);
  check_case(13, 32, {11, 2, 7}, 63, 5, Init::kLin);
  check_case(13, 32, {0, 12}, 64, 6, Init::kRandom);
  check_case(13, 32, {5}, 65, 7, Init::kInv);
  check_case(3, 31, {2, 1}, 2047, 8, Init::kRandom);
  check_case(3, 31, {1, 0}, 2048, 9, Init::kLin);
  check_case(3, 31, {0, 2}, 2049, 10, Init::kRandom);
  check_case(17, 32, {16, 4, 9, 1, 13}, 4096, 12, Init::kLin);
  check_case(17, 16, iota(17), 1531, 13, Init::kInv);
  check_case(11, 64, {9, 3}, 16384, 14, Init::kLin);
  check_case(11, 64, {10, 0}, 16384, 15, Init::kRandom);
  check_case(5, 64, {4}, 16384, 16, Init::kInv);
  check_invalid();
  check_degenerate();
  check_special_values();
  check_isa_paths();
  S4OP_TEST_MAIN_END();
}
