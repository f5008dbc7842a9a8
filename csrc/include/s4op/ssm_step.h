// The recurrent (streaming) form of the S4D and S4 layers over their active channels: one sample at a time in
// O(A N2) work, and the part of a chunk that the incoming state contributes.
//
// Both layers share one step over a state of N2 complex modes per (batch element, active channel): S4D's state is
// diagonal; S4's full state has 2 N2 entries in conjugate pairs (the system is conjugate-symmetric and the input
// real), so its first N2 entries determine it.  With per-mode complex coefficients (alpha, beta, c, eps, f, pbar, q)
// and per-channel real scalars (D, sigma_e, sigma_b):
//
//   s1 = 2 Re sum_n pbar_n x_n,   t = 2 Re sum_n q_n x_n + sigma_e s1 + sigma_b u
//   x'_n = alpha_n x_n + beta_n u + eps_n s1 + f_n t
//   y = 2 Re sum_n c_n x'_n + D u
//
// S4D (zero-order hold, the recurrence whose impulse response is the S4D kernel of s4d_kernel.h; S4D paper, Gu et
// al. 2022, eq. for the ZOH discretization): alpha = exp(dt A), beta = (exp(dt A) - 1) / A, c = C, and no rank-1
// terms (only the first three fields exist).
//
// S4 (rank-1 DPLR, bilinear; the reference S4's step): (I - h A_f) x' = (I + h A_f) x + dt B_f u with h = dt / 2,
// A_f = diag(Lambda_f) - P_f P_f^H.  On a conjugate-symmetric x, P_f^H x = 2 Re sum_n conj(P_n) x_n = s1 (real),
// so the right side is r = a x - h P s1 + dt B u (a = 1 + h Lambda), and the Woodbury identity solves the left
// side in O(N2): with g = 1 / (1 - h Lambda), w = conj(P) g, rho = 2 Re sum |P|^2 g,
//   x' = g r - h g P (2 Re sum w r) / (1 + h rho),
// which expands to the step above with alpha = g a, beta = g dt B, eps = -h g P, f = -h g P / (1 + h rho),
// pbar = conj(P), q = w a, sigma_e = 2 Re sum w (-h P), sigma_b = 2 Re sum w dt B, and c = C_f, the output
// vector of the full system (the layer's C-tilde (I - dA^l_kernel)^-1: the caller inverts it, in float64).
// Its impulse response C_f dA^l dB is the S4 kernel (dplr_kernel.h); no matrix is formed or diagonalized.
//
// Layouts (row-major, contiguous):
//   modes    {A, fields, 2, N2}   per active channel, per field: N2 real parts, then N2 imaginary parts
//                                 (fields = kStepFieldsDiag: alpha, beta, c; kStepFieldsDplr: + eps, f, pbar, q)
//   scalars  {A, kStepScalars}    D, sigma_e, sigma_b (S4D: D, 0, 0)
//   x        {B, A, N2, 2}        the state: (re, im) pairs, channel j = the j-th active channel
// Coefficients are computed in double (from parameters of either type) and stored in the output type; the step
// runs in the state's type.
#pragma once

#include <cstdint>

#include "s4op/sparse_fftconv.h"  // Epilogue

namespace s4op::cpu {

inline constexpr int kStepFieldsDiag = 3;
inline constexpr int kStepFieldsDplr = 7;
inline constexpr int kStepScalars = 3;

// S4D step coefficients of rows[j] (parameters as s4d_kernel: C {H, N2, 2}, log_dt {H}, log_A_real, A_imag
// {H, N2}; D {H}) into modes {num_rows, 3, 2, N2} and scalars {num_rows, 3}.  Throws std::invalid_argument for
// null pointers (rows/modes/scalars may be null when num_rows == 0), H < 1, N2 < 1, num_rows < 0 or a row outside
// [0, H), before anything is written.
void s4d_step_setup_f32(const float* C, const float* log_dt, const float* log_A_real, const float* A_imag,
                        const float* D, int64_t H, int64_t N2, const int64_t* rows, int64_t num_rows, float* modes,
                        float* scalars);
void s4d_step_setup_f64(const double* C, const double* log_dt, const double* log_A_real, const double* A_imag,
                        const double* D, int64_t H, int64_t N2, const int64_t* rows, int64_t num_rows, double* modes,
                        double* scalars);

// S4 step coefficients of rows[j]: log_dt {H}, A_real, A_imag {H, N2} (Lambda = -exp(A_real) - i A_imag),
// B, P, C_f {H, N2, 2} (C_f: the plain output vector, not C-tilde), D {H}; modes {num_rows, 7, 2, N2}.
// Same checks as s4d_step_setup.
void dplr_step_setup_f32(const float* log_dt, const float* A_real, const float* A_imag, const float* B,
                         const float* P, const float* C_f, const float* D, int64_t H, int64_t N2, const int64_t* rows,
                         int64_t num_rows, float* modes, float* scalars);
void dplr_step_setup_f64(const double* log_dt, const double* A_real, const double* A_imag, const double* B,
                         const double* P, const double* C_f, const double* D, int64_t H, int64_t N2,
                         const int64_t* rows, int64_t num_rows, double* modes, double* scalars);

// One sample: y[b, h] = f(the step's output) for h = active[j] (x_out[b, j] the new state), y[b, h] = f(u[b, h])
// for every pruned channel (identity: no state, no D), f the epilogue.  u {B, H}, x {B, A, N2, 2}, x_out {B, A, N2,
// 2} (may be x itself; must not overlap it otherwise), y {B, H} (must not overlap u, x or x_out).  active: A
// distinct increasing channels in [0, H).  Throws std::invalid_argument (before anything is written) for null
// pointers (none is needed when B = 0; x, x_out, modes, scalars when A = 0), B < 0, H < 1, A < 0 or > H, N2 < 1,
// fields not 3 or 7, a bad active list or num_threads < 1.  Results are bitwise independent of num_threads.
void ssm_step_f32(const float* modes, const float* scalars, int fields, const int64_t* active, int64_t B, int64_t H,
                  int64_t A, int64_t N2, const float* u, const float* x, float* x_out, float* y, Epilogue epilogue,
                  int num_threads);
void ssm_step_f64(const double* modes, const double* scalars, int fields, const int64_t* active, int64_t B,
                  int64_t H, int64_t A, int64_t N2, const double* u, const double* x, double* x_out, double* y,
                  Epilogue epilogue, int num_threads);

// What a chunk of L samples u {B, H, L} does with the incoming state x {B, A, N2, 2}, besides the convolution of
// the chunk itself (which a chunked forward takes from the FFT convolution):
//   y_free {B, A, L}: the zero-input response of x, y_free[b, j, t] = the output the state alone gives at t
//                     (C_f dA^(t+1) x; S4D: 2 Re sum_n c_n alpha_n^(t+1) x_n), no D term;
//   x_out {B, A, N2, 2}: the state after the chunk (may be x itself).
// Both by running the step: O(B A N2 L).  Same checks as ssm_step (L >= 0).
void ssm_chunk_state_f32(const float* modes, const float* scalars, int fields, const int64_t* active, int64_t B,
                         int64_t H, int64_t A, int64_t N2, int64_t L, const float* u, const float* x, float* x_out,
                         float* y_free, int num_threads);
void ssm_chunk_state_f64(const double* modes, const double* scalars, int fields, const int64_t* active, int64_t B,
                         int64_t H, int64_t A, int64_t N2, int64_t L, const double* u, const double* x, double* x_out,
                         double* y_free, int num_threads);

}  // namespace s4op::cpu
