// Mixed-radix real FFT; conventions in fft.h.  Textbook algorithms only, no code from any library:
//
//  * Even n: the real x of length n is read as z[j] = x[2j] + i x[2j+1], j < M = n/2.  With
//    Z = DFT_M(z), E[k] = (Z[k] + conj Z[M-k]) / 2 and O[k] = (Z[k] - conj Z[M-k]) / 2i are the
//    spectra of the even and odd samples, and X[k] = E[k] + e^{-2 pi i k/n} O[k] ("real FFT via a
//    half-length complex FFT"); the inverse runs the same identities backwards.  Odd n (only
//    3^b 5^c, short and rare here) runs a complex FFT of length n on x + 0i.
//  * DFT_M on W SIMD lanes (M = W K) is Cooley-Tukey with one factor equal to the lane count:
//    with t = n1 + W n2 and k = K k1 + k2, lane n1 of row n2 holds z[n1 + W n2], so the K-point
//    DFTs over n2 of all W lanes run at once on whole vectors: in-place decimation-in-frequency
//    stages of radix 8, 4, 2, 3, 5 with twiddles broadcast from tables.  Then each block of W rows
//    (read in digit-reversed order, which undoes the stages' scrambling at no cost) is transposed
//    in registers, multiplied by e^{-2 pi i n1 k2 / M} and finished by a W-point DFT in registers.
//    W = 1 degenerates into a plain scalar FFT, the portable path.
//  * The inverse uses IDFT(Z) = swap(DFT(swap(Z))), swap(a + ib) = b + ia, which is free in split
//    re/im storage, so one set of forward kernels serves both directions.
//  * SIMD through the core's one abstraction (simd.h): the kernel templates are written once over
//    a vector type simd::Vec<path, T> and inlined into one entry point per path, compiled for that
//    path's ISA (AVX-512, AVX2 + FMA, the SSE2 baseline, or plain C++ for one lane).  The path is
//    chosen when a plan is built (cpu_features.h), so one portable binary uses the CPU it runs on;
//    the generic build (S4OP_SIMD=generic) has the one-lane path only.
#include "s4op/fft.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "simd.h"

namespace s4op {
namespace cpu {
namespace {

// Keeps every index product (8 * n, rows * lanes) far from int64 overflow; such a plan would not
// fit in memory anyway.
constexpr int64_t kMaxFFTSize = int64_t{1} << 40;

// ---------------------------------------------------------------------------------------------
// The plan: sizes and twiddle tables, all fixed at construction.

struct Stage {
  int radix;  // P
  int64_t m;  // sub-transforms in this stage have length P m
  size_t tw;  // offset of this stage's (P-1) m twiddles (re, im pairs) in Plan::tw_stage
};

template <class T>
struct Plan;

template <class T>
using ForwardFn = void (*)(const Plan<T>&, const T*, int64_t, std::complex<T>*, T*);
template <class T>
using InverseFn = void (*)(const Plan<T>&, const std::complex<T>*, T*, int64_t, T*);

template <class T>
struct Plan {
  int64_t n = 0;
  bool half = true;  // even n: complex FFT of length n/2; odd n: complex FFT of length n
  int64_t M = 0;     // complex length
  int W = 1;         // lanes
  int64_t K = 0;     // rows, M = W K
  FFTPath path = FFTPath::kScalar;
  std::vector<Stage> stages;
  std::vector<int64_t> row_of;  // {K}: row that holds frequency k2 after the in-place stages
  std::vector<T> tw_stage;  // per stage, per q: (P-1) pairs e^{-2 pi i q j / (P m)}, j = 1..P-1
  std::vector<T> tw_block;  // {ceil(K/W), W, 2, W}: e^{-2 pi i n1 (c + lane) / M} for block c
  std::vector<T> tw_lane;   // {W, 2}: e^{-2 pi i k / W}
  std::vector<T> tw_post_re, tw_post_im;  // {M/2 + W}: e^{-2 pi i k / n}, k <= M/2 (even n)
  std::vector<T> inv_n;     // {W}: 1/n in every lane (a load, not a broadcast; see simd::GnuVec::set1)
  int64_t plane = 0;        // elements of one plane (real or imaginary parts) of a work buffer
  int64_t work_size = 0;
  ForwardFn<T> forward = nullptr;
  InverseFn<T> inverse = nullptr;
};

// A complex array stored as two planes: real parts, then imaginary parts.
template <class T>
struct Planes {
  T* re;  // {plane}
  T* im;  // {plane}
};

// The two work buffers inside the caller's work array, 64-byte aligned.
template <class T>
void work_buffers(const Plan<T>& p, T* work /*{work_size}*/, Planes<T>* buf /*{2}*/) {
  const auto addr = reinterpret_cast<std::uintptr_t>(work);
  const std::uintptr_t aligned = (addr + 63) & ~std::uintptr_t{63};
  T* base = work + (aligned - addr) / sizeof(T);
  for (int i = 0; i < 2; ++i) buf[i] = Planes<T>{base + 2 * i * p.plane, base + (2 * i + 1) * p.plane};
}

// ---------------------------------------------------------------------------------------------
// Kernels, over the vector type VT = simd::Vec<path, T> of W lanes (W = 1 is the portable scalar
// FFT).  Row j of a buffer is the W complex numbers j W .. j W + W - 1: one vector of real parts and
// one of imaginary parts.

template <class VT>
struct Kern {
  using T = typename VT::T;
  using V = typename VT::V;
  static constexpr int W = VT::kLanes;
  using Lane1 = Kern<simd::Vec<SimdPath::kScalar, T>>;  // the same kernels on one lane, for remainders
  using B = Planes<T>;
  static constexpr int R = 2 * W;  // reals of x per row (forward, even n)

