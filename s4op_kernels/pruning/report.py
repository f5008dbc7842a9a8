"""The pruning report: a Markdown table in the shape of the paper's Table II, the same data as JSON, and a
PNG plot of the metric and latency against the pruning rate; and the layer-wise ablation's table in the shape
of the paper's Table I (:func:`layerwise_table`).

The input is the search's summary dict (``PruningResult.to_dict()``, also what ``search.json`` in a run
folder holds), so ``s4op report DIR`` can rebuild the report from a finished (or interrupted) run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping, Optional

from s4op_kernels._atomic import atomic_write_bytes


def _pct(value: float, base: float) -> str:
    if not base or value is None or base is None or math.isnan(value):
        return ""
    return f" ({100.0 * (value - base) / base:+.1f}%)"


def _ssm_cell(r: Mapping[str, Any], base: Mapping[str, Any]) -> str:
    if r.get("ssm_latency_ms") is None:
        return "n/a"
    change = _pct(r["ssm_latency_ms"], base.get("ssm_latency_ms")) if r is not base else ""
    return f"{r['ssm_latency_ms']:.3f}{change}"


def _fmt_metric(v: Optional[float]) -> str:
    return "n/a" if v is None else f"{100.0 * v:.2f}"


def rows(summary: Mapping[str, Any]) -> list[dict]:
    """Baseline first (rate 0), then each finished rate, as flat dicts."""
    out = [dict(summary["baseline"], rate=0.0)]
    out += [dict(r) for r in summary.get("rates", [])]
    return out


def markdown_table(summary: Mapping[str, Any]) -> str:
    """Table II of the paper for one model: rate | metric | latency (change) | parameters (change)."""
    metric = summary.get("metric", "metric")
    bs = summary.get("latency_batch_size")
    lines = [
        f"Task `{summary.get('task', '?')}`, model `{summary.get('model', '?')}`"
        + (f" ({summary['layer']})" if summary.get("layer") else "") + f", strategy `{summary.get('strategy', '?')}`, "
        f"selector `{summary.get('selector', '?')}`, {'incremental' if summary.get('incremental', True) else 'one-shot'}. "
        f"Metric: test {metric} (%) of the seed chosen by validation {metric}. Latency: our CPU engine, "
        f"{summary.get('threads', '?')} thread(s), {summary.get('latency_method', 'median of ' + str(summary.get('latency_repeats', '?')) + ' forwards at batch 1')}. SSM operators: the convolution part of every SSM "
        f"layer alone at batch 1, the only part pruning removes (GELU, output mixing, norms, encoder and "
        f"decoder keep their cost).",
        "",
        f"| Pruning rate | Test {metric} | Val {metric} | Latency (ms) | Latency batch {bs} (ms) | SSM operators (ms) "
        f"| Parameters | Best seed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    all_rows = rows(summary)
    base = all_rows[0]
    for r in all_rows:
        lines.append(
            f"| {round(100 * r['rate'])}% | {_fmt_metric(r.get('test_metric'))} | {_fmt_metric(r.get('val_metric'))} | "
            f"{r['latency_ms']:.2f}{_pct(r['latency_ms'], base['latency_ms']) if r is not base else ''} | "
            f"{r['latency_batch_ms']:.2f}{_pct(r['latency_batch_ms'], base['latency_batch_ms']) if r is not base else ''} | "
            f"{_ssm_cell(r, base)} | "
            f"{r['params']:,}{_pct(r['params'], base['params']) if r is not base else ''} | "
            f"{r.get('seed', '') if r is not base else '-'} |"
        )
    stopped = summary.get("stopped")
    if stopped:
        lines += ["", f"Search stopped early: {stopped}"]
    return "\n".join(lines) + "\n"


def _finetune_text(ft) -> str:
    if isinstance(ft, Mapping) and {"epochs", "lr"} <= set(ft):
        return f"{ft['epochs']} fine-tuning epoch{'' if ft['epochs'] == 1 else 's'} at lr {ft['lr']:g}"
    return "fine-tuned as the search's candidates"


def layerwise_table(summary: Mapping[str, Any]) -> str:
    """The paper's Table I for one model: one row per removed SSM layer ("Layer pruned" ``i``: every operator
    of layer ``i`` identity; ``none``: the baseline), with the test metric after fine-tuning (the paper's
    column), the validation metric after fine-tuning, both before it, parameters and latency (change against
    the baseline).  ``summary`` is what :func:`~s4op_kernels.pruning.ablation.layer_ablation` returns."""
    meta = summary.get("meta", {})
    metric = meta.get("metric", "metric")
    settings = summary.get("settings", {})
    base = summary["baseline"]
    timed = "latency_ms" in base
    lines = [
        f"Layer-wise ablation (the paper's Table I): task `{meta.get('task', '?')}`, model `{meta.get('model', '?')}`"
        + (f" ({meta['layer']})" if meta.get("layer") else "")
        + f". Each row removes every SSM operator of one layer (layer 0 nearest the input), then fine-tunes "
        f"(seed {settings.get('seed', '?')}, {_finetune_text(meta.get('finetune'))}). Metrics: {metric} (%); "
        f"latency: our CPU engine, {summary.get('threads', '?')} thread(s), "
        f"{summary.get('latency_method', 'not measured yet')}.",
        "",
        f"| Layer pruned | Test {metric} | Val {metric} | Test, no fine-tuning | Val, no fine-tuning | Latency (ms) "
        f"| SSM operators (ms) | Parameters |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in [dict(base, layer=None)] + [dict(r) for r in summary.get("layers", [])]:
        first = r["layer"] is None
        if timed and "latency_ms" in r:
            latency = f"{r['latency_ms']:.2f}{'' if first else _pct(r['latency_ms'], base['latency_ms'])}"
            ssm = _ssm_cell(r, base) if not first else _ssm_cell(base, base)
            params = f"{r['params']:,}{'' if first else _pct(r['params'], base['params'])}"
        else:
            latency = ssm = params = "n/a"
        lines.append(
            f"| {'none' if first else r['layer']} | {_fmt_metric(r.get('test_metric'))} | "
            f"{_fmt_metric(r.get('val_metric'))} | {'-' if first else _fmt_metric(r.get('test_metric_before'))} | "
            f"{'-' if first else _fmt_metric(r.get('val_metric_before'))} | {latency} | {ssm} | {params} |")
    return "\n".join(lines) + "\n"


def plot(summary: Mapping[str, Any], path: Path) -> None:
    """Metric and latency against the pruning rate, written headless (no display needed)."""
    from matplotlib.figure import Figure  # the object API needs no GUI backend

    all_rows = rows(summary)
    rates = [100 * r["rate"] for r in all_rows]
    fig = Figure(figsize=(6.4, 4.0), dpi=120)
    ax = fig.add_subplot()
    metric = summary.get("metric", "metric")
    test = [100 * r["test_metric"] if r.get("test_metric") is not None else math.nan for r in all_rows]
    val = [100 * r["val_metric"] if r.get("val_metric") is not None else math.nan for r in all_rows]
    ax.plot(rates, test, "o-", color="tab:blue", label=f"test {metric}")
    ax.plot(rates, val, "s--", color="tab:blue", alpha=0.5, label=f"val {metric}")
    ax.set_xlabel("pruning rate (%)")
    ax.set_ylabel(f"{metric} (%)", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(rates, [r["latency_ms"] for r in all_rows], "^-", color="tab:red", label="latency, batch 1")
    bs = summary.get("latency_batch_size")
    ax2.plot(rates, [r["latency_batch_ms"] for r in all_rows], "v-", color="tab:orange", label=f"latency, batch {bs}")
    if all(r.get("ssm_latency_ms") is not None for r in all_rows):
        ax2.plot(rates, [r["ssm_latency_ms"] for r in all_rows], "x:", color="tab:red",
                 label="SSM operators only, batch 1")
    ax2.set_ylabel("latency (ms)", color="tab:red")
    ax2.set_ylim(bottom=0)
    handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], loc="lower left", fontsize="small")
    ax.set_title(f"S4oP on {summary.get('task', '?')}: {metric} and latency vs pruning rate", fontsize="medium")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())


def write_report(summary: Mapping[str, Any], out_dir) -> dict[str, Path]:
    """Write ``report.md``, ``report.json`` and ``report.png`` into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"md": out_dir / "report.md", "json": out_dir / "report.json", "png": out_dir / "report.png"}
    atomic_write_bytes(paths["md"], markdown_table(summary).encode())
    atomic_write_bytes(paths["json"], json.dumps(summary, indent=2, sort_keys=True).encode())
    plot(summary, paths["png"])
    return paths
