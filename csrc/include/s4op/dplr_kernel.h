// S4 (DPLR, rank 1) kernel spectrum for a list of rows: the reference S4's Cauchy sums with the Woodbury
// correction at the roots of unity, for the active channels only.
//
//   dt = exp(log_dt[h]),  Lambda_n = -exp(A_real[h,n]) - i A_imag[h,n],  w_n = dt Lambda_n
//   v00 = dt B C,  v01 = dt B conj(P),  v10 = dt P C,  v11 = dt |P|^2          (per mode n)
//   r_ij(z) = sum_n v_n / (z - w_n) + conj(v_n) / (z - conj(w_n)),  z_k = 2 (1 - omega_k) / (1 + omega_k)
//   kf[k] = (r00 - r01 r10 / (1 + r11)) 2 / (1 + omega_k),  omega_k = exp(-2 pi i k / M),  k = 0 .. M/2
//
// so that irfft(kf, M) is the length-M kernel (C holds C-tilde for M).  Evaluated in the equivalent form that
// is finite at every bin (phi = pi k / M, c = cos phi, s = sin phi):
//   den_n = (|w_n|^2 c^2 - 4 s^2) - 4 i Re(w_n) s c,   num_n = -2 Re(v_n conj(w_n)) c + 4 i Re(v_n) s,
//   R_ij = sum_n num_n / den_n,   kf = exp(i phi) (R00 - c R01 R10 / (1 + c R11)).
// The real part of den cancels at resonance (|w| c ~ 2 s) and is formed in double in both entry points; per-
// mode constants and per-bin angles are double; the sums run in T.  No (rows, N2, M) temporary: O(N2 + block)
// memory per thread.  Results are bitwise independent of num_threads.
//
// Arrays are contiguous, row-major, and must not alias `out`:
//   log_dt {H}, A_real {H, N2}, A_imag {H, N2}, B {H, N2, 2}, P {H, N2, 2}, C {H, N2, 2} ((re, im) pairs),
//   rows {num_rows} int64 in [0, H) (any order, repeats allowed).
// A row with non-finite inputs yields non-finite values in its own output row only.
// Throws std::invalid_argument for null pointers, H < 1, N2 < 1, M < 1, num_rows < 0, a row outside [0, H),
// num_threads < 1, sizes whose products overflow, and (conv variant) L outside [1, M], n_fft < L, or M / n_fft
// not 2^a 3^b 5^c (RealFFT lengths).
#pragma once

#include <cstdint>

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

// The SIMD path of the Cauchy sums on this CPU, as cpu_features' simd_path_name: "avx512", "avx2+fma" or
// "scalar" ("generic" in the generic build).  The sums are plain loops over a block of bins, compiled once
// per path with its target attributes (simd.h) and vectorized there by the compiler.
const char* dplr_kernel_isa();

}  // namespace cpu
}  // namespace s4op
