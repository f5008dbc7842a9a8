"""Wall time of ``s4op prune`` with each executor on one small task, and the check that they agree.

    python benchmarks/executors.py [--rounds 1] [--work DIR] [--n-train 500] [--seeds 7,42,123,2024]

Trains one baseline (``s4op train``: ecg-synthetic, ecg-embedded, 3 epochs), then times
``s4op prune --checkpoint`` (rates 30,70, one fine-tuning epoch per candidate) into a fresh folder per
executor and round, the executors interleaved within each round:

    local            the candidates one after another, torch's default threads (all cores)
    local-1-thread   the same with --task-cpus 1
    processes        --executor processes (cores // 1 workers, one thread each)
    ray              --executor ray (a local Ray instance started by the command, one CPU per task);
                     skipped, with the reason, when Ray is not installed

Prints the wall times (each command from start to exit, as a user sees it: interpreter start, data
generation, the search, latency probes, report) and compares every run with ``local-1-thread``: the rows of
``search.json`` (chosen seeds, validation/test metrics, every candidate's validation metric, active
channels, parameters) and the rate checkpoints bit for bit (else the largest absolute difference).
Run it from anywhere with the package installed; it never imports the source tree.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXECUTORS = {
    "local": ["--executor", "local"],
    "local-1-thread": ["--executor", "local", "--task-cpus", "1"],
    "processes": ["--executor", "processes", "--task-cpus", "1"],
    "ray": ["--executor", "ray", "--task-cpus", "1"],
}
REFERENCE = "local-1-thread"


def s4op(args: list[str], cwd: Path) -> float:
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "s4op_kernels.app.cli", *args], cwd=cwd, capture_output=True,
                          text=True)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"s4op {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return wall


def comparable(out: Path) -> list[dict]:
    state = json.loads((out / "search.json").read_text())
    keep = ("rate", "seed", "val_metric", "test_metric", "params", "active_channels")
    return [{**{k: r[k] for k in keep}, "candidates": [(c["seed"], c["val_metric"]) for c in r["candidates"]]}
            for r in state["rates"]]


def weight_difference(a: Path, b: Path) -> tuple[bool, float]:
    """(bitwise equal, largest absolute difference) of two safetensors files."""
    from safetensors.torch import load_file

    x, y = load_file(a), load_file(b)
    if x.keys() != y.keys():
        return False, float("inf")
    equal, largest = True, 0.0
    for k in x:
        if x[k].dtype != y[k].dtype or x[k].shape != y[k].shape:
            return False, float("inf")
        if not x[k].equal(y[k]):
            equal = False
            if x[k].is_floating_point():
                largest = max(largest, float((x[k].double() - y[k].double()).abs().max()))
    return equal, largest


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--work", type=Path, default=None, help="working folder (default: a new temporary one)")
    p.add_argument("--n-train", type=int, default=500)
    p.add_argument("--seeds", default="7,42,123,2024")
    args = p.parse_args(argv)
    work = (args.work or Path(tempfile.mkdtemp(prefix="s4op-executors-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    data = ["-o", f"n_train={args.n_train}", "-o", f"n_val={args.n_train // 4}", "-o", f"n_test={args.n_train // 4}"]
    skipped = {}
    if importlib.util.find_spec("ray") is None:
        skipped["ray"] = 'Ray is not installed (pip install "s4op-kernels[ray]")'
    names = [n for n in EXECUTORS if n not in skipped]

    base = work / "baseline"
    if not (base / "model.safetensors").exists():
        s4op(["train", "--task", "ecg-synthetic", "--config", "ecg-embedded", "--epochs", "3", "--out", str(base),
              "--quiet", *data], work)
    prune = ["prune", "--task", "ecg-synthetic", "--checkpoint", str(base / "model"), "--rates", "30,70",
             "--seeds", args.seeds, "--finetune-epochs", "1", "--no-progress", *data]
    walls: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.rounds):
        order = names[r % len(names):] + names[:r % len(names)]  # a different executor first each round
        for name in order:
            out = work / f"round{r}-{name}"
            if out.exists():
                raise SystemExit(f"{out} exists: give a fresh --work folder")
            walls[name].append(s4op([*prune, "--out", str(out), *EXECUTORS[name]], work))
            print(f"round {r}: {name} {walls[name][-1]:.1f} s", file=sys.stderr, flush=True)

    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else \
        platform.processor()
    print(f"`s4op prune` on ecg-synthetic (ecg-embedded, n_train={args.n_train}, rates 30,70, seeds {args.seeds}, "
          f"1 fine-tuning epoch), {os.cpu_count()} cores ({cpu}), torch {torch.__version__}, {args.rounds} "
          f"round(s), wall time per command (s):\n")
    print("| executor | median | vs local | each round |\n|---|---|---|---|")
    median = {n: statistics.median(w) for n, w in walls.items()}
    for name in names:
        print(f"| {name} | {median[name]:.1f} | {median[name] / median['local']:.2f}x | "
              f"{' / '.join(f'{w:.1f}' for w in walls[name])} |")
    for name, why in skipped.items():
        print(f"| {name} | skipped: {why} | | |")

    print(f"\nEquality with {REFERENCE} (round 0):\n")
    ref = work / f"round0-{REFERENCE}"
    for name in names:
        if name == REFERENCE:
            continue
        out = work / f"round0-{name}"
        same_rows = comparable(out) == comparable(ref)
        checks = []
        for rate in ("rate_30", "rate_70"):
            equal, largest = weight_difference(out / f"{rate}.safetensors", ref / f"{rate}.safetensors")
            checks.append(f"{rate} weights {'bitwise equal' if equal else f'differ, max |diff| {largest:.3g}'}")
        rows = comparable(out)
        seeds = [r["seed"] for r in rows]
        print(f"- {name}: search rows (seeds {seeds}, metrics, candidates, active channels, params) "
              f"{'equal' if same_rows else 'DIFFER'}; " + "; ".join(checks))
    print(f"\n(run folders in {work})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
