"""``s4op bench-report``: pytest-benchmark JSON files of ``pytest benchmarks/ --benchmark-only
--benchmark-json=FILE`` turned into one Markdown report, with PNG plots.

The one formatter of the suite's results (``benchmarks/summarize.py`` and ``benchmarks/interleaved.py`` call
it): a header with the machine (CPU model, logical CPUs, threads, torch and package versions, commit) and one
section per subject the benchmarks record in ``extra_info["subject"]``: the SSM part and kernel generation
(``ssm``, ``kernel``), one S4D layer (``layer``), the paired ratios (``ratios``), one S4 layer (``s4_layer``,
``s4_kernel``), the inference-cache check (``cache``), whole models (``model``) and scaling (``scaling``).
Times are pytest-benchmark's medians in ms; a ratio to the floor is the benchmark's own paired ratio
(``extra_info["ratio_to_floor"]``, medians of per-round ratios) where it recorded one, else the ratio of the
medians (marked so).  Plots (matplotlib's object API, no display needed): latency against the pruning rate per
task (whole models) and latency against L, log-log, with a fitted c L log2 L (scaling).
"""

from __future__ import annotations

import json
import math
import os
import pathlib
from collections import defaultdict
from typing import Any, Iterable, Optional, Sequence, Union

PathLike = Union[str, os.PathLike]
NAN = float("nan")

RUN_HINT = "write one with `pytest benchmarks/ --benchmark-only --benchmark-json=FILE`"


