// S4 (DPLR, rank 1) kernel spectrum for a list of rows: the reference S4's Cauchy sums with the Woodbury
// correction at the roots of unity (state-spaces/s4 SSMKernelDPLR, rank 1), for the listed channels only.
//
//   dt = exp(log_dt[h]),  Lambda_n = -exp(A_real[h,n]) - i A_imag[h,n],  w_n = dt Lambda_n
//   v00 = dt B C,  v01 = dt B conj(P),  v10 = dt P C,  v11 = dt |P|^2          (per mode n)
//   r_ij(z) = sum_n v_n / (z - w_n) + conj(v_n) / (z - conj(w_n)),  z_k = 2 (1 - omega_k) / (1 + omega_k)
//   kf[k] = (r00 - r01 r10 / (1 + r11)) 2 / (1 + omega_k),  omega_k = exp(-2 pi i k / M),  k = 0 .. M/2
//
// so that irfft(kf, M) is the length-M kernel (C holds C-tilde for M).  Evaluated in the equivalent form that
// is finite at every bin (phi = pi k / M, c = cos phi, s = sin phi, taken from phi in double, c = 0 exactly at
// Nyquist):
//   den_n = (|w_n|^2 c^2 - 4 s^2) - 4 i Re(w_n) s c,   num_n = -2 Re(v_n conj(w_n)) c + 4 i Re(v_n) s,
//   R_ij = sum_n num_n / den_n,   kf = exp(i phi) (R00 - c R01 R10 / (1 + c R11)).
// DC is real (sum -2 Re(v / w) through the same correction), Nyquist is sum_n Re(v00_n), real.
//
// Precision.  The mode sums and the correction run in double for both output types; float output is the double
// result rounded.  Normwise per row (max |x32 - x64| / max |x64|), float against double on the same inputs,
// M = 16384, N2 = 32, HiPPO-LegS parameters (the eigendecomposed LegS matrix, dt log-uniform in [1e-3, 1e-1]):
// spectrum 5e-8, kernel irfft(kf) 3e-9; double against the formula in long double ~1e-13.  Measured
// alternative (a) -- |w|^2 c^2 - 4 s^2 in double, the rest of the mode loop and the correction in float: 2e-4
// on the spectrum (4e-7 on the kernel) for LegS, 6e-7 for random B, P: the correction R00 - c R01 R10 / (1 +
// c R11) cancels by 20-50x when |P|^2 ~ N (LegS), outside the 1e-5 contract; and on this AVX2 machine it was
// no faster (28-33 ms against 30-32 ms CPU time for 64 rows, M = 16384, one thread, on a loaded machine).
// Cost: 16 multiply-adds, 6 other operations and one division per (mode, bin), vectorized over bins.  Measured
// (AMD EPYC Zen 3, AVX2, a loaded 2-core VM; H = 256 rows, N2 = 32, M = 4096, float, medians): one thread, CPU
// time: spectrum ~30 ms, conv spectrum (L = 4096, n_fft = 8192) ~35 ms against ~15-20 ms for torch's
// rfft + irfft pair on (256, 8192) (ratio ~2); two threads, wall time: conv spectrum ~58 ms against ~58-81 ms
// for the pair (ratio 0.7-1.0).  The target is conv spectrum <= 3x the pair.
// No (rows, N2, M) temporary: O(N2 + block) memory per thread (the conv variant: O(M + n_fft) per thread).
// Results are bitwise independent of num_threads; the SIMD paths agree to rounding.
//
// Arrays are contiguous, row-major, and must not alias `out`:
//   log_dt {H}, A_real {H, N2}, A_imag {H, N2}, B {H, N2, 2}, P {H, N2, 2}, C {H, N2, 2} ((re, im) pairs),
//   rows {num_rows} int64 in [0, H) (any order, repeats allowed).
// A row with a non-finite input (or whose constants overflow) is NaN throughout its own output row only.
// Throws std::invalid_argument for null pointers (rows and out may be null when num_rows == 0), H < 1, N2 < 1,
// M < 1, num_rows < 0, a row outside [0, H), num_threads < 1, sizes whose products overflow, and (conv variant)
// L outside [1, M], n_fft < L, or M / n_fft not 2^a 3^b 5^c (RealFFT lengths: the caller falls back to its own
// FFT).  A rejected call writes nothing.
#pragma once

