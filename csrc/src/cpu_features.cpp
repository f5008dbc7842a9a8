// The one CPU-feature detection unit of the core (see cpu_features.h).  Which features make up each
// level is defined once, in simd.h (S4OP_ISA_*), for both the entry points' target attributes and the
// checks made here.
#include "s4op/cpu_features.h"

#include "simd.h"

namespace s4op {
namespace cpu {
namespace {

#if S4OP_SIMD_X86
struct X86Levels {
  bool avx2, avx512;
};

// __builtin_cpu_supports also checks that the OS saves the wider registers (XGETBV).
#define S4OP_CPU_HAS(feature) __builtin_cpu_supports(feature)
const X86Levels& x86_levels() {
  static const X86Levels levels = [] {
    __builtin_cpu_init();  // needed before the first query if it ran from a static constructor
    return X86Levels{S4OP_ISA_AVX2(S4OP_CPU_HAS, &&), S4OP_ISA_AVX512(S4OP_CPU_HAS, &&)};
  }();
  return levels;
}
#undef S4OP_CPU_HAS
#endif

}  // namespace

bool simd_is_generic() { return S4OP_SIMD_VECTORS == 0; }

const char* simd_path_name(SimdPath path) {
  switch (path) {
    case SimdPath::kScalar:
      return simd_is_generic() ? "generic" : "scalar";
    case SimdPath::kVec128:
#if S4OP_SIMD_X86
      return "sse2";
#else
      return "vec128";  // the NEON slot would say "neon"
#endif
    case SimdPath::kAVX2:
      return "avx2+fma";
    case SimdPath::kAVX512:
      return "avx512";
  }
  return "unknown";
}

bool simd_path_supported(SimdPath path) {
  switch (path) {
    case SimdPath::kScalar:
      return true;
#if S4OP_SIMD_X86
    case SimdPath::kVec128:
      return true;  // SSE2 is the x86-64 baseline (on i386 the compiler lowers the vectors to what the flags allow)
    case SimdPath::kAVX2:
      return x86_levels().avx2;
    case SimdPath::kAVX512:
      return x86_levels().avx512;
#endif
      // NEON slot: case SimdPath::kVec128: return true (NEON is part of the AArch64 baseline).
    default:
      return false;
  }
}

}  // namespace cpu
}  // namespace s4op
