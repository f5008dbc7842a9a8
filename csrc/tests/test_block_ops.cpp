// residual_layer_norm_f32 against a direct double-precision loop: tiles of positions that do not divide L, odd H,
// H = 1, B = 0 and L = 0, with and without z / weight / bias, out aliasing x or z, thread-count independence,
// argument validation (refused before anything is written).
#include "s4op/block_ops.h"

#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

#include "check.h"

namespace {

using s4op::cpu::residual_layer_norm_f32;

std::vector<float> randn(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d;
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

std::vector<double> expected(const std::vector<float>& x, const float* z, int64_t B, int64_t H, int64_t L,
                             const float* w, const float* b, double eps) {
  std::vector<double> out(x.size());
  for (int64_t bi = 0; bi < B; ++bi)
    for (int64_t l = 0; l < L; ++l) {
      double mean = 0, var = 0;
      for (int64_t c = 0; c < H; ++c) {
        const int64_t i = (bi * H + c) * L + l;
        mean += x[i] + (z ? double(z[i]) : 0.0);
      }
      mean /= double(H);
      for (int64_t c = 0; c < H; ++c) {
        const int64_t i = (bi * H + c) * L + l;
        const double d = x[i] + (z ? double(z[i]) : 0.0) - mean;
        var += d * d;
      }
      const double rstd = 1.0 / std::sqrt(var / double(H) + eps);
      for (int64_t c = 0; c < H; ++c) {
        const int64_t i = (bi * H + c) * L + l;
        out[i] = (x[i] + (z ? double(z[i]) : 0.0) - mean) * rstd * (w ? w[c] : 1.0) + (b ? b[c] : 0.0);
      }
    }
  return out;
}

double max_err(const std::vector<float>& got, const std::vector<double>& want) {
  // A compare, not std::fmax: GCC 12's aarch64 vectorizer (Debian's cross compiler) hits an internal compiler error on an fmax reduction
  // of this shape (vect_transform_reduction).
  double e = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double d = std::fabs(double(got[i]) - want[i]);
    if (d > e) e = d;
  }
  return e;
}

void check_case(int64_t B, int64_t H, int64_t L, bool with_z, bool affine, unsigned seed) {
  const size_t n = static_cast<size_t>(B * H * L);
  const auto x = randn(n, seed), z = randn(n, seed + 1), w = randn(H, seed + 2), b = randn(H, seed + 3);
  const float* pz = with_z ? z.data() : nullptr;
  const float* pw = affine ? w.data() : nullptr;
  const float* pb = affine ? b.data() : nullptr;
  const auto want = expected(x, pz, B, H, L, pw, pb, 1e-5);
  std::vector<float> out1(n, 7.f), out2(n, 7.f);
  residual_layer_norm_f32(x.data(), pz, out1.data(), B, H, L, pw, pb, 1e-5f, 1);
  residual_layer_norm_f32(x.data(), pz, out2.data(), B, H, L, pw, pb, 1e-5f, 3);
  const double tol = H == 1 ? 1e-5 : 2e-5 * (affine ? 4.0 : 1.0);
  S4OP_CHECK(max_err(out1, want) < tol);
  S4OP_CHECK(out1 == out2);  // the thread count changes nothing
  // In place: out is x, or out is z.
  auto xi = x;
  residual_layer_norm_f32(xi.data(), pz, xi.data(), B, H, L, pw, pb, 1e-5f, 2);
  S4OP_CHECK(xi == out1);
  if (with_z) {
    auto zi = z;
    residual_layer_norm_f32(x.data(), zi.data(), zi.data(), B, H, L, pw, pb, 1e-5f, 2);
    S4OP_CHECK(zi == out1);
  }
}

}  // namespace

int main() {
  for (bool with_z : {true, false})
    for (bool affine : {true, false}) {
      check_case(2, 5, 1300, with_z, affine, 1);  // three tiles, the last partial
      check_case(1, 128, 512, with_z, affine, 2);  // exactly one tile
      check_case(3, 1, 17, with_z, affine, 3);     // H = 1: every output is the bias
      check_case(0, 4, 9, with_z, affine, 4);      // B = 0
      check_case(2, 4, 0, with_z, affine, 5);      // L = 0
    }
  // Refusals come before any write.
  std::vector<float> x(24, 1.f), out(24, 3.f);
  const auto refused = [&](auto&& call) {
    bool threw = false;
    try {
      call();
    } catch (const std::invalid_argument&) {
      threw = true;
    }
    S4OP_CHECK(threw);
    for (float v : out) S4OP_CHECK(v == 3.f);
  };
  refused([&] { residual_layer_norm_f32(x.data(), nullptr, out.data(), 2, 0, 12, nullptr, nullptr, 1e-5f, 1); });
  refused([&] { residual_layer_norm_f32(x.data(), nullptr, out.data(), -1, 2, 12, nullptr, nullptr, 1e-5f, 1); });
  refused([&] { residual_layer_norm_f32(x.data(), nullptr, out.data(), 1, 2, 12, nullptr, nullptr, -1.f, 1); });
  refused([&] { residual_layer_norm_f32(x.data(), nullptr, out.data(), 1, 2, 12, nullptr, nullptr, 1e-5f, 0); });
  refused([&] { residual_layer_norm_f32(nullptr, nullptr, out.data(), 1, 2, 12, nullptr, nullptr, 1e-5f, 1); });
  refused([&] { residual_layer_norm_f32(x.data(), nullptr, nullptr, 1, 2, 12, nullptr, nullptr, 1e-5f, 1); });
  S4OP_TEST_MAIN_END();
}
