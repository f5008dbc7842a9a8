"""``python -m s4op_kernels.info``: how this installation was built and what it can run."""

from __future__ import annotations

import argparse
import importlib
import platform
import sys
from typing import Any, Optional

# The shapes ``--mixing`` times (B, H, L): the benchmarks' layers and one layer of the main job's model.
MIXING_SHAPES = ((1, 256, 4096), (8, 128, 1024), (1, 128, 4096), (1, 32, 256))


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
    info["output_mixing"] = mixing_info()
    return info


def mixing_info() -> dict[str, str]:
    """The inference output mixing: the ``S4OP_MIXING`` override, and what ``auto`` chose for each shape
    class timed in this process so far (layers/_mixing.py)."""
    from s4op_kernels.layers import _mixing

    try:
        forced = _mixing.override()
        override = f"{forced} (forced by {_mixing.ENV_VAR})" if forced else f"auto ({_mixing.ENV_VAR} unset or auto)"
    except ValueError as err:
        override = f"invalid: {err}"
    out = {"override": override, "methods": ", ".join(_mixing.METHODS) + f" (default {_mixing.DEFAULT})"}
    chosen = _mixing.choices()
    if not chosen:
        out["chosen"] = ("none timed in this process yet (the first inference forward of each shape class times "
                         "them); `python -m s4op_kernels.info --mixing` times the benchmark shapes")
    for c in chosen:
        batch = "B=1" if c["batch"] == "1" else "B>1"
        what = f"{c['dtype']} {c['threads']} threads H={c['H']} {batch} B*L in {c['B*L']}"
        times = ", ".join(f"{m} {t:.0f} us" for m, t in sorted(c["time_us"].items(), key=lambda kv: kv[1]))
        out[what] = f"{c['method']}" + (f"  (timed: {times})" if times else "")
    return out


def main(argv: Optional[list[str]] = None) -> int:
    """Print :func:`collect`.  ``argv`` (``python -m s4op_kernels.info`` passes its arguments; ``s4op info``
    none): ``--mixing`` first times the output mixing methods at :data:`MIXING_SHAPES`."""
    parser = argparse.ArgumentParser(prog="python -m s4op_kernels.info", description=__doc__)
    parser.add_argument("--mixing", action="store_true",
                        help="time the output mixing methods at the benchmark shapes (float32) and report the choice")
    args = parser.parse_args([] if argv is None else argv)
    if args.mixing:
        from s4op_kernels.layers import _mixing

        for B, H, L in MIXING_SHAPES:
            _mixing.measure_shape(B, H, L)
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
    raise SystemExit(main(sys.argv[1:]))