  static S4OP_INLINE void ld(V& re, V& im, const B& in, int64_t row) {
    VT::load(re, in.re + row * W);
    VT::load(im, in.im + row * W);
  }
  static S4OP_INLINE void st(const B& out, int64_t row, const V& re, const V& im) {
    VT::store(out.re + row * W, re);
    VT::store(out.im + row * W, im);
  }
  static S4OP_INLINE void cmul(V& re, V& im, const V& wr, const V& wi) {
    const V t = re * wr - im * wi;
    im = re * wi + im * wr;
    re = t;
  }

  // In-place forward DFT of P points (ar[r], ai[r]), natural order.  Inputs r >= NZ are zero
  // (zero padding of the first stage), and the specialisations skip their arithmetic.
  template <int P, int NZ>
  static S4OP_INLINE void dft(V* ar /*{P}*/, V* ai /*{P}*/) {
    if constexpr (P == 1) {
    } else if constexpr (NZ == 1) {
      S4OP_UNROLL
      for (int j = 1; j < P; ++j) {
        ar[j] = ar[0];
        ai[j] = ai[0];
      }
    } else if constexpr (P == 2) {
      const V dr = ar[0] - ar[1], di = ai[0] - ai[1];
      ar[0] += ar[1];
      ai[0] += ai[1];
      ar[1] = dr;
      ai[1] = di;
    } else if constexpr (P == 4 && NZ == 2) {
      const V r0 = ar[0], i0 = ai[0], r1 = ar[1], i1 = ai[1];
      ar[0] = r0 + r1;  // a0 + a1
      ai[0] = i0 + i1;
      ar[1] = r0 + i1;  // a0 - i a1
      ai[1] = i0 - r1;
      ar[2] = r0 - r1;  // a0 - a1
      ai[2] = i0 - i1;
      ar[3] = r0 - i1;  // a0 + i a1
      ai[3] = i0 + r1;
    } else if constexpr (P == 4) {
      const V t0r = ar[0] + ar[2], t0i = ai[0] + ai[2], t1r = ar[0] - ar[2], t1i = ai[0] - ai[2];
      const V t2r = ar[1] + ar[3], t2i = ai[1] + ai[3], t3r = ar[1] - ar[3], t3i = ai[1] - ai[3];
      ar[0] = t0r + t2r;
      ai[0] = t0i + t2i;
      ar[2] = t0r - t2r;
      ai[2] = t0i - t2i;
      ar[1] = t1r + t3i;  // t1 - i t3
      ai[1] = t1i - t3r;
      ar[3] = t1r - t3i;  // t1 + i t3
      ai[3] = t1i + t3r;
    } else if constexpr (P == 8) {
      // Radix 2 x 4: DFT_4 of the even and of the odd inputs, then b_j = E_j + w8^j O_j and
      // b_{j+4} = E_j - w8^j O_j with w8 = e^{-i pi/4}.  Zero inputs stay zero in both halves.
      constexpr int NZ4 = NZ >= 8 ? 4 : NZ >= 4 ? 2 : 1;
      V er[4] = {ar[0], ar[2], ar[4], ar[6]}, ei[4] = {ai[0], ai[2], ai[4], ai[6]};
      V orr[4] = {ar[1], ar[3], ar[5], ar[7]}, oi[4] = {ai[1], ai[3], ai[5], ai[7]};
      dft<4, NZ4>(er, ei);
      dft<4, NZ4>(orr, oi);
      const T h = T(0.70710678118654752440084436210485);  // 1/sqrt(2)
      const V o1r = h * (orr[1] + oi[1]), o1i = h * (oi[1] - orr[1]);  // w8 O1
      const V o2r = oi[2], o2i = -orr[2];                                // -i O2
      const V o3r = h * (oi[3] - orr[3]), o3i = -h * (orr[3] + oi[3]);  // w8^3 O3
      ar[0] = er[0] + orr[0];
      ai[0] = ei[0] + oi[0];
      ar[4] = er[0] - orr[0];
      ai[4] = ei[0] - oi[0];
      ar[1] = er[1] + o1r;
      ai[1] = ei[1] + o1i;
      ar[5] = er[1] - o1r;
      ai[5] = ei[1] - o1i;
      ar[2] = er[2] + o2r;
      ai[2] = ei[2] + o2i;
      ar[6] = er[2] - o2r;
      ai[6] = ei[2] - o2i;
      ar[3] = er[3] + o3r;
      ai[3] = ei[3] + o3i;
      ar[7] = er[3] - o3r;
      ai[7] = ei[3] - o3i;
    } else if constexpr (P == 3) {
      const T h = T(0.86602540378443864676372317075294);  // sin(2 pi / 3)
      const V sr = ar[1] + ar[2], si = ai[1] + ai[2], dr = ar[1] - ar[2], di = ai[1] - ai[2];
      const V mr = ar[0] - T(0.5) * sr, mi = ai[0] - T(0.5) * si;
      ar[0] += sr;
      ai[0] += si;
      ar[1] = mr + h * di;  // m - i h d
      ai[1] = mi - h * dr;
      ar[2] = mr - h * di;  // m + i h d
      ai[2] = mi + h * dr;
    } else {
      static_assert(P == 5, "radices are 1, 2, 3, 4, 5, 8");
      const T c1 = T(0.30901699437494742410229341718282);   // cos(2 pi / 5)
      const T c2 = T(-0.80901699437494742410229341718282);  // cos(4 pi / 5)
      const T s1 = T(0.95105651629515357211643933337938);   // sin(2 pi / 5)
      const T s2 = T(0.58778525229247312916870595463907);   // sin(4 pi / 5)
      const V s14r = ar[1] + ar[4], s14i = ai[1] + ai[4], d14r = ar[1] - ar[4], d14i = ai[1] - ai[4];
      const V s23r = ar[2] + ar[3], s23i = ai[2] + ai[3], d23r = ar[2] - ar[3], d23i = ai[2] - ai[3];
      const V m1r = ar[0] + c1 * s14r + c2 * s23r, m1i = ai[0] + c1 * s14i + c2 * s23i;
      const V m2r = ar[0] + c2 * s14r + c1 * s23r, m2i = ai[0] + c2 * s14i + c1 * s23i;
      const V n1r = s1 * d14r + s2 * d23r, n1i = s1 * d14i + s2 * d23i;
      const V n2r = s2 * d14r - s1 * d23r, n2i = s2 * d14i - s1 * d23i;
      ar[0] += s14r + s23r;
      ai[0] += s14i + s23i;
      ar[1] = m1r + n1i;  // m1 - i n1
      ai[1] = m1i - n1r;
      ar[4] = m1r - n1i;  // m1 + i n1
      ai[4] = m1i + n1r;
      ar[2] = m2r + n2i;  // m2 - i n2
      ai[2] = m2i - n2r;
      ar[3] = m2r - n2i;  // m2 + i n2
      ai[3] = m2i + n2r;
    }
  }

