"""Operators of s4op_kernels, one module per op: a float64-capable PyTorch reference (the spec) and the
public entry point that dispatches by device and backend (see ``dispatch``)."""

from s4op_kernels.ops.dplr_kernel import dplr_spectrum, dplr_spectrum_ref
from s4op_kernels.ops.s4d_kernel import s4d_kernel, s4d_kernel_ref
from s4op_kernels.ops.sparse_fftconv import fft_size, next_fast_size, sparse_fftconv, sparse_fftconv_ref
from s4op_kernels.ops.ssm_step import (
    dplr_step_coefficients, dplr_step_coefficients_ref, s4d_step_coefficients, s4d_step_coefficients_ref,
    ssm_chunk_state, ssm_chunk_state_ref, ssm_step, ssm_step_ref,
)

__all__ = ["dplr_spectrum", "dplr_spectrum_ref", "dplr_step_coefficients", "dplr_step_coefficients_ref", "fft_size",
           "next_fast_size", "s4d_kernel", "s4d_kernel_ref", "s4d_step_coefficients", "s4d_step_coefficients_ref",
           "sparse_fftconv", "sparse_fftconv_ref", "ssm_chunk_state", "ssm_chunk_state_ref", "ssm_step", "ssm_step_ref"]
