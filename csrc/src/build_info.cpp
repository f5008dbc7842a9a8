#include "s4op/build_info.h"

#include "s4op/parallel.h"
#include "simd.h"

namespace s4op {
namespace {

// Decided by the compiler's predefined macros, i.e. what the flags allowed, not what the running
// CPU supports (S4OP_NATIVE is off by default so wheels stay portable).  The generic build (no SIMD
// code of ours, whatever the compiler may vectorize) says "generic".
const char* simd_level() {
#if !S4OP_SIMD_VECTORS
  return "generic";
#elif defined(__AVX512F__)
  return "AVX512";
#elif defined(__AVX2__) && defined(__FMA__)
  return "AVX2+FMA";
#elif defined(__AVX2__)
  return "AVX2";
#elif defined(__AVX__)
  return "AVX";
#elif defined(__SSE4_2__)
  return "SSE4.2";
#elif defined(__SSE2__) || defined(_M_X64)
  return "SSE2";
#elif defined(__ARM_FEATURE_SVE)
  return "SVE";
#elif defined(__ARM_NEON) || defined(__ARM_NEON__)
  return "NEON";
#else
  return "scalar";
#endif
}

}  // namespace

BuildInfo build_info() {
  BuildInfo info;
  info.compiler = S4OP_COMPILER;
  info.cxx_flags = S4OP_CXX_FLAGS;
  info.build_type = S4OP_BUILD_TYPE;
  info.simd = simd_level();
  info.threading = kThreadingBackend;
#if defined(__SANITIZE_ADDRESS__)
  info.sanitized = true;
#else
  info.sanitized = false;
#endif
  return info;
}

}  // namespace s4op