  template <int P, int NZ, bool Checked, class Load>
  static S4OP_INLINE void butterfly(const Load& load, const B& out, int64_t base, int64_t m,
                                    bool twiddle, const V* wr /*{P}*/, const V* wi /*{P}*/) {
    V ar[P], ai[P];
    S4OP_UNROLL
    for (int r = 0; r < P; ++r) {
      if (r < NZ) {
        load.template get<Checked>(ar[r], ai[r], base + r * m);
      } else {
        ar[r] = V{};
        ai[r] = V{};
      }
    }
    dft<P, NZ>(ar, ai);
    if (twiddle) {
      S4OP_UNROLL
      for (int j = 1; j < P; ++j) cmul(ar[j], ai[j], wr[j], wi[j]);
    }
    S4OP_UNROLL
    for (int j = 0; j < P; ++j) st(out, base + j * m, ar[j], ai[j]);
  }

  // Decimation-in-frequency stage over the sub-transforms of length L = P m at rows 0, L, 2L, ..
  // < K: for each q < m,
  //   row[b + q + j m] <- DFT_P(a_r = row[b + q + r m])_j e^{-2 pi i q j / L}.
  // In place (every butterfly loads all its rows before storing), so a transform works in one
  // buffer that stays in L1 longer; the rows end in digit-reversed order, which final_pass undoes
  // for free through Plan::row_of.  The first stage reads through `load`, so the forward
  // transform reads x directly and skips zero-padded rows; only butterflies that touch the end of
  // x pay for bounds checks.
  template <int P, int NZ, class Load>
  static S4OP_INLINE void stage(const Load& load, const B& out, int64_t m, int64_t K,
                                const T* tw /*{m, P-1, 2}*/) {
    const int64_t L = P * m;
    for (int64_t q = 0; q < m; ++q) {
      V wr[P], wi[P];
      S4OP_UNROLL
      for (int j = 1; j < P; ++j) {
        VT::set1(wr[j], tw + 2 * ((P - 1) * q + j - 1));
        VT::set1(wi[j], tw + 2 * ((P - 1) * q + j - 1) + 1);
      }
      const bool twiddle = q != 0;  // q = 0 twiddles are 1
      if (!Load::kPadded || (K - L) + q + (NZ - 1) * m < load.full_rows) {
        for (int64_t b = q; b < K; b += L) butterfly<P, NZ, false>(load, out, b, m, twiddle, wr, wi);
      } else if constexpr (Load::kPadded) {  // checked loads return the zeros: no NZ variants
        for (int64_t b = q; b < K; b += L) butterfly<P, P, true>(load, out, b, m, twiddle, wr, wi);
      }
    }
  }

  struct RowLoad {  // rows of a work buffer
    static constexpr bool kPadded = false;  // every row is data: no checks, no zero tail
    B in;
    int64_t full_rows;  // all of them: INT64_MAX
    template <bool Checked>
    S4OP_INLINE void get(V& re, V& im, int64_t row) const { ld(re, im, in, row); }
  };

  struct HalfLoad {  // even n: row j holds z[W j + lane] = x[2 (W j + lane)] + i x[2 (W j + lane) + 1]
    static constexpr bool kPadded = true;  // x ends at n_in: zero rows past it
    const T* x;      // {n_in}
    int64_t n_in;
    int64_t full_rows;  // n_in / R: rows below lie entirely inside x
    template <bool Checked>
    S4OP_INLINE void get(V& re, V& im, int64_t row) const {
      const int64_t b = row * R;
      if (!Checked || b + R <= n_in) {
        VT::load_deinterleave(re, im, x + b);
      } else if (b >= n_in) {
        re = V{};
        im = V{};
      } else {  // the one row that straddles n_in
        T tmp[R] = {};
        std::memcpy(tmp, x + b, static_cast<size_t>(n_in - b) * sizeof(T));
        VT::load_deinterleave(re, im, tmp);
      }
    }
  };

  struct OddLoad {  // odd n (one lane): row j holds x[j] + 0i
    static constexpr bool kPadded = true;
    const T* x;     // {n_in}
    int64_t n_in;
    int64_t full_rows;  // 0: every load is checked; odd lengths are short and rare
    template <bool Checked>
    S4OP_INLINE void get(V& re, V& im, int64_t row) const {
      static_assert(W == 1, "odd lengths run on one lane");
      re = row < n_in ? x[row] : T(0);
      im = T(0);
    }
  };

