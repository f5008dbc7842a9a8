// s4op_kernels._C: the one binding layer over the torch-free core.  Every entry point validates its
// arguments and turns C++ exceptions into Python exceptions; nothing here may crash the interpreter.
#include <pybind11/pybind11.h>

#include "s4op/build_info.h"

namespace py = pybind11;

PYBIND11_MODULE(_C, m) {
  m.doc() = "Compiled core of s4op_kernels (torch-free C++17 kernels).";

  m.def(
      "build_info",
      []() {
        const s4op::BuildInfo info = s4op::build_info();
        py::dict d;
        d["compiler"] = info.compiler;
        d["cxx_flags"] = info.cxx_flags;
        d["build_type"] = info.build_type;
        d["simd"] = info.simd;
        d["threading"] = info.threading;
        d["sanitized"] = info.sanitized;
        return d;
      },
      "Compiler, flags, build type, SIMD level chosen at build time and threading backend of the core.");
}
