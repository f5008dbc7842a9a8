// The one SIMD abstraction of the core (internal header): the build configuration, a vector type per
// instruction-set level, and the attributes that compile an entry point for a level.
//
// How a kernel uses it.  The kernel is a set of templates over a vector type VT = Vec<path, T>, marked
// S4OP_INLINE and written once.  It has one thin entry point per path it implements, e.g.
//     template <class T> S4OP_TARGET_AVX2 void run_avx2(...) { kernel<Vec<SimdPath::kAVX2, T>>(...); }
// and picks one at run time (widest_supported() / simd_path_supported() of cpu_features.h).  The
// templates inline into the entry point and are compiled for its ISA; nothing else in the binary is,
// so one portable binary uses the vector units of the CPU it runs on.
//
// Why GNU vector extensions rather than intrinsics.  Intrinsics are themselves target-specific
// always_inline functions: GCC and Clang refuse to inline them into a template that has no target
// attribute, even one that is only ever inlined into an entry point of the right ISA.  Vector-extension
// arithmetic has no target: the compiler lowers it for the entry point it ends up in.  So the kernels
// need no per-target copy of their source (no pragma regions, no re-included files, no per-file flags,
// whose inline functions could leak AVX-512 code into the portable part of the binary through the
// linker).  The one operation the extensions lack, a fused multiply-add, is spelled per compiler below.
//
// Configuration.  CMake's S4OP_SIMD=generic defines S4OP_SIMD_GENERIC: portable C++17 only, no vector
// extensions, no intrinsics header, no target attributes, no architecture checks; the one path is
// SimdPath::kScalar.  S4OP_SIMD=auto (the default) gives runtime dispatch on x86 with GCC or Clang, and
// falls back to the generic configuration on any other target or compiler.
//
// The slot for NEON (not written yet).  On AArch64 (`__aarch64__`, NEON is part of the baseline):
//  1. define S4OP_SIMD_NEON 1 next to S4OP_SIMD_X86 below (and S4OP_SIMD_VECTORS with it);
//  2. Vec<SimdPath::kVec128, T> = GnuVec<T, 16 / sizeof(T)> with fma() from vfmaq_f32 / vfmaq_f64 (or
//     the Clang contraction used for x86): the kernels need nothing else;
//  3. simd_path_supported(kVec128) returns true (cpu_features.cpp), simd_path_name says "neon";
//  4. the kVec128 dispatch entries: fft.cpp already has forward_vec128 / inverse_vec128 under
//     S4OP_SIMD_VECTORS (no target attribute: the baseline is the ISA); s4d_kernel.cpp and
//     sparse_fftconv.cpp (GELU) would add a *_vec128 entry next to *_avx2 and list kVec128 in their
//     widest_supported() call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <type_traits>
#include <utility>

#include "s4op/cpu_features.h"

#if defined(S4OP_SIMD_GENERIC)
#define S4OP_SIMD_X86 0
#elif (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define S4OP_SIMD_X86 1
#else
#define S4OP_SIMD_X86 0  // auto on another target (or compiler): the generic configuration
#endif
// GNU vector types are in use (the NEON slot would add `|| S4OP_SIMD_NEON`).
#define S4OP_SIMD_VECTORS S4OP_SIMD_X86

// ---- Compiler helpers (not ISA-specific; plain fallbacks for other compilers).
#if defined(__GNUC__) || defined(__clang__)
// Kernel templates must inline into their entry point: a separate copy would be compiled for the
// baseline ISA, and a default-target function taking a wide vector by value changes the ABI.
#define S4OP_INLINE inline __attribute__((always_inline))
#define S4OP_RESTRICT __restrict
#define S4OP_PRAGMA(x) _Pragma(#x)
#if defined(__clang__)
#define S4OP_UNROLL S4OP_PRAGMA(unroll)
#else
// Lane arrays must be fully unrolled to live in registers; GCC's size heuristics stop short of that
// for 16 lanes.
#define S4OP_UNROLL S4OP_PRAGMA(GCC unroll 16)
#endif
#else
#define S4OP_INLINE inline
#define S4OP_RESTRICT
#define S4OP_UNROLL
#endif

