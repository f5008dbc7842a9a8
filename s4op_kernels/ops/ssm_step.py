"""The recurrent (streaming) form of the S4D and S4 layers over their active channels.

A state of N2 complex modes per (sequence, active channel), stored as a real tensor ``x: (B, A, N2, 2)`` ((re, im)
pairs; S4's full state has 2 N2 entries in conjugate pairs, determined by the first N2 since the input is real).
Per active channel, complex per-mode coefficients ``alpha, beta, c, eps, f, pbar, q`` and real scalars
``D, sigma_e, sigma_b`` define one step (u: the channel's input sample):

    s1 = 2 Re sum_n pbar_n x_n,   t = 2 Re sum_n q_n x_n + sigma_e s1 + sigma_b u
    x'_n = alpha_n x_n + beta_n u + eps_n s1 + f_n t,   y = 2 Re sum_n c_n x'_n + D u

- S4D (zero-order hold, as the reference standalone S4D; its impulse response is the kernel of ``s4d_kernel``):
  ``alpha = exp(dt A), beta = (exp(dt A) - 1) / A, c = C``; no rank-1 terms (``modes`` has 3 fields).
- S4 (rank-1 DPLR, bilinear, the reference S4's recurrence): ``(I - h A_f) x' = (I + h A_f) x + dt B_f u``,
  ``h = dt / 2``, solved in O(N2) by the Woodbury identity (csrc/include/s4op/ssm_step.h derives it): with
  ``g = 1 / (1 - h Lambda), a = 1 + h Lambda, w = conj(P) g, rho = 2 Re sum |P|^2 g``:
  ``alpha = g a, beta = g dt B, eps = -h g P, f = -h g P / (1 + h rho), pbar = conj(P), q = w a,
  sigma_e = 2 Re sum w (-h P), sigma_b = 2 Re sum w dt B`` and ``c = C_f``, the plain output vector (the
  layer's C-tilde times (I - dA^l_kernel)^-1: ``layers.s4.output_vector``).  Its impulse response C_f dA^l dB is
  the S4 kernel; no matrix is diagonalized.

Coefficients are ``modes: (A, F, 2, N2)`` (F = 3 or 7 fields in the order above, each as N2 real parts then N2
imaginary parts) and ``scalars: (A, 3)``; the set-ups compute them in float64 and round to the parameters' dtype.

Four ops, each registered once as a custom op with a fake (shape) implementation, a float64-capable reference
and a CPU kernel in the compiled core (``csrc/src/ssm_step.cpp``):

- ``s4d_step_coefficients(C, log_dt, log_A_real, A_imag, D, rows=None) -> (modes, scalars)``
- ``dplr_step_coefficients(log_dt, A_real, A_imag, B, P, C_f, D, rows=None) -> (modes, scalars)``
- ``ssm_step(modes, scalars, active, u, x, activation="none") -> (y, x_next)``: one sample ``u: (B, H)``;
  pruned channels give ``f(u)`` (identity), f the identity or the exact GELU.
- ``ssm_chunk_state(modes, scalars, active, u, x) -> (y_free, x_end)``: for a chunk ``u: (B, H, L)``, the
  zero-input response of the incoming state ``y_free: (B, A, L)`` (no D term) and the state after the chunk;
  a chunked forward adds ``y_free`` to the chunk's own FFT convolution.
"""

from __future__ import annotations

from typing import Optional

import torch

from s4op_kernels import _ext
from s4op_kernels.ops import dispatch

FIELDS_DIAG = 3  # alpha, beta, c
FIELDS_DPLR = 7  # alpha, beta, c, eps, f, pbar, q
N_SCALARS = 3  # D, sigma_e, sigma_b
ACTIVATIONS = ("none", "gelu")
_BLOCK = 1024  # samples per block of the diagonal reference's powers (bounds its memory at A N2 _BLOCK)


# ---------------------------------------------------------------------------------------------- references
def _as_complex128(t: torch.Tensor) -> torch.Tensor:
    """(..., 2) real view -> complex128."""
    return torch.complex(t[..., 0].double(), t[..., 1].double())


