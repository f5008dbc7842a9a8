"""The ``s4op`` command.

Each subcommand is a pair of functions: ``_add_<name>(sub)`` declares its arguments and ``_cmd_<name>(args)``
runs it by calling the library (the logic lives in ``s4op_kernels.data``, ``.training``, ...), returning
the exit status.  Add a subcommand by writing the pair and listing it in ``_COMMANDS``.

Exit status: 0 success, 1 the command failed (the message is printed to stderr), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time
from typing import Any, Callable, Optional, Sequence

# Errors a command reports as one line (no traceback): bad values or options (a task rejecting an unknown
# -o option raises TypeError), unreadable or missing files, a diverging loss.  Anything else is a bug and
# keeps its traceback.
def _user_errors() -> tuple[type[BaseException], ...]:
    from s4op_kernels.checkpoint import CheckpointError
    from s4op_kernels.pruning.executor import CandidateFailedError
    from s4op_kernels.runlock import RunFolderBusyError

    return (ValueError, TypeError, OSError, FloatingPointError, CheckpointError, RunFolderBusyError,
            CandidateFailedError)


# ---------------------------------------------------------------------- argument types
SEED_MAX = 2**63 - 1  # seeds reach torch.Generator.manual_seed (64-bit)


def _count(minimum: int, maximum: Optional[int] = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be <= {maximum}, got {value}")
        return value

    return parse


_seed = _count(0, SEED_MAX)


def _out_dir(text: str) -> str:
    """An output folder: not empty, not an existing file (created later, by the command, if missing)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a folder path, got an empty string")
    if os.path.exists(text) and not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text} exists and is not a folder")
    return text


