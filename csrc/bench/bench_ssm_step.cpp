// Latency of the recurrent step's compute kernel alone (ssm_step_f32, batch 1, one thread), from C: how the SSM part
// of a streaming step scales with the active channels, without the mixing or any Python.  Per (H, N2, layer kind,
// active fraction): the median of repeated blocks of steps, ns per step of all active channels.
//   bench_ssm_step [repeats=200]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "s4op/ssm_step.h"

int main(int argc, char** argv) {
  const int repeats = argc > 1 ? std::atoi(argv[1]) : 200;
  constexpr int kSteps = 64;  // steps per timed block
  std::mt19937 rng(0);
  std::normal_distribution<float> normal;
  std::printf("| H | N2 | kind | active | ns per step (median) | ns per active channel |\n|---|---|---|---|---|---|\n");
  for (const int64_t H : {32, 128, 256}) {
    const int64_t N2 = H == 32 ? 16 : 32;
    for (const int fields : {s4op::cpu::kStepFieldsDiag, s4op::cpu::kStepFieldsDplr}) {
      for (const double keep : {1.0, 0.5, 0.1}) {
        const int64_t A = std::max<int64_t>(1, static_cast<int64_t>(std::lround(keep * static_cast<double>(H))));
        std::vector<int64_t> active(static_cast<size_t>(A));
        for (int64_t j = 0; j < A; ++j) active[j] = j * H / A;
        // Parameters of a stable S4D / S4 system (Re Lambda < 0), set up by the core's own set-up.
        std::vector<float> C(H * N2 * 2), B(H * N2 * 2), P(H * N2 * 2), log_dt(H), re(H * N2), im(H * N2), D(H);
        for (auto* v : {&C, &B, &P, &D}) for (float& x : *v) x = 0.5f * normal(rng);
        for (int64_t h = 0; h < H; ++h) log_dt[h] = -4.f + normal(rng) * 0.5f;
        for (int64_t i = 0; i < H * N2; ++i) re[i] = -0.7f, im[i] = 3.14159f * static_cast<float>(i % N2);
        std::vector<float> modes(static_cast<size_t>(A * fields * 2 * N2)), scal(static_cast<size_t>(A * 3));
        if (fields == s4op::cpu::kStepFieldsDiag) {
          s4op::cpu::s4d_step_setup_f32(C.data(), log_dt.data(), re.data(), im.data(), D.data(), H, N2, active.data(),
                                        A, modes.data(), scal.data());
        } else {
          s4op::cpu::dplr_step_setup_f32(log_dt.data(), re.data(), im.data(), B.data(), P.data(), C.data(), D.data(),
                                         H, N2, active.data(), A, modes.data(), scal.data());
        }
        std::vector<float> x(static_cast<size_t>(A * N2 * 2), 0.f), u(static_cast<size_t>(H)), y(u.size());
        for (float& v : u) v = normal(rng);
        std::vector<double> t;
        for (int r = 0; r < repeats + 5; ++r) {
          const auto t0 = std::chrono::steady_clock::now();
          for (int s = 0; s < kSteps; ++s) {
            s4op::cpu::ssm_step_f32(modes.data(), scal.data(), fields, active.data(), 1, H, A, N2, u.data(), x.data(),
                                    x.data(), y.data(), s4op::cpu::Epilogue::gelu, 1);
          }
          const auto t1 = std::chrono::steady_clock::now();
          if (r >= 5) t.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count() / kSteps);
        }
        std::nth_element(t.begin(), t.begin() + static_cast<std::ptrdiff_t>(t.size() / 2), t.end());
        const double med = t[t.size() / 2];
        std::printf("| %lld | %lld | %s | %lld (%.0f %%) | %.0f | %.1f |\n", static_cast<long long>(H),
                    static_cast<long long>(N2), fields == s4op::cpu::kStepFieldsDiag ? "S4D" : "S4",
                    static_cast<long long>(A), 100 * keep, med, med / static_cast<double>(A));
      }
    }
  }
  return 0;
}
