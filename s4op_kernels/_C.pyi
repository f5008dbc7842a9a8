# Type stub of the compiled core (python/module.cpp).  Arrays are NumPy arrays (zero-copy views of CPU
# tensors); every function validates them and raises TypeError / ValueError.
from typing import Any, Optional, Sequence

import numpy as np

def build_info() -> dict[str, Any]:
    """Compiler, flags, build type, SIMD levels (build time; run time: simd_runtime_fft, simd_runtime_s4d_kernel,
    simd_runtime_dplr_kernel, simd_runtime_gelu,
    simd_runtime_glu_mix) and threading backend."""

def next_fast_size(n: int) -> int:
    """Smallest m >= n of the form 2^a 3^b 5^c."""

def sparse_fftconv(
    u: np.ndarray, k_f: np.ndarray, D: np.ndarray, active: np.ndarray, n_fft: int, out: np.ndarray, num_threads: int,
    *, activation: str = "none", extra_value: Optional[float] = None,
) -> None:
    """out (B, H, L) = f(sparse-channel FFT convolution of u (B, H, L) with spectra k_f (A, n_fft//2+1)),
    f = identity or GELU; pruned rows f(u).  out may be (B, H' > H, L): channels >= H are left untouched,
    or set to extra_value if given."""

def same_bytes(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> bool:
    """True iff a[i] and b[i] (2-D uint8 arrays with contiguous rows) hold the same bytes for every i."""

def use_openmp(library: str) -> str:
    """Run parallel sections on the already loaded OpenMP runtime `library`; returns the backend name."""

def use_builtin_pool() -> str:
    """Run parallel sections on the core's own std::thread pool; returns the backend name."""

def threading_backend() -> str:
    """What parallel sections currently run on."""

def s4d_kernel(
    C: np.ndarray, log_dt: np.ndarray, log_A_real: np.ndarray, A_imag: np.ndarray, rows: np.ndarray, L: int,
    out: np.ndarray, num_threads: int,
) -> None:
    """out (A, L) = S4D kernels of rows (A,) from C (H, N2, 2), log_dt (H,), log_A_real/A_imag (H, N2)."""

def dplr_spectrum(
    log_dt: np.ndarray, A_real: np.ndarray, A_imag: np.ndarray, B: np.ndarray, P: np.ndarray, C: np.ndarray,
    rows: np.ndarray, M: int, L: int, n_fft: int, out: np.ndarray, num_threads: int,
) -> None:
    """out = S4 (DPLR) kernel spectra of rows (A,): (A, M//2+1, 2) if n_fft == 0, else
    rfft(irfft(., M)[:L], n_fft) as (A, n_fft//2+1, 2); log_dt (H,), A_real/A_imag (H, N2), B/P/C (H, N2, 2)."""

def s4d_step_setup(
    C: np.ndarray, log_dt: np.ndarray, log_A_real: np.ndarray, A_imag: np.ndarray, D: np.ndarray, rows: np.ndarray,
    modes: np.ndarray, scalars: np.ndarray,
) -> None:
    """S4D step coefficients of rows (A,) into modes (A, 3, 2, N2) and scalars (A, 3); C (H, N2, 2), log_dt, D (H,),
    log_A_real/A_imag (H, N2)."""

def dplr_step_setup(
    log_dt: np.ndarray, A_real: np.ndarray, A_imag: np.ndarray, B: np.ndarray, P: np.ndarray, C_f: np.ndarray,
    D: np.ndarray, rows: np.ndarray, modes: np.ndarray, scalars: np.ndarray,
) -> None:
    """S4 (DPLR) step coefficients of rows (A,) into modes (A, 7, 2, N2) and scalars (A, 3); log_dt, D (H,),
    A_real/A_imag (H, N2), B/P/C_f (H, N2, 2)."""

def ssm_step(
    modes: np.ndarray, scalars: np.ndarray, active: np.ndarray, u: np.ndarray, x: np.ndarray, x_out: np.ndarray,
    y: np.ndarray, num_threads: int, *, activation: str = "none",
) -> None:
    """One recurrent step: u (B, H), state x (B, A, N2, 2) -> x_out (x itself or separate), y (B, H)."""

def ssm_chunk_state(
    modes: np.ndarray, scalars: np.ndarray, active: np.ndarray, u: np.ndarray, x: np.ndarray, x_out: np.ndarray,
    y_free: np.ndarray, num_threads: int,
) -> None:
    """A chunk u (B, H, L) from state x: y_free (B, A, L), the zero-input response of x; x_out, the state after it."""

def residual_layer_norm(
    x: np.ndarray, z: Optional[np.ndarray], out: np.ndarray, weight: Optional[np.ndarray], bias: Optional[np.ndarray],
    eps: float, num_threads: int,
) -> None:
    """out[b] = LayerNorm over channels of x[b] + z[b] (z None: x[b]) * weight + bias; (B, H, L) float32."""

def glu_mix_packed_size(H: int, K: int) -> int:
    """Length of the packed weights glu_mix_pack writes for W (2H, K)."""

def glu_mix_pack(W: np.ndarray, bias: np.ndarray, out: np.ndarray) -> None:
    """out (glu_mix_packed_size(H, K),) float32 <- W (2H, K) and bias (2H,) float32 packed for glu_mix."""

def glu_mix(packed: np.ndarray, y: np.ndarray, H: int, out: np.ndarray, accumulate: bool, num_threads: int) -> None:
    """out (B, H, L) (+)= GLU(W y + bias) over channels; y (B, K, L) float32; packed from glu_mix_pack."""

def glu_mix_isa() -> str:
    """The SIMD path glu_mix uses on this CPU."""

def runtime_simd() -> str:
    """The SIMD path of the runtime's output mixing (glu_mix) on this CPU."""

class RuntimeModel:
    """A model file loaded by the torch-free runtime (runtime.h); one run at a time."""

    def __init__(self, path: str, max_batch: int, max_len: int, num_threads: int) -> None: ...
    def info(self) -> dict[str, Any]:
        """Sizes and kinds of the loaded model (s4op_model_info)."""
    def run(self, x: np.ndarray, lengths: Optional[np.ndarray], out: np.ndarray) -> None:
        """out (B, classes) float32 <- the logits of x: (B, L) int64 tokens or (B, L, C) float32."""

class RuntimeStream:
    """The classifier fed one sample at a time by the torch-free runtime; one call at a time."""

    def __init__(self, model: RuntimeModel, batch: int) -> None:
        """A stream of `batch` sequences over `model` (kept alive while the stream lives)."""

    def push(self, x: np.ndarray) -> None:
        """Feed x: (B, T) int64 tokens or (B, T, C) float32, B the stream's batch."""
    def logits(self, out: np.ndarray) -> None:
        """out (B, classes) float32 <- the logits of the samples so far."""
    def reset(self) -> None: ...
    def samples(self) -> int: ...