  template <class Load>
  static S4OP_INLINE void run_stage(const Stage& st, int64_t K, const T* tw /*{tw_stage}*/,
                                    const Load& load, int64_t rows_nonzero, const B& out) {
    // Inputs of butterfly q are rows q + r m; rows >= rows_nonzero are zero padding, so for
    // r >= nz they are all zero.
    const int64_t nz = std::min<int64_t>(st.radix, (rows_nonzero + st.m - 1) / st.m);
    const T* t = tw + st.tw;
    // Only a padded input can make butterfly inputs zero.  Variants cover the convolution's
    // case, an input of about n/2 (half of the inputs zero); fewer zeros run the general one.
    constexpr bool padded = Load::kPadded;
    switch (st.radix) {
      case 1:
        stage<1, 1>(load, out, st.m, K, t);
        break;
      case 2:
        if (padded && nz <= 1) {
          stage<2, padded ? 1 : 2>(load, out, st.m, K, t);
        } else {
          stage<2, 2>(load, out, st.m, K, t);
        }
        break;
      case 3:
        stage<3, 3>(load, out, st.m, K, t);
        break;
      case 4:
        if (padded && nz <= 2) {
          stage<4, padded ? 2 : 4>(load, out, st.m, K, t);
        } else {
          stage<4, 4>(load, out, st.m, K, t);
        }
        break;
      case 8:
        if (padded && nz <= 4) {
          stage<8, padded ? 4 : 8>(load, out, st.m, K, t);
        } else {
          stage<8, 8>(load, out, st.m, K, t);
        }
        break;
      default:
        stage<5, 5>(load, out, st.m, K, t);
        break;
    }
  }

  // W-point DFT across the lane index n1 of (ar[n1], ai[n1]) in registers: Stockham stages of
  // radix 4 (and one 2), natural order.  NS * S == W.
  template <int NS, int S>
  static S4OP_INLINE void lane_dft(V* ar /*{W}*/, V* ai /*{W}*/, const T* root /*{W, 2}*/) {
    if constexpr (NS > 1) {
      constexpr int P = NS % 4 == 0 ? 4 : 2;
      constexpr int m = NS / P;
      V br[W], bi[W];
      S4OP_UNROLL
      for (int q = 0; q < m; ++q) {
        S4OP_UNROLL
        for (int t = 0; t < S; ++t) {
          V xr[P], xi[P];
          S4OP_UNROLL
          for (int r = 0; r < P; ++r) {
            xr[r] = ar[t + S * (q + r * m)];
            xi[r] = ai[t + S * (q + r * m)];
          }
          dft<P, P>(xr, xi);
          S4OP_UNROLL
          for (int j = 1; j < P; ++j) {
            if (q != 0) {  // e^{-2 pi i q j / NS} = root[q j W / NS]
              V wr, wi;
              VT::set1(wr, root + 2 * (q * j * (W / NS)));
              VT::set1(wi, root + 2 * (q * j * (W / NS)) + 1);
              cmul(xr[j], xi[j], wr, wi);
            }
          }
          S4OP_UNROLL
          for (int j = 0; j < P; ++j) {
            br[t + S * (P * q + j)] = xr[j];
            bi[t + S * (P * q + j)] = xi[j];
          }
        }
      }
      S4OP_UNROLL
      for (int i = 0; i < W; ++i) {
        ar[i] = br[i];
        ai[i] = bi[i];
      }
      lane_dft<m, S * P>(ar, ai, root);
    }
  }

  // Last step of DFT_M, one block of W rows k2 = c .. c+W-1 at a time: transpose so that vector
  // n1 holds lanes k2, twiddle, W-point DFT over n1; sink(c, rows, re, im) receives vector k1 =
  // Z[K k1 + c + lane].  Rows past K (last block when W does not divide K) are zero and not stored.
  template <class Sink>
  static S4OP_INLINE void final_pass(const Plan<T>& p, const B& in, const Sink& sink) {
    const int64_t K = p.K;
    const T* root = p.tw_lane.data();
    const int64_t* row_of = p.row_of.data();
    for (int64_t c = 0; c < K; c += W) {
      const int64_t rows = std::min<int64_t>(W, K - c);
      V re[W], im[W];
      if (rows == W) {
        S4OP_UNROLL
        for (int i = 0; i < W; ++i) ld(re[i], im[i], in, row_of[c + i]);
      } else {
        S4OP_UNROLL
        for (int i = 0; i < W; ++i) {
          if (i < rows) {
            ld(re[i], im[i], in, row_of[c + i]);
          } else {
            re[i] = V{};
            im[i] = V{};
          }
        }
      }
      VT::transpose(re);
      VT::transpose(im);
      const T* tw = p.tw_block.data() + (c / W) * W * 2 * W;
      S4OP_UNROLL
      for (int i = 1; i < W; ++i) {
        V wr, wi;
        VT::load(wr, tw + i * 2 * W);
        VT::load(wi, tw + i * 2 * W + W);
        cmul(re[i], im[i], wr, wi);
      }
      lane_dft<W, 1>(re, im, root);
      sink(c, rows, re, im);
    }
  }

  struct PlanesSink {  // Z[k] into a work buffer
    B z;
    int64_t K;
    S4OP_INLINE void operator()(int64_t c, int64_t rows, const V* re /*{W}*/, const V* im /*{W}*/) const {
      S4OP_UNROLL
      for (int k1 = 0; k1 < W; ++k1) {
        const int64_t o = K * k1 + c;
        if (rows == W) {
          VT::store(z.re + o, re[k1]);
          VT::store(z.im + o, im[k1]);
        } else {
          T tr[W], ti[W];
          VT::store(tr, re[k1]);
          VT::store(ti, im[k1]);
          std::memcpy(z.re + o, tr, static_cast<size_t>(rows) * sizeof(T));
          std::memcpy(z.im + o, ti, static_cast<size_t>(rows) * sizeof(T));
        }
      }
    }
  };

