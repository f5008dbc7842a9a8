// glu_mix against a direct double-precision loop: shapes with H not a multiple of the row block, L not a multiple
// of the vector width or the panel, K = 1, B = 0 and L = 0, accumulate on and off, large gates (the exp's clamp),
// NaN propagation, thread-count independence, argument validation.
#include "s4op/glu_mix.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>
#include <vector>

#include "check.h"

namespace {

using s4op::cpu::glu_mix_f32;
using s4op::cpu::glu_mix_pack;
using s4op::cpu::glu_mix_packed_size;

struct Case {
  int64_t B, H, K, L;
  std::vector<float> W, bias, y, out0;
};

Case make(int64_t B, int64_t H, int64_t K, int64_t L, unsigned seed, float scale = 1.f) {
  Case c{B, H, K, L, {}, {}, {}, {}};
  std::mt19937 rng(seed);
  std::normal_distribution<float> n;
  for (int64_t i = 0; i < 2 * H * K; ++i) c.W.push_back(scale * n(rng) / std::sqrt(float(K)));
  for (int64_t i = 0; i < 2 * H; ++i) c.bias.push_back(n(rng));
  for (int64_t i = 0; i < B * K * L; ++i) c.y.push_back(n(rng));
  for (int64_t i = 0; i < B * H * L; ++i) c.out0.push_back(n(rng));
  return c;
}

std::vector<double> expected(const Case& c, bool accumulate) {
  std::vector<double> e(static_cast<size_t>(c.B * c.H * c.L));
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t o = 0; o < c.H; ++o)
      for (int64_t l = 0; l < c.L; ++l) {
        double a = c.bias[o], g = c.bias[o + c.H];
        for (int64_t k = 0; k < c.K; ++k) {
          a += double(c.W[o * c.K + k]) * c.y[(b * c.K + k) * c.L + l];
          g += double(c.W[(o + c.H) * c.K + k]) * c.y[(b * c.K + k) * c.L + l];
        }
        const size_t i = static_cast<size_t>((b * c.H + o) * c.L + l);
        e[i] = (accumulate ? double(c.out0[i]) : 0.0) + a / (1.0 + std::exp(-g));
      }
  return e;
}

std::vector<float> run(const Case& c, bool accumulate, int threads) {
  std::vector<float> packed(static_cast<size_t>(glu_mix_packed_size(c.H, c.K)));
  glu_mix_pack(c.W.data(), c.bias.data(), c.H, c.K, packed.data());
  std::vector<float> out = c.out0;
  glu_mix_f32(packed.data(), c.y.data(), c.B, c.H, c.K, c.L, out.data(), accumulate, threads);
  return out;
}

double max_rel(const std::vector<float>& got, const std::vector<double>& want) {
  double err = 0, ref = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    err = std::max(err, std::fabs(double(got[i]) - want[i]));
    ref = std::max(ref, std::fabs(want[i]));
  }
  return ref > 0 ? err / ref : err;
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

}  // namespace

int main() {
  const int64_t shapes[][4] = {{1, 1, 1, 1},  {2, 3, 5, 7},    {1, 4, 4, 16},  {3, 13, 13, 100}, {1, 32, 32, 256},
                               {2, 9, 17, 513}, {1, 64, 64, 33}, {1, 128, 128, 1000},
                               // L = 1 (a streaming step: the matrix-vector path), H not a multiple of 4, B > 1
                               {1, 256, 256, 1}, {3, 13, 7, 1}, {1, 1, 5, 1}, {4, 33, 33, 1}};
  for (const auto& s : shapes) {
    for (bool acc : {false, true}) {
      const Case c = make(s[0], s[1], s[2], s[3], unsigned(s[1] * 131 + s[3]));
      const auto want = expected(c, acc);
      const auto got1 = run(c, acc, 1);
      S4OP_CHECK(max_rel(got1, want) < 2e-6);
      const auto got3 = run(c, acc, 3);
      S4OP_CHECK(std::memcmp(got1.data(), got3.data(), got1.size() * sizeof(float)) == 0);
    }
  }
  {  // gates far into the clamp: sigmoid is 0 or 1 there
    const Case c = make(2, 5, 8, 40, 7, 400.f);
    S4OP_CHECK(max_rel(run(c, false, 2), expected(c, false)) < 2e-6);
  }
  {  // B = 0 and L = 0 write nothing
    const Case c = make(0, 3, 3, 5, 1);
    S4OP_CHECK(run(c, false, 1).empty());
    Case d = make(1, 3, 3, 0, 1);
    S4OP_CHECK(run(d, true, 1).empty());
  }
  {  // L = 1 with NaN and clamped gates: NaN stays NaN, the clamp gives 0 / a
    Case c = make(2, 6, 4, 1, 5, 400.f);
    S4OP_CHECK(max_rel(run(c, true, 1), expected(c, true)) < 2e-6);
    c.y[4 + 1] = std::numeric_limits<float>::quiet_NaN();  // batch 1, input 1
    const auto out = run(c, false, 2);
    for (int64_t o = 0; o < 6; ++o) {
      S4OP_CHECK(!std::isnan(out[o]));
      S4OP_CHECK(std::isnan(out[6 + o]));
    }
  }
  {  // a NaN input stays in its own column
    Case c = make(1, 6, 4, 20, 3);
    c.y[2 * 20 + 5] = std::numeric_limits<float>::quiet_NaN();
    const auto out = run(c, false, 1);
    for (int64_t o = 0; o < 6; ++o)
      for (int64_t l = 0; l < 20; ++l) S4OP_CHECK(std::isnan(out[o * 20 + l]) == (l == 5));
  }
  {  // bad arguments, before anything is written
    const Case c = make(1, 4, 4, 8, 2);
    std::vector<float> packed(static_cast<size_t>(glu_mix_packed_size(4, 4)));
    glu_mix_pack(c.W.data(), c.bias.data(), 4, 4, packed.data());
    std::vector<float> out(32, 5.f);
    S4OP_CHECK(throws([&] { glu_mix_f32(packed.data(), c.y.data(), 1, 4, 4, 8, out.data(), false, 0); }));
    S4OP_CHECK(throws([&] { glu_mix_f32(packed.data(), c.y.data(), -1, 4, 4, 8, out.data(), false, 1); }));
    S4OP_CHECK(throws([&] { glu_mix_f32(nullptr, c.y.data(), 1, 4, 4, 8, out.data(), false, 1); }));
    S4OP_CHECK(throws([&] { glu_mix_f32(packed.data(), out.data(), 1, 4, 4, 8, out.data(), false, 1); }));
    S4OP_CHECK(throws([&] { glu_mix_packed_size(0, 4); }));
    S4OP_CHECK(throws([&] { glu_mix_pack(nullptr, c.bias.data(), 4, 4, packed.data()); }));
    for (float v : out) S4OP_CHECK(v == 5.f);
  }
  S4OP_TEST_MAIN_END();
}
