// Timing of the core's real FFT.  Not a test: a measurement aid, built with the core when
// S4OP_BUILD_BENCH is on (so it keeps compiling):
//
//   cmake -S csrc -B build/bench -DCMAKE_BUILD_TYPE=Release -DS4OP_BUILD_BENCH=ON
//   cmake --build build/bench -j 2 --target bench_fft
//   build/bench/bench_fft [n ...]              (default 2048 4096 8192 16384)
//   S4OP_BENCH_MIN=1 build/bench/bench_fft     (minimum instead of median: steadier on a shared VM)
//
// For each length, element type and SIMD path the CPU runs, prints the time of one rfft + irfft
// pair as the fused convolution uses it (n/2 input samples zero-padded to n, n/2 output samples
// kept), of a full pair, and of each direction alone.  Single thread.
//
// The competitor, torch.fft with MKL, single-threaded, same machine:
//   python -c "import torch, timeit; torch.set_num_threads(1); n = 2048
//   x = torch.randn(1, n // 2)
//   f = lambda: torch.fft.irfft(torch.fft.rfft(x, n=n), n=n)
//   print(min(timeit.repeat(f, number=2000, repeat=5)) / 2000 * 1e6, 'us')"
// One-row torch calls are dominated by per-call setup (an MKL descriptor is committed per
// call); rows of a batch (x of shape (64, n // 2)) show MKL's own per-transform cost.
#include <algorithm>
#include <chrono>
#include <complex>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "s4op/fft.h"

namespace {

using s4op::cpu::FFTPath;
using s4op::cpu::RealFFT;

// Median over `trials` of the mean time per call of `reps` calls, in microseconds: the median
// shrugs off the scheduler, the inner mean makes each sample longer than the clock's resolution.
template <class F>
double time_us(F&& f, int reps, int trials = 21) {
  std::vector<double> samples;
  for (int t = 0; t < trials; ++t) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int r = 0; r < reps; ++r) f();
    const auto t1 = std::chrono::steady_clock::now();
    samples.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count() / reps);
  }
  std::sort(samples.begin(), samples.end());
  static const bool use_min = std::getenv("S4OP_BENCH_MIN") != nullptr;
  return use_min ? samples.front() : samples[samples.size() / 2];
}

template <class T>
void bench(int64_t n, FFTPath path) {
  RealFFT<T> fft(n, path);
  if (fft.path() != path) return;  // this path does not apply to n on this CPU
  std::mt19937 gen(1234);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<T> x(static_cast<size_t>(n)), y(static_cast<size_t>(n));
  for (auto& v : x) v = static_cast<T>(u(gen));
  std::vector<std::complex<T>> X(static_cast<size_t>(n / 2 + 1));
  std::vector<T> work(static_cast<size_t>(fft.work_size()));
  const int reps = static_cast<int>(std::max<int64_t>(20, 4000000 / (n + 1)));
  const double conv = time_us([&] {
    fft.forward(x.data(), n / 2, X.data(), work.data());
    fft.inverse(X.data(), y.data(), n / 2, work.data());
  }, reps);
  const double full = time_us([&] {
    fft.forward(x.data(), n, X.data(), work.data());
    fft.inverse(X.data(), y.data(), n, work.data());
  }, reps);
  const double fwd = time_us([&] { fft.forward(x.data(), n, X.data(), work.data()); }, reps);
  const double inv = time_us([&] { fft.inverse(X.data(), y.data(), n, work.data()); }, reps);
  std::printf("%-6s %-8s n=%-6lld pair conv %8.2f us  pair full %8.2f us  rfft %7.2f  irfft %7.2f\n",
              sizeof(T) == 4 ? "float" : "double", s4op::cpu::fft_path_name(fft.path()),
              static_cast<long long>(n), conv, full, fwd, inv);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int64_t> sizes;
  for (int i = 1; i < argc; ++i) sizes.push_back(std::atoll(argv[i]));
  if (sizes.empty()) sizes = {2048, 4096, 8192, 16384};
  const FFTPath paths[] = {FFTPath::kAVX512, FFTPath::kAVX2, FFTPath::kVec128, FFTPath::kScalar};
  for (int64_t n : sizes) {
    for (FFTPath p : paths) {
      if (s4op::cpu::fft_path_supported(p)) bench<float>(n, p);
    }
    for (FFTPath p : paths) {
      if (s4op::cpu::fft_path_supported(p)) bench<double>(n, p);
    }
  }
  return 0;
}