// ---- The ISA levels, each defined once.  S4OP_ISA_<LEVEL>(F, SEP) lists the level's features as
// F("feature") SEP F("feature") ...: with a string separator it is the target attribute an entry point
// of that level is compiled with, with && it is the check cpu_features.cpp makes before running it, so
// the two cannot disagree.
#if S4OP_SIMD_X86
#include <immintrin.h>  // declares GCC's x86 builtins used by fused_fma() below

#define S4OP_ISA_AVX2(F, SEP) F("avx2") SEP F("fma")
#define S4OP_ISA_AVX512(F, SEP) \
  F("avx512f") SEP F("avx512dq") SEP F("avx512bw") SEP F("avx512vl") SEP S4OP_ISA_AVX2(F, SEP)
#define S4OP_ISA_NAME(feature) feature

#define S4OP_TARGET_AVX2 __attribute__((target(S4OP_ISA_AVX2(S4OP_ISA_NAME, ","))))
#if defined(__clang__)
#define S4OP_TARGET_AVX512 __attribute__((target(S4OP_ISA_AVX512(S4OP_ISA_NAME, ","))))
#else
// The loops GCC vectorizes on its own (GELU, the kernel set-up code) use the full width too, whatever
// -mtune would prefer.
#define S4OP_TARGET_AVX512 \
  __attribute__((target(S4OP_ISA_AVX512(S4OP_ISA_NAME, ",") ",prefer-vector-width=512")))
#endif
#endif  // S4OP_SIMD_X86

namespace s4op {
namespace simd {
// Internal linkage: every translation unit keeps its own copies, so an out-of-line copy compiled
// inside an AVX-512 entry point can never be merged by the linker with one that portable code calls.
namespace {

using cpu::SimdPath;

// The widest of a kernel's own paths (any order) that this build and CPU run; kScalar if none.
inline SimdPath widest_supported(std::initializer_list<SimdPath> implemented) {
  SimdPath best = SimdPath::kScalar;
  for (SimdPath p : implemented) {
    if (static_cast<int>(p) > static_cast<int>(best) && cpu::simd_path_supported(p)) best = p;
  }
  return best;
}

// Lanes of T in one vector of a path (1 for kScalar).
template <class T>
constexpr int lanes_of(SimdPath path) {
  switch (path) {
    case SimdPath::kAVX512:
      return static_cast<int>(64 / sizeof(T));
    case SimdPath::kAVX2:
      return static_cast<int>(32 / sizeof(T));
    case SimdPath::kVec128:
      return static_cast<int>(16 / sizeof(T));
    default:
      return 1;
  }
}

// ---------------------------------------------------------------------------------------------
// Vec<path, T>: the vector type of one path for T = float or double.  VT = Vec<path, T> has
//   VT::T, VT::kLanes (W), VT::V   the register; V{} is all zeros; V supports + - * (and unary -) with
//                                  V or T operands (V is T itself for kScalar, a GNU vector otherwise)
//   load(V&, const T* p /*{W}*/), store(T* p /*{W}*/, const V&)       unaligned
//   set1(V&, const T* p /*{W}*/)     broadcast of p[0], reading p[0 .. W) (callers pad for it): one
//                                    vbroadcast from memory
//   broadcast(V&, T s)               broadcast of a value: one vbroadcast
//   fma(V& acc, const V& a, const V& b)   acc = a * b + acc: fused on the paths with FMA (kAVX2,
//                                    kAVX512), a rounded product and sum otherwise
//   load_deinterleave(V& even, V& odd, const T* p /*{2W}*/)   even[i] = p[2i], odd[i] = p[2i + 1]
//   store_interleave(T* p /*{2W}*/, const V& a, const V& b)    p[2i] = a[i], p[2i + 1] = b[i]
//   reverse(V&)                      lane i <- lane W-1-i
//   transpose(V* rows /*{W}*/)       the W x W matrix whose rows are the W vectors
// Vectors pass by reference: a wide vector type in a default-target signature changes the ABI.
template <SimdPath P, class T>
struct Vec;

// One lane: plain C++ for any compiler and target.
template <class T_>
struct ScalarVec {
  using T = T_;
  using V = T;
  static constexpr int kLanes = 1;
  static S4OP_INLINE void load(V& v, const T* p /*{1}*/) { v = *p; }
  static S4OP_INLINE void store(T* p /*{1}*/, const V& v) { *p = v; }
  static S4OP_INLINE void set1(V& v, const T* p /*{1}*/) { v = *p; }
  static S4OP_INLINE void broadcast(V& v, T s) { v = s; }
  static S4OP_INLINE void fma(V& acc, const V& a, const V& b) { acc = a * b + acc; }
  static S4OP_INLINE void load_deinterleave(V& even, V& odd, const T* p /*{2}*/) {
    even = p[0];
    odd = p[1];
  }
  static S4OP_INLINE void store_interleave(T* p /*{2}*/, const V& a, const V& b) {
    p[0] = a;
    p[1] = b;
  }
  static S4OP_INLINE void reverse(V&) {}
  static S4OP_INLINE void transpose(V* /*{1}*/) {}
};

template <class T>
struct Vec<SimdPath::kScalar, T> : ScalarVec<T> {};

#if S4OP_SIMD_VECTORS
// Lane maps for two-input shuffles; lanes of the second input are numbered W .. 2W-1.
template <int W>
struct IdxLo {  // a0 b0 a1 b1 ... of the low halves
  static constexpr int idx(int i) { return (i % 2 ? W : 0) + i / 2; }
};
template <int W>
struct IdxHi {  // the same for the high halves
  static constexpr int idx(int i) { return (i % 2 ? W : 0) + W / 2 + i / 2; }
};
template <int W>
struct IdxEven {
  static constexpr int idx(int i) { return 2 * i; }
};
template <int W>
struct IdxOdd {
  static constexpr int idx(int i) { return 2 * i + 1; }
};
template <int W>
struct IdxZero {
  static constexpr int idx(int) { return 0; }
};
template <int W>
struct IdxRev {
  static constexpr int idx(int i) { return W - 1 - i; }
};

// W lanes of T as a GNU vector (GCC and Clang), everything but fma.
template <class T_, int W>
struct GnuVec {
  using T = T_;
  typedef T V __attribute__((vector_size(sizeof(T) * W)));
  static constexpr int kLanes = W;
  using Lanes = std::make_index_sequence<W>;