#include <cstdint>

#include "s4op/cpu_features.h"

namespace s4op {
namespace cpu {

// out {num_rows, M/2 + 1, 2}: kf of each row.
void dplr_spectrum_f32(const float* log_dt, const float* A_real, const float* A_imag, const float* B,
                       const float* P, const float* C, int64_t H, int64_t N2, const int64_t* rows,
                       int64_t num_rows, int64_t M, float* out, int num_threads);
void dplr_spectrum_f64(const double* log_dt, const double* A_real, const double* A_imag, const double* B,
                       const double* P, const double* C, int64_t H, int64_t N2, const int64_t* rows,
                       int64_t num_rows, int64_t M, double* out, int num_threads);

// out {num_rows, n_fft/2 + 1, 2}: rfft(irfft(kf, M)[:L], n_fft) of each row, the spectrum a length-n_fft FFT
// convolution needs of the kernel truncated to L taps (computed in the same row loop).
void dplr_conv_spectrum_f32(const float* log_dt, const float* A_real, const float* A_imag, const float* B,
                            const float* P, const float* C, int64_t H, int64_t N2, const int64_t* rows,
                            int64_t num_rows, int64_t M, int64_t L, int64_t n_fft, float* out, int num_threads);
void dplr_conv_spectrum_f64(const double* log_dt, const double* A_real, const double* A_imag, const double* B,
                            const double* P, const double* C, int64_t H, int64_t N2, const int64_t* rows,
                            int64_t num_rows, int64_t M, int64_t L, int64_t n_fft, double* out, int num_threads);

// The SIMD path the four functions above use on this CPU, as cpu_features' simd_path_name: "avx512",
// "avx2+fma" or "scalar" ("generic" in the generic build, S4OP_SIMD=generic).
const char* dplr_kernel_isa();

namespace detail {

// For tests and benchmarks: a specific SIMD path of cpu_features.h (this kernel implements kScalar, kAVX2 and
// kAVX512).  The paths agree to rounding (they differ in FMA use), not bitwise.  dplr_isa_supported says whether
// the path runs here; the functions below run it, and throw std::invalid_argument where it does not.
bool dplr_isa_supported(SimdPath path);

void dplr_spectrum_f32_isa(const float* log_dt, const float* A_real, const float* A_imag, const float* B,
                           const float* P, const float* C, int64_t H, int64_t N2, const int64_t* rows,
                           int64_t num_rows, int64_t M, float* out, int num_threads, SimdPath path);
void dplr_spectrum_f64_isa(const double* log_dt, const double* A_real, const double* A_imag, const double* B,
                           const double* P, const double* C, int64_t H, int64_t N2, const int64_t* rows,
                           int64_t num_rows, int64_t M, double* out, int num_threads, SimdPath path);
void dplr_conv_spectrum_f32_isa(const float* log_dt, const float* A_real, const float* A_imag, const float* B,
                                const float* P, const float* C, int64_t H, int64_t N2, const int64_t* rows,
                                int64_t num_rows, int64_t M, int64_t L, int64_t n_fft, float* out, int num_threads,
                                SimdPath path);
void dplr_conv_spectrum_f64_isa(const double* log_dt, const double* A_real, const double* A_imag, const double* B,
                                const double* P, const double* C, int64_t H, int64_t N2, const int64_t* rows,
                                int64_t num_rows, int64_t M, int64_t L, int64_t n_fft, double* out, int num_threads,
                                SimdPath path);

}  // namespace detail
}  // namespace cpu
}  // namespace s4op
