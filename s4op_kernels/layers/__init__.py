"""Pruning-aware, reference-compatible SSM layers."""

from s4op_kernels.layers.s4 import S4Layer
from s4op_kernels.layers.s4d import S4DLayer

__all__ = ["S4DLayer", "S4Layer"]
