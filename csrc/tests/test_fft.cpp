// Tests of the core's real FFT against a naive long-double DFT (numpy.fft.rfft / irfft
// conventions), on every SIMD path this CPU runs.  Fixed seeds; no timing assertions.
//
// Error bounds are relative to the largest magnitude of the reference (an FFT's rounding error
// is spread over all bins, so small bins are not held to a relative bound):
//   max |ours - ref| <= 4 eps (1 + log2 n) max |ref|,
// eps = 2^-23 (float) or 2^-52 (double).  Observed errors stay at least 15x below it.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <complex>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "check.h"
#include "s4op/fft.h"

namespace {

using s4op::cpu::FFTPath;
using s4op::cpu::RealFFT;
using LD = long double;
using CLD = std::complex<LD>;

const FFTPath kPaths[] = {FFTPath::kScalar, FFTPath::kVec128, FFTPath::kAVX2, FFTPath::kAVX512};

template <class T>
double tolerance(int64_t n) {
  return 4.0 * std::numeric_limits<T>::epsilon() * (1.0 + std::log2(static_cast<double>(n)));
}

// Reports the worst bin of a comparison, so a failure says where and by how much.
struct Compare {
  double max_err = 0, max_ref = 0;
  int64_t worst = -1;
  void add(int64_t i, CLD ours, CLD ref) {
    const double e = static_cast<double>(std::abs(ours - ref));
    if (e > max_err || worst < 0) {
      max_err = std::max(max_err, e);
      worst = i;
    }
    max_ref = std::max(max_ref, static_cast<double>(std::abs(ref)));
  }
  bool within(double tol, const std::string& what) const {
    const double scale = std::max(max_ref, 1e-300);
    const bool ok = std::isfinite(max_err) && max_err <= tol * scale;
    if (!ok) {
      std::fprintf(stderr, "%s: max error %.3g at index %lld, %.3g x max |ref| (tolerance %.3g)\n",
                   what.c_str(), max_err, static_cast<long long>(worst), max_err / scale, tol);
    }
    return ok;
  }
};

// e^{-2 pi i j / n} for j < n, in long double.
std::vector<CLD> roots(int64_t n) {
  std::vector<CLD> w(static_cast<size_t>(n));
  const LD two_pi = 6.283185307179586476925286766559006L;
  for (int64_t j = 0; j < n; ++j) {
    const LD th = two_pi * static_cast<LD>(j) / static_cast<LD>(n);
    w[static_cast<size_t>(j)] = CLD(std::cos(th), -std::sin(th));
  }
  return w;
}

// X[k] = sum_t x[t] e^{-2 pi i k t / n} for the listed bins; x shorter than n is zero padded.
std::vector<CLD> naive_rfft(const std::vector<LD>& x, int64_t n, const std::vector<int64_t>& bins,
                            const std::vector<CLD>& w) {
  std::vector<CLD> X;
  for (int64_t k : bins) {
    CLD acc = 0;
    for (size_t t = 0; t < x.size(); ++t) acc += x[t] * w[static_cast<size_t>((k * static_cast<int64_t>(t)) % n)];
    X.push_back(acc);
  }
  return X;
}

// y[t] = (1/n) sum_k X[k] e^{2 pi i k t / n} over the Hermitian extension, imaginary parts of
// X[0] (and X[n/2] for even n) ignored, as numpy.fft.irfft does.
std::vector<LD> naive_irfft(const std::vector<CLD>& X, int64_t n, const std::vector<int64_t>& samples,
                            const std::vector<CLD>& w) {
  std::vector<LD> y;
  for (int64_t t : samples) {
    LD acc = X[0].real();
    for (int64_t k = 1; 2 * k < n; ++k) {
      // X[k] e^{+i th} + conj(X[k]) e^{-i th} = 2 Re(X[k] e^{+i th}), e^{+i th} = conj(w)
      acc += 2 * (X[static_cast<size_t>(k)] * std::conj(w[static_cast<size_t>((k * t) % n)])).real();
    }
    if (n % 2 == 0) acc += X[static_cast<size_t>(n / 2)].real() * ((t % 2) ? -1 : 1);
    y.push_back(acc / static_cast<LD>(n));
  }
  return y;
}

std::vector<int64_t> all_indices(int64_t count) {
  std::vector<int64_t> v(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) v[static_cast<size_t>(i)] = i;
  return v;
}

// Every bin for short transforms; for long ones the edges plus a fixed random sample, so the
// naive O(n) per bin reference stays cheap.
std::vector<int64_t> pick(int64_t count, uint32_t seed) {
  if (count <= 2100) return all_indices(count);
  std::vector<int64_t> v = {0, 1, 2, count / 2 - 1, count / 2, count / 2 + 1, count - 2, count - 1};
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int64_t> d(0, count - 1);
  for (int i = 0; i < 56; ++i) v.push_back(d(gen));
  return v;
}

// Values exactly representable in float, so float and double runs see the same input.
std::vector<LD> random_real(int64_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<LD> x(static_cast<size_t>(n));
  for (auto& v : x) v = u(gen);
  return x;
}

std::vector<CLD> random_spectrum(int64_t bins, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<CLD> X(static_cast<size_t>(bins));
  for (auto& v : X) {
    const float re = u(gen), im = u(gen);
    v = CLD(re, im);  // imaginary parts of DC and Nyquist too: they must be ignored
  }
  return X;
}

template <class T>
std::vector<T> to(const std::vector<LD>& v) {
  return std::vector<T>(v.begin(), v.end());
}
template <class T>
std::vector<std::complex<T>> to(const std::vector<CLD>& v) {
  std::vector<std::complex<T>> r;
  for (const auto& c : v) r.emplace_back(static_cast<T>(c.real()), static_cast<T>(c.imag()));
  return r;
}

template <class T>
std::string label(const char* what, int64_t n, const RealFFT<T>& fft, int64_t extra = -1) {
  std::string s = std::string(what) + " n=" + std::to_string(n) + " " + (sizeof(T) == 4 ? "float" : "double") +
                  " " + s4op::cpu::fft_path_name(fft.path());
  if (extra >= 0) s += " (" + std::to_string(extra) + ")";
  return s;
}

// Naive references of one length, computed once and shared by every path and element type.
struct Reference {
  int64_t n = 0;
  std::vector<LD> x;                 // {n} input, values exact in float
  std::vector<int64_t> n_ins;        // zero-padded input lengths checked
  std::vector<int64_t> bins;         // checked bins of the forward transform
  std::vector<std::vector<CLD>> X;   // {n_ins, bins} rfft of x[0 .. n_in)
  std::vector<CLD> spectrum;         // {n/2+1} input of the inverse, values exact in float
  std::vector<int64_t> samples;      // checked samples of the inverse
  std::vector<LD> y;                 // {samples} irfft of spectrum
};

Reference make_reference(int64_t n, uint32_t seed) {
  Reference r;
  r.n = n;
  const std::vector<CLD> w = roots(n);
  r.x = random_real(n, seed);
  r.bins = pick(n / 2 + 1, seed);
  for (int64_t n_in : {n, n / 2, n / 2 + 1, int64_t{1}, n - 1, (n * 3) / 7}) {
    if (n_in < 1 || n_in > n || std::find(r.n_ins.begin(), r.n_ins.end(), n_in) != r.n_ins.end()) continue;
    r.n_ins.push_back(n_in);
    r.X.push_back(naive_rfft(std::vector<LD>(r.x.begin(), r.x.begin() + n_in), n, r.bins, w));
  }
  r.spectrum = random_spectrum(n / 2 + 1, seed + 7);
  r.samples = pick(n, seed + 1);
  r.y = naive_irfft(r.spectrum, n, r.samples, w);
  return r;
}

// One plan against the references: zero-padded forward, inverse, truncated inverse, round trip.
template <class T>
void check_plan(const RealFFT<T>& fft, const Reference& ref) {
  const int64_t n = fft.size(), bins = n / 2 + 1;
  const double tol = tolerance<T>(n);
  // The work array is deliberately misaligned by one element: the plan must align it itself.
  std::vector<T> work(static_cast<size_t>(fft.work_size() + 1));
  T* wk = work.data() + 1;

  for (size_t c = 0; c < ref.n_ins.size(); ++c) {
    const int64_t n_in = ref.n_ins[c];
    const std::vector<T> xt = to<T>(std::vector<LD>(ref.x.begin(), ref.x.begin() + n_in));  // exact size
    std::vector<std::complex<T>> X(static_cast<size_t>(bins + 1), std::complex<T>(7, 7));   // +1: sentinel
    fft.forward(xt.data(), n_in, X.data(), wk);
    Compare cmp;
    for (size_t i = 0; i < ref.bins.size(); ++i) {
      const auto& v = X[static_cast<size_t>(ref.bins[i])];
      cmp.add(ref.bins[i], CLD(v.real(), v.imag()), ref.X[c][i]);
    }
    S4OP_CHECK(cmp.within(tol, label("forward", n, fft, n_in)));
    S4OP_CHECK(X[static_cast<size_t>(bins)] == std::complex<T>(7, 7));  // nothing written past n/2
    S4OP_CHECK(X[0].imag() == 0);                                      // real input: DC is real
    if (n % 2 == 0) S4OP_CHECK(X[static_cast<size_t>(n / 2)].imag() == 0);
  }

  // Inverse of a random spectrum (nonzero Im at DC and Nyquist, which numpy ignores).
  const std::vector<std::complex<T>> Xt = to<T>(ref.spectrum);
  std::vector<T> y(static_cast<size_t>(n));
  fft.inverse(Xt.data(), y.data(), n, wk);
  {
    Compare cmp;
    for (size_t i = 0; i < ref.samples.size(); ++i) {
      cmp.add(ref.samples[i], y[static_cast<size_t>(ref.samples[i])], ref.y[i]);
    }
    S4OP_CHECK(cmp.within(tol, label("inverse", n, fft)));
  }
  // Truncated inverse: the same samples, and nothing stored past n_out.
  for (int64_t n_out : {int64_t{0}, int64_t{1}, n / 2, n / 2 + 1, n - 1}) {
    if (n_out < 0 || n_out > n) continue;
    std::vector<T> yt(static_cast<size_t>(n_out + 1), T(-99));
    fft.inverse(Xt.data(), yt.data(), n_out, wk);
    bool same = true;
    for (int64_t t = 0; t < n_out; ++t) same = same && yt[static_cast<size_t>(t)] == y[static_cast<size_t>(t)];
    S4OP_CHECK(same);
    S4OP_CHECK(yt[static_cast<size_t>(n_out)] == T(-99));
  }

  // Round trip: irfft(rfft(x)) == x to rounding.
  {
    const std::vector<T> xt = to<T>(ref.x);
    std::vector<std::complex<T>> X(static_cast<size_t>(bins));
    std::vector<T> back(static_cast<size_t>(n));
    fft.forward(xt.data(), n, X.data(), wk);
    fft.inverse(X.data(), back.data(), n, wk);
    Compare cmp;
    for (int64_t t = 0; t < n; ++t) cmp.add(t, back[static_cast<size_t>(t)], xt[static_cast<size_t>(t)]);
    S4OP_CHECK(cmp.within(2 * tol, label("round trip", n, fft)));
  }
}

// All SIMD paths of one length and element type against the references, and against each other
// (they must agree to rounding).
template <class T>
void check_size(const Reference& ref) {
  const int64_t n = ref.n;
  std::vector<std::complex<T>> first;
  FFTPath first_path = FFTPath::kScalar;
  for (FFTPath path : kPaths) {
    RealFFT<T> fft(n, path);
    if (fft.path() != path) continue;  // the path does not apply to n here, or the CPU lacks it
    S4OP_CHECK(fft.size() == n);
    S4OP_CHECK(fft.num_bins() == n / 2 + 1);
    check_plan(fft, ref);
    const std::vector<T> xt = to<T>(ref.x);
    std::vector<std::complex<T>> X(static_cast<size_t>(n / 2 + 1));
    std::vector<T> work(static_cast<size_t>(fft.work_size()));
    fft.forward(xt.data(), n, X.data(), work.data());
    if (first.empty()) {
      first = X;
      first_path = path;
    } else {
      Compare cmp;
      for (size_t k = 0; k < X.size(); ++k) {
        cmp.add(static_cast<int64_t>(k), CLD(X[k].real(), X[k].imag()), CLD(first[k].real(), first[k].imag()));
      }
      S4OP_CHECK(cmp.within(tolerance<T>(n), label("path agreement", n, fft) + " vs " +
                                                 s4op::cpu::fft_path_name(first_path)));
    }
  }
}

void test_sizes() {
  // Small lengths of every factor mix, odd lengths (scalar path), lengths whose rows do not
  // fill the last block of lanes (480, 3840, 4800, 6000), and the convolution's 2^k lengths.
  const std::vector<int64_t> sizes = {1,   2,   3,   4,   5,   6,    8,    9,    10,   12,   15,   16,
                                      25,  27,  30,  32,  45,  64,   100,  125,  128,  243,  256,  480,
                                      512, 1000, 1024, 1536, 2048, 3840, 4096, 4800, 6000, 8192, 16384};
  uint32_t seed = 1000;
  for (int64_t n : sizes) {
    const Reference ref = make_reference(n, ++seed);
    check_size<float>(ref);
    check_size<double>(ref);
  }
}

// float against double on every bin of long transforms (the naive check above samples them).
void test_float_vs_double() {
  for (int64_t n : {4096, 6000, 8192, 16384}) {
    const std::vector<LD> x = random_real(n, 77 + static_cast<uint32_t>(n));
    RealFFT<float> ff(n);
    RealFFT<double> fd(n);
    const std::vector<float> xf = to<float>(x);
    const std::vector<double> xd = to<double>(x);
    std::vector<std::complex<float>> Xf(static_cast<size_t>(n / 2 + 1));
    std::vector<std::complex<double>> Xd(static_cast<size_t>(n / 2 + 1));
    std::vector<float> wf(static_cast<size_t>(ff.work_size()));
    std::vector<double> wd(static_cast<size_t>(fd.work_size()));
    ff.forward(xf.data(), n, Xf.data(), wf.data());
    fd.forward(xd.data(), n, Xd.data(), wd.data());
    Compare c;
    for (size_t k = 0; k < Xf.size(); ++k) {
      c.add(static_cast<int64_t>(k), CLD(Xf[k].real(), Xf[k].imag()), CLD(Xd[k].real(), Xd[k].imag()));
    }
    S4OP_CHECK(c.within(tolerance<float>(n), "float vs double n=" + std::to_string(n)));
  }
}

void test_next_fast_size() {
  S4OP_CHECK(s4op::cpu::next_fast_size(0) == 1);
  S4OP_CHECK(s4op::cpu::next_fast_size(1) == 1);
  S4OP_CHECK(s4op::cpu::next_fast_size(7) == 8);
  S4OP_CHECK(s4op::cpu::next_fast_size(11) == 12);
  S4OP_CHECK(s4op::cpu::next_fast_size(13) == 15);
  S4OP_CHECK(s4op::cpu::next_fast_size(4097) == 4320);
  S4OP_CHECK(s4op::cpu::next_fast_size(8191) == 8192);
  S4OP_CHECK(s4op::cpu::next_fast_size(2 * 4096 - 1) == 8192);
  S4OP_CHECK(s4op::cpu::next_fast_size(1000001) == 1012500);
  // Against brute force.
  bool all_match = true;
  for (int64_t n = 1; n <= 3000; ++n) {
    int64_t m = n;
    while (!s4op::cpu::is_fast_size(m)) ++m;
    all_match = all_match && s4op::cpu::next_fast_size(n) == m;
  }
  S4OP_CHECK(all_match);
  S4OP_CHECK(s4op::cpu::is_fast_size(1));
  S4OP_CHECK(s4op::cpu::is_fast_size(2 * 3 * 5 * 16));
  S4OP_CHECK(!s4op::cpu::is_fast_size(0));
  S4OP_CHECK(!s4op::cpu::is_fast_size(-8));
  S4OP_CHECK(!s4op::cpu::is_fast_size(14));
}

template <class F>
bool throws_invalid(F&& f) {
  try {
    f();
  } catch (const std::invalid_argument&) {
    return true;
  } catch (...) {
    return false;
  }
  return false;
}

void test_invalid_arguments() {
  S4OP_CHECK(throws_invalid([] { RealFFT<float> f(0); }));
  S4OP_CHECK(throws_invalid([] { RealFFT<float> f(-4); }));
  S4OP_CHECK(throws_invalid([] { RealFFT<double> f(7); }));
  S4OP_CHECK(throws_invalid([] { RealFFT<double> f(14); }));
  S4OP_CHECK(throws_invalid([] { RealFFT<float> f(int64_t{1} << 50); }));
  S4OP_CHECK(throws_invalid([] { RealFFT<float> f(8, static_cast<FFTPath>(9)); }));
  S4OP_CHECK(throws_invalid([] { s4op::cpu::next_fast_size(-1); }));
  S4OP_CHECK(throws_invalid([] { s4op::cpu::get_real_fft<float>(0); }));
  S4OP_CHECK(throws_invalid([] { s4op::cpu::get_real_fft<double>(22); }));
  // The message names the problem and the remedy.
  try {
    RealFFT<float> f(1001);
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    S4OP_CHECK(msg.find("1001") != std::string::npos && msg.find("1024") != std::string::npos);
  }

  RealFFT<float> fft(16);
  std::vector<float> x(16, 1.0f), y(16), work(static_cast<size_t>(fft.work_size()));
  std::vector<std::complex<float>> X(9);
  S4OP_CHECK(throws_invalid([&] { fft.forward(x.data(), 17, X.data(), work.data()); }));
  S4OP_CHECK(throws_invalid([&] { fft.forward(x.data(), -1, X.data(), work.data()); }));
  S4OP_CHECK(throws_invalid([&] { fft.forward(nullptr, 4, X.data(), work.data()); }));
  S4OP_CHECK(throws_invalid([&] { fft.forward(x.data(), 16, nullptr, work.data()); }));
  S4OP_CHECK(throws_invalid([&] { fft.forward(x.data(), 16, X.data(), nullptr); }));
  S4OP_CHECK(throws_invalid([&] { fft.inverse(X.data(), y.data(), 17, work.data()); }));
  S4OP_CHECK(throws_invalid([&] { fft.inverse(X.data(), y.data(), -1, work.data()); }));
  S4OP_CHECK(throws_invalid([&] { fft.inverse(nullptr, y.data(), 16, work.data()); }));
  S4OP_CHECK(throws_invalid([&] { fft.inverse(X.data(), nullptr, 16, work.data()); }));
  S4OP_CHECK(throws_invalid([&] { fft.inverse(X.data(), y.data(), 16, nullptr); }));
  // Empty input and output need no data pointers.
  fft.forward(nullptr, 0, X.data(), nullptr);
  bool zeros = true;
  for (const auto& v : X) zeros = zeros && v == std::complex<float>(0, 0);
  S4OP_CHECK(zeros);
  fft.inverse(X.data(), nullptr, 0, nullptr);
}

// get_real_fft from two threads: one plan per length, identical results on both threads.
void test_cache_threads() {
  const std::vector<int64_t> sizes = {6, 64, 1000, 2048, 4096, 8192};
  std::vector<std::vector<std::complex<float>>> expect;
  for (int64_t n : sizes) {
    const std::vector<float> x = to<float>(random_real(n, 5));
    RealFFT<float> fft(n);
    std::vector<std::complex<float>> X(static_cast<size_t>(n / 2 + 1));
    std::vector<float> work(static_cast<size_t>(fft.work_size()));
    fft.forward(x.data(), n, X.data(), work.data());
    expect.push_back(X);
  }
  std::atomic<int> mismatches{0};
  std::vector<const void*> seen[2];
  auto worker = [&](int id) {
    for (int round = 0; round < 20; ++round) {
      for (size_t i = 0; i < sizes.size(); ++i) {
        const size_t j = id == 0 ? i : sizes.size() - 1 - i;  // opposite orders: real contention
        const int64_t n = sizes[j];
        auto fft = s4op::cpu::get_real_fft<float>(n);
        if (round == 0) seen[id].push_back(fft.get());
        const std::vector<float> x = to<float>(random_real(n, 5));
        std::vector<std::complex<float>> X(static_cast<size_t>(n / 2 + 1));
        std::vector<float> work(static_cast<size_t>(fft->work_size()));
        fft->forward(x.data(), n, X.data(), work.data());
        if (X != expect[j]) ++mismatches;
      }
    }
  };
  std::thread t0(worker, 0), t1(worker, 1);
  t0.join();
  t1.join();
  S4OP_CHECK(mismatches.load() == 0);
  // Both threads got the same plan object for each length.
  for (size_t i = 0; i < sizes.size(); ++i) S4OP_CHECK(seen[0][i] == seen[1][sizes.size() - 1 - i]);
  S4OP_CHECK(s4op::cpu::get_real_fft<double>(64) == s4op::cpu::get_real_fft<double>(64));
}

}  // namespace

int main() {
  for (FFTPath path : kPaths) {
    std::printf("path %-8s %s\n", s4op::cpu::fft_path_name(path),
                s4op::cpu::fft_path_supported(path) ? "supported" : "not supported here");
  }
  test_next_fast_size();
  test_invalid_arguments();
  test_sizes();
  test_float_vs_double();
  test_cache_threads();
  S4OP_TEST_MAIN_END();
}
