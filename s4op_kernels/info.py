"""``python -m s4op_kernels.info``: how this installation was built and what it can run."""

from __future__ import annotations

import importlib
import platform
import sys
from typing import Any


def collect() -> dict[str, Any]:
    """Build and runtime facts as a dict (the compiled core's build_info included when it loads)."""
    import torch

    import s4op_kernels
    from s4op_kernels import _ext

    info: dict[str, Any] = {
        "s4op_kernels": s4op_kernels.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
        "backends": s4op_kernels.available_backends(),
    }
    try:
        info["extension"] = dict(_ext.C().build_info())
        info["extension"]["threading_runtime"] = _ext.threading_backend()
    except ImportError as err:
        info["extension"] = f"unavailable: {err}"
    try:  # importing Triton is allowed here, never in `import s4op_kernels`
        triton = importlib.import_module("triton")
        info["triton"] = getattr(triton, "__version__", "importable")
    except Exception as err:  # ImportError, or a broken install raising something else
        info["triton"] = f"not importable ({type(err).__name__}: {err})".strip()
    return info


def main() -> int:
    info = collect()
    width = max(len(k) for k in info)
    for key, value in info.items():
        if isinstance(value, dict):
            print(f"{key}:")
            sub = max(len(k) for k in value)
            for k, v in value.items():
                print(f"  {k:<{sub}}  {v}")
        else:
            print(f"{key:<{width}}  {value}")
    return 0 if isinstance(info["extension"], dict) else 1


if __name__ == "__main__":
    raise SystemExit(main())
