// Sparse-channel FFT convolution: the SSM part of an operator-pruned S4/S4D layer.
//   y[b, h] = f(causal_conv(u[b, h], K_j) + D_j u[b, h])   for h = active[j]
//   y[b, h] = f(u[b, h])                                   for every other (pruned) channel
// with f the epilogue (identity, or the exact GELU that follows the SSM in an S4/S4D layer).
// Each active (b, h) row is processed start to end by one thread (forward FFT, complex product,
// inverse FFT, skip term, epilogue) so its data stays in cache.  y_batch_stride (0: H * L) lets y be the
// first H channels of a larger (B, H', L) buffer, e.g. one whose extra channel of ones folds a bias into
// the GEMM that follows; with extra_value, the rest of each batch's stride (channels [H, H') when
// y_batch_stride = H' L) is set to *extra_value by the same parallel loop.
#pragma once

#include <complex>
#include <cstdint>

namespace s4op::cpu {

enum class Epilogue { identity, gelu };

// All arrays dense, row-major (y: see y_batch_stride below); y must not overlap u.  n_fft must be a fast
// size (2^a 3^b 5^c) >= 2L - 1; active must hold distinct, increasing indices in [0, H).  Throws
// std::invalid_argument on bad arguments, before anything is written.  extra_value, when not null, is
// the value of y[b * stride + H L .. (b + 1) * stride) for every b (stride = y_batch_stride); null
// leaves those elements as they are.
// Bytes of caller-provided scratch that make a call with these H, n_fft, num_threads and element size (4: float,
// 8: double) allocate nothing (the torch-free runtime passes it; other callers pass none and the call
// allocates its own).  Builds the FFT plan for n_fft if it does not exist yet.
int64_t sparse_fftconv_scratch_bytes(int64_t H, int64_t n_fft, int num_threads, int element_size);

void sparse_fftconv_f32(const float* u,                 // {B, H, L}
                        const std::complex<float>* k_f,  // {A, n_fft / 2 + 1}
                        const float* D,                  // {A}
                        const int64_t* active,           // {A}
                        int64_t B, int64_t H, int64_t L, int64_t A, int64_t n_fft,
                        float* y,                        // {B, H, L} rows, batch stride y_batch_stride
                        int num_threads, Epilogue epilogue = Epilogue::identity, int64_t y_batch_stride = 0,
                        const float* extra_value = nullptr,   // {1} or null
                        void* scratch = nullptr, int64_t scratch_bytes = 0);  // see sparse_fftconv_scratch_bytes

void sparse_fftconv_f64(const double* u,                 // {B, H, L}
                        const std::complex<double>* k_f,  // {A, n_fft / 2 + 1}
                        const double* D,                  // {A}
                        const int64_t* active,            // {A}
                        int64_t B, int64_t H, int64_t L, int64_t A, int64_t n_fft,
                        double* y,                        // {B, H, L} rows, batch stride y_batch_stride
                        int num_threads, Epilogue epilogue = Epilogue::identity, int64_t y_batch_stride = 0,
                        const double* extra_value = nullptr,   // {1} or null
                        void* scratch = nullptr, int64_t scratch_bytes = 0);  // see sparse_fftconv_scratch_bytes

// y[i] = GELU(x[i]) = x[i] Phi(x[i]) (the exact, erf-based GELU), i < n; y may equal x.  float32: a
// branch-free form the compiler vectorizes (max abs error of Phi about 3e-7); float64: std::erfc.
void gelu_f32(const float* x, float* y, int64_t n);
void gelu_f64(const double* x, double* y, int64_t n);

// The SIMD path gelu_f32 (the GELU epilogue of sparse_fftconv_f32) uses on this CPU, a name of
// cpu_features.h's simd_path_name: "avx512", "avx2+fma" or "scalar" ("generic" in the generic build).
const char* gelu_f32_isa();

}  // namespace s4op::cpu