def _pack(fields: list[torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
    """Complex (A, N2) fields -> modes (A, F, 2, N2) of ``dtype``."""
    return torch.stack([torch.stack([f.real, f.imag], dim=-2) for f in fields], dim=1).to(dtype)


def _unpack(modes: torch.Tensor) -> torch.Tensor:
    """modes (A, F, 2, N2) -> complex (A, F, N2) of the matching complex dtype."""
    return torch.complex(modes[:, :, 0], modes[:, :, 1])


def s4d_step_coefficients_ref(
    C: torch.Tensor, log_dt: torch.Tensor, log_A_real: torch.Tensor, A_imag: torch.Tensor, D: torch.Tensor,
    rows: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference S4D step coefficients (ZOH).

    C: (H, N2, 2) real view of complex, log_dt: (H,), log_A_real, A_imag: (H, N2), D: (H,), one real dtype;
    rows: optional (A,) int64 in [0, H) (None: every row).  Returns modes (A, 3, 2, N2) = (alpha, beta, c) and
    scalars (A, 3) = (D, 0, 0) of that dtype, computed in float64.  Differentiable."""
    if rows is not None:
        C, log_dt, log_A_real, A_imag, D = (t.index_select(0, rows) for t in (C, log_dt, log_A_real, A_imag, D))
    A = torch.complex(-torch.exp(log_A_real.double()), A_imag.double())  # (A, N2)
    z = A * torch.exp(log_dt.double()).unsqueeze(-1)
    # exp(z) - 1 without cancellation: (e^a cos b - 1) = expm1(a) cos b - 2 sin^2(b / 2)
    s = torch.sin(z.imag / 2)
    em1 = torch.complex(torch.expm1(z.real) * torch.cos(z.imag) - 2 * s * s, torch.exp(z.real) * torch.sin(z.imag))
    modes = _pack([torch.exp(z), em1 / A, _as_complex128(C)], C.dtype)
    zero = torch.zeros_like(D)
    return modes, torch.stack([D, zero, zero], dim=-1)


def dplr_step_coefficients_ref(
    log_dt: torch.Tensor, A_real: torch.Tensor, A_imag: torch.Tensor, B: torch.Tensor, P: torch.Tensor,
    C_f: torch.Tensor, D: torch.Tensor, rows: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference S4 (rank-1 DPLR, bilinear) step coefficients.

    log_dt: (H,), A_real, A_imag: (H, N2) (Lambda = -exp(A_real) - i A_imag), B, P, C_f: (H, N2, 2) real views
    (C_f: the plain output vector, not C-tilde), D: (H,), one real dtype; rows as in
    :func:`s4d_step_coefficients_ref`.  Returns modes (A, 7, 2, N2) and scalars (A, 3) = (D, sigma_e, sigma_b),
    computed in float64.  Differentiable."""
    if rows is not None:
        log_dt, A_real, A_imag, B, P, C_f, D = (t.index_select(0, rows) for t in (log_dt, A_real, A_imag, B, P, C_f, D))
    dt = torch.exp(log_dt.double()).unsqueeze(-1)  # (A, 1)
    h = dt / 2
    lam = torch.complex(-torch.exp(A_real.double()), -A_imag.double())  # (A, N2)
    Pc, Bc = _as_complex128(P), _as_complex128(B)
    g = 1 / (1 - h * lam)
    a = 1 + h * lam
    w = Pc.conj() * g
    rho = 2 * (Pc.abs() ** 2 * g.real).sum(-1, keepdim=True)  # (A, 1) > 0
    modes = _pack([g * a, g * dt * Bc, _as_complex128(C_f), -h * g * Pc, -h * g * Pc / (1 + h * rho), Pc.conj(), w * a],
                  C_f.dtype)
    sigma_e = 2 * (w * (-h * Pc)).sum(-1).real
    sigma_b = 2 * (w * (dt * Bc)).sum(-1).real
    return modes, torch.stack([D, sigma_e.to(D.dtype), sigma_b.to(D.dtype)], dim=-1)


def _advance(m: torch.Tensor, scalars: torch.Tensor, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """One step of every (sequence, channel): m (A, F, N2) complex, scalars (A, 3), x (B, A, N2) complex, u (B, A)."""
    xn = m[:, 0] * x + m[:, 1] * u.unsqueeze(-1)
    if m.shape[1] == FIELDS_DPLR:
        s1 = 2 * (m[:, 5] * x).sum(-1).real  # (B, A)
        t = 2 * (m[:, 6] * x).sum(-1).real + scalars[:, 1] * s1 + scalars[:, 2] * u
        xn = xn + m[:, 3] * s1.unsqueeze(-1) + m[:, 4] * t.unsqueeze(-1)
    return xn


def _real_state(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return torch.stack([x.real, x.imag], dim=-1).to(dtype)


def ssm_step_ref(
    modes: torch.Tensor, scalars: torch.Tensor, active: torch.Tensor, u: torch.Tensor, x: torch.Tensor,
    activation: str = "none",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference recurrent step.

    modes: (A, F, 2, N2) (F = 3 or 7), scalars: (A, 3), active: (A,) int64 sorted distinct channels in [0, H),
    u: (B, H), x: (B, A, N2, 2), all real of one dtype.  Returns (y (B, H), x_next (B, A, N2, 2)): active channel
    active[j] gets the step's output, every other channel f(u) (identity); then f (``"none"`` or the exact
    ``"gelu"``) on every channel.  Computed in the inputs' dtype.  Differentiable."""
    m = _unpack(modes)
    xs = torch.complex(x[..., 0], x[..., 1])  # (B, A, N2)
    ua = u.index_select(1, active)  # (B, A)
    xn = _advance(m, scalars, xs, ua)
    ya = 2 * (m[:, 2] * xn).sum(-1).real + scalars[:, 0] * ua
    y = u.index_copy(1, active, ya)
    if activation == "gelu":
        y = torch.nn.functional.gelu(y)
    return y, _real_state(xn, x.dtype)


def ssm_chunk_state_ref(
    modes: torch.Tensor, scalars: torch.Tensor, active: torch.Tensor, u: torch.Tensor, x: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference of what a chunk does with the incoming state.

    Arguments as :func:`ssm_step_ref` with u: (B, H, L).  Returns (y_free (B, A, L), x_end (B, A, N2, 2)):
    y_free[b, j, t] the zero-input response of x at t (the step's output from x with no input, without D),
    x_end the state after the chunk.  Computed in float64, returned in the inputs' dtype.  S4D (F = 3) in closed
    form, ``alpha^t`` as exp(t log alpha) in float64 (blocks of 1024 samples); S4 (F = 7) by stepping."""
    m = _unpack(modes.double())
    sc = scalars.double()
    xs = torch.complex(x[..., 0].double(), x[..., 1].double())  # (B, A, N2)
    ua = u.double().index_select(1, active)  # (B, A, L)
    L = ua.shape[-1]
    y_free = ua.new_zeros(ua.shape)
    if m.shape[1] == FIELDS_DIAG:
        alpha, beta, c = m[:, 0], m[:, 1], m[:, 2]  # (A, N2)
        log_alpha = torch.log(alpha).unsqueeze(-1)  # alpha^t = exp(t log alpha) for integer t, any branch
        w = c * alpha * xs  # (B, A, N2): y_free[t] = 2 Re sum w alpha^t
        forced = torch.zeros_like(xs)  # sum_k alpha^k u[L-1-k]
        u_rev = ua.flip(-1)
        for start in range(0, L, _BLOCK):
            t = torch.arange(start, min(L, start + _BLOCK), dtype=torch.float64, device=ua.device)
            powers = torch.exp(log_alpha * t)  # (A, N2, T); alpha = 0 (underflow): log -inf, and -inf * 0 is nan
            powers = torch.where(t == 0, torch.ones_like(powers), powers)
            y_free[..., start:start + t.numel()] = 2 * torch.einsum("ban,ant->bat", w, powers).real
            forced = forced + torch.einsum("bat,ant->ban", u_rev[..., start:start + t.numel()].to(powers.dtype), powers)
        x_end = (torch.exp(log_alpha[..., 0] * L) * xs if L else xs) + beta * forced
    else:
        free, x_end = xs, xs
        zero = ua.new_zeros(ua.shape[:2])
        for t in range(L):
            free = _advance(m, sc, free, zero)
            y_free[..., t] = 2 * (m[:, 2] * free).sum(-1).real
            x_end = _advance(m, sc, x_end, ua[..., t])
    return y_free.to(x.dtype), _real_state(x_end, x.dtype)


# ---------------------------------------------------------------------------------------------- checks
def _check_activation(activation) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"ssm_step: activation must be one of {ACTIVATIONS}, got {activation!r}")


def _check_step_args(op: str, modes, scalars, active, u, x, chunk: bool) -> None:
    """What every implementation relies on (torch._check_*: symbolic shapes in a fake trace are checked)."""
    dispatch.check_same_device(op, modes=modes, scalars=scalars, active=active, u=u, x=x)
    torch._check_type(u.dtype in (torch.float32, torch.float64), lambda: f"{op}: u must be float32 or float64, got {u.dtype}")
    for name, t in (("modes", modes), ("scalars", scalars), ("x", x)):
        torch._check_type(t.dtype == u.dtype, lambda name=name, t=t: f"{op}: {name} must be {u.dtype} like u, got {t.dtype}")
    torch._check_type(active.dtype == torch.int64, lambda: f"{op}: active must be int64, got {active.dtype}")
    torch._check_value(modes.dim() == 4 and modes.shape[1] in (FIELDS_DIAG, FIELDS_DPLR) and modes.shape[2] == 2,
                       lambda: f"{op}: modes must be (A, 3 or 7, 2, N2), got shape {tuple(modes.shape)}")
    A, N2 = modes.shape[0], modes.shape[3]
    torch._check_value(tuple(scalars.shape) == (A, N_SCALARS),
                       lambda: f"{op}: scalars must be ({A}, {N_SCALARS}), got shape {tuple(scalars.shape)}")
    torch._check_value(tuple(active.shape) == (A,), lambda: f"{op}: active must be ({A},), got shape {tuple(active.shape)}")
    torch._check_value(u.dim() == (3 if chunk else 2),
                       lambda: f"{op}: u must be {'(B, H, L)' if chunk else '(B, H)'}, got shape {tuple(u.shape)}")
    torch._check_value(tuple(x.shape) == (u.shape[0], A, N2, 2),
                       lambda: f"{op}: x must be (B, A, N2, 2) = {(u.shape[0], A, N2, 2)}, got shape {tuple(x.shape)}")


def _check_setup_args(op: str, names: tuple[str, ...], tensors: tuple[torch.Tensor, ...], shapes, rows) -> None:
    named = dict(zip(names, tensors))
    if rows is not None:
        named["rows"] = rows
    dispatch.check_same_device(op, **named)
    ref = tensors[names.index("C" if "C" in names else "C_f")]
    torch._check_type(ref.dtype in (torch.float32, torch.float64),
                      lambda: f"{op}: parameters must be float32 or float64, got {ref.dtype}")
    for name, t, want in zip(names, tensors, shapes):
        torch._check_type(t.dtype == ref.dtype, lambda name=name, t=t: f"{op}: {name} must be {ref.dtype}, got {t.dtype}")
        torch._check_value(tuple(t.shape) == want,
                           lambda name=name, t=t, want=want: f"{op}: {name} must have shape {want}, got {tuple(t.shape)}")
    if rows is not None:
        torch._check_type(rows.dtype == torch.int64, lambda: f"{op}: rows must be int64, got {rows.dtype}")
        torch._check_value(rows.dim() == 1, lambda: f"{op}: rows must be 1-D, got shape {tuple(rows.shape)}")


_S4D_NAMES = ("C", "log_dt", "log_A_real", "A_imag", "D")
_DPLR_NAMES = ("log_dt", "A_real", "A_imag", "B", "P", "C_f", "D")


def _s4d_shapes(C):
    H, N2 = C.shape[0], C.shape[1]
    return ((H, N2, 2), (H,), (H, N2), (H, N2), (H,))


def _dplr_shapes(C_f):
    H, N2 = C_f.shape[0], C_f.shape[1]
    return ((H,), (H, N2), (H, N2), (H, N2, 2), (H, N2, 2), (H, N2, 2), (H,))


def _check_s4d_setup(C, log_dt, log_A_real, A_imag, D, rows):
    torch._check_value(C.dim() == 3 and C.shape[2] == 2,
                       lambda: f"s4d_step_coefficients: C must be (H, N2, 2), got shape {tuple(C.shape)}")
    _check_setup_args("s4d_step_coefficients", _S4D_NAMES, (C, log_dt, log_A_real, A_imag, D), _s4d_shapes(C), rows)


def _check_dplr_setup(log_dt, A_real, A_imag, B, P, C_f, D, rows):
    torch._check_value(C_f.dim() == 3 and C_f.shape[2] == 2,
                       lambda: f"dplr_step_coefficients: C_f must be (H, N2, 2), got shape {tuple(C_f.shape)}")
    _check_setup_args("dplr_step_coefficients", _DPLR_NAMES, (log_dt, A_real, A_imag, B, P, C_f, D),
                      _dplr_shapes(C_f), rows)


def _n_rows(first: torch.Tensor, rows: Optional[torch.Tensor]) -> int:
    return first.shape[0] if rows is None else rows.shape[0]


def _all_rows(H: int, rows: Optional[torch.Tensor]) -> torch.Tensor:
    return torch.arange(H, dtype=torch.int64) if rows is None else rows


# ---------------------------------------------------------------------------------------------- custom ops
@torch.library.custom_op("s4op::s4d_step_coefficients", mutates_args=())
def _s4d_coef_op(C: torch.Tensor, log_dt: torch.Tensor, log_A_real: torch.Tensor, A_imag: torch.Tensor,
                 D: torch.Tensor, rows: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
    _check_s4d_setup(C, log_dt, log_A_real, A_imag, D, rows)
    return s4d_step_coefficients_ref(C, log_dt, log_A_real, A_imag, D, rows)


@_s4d_coef_op.register_kernel("cpu")
def _s4d_coef_cpu(C, log_dt, log_A_real, A_imag, D, rows=None):
    _check_s4d_setup(C, log_dt, log_A_real, A_imag, D, rows)
    rows = _all_rows(C.shape[0], rows)
    A, N2 = rows.shape[0], C.shape[1]
    modes, scalars = C.new_empty((A, FIELDS_DIAG, 2, N2)), C.new_empty((A, N_SCALARS))
    if A == 0:  # nothing to compute (and no rows to size H by when the tensors were gathered)
        return modes, scalars
    _ext.C().s4d_step_setup(*(t.contiguous().numpy() for t in (C, log_dt, log_A_real, A_imag, D)),
                            rows.contiguous().numpy(), modes.numpy(), scalars.numpy())
    return modes, scalars


@_s4d_coef_op.register_fake
def _(C, log_dt, log_A_real, A_imag, D, rows=None):
    _check_s4d_setup(C, log_dt, log_A_real, A_imag, D, rows)
    A = _n_rows(C, rows)
    return C.new_empty((A, FIELDS_DIAG, 2, C.shape[1])), C.new_empty((A, N_SCALARS))


@torch.library.custom_op("s4op::dplr_step_coefficients", mutates_args=())
def _dplr_coef_op(log_dt: torch.Tensor, A_real: torch.Tensor, A_imag: torch.Tensor, B: torch.Tensor,
                  P: torch.Tensor, C_f: torch.Tensor, D: torch.Tensor,
                  rows: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
    _check_dplr_setup(log_dt, A_real, A_imag, B, P, C_f, D, rows)
    return dplr_step_coefficients_ref(log_dt, A_real, A_imag, B, P, C_f, D, rows)


@_dplr_coef_op.register_kernel("cpu")
def _dplr_coef_cpu(log_dt, A_real, A_imag, B, P, C_f, D, rows=None):
    _check_dplr_setup(log_dt, A_real, A_imag, B, P, C_f, D, rows)
    rows = _all_rows(C_f.shape[0], rows)
    A, N2 = rows.shape[0], C_f.shape[1]
    modes, scalars = C_f.new_empty((A, FIELDS_DPLR, 2, N2)), C_f.new_empty((A, N_SCALARS))
    if A == 0:
        return modes, scalars
    _ext.C().dplr_step_setup(*(t.contiguous().numpy() for t in (log_dt, A_real, A_imag, B, P, C_f, D)),
                             rows.contiguous().numpy(), modes.numpy(), scalars.numpy())
    return modes, scalars


@_dplr_coef_op.register_fake
def _(log_dt, A_real, A_imag, B, P, C_f, D, rows=None):
    _check_dplr_setup(log_dt, A_real, A_imag, B, P, C_f, D, rows)
    A = _n_rows(C_f, rows)
    return C_f.new_empty((A, FIELDS_DPLR, 2, C_f.shape[1])), C_f.new_empty((A, N_SCALARS))


@torch.library.custom_op("s4op::ssm_step", mutates_args=())
def _ssm_step_op(modes: torch.Tensor, scalars: torch.Tensor, active: torch.Tensor, u: torch.Tensor, x: torch.Tensor,
                 activation: str = "none") -> tuple[torch.Tensor, torch.Tensor]:
    _check_activation(activation)
    _check_step_args("ssm_step", modes, scalars, active, u, x, chunk=False)
    return ssm_step_ref(modes, scalars, active, u, x, activation)


@_ssm_step_op.register_kernel("cpu")
def _ssm_step_cpu(modes, scalars, active, u, x, activation="none"):
    # Called directly in eager mode (dispatch.eager_cpu): shapes and dtypes are the binding's to check.
    if not (modes.is_cpu and scalars.is_cpu and active.is_cpu and u.is_cpu and x.is_cpu):
        dispatch.check_same_device("ssm_step", modes=modes, scalars=scalars, active=active, u=u, x=x)
    _check_activation(activation)
    u, x = u.contiguous(), x.contiguous()
    y, x_next = torch.empty_like(u), torch.empty_like(x)
    _ext.C().ssm_step(modes.contiguous().numpy(), scalars.contiguous().numpy(), active.contiguous().numpy(),
                      u.numpy(), x.numpy(), x_next.numpy(), y.numpy(), torch.get_num_threads(), activation=activation)
    return y, x_next


@_ssm_step_op.register_fake
def _(modes, scalars, active, u, x, activation="none"):
    _check_activation(activation)
    _check_step_args("ssm_step", modes, scalars, active, u, x, chunk=False)
    return torch.empty_like(u), torch.empty_like(x)


@torch.library.custom_op("s4op::ssm_chunk_state", mutates_args=())
def _ssm_chunk_state_op(modes: torch.Tensor, scalars: torch.Tensor, active: torch.Tensor, u: torch.Tensor,
                        x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    _check_step_args("ssm_chunk_state", modes, scalars, active, u, x, chunk=True)
    return ssm_chunk_state_ref(modes, scalars, active, u, x)


@_ssm_chunk_state_op.register_kernel("cpu")
def _ssm_chunk_state_cpu(modes, scalars, active, u, x):
    if not (modes.is_cpu and scalars.is_cpu and active.is_cpu and u.is_cpu and x.is_cpu):
        dispatch.check_same_device("ssm_chunk_state", modes=modes, scalars=scalars, active=active, u=u, x=x)
    if u.dim() != 3:
        raise ValueError(f"ssm_chunk_state: u must be (B, H, L), got shape {tuple(u.shape)}")
    u, x = u.contiguous(), x.contiguous()
    y_free = u.new_empty((u.shape[0], modes.shape[0], u.shape[2]))
    x_end = torch.empty_like(x)
    _ext.C().ssm_chunk_state(modes.contiguous().numpy(), scalars.contiguous().numpy(), active.contiguous().numpy(),
                             u.numpy(), x.numpy(), x_end.numpy(), y_free.numpy(), torch.get_num_threads())
    return y_free, x_end


@_ssm_chunk_state_op.register_fake
def _(modes, scalars, active, u, x):
    _check_step_args("ssm_chunk_state", modes, scalars, active, u, x, chunk=True)
    return u.new_empty((u.shape[0], modes.shape[0], u.shape[2])), torch.empty_like(x)


# ---------------------------------------------------------------------------------------------- public entry points
def s4d_step_coefficients(
    C: torch.Tensor, log_dt: torch.Tensor, log_A_real: torch.Tensor, A_imag: torch.Tensor, D: torch.Tensor,
    rows: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """S4D step coefficients (arguments as :func:`s4d_step_coefficients_ref`), by the selected backend."""
    backend = dispatch.resolve(C.device, dispatch.needs_grad(C, log_dt, log_A_real, A_imag, D))
    if backend == dispatch.REFERENCE:
        _check_s4d_setup(C, log_dt, log_A_real, A_imag, D, rows)
        return s4d_step_coefficients_ref(C, log_dt, log_A_real, A_imag, D, rows)
    if dispatch.eager_cpu(C):
        return _s4d_coef_cpu(C, log_dt, log_A_real, A_imag, D, rows)
    return _s4d_coef_op(C, log_dt, log_A_real, A_imag, D, rows)


def dplr_step_coefficients(
    log_dt: torch.Tensor, A_real: torch.Tensor, A_imag: torch.Tensor, B: torch.Tensor, P: torch.Tensor,
    C_f: torch.Tensor, D: torch.Tensor, rows: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """S4 step coefficients (arguments as :func:`dplr_step_coefficients_ref`), by the selected backend."""
    backend = dispatch.resolve(C_f.device, dispatch.needs_grad(log_dt, A_real, A_imag, B, P, C_f, D))
    if backend == dispatch.REFERENCE:
        _check_dplr_setup(log_dt, A_real, A_imag, B, P, C_f, D, rows)
        return dplr_step_coefficients_ref(log_dt, A_real, A_imag, B, P, C_f, D, rows)
    if dispatch.eager_cpu(C_f):
        return _dplr_coef_cpu(log_dt, A_real, A_imag, B, P, C_f, D, rows)
    return _dplr_coef_op(log_dt, A_real, A_imag, B, P, C_f, D, rows)


def ssm_step(
    modes: torch.Tensor, scalars: torch.Tensor, active: torch.Tensor, u: torch.Tensor, x: torch.Tensor,
    activation: str = "none",
) -> tuple[torch.Tensor, torch.Tensor]:
    """One recurrent step (arguments as :func:`ssm_step_ref`), by the selected backend."""
    _check_activation(activation)
    backend = dispatch.resolve(u.device, dispatch.needs_grad(modes, scalars, u, x))
    if backend == dispatch.REFERENCE:
        _check_step_args("ssm_step", modes, scalars, active, u, x, chunk=False)
        return ssm_step_ref(modes, scalars, active, u, x, activation)
    if dispatch.eager_cpu(u):
        return _ssm_step_cpu(modes, scalars, active, u, x, activation)
    return _ssm_step_op(modes, scalars, active, u, x, activation)


def ssm_chunk_state(
    modes: torch.Tensor, scalars: torch.Tensor, active: torch.Tensor, u: torch.Tensor, x: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The incoming state's part of a chunk (arguments as :func:`ssm_chunk_state_ref`), by the selected backend."""
    backend = dispatch.resolve(u.device, dispatch.needs_grad(modes, scalars, u, x))
    if backend == dispatch.REFERENCE:
        _check_step_args("ssm_chunk_state", modes, scalars, active, u, x, chunk=True)
        return ssm_chunk_state_ref(modes, scalars, active, u, x)
    if dispatch.eager_cpu(u):
        return _ssm_chunk_state_cpu(modes, scalars, active, u, x)
    return _ssm_chunk_state_op(modes, scalars, active, u, x)
