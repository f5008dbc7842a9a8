// Timing of s4op::cpu::dplr_spectrum / dplr_conv_spectrum.  Not a test: a measurement aid, built with the core
// when S4OP_BUILD_BENCH is on (so it keeps compiling):
//   cmake -S csrc -B build/bench -DCMAKE_BUILD_TYPE=Release -DS4OP_BUILD_BENCH=ON
//   cmake --build build/bench -j 2 --target bench_dplr_kernel && build/bench/bench_dplr_kernel [reps [cpu]]
// Prints the median (wall time, or process CPU time with `cpu`) of `reps` runs per (shape, dtype, entry
// point, threads, SIMD path), and of one RealFFT pair per row for scale (rfft of L samples zero-padded to
// n_fft, irfft of n_fft).  Compare with torch.fft.rfft(x, n=n_fft) + torch.fft.irfft(..., n=n_fft) on x of
// shape (A, L) float32.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <complex>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <vector>

#include "s4op/dplr_kernel.h"
#include "s4op/fft.h"
#include "s4op/parallel.h"

namespace {

using s4op::cpu::SimdPath;

struct Shape {
  int64_t A, N2, M, L, n_fft;
};

// Median wall time of `reps` runs (ms).  With cpu, the median process CPU time instead (std::clock: all threads
// together), which a loaded machine inflates less.
bool g_cpu_time = false;

template <class Fn>
double median_ms(int reps, Fn&& fn) {
  std::vector<double> t;
  fn();
  for (int r = 0; r < reps; ++r) {
    const std::clock_t c0 = std::clock();
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    t.push_back(g_cpu_time ? static_cast<double>(std::clock() - c0) * 1e3 / CLOCKS_PER_SEC
                           : std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

template <class T>
struct Inputs {
  std::vector<T> log_dt, A_real, A_imag, B, P, C;
  std::vector<int64_t> rows;
  explicit Inputs(const Shape& s) {
    std::mt19937_64 eng(1234);
    auto uni = [&](double lo, double hi) { return lo + (hi - lo) * (static_cast<double>(eng() >> 11) * 0x1p-53); };
    for (int64_t h = 0; h < s.A; ++h) {
      log_dt.push_back(static_cast<T>(uni(std::log(1e-3), std::log(1e-1))));
      rows.push_back(h);
      for (int64_t n = 0; n < s.N2; ++n) {
        A_real.push_back(static_cast<T>(std::log(0.5)));
        A_imag.push_back(static_cast<T>(std::exp(uni(std::log(0.1), std::log(500.0)))));
        for (int i = 0; i < 2; ++i) {
          B.push_back(static_cast<T>(uni(-1, 1)));
          P.push_back(static_cast<T>(uni(-1, 1)));
          C.push_back(static_cast<T>(uni(-1, 1)));
        }
      }
    }
  }
};

template <class T>
void run(const Shape& s, int threads, SimdPath path, int reps) {
  const Inputs<T> in(s);
  std::vector<T> out1(static_cast<size_t>(s.A * (s.M / 2 + 1) * 2));
  std::vector<T> out2(static_cast<size_t>(s.A * (s.n_fft / 2 + 1) * 2));
  namespace d = s4op::cpu::detail;
  const double t1 = median_ms(reps, [&] {
    if constexpr (sizeof(T) == 4)
      d::dplr_spectrum_f32_isa(in.log_dt.data(), in.A_real.data(), in.A_imag.data(), in.B.data(), in.P.data(),
                               in.C.data(), s.A, s.N2, in.rows.data(), s.A, s.M, out1.data(), threads, path);
    else
      d::dplr_spectrum_f64_isa(in.log_dt.data(), in.A_real.data(), in.A_imag.data(), in.B.data(), in.P.data(),
                               in.C.data(), s.A, s.N2, in.rows.data(), s.A, s.M, out1.data(), threads, path);
  });
  const double t2 = median_ms(reps, [&] {
    if constexpr (sizeof(T) == 4)
      d::dplr_conv_spectrum_f32_isa(in.log_dt.data(), in.A_real.data(), in.A_imag.data(), in.B.data(), in.P.data(),
                                    in.C.data(), s.A, s.N2, in.rows.data(), s.A, s.M, s.L, s.n_fft, out2.data(),
                                    threads, path);
    else
      d::dplr_conv_spectrum_f64_isa(in.log_dt.data(), in.A_real.data(), in.A_imag.data(), in.B.data(), in.P.data(),
                                    in.C.data(), s.A, s.N2, in.rows.data(), s.A, s.M, s.L, s.n_fft, out2.data(),
                                    threads, path);
  });
  // One FFT pair per row (rfft of L samples zero-padded to n_fft, irfft of n_fft) on the core's RealFFT.
  const auto plan = s4op::cpu::get_real_fft<T>(s.n_fft);
  std::vector<T> x(static_cast<size_t>(s.A * s.n_fft), T(0.5));
  std::vector<std::complex<T>> X(static_cast<size_t>(s.A * (s.n_fft / 2 + 1)));
  const double tp = median_ms(reps, [&] {
    s4op::parallel_for(s.A, threads, [&](int64_t b, int64_t e) {
      std::vector<T> work(static_cast<size_t>(plan->work_size()));
      for (int64_t j = b; j < e; ++j) {
        plan->forward(x.data() + j * s.n_fft, s.L, X.data() + j * (s.n_fft / 2 + 1), work.data());
        plan->inverse(X.data() + j * (s.n_fft / 2 + 1), x.data() + j * s.n_fft, s.n_fft, work.data());
      }
    });
  });
  // ns per (mode, bin) of the spectrum on one thread (CPU time already sums the threads).
  const double modes_bins = static_cast<double>(s.A) * static_cast<double>(s.N2) * static_cast<double>(s.M / 2 + 1);
  const double per_thread = g_cpu_time ? 1.0 : threads;
  std::printf("%-4s %-9s %4lld %3lld %6lld %6lld %6lld %3d %9.3f %9.3f %9.3f %7.2f %8.2f\n",
              sizeof(T) == 4 ? "f32" : "f64",
              s4op::cpu::simd_path_name(path), (long long)s.A, (long long)s.N2, (long long)s.M, (long long)s.L,
              (long long)s.n_fft, threads, t1, t2, tp, t2 / tp, t1 * 1e6 / modes_bins * per_thread);
}

}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 21;
  g_cpu_time = argc > 2 && std::strcmp(argv[2], "cpu") == 0;
  const Shape shapes[] = {{256, 32, 4096, 4096, 8192}, {64, 32, 16384, 16384, 32768}, {256, 64, 1024, 1024, 2048}};
  std::printf("auto path: %s; %s time\n", s4op::cpu::dplr_kernel_isa(), g_cpu_time ? "CPU" : "wall");
  std::printf("%-4s %-9s %4s %3s %6s %6s %6s %3s %9s %9s %9s %7s %8s\n", "type", "isa", "A", "N2", "M", "L", "n_fft",
              "thr", "spec_ms", "conv_ms", "pair_ms", "conv/pr", "ns/mb");
  for (const Shape& s : shapes) {
    for (SimdPath path : {SimdPath::kAVX512, SimdPath::kAVX2, SimdPath::kScalar}) {
      if (!s4op::cpu::detail::dplr_isa_supported(path)) continue;
      for (int threads : {1, 2}) {
        run<float>(s, threads, path, reps);
        run<double>(s, threads, path, reps);
      }
    }
  }
  return 0;
}
