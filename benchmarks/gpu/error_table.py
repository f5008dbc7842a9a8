"""Maximum normwise relative error of the ``"triton"`` backend against the float64 reference, per op, dtype and
FFT length n: on a CUDA device compiled, otherwise in Triton's interpreter on CPU tensors (TRITON_INTERPRET=1 is
set here when there is no GPU).

    .venv/bin/python benchmarks/gpu/error_table.py [--json FILE] [--seeds 3]

Error measure as tests/tolerances.py: max|y - y64| / max|y64| over one call's output; the table keeps the largest
over seeds, pruning rates (0, 50, 90 %) and both activations (none; GELU with the ones channel).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

import torch

ON_GPU = torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET", "0") in ("", "0")
if not ON_GPU:
    os.environ["TRITON_INTERPRET"] = "1"
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tests"))

from factories import dplr_args, make_conv_args, make_s4d  # noqa: E402
from formulas import dplr_op_kernel64, s4d_kernel64  # noqa: E402
from tolerances import RTOL, relative_error  # noqa: E402

from s4op_kernels.ops import _triton_kernels as tk  # noqa: E402
from s4op_kernels.ops import sparse_fftconv_ref  # noqa: E402

DEVICE = torch.device("cuda" if ON_GPU else "cpu")
# (L, n): n from 16 to the fused path's cut (8192) and past it.
SIZES = [(8, 16), (13, 27), (100, 200), (300, 640), (500, 1024), (1000, 2000), (2048, 4096), (4096, 8192),
         (5000, 10000)]
RATES = (0.0, 0.5, 0.9)


def conv_rows(seeds: int) -> list[dict]:
    dtypes = [torch.float32, torch.float16] + ([torch.bfloat16] if ON_GPU else [])
    rows = []
    for L, n in SIZES:
        B, H = (2, 5) if n <= 2048 else (1, 3)
        paths = ["fused", "fallback"] if tk.fft_plan(n) is not None else ["fallback"]
        for dtype in dtypes:
            for path in paths:
                worst = 0.0
                for seed in range(seeds):
                    for rate in RATES:
                        args, args64 = make_conv_args(B, H, L, n, rate, dtype, seed * 100 + L, DEVICE)
                        for act, ones in (("none", False), ("gelu", True)):
                            y = tk.sparse_fftconv(*args, n, act, ones, path=path)
                            worst = max(worst, relative_error(y, sparse_fftconv_ref(*args64, n, act, ones)))
                rows.append(dict(op="sparse_fftconv", path=path, dtype=str(dtype).split(".")[1], n=n, L=L,
                                 max_rel_err=worst, bound=RTOL[dtype]))
    return rows


def kernel_rows(seeds: int) -> list[dict]:
    rows = []
    for dtype in (torch.float32, torch.float64):
        for L in (64, 1000, 4096):
            worst = 0.0
            for seed in range(seeds):
                k = make_s4d(4, 64, seed, dtype).kernel
                params = [t.detach() for t in (k.C, k.log_dt, k.log_A_real, k.A_imag)]
                K = tk.s4d_kernel(*(t.to(DEVICE) for t in params), L)
                worst = max(worst, relative_error(K, s4d_kernel64(*params, L)))
            rows.append(dict(op="s4d_kernel", path="-", dtype=str(dtype).split(".")[1], n=L, L=L, max_rel_err=worst,
                             bound=RTOL[dtype]))
        for M in (64, 1000, 4096):
            worst = 0.0
            for seed in range(seeds):
                args = dplr_args(3, 32, seed=seed + M, dtype=dtype)
                kf = tk.dplr_spectrum(*(t.to(DEVICE) for t in args), M)
                worst = max(worst, relative_error(torch.fft.irfft(kf.cpu(), n=M), dplr_op_kernel64(args, M)))
            rows.append(dict(op="dplr_spectrum", path="-", dtype=str(dtype).split(".")[1], n=M, L=M,
                             max_rel_err=worst, bound=RTOL[dtype]))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=pathlib.Path, help="also write the rows as JSON to this file")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    rows = conv_rows(args.seeds) + kernel_rows(args.seeds)
    where = torch.cuda.get_device_name() if ON_GPU else "Triton interpreter on CPU tensors (TRITON_INTERPRET=1)"
    print(f"# triton backend vs the float64 reference: {where}; {args.seeds} seeds x rates {RATES} x 2 activations")
    print("| op | path | dtype | n | L | max rel. error | bound (tests/tolerances.py) |")
    print("|---|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['op']} | {r['path']} | {r['dtype']} | {r['n']} | {r['L']} | {r['max_rel_err']:.2e} | {r['bound']:.0e} |")
    print(f"({time.perf_counter() - t0:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(dict(device=where, rows=rows), indent=1))
    bad = [r for r in rows if not r["max_rel_err"] <= r["bound"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
