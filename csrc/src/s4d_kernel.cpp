// S4D kernel generation for a list of rows (see s4d_kernel.h for the formula and contract).
//
// Method.  Write z_n = exp(dt A_n) and w_n = 2 C_n (z_n - 1) / A_n, so K[l] = Re sum_n w_n z_n^l.
// Split l = b*B + k with a block length B (64 for float, 32 for double):
//
//   K[b*B + k] = sum_n  Re(w_n z_n^{bB}) Re(z_n^k) - Im(w_n z_n^{bB}) Im(z_n^k)
//
// i.e. per channel a real matrix product  K{nblocks, B} = Anchor{nblocks, 2*N2} x Q{2*N2, B}:
// Q holds the first B powers of every mode (built once per channel) and the anchors w_n z_n^{bB}
// advance by one double-precision multiplication with z_n^B per block.  The matrix product is the
// only O(N2 * L) work; it runs in the output type on SIMD registers (one tile kernel over simd.h's
// vector types: AVX-512 / AVX2+FMA chosen at run time, the portable one-lane type otherwise).
//
// Accuracy.  No power is carried in the output type: every entry of Q and of the anchors is
// within ~2 ulp of the output type of its exact value, so nothing drifts along l.  The double
// anchors restart at every segment of kSegSamples samples from w_n (z_n^kSegSamples)^s by binary
// powering (O(log s) products, relative error ~l ulp of double, the same order as rounding the
// phase dt*A_imag*l itself); no sin/cos of a large phase is ever taken (only of dt*A_imag, exactly
// reduced by the C library).  (exp(dt A) - 1) / A uses a series where it would cancel.  For float
// output the remaining error is the rounding of the final sum over modes; a segment whose sum
// cancels too much for the 1e-5 contract (in practice rows of a few samples) is recomputed with
// the same machinery in double and rounded.
//
// Work items are (row, segment); an item's arithmetic does not depend on which thread runs it, so
// results are bitwise independent of num_threads.
//
// Modes are sorted by how long they stay above 2^-60 of the channel's largest coefficient; a block
// only multiplies over the modes still alive, so fast-decaying channels cost less.  Matrix entries
// whose magnitude is below 2^-60 (relative to that scale) are flushed to zero and coefficients are
// scaled by a power of two to max ~1, so no product or sum ever goes subnormal (subnormal operands
// cost ~100 cycles each on x86); the power of two is applied to the output.
#include "s4op/s4d_kernel.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "s4op/parallel.h"
#include "simd.h"

namespace s4op {
namespace cpu {
namespace {

// Entries below this (relative to the channel's largest coefficient, or to |z^k| <= 1) are zero.
constexpr double kTiny = 0x1p-60;
constexpr double kLn2 = 0.6931471805599453;
constexpr double kLogTiny = -60 * kLn2;  // log(2^-60)
// Samples per segment, the unit of work (a multiple of both block lengths).
constexpr int64_t kSegSamples = 2048;
// The float contract: max_l |K32 - K| / max_l |K| per row.
constexpr double kF32Tolerance = 1e-5;

template <class T>
struct Layout;
// kBlock: outputs per anchor (a row of the per-channel matrix product); kSub: one 512-bit vector.
template <>
struct Layout<float> {
  static constexpr int64_t kBlock = 64, kSub = 16;
};
template <>
struct Layout<double> {
  static constexpr int64_t kBlock = 32, kSub = 8;
};

// v if |v| >= 2^-60 (or not finite), else +0.  Integer form: a floating-point compare in a
// select blocks vectorization under the default -ftrapping-math.
S4OP_INLINE double flush_tiny(double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  const uint64_t biased_exponent = (bits >> 52) & 0x7ff;
  bits &= ~uint64_t{0} * static_cast<uint64_t>(biased_exponent >= 1023 - 60);
  std::memcpy(&v, &bits, sizeof bits);
  return v;
}
S4OP_INLINE float flush_tiny(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  const uint32_t biased_exponent = (bits >> 23) & 0xff;
  bits &= ~uint32_t{0} * static_cast<uint32_t>(biased_exponent >= 127 - 60);
  std::memcpy(&v, &bits, sizeof bits);
  return v;
}

// One register tile of the per-channel matrix product: rows of {B} outputs,
//   dst[r][k] = scale * sum_{c < m} a[r, c] q[c, k] + a[r, half + c] q[half + c, k]
//   a    {rows, lda}    anchor rows: Re parts at [0, half), -Im parts at [half, 2 half)
//   q    {2*half, B}    powers: Re rows, then Im rows
//   dst  {rows}         output row pointers, each B wide
template <class T>
using TileFn = void (*)(int rows, const T* a, int64_t lda, const T* q, int64_t half, int64_t m,
                        T* const* dst, T scale);

// Tile kernels of one SIMD path, for both compute types.
struct Tiles {
  TileFn<float> f32;
  int rows_f32;  // rows per tile
  TileFn<double> f64;
  int rows_f64;
  TileFn<float> fn(float*) const { return f32; }
  TileFn<double> fn(double*) const { return f64; }
  int rows(float*) const { return rows_f32; }
  int rows(double*) const { return rows_f64; }
};

// Inputs of one call; P is the parameter and output type.
template <class P>
struct Problem {
  const P* C;           // {H, N2, 2}
  const P* log_dt;      // {H}
  const P* log_A_real;  // {H, N2}
  const P* A_imag;      // {H, N2}
  int64_t H, N2;
  const int64_t* rows;  // {A}
  int64_t A, L;
  P* K;          // {A, L}
  int64_t nseg;  // segments per row
};

template <class T>
constexpr int64_t num_blocks(int64_t L) {
  return (L + Layout<T>::kBlock - 1) / Layout<T>::kBlock;
}

enum class RowStatus { kOk, kZero, kNaN };

// Per-thread scratch plus the derived data of the channel processed last (reused while the
// thread's consecutive work items stay in one row).
template <class T>
struct Workspace {
  static constexpr int64_t B = Layout<T>::kBlock, S = Layout<T>::kSub;
  static constexpr int64_t kSegBlocks = kSegSamples / B;