# ---------------------------------------------------------------------- loading
def load(paths: Sequence[PathLike]) -> tuple[list[dict], dict]:
    """The rows of pytest-benchmark JSON files (each benchmark's ``extra_info`` plus ``name`` and
    ``median_ms``) and the first file's ``machine_info`` (with ``commit_info`` and ``datetime`` added).

    Raises FileNotFoundError for a missing file and ValueError, naming the file, for one that is not a
    pytest-benchmark JSON file or holds no benchmark."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise ValueError("bench-report: no results file given; " + RUN_HINT)
    rows: list[dict] = []
    machine: dict = {}
    for p in paths:
        path = pathlib.Path(p)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
        try:
            data = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: not a JSON file ({err}); {RUN_HINT}") from None
        benchmarks = data.get("benchmarks") if isinstance(data, dict) else None
        if not isinstance(benchmarks, list) or not isinstance(data.get("machine_info"), dict):
            raise ValueError(f"{path}: not a pytest-benchmark JSON file (no 'benchmarks' list and 'machine_info'); "
                             + RUN_HINT)
        if not benchmarks:
            raise ValueError(f"{path}: holds no benchmark results (were they all skipped or deselected? "
                             "Run with --benchmark-only)")
        if not machine:
            machine = dict(data["machine_info"], commit_info=data.get("commit_info") or {},
                           datetime=data.get("datetime"))
        for i, b in enumerate(benchmarks):
            try:
                median = float(b["stats"]["median"])
            except (TypeError, KeyError, ValueError):
                raise ValueError(f"{path}: benchmark {i} ({b.get('name', '?') if isinstance(b, dict) else b!r}) has "
                                 "no stats.median; not a pytest-benchmark JSON file") from None
            info = b.get("extra_info") or {}
            rows.append({**info, "name": b.get("name", "?"), "median_ms": 1e3 * median,
                         "subject": info.get("subject", "other")})
    return rows, machine


# ---------------------------------------------------------------------- formatting helpers
def fmt_shape(s) -> str:
    return "B={} H={} N={} L={}".format(*s)


def _pct(rate) -> str:
    return f"{round(float(rate) * 100)} %"


def _num(x, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.{digits}f}"


def _table(header: Sequence[str], lines: Iterable[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out.extend("| " + " | ".join(line) + " |" for line in lines)
    return out


def _threads(machine: dict, rows: list[dict]) -> str:
    seen = sorted({r["threads"] for r in rows if isinstance(r.get("threads"), int)})
    own = (machine.get("s4op") or {}).get("threads")
    if own is not None and own not in seen:
        seen.append(own)
    return ", ".join(str(t) for t in seen) if seen else "?"


def header(machine: dict, rows: list[dict]) -> list[str]:
    cpu = machine.get("cpu") or {}
    s4op = machine.get("s4op") or {}
    commit = machine.get("commit_info") or {}
    lines = ["# Benchmark report", ""]
    lines.append(f"- CPU: {cpu.get('brand_raw', '?')} ({cpu.get('count', '?')} logical CPUs, "
                 f"{cpu.get('arch', machine.get('machine', '?'))}); threads: {_threads(machine, rows)}")
    lines.append(f"- torch {s4op.get('torch', '?')}, s4op-kernels {s4op.get('s4op_kernels', '?')}, backends "
                 f"{s4op.get('backends', '?')}; Python {machine.get('python_version', '?')} "
                 f"({machine.get('python_implementation', '?')})")
    if commit.get("id"):
        dirty = " (dirty)" if commit.get("dirty") else ""
        branch = f", branch {commit['branch']}" if commit.get("branch") else ""
        lines.append(f"- commit {commit['id'][:12]}{dirty}{branch}; run {machine.get('datetime', '?')}")
    if "paper_sizes" in s4op:
        sizes = ("the paper's (--paper-sizes)" if s4op["paper_sizes"]
                 else "reduced defaults (see bench_model.py, bench_scaling.py)")
        lines.append(f"- sizes: {sizes}")
    lines.append(f"- {len(rows)} benchmarks; times are medians in ms")
    return lines + [""]


# ---------------------------------------------------------------------- the suite's own tables
def ratio_table(rows) -> list[str]:
    """Markdown lines of the paired-ratio table (rows as harness.measure_ratios returns them)."""
    return _table(
        ["shape", "rate", "ours ms", "floor ms", "ours / floor", "SSM ms", "SSM dense ms", "SSM / dense",
         "active fraction", "difference", "fused pass: SSM share / dense", "difference", "u.clone() ms"],
        ([fmt_shape(r["shape"]), _pct(r["rate"]), f"{r['ours_ms']:.2f}", f"{r['floor_ms']:.2f}",
          f"{r['ours_over_floor']:.2f}", f"{r['ssm_ms']:.2f}", f"{r['ssm_dense_ms']:.2f}", f"{r['ssm_fraction']:.3f}",
          f"{r['active_fraction']:.3f}", f"{r['ssm_deviation']:+.3f}", f"{r.get('fused_ssm_fraction', NAN):.3f}",
          f"{r.get('fused_ssm_deviation', NAN):+.3f}", f"{r.get('clone_ms', NAN):.2f}"]
         for r in sorted(rows, key=lambda r: (tuple(r["shape"]), r["rate"]))))


def cache_table(rows) -> list[str]:
    """Markdown lines of bench_cache.py: the exact check against the former version token, paired."""
    lines = []
    for r in sorted(rows, key=lambda r: (r["impl"], tuple(r["shape"]), r["rate"])):
        q1, q3 = r["control_iqr"]
        lines.append([r["impl"], fmt_shape(r["shape"]), _pct(r["rate"]), f"{r['exact_us']:.1f}", f"{r['token_us']:.1f}",
                      f"{r['exact_over_token']:.3f}", f"{r['control_over_token']:.3f} ({q1:.3f}-{q3:.3f})",
                      f"{r.get('lookup_exact_us', NAN):.2f}", f"{r.get('lookup_token_us', NAN):.2f}"])
    return _table(["what", "shape", "rate", "forward, exact check us", "forward, version token us", "exact / token",
                   "control / token (IQR)", "lookup, exact us", "lookup, token us"], lines)


def _by_case(rows, key) -> dict:
    """{case key: {impl: row}}."""
    out: dict = defaultdict(dict)
    for r in rows:
        out[key(r)][r.get("impl", r["name"])] = r
    return out


def _ratio(t: dict, impl: str, floor: str = "floor") -> tuple[float, str]:
    """(ratio of impl to the floor, "" if paired by the benchmark else "*" for a ratio of medians)."""
    r = t.get(impl)
    if r is None:
        return NAN, ""
    if r.get("ratio_to_floor") is not None:
        return float(r["ratio_to_floor"]), ""
    if floor in t:
        return r["median_ms"] / t[floor]["median_ms"], "*"
    return NAN, ""


def _ms(t: dict, impl: str) -> str:
    return _num(t[impl]["median_ms"]) if impl in t else "-"


def layer_section(rows) -> list[str]:
    """bench_layer.py: one S4D layer per rate, four contenders; the largest temporary of ours over the input."""
    by = _by_case(rows, lambda r: (tuple(r["shape"]), r["rate"]))
    out = []
    for shape in sorted({k[0] for k in by}):
        lines = []
        for rate in sorted(k[1] for k in by if k[0] == shape):
            t = by[(shape, rate)]
            e = t.get("ours")
            mem = (_num(e["largest_alloc_bytes"] / e["input_bytes"])
                   if e and e.get("largest_alloc_bytes") is not None and e.get("input_bytes") else "-")
            ratio, mark = _ratio(t, "ours")
            lines.append([_pct(rate), _ms(t, "reference"), _ms(t, "paper_pruned"), _ms(t, "floor"), _ms(t, "ours"),
                          _num(ratio) + mark, mem])
        out += [f"#### {fmt_shape(shape)}", ""]
        out += _table(["rate", "reference ms", "paper pruned ms", "floor ms", "ours ms", "ours / floor",
                       "largest temporary / input"], lines) + [""]
    return out


def ops_section(rows) -> list[str]:
    """bench_ops.py: the SSM part per backend (time against the time at 0 %) and kernel generation against one
    rfft + irfft pair over the same channels."""
    out = []
    ssm = _by_case([r for r in rows if r["subject"] == "ssm"], lambda r: (tuple(r["shape"]), r["rate"]))
    kern = _by_case([r for r in rows if r["subject"] == "kernel"], lambda r: (tuple(r["shape"]), r["rate"]))
    for shape in sorted({k[0] for k in ssm} | {k[0] for k in kern}):
        out += [f"#### {fmt_shape(shape)}", ""]
        rates = sorted(k[1] for k in ssm if k[0] == shape)
        base = ssm.get((shape, 0.0), {}).get("cpu")
        if rates:
            lines = []
            for rate in rates:
                t = ssm[(shape, rate)]
                frac = t["cpu"]["median_ms"] / base["median_ms"] if base and "cpu" in t else NAN
                lines.append([_pct(rate), _ms(t, "cpu"), _ms(t, "reference"), _num(frac, 3), _num(1 - rate, 3),
                              "-" if math.isnan(frac) else f"{frac - (1 - rate):+.3f}"])
            out += _table(["rate", "SSM part (cpu) ms", "SSM reference ms", "time / time at 0 %", "active fraction",
                           "difference"], lines) + [""]
        rates = sorted(k[1] for k in kern if k[0] == shape)
        if rates:
            lines = []
            for rate in rates:
                t = kern[(shape, rate)]
                pair = t["cpu"]["median_ms"] / t["fft_pair"]["median_ms"] if "cpu" in t and "fft_pair" in t else NAN
                lines.append([_pct(rate), _ms(t, "cpu"), _ms(t, "reference"), _ms(t, "fft_pair"), _num(pair)])
            out += _table(["rate", "kernel generation (cpu) ms", "reference ms", "rfft + irfft pair ms", "cpu / pair"],
                          lines) + [""]
    return out


def s4_section(rows) -> list[str]:
    """bench_s4.py: one S4 (DPLR) layer per rate, six contenders, and its kernel generation."""
    out = []
    layer = _by_case([r for r in rows if r["subject"] == "s4_layer"], lambda r: (tuple(r["shape"]), r["rate"]))
    impls = ["reference", "paper_pruned", "floor", "ours_cold", "ours", "s4d_ours"]
    if layer:
        lines = []
        for (shape, rate), t in sorted(layer.items()):
            ratio, mark = _ratio(t, "ours")
            s4d = t["ours"]["median_ms"] / t["s4d_ours"]["median_ms"] if "ours" in t and "s4d_ours" in t else NAN
            lines.append([fmt_shape(shape), _pct(rate), *(_ms(t, i) for i in impls), _num(ratio) + mark, _num(s4d)])
        out += _table(["shape", "rate", "reference ms", "paper pruned ms", "floor ms", "S4 cold ms", "S4 warm ms",
                       "S4D warm ms", "S4 warm / floor", "warm S4 / S4D"], lines) + [""]
    kern = _by_case([r for r in rows if r["subject"] == "s4_kernel"], lambda r: tuple(r["shape"]))
    for shape, t in sorted(kern.items()):
        pair = t.get("fft_pair")
        lines = [[impl, _ms(t, impl), _num(t[impl]["median_ms"] / pair["median_ms"]) if pair else "-"]
                 for impl in sorted(t)]
        out += [f"Kernel generation, {fmt_shape(shape)}:", ""]
        out += _table(["what", "ms", "/ rfft + irfft pair"], lines) + [""]
    return out


MODEL_IMPLS = ["ours", "ours_cold", "paper_pruned", "floor"]


def model_section(rows) -> list[str]:
    """bench_model.py: whole models per task, batch and rate; every contender's paired ratio to the floor and
    the paper's pruned model over ours."""
    by = _by_case(rows, lambda r: (r.get("task", "?"), r.get("batch", 0), r.get("L", 0), r.get("rate", 0.0)))
    lines = []
    for (task, B, L, rate), t in sorted(by.items()):
        cells = [task, str(B), str(L), _pct(rate)]
        for impl in MODEL_IMPLS:
            ratio, mark = _ratio(t, impl)
            cells += [_ms(t, impl), _num(ratio) + mark]
        paper_over_ours = (t["paper_pruned"]["median_ms"] / t["ours"]["median_ms"]
                           if "paper_pruned" in t and "ours" in t else NAN)
        mixing = next((r.get("floor_mixing") for r in t.values() if r.get("floor_mixing")), "-")
        cells += [_num(paper_over_ours, 1), mixing]
        lines.append(cells)
    head = ["task", "B", "L", "rate"]
    for impl in MODEL_IMPLS:
        head += [f"{impl} ms", f"{impl} / floor"]
    return _table(head + ["paper pruned / ours", "floor mixing"], lines) + [""]


