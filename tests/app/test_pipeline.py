"""One command from data to report: `s4op prune`, `s4op report`, `s4op compare` on a tiny synthetic ECG run."""

from __future__ import annotations

import json
import shutil

import pytest

from s4op_kernels.app import cli
from s4op_kernels.app import pipeline

TINY = ["-o", "n_train=48", "-o", "n_val=24", "-o", "n_test=24", "-o", "duration=1.28"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    # the candidates in a process pool (the command's path through an executor); the re-run below is local
    status = cli.main(["prune", "--task", "ecg-synthetic", "--config", "ecg-embedded", "--out", str(out),
                       "--rates", "30,70", "--seeds", "7,42", "--epochs", "2", "--finetune-epochs", "1",
                       "--no-progress", *TINY, "--executor", "processes", "--workers", "2"])
    assert status == 0
    return out


def test_prune_writes_the_three_report_files_and_checkpoints(run_dir, capsys):
    for name in ("report.md", "report.json", "report.png", "search.json", "baseline.safetensors",
                 "baseline.json", "rate_30.safetensors", "rate_70.json"):
        assert (run_dir / name).exists(), name
    assert (run_dir / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((run_dir / "report.json").read_text())
    assert [r["rate"] for r in summary["rates"]] == [0.3, 0.7]
    assert [r["executor"]["name"] for r in summary["rates"]] == ["processes", "processes"]
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
    # Table I: the baseline, then each of the 4 layers removed, fine-tuned like the search's candidates
    assert "Layer-wise ablation (the paper's Table I)" in table and "| none |" in table
    layerwise = data["layerwise"]
    assert [r["layer"] for r in layerwise["layers"]] == [0, 1, 2, 3]
    assert layerwise["meta"]["finetune"] == {"epochs": 1, "lr": 2e-3} and layerwise["settings"]["seed"] == 7
    assert json.loads(res["layerwise_json"].read_text()) == layerwise
    assert res["layerwise_md"].read_text() in table and res["md"].read_text() == table
    base_params = layerwise["baseline"]["params"]
    assert all(r["params"] < base_params and r["latency_ms"] > 0 for r in layerwise["layers"])


def test_compare_of_a_run_with_another_model_is_refused(run_dir, capsys):
    before = sorted(p.name for p in (run_dir / "compare").iterdir()) if (run_dir / "compare").exists() else []
    assert cli.main(["compare", str(run_dir), "--model", "s4", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "holds a run of a model with the 's4d' layer, not 's4'" in err and "s4op-run-s4" in err
    after = sorted(p.name for p in (run_dir / "compare").iterdir()) if (run_dir / "compare").exists() else []
    assert after == before


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


# ---------------------------------------------------------------------- the run's identity
FILE_RUN = ["--rates", "30,70", "--seeds", "7", "--epochs", "1", "--finetune-epochs", "0", "--no-progress",
            "-o", "duration=1.28"]


def _generate(root, seed):
    assert cli.main(["data", "ecg-synthetic", "--out", str(root), "--train", "24", "--val", "12", "--test", "12",
                     "--seed", str(seed)]) == 0
    return root


@pytest.fixture(scope="module")
def file_run(tmp_path_factory):
    """A search on data read from disk (not generated in memory), and a second dataset."""
    base = tmp_path_factory.mktemp("file-run")
    data, other = _generate(base / "data", 1), _generate(base / "other", 2)
    out = base / "run"
    argv = ["prune", "--task", "ecg-synthetic", "--data", str(data), "--config", "ecg-embedded", "--out", str(out),
            *FILE_RUN]
    assert cli.main(argv) == 0
    return argv, out, data, other


def _prune(argv, **changes):
    argv = list(argv)
    for flag, value in changes.items():
        flag = "--" + flag.replace("_", "-")
        if flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value]
    return cli.main(argv)


def test_search_json_records_the_data_identity(file_run):
    _, out, data, _ = file_run
    run = json.loads((out / "search.json").read_text())["settings"]["run"]
    assert run["data"]["path"] == str(data.resolve()) and len(run["data"]["fingerprint"]) == 64
    assert run["baseline"]["seed"] == 0 and run["baseline"]["config"]["name"] == "ecg-embedded"
    assert json.loads((out / "baseline.json").read_text())["extra"]["run"] == run


@pytest.mark.parametrize("change", ["data", "seed", "option", "epochs"])
def test_resume_with_other_data_or_settings_is_refused(file_run, change, capsys):
    argv, out, _, other = file_run
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    if change == "data":
        status = _prune(argv, data=str(other))
    elif change == "seed":
        status = _prune(argv, seed="1")
    elif change == "option":
        status = _prune(argv + ["-o", "normalize=false"])
    else:
        status = _prune(argv, epochs="2")
    assert status == 1
    assert "made with other data or settings" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before  # nothing touched


def _copy_of_run(argv, out, tmp_path):
    """A copy of the run folder ``out`` and the command line pointed at it (the fixture's folder stays)."""
    copy_out = tmp_path / "run"
    shutil.copytree(out, copy_out)
    argv = list(argv)
    argv[argv.index("--out") + 1] = str(copy_out)
    return argv, copy_out


def test_resume_refuses_data_whose_contents_changed(file_run, tmp_path, capsys):
    argv, out, data, other = file_run
    argv, _ = _copy_of_run(argv, out, tmp_path)
    # The same path, other records in it: only the fingerprint can tell.
    shutil.move(data, tmp_path / "kept")
    try:
        shutil.copytree(other, data)
        assert cli.main(argv) == 1
    finally:
        shutil.rmtree(data, ignore_errors=True)
        shutil.move(tmp_path / "kept", data)
    assert "data.fingerprint" in capsys.readouterr().err


def test_resume_with_another_model_is_refused(file_run, capsys):
    argv, out, _, _ = file_run
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert _prune(argv + ["--model", "s4"]) == 1
    err = capsys.readouterr().err
    assert "the run folder's baseline is a model with the 's4d' layer, and this command asks for 's4'" in err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before  # nothing touched
    assert _prune(argv + ["--model", "s4d"]) == 0  # its own model: resumes


def test_compare_uses_exactly_the_runs_data(file_run, monkeypatch):
    _, out, data, _ = file_run
    roots = []
    real = pipeline._load_splits

    def recording(task, root, options):
        roots.append((task, root, options))
        return real(task, root, options)

    monkeypatch.setattr(pipeline, "_load_splits", recording)
    res = pipeline.compare(out, strategies=("depth_aware",), strategy_rates=(0.3,), oneshot_rates=(0.7,),
                           layerwise=False, log=lambda line: None)
    assert roots and all(task == "ecg-synthetic" and root == str(data.resolve()) for task, root, _ in roots)
    assert "| depth_aware |" in res["table"] and "Table I" not in res["table"] and "layerwise_md" not in res


def test_resume_reads_rate_checkpoints_through_the_verified_loader(file_run, tmp_path, capsys):
    argv, out, _, _ = file_run
    argv, copy_out = _copy_of_run(argv, out, tmp_path)
    weights = copy_out / "rate_30.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[-1] ^= 0x01  # one flipped bit in the last tensor's data: still a readable safetensors file
    weights.write_bytes(bytes(blob))
    assert cli.main(argv) == 1
    assert "rate_30.safetensors" in capsys.readouterr().err


# ---------------------------------------------------------------------- --model: the S4 layer
def _fake_prune_task(calls, tmp_path):
    def prune_task(task, root, **kw):
        calls.append(dict(kw, task=task, root=root))
        (tmp_path / "report.md").write_text("table\n")
        return None, {"md": tmp_path / "report.md", "json": tmp_path / "r.json", "png": tmp_path / "r.png"}

    return prune_task


def test_run_with_model_s4_trains_the_s4_twin_into_its_own_folder(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(pipeline, "prune_task", _fake_prune_task(calls, tmp_path))
    assert cli.main(["run", "--model", "s4", "--no-progress"]) == 0
    assert cli.main(["run", "--no-progress"]) == 0
    assert cli.main(["run", "--model", "s4", "--out", str(tmp_path / "mine"), "--no-progress"]) == 0
    s4, s4d, mine = calls
    assert s4["config"].name == "ecg-embedded-s4" and s4["config"].layer == "s4" and s4["out"] == "s4op-run-s4"
    assert s4d["config"].name == "ecg-embedded" and s4d["out"] == "s4op-run"
    assert mine["out"] == str(tmp_path / "mine") and mine["config"].layer == "s4"
    assert s4["task"] == s4d["task"] == "ecg-synthetic" and s4["data_options"] == s4d["data_options"]


def test_prune_with_model_picks_the_twin_config_and_folder(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(pipeline, "prune_task", _fake_prune_task(calls, tmp_path))
    assert cli.main(["prune", "--task", "ecg-synthetic", "--model", "s4", "--epochs", "3", "--no-progress"]) == 0
    assert cli.main(["prune", "--task", "listops", "--data", str(tmp_path), "--config", "listops", "--model", "s4",
                     "--no-progress"]) == 0
    assert cli.main(["prune", "--task", "ecg-synthetic", "--checkpoint", str(tmp_path / "m"), "--model", "s4",
                     "--no-progress"]) == 0
    ecg, listops, checkpoint = calls
    assert ecg["config"].name == "ecg-embedded-s4" and ecg["config"].epochs == 3
    assert ecg["out"] == "runs/prune-ecg-synthetic-s4" and ecg["layer"] == "s4"
    assert (listops["config"].name, listops["config"].n_layers) == ("listops-s4", 6)  # the paper's S4 ListOps
    assert listops["out"] == "runs/prune-listops-s4"
    # with a checkpoint the config is the checkpoint's; the layer is checked against it
    assert checkpoint["config"] is None and checkpoint["layer"] == "s4"


def test_bad_model_is_a_usage_error(capsys):
    for argv in (["run", "--model", "s5"], ["prune", "--task", "ecg-synthetic", "--model", "S4"],
                 ["train", "--task", "ecg-synthetic", "--model", "mamba"], ["compare", "--model", "x"]):
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
        assert exc.value.code == 2
        assert "argument --model: invalid choice" in capsys.readouterr().err


S4_TINY = {"n_train": 32, "n_val": 16, "n_test": 16, "duration": 1.28}


def test_an_s4_run_from_baseline_to_table_one(tmp_path):
    from s4op_kernels.models import get_config
    from s4op_kernels.pruning import SearchMismatchError, ssm_layers

    config = get_config("ecg-embedded").replace(name="tiny", n_layers=2, d_model=8, d_state=4, epochs=1,
                                                 batch_size=16)
    out = tmp_path / "s4"
    kw = dict(data_options=S4_TINY, out=out, rates=(0.5,), seeds=(7,), finetune_epochs=1, latency_repeats=2,
              progress=False, log=lambda line: None)
    result, paths = pipeline.prune_task("ecg-synthetic", None, config=config, layer="s4", **kw)
    run = json.loads((out / "search.json").read_text())
    assert run["settings"]["run"]["baseline"]["config"]["layer"] == "s4" and run["meta"]["layer"] == "s4"
    assert "model `tiny` (s4)" in paths["md"].read_text()
    from s4op_kernels.checkpoint import load_checkpoint

    model, meta = load_checkpoint(out / "rate_50")
    assert meta.config.layer == "s4" and type(ssm_layers(model)[0]).__name__ == "S4Layer"
    # the same folder with the S4D model: refused, before any training
    with pytest.raises(SearchMismatchError, match="a model with the 's4' layer, and this command asks for 's4d'"):
        pipeline.prune_task("ecg-synthetic", None, config=config, **kw)

    res = pipeline.compare(out, strategies=("depth_aware",), strategy_rates=(0.5,), oneshot_rates=(0.5,),
                           layer="s4", progress=False, log=lambda line: None)
    layerwise = json.loads(res["layerwise_json"].read_text())
    assert [r["layer"] for r in layerwise["layers"]] == [0, 1] and layerwise["meta"]["layer"] == "s4"
    assert "| none |" in res["table"] and "| 1 |" in res["table"]
    with pytest.raises(SearchMismatchError, match="not 's4d'"):
        pipeline.compare(out, layer="s4d", log=lambda line: None)
