// Timing of s4op::cpu::s4d_kernel_f32/f64.  Not a test: a measurement aid, built with the core when
// S4OP_BUILD_BENCH is on (so it keeps compiling):
//   cmake -S csrc -B build/bench -DCMAKE_BUILD_TYPE=Release -DS4OP_BUILD_BENCH=ON
//   cmake --build build/bench -j 2 --target bench_s4d_kernel && build/bench/bench_s4d_kernel
// Prints the best of `reps` runs per (shape, init, threads, SIMD path).  Compare with
// torch.fft.rfft(x, n=2L) + torch.fft.irfft(..., n=2L) on x of shape (A, L) float32.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "s4op/s4d_kernel.h"

namespace {

using s4op::cpu::SimdPath;

struct Shape {
  int64_t A, N2, L;
};

template <class T>
double time_ms(int64_t H, int64_t N2, int64_t L, bool random_init, int threads, SimdPath isa,
               int reps) {
  std::mt19937_64 eng(1234);
  auto uni = [&](double lo, double hi) {
    return lo + (hi - lo) * (static_cast<double>(eng() >> 11) * 0x1p-53);
  };
  std::vector<T> C(2 * H * N2), log_dt(H), lar(H * N2), ai(H * N2);
  for (int64_t h = 0; h < H; ++h) {
    log_dt[h] = static_cast<T>(uni(std::log(1e-3), std::log(1e-1)));
    for (int64_t n = 0; n < N2; ++n) {
      lar[h * N2 + n] = static_cast<T>(random_init ? uni(-3, 2) : std::log(0.5));
      ai[h * N2 + n] = static_cast<T>(3.141592653589793 * n + (random_init ? uni(-5, 5) : 0.0));
      C[2 * (h * N2 + n)] = static_cast<T>(uni(-1, 1));
      C[2 * (h * N2 + n) + 1] = static_cast<T>(uni(-1, 1));
    }
  }
  std::vector<int64_t> active(H);
  for (int64_t h = 0; h < H; ++h) active[h] = h;
  std::vector<T> K(H * L);
  double best = 1e30;
  for (int r = 0; r < reps + 2; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    if constexpr (sizeof(T) == 4) {
      s4op::cpu::detail::s4d_kernel_f32_isa(C.data(), log_dt.data(), lar.data(), ai.data(), H,
                                            N2, active.data(), H, L, K.data(), threads, isa);
    } else {
      s4op::cpu::detail::s4d_kernel_f64_isa(C.data(), log_dt.data(), lar.data(), ai.data(), H,
                                            N2, active.data(), H, L, K.data(), threads, isa);
    }
    const auto t1 = std::chrono::steady_clock::now();
    if (r >= 2) best = std::min(best, std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  return best;
}

}  // namespace

int main() {
  const Shape shapes[] = {{256, 32, 4096}, {128, 32, 1024}, {256, 64, 4096}, {16, 64, 16384}};
  std::printf("auto path: %s\n", s4op::cpu::s4d_kernel_isa());
  std::printf("%-6s %-8s %4s %4s %6s %7s %3s %8s\n", "dtype", "isa", "A", "N2", "L", "init", "thr",
              "best_ms");
  for (const Shape& s : shapes) {
    for (SimdPath isa : {SimdPath::kAVX512, SimdPath::kAVX2, SimdPath::kScalar}) {
      if (!s4op::cpu::detail::s4d_isa_supported(isa)) continue;
      for (bool random_init : {false, true}) {
        for (int threads : {1, 2}) {
          const int reps = 20;
          const double f = time_ms<float>(s.A, s.N2, s.L, random_init, threads, isa, reps);
          const double d = time_ms<double>(s.A, s.N2, s.L, random_init, threads, isa, reps);
          std::printf("%-6s %-8s %4lld %4lld %6lld %7s %3d %8.3f\n", "f32", s4op::cpu::simd_path_name(isa),
                      (long long)s.A, (long long)s.N2, (long long)s.L,
                      random_init ? "random" : "lin", threads, f);
          std::printf("%-6s %-8s %4lld %4lld %6lld %7s %3d %8.3f\n", "f64", s4op::cpu::simd_path_name(isa),
                      (long long)s.A, (long long)s.N2, (long long)s.L,
                      random_init ? "random" : "lin", threads, d);
        }
      }
    }
  }
  return 0;
}
