// The instruction-set levels of the core and the one place that asks the CPU which of them it runs.
// Every kernel with SIMD code (fft.cpp, s4d_kernel.cpp, the GELU epilogue of sparse_fftconv.cpp) has one
// entry point per level it implements and picks among them with simd_path_supported(), so all of them
// mean the same thing by "AVX2" or "AVX-512".  The vector types and the build configuration behind the
// levels are in csrc/src/simd.h.
#pragma once

namespace s4op {
namespace cpu {

// Narrowest first; the values are part of the API (fft.h's FFTPath is this enum).
enum class SimdPath : int {
  kScalar = 0,  // portable C++, one lane; the only path of the generic build (S4OP_SIMD=generic)
  kVec128 = 1,  // 128-bit vectors: SSE2 on x86 (the x86-64 baseline); the slot for NEON (not written yet)
  kAVX2 = 2,    // x86 AVX2 + FMA, chosen at run time
  kAVX512 = 3,  // x86 AVX-512 F + DQ + BW + VL (with AVX2 + FMA), chosen at run time
};

// "scalar", "sse2", "avx2+fma", "avx512"; kScalar is "generic" in a build without any SIMD code
// (S4OP_SIMD=generic, or auto on a target other than x86).  "unknown" for a value outside the enum.
const char* simd_path_name(SimdPath path);

// Whether this build contains the path and the running CPU (and OS) can execute it; kScalar always
// can.  Detected once per process.  A kernel may implement fewer paths (s4d_kernel has no kVec128).
bool simd_path_supported(SimdPath path);

// Whether this build has no SIMD code at all (the generic configuration).
bool simd_is_generic();

}  // namespace cpu
}  // namespace s4op
