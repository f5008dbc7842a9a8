// Real FFT of the core: the inner loop of the per-channel fused FFT convolution.
//
// Our own mixed-radix (2, 3, 4, 5) FFT, so the core stays free of third-party code and builds for an
// embedded target with nothing but a C++17 compiler.  Conventions are numpy.fft.rfft / irfft exactly:
//   forward   X[k] = sum_t x[t] e^{-2 pi i k t / n},            k = 0 .. n/2   (unscaled)
//   inverse   y[t] = (1/n) sum_{k=0}^{n-1} X[k] e^{+2 pi i k t / n}, with X[n-k] = conj(X[k]); the
//             imaginary parts of X[0] (and of X[n/2] for even n) are ignored, as numpy does.
//
// A plan is immutable after construction, so one plan may be used from many threads at once; the
// only mutable state of a transform is the caller's `work` buffer (one per thread).
#pragma once

#include <complex>
#include <cstdint>
#include <memory>

#include "s4op/cpu_features.h"

namespace s4op {
namespace cpu {

// Smallest m >= n of the form 2^a 3^b 5^c (m >= 1, so next_fast_size(0) == 1).  Throws
// std::invalid_argument for n < 0 or n too large for a plan.
int64_t next_fast_size(int64_t n);

// True iff n >= 1 and n = 2^a 3^b 5^c, i.e. a length RealFFT accepts.
bool is_fast_size(int64_t n);

// Instruction-set paths of the butterflies: the core's SIMD levels (cpu_features.h), narrowest first:
//   kScalar   plain C++, any compiler and target (the generic build's only path: S4OP_SIMD=generic)
//   kVec128   128-bit vectors: SSE2 on x86 (the slot for NEON)
//   kAVX2     x86 AVX2 + FMA, chosen at run time
//   kAVX512   x86 AVX-512 (F, DQ, BW, VL), chosen at run time
// A plan uses the widest path that is not above the requested maximum, that this build and the
// running CPU support, and whose vector width suits n (vector paths need n/2 to be a multiple of the
// lane count; odd n always runs the scalar path).
using FFTPath = SimdPath;
// simd_path_name(path): "scalar" ("generic" in the generic build), "sse2", "avx2+fma", "avx512".
const char* fft_path_name(FFTPath path);
// Whether this build and this CPU can run `path` (kScalar always can): simd_path_supported(path).
bool fft_path_supported(FFTPath path);

// Real-input FFT plan of length n (any 2^a 3^b 5^c, n >= 1) for T = float or double.
template <typename T>
class RealFFT {
 public:
  // Throws std::invalid_argument if n < 1 or n is not a fast size.  max_path caps the SIMD path,
  // so tests can compare every path on the same machine; the default takes the best available.
  explicit RealFFT(int64_t n, FFTPath max_path = FFTPath::kAVX512);
  ~RealFFT();
  RealFFT(const RealFFT&) = delete;
  RealFFT& operator=(const RealFFT&) = delete;

  int64_t size() const;       // n
  int64_t num_bins() const;   // n / 2 + 1
  int64_t work_size() const;  // elements of T the caller provides as scratch to each call
  FFTPath path() const;       // the SIMD path this plan runs

  // X = rfft(x zero-padded from n_in to n).  Rows of zeros are never read or transformed, so a
  // convolution's half-empty input (n_in ~ n/2) costs less than a full one.  x may be null only
  // if n_in == 0.  No argument may overlap another.
  void forward(const T* x /*{n_in}*/, int64_t n_in, std::complex<T>* X /*{n/2+1}*/,
               T* work /*{work_size()}*/) const;

  // y = the first n_out samples of irfft(X, n).  X is not modified.  Samples past n_out are never
  // stored, so a convolution that keeps L of n samples writes only those.  y may be null only if
  // n_out == 0.  No argument may overlap another.
  void inverse(const std::complex<T>* X /*{n/2+1}*/, T* y /*{n_out}*/, int64_t n_out,
               T* work /*{work_size()}*/) const;

 private:
  struct Impl;  // twiddle tables and the chosen kernels, kept out of the header
  std::unique_ptr<const Impl> impl_;
};

extern template class RealFFT<float>;
extern template class RealFFT<double>;

// Shared plan of length n with the best path for this CPU.  Plans are built once per (T, n) and
// kept for the life of the process (a convolution uses a handful of lengths); safe to call from
// several threads at once.  Throws like the RealFFT constructor.
template <typename T>
std::shared_ptr<const RealFFT<T>> get_real_fft(int64_t n);

extern template std::shared_ptr<const RealFFT<float>> get_real_fft<float>(int64_t n);
extern template std::shared_ptr<const RealFFT<double>> get_real_fft<double>(int64_t n);

}  // namespace cpu
}  // namespace s4op
