// Facts about how the core was compiled, reported by s4op_kernels._C.build_info().
#pragma once

#include <string>

namespace s4op {

struct BuildInfo {
  std::string compiler;    // e.g. "GNU 12.2.0"
  std::string cxx_flags;   // flags the core was compiled with
  std::string build_type;  // CMake build type
  std::string simd;        // highest SIMD level the compiler was allowed to target; "generic" in the
                           // generic build (S4OP_SIMD=generic, or auto on a target other than x86)
  std::string threading;   // threading backend of parallel_for
  bool sanitized;          // built with ASan/UBSan
};

BuildInfo build_info();

}  // namespace s4op
