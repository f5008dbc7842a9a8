// The SIMD levels of cpu_features.h and how every kernel reports them: one definition of each level
// (a kernel never runs a path the detection unit refuses), the generic build's single path, names.
#include "s4op/cpu_features.h"

#include <cstdio>
#include <string>

#include "check.h"
#include "s4op/build_info.h"
#include "s4op/fft.h"
#include "s4op/s4d_kernel.h"
#include "s4op/sparse_fftconv.h"

namespace {

using s4op::cpu::SimdPath;

const SimdPath kPaths[] = {SimdPath::kScalar, SimdPath::kVec128, SimdPath::kAVX2, SimdPath::kAVX512};

// The widest path of all that this build and CPU run.
SimdPath widest() {
  SimdPath best = SimdPath::kScalar;
  for (SimdPath p : kPaths) {
    if (s4op::cpu::simd_path_supported(p)) best = p;
  }
  return best;
}

}  // namespace

int main() {
  using namespace s4op::cpu;
  const bool generic = simd_is_generic();
  for (SimdPath p : kPaths) {
    std::printf("path %-8s %s\n", simd_path_name(p), simd_path_supported(p) ? "supported" : "not supported here");
    // Every kernel asks the same unit: the FFT runs exactly the supported paths, s4d_kernel a subset.
    S4OP_CHECK(fft_path_supported(p) == simd_path_supported(p));
    S4OP_CHECK(std::string(fft_path_name(p)) == simd_path_name(p));
    if (s4op::cpu::detail::s4d_isa_supported(p)) S4OP_CHECK(simd_path_supported(p));
  }
  S4OP_CHECK(simd_path_supported(SimdPath::kScalar));
  S4OP_CHECK(!simd_path_supported(static_cast<SimdPath>(7)));
  S4OP_CHECK(std::string(simd_path_name(static_cast<SimdPath>(7))) == "unknown");
  S4OP_CHECK(!s4op::cpu::detail::s4d_isa_supported(SimdPath::kVec128));  // s4d_kernel has no such path
  // AVX-512 (F, DQ, BW, VL) is defined to include AVX2 + FMA.
  if (simd_path_supported(SimdPath::kAVX512)) S4OP_CHECK(simd_path_supported(SimdPath::kAVX2));

  // The FFT plan of a length every path suits takes the widest supported path.
  S4OP_CHECK(get_real_fft<float>(8192)->path() == widest());

  const std::string s4d = s4d_kernel_isa(), gelu = gelu_f32_isa(), simd = s4op::build_info().simd;
  std::printf("build: %s; runtime: fft %s, s4d_kernel %s, gelu %s\n", simd.c_str(),
              fft_path_name(get_real_fft<float>(8192)->path()), s4d.c_str(), gelu.c_str());
  if (generic) {
    // No SIMD code at all: one path, and everything says so.
    for (SimdPath p : kPaths) S4OP_CHECK(simd_path_supported(p) == (p == SimdPath::kScalar));
    S4OP_CHECK(std::string(simd_path_name(SimdPath::kScalar)) == "generic");
    S4OP_CHECK(simd == "generic" && s4d == "generic" && gelu == "generic");
  } else {
    S4OP_CHECK(std::string(simd_path_name(SimdPath::kScalar)) == "scalar");
    S4OP_CHECK(simd != "generic");
    S4OP_CHECK(s4d == "avx512" || s4d == "avx2+fma" || s4d == "scalar");
    S4OP_CHECK(gelu == "avx512" || gelu == "avx2+fma" || gelu == "scalar");
    // The kernels with the same paths pick the same one.
    const SimdPath vec = simd_path_supported(SimdPath::kAVX512) ? SimdPath::kAVX512
                         : simd_path_supported(SimdPath::kAVX2) ? SimdPath::kAVX2
                                                                : SimdPath::kScalar;
    S4OP_CHECK(gelu == simd_path_name(vec));
    S4OP_CHECK(s4d == simd_path_name(vec));
  }
  S4OP_TEST_MAIN_END();
}
