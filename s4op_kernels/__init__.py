"""s4op_kernels: operator-pruned S4/S4D layers with sparse-channel kernels, and the S4oP pruner.

Importing this package never imports Triton nor initializes CUDA.
"""

from s4op_kernels.ops.dispatch import available_backends, current_backend, use_backend
from s4op_kernels.layers.s4 import S4Layer
from s4op_kernels.layers.s4d import S4DLayer

__version__ = "0.1.0"

__all__ = ["S4DLayer", "S4Layer", "available_backends", "current_backend", "use_backend", "__version__"]
