// Sparse-channel FFT convolution: the SSM part of an operator-pruned S4/S4D layer.
//   y[b, h] = causal_conv(u[b, h], K_j) + D_j u[b, h]   for h = active[j]
//   y[b, h] = u[b, h]                                   for every other (pruned) channel
// Each active (b, h) row is processed start to end by one thread (forward FFT, complex product,
// inverse FFT, skip term) so its data stays in cache.
#pragma once

#include <complex>
#include <cstdint>

namespace s4op::cpu {

// All arrays dense, row-major.  n_fft must be a fast size (2^a 3^b 5^c) >= 2L - 1; active must hold
// distinct, increasing indices in [0, H).  Throws std::invalid_argument on bad arguments.
void sparse_fftconv_f32(const float* u,                 // {B, H, L}
                        const std::complex<float>* k_f,  // {A, n_fft / 2 + 1}
                        const float* D,                  // {A}
                        const int64_t* active,           // {A}
                        int64_t B, int64_t H, int64_t L, int64_t A, int64_t n_fft,
                        float* y,                        // {B, H, L}; must not overlap u
                        int num_threads);

void sparse_fftconv_f64(const double* u,                 // {B, H, L}
                        const std::complex<double>* k_f,  // {A, n_fft / 2 + 1}
                        const double* D,                  // {A}
                        const int64_t* active,            // {A}
                        int64_t B, int64_t H, int64_t L, int64_t A, int64_t n_fft,
                        double* y,                        // {B, H, L}; must not overlap u
                        int num_threads);

}  // namespace s4op::cpu