  // Inverse, even n: the kernels computed D = DFT(swap Z), so z = swap(D) and
  // y[2j] = Re z[j] = Im D[j], y[2j+1] = Im z[j] = Re D[j].  Only y[0 .. n_out) is written.
  struct HalfRealSink {
    T* y;  // {n_out}
    int64_t n_out;
    int64_t K;
    S4OP_INLINE void operator()(int64_t c, int64_t rows, const V* re /*{W}*/, const V* im /*{W}*/) const {
      S4OP_UNROLL
      for (int k1 = 0; k1 < W; ++k1) {
        const int64_t o = 2 * (K * k1 + c);
        const int64_t count = std::min<int64_t>(2 * rows, n_out - o);
        if (count == R) {
          VT::store_interleave(y + o, im[k1], re[k1]);
        } else if (count > 0) {
          T tmp[R];
          VT::store_interleave(tmp, im[k1], re[k1]);
          std::memcpy(y + o, tmp, static_cast<size_t>(count) * sizeof(T));
        }
      }
    }
  };

  // Inverse, odd n (one lane): y[j] = Re z[j] = Im D[j].
  struct OddRealSink {
    T* y;  // {n_out}
    int64_t n_out;
    int64_t K;
    S4OP_INLINE void operator()(int64_t c, int64_t, const V* /*re {1}*/, const V* im /*{1}*/) const {
      static_assert(W == 1, "odd lengths run on one lane");
      if (c < n_out) y[c] = im[0];
    }
  };

  // Even n, forward.  A = Z[k], B = conj Z[M-k], E = (A + B)/2, O = (A - B)/2, P = e^{-2 pi i k/n} O:
  //   X[k] = E - i P,   X[M-k] = conj(E + i P),
  // so one pass over k < M/2, reading the mirrored vectors reversed, yields both halves.
  // post_block does the W pairs (k + lane, M - k - lane).
  static S4OP_INLINE void post_block(const Plan<T>& p, const B& z, T* X /*{M+1, 2}*/, int64_t k) {
    const int64_t mk = p.M - k - W + 1;  // the mirrors M-k-lane, ascending from here
    V ar, ai, br, bi, wr, wi;
    VT::load(ar, z.re + k);
    VT::load(ai, z.im + k);
    VT::load(br, z.re + mk);
    VT::load(bi, z.im + mk);
    VT::reverse(br);
    VT::reverse(bi);
    VT::load(wr, p.tw_post_re.data() + k);
    VT::load(wi, p.tw_post_im.data() + k);
    const V er = T(0.5) * (ar + br), ei = T(0.5) * (ai - bi);  // b is conj Z[M-k]
    const V orr = T(0.5) * (ar - br), oi = T(0.5) * (ai + bi);
    const V qr = wr * orr - wi * oi, qi = wr * oi + wi * orr;
    VT::store_interleave(X + 2 * k, er + qi, ei - qr);
    V mr = er - qi, mi = -(ei + qr);
    VT::reverse(mr);
    VT::reverse(mi);
    VT::store_interleave(X + 2 * mk, mr, mi);
  }

  static S4OP_INLINE void post_half(const Plan<T>& p, const B& z, std::complex<T>* Xc /*{M+1}*/) {
    const int64_t M = p.M;
    // std::complex<T> is layout-compatible with T[2] ([complex.numbers] p4).
    T* X = reinterpret_cast<T*>(Xc);
    const int64_t end = (M + 1) / 2;  // pairs (k, M-k) for 1 <= k < end
    int64_t k = 1;
    for (; k + W <= end; k += W) post_block(p, z, X, k);
    if (k < end && end - W >= 1) {
      post_block(p, z, X, end - W);  // overlaps the previous block; recomputes identical values
    } else {
      for (; k < end; ++k) Lane1::post_block(p, z, X, k);  // fewer than W pairs in all
    }
    // DC and Nyquist are real by symmetry; set exactly, as numpy does.  X[M/2] = conj Z[M/2].
    X[0] = z.re[0] + z.im[0];
    X[1] = 0;
    X[2 * M] = z.re[0] - z.im[0];
    X[2 * M + 1] = 0;
    if (M % 2 == 0) {
      X[M] = z.re[M / 2];
      X[M + 1] = -z.im[M / 2];
    }
  }

  // Even n, inverse.  A = X[k], B = conj X[M-k], E = A + B, O = (A - B) e^{+2 pi i k/n}:
  //   Z[k] = (E + i O) / n,   Z[M-k] = (conj E + i conj O) / n,
  // stored swapped (real plane <- Im Z, imaginary plane <- Re Z) for the swap trick.
  static S4OP_INLINE void pre_block(const Plan<T>& p, const T* X /*{M+1, 2}*/, const B& z, int64_t k) {
    const int64_t mk = p.M - k - W + 1;
    V ar, ai, br, bi, wr, wi, scale;
    VT::load_deinterleave(ar, ai, X + 2 * k);
    VT::load_deinterleave(br, bi, X + 2 * mk);
    VT::reverse(br);
    VT::reverse(bi);
    VT::load(wr, p.tw_post_re.data() + k);
    VT::load(wi, p.tw_post_im.data() + k);
    VT::load(scale, p.inv_n.data());
    const V er = ar + br, ei = ai - bi;  // b is conj X[M-k]
    const V dr = ar - br, di = ai + bi;
    const V orr = dr * wr + di * wi, oi = di * wr - dr * wi;
    VT::store(z.re + k, (ei + orr) * scale);
    VT::store(z.im + k, (er - oi) * scale);
    V mr = (orr - ei) * scale, mi = (er + oi) * scale;
    VT::reverse(mr);
    VT::reverse(mi);
    VT::store(z.re + mk, mr);
    VT::store(z.im + mk, mi);
  }

  static S4OP_INLINE void pre_half(const Plan<T>& p, const std::complex<T>* Xc /*{M+1}*/, const B& z) {
    const int64_t M = p.M;
    const T* X = reinterpret_cast<const T*>(Xc);
    const int64_t end = (M + 1) / 2;
    int64_t k = 1;
    for (; k + W <= end; k += W) pre_block(p, X, z, k);
    if (k < end && end - W >= 1) {
      pre_block(p, X, z, end - W);
    } else {
      for (; k < end; ++k) Lane1::pre_block(p, X, z, k);
    }
    // numpy ignores Im X[0] and Im X[M]; Z[M/2] = 2 conj(X[M/2]) / n.
    const T s = p.inv_n[0], a = X[0], c = X[2 * M];
    z.re[0] = (a - c) * s;
    z.im[0] = (a + c) * s;
    if (M % 2 == 0) {
      z.re[M / 2] = -2 * X[M + 1] * s;
      z.im[M / 2] = 2 * X[M] * s;
    }
  }

