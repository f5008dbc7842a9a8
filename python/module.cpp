// s4op_kernels._C: the one binding layer over the torch-free core.  (This folder, python/, holds that C++
// binding, not Python code; its type stub is s4op_kernels/_C.pyi, and docs/design.md has the three storeys.)  Arrays arrive as NumPy arrays (the
// Python side passes zero-copy views of CPU tensors), so the binding needs no torch.  Every entry point
// validates its arguments (type, dtype, rank, shape, contiguity, writeability, aliasing) and raises
// TypeError / ValueError; errors of the core (std::invalid_argument) become ValueError.  The GIL is
// released while the core runs.  Nothing here may crash the interpreter.
#include <dlfcn.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <complex>
#include <cstring>
#include <cstdint>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "s4op/block_ops.h"
#include "s4op/build_info.h"
#include "s4op/dplr_kernel.h"
#include "s4op/fft.h"
#include "s4op/glu_mix.h"
#include "s4op/parallel.h"
#include "s4op/runtime.h"
#include "s4op/s4d_kernel.h"
#include "s4op/sparse_fftconv.h"
#include "s4op/ssm_step.h"

namespace py = pybind11;

namespace {

// ---- running the core's parallel sections on torch's OpenMP threads (see parallel.h for why).
// GOMP_parallel is the libgomp entry point that `#pragma omp parallel` compiles to (stable since
// GCC 4.9, also exported by LLVM's libomp and Intel's libiomp5 for compatibility).  It is looked up in
// the library the caller names, which must already be loaded, so the core joins torch's own team
// instead of loading a second OpenMP runtime.
using GompParallelFn = void (*)(void (*)(void*), void*, unsigned, unsigned);
GompParallelFn gomp_parallel = nullptr;
std::string openmp_library;

void gomp_fork_join(void (*body)(void*), void* ctx, unsigned num_threads) {
  gomp_parallel(body, ctx, num_threads, 0u);
}
const s4op::HostRuntime openmp_runtime{"OpenMP (torch's threads)", &gomp_fork_join};

std::string use_openmp(const std::string& path) {
  void* handle = dlopen(path.c_str(), RTLD_LAZY | RTLD_NOLOAD);
  if (!handle) {
    throw std::invalid_argument("use_openmp: library " + path +
                                " is not loaded in this process (only a runtime torch already uses may be joined)");
  }
  void* sym = dlsym(handle, "GOMP_parallel");
  if (!sym) {
    dlclose(handle);
    throw std::invalid_argument("use_openmp: " + path + " does not export GOMP_parallel");
  }
  // The handle is kept (never dlclosed) so the runtime stays mapped while it is installed.
  s4op::set_host_runtime(nullptr);
  gomp_parallel = reinterpret_cast<GompParallelFn>(sym);
  openmp_library = path;
  s4op::set_host_runtime(&openmp_runtime);
  return s4op::current_threading_backend();
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + (s.size() == 1 ? ",)" : ")");
}

// A validated view of a NumPy argument.
struct Arr {
  py::array a;
  std::vector<int64_t> shape;
  template <typename T>
  T* data() {
    return static_cast<T*>(a.mutable_data());
  }
  template <typename T>
  const T* cdata() const {
    return static_cast<const T*>(a.data());
  }
  const char* begin() const { return static_cast<const char*>(a.data()); }
  const char* end() const { return begin() + a.nbytes(); }
};

Arr check_array(const py::handle& obj, const char* name, int ndim, bool writeable = false) {
  if (!py::isinstance<py::array>(obj)) {
    throw py::type_error(std::string(name) + ": expected a numpy array, got " +
                         std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
  }
  Arr r{py::reinterpret_borrow<py::array>(obj), {}};
  if (r.a.ndim() != ndim) {
    throw py::value_error(std::string(name) + ": expected a " + std::to_string(ndim) + "-D array, got " +
                          std::to_string(r.a.ndim()) + "-D");
  }
  for (int i = 0; i < ndim; ++i) r.shape.push_back(static_cast<int64_t>(r.a.shape(i)));
  if (!(r.a.flags() & py::array::c_style)) {
    throw py::value_error(std::string(name) + ": must be C-contiguous (call .contiguous() first)");
  }
  if (!(r.a.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_)) {
    throw py::value_error(std::string(name) + ": must be aligned");
  }
  if (writeable && !r.a.writeable()) throw py::value_error(std::string(name) + ": must be writeable");
  return r;
}

template <typename T>
void check_dtype(const Arr& r, const char* name, const char* expected) {
  if (!r.a.dtype().is(py::dtype::of<T>())) {
    throw py::type_error(std::string(name) + ": expected " + expected + ", got " +
                         std::string(py::str(r.a.dtype())));
  }
}

void check_shape(const Arr& r, const char* name, const std::vector<int64_t>& expected) {
  if (r.shape != expected) {
    throw py::value_error(std::string(name) + ": expected shape " + shape_str(expected) + ", got " +
                          shape_str(r.shape));
  }
}

void check_threads(int num_threads) {
  if (num_threads < 1) throw py::value_error("num_threads must be >= 1, got " + std::to_string(num_threads));
}

bool overlaps(const Arr& x, const Arr& y) { return x.a.nbytes() && y.a.nbytes() && x.begin() < y.end() && y.begin() < x.end(); }

bool is_float32(const Arr& r) { return r.a.dtype().is(py::dtype::of<float>()); }
bool is_float64(const Arr& r) { return r.a.dtype().is(py::dtype::of<double>()); }

s4op::cpu::Epilogue parse_activation(const std::string& activation) {
  if (activation == "none") return s4op::cpu::Epilogue::identity;
  if (activation == "gelu") return s4op::cpu::Epilogue::gelu;
  throw py::value_error("activation: expected 'none' or 'gelu', got '" + activation + "'");
}

template <typename T>
void sparse_fftconv_typed(Arr& u, Arr& k_f, Arr& D, Arr& active, int64_t n_fft, Arr& out, int num_threads,
                          s4op::cpu::Epilogue epilogue, const std::optional<double>& extra_value,
                          const char* real_name, const char* complex_name) {
  check_dtype<std::complex<T>>(k_f, "k_f", complex_name);
  check_dtype<T>(D, "D", real_name);
  check_dtype<T>(out, "out", real_name);
  const int64_t B = u.shape[0], H = u.shape[1], L = u.shape[2], A = active.shape[0];
  if (n_fft < 1) throw py::value_error("n_fft must be >= 1, got " + std::to_string(n_fft));
  check_shape(k_f, "k_f", {A, n_fft / 2 + 1});
  check_shape(D, "D", {A});
  // out is (B, H, L), or (B, H', L) with H' > H: the op fills channels [0, H) of each batch and leaves the
  // rest alone, or sets it to extra_value (a channel of ones there folds a bias into the GEMM that follows).
  if (out.shape[0] != B || out.shape[2] != L || out.shape[1] < H) {
    throw py::value_error("out: expected shape (" + std::to_string(B) + ", H' >= " + std::to_string(H) + ", " +
                          std::to_string(L) + "), got " + shape_str(out.shape));
  }
  if (overlaps(out, u)) throw py::value_error("out must not overlap u");
  const int64_t out_batch_stride = out.shape[1] * L;
  const T* pu = u.cdata<T>();
  const std::complex<T>* pk = k_f.cdata<std::complex<T>>();
  const T* pd = D.cdata<T>();
  const int64_t* pa = active.cdata<int64_t>();
  T* py_ = out.data<T>();
  // The core fills channels [H, H') inside its parallel loop, after validating everything: a refused call
  // leaves out untouched.
  const T extra = static_cast<T>(extra_value.value_or(0.0));
  const T* pextra = extra_value ? &extra : nullptr;  // {1} or null
  py::gil_scoped_release release;
  if constexpr (std::is_same_v<T, float>) {
    s4op::cpu::sparse_fftconv_f32(pu, pk, pd, pa, B, H, L, A, n_fft, py_, num_threads, epilogue, out_batch_stride,
                                  pextra);
  } else {
    s4op::cpu::sparse_fftconv_f64(pu, pk, pd, pa, B, H, L, A, n_fft, py_, num_threads, epilogue, out_batch_stride,
                                  pextra);
  }
}

void sparse_fftconv(const py::handle& u_, const py::handle& k_f_, const py::handle& D_, const py::handle& active_,
                    int64_t n_fft, const py::handle& out_, int num_threads, const std::string& activation,
                    const std::optional<double>& extra_value) {
  const s4op::cpu::Epilogue epilogue = parse_activation(activation);
  Arr u = check_array(u_, "u", 3);
  Arr k_f = check_array(k_f_, "k_f", 2);
  Arr D = check_array(D_, "D", 1);
  Arr active = check_array(active_, "active", 1);
  Arr out = check_array(out_, "out", 3, /*writeable=*/true);
  check_dtype<int64_t>(active, "active", "int64");
  check_threads(num_threads);
  if (is_float32(u)) {
    sparse_fftconv_typed<float>(u, k_f, D, active, n_fft, out, num_threads, epilogue, extra_value,
                                "float32", "complex64 (u is float32)");
  } else if (is_float64(u)) {
    sparse_fftconv_typed<double>(u, k_f, D, active, n_fft, out, num_threads, epilogue, extra_value,
                                 "float64", "complex128 (u is float64)");
  } else {
    throw py::type_error("u: expected float32 or float64, got " + std::string(py::str(u.a.dtype())));
  }
}

template <typename T>
void s4d_kernel_typed(Arr& C, Arr& log_dt, Arr& log_A_real, Arr& A_imag, Arr& rows, int64_t L, Arr& out,
                      int num_threads, const char* name) {
  check_dtype<T>(log_dt, "log_dt", name);
  check_dtype<T>(log_A_real, "log_A_real", name);
  check_dtype<T>(A_imag, "A_imag", name);
  check_dtype<T>(out, "out", name);
  const int64_t H = C.shape[0], N2 = C.shape[1], A = rows.shape[0];
  if (C.shape[2] != 2) throw py::value_error("C: expected shape (H, N2, 2) (real view of complex), got " + shape_str(C.shape));
  check_shape(log_dt, "log_dt", {H});
  check_shape(log_A_real, "log_A_real", {H, N2});
  check_shape(A_imag, "A_imag", {H, N2});
  if (L < 0) throw py::value_error("L must be >= 0, got " + std::to_string(L));
  check_shape(out, "out", {A, L});
  for (const Arr* in : {&C, &log_dt, &log_A_real, &A_imag, &rows}) {
    if (overlaps(out, *in)) throw py::value_error("out must not overlap the parameters or rows");
  }
  const T *pc = C.cdata<T>(), *pdt = log_dt.cdata<T>(), *pre = log_A_real.cdata<T>(), *pim = A_imag.cdata<T>();
  const int64_t* pr = rows.cdata<int64_t>();
  T* pk = out.data<T>();
  py::gil_scoped_release release;
  if constexpr (std::is_same_v<T, float>) {
    s4op::cpu::s4d_kernel_f32(pc, pdt, pre, pim, H, N2, pr, A, L, pk, num_threads);
  } else {
    s4op::cpu::s4d_kernel_f64(pc, pdt, pre, pim, H, N2, pr, A, L, pk, num_threads);
  }
}

void s4d_kernel(const py::handle& C_, const py::handle& log_dt_, const py::handle& log_A_real_,
                const py::handle& A_imag_, const py::handle& rows_, int64_t L, const py::handle& out_,
                int num_threads) {
  Arr C = check_array(C_, "C", 3);
  Arr log_dt = check_array(log_dt_, "log_dt", 1);
  Arr log_A_real = check_array(log_A_real_, "log_A_real", 2);
  Arr A_imag = check_array(A_imag_, "A_imag", 2);
  Arr rows = check_array(rows_, "rows", 1);
  Arr out = check_array(out_, "out", 2, /*writeable=*/true);
  check_dtype<int64_t>(rows, "rows", "int64");
  check_threads(num_threads);
  if (is_float32(C)) {
    s4d_kernel_typed<float>(C, log_dt, log_A_real, A_imag, rows, L, out, num_threads, "float32 (C is float32)");
  } else if (is_float64(C)) {
    s4d_kernel_typed<double>(C, log_dt, log_A_real, A_imag, rows, L, out, num_threads, "float64 (C is float64)");
  } else {
    throw py::type_error("C: expected float32 or float64, got " + std::string(py::str(C.a.dtype())));
  }
}


template <typename T>
void dplr_spectrum_typed(Arr& log_dt, Arr& A_real, Arr& A_imag, Arr& B, Arr& P, Arr& C, Arr& rows, int64_t M,
                         int64_t L, int64_t n_fft, Arr& out, int num_threads, const char* name) {
  for (auto [arr, nm] : {std::pair<Arr*, const char*>{&log_dt, "log_dt"}, {&A_real, "A_real"}, {&A_imag, "A_imag"},
                         {&B, "B"}, {&P, "P"}, {&out, "out"}}) {
    check_dtype<T>(*arr, nm, name);
  }
  const int64_t H = C.shape[0], N2 = C.shape[1], A = rows.shape[0];
  if (C.shape[2] != 2) throw py::value_error("C: expected shape (H, N2, 2) (real view of complex), got " + shape_str(C.shape));
  check_shape(log_dt, "log_dt", {H});
  check_shape(A_real, "A_real", {H, N2});
  check_shape(A_imag, "A_imag", {H, N2});
  check_shape(B, "B", {H, N2, 2});
  check_shape(P, "P", {H, N2, 2});
  if (M < 1) throw py::value_error("M must be >= 1, got " + std::to_string(M));
  if (n_fft < 0) throw py::value_error("n_fft must be >= 0, got " + std::to_string(n_fft));
  check_shape(out, "out", {A, (n_fft ? n_fft : M) / 2 + 1, 2});
  // rows too: the core reads it while it writes out.
  for (const Arr* in : {&log_dt, &A_real, &A_imag, &B, &P, &C, &rows}) {
    if (overlaps(out, *in)) throw py::value_error("out must not overlap the parameters or rows");
  }
  const T *p0 = log_dt.cdata<T>(), *p1 = A_real.cdata<T>(), *p2 = A_imag.cdata<T>(), *p3 = B.cdata<T>(),
          *p4 = P.cdata<T>(), *p5 = C.cdata<T>();
  const int64_t* pr = rows.cdata<int64_t>();
  T* po = out.data<T>();
  py::gil_scoped_release release;
  if (n_fft == 0) {
    if constexpr (std::is_same_v<T, float>) {
      s4op::cpu::dplr_spectrum_f32(p0, p1, p2, p3, p4, p5, H, N2, pr, A, M, po, num_threads);
    } else {
      s4op::cpu::dplr_spectrum_f64(p0, p1, p2, p3, p4, p5, H, N2, pr, A, M, po, num_threads);
    }
  } else if constexpr (std::is_same_v<T, float>) {
    s4op::cpu::dplr_conv_spectrum_f32(p0, p1, p2, p3, p4, p5, H, N2, pr, A, M, L, n_fft, po, num_threads);
  } else {
    s4op::cpu::dplr_conv_spectrum_f64(p0, p1, p2, p3, p4, p5, H, N2, pr, A, M, L, n_fft, po, num_threads);
  }
}

void dplr_spectrum(const py::handle& log_dt_, const py::handle& A_real_, const py::handle& A_imag_,
                   const py::handle& B_, const py::handle& P_, const py::handle& C_, const py::handle& rows_, int64_t M,
                   int64_t L, int64_t n_fft, const py::handle& out_, int num_threads) {
  Arr log_dt = check_array(log_dt_, "log_dt", 1);
  Arr A_real = check_array(A_real_, "A_real", 2);
  Arr A_imag = check_array(A_imag_, "A_imag", 2);
  Arr B = check_array(B_, "B", 3);
  Arr P = check_array(P_, "P", 3);
  Arr C = check_array(C_, "C", 3);
  Arr rows = check_array(rows_, "rows", 1);
  Arr out = check_array(out_, "out", 3, /*writeable=*/true);
  check_dtype<int64_t>(rows, "rows", "int64");
  check_threads(num_threads);
  if (is_float32(C)) {
    dplr_spectrum_typed<float>(log_dt, A_real, A_imag, B, P, C, rows, M, L, n_fft, out, num_threads, "float32 (C is float32)");
  } else if (is_float64(C)) {
    dplr_spectrum_typed<double>(log_dt, A_real, A_imag, B, P, C, rows, M, L, n_fft, out, num_threads, "float64 (C is float64)");
  } else {
    throw py::type_error("C: expected float32 or float64, got " + std::string(py::str(C.a.dtype())));
  }
}

// ---- the recurrent step (ssm_step.h): coefficient set-ups, one sample, and a chunk's state part.
template <typename T>
void check_all_dtype(std::initializer_list<std::pair<Arr*, const char*>> arrs, const char* name) {
  for (auto [arr, nm] : arrs) check_dtype<T>(*arr, nm, name);
}

template <typename T>
void step_setup_typed(bool dplr, std::vector<Arr>& p, Arr& rows, Arr& modes, Arr& scalars, const char* name) {
  static const char* s4d_names[] = {"C", "log_dt", "log_A_real", "A_imag", "D"};
  static const char* dplr_names[] = {"log_dt", "A_real", "A_imag", "B", "P", "C_f", "D"};
  const char** names = dplr ? dplr_names : s4d_names;
  for (size_t i = 0; i < p.size(); ++i) check_dtype<T>(p[i], names[i], name);
  check_dtype<T>(modes, "modes", name);
  check_dtype<T>(scalars, "scalars", name);
  const Arr& C = dplr ? p[5] : p[0];
  const char* cname = dplr ? "C_f" : "C";
  if (C.shape[2] != 2) {
    throw py::value_error(std::string(cname) + ": expected shape (H, N2, 2) (real view of complex), got " +
                          shape_str(C.shape));
  }
  const int64_t H = C.shape[0], N2 = C.shape[1], A = rows.shape[0];
  if (dplr) {
    check_shape(p[0], "log_dt", {H});
    check_shape(p[1], "A_real", {H, N2});
    check_shape(p[2], "A_imag", {H, N2});
    check_shape(p[3], "B", {H, N2, 2});
    check_shape(p[4], "P", {H, N2, 2});
    check_shape(p[6], "D", {H});
  } else {
    check_shape(p[1], "log_dt", {H});
    check_shape(p[2], "log_A_real", {H, N2});
    check_shape(p[3], "A_imag", {H, N2});
    check_shape(p[4], "D", {H});
  }
  const int64_t fields = dplr ? s4op::cpu::kStepFieldsDplr : s4op::cpu::kStepFieldsDiag;
  check_shape(modes, "modes", {A, fields, 2, N2});
  check_shape(scalars, "scalars", {A, s4op::cpu::kStepScalars});
  for (Arr* out : {&modes, &scalars}) {
    for (const Arr& in : p) {
      if (overlaps(*out, in)) throw py::value_error("modes and scalars must not overlap the parameters");
    }
    if (overlaps(*out, rows)) throw py::value_error("modes and scalars must not overlap rows");
  }
  if (overlaps(modes, scalars)) throw py::value_error("modes and scalars must not overlap");
  std::vector<const T*> q;
  for (const Arr& a : p) q.push_back(a.cdata<T>());
  const int64_t* pr = rows.cdata<int64_t>();
  T *pm = modes.data<T>(), *ps = scalars.data<T>();
  py::gil_scoped_release release;
  if (dplr) {
    if constexpr (std::is_same_v<T, float>) {
      s4op::cpu::dplr_step_setup_f32(q[0], q[1], q[2], q[3], q[4], q[5], q[6], H, N2, pr, A, pm, ps);
    } else {
      s4op::cpu::dplr_step_setup_f64(q[0], q[1], q[2], q[3], q[4], q[5], q[6], H, N2, pr, A, pm, ps);
    }
  } else if constexpr (std::is_same_v<T, float>) {
    s4op::cpu::s4d_step_setup_f32(q[0], q[1], q[2], q[3], q[4], H, N2, pr, A, pm, ps);
  } else {
    s4op::cpu::s4d_step_setup_f64(q[0], q[1], q[2], q[3], q[4], H, N2, pr, A, pm, ps);
  }
}

void step_setup(bool dplr, const std::vector<py::handle>& params, const py::handle& rows_, const py::handle& modes_,
                const py::handle& scalars_) {
  static const char* s4d_names[] = {"C", "log_dt", "log_A_real", "A_imag", "D"};
  static const char* dplr_names[] = {"log_dt", "A_real", "A_imag", "B", "P", "C_f", "D"};
  static const int s4d_ndim[] = {3, 1, 2, 2, 1};
  static const int dplr_ndim[] = {1, 2, 2, 3, 3, 3, 1};
  std::vector<Arr> p;
  for (size_t i = 0; i < params.size(); ++i) {
    p.push_back(check_array(params[i], dplr ? dplr_names[i] : s4d_names[i], dplr ? dplr_ndim[i] : s4d_ndim[i]));
  }
  Arr rows = check_array(rows_, "rows", 1);
  check_dtype<int64_t>(rows, "rows", "int64");
  Arr modes = check_array(modes_, "modes", 4, /*writeable=*/true);
  Arr scalars = check_array(scalars_, "scalars", 2, /*writeable=*/true);
  const Arr& C = dplr ? p[5] : p[0];
  if (is_float32(C)) {
    step_setup_typed<float>(dplr, p, rows, modes, scalars, dplr ? "float32 (C_f is float32)" : "float32 (C is float32)");
  } else if (is_float64(C)) {
    step_setup_typed<double>(dplr, p, rows, modes, scalars, dplr ? "float64 (C_f is float64)" : "float64 (C is float64)");
  } else {
    throw py::type_error(std::string(dplr ? "C_f" : "C") + ": expected float32 or float64, got " +
                         std::string(py::str(C.a.dtype())));
  }
}

// modes (A, fields, 2, N2), scalars (A, 3), active (A,) int64; u: (B, H) (step) or (B, H, L) (chunk); x, x_out:
// (B, A, N2, 2), x_out x itself or not overlapping it; out: y (B, H) (step) or y_free (B, A, L) (chunk).
template <typename T>
void step_run_typed(bool chunk, Arr& modes, Arr& scalars, Arr& active, Arr& u, Arr& x, Arr& x_out, Arr& out,
                    int num_threads, s4op::cpu::Epilogue epilogue, const char* name) {
  check_all_dtype<T>({{&scalars, "scalars"}, {&u, "u"}, {&x, "x"}, {&x_out, "x_out"}, {&out, chunk ? "y_free" : "y"}},
                     name);
  const int64_t A = modes.shape[0], fields = modes.shape[1], N2 = modes.shape[3];
  if ((fields != s4op::cpu::kStepFieldsDiag && fields != s4op::cpu::kStepFieldsDplr) || modes.shape[2] != 2) {
    throw py::value_error("modes: expected shape (A, 3 or 7, 2, N2), got " + shape_str(modes.shape));
  }
  check_shape(scalars, "scalars", {A, s4op::cpu::kStepScalars});
  check_shape(active, "active", {A});
  const int64_t B = u.shape[0], H = u.shape[1], L = chunk ? u.shape[2] : 1;
  check_shape(x, "x", {B, A, N2, 2});
  check_shape(x_out, "x_out", {B, A, N2, 2});
  if (chunk) {
    check_shape(out, "y_free", {B, A, L});
  } else {
    check_shape(out, "y", {B, H});
  }
  const bool same_state = x.begin() == x_out.begin();
  if (!same_state && overlaps(x, x_out)) throw py::value_error("x_out must be x itself or not overlap it");
  for (const Arr* in : {&modes, &scalars, &active}) {
    if (overlaps(*in, x_out) || overlaps(*in, out)) throw py::value_error("x_out and the output must not overlap the "
                                                                          "coefficients or active");
  }
  for (const Arr* in : {&u, &x, &x_out}) {
    if (overlaps(*in, out)) throw py::value_error("the output must not overlap u, x or x_out");
  }
  if (overlaps(u, x_out)) throw py::value_error("x_out must not overlap u");
  const T *pm = modes.cdata<T>(), *ps = scalars.cdata<T>(), *pu = u.cdata<T>(), *px = x.cdata<T>();
  const int64_t* pa = active.cdata<int64_t>();
  T *pxo = x_out.data<T>(), *po = out.data<T>();
  const int f = static_cast<int>(fields);
  py::gil_scoped_release release;
  if (chunk) {
    if constexpr (std::is_same_v<T, float>) {
      s4op::cpu::ssm_chunk_state_f32(pm, ps, f, pa, B, H, A, N2, L, pu, px, pxo, po, num_threads);
    } else {
      s4op::cpu::ssm_chunk_state_f64(pm, ps, f, pa, B, H, A, N2, L, pu, px, pxo, po, num_threads);
    }
  } else if constexpr (std::is_same_v<T, float>) {
    s4op::cpu::ssm_step_f32(pm, ps, f, pa, B, H, A, N2, pu, px, pxo, po, epilogue, num_threads);
  } else {
    s4op::cpu::ssm_step_f64(pm, ps, f, pa, B, H, A, N2, pu, px, pxo, po, epilogue, num_threads);
  }
}

void step_run(bool chunk, const py::handle& modes_, const py::handle& scalars_, const py::handle& active_,
              const py::handle& u_, const py::handle& x_, const py::handle& x_out_, const py::handle& out_,
              int num_threads, const std::string& activation) {
  const s4op::cpu::Epilogue epilogue = parse_activation(activation);
  Arr modes = check_array(modes_, "modes", 4);
  Arr scalars = check_array(scalars_, "scalars", 2);
  Arr active = check_array(active_, "active", 1);
  Arr u = check_array(u_, "u", chunk ? 3 : 2);
  Arr x = check_array(x_, "x", 4);
  Arr x_out = check_array(x_out_, "x_out", 4, /*writeable=*/true);
  Arr out = check_array(out_, chunk ? "y_free" : "y", chunk ? 3 : 2, /*writeable=*/true);
  check_dtype<int64_t>(active, "active", "int64");
  check_threads(num_threads);
  if (is_float32(modes)) {
    step_run_typed<float>(chunk, modes, scalars, active, u, x, x_out, out, num_threads, epilogue,
                          "float32 (modes is float32)");
  } else if (is_float64(modes)) {
    step_run_typed<double>(chunk, modes, scalars, active, u, x, x_out, out, num_threads, epilogue,
                           "float64 (modes is float64)");
  } else {
    throw py::type_error("modes: expected float32 or float64, got " + std::string(py::str(modes.a.dtype())));
  }
}

// True iff a[i] and b[i] hold the same bytes for every i.  Each array is a 2-D uint8 view of a tensor's bytes,
// one row per leading index; rows must be contiguous (inner stride 1), the row stride is free, so a copy may
// live inside a larger matrix (the folded [W | b] of the output mixing holds the copies of W and b).  The
// layers' caches use it to check, on every inference forward, that the tensors a cached value was built from
// still hold exactly the bytes it was built from (an in-place edit through .data bypasses the version
// counter).  Reads only the arrays' own buffers, so no argument can make it read foreign memory.
bool same_bytes(const py::sequence& a, const py::sequence& b) {
  const size_t n = py::len(a);
  if (py::len(b) != n) return false;
  for (size_t i = 0; i < n; ++i) {
    const py::handle x = a[i], y = b[i];
    for (const py::handle& h : {x, y}) {
      if (!py::isinstance<py::array>(h)) {
        throw py::type_error("same_bytes: expected sequences of numpy arrays, got " +
                             std::string(py::str(py::type::handle_of(h).attr("__name__"))));
      }
    }
    const auto xa = py::reinterpret_borrow<py::array>(x), ya = py::reinterpret_borrow<py::array>(y);
    for (const py::array* arr : {&xa, &ya}) {
      if (arr->ndim() != 2 || arr->itemsize() != 1 || (arr->shape(1) > 1 && arr->strides(1) != 1) ||
          arr->strides(0) < 0) {
        throw py::value_error("same_bytes: expected 2-D uint8 arrays with contiguous rows");
      }
    }
    if (xa.shape(0) != ya.shape(0) || xa.shape(1) != ya.shape(1)) return false;
    const auto rows = static_cast<size_t>(xa.shape(0)), cols = static_cast<size_t>(xa.shape(1));
    if (!rows || !cols) continue;
    const auto* px = static_cast<const char*>(xa.data());
    const auto* py_ = static_cast<const char*>(ya.data());
    const auto sx = static_cast<size_t>(xa.strides(0)), sy = static_cast<size_t>(ya.strides(0));
    if ((rows == 1 || (sx == cols && sy == cols))) {
      if (std::memcmp(px, py_, rows * cols) != 0) return false;  // both contiguous: one comparison
      continue;
    }
    for (size_t r = 0; r < rows; ++r) {
      if (std::memcmp(px + r * sx, py_ + r * sy, cols) != 0) return false;
    }
  }
  return true;
}

// ---- the post-norm residual block's tail (block_ops.h), float32.
void residual_layer_norm(const py::handle& x_, const py::handle& z_, const py::handle& out_,
                         const py::handle& weight_, const py::handle& bias_, double eps, int num_threads) {
  Arr x = check_array(x_, "x", 3);
  Arr out = check_array(out_, "out", 3, /*writeable=*/true);
  check_dtype<float>(x, "x", "float32");
  check_dtype<float>(out, "out", "float32");
  check_threads(num_threads);
  const int64_t B = x.shape[0], H = x.shape[1], L = x.shape[2];
  if (H < 1) throw py::value_error("x: expected shape (B, H >= 1, L), got " + shape_str(x.shape));
  check_shape(out, "out", x.shape);
  if (!(eps >= 0.0)) throw py::value_error("eps must be >= 0, got " + std::to_string(eps));
  // out may be x or z exactly (an in-place norm), never a partial overlap.
  const auto same_or_disjoint = [&](const Arr& a, const char* name) {
    if (overlaps(out, a) && a.begin() != out.begin()) {
      throw py::value_error(std::string("out must be ") + name + " itself or not overlap it");
    }
  };
  same_or_disjoint(x, "x");
  std::optional<Arr> z, weight, bias;
  if (!z_.is_none()) {
    z = check_array(z_, "z", 3);
    check_dtype<float>(*z, "z", "float32");
    check_shape(*z, "z", x.shape);
    same_or_disjoint(*z, "z");
  }
  for (auto [src, arr, name] : {std::tuple<const py::handle*, std::optional<Arr>*, const char*>{&weight_, &weight, "weight"},
                                {&bias_, &bias, "bias"}}) {
    if (src->is_none()) continue;
    *arr = check_array(*src, name, 1);
    check_dtype<float>(**arr, name, "float32");
    check_shape(**arr, name, {H});
    if (overlaps(out, **arr)) throw py::value_error(std::string("out must not overlap ") + name);
  }
  const float* px = x.cdata<float>();
  const float* pz = z ? z->cdata<float>() : nullptr;
  const float* pw = weight ? weight->cdata<float>() : nullptr;
  const float* pb = bias ? bias->cdata<float>() : nullptr;
  float* po = out.data<float>();
  py::gil_scoped_release release;
  s4op::cpu::residual_layer_norm_f32(px, pz, po, B, H, L, pw, pb, static_cast<float>(eps), num_threads);
}

// ---- the output mixing with its GLU (glu_mix.h), float32: the layers' "fused" mixing route.
void glu_mix_pack(const py::handle& W_, const py::handle& bias_, const py::handle& out_) {
  Arr W = check_array(W_, "W", 2);
  Arr bias = check_array(bias_, "bias", 1);
  Arr out = check_array(out_, "out", 1, /*writeable=*/true);
  check_dtype<float>(W, "W", "float32");
  check_dtype<float>(bias, "bias", "float32");
  check_dtype<float>(out, "out", "float32");
  const int64_t H2 = W.shape[0], K = W.shape[1];
  if (H2 < 2 || H2 % 2 || K < 1) {
    throw py::value_error("W: expected shape (2H, K) with H >= 1, K >= 1, got " + shape_str(W.shape));
  }
  const int64_t H = H2 / 2;
  check_shape(bias, "bias", {H2});
  check_shape(out, "out", {s4op::cpu::glu_mix_packed_size(H, K)});
  if (overlaps(out, W) || overlaps(out, bias)) throw py::value_error("out must not overlap W or bias");
  const float *pw = W.cdata<float>(), *pb = bias.cdata<float>();
  float* po = out.data<float>();
  py::gil_scoped_release release;
  s4op::cpu::glu_mix_pack(pw, pb, H, K, po);
}

void glu_mix(const py::handle& packed_, const py::handle& y_, int64_t H, const py::handle& out_, bool accumulate,
             int num_threads) {
  Arr packed = check_array(packed_, "packed", 1);
  Arr y = check_array(y_, "y", 3);
  Arr out = check_array(out_, "out", 3, /*writeable=*/true);
  check_dtype<float>(packed, "packed", "float32");
  check_dtype<float>(y, "y", "float32");
  check_dtype<float>(out, "out", "float32");
  check_threads(num_threads);
  if (H < 1) throw py::value_error("H must be >= 1, got " + std::to_string(H));
  const int64_t B = y.shape[0], K = y.shape[1], L = y.shape[2];
  if (K < 1) throw py::value_error("y: expected shape (B, K >= 1, L), got " + shape_str(y.shape));
  check_shape(packed, "packed", {s4op::cpu::glu_mix_packed_size(H, K)});
  check_shape(out, "out", {B, H, L});
  if (overlaps(out, y) || overlaps(out, packed)) throw py::value_error("out must not overlap y or packed");
  const float *pp = packed.cdata<float>(), *pyy = y.cdata<float>();
  float* po = out.data<float>();
  py::gil_scoped_release release;
  s4op::cpu::glu_mix_f32(pp, pyy, B, H, K, L, po, accumulate, num_threads);
}

// ---- the torch-free runtime (runtime.h) for tests and benchmarks: the C API behind a small class.
class RuntimeModel {
 public:
  RuntimeModel(const std::string& path, int64_t max_batch, int64_t max_len, int num_threads) {
    char err[1024];
    if (s4op_model_load(path.c_str(), max_batch, max_len, num_threads, &model_, err, sizeof err) != S4OP_OK) {
      throw std::invalid_argument(err);
    }
    s4op_model_get_info(model_, &info_);
  }
  RuntimeModel(const RuntimeModel&) = delete;
  RuntimeModel& operator=(const RuntimeModel&) = delete;
  ~RuntimeModel() { s4op_model_free(model_); }

  py::dict info() const {
    py::dict d;
    d["format_version"] = info_.format_version;
    d["tokens"] = static_cast<bool>(info_.tokens);
    d["in_channels"] = info_.in_channels;
    d["vocab_size"] = info_.vocab_size;
    d["num_classes"] = info_.num_classes;
    d["multilabel"] = static_cast<bool>(info_.multilabel);
    d["d_model"] = info_.d_model;
    d["n_layers"] = info_.n_layers;
    d["max_len"] = info_.max_len;
    d["max_batch"] = info_.max_batch;
    d["active_channels"] = info_.active_channels;
    d["channels"] = info_.channels;
    d["weight_bytes"] = info_.weight_bytes;
    d["arena_bytes"] = info_.arena_bytes;
    d["scratch_bytes"] = info_.scratch_bytes;
    return d;
  }

  // x: (B, L) int64 tokens or (B, L, C) float32, C-contiguous (the Python side converts); out: (B, classes).
  void run(const py::handle& x_, const py::handle& lengths_, const py::handle& out_) {
    Arr x = check_array(x_, "x", info_.tokens ? 2 : 3);
    Arr out = check_array(out_, "out", 2, /*writeable=*/true);
    if (info_.tokens) {
      check_dtype<int64_t>(x, "x", "int64");
    } else {
      check_dtype<float>(x, "x", "float32");
    }
    check_dtype<float>(out, "out", "float32");
    const int64_t B = x.shape[0], L = x.shape[1];
    if (!info_.tokens && x.shape[2] != info_.in_channels) check_shape(x, "x", {B, L, info_.in_channels});
    check_shape(out, "out", {B, info_.num_classes});
    std::optional<Arr> lengths;
    if (!lengths_.is_none()) {
      lengths = check_array(lengths_, "lengths", 1);
      check_dtype<int64_t>(*lengths, "lengths", "int64");
      check_shape(*lengths, "lengths", {B});
    }
    if (overlaps(x, out) || (lengths && overlaps(*lengths, out))) throw py::value_error("out must not overlap x or lengths");
    const void* xp = x.begin();
    const int64_t* lp = lengths ? lengths->cdata<int64_t>() : nullptr;
    float* op = out.data<float>();
    char err[1024];
    int rc;
    {
      py::gil_scoped_release release;
      rc = s4op_model_run(model_, xp, B, L, lp, op, err, sizeof err);
    }
    if (rc != S4OP_OK) throw std::invalid_argument(err);
  }

 const s4op_model* handle() const { return model_; }
  const s4op_model_info& raw_info() const { return info_; }

 private:
  s4op_model* model_ = nullptr;
  s4op_model_info info_{};
};

// A stream over a RuntimeModel (runtime.h's s4op_stream_*); the Python object keeps its model alive.
class RuntimeStream {
 public:
  RuntimeStream(const RuntimeModel& model, int64_t batch) : info_(model.raw_info()), batch_(batch) {
    char err[1024];
    if (s4op_stream_open(model.handle(), batch, &stream_, err, sizeof err) != S4OP_OK) throw std::invalid_argument(err);
  }
  RuntimeStream(const RuntimeStream&) = delete;
  RuntimeStream& operator=(const RuntimeStream&) = delete;
  ~RuntimeStream() { s4op_stream_free(stream_); }

  // x: (B, T) int64 tokens or (B, T, C) float32, C-contiguous, B the stream's batch.
  void push(const py::handle& x_) {
    Arr x = check_array(x_, "x", info_.tokens ? 2 : 3);
    if (info_.tokens) {
      check_dtype<int64_t>(x, "x", "int64");
    } else {
      check_dtype<float>(x, "x", "float32");
      if (x.shape[2] != info_.in_channels) check_shape(x, "x", {batch_, x.shape[1], info_.in_channels});
    }
    if (x.shape[0] != batch_) {
      throw py::value_error("x: expected " + std::to_string(batch_) + " sequences (the stream's batch), got shape " +
                            shape_str(x.shape));
    }
    const void* xp = x.begin();
    const int64_t T = x.shape[1];
    char err[1024];
    int rc;
    {
      py::gil_scoped_release release;
      rc = s4op_stream_push(stream_, xp, T, err, sizeof err);
    }
    if (rc != S4OP_OK) throw std::invalid_argument(err);
  }

  void logits(const py::handle& out_) {
    Arr out = check_array(out_, "out", 2, /*writeable=*/true);
    check_dtype<float>(out, "out", "float32");
    check_shape(out, "out", {batch_, info_.num_classes});
    char err[1024];
    if (s4op_stream_logits(stream_, out.data<float>(), err, sizeof err) != S4OP_OK) throw std::invalid_argument(err);
  }

  void reset() { s4op_stream_reset(stream_); }
  int64_t samples() const { return s4op_stream_samples(stream_); }

 private:
  s4op_stream* stream_ = nullptr;
  s4op_model_info info_{};
  int64_t batch_ = 0;
};

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "Compiled core of s4op_kernels (torch-free C++17 kernels).";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const std::invalid_argument& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });

  m.def(
      "build_info",
      []() {
        const s4op::BuildInfo info = s4op::build_info();
        py::dict d;
        d["compiler"] = info.compiler;
        d["cxx_flags"] = info.cxx_flags;
        d["build_type"] = info.build_type;
        d["simd"] = info.simd;
        d["simd_runtime_fft"] = s4op::cpu::fft_path_name(s4op::cpu::get_real_fft<float>(8192)->path());
        d["simd_runtime_s4d_kernel"] = s4op::cpu::s4d_kernel_isa();
        d["simd_runtime_dplr_kernel"] = s4op::cpu::dplr_kernel_isa();
        d["simd_runtime_gelu"] = s4op::cpu::gelu_f32_isa();  // sparse_fftconv's GELU epilogue
        d["simd_runtime_glu_mix"] = s4op::cpu::glu_mix_isa();  // the "fused" output mixing
        d["threading"] = info.threading;
        d["sanitized"] = info.sanitized;
        return d;
      },
      "Compiler, flags, build type, SIMD level chosen at build time, SIMD paths picked at run time, and the "
      "threading backend of the core.");

  m.def("use_openmp", &use_openmp, py::arg("library"),
        "Run the core's parallel sections on the OpenMP runtime in `library` (an already loaded libgomp / "
        "libomp / libiomp5, normally torch's) instead of the built-in thread pool.  Returns the backend name.");
  m.def(
      "use_builtin_pool",
      []() {
        s4op::set_host_runtime(nullptr);
        return std::string(s4op::current_threading_backend());
      },
      "Run the core's parallel sections on its built-in std::thread pool.  Returns the backend name.");
  m.def(
      "threading_backend", []() { return std::string(s4op::current_threading_backend()); },
      "What the core's parallel sections currently run on (a forked child always uses the built-in pool).");

  m.def("next_fast_size", &s4op::cpu::next_fast_size, py::arg("n"),
        "Smallest m >= n of the form 2^a 3^b 5^c.");

  m.def("sparse_fftconv", &sparse_fftconv, py::arg("u"), py::arg("k_f"), py::arg("D"), py::arg("active"),
        py::arg("n_fft"), py::arg("out"), py::arg("num_threads"), py::kw_only(), py::arg("activation") = "none",
        py::arg("extra_value") = py::none(),
        "out[b, h] = f(irfft(rfft(u[b, h], n_fft) * k_f[j])[:L] + D[j] u[b, h]) for h = active[j], "
        "out[b, h] = f(u[b, h]) otherwise, f = identity "
        "(activation='none') or the exact GELU ('gelu').  u: (B, H, L) float32/float64; out: (B, H, L), or "
        "(B, H' > H, L) whose channels >= H are left untouched, or set to extra_value if given; "
        "k_f: (A, n_fft//2+1) complex; D: (A,); "
        "active: (A,) int64 strictly increasing in [0, H).");

  m.def("same_bytes", &same_bytes, py::arg("a"), py::arg("b"),
        "True iff a[i] and b[i] (2-D uint8 arrays with contiguous rows: byte views of tensors, one row per "
        "leading index) hold the same bytes for every i: the exact check behind the layers' inference caches.");

  m.def("s4d_kernel", &s4d_kernel, py::arg("C"), py::arg("log_dt"), py::arg("log_A_real"), py::arg("A_imag"),
        py::arg("rows"), py::arg("L"), py::arg("out"), py::arg("num_threads"),
        "out[j] = S4D kernel of length L of row rows[j].  C: (H, N2, 2); log_dt: (H,); log_A_real, A_imag: "
        "(H, N2); rows: (A,) int64 in [0, H); out: (A, L); float32 or float64.");
  py::class_<RuntimeModel>(m, "RuntimeModel",
                           "A model file loaded by the torch-free runtime (runtime.h); one run at a time.")
      .def(py::init<const std::string&, int64_t, int64_t, int>(), py::arg("path"), py::arg("max_batch"),
           py::arg("max_len"), py::arg("num_threads"))
      .def("info", &RuntimeModel::info, "Sizes and kinds of the loaded model (s4op_model_info).")
      .def("run", &RuntimeModel::run, py::arg("x"), py::arg("lengths"), py::arg("out"),
           "out (B, classes) float32 <- the logits of x: (B, L) int64 tokens or (B, L, C) float32, C-contiguous; "
           "lengths: None or (B,) int64.");
  py::class_<RuntimeStream>(m, "RuntimeStream",
                            "The classifier fed one sample at a time by the torch-free runtime (runtime.h's "
                            "s4op_stream_*); one call at a time.")
      .def(py::init<const RuntimeModel&, int64_t>(), py::arg("model"), py::arg("batch"), py::keep_alive<1, 2>(),
           "A stream of `batch` sequences over `model` (kept alive while the stream lives).")
      .def("push", &RuntimeStream::push, py::arg("x"),
           "Feed x: (B, T) int64 tokens or (B, T, C) float32, C-contiguous, B the stream's batch.")
      .def("logits", &RuntimeStream::logits, py::arg("out"), "out (B, classes) float32 <- the logits so far.")
      .def("reset", &RuntimeStream::reset, "Zero states and pooled sum.")
      .def("samples", &RuntimeStream::samples, "Samples pushed since the start or the last reset.");
  m.def(
      "s4d_step_setup",
      [](const py::handle& C, const py::handle& log_dt, const py::handle& log_A_real, const py::handle& A_imag,
         const py::handle& D, const py::handle& rows, const py::handle& modes, const py::handle& scalars) {
        step_setup(false, {C, log_dt, log_A_real, A_imag, D}, rows, modes, scalars);
      },
      py::arg("C"), py::arg("log_dt"), py::arg("log_A_real"), py::arg("A_imag"), py::arg("D"), py::arg("rows"),
      py::arg("modes"), py::arg("scalars"),
      "S4D step coefficients (ZOH: alpha = exp(dt A), beta = (exp(dt A) - 1) / A, c = C) of rows (A,) into modes "
      "(A, 3, 2, N2) and scalars (A, 3) = (D, 0, 0); C: (H, N2, 2); log_dt, D: (H,); log_A_real, A_imag: (H, N2).");
  m.def(
      "dplr_step_setup",
      [](const py::handle& log_dt, const py::handle& A_real, const py::handle& A_imag, const py::handle& B,
         const py::handle& P, const py::handle& C_f, const py::handle& D, const py::handle& rows,
         const py::handle& modes, const py::handle& scalars) {
        step_setup(true, {log_dt, A_real, A_imag, B, P, C_f, D}, rows, modes, scalars);
      },
      py::arg("log_dt"), py::arg("A_real"), py::arg("A_imag"), py::arg("B"), py::arg("P"), py::arg("C_f"),
      py::arg("D"), py::arg("rows"), py::arg("modes"), py::arg("scalars"),
      "S4 (rank-1 DPLR, bilinear) step coefficients of rows (A,) into modes (A, 7, 2, N2) and scalars (A, 3); "
      "log_dt, D: (H,); A_real, A_imag: (H, N2); B, P, C_f: (H, N2, 2) (C_f: the plain output vector).");
  m.def(
      "ssm_step",
      [](const py::handle& modes, const py::handle& scalars, const py::handle& active, const py::handle& u,
         const py::handle& x, const py::handle& x_out, const py::handle& y, int num_threads,
         const std::string& activation) {
        step_run(false, modes, scalars, active, u, x, x_out, y, num_threads, activation);
      },
      py::arg("modes"), py::arg("scalars"), py::arg("active"), py::arg("u"), py::arg("x"), py::arg("x_out"),
      py::arg("y"), py::arg("num_threads"), py::kw_only(), py::arg("activation") = "none",
      "One recurrent step: u (B, H), state x (B, A, N2, 2) -> x_out (x itself or a separate array), y (B, H) "
      "(pruned channels: f(u)); modes (A, 3 or 7, 2, N2), scalars (A, 3), active (A,) int64; f: 'none' or 'gelu'.");
  m.def(
      "ssm_chunk_state",
      [](const py::handle& modes, const py::handle& scalars, const py::handle& active, const py::handle& u,
         const py::handle& x, const py::handle& x_out, const py::handle& y_free, int num_threads) {
        step_run(true, modes, scalars, active, u, x, x_out, y_free, num_threads, "none");
      },
      py::arg("modes"), py::arg("scalars"), py::arg("active"), py::arg("u"), py::arg("x"), py::arg("x_out"),
      py::arg("y_free"), py::arg("num_threads"),
      "A chunk u (B, H, L) from state x (B, A, N2, 2): y_free (B, A, L) = the zero-input response of x, x_out = the "
      "state after the chunk (x itself or a separate array).");
  m.def("residual_layer_norm", &residual_layer_norm, py::arg("x"), py::arg("z"), py::arg("out"), py::arg("weight"),
        py::arg("bias"), py::arg("eps"), py::arg("num_threads"),
        "out[b] = LayerNorm over the H channels of x[b] + z[b] (z None: of x[b]) at each position, times weight "
        "plus bias per channel (None: 1 / 0).  x, z, out: (B, H, L) float32 (out may be x or z itself); weight, "
        "bias: (H,) float32.");
  m.def("glu_mix_packed_size", &s4op::cpu::glu_mix_packed_size, py::arg("H"), py::arg("K"),
        "Length of the packed weights glu_mix_pack writes for W (2H, K).");
  m.def("glu_mix_pack", &glu_mix_pack, py::arg("W"), py::arg("bias"), py::arg("out"),
        "out (glu_mix_packed_size(H, K),) float32 <- W (2H, K) and bias (2H,) float32 packed for glu_mix.");
  m.def("glu_mix", &glu_mix, py::arg("packed"), py::arg("y"), py::arg("H"), py::arg("out"), py::arg("accumulate"),
        py::arg("num_threads"),
        "out (B, H, L) (+)= a * sigmoid(g), [a; g] = W y + bias over channels (GLU of a 1x1 convolution); "
        "y (B, K, L) float32; packed from glu_mix_pack; accumulate: add into out instead of overwriting it.");
  m.def("glu_mix_isa", []() { return std::string(s4op::cpu::glu_mix_isa()); },
        "The SIMD path glu_mix uses on this CPU.");
  m.def("runtime_simd", []() { return std::string(s4op_runtime_simd()); },
        "The SIMD path of the runtime's output mixing (glu_mix) on this CPU.");

  m.def("dplr_spectrum", &dplr_spectrum, py::arg("log_dt"), py::arg("A_real"), py::arg("A_imag"), py::arg("B"),
        py::arg("P"), py::arg("C"), py::arg("rows"), py::arg("M"), py::arg("L"), py::arg("n_fft"), py::arg("out"),
        py::arg("num_threads"),
        "out[j] = the S4 (DPLR, rank 1) kernel spectrum of row rows[j] at the M-th roots of unity (n_fft == 0: "
        "out (A, M//2+1, 2)), or rfft(irfft(., M)[:L], n_fft) (n_fft > 0: out (A, n_fft//2+1, 2)).  log_dt: (H,); "
        "A_real, A_imag: (H, N2); B, P, C: (H, N2, 2); rows: (A,) int64 in [0, H); float32 or float64.");
}