def scaling_section(rows) -> list[str]:
    """bench_scaling.py: one S4D layer (ours, warm) against L and against H; ratio to the paired floor, the
    time per L log2 L, and peak memory over the input's bytes."""
    out = []
    for sweep, what in (("L", "sequence length L"), ("H", "channels H")):
        sel = sorted((r for r in rows if r.get("sweep") == sweep), key=lambda r: tuple(r["shape"]))
        if not sel:
            continue
        lines = []
        for r in sel:
            B, H, N, L = r["shape"]
            per = r["median_ms"] * 1e6 / (B * H * L * math.log2(max(L, 2)))
            lines.append([fmt_shape(r["shape"]), _pct(r.get("rate", 0.0)), _num(r["median_ms"]),
                          _num(r.get("floor_ms")), _num(r.get("ratio_to_floor")), _num(per, 3),
                          _num(r.get("peak_torch_over_input")), _num(r.get("peak_rss_over_input"))])
        out += [f"Against the {what}:", ""]
        out += _table(["shape", "rate", "ours ms", "floor ms", "ours / floor", "ns per B H L log2 L",
                       "peak torch memory / input", "peak RSS rise / input"], lines) + [""]
    return out


def other_section(rows) -> list[str]:
    rows = sorted(rows, key=lambda r: r["name"])
    return _table(["benchmark", "subject", "median ms"], ([r["name"], str(r["subject"]), _num(r["median_ms"], 3)]
                                                          for r in rows))