  explicit Workspace(int64_t n2)
      : wr(n2), wi(n2), x(n2), y(n2), zr(n2), zi(n2), life_all(n2), order(n2), life(n2),
        a0r(n2), a0i(n2), sr(n2), si(n2), gr(n2), gi(n2), cr(n2), ci(n2), pwr(n2), pwi(n2),
        psr(S * n2), psi(S * n2), bsr((B / S + 1) * n2), bsi((B / S + 1) * n2),
        pst(2 * S * n2), bst(2 * B / S * n2), q(2 * n2 * B), anch(kSegBlocks * 2 * n2),
        live(kSegBlocks), dst(kSegBlocks), tail(B) {}

  int64_t h = -1;
  RowStatus status = RowStatus::kZero;
  int exponent = 0;  // coefficients were scaled by 2^-exponent
  int64_t m0 = 0;    // modes alive at block 0 (sorted to the front)
  // per mode, in input order {N2}
  std::vector<double> wr, wi, x, y, zr, zi;
  std::vector<int64_t> life_all, order;
  // per mode, sorted by decreasing lifetime {N2}; only the first m0 are used
  std::vector<int64_t> life;        // number of leading blocks in which the mode is alive
  std::vector<double> a0r, a0i;     // scaled w_n
  std::vector<double> sr, si;       // z_n^B
  std::vector<double> gr, gi;       // z_n^{kSegSamples}
  std::vector<double> cr, ci;       // current anchors w_n z_n^{bB}
  std::vector<double> pwr, pwi;     // scratch powers of g
  std::vector<double> psr, psi;     // {S, N2} z_n^t, t < S (S = kSub)
  std::vector<double> bsr, bsi;     // {B/S + 1, N2} z_n^{Sj}
  std::vector<T> pst, bst;          // the same rounded to T, {2, N2, S} and {2, N2, B/S}
  std::vector<T> q;                 // {2*m0, B}
  std::vector<T> anch;              // {kSegBlocks, 2*m0}
  std::vector<int64_t> live;        // {kSegBlocks} modes alive per block of the segment
  std::vector<T*> dst;              // {kSegBlocks} output row per block
  std::vector<T> tail;              // {B} landing row for a partial last block
};

// Derived per-channel data: coefficients, lifetimes, sort order and the power table Q.
template <class P, class T>
S4OP_INLINE void prepare_channel(const Problem<P>& p, Workspace<T>& w, int64_t h) {
  constexpr int64_t B = Layout<T>::kBlock;
  static_assert(B % Layout<T>::kSub == 0 && Layout<T>::kSub >= 4, "bad layout");
  const int64_t N2 = p.N2;
  const int64_t nblocks = num_blocks<T>(p.L);
  w.h = h;
  const double dt = std::exp(static_cast<double>(p.log_dt[h]));
  bool finite = std::isfinite(dt);
  double wmax = 0.0;
  for (int64_t n = 0; n < N2; ++n) {
    const int64_t k = h * N2 + n;
    const double ar = -std::exp(static_cast<double>(p.log_A_real[k]));
    const double ai = static_cast<double>(p.A_imag[k]);
    const double x = dt * ar, y = dt * ai;
    const double ex = std::exp(x);
    const double zr = ex * std::cos(y), zi = ex * std::sin(y);
    double rr, ri;  // (z - 1) / A
    if (std::fabs(x) + std::fabs(y) < 0.1) {
      // z - 1 cancels here: dt * sum_{k>=0} (dt A)^k / (k+1)!, Horner up to k = 10 (the rest is
      // below 1e-19 relative).
      static constexpr double kInvFact[12] = {1.0,          1.0,           1.0 / 2,
                                              1.0 / 6,      1.0 / 24,      1.0 / 120,
                                              1.0 / 720,    1.0 / 5040,    1.0 / 40320,
                                              1.0 / 362880, 1.0 / 3628800, 1.0 / 39916800};
      double sr = kInvFact[11], si = 0.0;
      for (int j = 10; j >= 1; --j) {
        const double t = sr * x - si * y;
        si = sr * y + si * x;
        sr = t + kInvFact[j];
      }
      rr = dt * sr;
      ri = dt * si;
    } else {
      // Smith's division (z - 1) / (ar + i ai); |A| > 0 here.
      const double nr = zr - 1.0, ni = zi;
      if (std::fabs(ar) >= std::fabs(ai)) {
        const double t = ai / ar, d = ar + ai * t;
        rr = (nr + ni * t) / d;
        ri = (ni - nr * t) / d;
      } else {
        const double t = ar / ai, d = ai + ar * t;
        rr = (nr * t + ni) / d;
        ri = (ni * t - nr) / d;
      }
    }
    const double c_re = static_cast<double>(p.C[2 * k]), c_im = static_cast<double>(p.C[2 * k + 1]);
    const double wr = 2.0 * (c_re * rr - c_im * ri), wi = 2.0 * (c_re * ri + c_im * rr);
    finite = finite && std::isfinite(wr) && std::isfinite(wi) && std::isfinite(x) &&
             std::isfinite(y) && std::isfinite(zr) && std::isfinite(zi);
    wmax = std::max(wmax, std::max(std::fabs(wr), std::fabs(wi)));
    w.wr[n] = wr;
    w.wi[n] = wi;
    w.x[n] = x;
    w.y[n] = y;
    w.zr[n] = zr;
    w.zi[n] = zi;
  }
  if (!finite) {
    w.status = RowStatus::kNaN;
    return;
  }
  if (wmax == 0.0) {
    w.status = RowStatus::kZero;
    return;
  }
  w.status = RowStatus::kOk;
  std::frexp(wmax, &w.exponent);  // wmax * 2^-exponent in [0.5, 1)

  // Scale to max ~1 (exactly: a power of two; one ldexp when 2^-exponent is a normal double).
  if (w.exponent > -1000 && w.exponent < 1000) {
    const double inv = std::ldexp(1.0, -w.exponent);
    for (int64_t n = 0; n < N2; ++n) {
      w.wr[n] *= inv;
      w.wi[n] *= inv;
    }
  } else {
    for (int64_t n = 0; n < N2; ++n) {
      w.wr[n] = std::ldexp(w.wr[n], -w.exponent);
      w.wi[n] = std::ldexp(w.wi[n], -w.exponent);
    }
  }
  // Lifetime: blocks b with |w_n| |z_n|^{bB} >= 2^-60 (scaled units); later blocks drop the mode.
  for (int64_t n = 0; n < N2; ++n) {
    const double mag = std::max(std::fabs(w.wr[n]), std::fabs(w.wi[n]));
    int64_t life;
    if (!(mag >= kTiny)) {
      life = 0;
    } else if (w.x[n] < 0.0) {
      // log(mag) <= e log 2 for mag = f 2^e, f in [0.5, 1): keeps a mode at most a block longer.
      uint64_t bits;
      std::memcpy(&bits, &mag, sizeof bits);
      const int exponent = static_cast<int>((bits >> 52) & 0x7ff) - 1022;
      const double log_mag_bound = static_cast<double>(exponent) * kLn2;
      const double t = (log_mag_bound - kLogTiny) / (-w.x[n] * static_cast<double>(B));
      life = t >= static_cast<double>(nblocks) ? nblocks : static_cast<int64_t>(t) + 1;
    } else {
      life = nblocks;
    }
    w.life_all[n] = std::min(life, nblocks);
    w.order[n] = n;
  }
  // Stable sort by decreasing lifetime (ties keep mode order); usually (nearly) sorted already.
  const int64_t* life_all = w.life_all.data();
  int64_t* order = w.order.data();
  for (int64_t a = 1; a < N2; ++a) {
    const int64_t v = order[a];
    int64_t b = a;
    for (; b > 0 && life_all[order[b - 1]] < life_all[v]; --b) order[b] = order[b - 1];
    order[b] = v;
  }
  int64_t m0 = 0;
  while (m0 < N2 && life_all[w.order[m0]] > 0) ++m0;
  w.m0 = m0;

  // Q[k] = z^k = z^t z^{Sj} for k = S j + t (S = kSub).  z^0..z^{S-1} and z^{Sj} come from short
  // product trees in double (depth <= 6; error ~log2(B) ulp of double), are rounded to T in one
  // flat pass over all modes, and the final products are formed in T: each entry of Q is within
  // ~2 ulp of T of z^k.  Every step is a plain loop the compiler vectorizes.
  constexpr int64_t S = Layout<T>::kSub, NB = B / S;
  double* S4OP_RESTRICT psr = w.psr.data();  // {S, m0}: mode-minor, so each step vectorizes
  double* S4OP_RESTRICT psi = w.psi.data();
  double* S4OP_RESTRICT bsr = w.bsr.data();  // {NB + 1, m0}
  double* S4OP_RESTRICT bsi = w.bsi.data();
  for (int64_t i = 0; i < m0; ++i) {
    const int64_t n = w.order[i];
    w.life[i] = life_all[n];
    w.a0r[i] = w.wr[n];
    w.a0i[i] = w.wi[n];
    psr[i] = 1.0;
    psi[i] = 0.0;
    psr[m0 + i] = w.zr[n];
    psi[m0 + i] = w.zi[n];
  }
  for (int64_t t = 2; t < S; ++t) {  // z^t = z^{t/2} z^{t - t/2}
    const int64_t u = (t / 2) * m0, v = (t - t / 2) * m0;
    for (int64_t i = 0; i < m0; ++i) {
      psr[t * m0 + i] = psr[u + i] * psr[v + i] - psi[u + i] * psi[v + i];
      psi[t * m0 + i] = psr[u + i] * psi[v + i] + psi[u + i] * psr[v + i];
    }
  }
  for (int64_t i = 0; i < m0; ++i) {
    const double hr = psr[(S / 2) * m0 + i], hi = psi[(S / 2) * m0 + i];  // z^{S/2}
    bsr[i] = 1.0;
    bsi[i] = 0.0;
    bsr[m0 + i] = hr * hr - hi * hi;
    bsi[m0 + i] = 2.0 * hr * hi;
  }
  for (int64_t j = 2; j <= NB; ++j) {  // z^{Sj} = z^{S (j/2)} z^{S (j - j/2)}
    const int64_t u = (j / 2) * m0, v = (j - j / 2) * m0;
    for (int64_t i = 0; i < m0; ++i) {
      bsr[j * m0 + i] = bsr[u + i] * bsr[v + i] - bsi[u + i] * bsi[v + i];
      bsi[j * m0 + i] = bsr[u + i] * bsi[v + i] + bsi[u + i] * bsr[v + i];
    }
  }
  for (int64_t i = 0; i < m0; ++i) {
    w.sr[i] = bsr[NB * m0 + i];  // z^B
    w.si[i] = bsi[NB * m0 + i];
    w.gr[i] = w.sr[i];
    w.gi[i] = w.si[i];
  }
  for (int64_t q = B; q < kSegSamples; q *= 2) {  // z^{kSegSamples} by repeated squaring
    for (int64_t i = 0; i < m0; ++i) {
      const double gr = w.gr[i], gi = w.gi[i];
      w.gr[i] = gr * gr - gi * gi;
      w.gi[i] = 2.0 * gr * gi;
    }
  }
  // Round to T, transposing to mode-major: {2, m0, S} and {2, m0, NB}, Re then Im.
  for (int64_t k = 0; k < S * m0; ++k) psr[k] = flush_tiny(psr[k]);  // flat: vectorizes
  for (int64_t k = 0; k < S * m0; ++k) psi[k] = flush_tiny(psi[k]);
  for (int64_t k = 0; k < NB * m0; ++k) bsr[k] = flush_tiny(bsr[k]);
  for (int64_t k = 0; k < NB * m0; ++k) bsi[k] = flush_tiny(bsi[k]);
  T* S4OP_RESTRICT pst = w.pst.data();
  T* S4OP_RESTRICT bst = w.bst.data();
  for (int64_t i = 0; i < m0; ++i) {
    for (int64_t t = 0; t < S; ++t) {
      pst[S * i + t] = static_cast<T>(psr[t * m0 + i]);
      pst[m0 * S + S * i + t] = static_cast<T>(psi[t * m0 + i]);
    }
    for (int64_t j = 0; j < NB; ++j) {
      bst[NB * i + j] = static_cast<T>(bsr[j * m0 + i]);
      bst[m0 * NB + NB * i + j] = static_cast<T>(bsi[j * m0 + i]);
    }
  }
  for (int64_t i = 0; i < m0; ++i) {
    const T* S4OP_RESTRICT pr = pst + S * i;
    const T* S4OP_RESTRICT pi = pst + m0 * S + S * i;
    T* S4OP_RESTRICT qre = w.q.data() + i * B;  // Re rows [0, m0), Im rows [m0, 2 m0)
    T* S4OP_RESTRICT qim = w.q.data() + (m0 + i) * B;
    for (int64_t j = 0; j < NB; ++j) {
      const T br = bst[NB * i + j], bi = bst[m0 * NB + NB * i + j];
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 1  // kept a loop so that it is vectorized (fully unrolled, it is not)
#endif
      for (int64_t t = 0; t < S; ++t) {
        qre[S * j + t] = flush_tiny(pr[t] * br - pi[t] * bi);
        qim[S * j + t] = flush_tiny(pr[t] * bi + pi[t] * br);
      }
    }
  }
}

// Anchor rows of one segment (double recurrence, rounded to T), then the matrix product.
// Row layout {2*m0}: Re(anchor) of the sorted modes in [0, m0), -Im(anchor) in [m0, 2 m0), the
// same split as the rows of Q, so a block's live modes are two contiguous ranges of length m.
template <class T>
S4OP_INLINE void segment_product(Workspace<T>& w, int64_t nrows, int64_t m_first, T scale,
                                 TileFn<T> tile, int rmax) {
  const int64_t half = w.m0, lda = 2 * half;
  double* S4OP_RESTRICT cr = w.cr.data();
  double* S4OP_RESTRICT ci = w.ci.data();
  const double* S4OP_RESTRICT sr = w.sr.data();
  const double* S4OP_RESTRICT si = w.si.data();
  for (int64_t r = 0; r < nrows; ++r) {
    const int64_t m = w.live[r];
    T* S4OP_RESTRICT re_row = w.anch.data() + r * lda;
    T* S4OP_RESTRICT im_row = re_row + half;
    for (int64_t i = 0; i < m; ++i) re_row[i] = static_cast<T>(flush_tiny(cr[i]));
    for (int64_t i = 0; i < m; ++i) im_row[i] = static_cast<T>(-flush_tiny(ci[i]));
    for (int64_t i = m; i < m_first; ++i) re_row[i] = T(0);
    for (int64_t i = m; i < m_first; ++i) im_row[i] = T(0);
    if (r + 1 < nrows) {
      for (int64_t i = 0; i < m; ++i) {
        const double re = cr[i], im = ci[i];
        cr[i] = re * sr[i] - im * si[i];
        ci[i] = re * si[i] + im * sr[i];
      }
    }
  }
  for (int64_t r = 0; r < nrows; r += rmax) {
    const int rows = static_cast<int>(std::min<int64_t>(rmax, nrows - r));
    // The first row of a tile has the most live modes; the others are zero-padded to it.
    tile(rows, w.anch.data() + r * lda, lda, w.q.data(), half, w.live[r], w.dst.data() + r,
         scale);
  }
}

// Segment s of channel h (prepared in w) into out[0, min(L, l0 + kSegSamples) - l0), where
// l0 = s * kSegSamples.  For T = float, returns true when the float sum may be too ill-conditioned
// for the 1e-5 normwise contract (the caller then recomputes the segment in double).
template <class P, class T>
S4OP_INLINE bool compute_segment(const Problem<P>& p, Workspace<T>& w, int64_t s, T* out,
                                 const Tiles& tiles) {
  constexpr int64_t B = Layout<T>::kBlock, SB = Workspace<T>::kSegBlocks;
  const int64_t nblocks = num_blocks<T>(p.L);
  const int64_t b0 = s * SB, b1 = std::min(nblocks, b0 + SB);
  const int64_t l0 = b0 * B, len = std::min(p.L, b1 * B) - l0;
  if (w.status == RowStatus::kNaN) {
    std::fill(out, out + len, std::numeric_limits<T>::quiet_NaN());
    return false;
  }
  int64_t m = w.status == RowStatus::kOk ? w.m0 : 0;
  while (m > 0 && w.life[m - 1] <= b0) --m;
  if (m == 0) {  // all-zero coefficients, or every mode has decayed below 2^-60
    std::fill(out, out + len, T(0));
    return false;
  }
  const int64_t m_first = m;
  const int64_t nrows = b1 - b0;
  for (int64_t r = 0; r < nrows; ++r) {
    while (m > 0 && w.life[m - 1] <= b0 + r) --m;
    w.live[r] = m;
    w.dst[r] = (r + 1) * B <= len ? out + r * B : w.tail.data();
  }
  // Anchors at the segment start, w_n z_n^{l0} = w_n (z_n^{kSegSamples})^s, by binary powering
  // from the channel's coefficients: O(log s) products whatever thread runs the segment, with
  // relative error ~l0 ulp of double (the same order as rounding the phase dt*A_imag*l0).
  for (int64_t i = 0; i < m_first; ++i) {
    w.cr[i] = w.a0r[i];
    w.ci[i] = w.a0i[i];
    w.pwr[i] = w.gr[i];
    w.pwi[i] = w.gi[i];
  }
  for (int64_t e = s; e > 0; e >>= 1) {
    if (e & 1) {
      for (int64_t i = 0; i < m_first; ++i) {
        const double re = w.cr[i], im = w.ci[i];
        w.cr[i] = re * w.pwr[i] - im * w.pwi[i];
        w.ci[i] = re * w.pwi[i] + im * w.pwr[i];
      }
    }
    if (e > 1) {
      for (int64_t i = 0; i < m_first; ++i) {
        const double re = w.pwr[i], im = w.pwi[i];
        w.pwr[i] = re * re - im * im;
        w.pwi[i] = 2.0 * re * im;
      }
    }
  }
  double anchor_norm2 = 0.0;  // sum |anchor|^2 (scaled units); bounds every later term
  for (int64_t i = 0; i < m_first; ++i) anchor_norm2 += w.cr[i] * w.cr[i] + w.ci[i] * w.ci[i];

  // Apply 2^exponent inside the tile when it is a normal T with headroom; else fix up below.
  const int e = w.exponent;
  const bool in_tile = e > std::numeric_limits<T>::min_exponent + 8 &&
                       e < std::numeric_limits<T>::max_exponent - 8;
  const T scale = in_tile ? static_cast<T>(std::ldexp(1.0, e)) : T(1);
  segment_product(w, nrows, m_first, scale, tiles.fn(static_cast<T*>(nullptr)),
                  tiles.rows(static_cast<T*>(nullptr)));
  if (w.dst[nrows - 1] == w.tail.data()) {
    const int64_t r = nrows - 1;
    std::memcpy(out + r * B, w.tail.data(), static_cast<size_t>(len - r * B) * sizeof(T));
  }
  if (!in_tile) {
    for (int64_t l = 0; l < len; ++l)
      out[l] = static_cast<T>(std::ldexp(static_cast<double>(out[l]), e));
  }
  if constexpr (std::is_same<T, float>::value) {
    // A float sum of 2m terms bounded by the anchors has a typical error of about
    // (2 + sqrt(2m)) * 2^-24 * ||anchors||_2.  When that is not 10x below the 1e-5 contract
    // relative to the segment's own largest value (<= the row's), the sum cancels too much
    // for float: this happens for very short rows (L = 1: K[0] = 2 Re sum_n C_n dB_n).
    // max |out| via the bit patterns (ordered like the values for non-negative floats): an
    // integer max reduction vectorizes, a floating-point one does not without -ffast-math.
    uint32_t max_bits = 0;
    for (int64_t l = 0; l < len; ++l) {
      uint32_t bits;
      std::memcpy(&bits, out + l, sizeof bits);
      max_bits = std::max(max_bits, bits & 0x7fffffffu);
    }
    float kmax;
    std::memcpy(&kmax, &max_bits, sizeof kmax);
    const double typical_err = (2.0 + std::sqrt(2.0 * static_cast<double>(m_first))) * 0x1p-24 *
                               std::sqrt(anchor_norm2);
    return typical_err > kF32Tolerance / 10 * std::ldexp(static_cast<double>(kmax), -e);
  }
  return false;
}

// Work items [begin, end) of the flattened (row, segment) space.
template <class P>
S4OP_INLINE void run_items(const Problem<P>& p, int64_t begin, int64_t end,
                           const Tiles& tiles) {
  Workspace<P> w(p.N2);
  std::unique_ptr<Workspace<double>> w64;  // float rows recomputed in double, if ever needed
  std::vector<double> tmp;
  for (int64_t item = begin; item < end; ++item) {
    const int64_t j = item / p.nseg, s = item % p.nseg;
    const int64_t h = p.rows[j];
    if (w.h != h) prepare_channel(p, w, h);
    P* out = p.K + j * p.L + s * kSegSamples;
    const bool suspect = compute_segment(p, w, s, out, tiles);
    if (std::is_same<P, float>::value && suspect) {
      if (!w64) {
        w64.reset(new Workspace<double>(p.N2));
        tmp.resize(kSegSamples);
      }
      if (w64->h != h) prepare_channel(p, *w64, h);
      compute_segment(p, *w64, s, tmp.data(), tiles);
      const int64_t len = std::min(p.L - s * kSegSamples, kSegSamples);
      for (int64_t l = 0; l < len; ++l) out[l] = static_cast<P>(tmp[l]);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The tile kernel, written once over the vector type VT = simd::Vec<path, T> of W lanes: a row of B
// outputs is B / W vectors, and a tile of R rows keeps R * B / W accumulators in registers.

// acc[r] += a[r * lda] * q[0 : B] for one column c of the anchor rows.
template <class VT, int R, int NV>
S4OP_INLINE void accumulate(typename VT::V (&acc)[R][NV], const typename VT::T* a /*{R, lda}*/,
                            int64_t lda, const typename VT::T* qc /*{NV * W}*/) {
  using V = typename VT::V;
  if constexpr (R == 1) {
    // Each vector of q is used once: loaded where it is used, it is the FMA's memory operand.  (A
    // register array of them is not: GCC turns its loads into a copy through the stack.)
    V av;
    VT::broadcast(av, a[0]);
    for (int v = 0; v < NV; ++v) {
      V qv;
      VT::load(qv, qc + v * VT::kLanes);
      VT::fma(acc[0][v], av, qv);
    }
  } else {
    // Each vector of q is loaded once into a register and used by all R rows.
    V qv[NV];
    for (int v = 0; v < NV; ++v) VT::load(qv[v], qc + v * VT::kLanes);
    for (int r = 0; r < R; ++r) {
      V av;
      VT::broadcast(av, a[r * lda]);
      for (int v = 0; v < NV; ++v) VT::fma(acc[r][v], av, qv[v]);
    }
  }
}

template <class VT, int R>
S4OP_INLINE void tile_rows(const typename VT::T* a, int64_t lda, const typename VT::T* q,
                           int64_t half, int64_t m, typename VT::T* const* dst,
                           typename VT::T scale) {
  using T = typename VT::T;
  using V = typename VT::V;
  constexpr int64_t B = Layout<T>::kBlock;
  constexpr int NV = static_cast<int>(B / VT::kLanes);
  V acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = V{};
  for (int64_t c = 0; c < m; ++c) {
    accumulate<VT, R, NV>(acc, a + c, lda, q + c * B);
    accumulate<VT, R, NV>(acc, a + half + c, lda, q + (half + c) * B);
  }
  V sv;
  VT::broadcast(sv, scale);
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) VT::store(dst[r] + v * VT::kLanes, acc[r][v] * sv);
}

// A tile of `rows` in [1, R] rows (the last tile of a segment may be short); R is 1 or 6.
template <class VT, int R>
S4OP_INLINE void tile(int rows, const typename VT::T* a, int64_t lda, const typename VT::T* q,
                      int64_t half, int64_t m, typename VT::T* const* dst, typename VT::T scale) {
  static_assert(R == 1 || R == 6, "tiles of 1 or 6 rows");
  if constexpr (R == 1) {
    tile_rows<VT, 1>(a, lda, q, half, m, dst, scale);
  } else {
    switch (rows) {
      case 6: tile_rows<VT, 6>(a, lda, q, half, m, dst, scale); break;
      case 5: tile_rows<VT, 5>(a, lda, q, half, m, dst, scale); break;
      case 4: tile_rows<VT, 4>(a, lda, q, half, m, dst, scale); break;
      case 3: tile_rows<VT, 3>(a, lda, q, half, m, dst, scale); break;
      case 2: tile_rows<VT, 2>(a, lda, q, half, m, dst, scale); break;
      default: tile_rows<VT, 1>(a, lda, q, half, m, dst, scale); break;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Entry points, one per path: the target attribute compiles the inlined kernels (run_items and the
// tile) for that instruction set.  Rows per tile: one for the portable path and AVX2 (one row of 64
// floats is 8 of AVX2's 16 registers), six for AVX-512 (24 of its 32 registers).

template <class T>
void tile_scalar(int rows, const T* a, int64_t lda, const T* q, int64_t half, int64_t m,
                 T* const* dst, T scale) {
  tile<simd::Vec<SimdPath::kScalar, T>, 1>(rows, a, lda, q, half, m, dst, scale);
}
template <class P>
void run_scalar(const Problem<P>& p, int64_t begin, int64_t end) {
  run_items<P>(p, begin, end, Tiles{&tile_scalar<float>, 1, &tile_scalar<double>, 1});
}

#if S4OP_SIMD_X86
template <class T>
S4OP_TARGET_AVX2 void tile_avx2(int rows, const T* a, int64_t lda, const T* q, int64_t half,
                                int64_t m, T* const* dst, T scale) {
  tile<simd::Vec<SimdPath::kAVX2, T>, 1>(rows, a, lda, q, half, m, dst, scale);
}
template <class P>
S4OP_TARGET_AVX2 void run_avx2(const Problem<P>& p, int64_t begin, int64_t end) {
  run_items<P>(p, begin, end, Tiles{&tile_avx2<float>, 1, &tile_avx2<double>, 1});
}

constexpr int kRowsAvx512 = 6;
template <class T>
S4OP_TARGET_AVX512 void tile_avx512(int rows, const T* a, int64_t lda, const T* q, int64_t half,
                                    int64_t m, T* const* dst, T scale) {
  tile<simd::Vec<SimdPath::kAVX512, T>, kRowsAvx512>(rows, a, lda, q, half, m, dst, scale);
}
template <class P>
S4OP_TARGET_AVX512 void run_avx512(const Problem<P>& p, int64_t begin, int64_t end) {
  run_items<P>(p, begin, end,
               Tiles{&tile_avx512<float>, kRowsAvx512, &tile_avx512<double>, kRowsAvx512});
}
#endif  // S4OP_SIMD_X86

// ---------------------------------------------------------------------------------------------
// The paths this kernel implements: no kVec128 (on x86 the portable path is compiled for the SSE2
// baseline already, and the compiler vectorizes its loops).
bool path_supported(SimdPath path) {
  switch (path) {
    case SimdPath::kScalar:
      return true;
    case SimdPath::kAVX2:
    case SimdPath::kAVX512:
      return S4OP_SIMD_X86 && simd_path_supported(path);
    default:
      return false;
  }
}

SimdPath best_path() {
  static const SimdPath best = simd::widest_supported({SimdPath::kAVX2, SimdPath::kAVX512});
  return best;
}

template <class T>
using RunFn = void (*)(const Problem<T>&, int64_t, int64_t);

template <class T>
RunFn<T> run_fn(SimdPath path) {
  switch (path) {
#if S4OP_SIMD_X86
    case SimdPath::kAVX512:
      return &run_avx512<T>;
    case SimdPath::kAVX2:
      return &run_avx2<T>;
#endif
    default:
      return &run_scalar<T>;
  }
}

[[noreturn]] void fail(const char* name, const std::string& what) {
  throw std::invalid_argument(std::string("s4op::cpu::") + name + ": " + what);
}

template <class T>
void s4d_kernel_impl(const char* name, const T* C, const T* log_dt, const T* log_A_real,
                     const T* A_imag, int64_t H, int64_t N2, const int64_t* rows,
                     int64_t num_rows, int64_t L, T* K, int num_threads, SimdPath path) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  if (H < 1) fail(name, "H must be >= 1, got " + std::to_string(H));
  if (N2 < 1) fail(name, "N2 must be >= 1, got " + std::to_string(N2));
  if (L < 0) fail(name, "L must be >= 0, got " + std::to_string(L));
  if (num_rows < 0) fail(name, "num_rows must be >= 0, got " + std::to_string(num_rows));
  if (num_threads < 1) fail(name, "num_threads must be >= 1, got " + std::to_string(num_threads));
  if (N2 > kMax / 2 / H || 2 * H * N2 > kMax / static_cast<int64_t>(sizeof(T)))
    fail(name, "H * N2 is too large");
  if (L > 0 && num_rows > kMax / static_cast<int64_t>(sizeof(T)) / L)
    fail(name, "num_rows * L is too large");
  if (C == nullptr) fail(name, "C is null");
  if (log_dt == nullptr) fail(name, "log_dt is null");
  if (log_A_real == nullptr) fail(name, "log_A_real is null");
  if (A_imag == nullptr) fail(name, "A_imag is null");
  if (num_rows > 0 && rows == nullptr) fail(name, "rows is null");
  if (num_rows > 0 && L > 0 && K == nullptr) fail(name, "K is null");
  for (int64_t j = 0; j < num_rows; ++j) {
    if (rows[j] < 0 || rows[j] >= H)
      fail(name, "rows[" + std::to_string(j) + "] = " + std::to_string(rows[j]) +
                     " is outside [0, H) with H = " + std::to_string(H));
  }
  if (!path_supported(path)) fail(name, "the requested SIMD path is not available on this CPU");
  if (num_rows == 0 || L == 0) return;

  const Problem<T> p{C,      log_dt,     log_A_real, A_imag, H, N2, rows,
                     num_rows, L, K, (L + kSegSamples - 1) / kSegSamples};
  const RunFn<T> fn = run_fn<T>(path);
  s4op::parallel_for(num_rows * p.nseg, num_threads,
                     [&](int64_t begin, int64_t end) { fn(p, begin, end); });
}

}  // namespace

void s4d_kernel_f32(const float* C, const float* log_dt, const float* log_A_real,
                    const float* A_imag, int64_t H, int64_t N2, const int64_t* rows,
                    int64_t num_rows, int64_t L, float* K, int num_threads) {
  s4d_kernel_impl<float>("s4d_kernel_f32", C, log_dt, log_A_real, A_imag, H, N2, rows,
                         num_rows, L, K, num_threads, best_path());
}

void s4d_kernel_f64(const double* C, const double* log_dt, const double* log_A_real,
                    const double* A_imag, int64_t H, int64_t N2, const int64_t* rows,
                    int64_t num_rows, int64_t L, double* K, int num_threads) {
  s4d_kernel_impl<double>("s4d_kernel_f64", C, log_dt, log_A_real, A_imag, H, N2, rows,
                          num_rows, L, K, num_threads, best_path());
}

const char* s4d_kernel_isa() { return simd_path_name(best_path()); }

namespace detail {

bool s4d_isa_supported(SimdPath path) { return path_supported(path); }

void s4d_kernel_f32_isa(const float* C, const float* log_dt, const float* log_A_real,
                        const float* A_imag, int64_t H, int64_t N2, const int64_t* rows,
                        int64_t num_rows, int64_t L, float* K, int num_threads, SimdPath path) {
  s4d_kernel_impl<float>("s4d_kernel_f32", C, log_dt, log_A_real, A_imag, H, N2, rows,
                         num_rows, L, K, num_threads, path);
}

void s4d_kernel_f64_isa(const double* C, const double* log_dt, const double* log_A_real,
                        const double* A_imag, int64_t H, int64_t N2, const int64_t* rows,
                        int64_t num_rows, int64_t L, double* K, int num_threads, SimdPath path) {
  s4d_kernel_impl<double>("s4d_kernel_f64", C, log_dt, log_A_real, A_imag, H, N2, rows,
                          num_rows, L, K, num_threads, path);
}

}  // namespace detail
}  // namespace cpu
}  // namespace s4op
