// The recurrent step of the S4D / S4 layers (see ssm_step.h for the formulas and layouts).
//
// Work items are (batch element, active channel) pairs: each item's arithmetic depends only on its own data, so
// results are bitwise independent of the thread count.  A step is a few hundred flops per item (N2 = 32: two
// passes over the modes), far less than waking a thread costs, so small calls run on the calling thread.
#include "s4op/ssm_step.h"

#include <cmath>
#include <complex>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "s4op/parallel.h"
#include "simd.h"

namespace s4op::cpu {
namespace {

// Field offsets in a channel's {fields, 2, N2} block, in units of N2 (real row, then imaginary row).
enum Field : int64_t { kAlpha = 0, kBeta = 2, kC = 4, kEps = 6, kF = 8, kPbar = 10, kQ = 12 };

// Below this many mode updates a call runs on the calling thread (a thread wake-up costs more).
constexpr int64_t kParallelGrain = int64_t{1} << 15;

[[noreturn]] void fail(const char* fn, const std::string& msg) { throw std::invalid_argument(std::string(fn) + ": " + msg); }

int64_t checked_mul(const char* fn, int64_t a, int64_t b) {
  if (a < 0 || b < 0 || (b > 0 && a > std::numeric_limits<int64_t>::max() / b)) fail(fn, "sizes overflow");
  return a * b;
}

void check_rows(const char* fn, const int64_t* rows, int64_t num_rows, int64_t H) {
  for (int64_t j = 0; j < num_rows; ++j) {
    if (rows[j] < 0 || rows[j] >= H) {
      fail(fn, "rows[" + std::to_string(j) + "] = " + std::to_string(rows[j]) + " is outside [0, H = " +
                   std::to_string(H) + ")");
    }
  }
}

void check_setup(const char* fn, std::initializer_list<const void*> params, int64_t H, int64_t N2,
                 const int64_t* rows, int64_t num_rows, const void* modes, const void* scalars) {
  if (H < 1) fail(fn, "H must be >= 1, got " + std::to_string(H));
  if (N2 < 1) fail(fn, "N2 must be >= 1, got " + std::to_string(N2));
  if (num_rows < 0) fail(fn, "num_rows must be >= 0, got " + std::to_string(num_rows));
  for (const void* p : params) {
    if (p == nullptr) fail(fn, "a parameter pointer is null");
  }
  if (num_rows > 0 && (rows == nullptr || modes == nullptr || scalars == nullptr)) {
    fail(fn, "rows, modes and scalars must not be null");
  }
  checked_mul(fn, checked_mul(fn, H, N2), 2 * kStepFieldsDplr);
  checked_mul(fn, checked_mul(fn, num_rows, N2), 2 * kStepFieldsDplr);
  check_rows(fn, rows, num_rows, H);
}

template <class T>
void store(T* m, int64_t N2, int64_t field, int64_t n, std::complex<double> v) {
  m[field * N2 + n] = static_cast<T>(v.real());
  m[(field + 1) * N2 + n] = static_cast<T>(v.imag());
}

template <class T>
void s4d_setup(const T* C, const T* log_dt, const T* log_A_real, const T* A_imag, const T* D, int64_t H, int64_t N2,
               const int64_t* rows, int64_t num_rows, T* modes, T* scalars) {
  check_setup("s4d_step_setup", {C, log_dt, log_A_real, A_imag, D}, H, N2, rows, num_rows, modes, scalars);
  for (int64_t j = 0; j < num_rows; ++j) {
    const int64_t h = rows[j];
    const double dt = std::exp(static_cast<double>(log_dt[h]));
    T* m = modes + j * kStepFieldsDiag * 2 * N2;  // {3, 2, N2}
    for (int64_t n = 0; n < N2; ++n) {
      const std::complex<double> A(-std::exp(static_cast<double>(log_A_real[h * N2 + n])),
                                   static_cast<double>(A_imag[h * N2 + n]));
      const std::complex<double> z = dt * A;
      // exp(z) - 1 without cancellation: (e^a cos b - 1) = expm1(a) cos b - 2 sin^2(b / 2).
      const double s = std::sin(z.imag() / 2);
      const std::complex<double> em1(std::expm1(z.real()) * std::cos(z.imag()) - 2 * s * s,
                                     std::exp(z.real()) * std::sin(z.imag()));
      store(m, N2, kAlpha, n, std::exp(z));
      store(m, N2, kBeta, n, em1 / A);
      store(m, N2, kC, n, {static_cast<double>(C[(h * N2 + n) * 2]), static_cast<double>(C[(h * N2 + n) * 2 + 1])});
    }
    scalars[j * kStepScalars] = D[h];
    scalars[j * kStepScalars + 1] = T(0);
    scalars[j * kStepScalars + 2] = T(0);
  }
}

template <class T>
std::complex<double> cplx(const T* v, int64_t i) {
  return {static_cast<double>(v[2 * i]), static_cast<double>(v[2 * i + 1])};
}

template <class T>
void dplr_setup(const T* log_dt, const T* A_real, const T* A_imag, const T* B, const T* P, const T* C_f, const T* D,
                int64_t H, int64_t N2, const int64_t* rows, int64_t num_rows, T* modes, T* scalars) {
  check_setup("dplr_step_setup", {log_dt, A_real, A_imag, B, P, C_f, D}, H, N2, rows, num_rows, modes, scalars);
  for (int64_t j = 0; j < num_rows; ++j) {
    const int64_t h = rows[j];
    const double dt = std::exp(static_cast<double>(log_dt[h])), hh = dt / 2;
    T* m = modes + j * kStepFieldsDplr * 2 * N2;  // {7, 2, N2}
    // rho = 2 Re sum |P|^2 g > 0 (Re g > 0 since Re Lambda < 0), so 1 + h rho >= 1.
    double rho = 0;
    for (int64_t n = 0; n < N2; ++n) {
      const std::complex<double> lam(-std::exp(static_cast<double>(A_real[h * N2 + n])),
                                     -static_cast<double>(A_imag[h * N2 + n]));
      rho += 2 * std::norm(cplx(P, h * N2 + n)) * (1.0 / (1.0 - hh * lam)).real();
    }
    const double kappa = 1.0 / (1.0 + hh * rho);
    double sigma_e = 0, sigma_b = 0;
    for (int64_t n = 0; n < N2; ++n) {
      const std::complex<double> lam(-std::exp(static_cast<double>(A_real[h * N2 + n])),
                                     -static_cast<double>(A_imag[h * N2 + n]));
      const std::complex<double> p = cplx(P, h * N2 + n), b = cplx(B, h * N2 + n);
      const std::complex<double> g = 1.0 / (1.0 - hh * lam), a = 1.0 + hh * lam, w = std::conj(p) * g;
      store(m, N2, kAlpha, n, g * a);
      store(m, N2, kBeta, n, g * dt * b);
      store(m, N2, kC, n, cplx(C_f, h * N2 + n));
      store(m, N2, kEps, n, -hh * g * p);
      store(m, N2, kF, n, -hh * kappa * g * p);
      store(m, N2, kPbar, n, std::conj(p));
      store(m, N2, kQ, n, w * a);
      sigma_e += 2 * (w * (-hh * p)).real();
      sigma_b += 2 * (w * (dt * b)).real();
    }
    scalars[j * kStepScalars] = D[h];
    scalars[j * kStepScalars + 1] = static_cast<T>(sigma_e);
    scalars[j * kStepScalars + 2] = static_cast<T>(sigma_b);
  }
}

// One step of one (batch element, channel): xs {N2, 2} -> xo {N2, 2} (xo may be xs), returns y - D u.
// m: the channel's {fields, 2, N2} coefficients, s: its {3} scalars.
template <class T, bool Rank1>
S4OP_INLINE T step_one(const T* m, const T* s, int64_t N2, T u, const T* xs, T* xo) {
  T s1 = 0, t = 0;
  if constexpr (Rank1) {
    const T *pr = m + kPbar * N2, *pi = pr + N2, *qr = m + kQ * N2, *qi = qr + N2;
    T a1 = 0, a3 = 0;
    for (int64_t n = 0; n < N2; ++n) {
      const T xr = xs[2 * n], xi = xs[2 * n + 1];
      a1 += pr[n] * xr - pi[n] * xi;
      a3 += qr[n] * xr - qi[n] * xi;
    }
    s1 = 2 * a1;
    t = 2 * a3 + s[1] * s1 + s[2] * u;
  }
  const T *ar = m + kAlpha * N2, *ai = ar + N2, *br = m + kBeta * N2, *bi = br + N2, *cr = m + kC * N2,
          *ci = cr + N2;
  T acc = 0;
  for (int64_t n = 0; n < N2; ++n) {
    const T xr = xs[2 * n], xi = xs[2 * n + 1];
    T nr = ar[n] * xr - ai[n] * xi + br[n] * u;
    T ni = ar[n] * xi + ai[n] * xr + bi[n] * u;
    if constexpr (Rank1) {
      const T *er = m + kEps * N2, *ei = er + N2, *fr = m + kF * N2, *fi = fr + N2;
      nr += er[n] * s1 + fr[n] * t;
      ni += ei[n] * s1 + fi[n] * t;
    }
    xo[2 * n] = nr;
    xo[2 * n + 1] = ni;
    acc += cr[n] * nr - ci[n] * ni;
  }
  return 2 * acc;
}

bool overlap(const void* a, int64_t a_bytes, const void* b, int64_t b_bytes) {
  if (a_bytes <= 0 || b_bytes <= 0) return false;
  const char *pa = static_cast<const char*>(a), *pb = static_cast<const char*>(b);
  return pa < pb + b_bytes && pb < pa + a_bytes;
}

template <class T>
void check_run(const char* fn, const T* modes, const T* scalars, int fields, const int64_t* active, int64_t B,
               int64_t H, int64_t A, int64_t N2, int64_t L, const T* u, const T* x, const T* x_out, const T* y,
               int64_t y_elems, int num_threads) {
  if (B < 0) fail(fn, "B must be >= 0, got " + std::to_string(B));
  if (H < 1) fail(fn, "H must be >= 1, got " + std::to_string(H));
  if (A < 0 || A > H) fail(fn, "A must be in [0, H = " + std::to_string(H) + "], got " + std::to_string(A));
  if (N2 < 1) fail(fn, "N2 must be >= 1, got " + std::to_string(N2));
  if (L < 0) fail(fn, "L must be >= 0, got " + std::to_string(L));
  if (fields != kStepFieldsDiag && fields != kStepFieldsDplr) {
    fail(fn, "fields must be 3 (S4D) or 7 (S4), got " + std::to_string(fields));
  }
  if (num_threads < 1) fail(fn, "num_threads must be >= 1, got " + std::to_string(num_threads));
  const int64_t x_elems = checked_mul(fn, checked_mul(fn, checked_mul(fn, B, A), N2), 2);
  checked_mul(fn, checked_mul(fn, B, H), L);
  checked_mul(fn, checked_mul(fn, A, N2), 2 * fields);
  if (A > 0 && (active == nullptr || modes == nullptr || scalars == nullptr)) {
    fail(fn, "active, modes and scalars must not be null");
  }
  if (B * H * L > 0 && u == nullptr) fail(fn, "u must not be null");
  if (y_elems > 0 && y == nullptr) fail(fn, "the output must not be null");
  if (x_elems > 0 && (x == nullptr || x_out == nullptr)) fail(fn, "x and x_out must not be null");
  for (int64_t j = 0; j < A; ++j) {
    if (active[j] < 0 || active[j] >= H || (j > 0 && active[j] <= active[j - 1])) {
      fail(fn, "active must hold distinct increasing channels in [0, H = " + std::to_string(H) + ")");
    }
  }
  const int64_t xb = x_elems * static_cast<int64_t>(sizeof(T)), yb = y_elems * static_cast<int64_t>(sizeof(T));
  if (x != x_out && overlap(x, xb, x_out, xb)) fail(fn, "x_out must be x itself or not overlap it");
  if (overlap(y, yb, x, xb) || overlap(y, yb, x_out, xb)) fail(fn, "the output must not overlap x or x_out");
  if (overlap(y, yb, u, B * H * L * static_cast<int64_t>(sizeof(T)))) fail(fn, "the output must not overlap u");
}

void apply_gelu(float* v, int64_t n) { gelu_f32(v, v, n); }
void apply_gelu(double* v, int64_t n) { gelu_f64(v, v, n); }

template <class T>
void step(const T* modes, const T* scalars, int fields, const int64_t* active, int64_t B, int64_t H, int64_t A,
          int64_t N2, const T* u, const T* x, T* x_out, T* y, Epilogue epilogue, int num_threads) {
  check_run("ssm_step", modes, scalars, fields, active, B, H, A, N2, 1, u, x, x_out, y, B * H, num_threads);
  if (B == 0) return;
  const int64_t per = fields * 2 * N2;
  auto items = [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / A, j = i % A;
      const T* m = modes + j * per;
      const T* s = scalars + j * kStepScalars;
      const T ub = u[b * H + active[j]];
      const T* xs = x + i * N2 * 2;
      T* xo = x_out + i * N2 * 2;
      const T v = fields == kStepFieldsDplr ? step_one<T, true>(m, s, N2, ub, xs, xo)
                                            : step_one<T, false>(m, s, N2, ub, xs, xo);
      y[b * H + active[j]] = v + s[0] * ub;
    }
  };
  const int64_t n_items = B * A;
  parallel_for(n_items, n_items * N2 * fields < kParallelGrain ? 1 : num_threads, items);
  for (int64_t b = 0; b < B; ++b) {  // pruned channels: identity; then the epilogue over the whole row
    int64_t j = 0;
    for (int64_t h = 0; h < H; ++h) {
      if (j < A && active[j] == h) {
        ++j;
      } else {
        y[b * H + h] = u[b * H + h];
      }
    }
    if (epilogue == Epilogue::gelu) apply_gelu(y + b * H, H);
  }
}

template <class T>
void chunk_state(const T* modes, const T* scalars, int fields, const int64_t* active, int64_t B, int64_t H,
                 int64_t A, int64_t N2, int64_t L, const T* u, const T* x, T* x_out, T* y_free, int num_threads) {
  check_run("ssm_chunk_state", modes, scalars, fields, active, B, H, A, N2, L, u, x, x_out, y_free, B * A * L,
            num_threads);
  const int64_t per = fields * 2 * N2;
  auto items = [&](int64_t begin, int64_t end) {
    std::vector<T> free_state(static_cast<size_t>(2 * N2)), driven(static_cast<size_t>(2 * N2));
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / A, j = i % A;
      const T* m = modes + j * per;
      const T* s = scalars + j * kStepScalars;
      const T* ub = u + (b * H + active[j]) * L;  // {L}
      T* yf = y_free + i * L;                    // {L}
      for (int64_t k = 0; k < 2 * N2; ++k) free_state[k] = driven[k] = x[i * 2 * N2 + k];
      for (int64_t t = 0; t < L; ++t) {
        if (fields == kStepFieldsDplr) {
          yf[t] = step_one<T, true>(m, s, N2, T(0), free_state.data(), free_state.data());
          step_one<T, true>(m, s, N2, ub[t], driven.data(), driven.data());
        } else {
          yf[t] = step_one<T, false>(m, s, N2, T(0), free_state.data(), free_state.data());
          step_one<T, false>(m, s, N2, ub[t], driven.data(), driven.data());
        }
      }
      for (int64_t k = 0; k < 2 * N2; ++k) x_out[i * 2 * N2 + k] = driven[k];
    }
  };
  const int64_t n_items = B * A;
  parallel_for(n_items, n_items * N2 * fields * (L + 1) < kParallelGrain ? 1 : num_threads, items);
}

}  // namespace

