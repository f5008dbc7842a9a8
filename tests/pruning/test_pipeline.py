"""One command from data to report: `s4op prune`, `s4op report`, `s4op compare` on a tiny synthetic ECG run."""

from __future__ import annotations

import json

import pytest

from s4op_kernels import cli
from s4op_kernels.pruning import pipeline

TINY = ["-o", "n_train=48", "-o", "n_val=24", "-o", "n_test=24", "-o", "duration=1.28"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    status = cli.main(["prune", "--task", "ecg-synthetic", "--config", "ecg-embedded", "--out", str(out),
                       "--rates", "30,70", "--seeds", "7,42", "--epochs", "2", "--finetune-epochs", "1",
                       "--no-progress", *TINY])
    assert status == 0
    return out


def test_prune_writes_the_three_report_files_and_checkpoints(run_dir, capsys):
    for name in ("report.md", "report.json", "report.png", "search.json", "baseline.safetensors",
                 "baseline.json", "rate_30.safetensors", "rate_70.json"):
        assert (run_dir / name).exists(), name
    assert (run_dir / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((run_dir / "report.json").read_text())
    assert [r["rate"] for r in summary["rates"]] == [0.3, 0.7]
    assert summary["metric"] == "micro_f1" and summary["task"] == "ecg-synthetic"
    table = (run_dir / "report.md").read_text()
    assert "| 0% |" in table and "| 30% |" in table and "| 70% |" in table
    assert summary["rates"][1]["params"] < summary["rates"][0]["params"] < summary["baseline"]["params"]


def test_rate_checkpoints_load_as_pruned_models(run_dir):
    from s4op_kernels.checkpoint import load_checkpoint
    from s4op_kernels.pruning import ssm_layers

    model, meta = load_checkpoint(run_dir / "rate_70")
    summary = json.loads((run_dir / "search.json").read_text())
    assert [layer.active_channels.tolist() for layer in ssm_layers(model)] == summary["rates"][1]["active_channels"]
    assert meta.config.name == "ecg-embedded"


def test_rerunning_the_same_command_resumes_without_work(run_dir):
    before = (run_dir / "rate_70.safetensors").read_bytes()
    status = cli.main(["prune", "--task", "ecg-synthetic", "--config", "ecg-embedded", "--out", str(run_dir),
                       "--rates", "30,70", "--seeds", "7,42", "--epochs", "2", "--finetune-epochs", "1",
                       "--no-progress", *TINY])
    assert status == 0
    assert (run_dir / "rate_70.safetensors").read_bytes() == before


def test_report_rebuilds_from_the_run_folder(run_dir, capsys):
    (run_dir / "report.md").unlink()
    assert cli.main(["report", str(run_dir)]) == 0
    assert (run_dir / "report.md").exists()
    assert "| 70% |" in capsys.readouterr().out


def test_compare_runs_the_ablations(run_dir):
    res = pipeline.compare(run_dir, strategies=("depth_aware", "uniform"), strategy_rates=(0.3,),
                           oneshot_rates=(0.7,), seeds=(7,), log=lambda line: None)
    table = res["table"]
    assert "| depth_aware |" in table and "| uniform |" in table
    assert "| incremental |" in table and "| one-shot |" in table
    data = json.loads(res["json"].read_text())
    assert set(data["one_shot"]) == {"depth_aware", "uniform"}
    assert [r["rate"] for r in data["one_shot"]["depth_aware"]["rates"]] == [0.3, 0.7]


def test_report_of_a_folder_without_a_search_is_a_clear_error(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path)]) == 1
    assert "no search.json" in capsys.readouterr().err


def test_bad_command_lines(capsys):
    assert cli.main(["prune", "--task", "listops"]) == 2
    assert "--data is required" in capsys.readouterr().err
    for bad in (["--rates", "ten"], ["--seeds", "7,x"], ["--rates", "70,30"]):
        with pytest.raises(SystemExit) as exc:
            cli.main(["prune", "--task", "ecg-synthetic", *bad])
        assert exc.value.code == 2, bad
    err = capsys.readouterr().err
    assert "comma-separated" in err and "increasing" in err