def _device(text: str) -> str:
    """A torch device that exists on this machine (checked by allocating an empty tensor on it)."""
    import torch

    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"not a torch device: {text!r} (e.g. cpu, cuda, cuda:1)") from None
    try:
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError, ValueError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise argparse.ArgumentTypeError(f"device {text!r} is not available on this machine ({reason})") from None
    return text


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def _option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` -> (key, value) with VALUE read as int, float, true/false/none, or else a string."""
    key, sep, raw = text.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with KEY a name, got {text!r}")
    lowered = raw.strip().lower()
    if lowered in ("true", "false"):
        return key, lowered == "true"
    if lowered == "none":
        return key, None
    for kind in (int, float):
        try:
            return key, kind(raw)
        except ValueError:
            pass
    return key, raw


def _options(pairs: Optional[list[tuple[str, Any]]]) -> dict[str, Any]:
    return dict(pairs or [])


_TWIN_HELP = ("the config becomes its twin with that layer (<name> <-> <name>-s4, e.g. listops -> listops-s4, the "
              "paper's S4 model; a config without a twin keeps its settings with the layer swapped).")


def _add_model_flag(p: argparse.ArgumentParser, help_text: str) -> None:
    from s4op_kernels.models import available_layers

    p.add_argument("--model", default=None, choices=available_layers(),
                   help=f"SSM layer of the classifier: s4 (DPLR) or s4d (diagonal). {help_text}")


def _config_of(args: argparse.Namespace):
    """The config a train/prune command line asks for: --config (or the task's default), then --model."""
    from s4op_kernels.models import default_config, get_config, with_layer

    config = get_config(args.config) if args.config else default_config(args.task)
    return config if args.model is None else with_layer(config, args.model)


def _add_option_flag(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("-o", "--option", dest="options", metavar="KEY=VALUE", type=_option, action="append",
                   help=f"{what} (repeatable), e.g. -o max_len=512; numbers and true/false are converted")


# ---------------------------------------------------------------------- info
def _add_info(sub) -> None:
    sub.add_parser("info", help="how the package was built and which backends it can run")


def _cmd_info(args: argparse.Namespace) -> int:
    from s4op_kernels import info

    return info.main()


# ---------------------------------------------------------------------- data
def _add_data(sub) -> None:
    from s4op_kernels.data import GENERATED_TASKS

    p = sub.add_parser("data", help="generate a built-in task's dataset in its standard on-disk format",
                       description="Write a generated dataset (train/val/test) under --out; `s4op train --data` "
                                   "and s4op_kernels.data.load read it back.")
    p.add_argument("task", choices=GENERATED_TASKS, help="task to generate")
    p.add_argument("--out", required=True, type=_out_dir, help="output folder (created if missing)")
    p.add_argument("--train", type=_count(1), default=1000, help="training examples (default 1000)")
    p.add_argument("--val", type=_count(1), default=200, help="validation examples (default 200)")
    p.add_argument("--test", type=_count(0), default=200, help="test examples (default 200)")
    p.add_argument("--seed", type=_seed, default=0, help="random seed of the generator (default 0)")
    _add_option_flag(p, "task-specific generator option")


def _cmd_data(args: argparse.Namespace) -> int:
    from s4op_kernels import data

    root = data.generate(args.task, args.out, train=args.train, val=args.val, test=args.test, seed=args.seed,
                         **_options(args.options))
    print(f"{args.task}: {args.train} train, {args.val} val, {args.test} test examples (seed {args.seed}) in {root}")
    return 0


# ---------------------------------------------------------------------- train
def _add_train(sub) -> None:
    from s4op_kernels.data import TASKS
    from s4op_kernels.models import TASK_DEFAULT_CONFIG, list_configs

    p = sub.add_parser("train", help="train a classifier on a task and save a checkpoint",
                       description="Train the classifier of --config on --task, pick the best epoch on the "
                                   "validation split, report the test split once, and save "
                                   "<out>/model.safetensors + <out>/model.json.")
    p.add_argument("--task", required=True, choices=TASKS)
    p.add_argument("--data", default=None, help="dataset folder in the task's standard layout "
                                                "(optional for ecg-synthetic: generated in memory)")
    p.add_argument("--config", default=None, choices=list_configs(), metavar="NAME",
                   help=f"configuration, one of {list_configs()} (default: the task's CPU-sized one: "
                        + ", ".join(f"{t} -> {c}" for t, c in TASK_DEFAULT_CONFIG.items()) + ")")
    _add_model_flag(p, "With it, " + _TWIN_HELP + " Default: the config's own layer.")
    p.add_argument("--epochs", type=_count(1), help="override the config's epochs")
    p.add_argument("--lr", type=_positive_float, help="override the config's learning rate")
    p.add_argument("--batch-size", type=_count(1), help="override the config's batch size")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the initial weights, shuffling and dropout")
    p.add_argument("--out", default=None, type=_out_dir,
                   help="checkpoint folder (default: runs/<task>-<config>-seed<seed>)")
    p.add_argument("--device", default="cpu", type=_device, help="torch device (default cpu)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: only when stderr is a terminal)")
    p.add_argument("--quiet", action="store_true", help="no per-epoch log lines")
    _add_option_flag(p, "data loading option passed to s4op_kernels.data.load")


def _cmd_train(args: argparse.Namespace) -> int:
    from s4op_kernels.app.train import train_task

    if args.data is None and args.task != "ecg-synthetic":
        raise _UsageError(f"--data is required for task {args.task!r} (only ecg-synthetic is generated in memory)")
    config = _config_of(args)
    overrides = {k: v for k, v in (("epochs", args.epochs), ("lr", args.lr), ("batch_size", args.batch_size))
                 if v is not None}
    if overrides:
        config = config.replace(**overrides)
    out = args.out or os.path.join("runs", f"{args.task}-{config.name}-seed{args.seed}")
    log = None if args.quiet else (lambda line: print(line, file=sys.stderr))
    run = train_task(args.task, args.data, config=config, seed=args.seed, out=out, data_options=_options(args.options),
                     progress=args.progress, device=args.device, log=log)
    print(run.summary())
    return 0



# ---------------------------------------------------------------------- prune / run / report / compare
def _comma_list(text: str, kind: Callable[[str], Any], what: str, one: str) -> list:
    """``text`` split at commas, each part converted by ``kind``; at least one."""
    try:
        values = [kind(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected at least one {one}")
    return values


def _rates(text: str) -> list[float]:
    """``10,30,50`` (percent) or ``0.1,0.3`` (fractions) -> fractions."""
    values = _comma_list(text, float, "numbers", "rate")
    if any(v > 1 for v in values):
        if any(v < 1 for v in values):
            raise argparse.ArgumentTypeError(
                f"mixed forms in {text!r}: give every rate in percent (10,30,50) or every rate as a fraction "
                "(0.1,0.3,0.5)")
        values = [v / 100 for v in values]
    if any(not 0 < v < 1 for v in values) or any(b <= a for a, b in zip(values, values[1:])):
        raise argparse.ArgumentTypeError(f"rates must be strictly increasing and between 0 and 100 %, got {text!r}")
    return values


def _seeds(text: str) -> list[int]:
    seeds = _comma_list(text, int, "integers", "seed")
    bad = [v for v in seeds if not 0 <= v <= SEED_MAX]
    if bad:
        raise argparse.ArgumentTypeError(f"seeds must be integers in [0, {SEED_MAX}], got {bad[0]}")
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"seeds must be distinct, got {text!r}")
    return seeds


def _add_search_flags(p: argparse.ArgumentParser) -> None:
    from s4op_kernels.pruning import SELECTORS, STRATEGIES
    from s4op_kernels.pruning.search import DEFAULT_RATES, PAPER_SEEDS

    p.add_argument("--rates", type=_rates, default=list(DEFAULT_RATES),
                   help="pruning rates, percent or fractions (default 10,30,50,70,90)")
    p.add_argument("--seeds", type=_seeds, default=list(PAPER_SEEDS),
                   help="candidate seeds per rate (default the paper's 7,42,123,2024,31650)")
    p.add_argument("--strategy", default="depth_aware", choices=STRATEGIES, help="allocation over layers")
    p.add_argument("--selector", default="random", choices=[s for s in SELECTORS if s != "loss_delta"],
                   help="channel choice inside a layer (default random, as the paper)")
    p.add_argument("--one-shot", action="store_true", help="prune every rate from the baseline (not incremental)")
    p.add_argument("--finetune-epochs", type=_count(0), default=None, help="fine-tuning epochs per candidate")
    p.add_argument("--finetune-lr", type=_positive_float, default=None, help="fine-tuning learning rate")
    p.add_argument("--latency-batch", type=_count(1), default=8, help="second latency batch size (default 8)")
    p.add_argument("--latency-budget-ms", type=_positive_float, default=None,
                   help="stop at the first rate whose batch-1 latency is within this budget")
    p.add_argument("--max-drop", type=_positive_float, default=None,
                   help="stop before a rate whose validation metric falls more than this below the baseline "
                        "(a fraction: 0.02 = 2 points)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bars (default: only when stderr is a terminal)")
    from s4op_kernels.pruning.executor import EXECUTORS

    g = p.add_argument_group("where the candidates run (one task per rate and seed; the choice, latency and "
                             "checkpoints stay in this process; the same seeds give the same result)")
    g.add_argument("--executor", default="local", choices=EXECUTORS,
                   help="local: one after another in this process (default); processes: a local process pool; "
                        "ray: Ray tasks on a local Ray instance or a cluster (needs the ray extra)")
    g.add_argument("--address", default=None,
                   help="ray: the cluster to join (auto, HOST:PORT, ray://HOST:PORT; default: RAY_ADDRESS if set, "
                        "else a local Ray instance started for this search)")
    g.add_argument("--task-cpus", type=_count(1), default=None,
                   help="CPUs of each candidate's task and the torch threads it trains with (default 1 with "
                        "processes and ray; local: torch's default, all cores)")
    g.add_argument("--task-gpus", type=_positive_float, default=None,
                   help="ray: GPUs of each candidate's task (fractions share a GPU); the candidate fine-tunes on it")
    g.add_argument("--workers", type=_count(1), default=None,
                   help="processes: the pool's size (default: cores // task-cpus, at most one per seed)")
    g.add_argument("--task-retries", type=_count(0), default=2,
                   help="processes, ray: extra attempts of a failed task before the search stops (default 2)")


def _executor_of(args: argparse.Namespace):
    """The executor the search flags ask for; bad combinations and a missing Ray are usage errors, found
    before the baseline is trained."""
    from s4op_kernels.pruning.executor import ExecutorUnavailableError, make_executor

    owners = {"--address": ("ray", args.address is not None), "--task-gpus": ("ray", args.task_gpus is not None),
              "--workers": ("processes", args.workers is not None)}
    for flag, (owner, given) in owners.items():
        if given and args.executor != owner:
            raise _UsageError(f"{flag} is for --executor {owner}, not --executor {args.executor}")
    try:
        return make_executor(args.executor, address=args.address, task_cpus=args.task_cpus,
                             task_gpus=args.task_gpus or 0, workers=args.workers, retries=args.task_retries)
    except (ValueError, ExecutorUnavailableError) as err:
        raise _UsageError(str(err)) from None


def _search_kwargs(args: argparse.Namespace) -> dict:
    return dict(rates=args.rates, seeds=args.seeds, strategy=args.strategy, selector=args.selector,
                incremental=not args.one_shot, finetune_epochs=args.finetune_epochs, finetune_lr=args.finetune_lr,
                latency_batch_size=args.latency_batch, latency_budget_ms=args.latency_budget_ms,
                max_metric_drop=args.max_drop, progress=args.progress, executor=_executor_of(args))


def _print_report(paths: dict, wall: float) -> None:
    print(pathlib.Path(paths["md"]).read_text())
    print(f"report: {paths['md']}, {paths['json']}, {paths['png']}  (wall time {wall:.0f} s)")


def _add_prune(sub) -> None:
    from s4op_kernels.data import TASKS
    from s4op_kernels.models import list_configs

    p = sub.add_parser("prune", help="S4oP search on a task: baseline, rates x seeds, fine-tuning, report",
                       description="Train (or load with --checkpoint) the baseline, run the incremental S4oP search "
                                   "and write report.md/json/png into --out. Re-running the same command resumes.")
    p.add_argument("--task", required=True, choices=TASKS)
    p.add_argument("--data", default=None, help="dataset folder (optional for ecg-synthetic)")
    p.add_argument("--config", default=None, choices=list_configs(), metavar="NAME",
                   help="configuration of the baseline (default: the task's CPU-sized one)")
    p.add_argument("--checkpoint", default=None, help="a trained baseline (PATH of PATH.safetensors + PATH.json)")
    _add_model_flag(p, "With it, " + _TWIN_HELP + " Default: the config's own layer (with --checkpoint: the "
                       "checkpoint's; another layer is refused). Part of the run's identity (its config): resuming "
                       "a run folder with another model is refused.")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the baseline's training")
    p.add_argument("--epochs", type=_count(1), default=None, help="override the config's training epochs")
    p.add_argument("--out", default=None, type=_out_dir,
                   help="run folder (default runs/prune-<task>, runs/prune-<task>-s4 for an S4 model)")
    _add_search_flags(p)
    _add_option_flag(p, "data loading option passed to s4op_kernels.data.load")


def _cmd_prune(args: argparse.Namespace) -> int:
    from s4op_kernels.app.pipeline import prune_task

    if args.data is None and args.task != "ecg-synthetic":
        raise _UsageError(f"--data is required for task {args.task!r} (only ecg-synthetic is generated in memory)")
    from s4op_kernels.models import DEFAULT_LAYER

    # With --checkpoint and neither --config nor --epochs the config (and the layer) are the checkpoint's own.
    config = _config_of(args) if args.config or args.checkpoint is None or args.epochs is not None else None
    if args.epochs is not None:
        config = config.replace(epochs=args.epochs)
    layer = config.layer if config is not None else args.model
    suffix = "" if layer in (None, DEFAULT_LAYER) else f"-{layer}"
    out = args.out or os.path.join("runs", f"prune-{args.task}{suffix}")
    t0 = time.perf_counter()
    _, paths = prune_task(args.task, args.data, config=config, checkpoint=args.checkpoint, out=out,
                          data_options=_options(args.options), seed=args.seed, layer=args.model, log=_log,
                          **_search_kwargs(args))
    _print_report(paths, time.perf_counter() - t0)
    return 0


def _add_run(sub) -> None:
    p = sub.add_parser("run", help="the main job: synthetic ECG, baseline, S4oP search over 10-90 %%, report",
                       description="With no arguments: generate the built-in synthetic ECG task in memory, train "
                                   "the ecg-embedded S4D model, run the incremental depth-aware search over "
                                   "10/30/50/70/90 % with the paper's five seeds, and write the report into "
                                   "./s4op-run. With --model s4: the same job on ecg-embedded-s4 (the S4 layer, "
                                   "every other setting equal) into ./s4op-run-s4. Re-running resumes.")
    _add_model_flag(p, "Default: s4d, the ecg-embedded config; s4: its twin ecg-embedded-s4, every other setting "
                       "equal, into ./s4op-run-s4. Resuming a run folder with another model is refused.")
    p.add_argument("--out", default=None, type=_out_dir,
                   help="run folder (default ./s4op-run, or ./s4op-run-s4 with --model s4)")
    _add_search_flags(p)


def _cmd_run(args: argparse.Namespace) -> int:
    from s4op_kernels.app.pipeline import run_main_job

    t0 = time.perf_counter()
    _, paths = run_main_job(args.out, layer=args.model, log=_log, **_search_kwargs(args))
    _print_report(paths, time.perf_counter() - t0)
    return 0


def _add_report(sub) -> None:
    p = sub.add_parser("report", help="rebuild report.md/json/png of a run folder")
    p.add_argument("dir", help="a run folder of s4op prune / s4op run")


def _cmd_report(args: argparse.Namespace) -> int:
    from s4op_kernels.app.pipeline import report

    paths = report(args.dir)
    print(pathlib.Path(paths["md"]).read_text())
    return 0


def _add_compare(sub) -> None:
    p = sub.add_parser("compare", help="ablations on a run folder: strategies (one-shot), incremental vs one-shot, "
                                       "layer-wise (Table I)",
                       description="On the baseline of a finished run folder, with the run's data, seeds and "
                                   "fine-tuning: one-shot pruning per allocation strategy (the paper's Figure 3), "
                                   "incremental vs one-shot (Figure 4), and the layer-wise ablation (Table I: each "
                                   "SSM layer removed in turn and fine-tuned with the first seed). Writes "
                                   "<dir>/compare/compare.md, compare.json, layerwise.md, layerwise.json. "
                                   "Re-running resumes.")
    p.add_argument("dir", nargs="?", default=None,
                   help="a finished run folder (default ./s4op-run, or ./s4op-run-s4 with --model s4)")
    _add_model_flag(p, "Default: the run's own layer; another layer than the run's is refused (without DIR it "
                       "picks the main job's folder of that layer).")
    p.add_argument("--seeds", type=_seeds, default=None, help="candidate seeds (default: the run's)")
    p.add_argument("--layerwise", action=argparse.BooleanOptionalAction, default=True,
                   help="the layer-wise ablation, Table I (default on)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)


def _cmd_compare(args: argparse.Namespace) -> int:
    from s4op_kernels.app.pipeline import compare, main_out

    t0 = time.perf_counter()
    res = compare(args.dir or main_out(args.model), seeds=args.seeds, layerwise=args.layerwise, layer=args.model,
                  progress=args.progress, log=_log)
    print(res["table"])
    written = ", ".join(str(res[k]) for k in ("md", "json", "layerwise_md", "layerwise_json") if k in res)
    print(f"written: {written}  (wall time {time.perf_counter() - t0:.0f} s)")
    return 0


EXPORT_FORMATS = ("s4m", "onnx")


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="write a checkpoint as a model file for the torch-free runtime (s4op-infer) "
                                      "or as an ONNX model",
                       description="Write the checkpoint that save_checkpoint wrote (a run folder's baseline or "
                                   "rate_<r>: PATH of PATH.safetensors + PATH.json) as a .s4m model file for the "
                                   "C++ runtime, and print its size and footprint, pruned vs the dense model; or, "
                                   "with --format onnx, as an ONNX model (ONNX Runtime and other ONNX tools; pruned "
                                   "channels cost no compute in its graph; needs pip install \"s4op-kernels[onnx]\").")
    p.add_argument("checkpoint", help="checkpoint path (stem, .safetensors or .json)")
    p.add_argument("-o", "--output", required=True, help="the file to write (e.g. model.s4m or model.onnx)")
    p.add_argument("--format", choices=EXPORT_FORMATS, default="s4m",
                   help="s4m: the torch-free runtime's model file (default); onnx: an ONNX model")
    p.add_argument("--max-len", type=_count(1), default=None,
                   help="s4m: the longest input the runtime will get (default: the checkpoint's task length)")
    p.add_argument("--batch", type=_count(1), default=None,
                   help="s4m: batch size of the footprint figures (default 1); onnx: a fixed batch size for the "
                        "graph (default: any batch)")
    p.add_argument("--seq-len", type=_count(1), default=None,
                   help="onnx: the input length the graph takes, fixed (default: the checkpoint's task length)")
    p.add_argument("--opset", type=_count(1), default=None, help="onnx: the ONNX opset (default 20; 17 or later)")
    p.add_argument("--conv", default=None, choices=("auto", "direct", "fft"),
                   help="onnx: the convolution's form in the graph (default auto: direct GEMMs up to L = 2048, "
                        "DFT above)")


def _cmd_export(args: argparse.Namespace) -> int:
    out = args.output
    if os.path.isdir(out):
        raise _UsageError(f"--output {out} is a folder; give a file name such as "
                          f"{os.path.join(out, 'model.' + args.format)}")
    other = {"s4m": "onnx", "onnx": "s4m"}[args.format]
    if out.lower().endswith("." + other):
        raise _UsageError(f"--output {out} ends in .{other} but --format is {args.format}; pass --format {other} "
                          f"or name the file *.{args.format}")
    only = {"s4m": ("max_len",), "onnx": ("seq_len", "opset", "conv")}
    for name in only[other]:
        if getattr(args, name) is not None:
            flag = "--" + name.replace("_", "-")
            hint = " (the ONNX graph's input length is --seq-len)" if name == "max_len" else ""
            raise _UsageError(f"{flag} is for --format {other}, not {args.format}{hint}")
    if args.format == "onnx":
        return _export_onnx(args)
    from s4op_kernels.export import export_checkpoint

    res = export_checkpoint(args.checkpoint, out, max_len=args.max_len, batch=1 if args.batch is None else args.batch)
    p, d = res["pruned"], res["dense"]
    print(f"wrote {out}: {p['file_bytes']:,} bytes; {p['active_channels']} of {p['channels']} SSM operators active; "
          f"kernels up to L = {p['max_len']}")
    print(f"{'':28}{'pruned':>14}{'dense':>14}")
    for key, label in (("file_bytes", "file"), ("weight_bytes", "weights in memory"),
                       ("spectra_bytes", "kernel spectra (at load)"), ("activation_bytes", f"activations (batch {p['batch']})")):
        print(f"{label:28}{p[key]:>14,}{d[key]:>14,}")
    total_p = p["weight_bytes"] + p["spectra_bytes"] + p["activation_bytes"]
    total_d = d["weight_bytes"] + d["spectra_bytes"] + d["activation_bytes"]
    print(f"{'footprint':28}{total_p:>14,}{total_d:>14,}  ({total_p / total_d:.0%} of dense)")
    return 0


def _export_onnx(args: argparse.Namespace) -> int:
    import importlib.util

    from s4op_kernels.onnx_export import DEFAULT_OPSET, export_onnx

    if importlib.util.find_spec("onnx") is None:
        print("s4op export: error: --format onnx needs the onnx package: pip install \"s4op-kernels[onnx]\"",
              file=sys.stderr)
        return 1
    res = export_onnx(args.checkpoint, args.output, seq_len=args.seq_len, batch=args.batch,
                      opset=DEFAULT_OPSET if args.opset is None else args.opset,
                      conv="auto" if args.conv is None else args.conv)
    active, channels = sum(res["active_channels"]), sum(res["channels"])
    batch = "any batch" if res["batch"] is None else f"batch {res['batch']}"
    print(f"wrote {res['path']}: {res['file_bytes']:,} bytes; {active} of {channels} SSM operators active "
          f"(per layer: {', '.join(map(str, res['active_channels']))}); input length {res['seq_len']}, {batch}; "
          f"opset {res['opset']}; convolution: {res['conv']}")
    return 0


# ---------------------------------------------------------------------- bench-report
def _add_bench_report(sub) -> None:
    p = sub.add_parser("bench-report", help="turn pytest-benchmark JSON of benchmarks/ into a Markdown report",
                       description="Read the JSON that `pytest benchmarks/ --benchmark-only --benchmark-json=FILE` "
                                   "writes and print one Markdown report (machine header, a table per subject with "
                                   "medians and ratios to the floor); -o writes it to a file, --plots writes PNG "
                                   "plots (latency vs rate per task, latency vs L) into a folder.")
    p.add_argument("results", nargs="+", metavar="RESULTS.json", help="pytest-benchmark JSON file(s)")
    p.add_argument("-o", "--out", default=None, help="write the report to this file (default: print it)")
    p.add_argument("--plots", default=None, type=_out_dir, metavar="DIR",
                   help="write the PNG plots into DIR (created if missing)")


def _cmd_bench_report(args: argparse.Namespace) -> int:
    from s4op_kernels.app.benchreport import bench_report

    res = bench_report(args.results, out=args.out, plots_dir=args.plots)
    if args.out is None:
        print(res["markdown"])
    written = [str(res["out"])] if res["out"] is not None else []
    written += [str(p) for p in res["plots"].values()]
    if written:
        print(f"written: {', '.join(written)}", file=sys.stderr if args.out is None else sys.stdout)
    return 0


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)

# ---------------------------------------------------------------------- dispatch
class _UsageError(Exception):
    """Arguments that parse but do not make sense together (reported like argparse errors, status 2)."""


_COMMANDS: dict[str, tuple[Callable, Callable[[argparse.Namespace], int]]] = {
    "info": (_add_info, _cmd_info),
    "data": (_add_data, _cmd_data),
    "train": (_add_train, _cmd_train),
    "prune": (_add_prune, _cmd_prune),
    "run": (_add_run, _cmd_run),
    "report": (_add_report, _cmd_report),
    "compare": (_add_compare, _cmd_compare),
    "export": (_add_export, _cmd_export),
    "bench-report": (_add_bench_report, _cmd_bench_report),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s4op", description="Operator-pruned S4/S4D models: kernels and pruner.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add, _ in _COMMANDS.values():
        add(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return _COMMANDS[args.command][1](args)
    except _UsageError as err:
        print(f"s4op {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"s4op {args.command}: interrupted", file=sys.stderr)
        return 130
    except _user_errors() as err:
        print(f"s4op {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
