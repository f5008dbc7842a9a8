"""Turn pytest-benchmark JSON files of bench_layer.py / bench_ops.py into the Markdown tables of
RESULTS.md, with the ratios the engine is held to.

    python benchmarks/summarize.py benchmarks/layer.json benchmarks/ops.json
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict


def load(paths):
    rows = []
    machine = None
    for p in paths:
        data = json.load(open(p))
        machine = machine or data.get("machine_info", {})
        for b in data["benchmarks"]:
            info = b["extra_info"]
            rows.append({**info, "shape": tuple(info["shape"]), "median_ms": 1e3 * b["stats"]["median"]})
    return rows, machine


def fmt_shape(s):
    return "B={} H={} N={} L={}".format(*s)


def ratio_table(rows) -> list[str]:
    """Markdown lines of the paired-ratio table (rows as harness.measure_ratios returns them)."""
    out = ["| shape | rate | ours ms | floor ms | ours / floor | SSM ms | SSM dense ms | SSM / dense | "
           "active fraction | difference | fused pass: SSM share / dense | difference | u.clone() ms |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (tuple(r["shape"]), r["rate"])):
        out.append(f"| {fmt_shape(r['shape'])} | {int(r['rate'] * 100)} % | {r['ours_ms']:.2f} | {r['floor_ms']:.2f} | "
                   f"{r['ours_over_floor']:.2f} | {r['ssm_ms']:.2f} | {r['ssm_dense_ms']:.2f} | {r['ssm_fraction']:.3f} | "
                   f"{r['active_fraction']:.3f} | {r['ssm_deviation']:+.3f} | "
                   f"{r.get('fused_ssm_fraction', float('nan')):.3f} | {r.get('fused_ssm_deviation', float('nan')):+.3f} | "
                   f"{r.get('clone_ms', float('nan')):.2f} |")
    return out


def cache_table(rows) -> list[str]:
    """Markdown lines of bench_cache.py: the exact check against the former version token, paired."""
    out = ["| what | shape | rate | forward, exact check us | forward, version token us | exact / token | "
           "control / token (IQR) | lookup, exact us | lookup, token us |", "|---|---|---|---|---|---|---|---|---|"]
    nan = float("nan")
    for r in sorted(rows, key=lambda r: (r["impl"], tuple(r["shape"]), r["rate"])):
        q1, q3 = r["control_iqr"]
        out.append(f"| {r['impl']} | {fmt_shape(r['shape'])} | {int(r['rate'] * 100)} % | {r['exact_us']:.1f} | "
                   f"{r['token_us']:.1f} | {r['exact_over_token']:.3f} | {r['control_over_token']:.3f} "
                   f"({q1:.3f}-{q3:.3f}) | {r.get('lookup_exact_us', nan):.2f} | {r.get('lookup_token_us', nan):.2f} |")
    return out


def main(paths):
    rows, machine = load(paths)
    out = []
    paired = [r for r in rows if r.get("subject") == "ratios"]
    if paired:
        out.append("Paired rounds (bench_ratios.py), medians of per-round ratios:\n")
        out.extend(ratio_table(paired))
        out.append("")
        rows = [r for r in rows if r.get("subject") != "ratios"]
    cache = [r for r in rows if r.get("subject") == "cache"]
    if cache:
        out.append("The inference cache's exact check against the former version token (bench_cache.py), "
                   "paired rounds, medians:\n")
        out.extend(cache_table(cache))
        out.append("")
        rows = [r for r in rows if r.get("subject") != "cache"]
    by = defaultdict(dict)
    extra = {}
    for r in rows:
        by[(r["subject"], r["shape"], r["rate"])][r["impl"]] = r["median_ms"]
        if r["subject"] == "layer":
            extra[(r["shape"], r["rate"], r["impl"])] = r
    if machine:
        out.append(f"Machine: {machine.get('cpu', {}).get('brand_raw', '?')}, {machine.get('cpu', {}).get('count', '?')} logical CPUs, "
                   f"Python {machine.get('python_version', '?')}.\n")
    shapes = sorted({k[1] for k in by})
    for shape in shapes:
        rates = sorted({k[2] for k in by if k[1] == shape})
        out.append(f"### {fmt_shape(shape)}\n")
        out.append("| rate | reference ms | paper pruned ms | floor ms | ours ms | ours / floor | largest temporary / input |")
        out.append("|---|---|---|---|---|---|---|")
        for rate in rates:
            t = by.get(("layer", shape, rate), {})
            if not t:
                continue
            e = extra.get((shape, rate, "ours"))
            mem = f"{e['largest_alloc_bytes'] / e['input_bytes']:.2f}" if e else "-"
            ratio = t["ours"] / t["floor"] if "ours" in t and "floor" in t else float("nan")
            out.append(f"| {int(rate * 100)} % | {t.get('reference', float('nan')):.2f} | {t.get('paper_pruned', float('nan')):.2f} | "
                       f"{t.get('floor', float('nan')):.2f} | {t.get('ours', float('nan')):.2f} | {ratio:.2f} | {mem} |")
        out.append("")
        ssm = {rate: by.get(("ssm", shape, rate), {}) for rate in rates}
        if ssm.get(0.0, {}).get("cpu"):
            base = ssm[0.0]["cpu"]
            out.append("| rate | SSM part (cpu) ms | SSM reference ms | time / time at 0 % | active fraction | difference |")
            out.append("|---|---|---|---|---|---|")
            for rate in rates:
                t = ssm[rate]
                if "cpu" not in t:
                    continue
                frac = t["cpu"] / base
                out.append(f"| {int(rate * 100)} % | {t['cpu']:.2f} | {t.get('reference', float('nan')):.2f} | {frac:.3f} | "
                           f"{1 - rate:.3f} | {frac - (1 - rate):+.3f} |")
            out.append("")
        kern = {rate: by.get(("kernel", shape, rate), {}) for rate in rates}
        if any(kern.values()):
            out.append("| rate | kernel generation (cpu) ms | reference ms | rfft + irfft pair ms | cpu / pair |")
            out.append("|---|---|---|---|---|")
            for rate in rates:
                t = kern[rate]
                if "cpu" not in t or "fft_pair" not in t:
                    continue
                out.append(f"| {int(rate * 100)} % | {t['cpu']:.2f} | {t.get('reference', float('nan')):.2f} | {t['fft_pair']:.2f} | "
                           f"{t['cpu'] / t['fft_pair']:.2f} |")
            out.append("")
    print("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1:])