void s4d_step_setup_f32(const float* C, const float* log_dt, const float* log_A_real, const float* A_imag,
                        const float* D, int64_t H, int64_t N2, const int64_t* rows, int64_t num_rows, float* modes,
                        float* scalars) {
  s4d_setup(C, log_dt, log_A_real, A_imag, D, H, N2, rows, num_rows, modes, scalars);
}
void s4d_step_setup_f64(const double* C, const double* log_dt, const double* log_A_real, const double* A_imag,
                        const double* D, int64_t H, int64_t N2, const int64_t* rows, int64_t num_rows, double* modes,
                        double* scalars) {
  s4d_setup(C, log_dt, log_A_real, A_imag, D, H, N2, rows, num_rows, modes, scalars);
}
void dplr_step_setup_f32(const float* log_dt, const float* A_real, const float* A_imag, const float* B,
                         const float* P, const float* C_f, const float* D, int64_t H, int64_t N2, const int64_t* rows,
                         int64_t num_rows, float* modes, float* scalars) {
  dplr_setup(log_dt, A_real, A_imag, B, P, C_f, D, H, N2, rows, num_rows, modes, scalars);
}
void dplr_step_setup_f64(const double* log_dt, const double* A_real, const double* A_imag, const double* B,
                         const double* P, const double* C_f, const double* D, int64_t H, int64_t N2,
                         const int64_t* rows, int64_t num_rows, double* modes, double* scalars) {
  dplr_setup(log_dt, A_real, A_imag, B, P, C_f, D, H, N2, rows, num_rows, modes, scalars);
}