  // Odd n, inverse (one lane): the full Hermitian spectrum Z[k] = X[k] (k <= n/2), conj X[n-k]
  // (k > n/2), Im Z[0] dropped, scaled by 1/n and stored swapped.
  static S4OP_INLINE void pre_odd(const Plan<T>& p, const std::complex<T>* X /*{n/2+1}*/, const B& z) {
    const int64_t n = p.n;
    const T s = p.inv_n[0];
    z.re[0] = 0;
    z.im[0] = X[0].real() * s;
    for (int64_t k = 1; 2 * k < n; ++k) {
      z.re[k] = X[k].imag() * s;
      z.im[k] = X[k].real() * s;
      z.re[n - k] = -X[k].imag() * s;
      z.im[n - k] = X[k].real() * s;
    }
  }

  static S4OP_INLINE void forward(const Plan<T>& p, const T* x /*{n_in}*/, int64_t n_in,
                                  std::complex<T>* X /*{n/2+1}*/, T* work /*{work_size}*/) {
    B buf[2];
    work_buffers(p, work, buf);
    const T* tw = p.tw_stage.data();
    if (p.half) {
      run_stage(p.stages[0], p.K, tw, HalfLoad{x, n_in, n_in / R}, (n_in + R - 1) / R, buf[0]);
    } else if constexpr (W == 1) {  // odd n always runs on one lane
      run_stage(p.stages[0], p.K, tw, OddLoad{x, n_in, 0}, n_in, buf[0]);
    }
    for (size_t i = 1; i < p.stages.size(); ++i) {
      run_stage(p.stages[i], p.K, tw, RowLoad{buf[0], INT64_MAX}, p.K, buf[0]);
    }
    final_pass(p, buf[0], PlanesSink{buf[1], p.K});
    if (p.half) {
      post_half(p, buf[1], X);
    } else {
      for (int64_t k = 0; 2 * k <= p.n; ++k) X[k] = std::complex<T>(buf[1].re[k], buf[1].im[k]);
      X[0].imag(0);  // real input: DC is real
    }
  }