SECTIONS = [  # (subjects, title, formatter, note)
    (("ssm", "kernel"), "Ops: the SSM part and kernel generation (bench_ops.py)", ops_section, ""),
    (("layer",), "One S4D layer (bench_layer.py)", layer_section,
     "ours / floor here is the ratio of separately timed medians (*); bench_ratios.py pairs them."),
    (("ratios",), "Paired ratios (bench_ratios.py)", ratio_table, "Medians of per-round ratios."),
    (("s4_layer", "s4_kernel"), "One S4 (DPLR) layer (bench_s4.py)", s4_section, ""),
    (("cache",), "The inference cache's exact check (bench_cache.py)", cache_table,
     "Against the former version token, paired rounds, medians."),
    (("model",), "Whole models (bench_model.py)", model_section,
     "Each contender's ratio to the floor is paired: the floor (the sum over SSM layers of the rfft + irfft of "
     "the active channels and the faster of GEMM and conv1d for the mixing) runs untimed before every timed "
     "round; the median of the per-round ratios."),
    (("scaling",), "Scaling of one S4D layer (bench_scaling.py)", scaling_section,
     "Ratios to the floor are paired per round. Memory: torch's peak of live tensors over the input's bytes, "
     "and the rise of the process's resident set (Linux) over the input's bytes."),
]


