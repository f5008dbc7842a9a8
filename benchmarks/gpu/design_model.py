"""The paper-design table of the Triton sparse_fftconv for an H100/H200-class GPU: bytes and FLOPs of the fused
kernel at the paper's layer sizes, the bound, and the expected GPU time against torch.fft + gather/scatter
(the op's reference on CUDA), per pruning rate.  A model, not a measurement: every constant is below.

    python benchmarks/gpu/design_model.py [--gpu h100|h200]
"""

from __future__ import annotations

import argparse
import math
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tests"))

from shapes import PAPER_SHAPES  # noqa: E402

GPUS = {  # HBM bandwidth (B/s), dense tensor-core peaks (FLOP/s), SMs
    "h100": dict(bw=3.35e12, bf16=989e12, tf32=495e12, sms=132),
    "h200": dict(bw=4.8e12, bf16=989e12, tf32=495e12, sms=132),
}
MMA_EFFICIENCY = 0.4  # of the tensor-core peak reached by one program's chain of small dependent tl.dot tiles
HBM_EFFICIENCY = 0.8  # of the bandwidth reached by streaming kernels
LAUNCH_GAP_S = 2.5e-6  # GPU-side gap per dependent kernel launch (queued launches, no CPU stall)
RATES = (0.0, 0.5, 0.9)
DEFAULT_CUT = {"fp32": 4096, "bf16": 8192}  # ops/_triton_kernels.FUSED_DEFAULT_MAX_TILE


def fft_size(L: int) -> int:
    m = 2 * L - 1
    while True:
        r = m
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 1


