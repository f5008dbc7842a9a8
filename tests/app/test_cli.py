"""The ``s4op`` command: argument validation and the ``data``/``train`` subcommands (run in-process)."""

from __future__ import annotations

import json

import pytest
import torch

import s4op_kernels.data
from s4op_kernels.app import cli
from s4op_kernels.checkpoint import load_checkpoint
from s4op_kernels.data.base import TaskDataset, TaskInfo


def _exit_code(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    return exc.value.code, capsys.readouterr().err


# ---------------------------------------------------------------------- argument validation
@pytest.mark.parametrize("argv,message", [
    (["data", "listops", "--out", "d", "--train", "-1"], "argument --train: must be >= 1, got -1"),
    (["data", "listops", "--out", "d", "--val", "0"], "argument --val: must be >= 1, got 0"),
    (["data", "listops", "--out", "d", "--test", "many"], "argument --test: expected an integer, got 'many'"),
    (["data", "listops", "--out", "d", "--seed", "-3"], "argument --seed: must be >= 0"),
    (["data", "imdb", "--out", "d"], "argument task: invalid choice: 'imdb'"),
    (["data", "listops"], "the following arguments are required: --out"),
    (["data", "listops", "--out", "d", "-o", "novalue"], "expected KEY=VALUE"),
    (["data", "listops", "--out", "d", "-o", "1x=2"], "expected KEY=VALUE with KEY a name"),
    (["train", "--task", "listops", "--config", "huge"], "argument --config: invalid choice: 'huge'"),
    (["train", "--task", "listops", "--lr", "0"], "argument --lr: must be a finite number > 0"),
    (["train", "--task", "mnist"], "argument --task: invalid choice: 'mnist'"),
    (["train", "--task", "listops", "--device", "nosuch"], "argument --device: not a torch device: 'nosuch'"),
    (["train", "--task", "listops", "--device", "cuda"] if not torch.cuda.is_available() else
     ["train", "--task", "listops", "--device", f"cuda:{torch.cuda.device_count()}"],
     "is not available on this machine"),
    (["train", "--task", "listops", "--seed", str(2**70)], "argument --seed: must be <= 9223372036854775807"),
    (["train", "--task", "listops", "--out", ""], "argument --out: expected a folder path, got an empty string"),
    (["prune", "--task", "ecg-synthetic", "--seeds", "99999999999999999999"], "seeds must be integers in [0, "),
    (["prune", "--task", "ecg-synthetic", "--seeds", "7,7"], "seeds must be distinct, got '7,7'"),
    (["prune", "--task", "ecg-synthetic", "--seeds", ","], "expected at least one seed"),
    (["prune", "--task", "ecg-synthetic", "--rates", "0.5,70"], "mixed forms in '0.5,70'"),
    (["run", "--rates", "10,0.9"], "mixed forms"),
    (["run", "--out", ""], "argument --out: expected a folder path"),
])
def test_bad_arguments_exit_with_status_2_and_say_why(argv, message, capsys):
    code, err = _exit_code(argv, capsys)
    assert code == 2 and message in err


def test_no_command_prints_help_and_returns_2(capsys):
    assert cli.main([]) == 2
    err = capsys.readouterr().err
    for command in ("info", "data", "train"):
        assert command in err


def test_train_needs_data_except_for_the_synthetic_ecg(capsys):
    assert cli.main(["train", "--task", "pathfinder", "--quiet"]) == 2
    assert "--data is required for task 'pathfinder'" in capsys.readouterr().err


def test_option_values_are_typed():
    assert cli._option("n=3") == ("n", 3)
    assert cli._option("noise=0.5") == ("noise", 0.5)
    assert cli._option("normalize=True") == ("normalize", True)
    assert cli._option("leads=II") == ("leads", "II")
    assert cli._option("max-len=none") == ("max_len", None)
    assert cli._option("path=a=b") == ("path", "a=b")


# ---------------------------------------------------------------------- data
def test_data_calls_the_generator_with_the_parsed_arguments(monkeypatch, tmp_path, capsys):
    seen = {}

    def generate(task, out, train, val, test, seed=0, **options):
        seen.update(task=task, out=out, train=train, val=val, test=test, seed=seed, options=options)
        return tmp_path / "written"

    monkeypatch.setattr(s4op_kernels.data, "generate", generate)
    argv = ["data", "pathfinder", "--out", str(tmp_path), "--train", "10", "--val", "3", "--test", "0", "--seed", "4",
            "-o", "difficulty=hard", "-o", "image_size=32"]
    assert cli.main(argv) == 0
    assert seen == {"task": "pathfinder", "out": str(tmp_path), "train": 10, "val": 3, "test": 0, "seed": 4,
                    "options": {"difficulty": "hard", "image_size": 32}}
    assert str(tmp_path / "written") in capsys.readouterr().out


def test_data_reports_a_generator_error_in_one_line(monkeypatch, tmp_path, capsys):
    def generate(task, out, train, val, test, seed=0, **options):
        raise TypeError("generate() got an unexpected keyword argument 'colour'")

    monkeypatch.setattr(s4op_kernels.data, "generate", generate)
    assert cli.main(["data", "listops", "--out", str(tmp_path), "-o", "colour=red"]) == 1
    assert capsys.readouterr().err.strip() == "s4op data: error: generate() got an unexpected keyword argument 'colour'"


# ---------------------------------------------------------------------- train
def _tiny_split(split: str, n: int) -> TaskDataset:
    """Two-label task on (n, 24, 1) inputs: label 0 = mean > 0, label 1 = last value > 0."""
    g = torch.Generator().manual_seed({"train": 0, "val": 1, "test": 2}[split])
    x = torch.randn(n, 24, 1, generator=g)
    y = torch.stack([x.mean(dim=(1, 2)) > 0, x[:, -1, 0] > 0], dim=1).float()
    info = TaskInfo("ecg-synthetic", num_classes=2, seq_len=24, in_channels=1, multilabel=True)
    return TaskDataset(x, y, info, split=split)


def test_train_end_to_end_on_a_stand_in_task(monkeypatch, tmp_path, capsys):
    calls = []

    def load(task, root=None, split="train", **options):
        calls.append((task, root, split, options))
        return _tiny_split(split, {"train": 32, "val": 16, "test": 16}[split])

    monkeypatch.setattr(s4op_kernels.data, "load", load)
    out = tmp_path / "run"
    argv = ["train", "--task", "ecg-synthetic", "--epochs", "2", "--batch-size", "8", "--lr", "0.01", "--seed", "3",
            "--out", str(out), "-o", "sample_rate=50", "--quiet"]
    assert cli.main(argv) == 0
    summary = capsys.readouterr().out.strip().splitlines()
    assert len(summary) == 1
    line = summary[0]
    for part in ("task=ecg-synthetic", "config=ecg-embedded", "val_micro_f1=", "test_micro_f1=", "best_epoch=",
                 f"checkpoint={out / 'model.safetensors'}"):
        assert part in line
    # every split read once, with the config's data options under the user's own
    assert [c[2] for c in calls] == ["train", "val", "test"]
    assert all(c[3] == {"sample_rate": 50, "leads": ["II", "V1"], "duration": 2.56, "normalize": True}
               and c[1] is None for c in calls)

    model, meta = load_checkpoint(out / "model")
    assert meta.config.epochs == 2 and meta.config.batch_size == 8 and meta.config.lr == 0.01
    assert meta.task_info.num_classes == 2 and meta.extra["seed"] == 3 and len(meta.extra["history"]) <= 2
    assert set(meta.metrics["test"]) >= {"micro_f1", "macro_f1", "loss"} and meta.metrics["metric"] == "micro_f1"
    sidecar = json.loads((out / "model.json").read_text())
    assert sidecar["extra"]["data_options"]["sample_rate"] == 50
    with torch.inference_mode():
        assert model(_tiny_split("test", 4).x).shape == (4, 2)


def test_train_reports_a_loading_error_in_one_line(monkeypatch, tmp_path, capsys):
    def load(task, root=None, split="train", **options):
        raise FileNotFoundError(f"{root}/basic_train.tsv: no such file")

    monkeypatch.setattr(s4op_kernels.data, "load", load)
    code = cli.main(["train", "--task", "listops", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--quiet"])
    assert code == 1
    assert capsys.readouterr().err.strip() == f"s4op train: error: {tmp_path}/basic_train.tsv: no such file"


def test_train_end_to_end_on_the_synthetic_ecg(tmp_path, capsys):
    out = tmp_path / "ecg"
    argv = ["train", "--task", "ecg-synthetic", "--epochs", "1", "--out", str(out), "--quiet",
            "-o", "n_train=32", "-o", "n_val=16", "-o", "n_test=16"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    line = capsys.readouterr().out.strip()
    assert line.startswith("task=ecg-synthetic config=ecg-embedded val_micro_f1=") and "test_micro_f1=" in line
    model, meta = load_checkpoint(out / "model")
    assert meta.task_info.task == "ecg-synthetic" and meta.task_info.num_classes == 6
    assert meta.task_info.in_channels == 2  # leads II and V1, from ecg-embedded's data options


def test_out_pointing_at_a_file_is_a_usage_error(tmp_path, capsys):
    target = tmp_path / "a-file"
    target.write_text("keep me")
    for argv in (["train", "--task", "ecg-synthetic", "--out", str(target)], ["run", "--out", str(target)],
                 ["data", "listops", "--out", str(target)]):
        code, err = _exit_code(argv, capsys)
        assert code == 2 and f"{target} exists and is not a folder" in err, argv
    assert target.read_text() == "keep me"


def test_unwritable_out_fails_before_any_training(monkeypatch, capsys):
    from s4op_kernels.app import pipeline, train

    def no_training(*args, **kwargs):
        raise AssertionError("training started before the output folder was checked")

    monkeypatch.setattr(train, "train", no_training)
    monkeypatch.setattr(pipeline, "train", no_training)
    # /proc refuses new entries even to root (a chmod'ed folder would not stop root).
    for argv in (["train", "--task", "ecg-synthetic", "--out", "/proc/s4op-test/x", "--quiet"],
                 ["run", "--out", "/proc/s4op-test/x", "--no-progress"]):
        assert cli.main(argv) == 1, argv
        assert "cannot create the run folder" in capsys.readouterr().err


def test_train_with_model_s4_trains_the_configs_s4_twin(monkeypatch, tmp_path, capsys):
    from s4op_kernels import S4Layer
    from s4op_kernels.pruning import ssm_layers

    monkeypatch.setattr(s4op_kernels.data, "load",
                        lambda task, root=None, split="train", **options: _tiny_split(split, 16))
    out = tmp_path / "s4"
    argv = ["train", "--task", "ecg-synthetic", "--model", "s4", "--epochs", "1", "--batch-size", "8", "--out", str(out),
            "--quiet"]
    assert cli.main(argv) == 0
    assert "config=ecg-embedded-s4 " in capsys.readouterr().out
    model, meta = load_checkpoint(out / "model")
    assert meta.config.name == "ecg-embedded-s4" and meta.config.layer == "s4" and meta.config.epochs == 1
    assert all(isinstance(layer, S4Layer) for layer in ssm_layers(model))


def test_export_writes_a_runtime_model_of_the_checkpoint_and_prints_its_footprint(tmp_path, capsys):
    import numpy as np

    from s4op_kernels import runtime
    from s4op_kernels.checkpoint import save_checkpoint
    from s4op_kernels.models import build_model, get_config

    info = TaskInfo("ecg-synthetic", 6, 64, multilabel=True, in_channels=2)
    config = get_config("ecg-embedded").replace(n_layers=2, d_model=8, d_state=4)
    model = build_model(config, info, seed=0).eval()
    for layer in model.ssm_layers():
        layer.set_active_channels([0, 5])
    save_checkpoint(tmp_path / "rate_75", model, config=config, task_info=info)
    out = tmp_path / "m.s4m"
    assert cli.main(["export", str(tmp_path / "rate_75"), "-o", str(out), "--batch", "2"]) == 0
    text = capsys.readouterr().out
    assert f"wrote {out}" in text and "4 of 16 SSM operators active" in text and "kernels up to L = 64" in text
    assert "activations (batch 2)" in text and "of dense)" in text
    x = torch.randn(2, 64, 2)
    with torch.no_grad():
        np.testing.assert_allclose(runtime.load(out, max_batch=2)(x), model(x).numpy(), atol=1e-5)
    # errors: a missing checkpoint (status 1), a folder as output and a bad --max-len (usage, status 2)
    assert cli.main(["export", str(tmp_path / "nothing"), "-o", str(out)]) == 1
    assert "nothing" in capsys.readouterr().err
    assert cli.main(["export", str(tmp_path / "rate_75"), "-o", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["export", str(tmp_path / "rate_75"), "-o", str(out), "--max-len", "0"])
    assert exc.value.code == 2