void ssm_step_f32(const float* modes, const float* scalars, int fields, const int64_t* active, int64_t B, int64_t H,
                  int64_t A, int64_t N2, const float* u, const float* x, float* x_out, float* y, Epilogue epilogue,
                  int num_threads) {
  step(modes, scalars, fields, active, B, H, A, N2, u, x, x_out, y, epilogue, num_threads);
}
void ssm_step_f64(const double* modes, const double* scalars, int fields, const int64_t* active, int64_t B,
                  int64_t H, int64_t A, int64_t N2, const double* u, const double* x, double* x_out, double* y,
                  Epilogue epilogue, int num_threads) {
  step(modes, scalars, fields, active, B, H, A, N2, u, x, x_out, y, epilogue, num_threads);
}
void ssm_chunk_state_f32(const float* modes, const float* scalars, int fields, const int64_t* active, int64_t B,
                         int64_t H, int64_t A, int64_t N2, int64_t L, const float* u, const float* x, float* x_out,
                         float* y_free, int num_threads) {
  chunk_state(modes, scalars, fields, active, B, H, A, N2, L, u, x, x_out, y_free, num_threads);
}
void ssm_chunk_state_f64(const double* modes, const double* scalars, int fields, const int64_t* active, int64_t B,
                         int64_t H, int64_t A, int64_t N2, int64_t L, const double* u, const double* x, double* x_out,
                         double* y_free, int num_threads) {
  chunk_state(modes, scalars, fields, active, B, H, A, N2, L, u, x, x_out, y_free, num_threads);
}

}  // namespace s4op::cpu