def plan(n: int) -> tuple[int, int]:
    """(P1, P2) of ops/_triton_kernels.fft_plan for the power-of-two n of the paper's sizes."""
    e = int(math.log2(n))
    P1 = 1 << (e - e // 2)  # the larger factor first: fewer multiply-adds, P1 P2 (P1 + 2 P2)
    return max(16, P1), max(16, n // P1)


def ours(B, H, L, n, A, s, gpu, fp32):
    P1, P2 = plan(n)
    mma = B * A * 8 * P1 * P2 * (P1 + 2 * P2) * (3 if fp32 else 1)  # 12 dots; tf32x3 = 3 TF32 passes
    peak = gpu["tf32"] if fp32 else gpu["bf16"]
    per_row = 8 * P1 * P2 * (P1 + 2 * P2) * (3 if fp32 else 1) / (peak / gpu["sms"] * MMA_EFFICIENCY)
    waves = math.ceil(B * A / gpu["sms"])  # one resident program per SM (large tiles)
    nbytes = 2 * B * H * L * s + A * (n // 2 + 1) * 8  # u in, y out, the active spectra
    t_mem = nbytes / (gpu["bw"] * HBM_EFFICIENCY)
    t_mma = waves * per_row
    return nbytes, mma, t_mem, t_mma, max(t_mem, t_mma) + LAUNCH_GAP_S


def fallback(B, H, L, n, A, s):
    """Bytes per kernel of the triton backend's fallback: gather, (to float32), pad, rfft, product in place,
    irfft (its input copy), the Triton epilogue."""
    F = n // 2 + 1
    k = [B * A * L * s * 2] + ([B * A * L * 6] if s == 2 else []) + [
        B * A * (L * 4 + n * 4), B * A * (n * 4 + F * 8), B * A * F * 8 * 3, B * A * F * 8 * 2,
        B * A * (F * 8 + n * 4), B * A * L * 4 + 2 * B * H * L * s]
    return sum(k), k


def streamed(kernels, gpu) -> float:
    return sum(max(b / (gpu["bw"] * HBM_EFFICIENCY), LAUNCH_GAP_S) for b in kernels)


def torch_path(B, H, L, n, A, s):
    """Bytes per kernel of sparse_fftconv_ref on CUDA (fp32 compute; half inputs converted in and out)."""
    F = n // 2 + 1
    k = [
        B * A * L * 4 * 2,  # gather (index_select)
        B * A * (L * 4 + n * 4),  # zero-pad to n
        B * A * (n * 4 + F * 8),  # rfft
        B * A * F * 8 * 3,  # product with k_f
        B * A * F * 8 * 2,  # irfft input copy (C2R overwrites its input)
        B * A * (F * 8 + n * 4),  # irfft
        B * A * L * 4 * 2,  # D * ua
        B * A * L * 4 * 3,  # + (strided slice)
        B * H * L * 4 * 2,  # clone of u for index_copy
        B * A * L * 4 * 2,  # index_copy
        B * H * L * 4 * 2,  # gelu
    ]
    if s == 2:
        k += [B * H * L * 6, B * H * L * 6]  # u.float(), y.to(bf16)
    return sum(k), k


def rows(gpu) -> list[dict]:
    out = []
    for task, (B, H, _, L) in PAPER_SHAPES.items():
        n = fft_size(L)
        P1, P2 = plan(n)
        for dtype, s in (("fp32", 4), ("bf16", 2)):
            for rate in RATES:
                A = H - round(rate * H)
                nbytes, mma, t_mem, t_mma, t = ours(B, H, L, n, A, s, gpu, dtype == "fp32")
                path = "fused" if P1 * P2 <= DEFAULT_CUT[dtype] else "fallback"
                if path == "fallback":
                    t = streamed(fallback(B, H, L, n, A, s)[1], gpu)
                tb, kernels = torch_path(B, H, L, n, A, s)
                bound = "memory" if t_mem >= t_mma else "MMA latency" if B * A <= gpu["sms"] else "MMA"
                out.append(dict(task=task, B=B, H=H, L=L, n=n, tile=f"{P1}x{P2}", dtype=dtype, rate=rate, A=A,
                                mb=nbytes / 1e6, gflop=mma / 1e9, t_mem=t_mem * 1e6, t_mma=t_mma * 1e6, bound=bound,
                                path=path, ours=t * 1e6, torch_mb=tb / 1e6, torch_kernels=len(kernels),
                                torch=streamed(kernels, gpu) * 1e6))
    return out


def compact(gpus) -> None:
    """One line per (task, dtype), the three rates side by side, the speedup on each GPU."""
    tables = {name: rows(GPUS[name]) for name in gpus}
    first = tables[gpus[0]]
    print("| task (B, H, L) | n, tile | dtype | default path | fused kernel MB | GFLOP (MMA) | bound (fused) | "
          + " | ".join(f"{g.upper()} ours / torch us | {g.upper()} speedup" for g in gpus) + " |")
    print("|---|---|---|---|---|---|---|" + "---|---|" * len(gpus))
    for i in range(0, len(first), len(RATES)):
        grp = first[i:i + len(RATES)]
        r0 = grp[0]
        cells = [f"{r0['task']} ({r0['B']}, {r0['H']}, {r0['L']})", f"{r0['n']}, {r0['tile']}", r0["dtype"], r0["path"],
                 " / ".join(f"{r['mb']:.1f}" for r in grp), " / ".join(f"{r['gflop']:.2f}" for r in grp),
                 " / ".join(sorted({r['bound'] for r in grp}, key=[r['bound'] for r in grp].index))]
        for g in gpus:
            gg = tables[g][i:i + len(RATES)]
            cells.append(" / ".join(f"{r['ours']:.0f}:{r['torch']:.0f}" for r in gg))
            cells.append(" / ".join(f"{r['torch'] / r['ours']:.1f}x" for r in gg))
        print("| " + " | ".join(cells) + " |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpu", choices=list(GPUS), default="h100")
    parser.add_argument("--compact", action="store_true",
                        help="one line per task and dtype (rates 0 / 50 / 90 %%), H100 and H200 side by side")
    args = parser.parse_args(argv)
    if args.compact:
        print(f"# rates {' / '.join(f'{int(r * 100)} %' for r in RATES)}; MMA efficiency {MMA_EFFICIENCY}, HBM "
              f"efficiency {HBM_EFFICIENCY}, launch gap {LAUNCH_GAP_S * 1e6:.1f} us")
        compact(["h100", "h200"])
        return 0
    gpu = GPUS[args.gpu]
    print(f"# model: {gpu}, MMA efficiency {MMA_EFFICIENCY}, HBM efficiency {HBM_EFFICIENCY}, "
          f"launch gap {LAUNCH_GAP_S * 1e6:.1f} us")
    print("| task (B, H, L) | n, tile | dtype | rate | A | fused: MB | fused: GFLOP (MMA) | t_mem us | t_mma us "
          "| bound | path (default) | ours us | torch.fft+gather: MB, kernels | torch us | expected speedup |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---|---|---:|---|---:|---:|")
    for task, (B, H, _, L) in PAPER_SHAPES.items():
        n = fft_size(L)
        P1, P2 = plan(n)
        for dtype, s in (("fp32", 4), ("bf16", 2)):
            for rate in RATES:
                A = H - round(rate * H)
                nbytes, mma, t_mem, t_mma, t = ours(B, H, L, n, A, s, gpu, dtype == "fp32")
                path = "fused" if P1 * P2 <= DEFAULT_CUT[dtype] else "fallback"
                if path == "fallback":
                    t = streamed(fallback(B, H, L, n, A, s)[1], gpu)
                tb, kernels = torch_path(B, H, L, n, A, s)
                tt = streamed(kernels, gpu)
                bound = "memory" if t_mem >= t_mma else "MMA latency" if B * A <= gpu["sms"] else "MMA"
                print(f"| {task} ({B}, {H}, {L}) | {n}, {P1}x{P2} | {dtype} | {int(rate * 100)} % | {A} | "
                      f"{nbytes / 1e6:.1f} | {mma / 1e9:.2f} | {t_mem * 1e6:.1f} | {t_mma * 1e6:.1f} | {bound} | {path} | "
                      f"{t * 1e6:.1f} | {tb / 1e6:.0f}, {len(kernels)} | {tt * 1e6:.1f} | {tt / t:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
