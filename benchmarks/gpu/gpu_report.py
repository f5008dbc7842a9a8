"""Collect what benchmarks/gpu/run_gpu_check.sh wrote in OUT_DIR into OUT_DIR/gpu_check.json and print the
Markdown tables for benchmarks/RESULTS.md.

    python benchmarks/gpu/gpu_report.py OUT_DIR
"""

from __future__ import annotations

import json
import pathlib
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict


def _read(path: pathlib.Path):
    try:
        return path.read_text()
    except OSError:
        return None


def tests_summary(out: pathlib.Path) -> dict:
    text = _read(out / "tests.xml")
    if text is None:
        return {"missing": True}
    suite = ET.fromstring(text)
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    failed = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None or c.find("error") is not None]
    return {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")} | {
        "time_s": float(suite.get("time", 0)), "failed": failed}


def bench_rows(out: pathlib.Path) -> list[dict]:
    text = _read(out / "bench_gpu.json")
    if text is None:
        return []
    data = json.loads(text)
    rows = []
    for b in data.get("benchmarks", []):
        info = b.get("extra_info", {})
        rows.append({**info, "name": b["name"], "wall_median_ms": b["stats"]["median"] * 1e3})
    return rows


def main(argv=None) -> int:
    out = pathlib.Path((argv or sys.argv[1:])[0])
    steps = dict(line.split("=", 1) for line in (_read(out / "steps.txt") or "").split() if "=" in line)
    errors = json.loads(_read(out / "errors.json") or "{}")
    rows = bench_rows(out)
    report = {
        "device": (_read(out / "nvidia-smi.txt") or "").strip(), "versions": (_read(out / "versions.txt") or "").strip(),
        "steps": steps, "tests": tests_summary(out), "errors": errors, "benchmarks": rows,
    }
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1))

    print(f"device: {report['device']}; {report['versions']}")
    t = report["tests"]
    print(f"tests/ops/test_triton.py on CUDA: {t}")
    print()
    if errors.get("rows"):
        print("| op | path | dtype | n | max rel. error | bound |")
        print("|---|---|---|---:|---:|---:|")
        for r in errors["rows"]:
            print(f"| {r['op']} | {r['path']} | {r['dtype']} | {r['n']} | {r['max_rel_err']:.2e} | {r['bound']:.0e} |")
        print()
    ssm = defaultdict(dict)
    for r in rows:
        if r.get("subject") == "ssm_gpu":
            ssm[(r["task"], r["dtype"], r["rate"])][r["impl"]] = r.get("gpu_ms")
    if ssm:
        print("SSM part (sparse_fftconv + GELU), CUDA-event medians in us; speedups = contender / ours")
        print("| task | dtype | rate | ours | ours fallback | torch.fft+gather/scatter | dense | vs torch | vs dense |")
        print("|---|---|---|---:|---:|---:|---:|---:|---:|")
        for (task, dtype, rate), v in sorted(ssm.items()):
            us = {k: (x * 1e3 if x else None) for k, x in v.items()}
            f = lambda k: f"{us[k]:.1f}" if us.get(k) else "-"  # noqa: E731
            sp = lambda k: f"{us[k] / us['ours']:.2f}x" if us.get(k) and us.get("ours") else "-"  # noqa: E731
            print(f"| {task} | {dtype} | {int(rate * 100)} % | {f('ours')} | {f('ours_fallback')} | {f('torch_gather')} "
                  f"| {f('dense')} | {sp('torch_gather')} | {sp('dense')} |")
        print()
    for subject, title in (("kernel_gpu", "kernel generation (s4d_kernel, active rows)"),
                           ("layer_gpu", "one S4D layer forward (eval, spectra cached)")):
        table = defaultdict(dict)
        for r in rows:
            if r.get("subject") == subject:
                table[(r["task"], r["rate"])][r["impl"]] = r.get("gpu_ms")
        if table:
            impls = sorted({k for v in table.values() for k in v})
            print(f"{title}, CUDA-event medians in us")
            print("| task | rate | " + " | ".join(impls) + " |")
            print("|---|---|" + "---:|" * len(impls))
            for (task, rate), v in sorted(table.items()):
                cells = " | ".join(f"{v[i] * 1e3:.1f}" if v.get(i) else "-" for i in impls)
                print(f"| {task} | {int(rate * 100)} % | {cells} |")
            print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