  template <class F, std::size_t... I>
  static S4OP_INLINE void shuffle(V& out, const V& a, const V& b, std::index_sequence<I...>) {
#if defined(__clang__) || __GNUC__ >= 12
    out = __builtin_shufflevector(a, b, F::idx(static_cast<int>(I))...);
#else
    typedef std::conditional_t<sizeof(T) == 4, int32_t, int64_t> Int;
    typedef Int Mask __attribute__((vector_size(sizeof(T) * W)));
    out = __builtin_shuffle(a, b, Mask{F::idx(static_cast<int>(I))...});
#endif
  }
  // memcpy: unaligned, and free of aliasing questions; compiles to one vector move.
  static S4OP_INLINE void load(V& v, const T* p /*{W}*/) { std::memcpy(&v, p, sizeof(V)); }
  static S4OP_INLINE void store(T* p /*{W}*/, const V& v) { std::memcpy(p, &v, sizeof(V)); }
  // A shuffle of a loaded vector is one vbroadcast; GCC builds `V{s, s, ...}` or `s - V{}` from a
  // scalar lane by lane when the helper is compiled outside the target function (see broadcast).
  static S4OP_INLINE void set1(V& v, const T* p /*{W}*/) {
    V t;
    load(t, p);
    shuffle<IdxZero<W>>(v, t, t, Lanes());
  }
  // s * 1 is exact, so GCC folds it away and keeps one vbroadcast (of memory, where s was just
  // loaded): unlike the constructors above, the multiplication by a scalar is lowered late.
  static S4OP_INLINE void broadcast(V& v, T s) {
    v = V{} + T(1);
    v *= s;
  }
  static S4OP_INLINE void load_deinterleave(V& even, V& odd, const T* p /*{2W}*/) {
    V a, b;
    load(a, p);
    load(b, p + W);
    shuffle<IdxEven<W>>(even, a, b, Lanes());
    shuffle<IdxOdd<W>>(odd, a, b, Lanes());
  }
  static S4OP_INLINE void store_interleave(T* p /*{2W}*/, const V& a, const V& b) {
    V lo, hi;
    shuffle<IdxLo<W>>(lo, a, b, Lanes());
    shuffle<IdxHi<W>>(hi, a, b, Lanes());
    store(p, lo);
    store(p + W, hi);
  }
  static S4OP_INLINE void reverse(V& v) {
    const V t = v;
    shuffle<IdxRev<W>>(v, t, t, Lanes());
  }
  // Transposes the W x W matrix whose rows are r[0..W-1].  Interleaving row i with row i + W/2
  // rotates the bit string (row bits, column bits) left by one, so log2(W) rounds swap them.
  static S4OP_INLINE void transpose(V* r /*{W}*/) {
    S4OP_UNROLL
    for (int h = 1; h < W; h *= 2) {
      V t[W];
      S4OP_UNROLL
      for (int i = 0; i < W / 2; ++i) {
        shuffle<IdxLo<W>>(t[2 * i], r[i], r[i + W / 2], Lanes());
        shuffle<IdxHi<W>>(t[2 * i + 1], r[i], r[i + W / 2], Lanes());
      }
      S4OP_UNROLL
      for (int i = 0; i < W; ++i) r[i] = t[i];
    }
  }
};
#endif  // S4OP_SIMD_VECTORS

#if S4OP_SIMD_X86
// Fused acc = a * b + acc on a 256- or 512-bit GNU vector; only valid inlined into an entry point of
// kAVX2 or kAVX512.
#if !defined(__clang__)
#pragma GCC diagnostic push
// The builtins return a wide vector inside a default-target template; that function is always
// inlined into its entry point, so no call with the changed ABI is ever made.
#pragma GCC diagnostic ignored "-Wpsabi"
#endif
template <class T, class V>
S4OP_INLINE void fused_fma(V& acc, const V& a, const V& b) {
#if defined(__clang__)
  // Clang checks a builtin's ISA in the function that spells it, so the contraction is requested
  // instead: the entry point's FMA feature turns it into one vfmadd.
#pragma clang fp contract(fast)
  acc = a * b + acc;
#else
  // GCC checks a builtin's ISA where it is finally expanded, i.e. in the entry point.  These are
  // the builtins behind _mm256_fmadd_p[sd] and _mm512_fmadd_p[sd] (which cannot be called here:
  // they are always_inline functions with a target attribute).
  if constexpr (sizeof(V) == 32 && std::is_same<T, float>::value) {
    acc = __builtin_ia32_vfmaddps256(a, b, acc);
  } else if constexpr (sizeof(V) == 32) {
    acc = __builtin_ia32_vfmaddpd256(a, b, acc);
  } else if constexpr (sizeof(V) == 64 && std::is_same<T, float>::value) {
    acc = __builtin_ia32_vfmaddps512_mask(a, b, acc, static_cast<__mmask16>(-1), _MM_FROUND_CUR_DIRECTION);
  } else {
    static_assert(sizeof(V) == 64, "fused_fma: 256- or 512-bit vectors");
    acc = __builtin_ia32_vfmaddpd512_mask(a, b, acc, static_cast<__mmask8>(-1), _MM_FROUND_CUR_DIRECTION);
  }
#endif
}
#if !defined(__clang__)
#pragma GCC diagnostic pop
#endif

// SSE2 has no FMA: a rounded product and sum, like the scalar path.
template <class T>
struct Vec<SimdPath::kVec128, T> : GnuVec<T, 16 / sizeof(T)> {
  using V = typename GnuVec<T, 16 / sizeof(T)>::V;
  static S4OP_INLINE void fma(V& acc, const V& a, const V& b) { acc = a * b + acc; }
};
template <class T>
struct Vec<SimdPath::kAVX2, T> : GnuVec<T, 32 / sizeof(T)> {
  using V = typename GnuVec<T, 32 / sizeof(T)>::V;
  static S4OP_INLINE void fma(V& acc, const V& a, const V& b) { fused_fma<T>(acc, a, b); }
};
template <class T>
struct Vec<SimdPath::kAVX512, T> : GnuVec<T, 64 / sizeof(T)> {
  using V = typename GnuVec<T, 64 / sizeof(T)>::V;
  static S4OP_INLINE void fma(V& acc, const V& a, const V& b) { fused_fma<T>(acc, a, b); }
};
#endif  // S4OP_SIMD_X86

}  // namespace
}  // namespace simd
}  // namespace s4op