def render(rows: list[dict], machine: dict, plots: Optional[dict] = None) -> str:
    """The Markdown report of ``rows`` (as :func:`load` returns them); ``plots``: {"model"|"scaling": path
    as the report should link it}."""
    out = header(machine, rows)
    known = set()
    for subjects, title, formatter, note in SECTIONS:
        known.update(subjects)
        sel = [r for r in rows if r["subject"] in subjects]
        if not sel:
            continue
        out += [f"## {title}", ""]
        if note:
            out += [note, ""]
        out += formatter(sel)
        if out[-1] != "":
            out.append("")
        for subject in subjects:
            if plots and subject in plots:
                out += [f"![{subject}]({plots[subject]})", ""]
    rest = [r for r in rows if r["subject"] not in known]
    if rest:
        out += ["## Other benchmarks", ""] + other_section(rest) + [""]
    return "\n".join(out)


# ---------------------------------------------------------------------- plots
def nlogn_fit(Ls: Sequence[float], times: Sequence[float]) -> float:
    """c of the fit t = c L log2 L, least squares in relative error (each point weighs alike)."""
    x = [L * math.log2(max(L, 2)) / t for L, t in zip(Ls, times)]
    return sum(x) / sum(v * v for v in x)


def _figure(nrows: int = 1, ncols: int = 1, size=(6.4, 4.4)):
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def plot_models(rows: list[dict], path: PathLike) -> Optional[pathlib.Path]:
    """Latency against the pruning rate, one panel per task, one line per contender and batch (log scale)."""
    rows = [r for r in rows if r["subject"] == "model"]
    if not rows:
        return None
    tasks = sorted({r["task"] for r in rows})
    ncols = min(2, len(tasks))
    nrows = math.ceil(len(tasks) / ncols)
    fig, axes = _figure(nrows, ncols, size=(5.2 * ncols, 3.8 * nrows))
    styles = ["-", "--", ":", "-."]
    colors = {"ours": "C0", "ours_cold": "C1", "paper_pruned": "C3", "floor": "C2"}
    for i, task in enumerate(tasks):
        ax = axes[i // ncols][i % ncols]
        sel = [r for r in rows if r["task"] == task]
        batches = sorted({r["batch"] for r in sel})
        for impl in MODEL_IMPLS + sorted({r["impl"] for r in sel} - set(MODEL_IMPLS)):
            for j, B in enumerate(batches):
                pts = sorted((r["rate"] * 100, r["median_ms"]) for r in sel if r["impl"] == impl and r["batch"] == B)
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], styles[j % len(styles)], marker="o",
                            color=colors.get(impl), label=f"{impl}, B={B}")
        Ls = sorted({r["L"] for r in sel})
        ax.set_title(f"{task} (L={', '.join(map(str, Ls))})")
        ax.set_xlabel("pruning rate (%)")
        ax.set_ylabel("latency (ms)")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for k in range(len(tasks), nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    path = pathlib.Path(path)
    fig.savefig(path, dpi=110)
    return path


def plot_scaling(rows: list[dict], path: PathLike) -> Optional[pathlib.Path]:
    """Latency against L (log-log) with the fitted c L log2 L, and against H where measured."""
    from matplotlib.ticker import NullFormatter

    rows = [r for r in rows if r["subject"] == "scaling"]
    byL = sorted((r for r in rows if r.get("sweep") == "L"), key=lambda r: r["shape"][3])
    byH = sorted((r for r in rows if r.get("sweep") == "H"), key=lambda r: r["shape"][1])
    if not byL and not byH:
        return None
    panels = [p for p in (("L", byL), ("H", byH)) if p[1]]
    fig, axes = _figure(1, len(panels), size=(5.2 * len(panels), 4.0))
    for ax, (sweep, sel) in zip(axes[0], panels):
        idx = 3 if sweep == "L" else 1
        xs = [r["shape"][idx] for r in sel]
        ax.loglog(xs, [r["median_ms"] for r in sel], "o-", color="C0", label="ours (warm)")
        floors = [(x, r["floor_ms"]) for x, r in zip(xs, sel) if r.get("floor_ms")]
        if floors:
            ax.loglog([f[0] for f in floors], [f[1] for f in floors], "s--", color="C2", label="floor")
        if sweep == "L" and len(sel) >= 2:
            c = nlogn_fit(xs, [r["median_ms"] for r in sel])
            grid = [xs[0] * (xs[-1] / xs[0]) ** (k / 50) for k in range(51)]
            ax.loglog(grid, [c * L * math.log2(L) for L in grid], ":", color="k",
                      label=f"fit {c * 1e6:.3g} ns x L log2 L")
        B, H, N, L = sel[0]["shape"]
        fixed = f"B={B} H={H} N={N}" if sweep == "L" else f"B={B} N={N} L={L}"
        ax.set_title(f"one S4D layer, rate {_pct(sel[0].get('rate', 0))}, {fixed}")
        ax.set_xticks(xs, [f"{x // 1024}K" if sweep == "L" and x >= 1024 and x % 1024 == 0 else str(x) for x in xs])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("sequence length L" if sweep == "L" else "channels H")
        ax.set_ylabel("latency (ms)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    path = pathlib.Path(path)
    fig.savefig(path, dpi=110)
    return path


# ---------------------------------------------------------------------- entry point
def bench_report(results: Sequence[PathLike], out: Optional[PathLike] = None,
                 plots_dir: Optional[PathLike] = None) -> dict[str, Any]:
    """Read ``results`` (pytest-benchmark JSON files), write the Markdown report to ``out`` (if given) and the
    PNG plots into ``plots_dir`` (if given, created if missing).  Returns {"markdown": text, "out": path or
    None, "plots": {subject: path}}."""
    rows, machine = load(results)
    written: dict[str, pathlib.Path] = {}
    if plots_dir is not None:
        plots_dir = pathlib.Path(plots_dir)
        if plots_dir.exists() and not plots_dir.is_dir():
            raise NotADirectoryError(f"--plots {plots_dir}: exists and is not a folder")
        plots_dir.mkdir(parents=True, exist_ok=True)
        for subject, plot in (("model", plot_models), ("scaling", plot_scaling)):
            p = plot(rows, plots_dir / f"{subject}.png")
            if p is not None:
                written[subject] = p
    links = {}
    for subject, p in written.items():
        base = pathlib.Path(out).resolve().parent if out is not None else pathlib.Path.cwd()
        links[subject] = pathlib.Path(os.path.relpath(p.resolve(), base)).as_posix()
    text = render(rows, machine, links)
    if out is not None:
        out = pathlib.Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    return {"markdown": text, "out": out, "plots": written}
