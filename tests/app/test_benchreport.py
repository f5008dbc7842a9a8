"""``s4op bench-report``: a small synthetic pytest-benchmark JSON turned into the Markdown report and plots."""

from __future__ import annotations

import json
import math

import pytest

from s4op_kernels.app import benchreport, cli


def _bench(name, median_s, **info):
    return {"name": name, "stats": {"median": median_s, "mean": median_s, "rounds": 3}, "extra_info": info}


def _results():
    benches = []
    for task, L in (("ecg", 1024), ("imdb", 1024)):
        for rate in (0.0, 0.5):
            for impl, ms, ratio in (("ours", 2.0, 1.25), ("ours_cold", 3.0, 1.9), ("paper_pruned", 80.0, 50.0),
                                    ("floor", 1.6, 1.01)):
                ms = ms * (1 - rate / 2)
                benches.append(_bench(f"test_model[{task}-{impl}-{rate}]", ms / 1e3, subject="model", impl=impl,
                                      task=task, config=task, batch=1, L=L, rate=rate, ratio_to_floor=ratio,
                                      floor_mixing="gemm", threads=2))
    for L in (1024, 2048, 4096, 8192):
        t = 1e-9 * 128 * L * math.log2(L) * 3  # 3 ns per B H L log2 L
        benches.append(_bench(f"test_scaling[L-{L}]", t, subject="scaling", impl="ours", sweep="L",
                              shape=[1, 128, 64, L], rate=0.5, ratio_to_floor=1.1, floor_ms=1e3 * t / 1.1,
                              peak_torch_over_input=4.0, peak_rss_over_input=None, threads=2))
    for H in (64, 128):
        benches.append(_bench(f"test_scaling[H-{H}]", 1e-3 * H / 64, subject="scaling", impl="ours", sweep="H",
                              shape=[1, H, 64, 4096], rate=0.5, ratio_to_floor=1.2, floor_ms=H / 64 / 1.2,
                              peak_torch_over_input=4.1, peak_rss_over_input=3.0, threads=2))
    for impl, ms in (("reference", 50.0), ("paper_pruned", 20.0), ("floor", 2.0), ("ours", 2.5)):
        benches.append(_bench(f"test_layer[{impl}]", ms / 1e3, subject="layer", impl=impl, rate=0.3,
                              shape=[1, 256, 64, 4096], threads=2, input_bytes=4 * 256 * 4096,
                              largest_alloc_bytes=8 * 256 * 4096))
    benches.append(_bench("test_untagged", 0.0042))
    return {
        "machine_info": {"cpu": {"brand_raw": "Test CPU 9000", "count": 2, "arch": "X86_64"},
                         "python_version": "3.11.2", "python_implementation": "CPython",
                         "s4op": {"torch": "2.13.0", "s4op_kernels": "0.1.0", "threads": 2,
                                  "backends": ["cpu", "reference"], "paper_sizes": False}},
        "commit_info": {"id": "0123456789abcdef", "dirty": False, "branch": "main"},
        "datetime": "2026-12-07T06:00:00", "benchmarks": benches,
    }


@pytest.fixture
def results(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(_results()))
    return path


def test_report_tables_and_plots(results, tmp_path, capsys):
    out, plots = tmp_path / "report" / "bench.md", tmp_path / "plots"
    assert cli.main(["bench-report", str(results), "-o", str(out), "--plots", str(plots)]) == 0
    text = out.read_text()
    # header: machine, threads, versions, commit
    assert "Test CPU 9000 (2 logical CPUs" in text and "threads: 2" in text
    assert "torch 2.13.0, s4op-kernels 0.1.0" in text and "commit 0123456789ab" in text
    lines = text.splitlines()
    # whole models: medians, paired ratios to the floor, paper / ours, the mixing route
    row = next(line for line in lines if line.startswith("| ecg | 1 | 1024 | 50 % |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[4:] == ["1.50", "1.25", "2.25", "1.90", "60.00", "50.00", "1.20", "1.01", "40.0", "gemm"]
    assert sum(line.startswith("| imdb |") for line in lines) == 2
    # scaling: ns per B H L log2 L recovers the 3 ns the synthetic times were made of; memory over the input
    row = next(line for line in lines if line.startswith("| B=1 H=128 N=64 L=4096 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[4:] == ["1.10", "3.000", "4.00", "-"]
    assert "Against the channels H:" in text
    # one layer: the unpaired ratio is marked, the largest temporary over the input
    row = next(line for line in lines if line.startswith("| 30 % |"))
    assert [c.strip() for c in row.strip("|").split("|")][5:] == ["1.25*", "2.00"]
    # a benchmark without a subject is still listed
    assert "| test_untagged | other | 4.200 |" in text
    # plots: written, PNG, linked relative to the report
    for name in ("model.png", "scaling.png"):
        assert (plots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"](../plots/{name})" in text
    assert "written:" in capsys.readouterr().out


def test_report_printed_without_out(results, capsys):
    assert cli.main(["bench-report", str(results)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("# Benchmark report") and "## Whole models" in captured.out
    assert "![" not in captured.out  # no plots asked for


def test_nlogn_fit_is_exact_on_nlogn_data():
    Ls = [1024, 4096, 65536]
    assert benchreport.nlogn_fit(Ls, [2.5 * L * math.log2(L) for L in Ls]) == pytest.approx(2.5)


@pytest.mark.parametrize("content,message", [
    ('{"foo": 1}', "not a pytest-benchmark JSON file"),
    ("[1, 2]", "not a pytest-benchmark JSON file"),
    ("this is not json", "not a JSON file"),
    ('{"machine_info": {}, "benchmarks": []}', "holds no benchmark results"),
    ('{"machine_info": {}, "benchmarks": [{"name": "x"}]}', "no stats.median"),
])
def test_not_a_benchmark_json_is_refused(tmp_path, capsys, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    assert cli.main(["bench-report", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("s4op bench-report: error: ") and str(path) in err and message in err
    assert err.count("\n") == 1  # one line, no traceback


def test_missing_file_is_refused(tmp_path, capsys):
    missing = tmp_path / "nope.json"
    assert cli.main(["bench-report", str(missing)]) == 1
    err = capsys.readouterr().err
    assert f"{missing}: no such file" in err and err.count("\n") == 1


def test_plots_dir_that_is_a_file_is_refused(results, tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench-report", str(results), "--plots", str(f)])
    assert exc.value.code == 2 and "exists and is not a folder" in capsys.readouterr().err
