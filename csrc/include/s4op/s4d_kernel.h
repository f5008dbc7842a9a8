// S4D convolution kernel (diagonal state matrix, zero-order hold) for a list of rows (channels).
//
//   A[h,n] = -exp(log_A_real[h,n]) + i * A_imag[h,n],   dt_h = exp(log_dt[h])
//   K[j,l] = 2 Re sum_n C[h,n] (exp(dt_h A[h,n]) - 1) / A[h,n] * exp(dt_h A[h,n] l)
//   with h = rows[j], l = 0..L-1
//
// (Gu, Gupta, Goel, Re 2022, "On the Parameterization and Initialization of Diagonal State Space
// Models", the ZOH Vandermonde kernel; the formula of design.md "Semantics that must be exact".)
// No H x N2 x L temporary is built: memory is O(N2 * block) per thread.
#pragma once

#include <cstdint>

#include "s4op/cpu_features.h"

namespace s4op {
namespace cpu {

// All arrays are contiguous, row-major and must not alias K.
//   C           {H, N2, 2}  complex C as (real, imag) pairs
//   log_dt      {H}
//   log_A_real  {H, N2}
//   A_imag      {H, N2}
//   rows        {num_rows} int64 rows to compute, each in [0, H), any order; duplicates are
//                            allowed (the row is simply computed again)
//   K           {num_rows, L}    output, K[j, :] is the kernel of channel rows[j]
// Parameters are converted to double and all per-mode quantities (exp, sin/cos, powers of
// exp(dt A)) are formed in double; only the final N2 x L sum runs in the output type.  float
// output stays within 1e-5 (normwise per row: max_l |K32 - K64| / max_l |K64|) of the float64
// formula for any L (observed ~1e-6 at L = 16384); rows too ill-conditioned for a float sum are
// computed in double.  float64 output: ~1e-13 normwise at L = 16384.
// A row whose parameters produce a non-finite coefficient (NaN/Inf input, exp overflow) is
// filled with NaN.  Threads: at most num_threads (>= 1); the result is bitwise independent of it
// (but not across SIMD paths, which differ in FMA use: they agree to rounding).
// Throws std::invalid_argument for null pointers, H < 1, N2 < 1, L < 0, num_rows < 0,
// a row outside [0, H), num_threads < 1, or sizes whose products overflow.
void s4d_kernel_f32(const float* C, const float* log_dt, const float* log_A_real,
                    const float* A_imag, int64_t H, int64_t N2, const int64_t* rows,
                    int64_t num_rows, int64_t L, float* K, int num_threads);

void s4d_kernel_f64(const double* C, const double* log_dt, const double* log_A_real,
                    const double* A_imag, int64_t H, int64_t N2, const int64_t* rows,
                    int64_t num_rows, int64_t L, double* K, int num_threads);

// The SIMD path the two functions above use on this CPU, as cpu_features' simd_path_name: "avx512",
// "avx2+fma" or "scalar" ("generic" in the generic build, S4OP_SIMD=generic).
const char* s4d_kernel_isa();

namespace detail {

// For tests and benchmarks: a specific SIMD path of cpu_features.h (this kernel implements kScalar,
// kAVX2 and kAVX512).  The paths agree to rounding (they differ in FMA use), not bitwise.
// s4d_isa_supported says whether the path runs here; the two functions below run it, and throw
// std::invalid_argument where it does not.
bool s4d_isa_supported(SimdPath path);

void s4d_kernel_f32_isa(const float* C, const float* log_dt, const float* log_A_real,
                        const float* A_imag, int64_t H, int64_t N2, const int64_t* rows,
                        int64_t num_rows, int64_t L, float* K, int num_threads, SimdPath path);

void s4d_kernel_f64_isa(const double* C, const double* log_dt, const double* log_A_real,
                        const double* A_imag, int64_t H, int64_t N2, const int64_t* rows,
                        int64_t num_rows, int64_t L, double* K, int num_threads, SimdPath path);

}  // namespace detail
}  // namespace cpu
}  // namespace s4op