  static S4OP_INLINE void inverse(const Plan<T>& p, const std::complex<T>* X /*{n/2+1}*/,
                                  T* y /*{n_out}*/, int64_t n_out, T* work /*{work_size}*/) {
    B buf[2];
    work_buffers(p, work, buf);
    const T* tw = p.tw_stage.data();
    if (p.half) {
      pre_half(p, X, buf[0]);
    } else if constexpr (W == 1) {  // odd n always runs on one lane
      pre_odd(p, X, buf[0]);
    }
    for (const Stage& st : p.stages) run_stage(st, p.K, tw, RowLoad{buf[0], INT64_MAX}, p.K, buf[0]);
    if (p.half) {
      final_pass(p, buf[0], HalfRealSink{y, n_out, p.K});
    } else if constexpr (W == 1) {
      final_pass(p, buf[0], OddRealSink{y, n_out, p.K});
    }
  }
};

// ---------------------------------------------------------------------------------------------
// Entry points, one per path.  The target attribute makes the inlined kernels compile for that
// instruction set; nothing outside them uses it, so the rest of the binary stays portable.

template <class T>
void forward_scalar(const Plan<T>& p, const T* x, int64_t n_in, std::complex<T>* X, T* work) {
  Kern<simd::Vec<SimdPath::kScalar, T>>::forward(p, x, n_in, X, work);
}
template <class T>
void inverse_scalar(const Plan<T>& p, const std::complex<T>* X, T* y, int64_t n_out, T* work) {
  Kern<simd::Vec<SimdPath::kScalar, T>>::inverse(p, X, y, n_out, work);
}
#if S4OP_SIMD_VECTORS
// 128 bits are the baseline (SSE2 on x86-64, NEON on AArch64 once its slot is filled): no target
// attribute.
template <class T>
void forward_vec128(const Plan<T>& p, const T* x, int64_t n_in, std::complex<T>* X, T* work) {
  Kern<simd::Vec<SimdPath::kVec128, T>>::forward(p, x, n_in, X, work);
}
template <class T>
void inverse_vec128(const Plan<T>& p, const std::complex<T>* X, T* y, int64_t n_out, T* work) {
  Kern<simd::Vec<SimdPath::kVec128, T>>::inverse(p, X, y, n_out, work);
}
#endif
#if S4OP_SIMD_X86
template <class T>
S4OP_TARGET_AVX2 void forward_avx2(const Plan<T>& p, const T* x, int64_t n_in, std::complex<T>* X,
                                   T* work) {
  Kern<simd::Vec<SimdPath::kAVX2, T>>::forward(p, x, n_in, X, work);
}
template <class T>
S4OP_TARGET_AVX2 void inverse_avx2(const Plan<T>& p, const std::complex<T>* X, T* y, int64_t n_out,
                                   T* work) {
  Kern<simd::Vec<SimdPath::kAVX2, T>>::inverse(p, X, y, n_out, work);
}
template <class T>
S4OP_TARGET_AVX512 void forward_avx512(const Plan<T>& p, const T* x, int64_t n_in,
                                       std::complex<T>* X, T* work) {
  Kern<simd::Vec<SimdPath::kAVX512, T>>::forward(p, x, n_in, X, work);
}
template <class T>
S4OP_TARGET_AVX512 void inverse_avx512(const Plan<T>& p, const std::complex<T>* X, T* y,
                                       int64_t n_out, T* work) {
  Kern<simd::Vec<SimdPath::kAVX512, T>>::inverse(p, X, y, n_out, work);
}
#endif

// e^{-2 pi i a / b} into out[0], out[1].  Long double keeps the table accurate to the last bit of
// double; multiples of pi/4 are set exactly so that symmetric bins come out exactly real.
template <class T>
void unit_root(int64_t a, int64_t b, T* out /*{2}*/) {
  a %= b;
  if ((8 * a) % b == 0) {
    const long double h = 0.707106781186547524400844362104849L;
    static const long double c8[8] = {1, h, 0, -h, -1, -h, 0, h};
    const int64_t o = 8 * a / b;
    out[0] = static_cast<T>(c8[o]);
    out[1] = static_cast<T>(-c8[(o + 6) % 8]);  // sin(o pi/4) = cos((o - 2) pi/4)
    return;
  }
  const long double pi2 = 6.283185307179586476925286766559006L;
  const long double th = pi2 * static_cast<long double>(a) / static_cast<long double>(b);
  out[0] = static_cast<T>(std::cos(th));
  out[1] = static_cast<T>(-std::sin(th));
}

template <class T>
void build_plan(Plan<T>& p, int64_t n, FFTPath max_path) {
  p.n = n;
  p.half = n % 2 == 0;
  p.M = p.half ? n / 2 : n;

  // Widest allowed path whose lanes divide M; prefer K >= W, or the last block is mostly padding.
  p.path = FFTPath::kScalar;
  p.W = 1;
  for (int lvl = static_cast<int>(max_path); lvl > 0; --lvl) {
    const auto path = static_cast<FFTPath>(lvl);
    const int w = simd::lanes_of<T>(path);
    if (fft_path_supported(path) && p.M % w == 0 && p.M >= int64_t{w} * w) {
      p.path = path;
      p.W = w;
      break;
    }
  }
  const int W = p.W;
  p.K = p.M / W;

  // Radices of K: 8s, then 4s, so few passes over the data; powers of two first, so that a
  // zero-padded input (n_in <= n/2) makes the first butterflies half empty.
  std::vector<int> radices;
  int64_t rest = p.K;
  while (rest % 8 == 0) {
    radices.push_back(8);
    rest /= 8;
  }
  if (rest % 2 == 0 && rest % 4 != 0 && !radices.empty()) {  // 8 x 2 -> 4 x 4: fewer, fuller butterflies
    radices.back() = 4;
    rest *= 2;
  }
  while (rest % 4 == 0) {
    radices.push_back(4);
    rest /= 4;
  }
  for (int f : {2, 3, 5}) {
    while (rest % f == 0) {
      radices.push_back(f);
      rest /= f;
    }
  }
  if (radices.empty()) radices.push_back(1);  // K == 1: one copy stage reads the input

  int64_t len = p.K;
  for (int P : radices) {
    Stage st;
    st.radix = P;
    st.m = len / P;
    st.tw = p.tw_stage.size();
    for (int64_t q = 0; q < st.m; ++q) {
      for (int j = 1; j < P; ++j) {
        T w[2];
        unit_root<T>(q * j, len, w);
        p.tw_stage.push_back(w[0]);
        p.tw_stage.push_back(w[1]);
      }
    }
    p.stages.push_back(st);
    len = st.m;
  }
  // Decimation in frequency leaves output digit j_i of stage i at row sum_i j_i K / (P_1..P_i),
  // while the frequency is k2 = j_1 + P_1 (j_2 + P_2 (j_3 + ...)).
  p.row_of.assign(static_cast<size_t>(p.K), 0);
  for (int64_t pos = 0; pos < p.K; ++pos) {
    int64_t rest_pos = pos, span = p.K, k2 = 0, weight = 1;
    for (int P : radices) {
      span /= P;
      k2 += rest_pos / span * weight;
      rest_pos %= span;
      weight *= P;
    }
    p.row_of[static_cast<size_t>(k2)] = pos;
  }

  const int64_t blocks = (p.K + W - 1) / W;
  p.tw_block.assign(static_cast<size_t>(blocks * W * 2 * W), T(0));
  for (int64_t b = 0; b < blocks; ++b) {
    for (int n1 = 0; n1 < W; ++n1) {
      T* row = p.tw_block.data() + (b * W + n1) * 2 * W;
      for (int i = 0; i < W; ++i) {
        T w[2];
        unit_root<T>(n1 * (b * W + i), p.M, w);
        row[i] = w[0];
        row[W + i] = w[1];
      }
    }
  }
  p.tw_lane.assign(static_cast<size_t>(3 * W), T(0));  // + W: Vec::set1 reads W elements
  for (int k = 0; k < W; ++k) unit_root<T>(k, W, p.tw_lane.data() + 2 * k);
  p.tw_stage.resize(p.tw_stage.size() + static_cast<size_t>(W), T(0));
  p.inv_n.assign(static_cast<size_t>(W), T(1) / static_cast<T>(n));
  if (p.half) {
    p.tw_post_re.assign(static_cast<size_t>(p.M / 2 + W + 1), T(0));
    p.tw_post_im.assign(static_cast<size_t>(p.M / 2 + W + 1), T(0));
    for (int64_t k = 0; k <= p.M / 2; ++k) {
      T w[2];
      unit_root<T>(k, n, w);
      p.tw_post_re[static_cast<size_t>(k)] = w[0];
      p.tw_post_im[static_cast<size_t>(k)] = w[1];
    }
  }

  // Two buffers of two planes of M values.  Planes are whole cache lines, so each starts 64-byte
  // aligned, plus one more line: at a power-of-two distance the same row of all four planes would
  // map to the same L1 set.  One line of slack aligns the caller's pointer.
  const int64_t line = 64 / static_cast<int64_t>(sizeof(T));
  p.plane = (p.M + line - 1) / line * line + line;
  p.work_size = 4 * p.plane + line;

  switch (p.path) {
#if S4OP_SIMD_X86
    case FFTPath::kAVX512:
      p.forward = forward_avx512<T>;
      p.inverse = inverse_avx512<T>;
      break;
    case FFTPath::kAVX2:
      p.forward = forward_avx2<T>;
      p.inverse = inverse_avx2<T>;
      break;
#endif
#if S4OP_SIMD_VECTORS
    case FFTPath::kVec128:
      p.forward = forward_vec128<T>;
      p.inverse = inverse_vec128<T>;
      break;
#endif
    default:
      p.forward = forward_scalar<T>;
      p.inverse = inverse_scalar<T>;
      break;
  }
}

[[noreturn]] void invalid(const std::string& what) { throw std::invalid_argument(what); }

void check_size(const char* who, int64_t n) {
  if (n < 1) invalid(std::string(who) + ": n must be >= 1, got " + std::to_string(n));
  if (n > kMaxFFTSize) invalid(std::string(who) + ": n = " + std::to_string(n) + " exceeds 2^40");
  if (!is_fast_size(n)) {
    invalid(std::string(who) + ": n = " + std::to_string(n) +
            " is not of the form 2^a 3^b 5^c; pad to next_fast_size(n) = " +
            std::to_string(next_fast_size(n)));
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------

bool is_fast_size(int64_t n) {
  if (n < 1 || n > kMaxFFTSize) return false;
  for (int64_t f : {2, 3, 5}) {
    while (n % f == 0) n /= f;
  }
  return n == 1;
}

int64_t next_fast_size(int64_t n) {
  if (n < 0) invalid("next_fast_size: n must be >= 0, got " + std::to_string(n));
  if (n > kMaxFFTSize) {
    invalid("next_fast_size: n = " + std::to_string(n) + " exceeds the largest FFT size 2^40");
  }
  if (n <= 1) return 1;
  // Power of two >= n bounds the answer; try every 3^b 5^c below it times the smallest power of
  // two that reaches n.
  int64_t best = 1;
  while (best < n) best *= 2;
  for (int64_t p5 = 1; p5 < best; p5 *= 5) {
    for (int64_t p35 = p5; p35 < best; p35 *= 3) {
      int64_t m = p35;
      while (m < n) m *= 2;
      best = std::min(best, m);
    }
  }
  return best;
}

const char* fft_path_name(FFTPath path) { return simd_path_name(path); }

// The FFT implements every path, so it runs exactly those this build and CPU support.
bool fft_path_supported(FFTPath path) { return simd_path_supported(path); }

template <typename T>
struct RealFFT<T>::Impl {
  Plan<T> plan;
};

template <typename T>
RealFFT<T>::RealFFT(int64_t n, FFTPath max_path) {
  check_size("RealFFT", n);
  const int lvl = static_cast<int>(max_path);
  if (lvl < static_cast<int>(FFTPath::kScalar) || lvl > static_cast<int>(FFTPath::kAVX512)) {
    invalid("RealFFT: max_path is not an FFTPath value");
  }
  auto impl = std::make_unique<Impl>();
  build_plan(impl->plan, n, max_path);
  impl_ = std::move(impl);
}

template <typename T>
RealFFT<T>::~RealFFT() = default;

template <typename T>
int64_t RealFFT<T>::size() const {
  return impl_->plan.n;
}
template <typename T>
int64_t RealFFT<T>::num_bins() const {
  return impl_->plan.n / 2 + 1;
}
template <typename T>
int64_t RealFFT<T>::work_size() const {
  return impl_->plan.work_size;
}
template <typename T>
FFTPath RealFFT<T>::path() const {
  return impl_->plan.path;
}

template <typename T>
void RealFFT<T>::forward(const T* x, int64_t n_in, std::complex<T>* X, T* work) const {
  const Plan<T>& p = impl_->plan;
  if (n_in < 0 || n_in > p.n) {
    invalid("RealFFT::forward: n_in = " + std::to_string(n_in) + " must be in [0, n = " +
            std::to_string(p.n) + "]");
  }
  if (X == nullptr) invalid("RealFFT::forward: output X is null");
  if (n_in > 0 && x == nullptr) invalid("RealFFT::forward: input x is null but n_in > 0");
  if (n_in == 0) {  // all zero padding
    std::fill(X, X + p.n / 2 + 1, std::complex<T>(0, 0));
    return;
  }
  if (work == nullptr) invalid("RealFFT::forward: work is null (needs work_size() elements)");
  p.forward(p, x, n_in, X, work);
}

template <typename T>
void RealFFT<T>::inverse(const std::complex<T>* X, T* y, int64_t n_out, T* work) const {
  const Plan<T>& p = impl_->plan;
  if (n_out < 0 || n_out > p.n) {
    invalid("RealFFT::inverse: n_out = " + std::to_string(n_out) + " must be in [0, n = " +
            std::to_string(p.n) + "]");
  }
  if (X == nullptr) invalid("RealFFT::inverse: input X is null");
  if (n_out == 0) return;
  if (y == nullptr) invalid("RealFFT::inverse: output y is null but n_out > 0");
  if (work == nullptr) invalid("RealFFT::inverse: work is null (needs work_size() elements)");
  p.inverse(p, X, y, n_out, work);
}

template class RealFFT<float>;
template class RealFFT<double>;

template <typename T>
std::shared_ptr<const RealFFT<T>> get_real_fft(int64_t n) {
  check_size("get_real_fft", n);  // before the map is touched, so bad sizes never enter it
  static std::mutex mutex;
  static std::map<int64_t, std::shared_ptr<const RealFFT<T>>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto& slot = cache[n];
  if (!slot) slot = std::make_shared<const RealFFT<T>>(n);
  return slot;
}

template std::shared_ptr<const RealFFT<float>> get_real_fft<float>(int64_t n);
template std::shared_ptr<const RealFFT<double>> get_real_fft<double>(int64_t n);

}  // namespace cpu
}  // namespace s4op
