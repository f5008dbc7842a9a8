"""The S4oP search: incremental (or one-shot) operator pruning with seeds, fine-tuning and latency in the loop.

For each pruning rate (paper, section III-A, with the authors' defaults from their code):
1. start from the previous rate's chosen model (incremental) or from the baseline (one-shot);
2. allocate the number of pruned channels per layer (``allocate``, depth-aware by default);
3. for each seed, prune that many of the still-active channels of each layer (nested across rates),
   fine-tune the candidate, and score it on the **validation** split;
4. keep the candidate with the best validation metric (the test split is evaluated for the report only,
   after the choice, and never read before it);
5. measure its latency through our engine (batch 1 and a larger batch, warm-up + median of repeats),
   count its parameters after compaction, and save it (safetensors + JSON, atomically).

A run folder holds ``search.json`` (settings and every finished rate) and one checkpoint per finished rate,
so running the same search again continues after the last finished rate and loses nothing.

Where step 3's candidates run is the executor's business (``executor``: ``"local"``, the default, one after
another in this process; ``"processes"``, a local process pool; ``"ray"``, Ray tasks; see
:mod:`s4op_kernels.pruning.executor`).  Everything else, the choice included, stays in this process.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import operator
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch
from torch import nn

from s4op_kernels._progress import progress_enabled
from s4op_kernels.pruning.allocation import allocate
from s4op_kernels.pruning.executor import CandidateFailedError, CandidateJob, Executor, SearchContext, make_executor
from s4op_kernels.pruning.latency import SSMOperators, example_input, measure_latencies
from s4op_kernels.pruning.params import compact_model, count_parameters
from s4op_kernels.pruning.selection import ssm_layers
from s4op_kernels._validate import check_int

DEFAULT_RATES = (0.1, 0.3, 0.5, 0.7, 0.9)
PAPER_SEEDS = (7, 42, 123, 2024, 31650)
SEARCH_FILE = "search.json"
FORMAT_VERSION = 1
SEED_MAX = 2**63 - 1  # seeds reach torch.Generator.manual_seed, which takes 64-bit values

Evaluate = Callable[[nn.Module, Any], float]  # (model, dataset) -> metric, higher is better


@dataclass
class RateResult:
    """The candidate chosen at one pruning rate, and every candidate's validation score."""

    rate: float
    seed: int
    val_metric: float
    test_metric: Optional[float]
    latency_ms: float
    latency_batch_ms: float
    ssm_latency_ms: float
    params: int
    pruned_per_layer: list[int]
    active_channels: list[list[int]]
    candidates: list[dict] = field(default_factory=list)  # {"seed", "val_metric", "finetune_s"}
    wall_s: float = 0.0
    checkpoint: Optional[str] = None
    executor: Optional[dict] = None  # where the candidates ran (Executor.describe()); not a setting


class SearchMismatchError(ValueError):
    """The run folder holds a search with different settings; resuming it would mix two searches."""


def measure_models(models: Sequence[nn.Module], info, *, batch_size: int = 8, warmup: int = 20, repeats: int = 100,
                   threads: Optional[int] = None) -> list[tuple[float, float, float]]:
    """Per model, median latency (ms) of a compacted copy: the whole model at batch 1 and at ``batch_size``
    on :func:`example_input` of ``info`` (a ``TaskInfo``), and its SSM operators alone at batch 1 (the part
    pruning acts on).  The models are timed round-robin (``measure_latencies``), so their numbers are
    comparable.  Every model's SSM layers must share one ``d_model``."""
    deployed = [compact_model(m).eval() for m in models]
    timing = dict(warmup=warmup, repeats=repeats, threads=threads)
    b1 = measure_latencies([(m, example_input(info, batch_size=1)) for m in deployed], **timing)
    bn = measure_latencies([(m, example_input(info, batch_size=batch_size)) for m in deployed], **timing)
    H = ssm_layers(deployed[0])[0].d_model
    u = torch.randn(1, H, info.seq_len, generator=torch.Generator().manual_seed(0))
    ssm = measure_latencies([(SSMOperators(m), u) for m in deployed], **timing)
    return [(a.median_ms, b.median_ms, c.median_ms) for a, b, c in zip(b1, bn, ssm)]


class IncrementalPruner:
    """Operator pruning search over ``rates``, on any model that contains our SSM layers.

    Args:
        model: the trained baseline (left unchanged; candidates are deep copies).
        train_ds, val_ds: fine-tuning data and the selection split. test_ds: optional, reported only.
        rates: increasing fractions in (0, 1). seeds: one candidate per seed at every rate.
        strategy: allocation over layers (``allocate``). selector: channel choice inside a layer.
        fine_tune: ``fine_tune(model, train_ds, val_ds, seed=...)`` trains a candidate in place (None: no
            fine-tuning). evaluate: ``evaluate(model, ds) -> float``, higher is better.
        incremental: False gives the one-shot variant (every rate starts from the baseline).
        latency_batch_size, latency_warmup, latency_repeats, threads: the in-loop latency probe.
        latency_budget_ms: stop after the first rate whose batch-1 latency is within the budget.
        max_metric_drop: stop before a rate whose chosen validation metric falls more than this (absolute,
            e.g. 0.05 = 5 points) below the baseline's; that rate is recorded as rejected, not kept.
        out_dir: run folder (checkpoints, ``search.json``; enables resume). meta: extra facts for the report
            (JSON-serializable). config: the model's ``models.Config``, stored beside each rate's checkpoint
            so ``load_checkpoint`` can rebuild it.
        progress: tqdm bars (None: only on a terminal). log: callable taking one line of text.
        executor: where each rate's candidates run: ``"local"`` (default), ``"processes"``, ``"ray"`` or an
            :class:`~s4op_kernels.pruning.executor.Executor` (``make_executor`` for options).  Not a setting
            of the search: a run folder may be resumed with another executor.
    """

    def __init__(
        self,
        model: nn.Module,
        train_ds,
        val_ds,
        test_ds=None,
        *,
        evaluate: Evaluate,
        fine_tune: Optional[Callable[..., Any]] = None,
        rates: Sequence[float] = DEFAULT_RATES,
        seeds: Sequence[int] = PAPER_SEEDS,
        strategy: str = "depth_aware",
        selector: str = "random",
        incremental: bool = True,
        latency_batch_size: int = 8,
        latency_warmup: int = 20,
        latency_repeats: int = 100,
        threads: Optional[int] = None,
        latency_budget_ms: Optional[float] = None,
        max_metric_drop: Optional[float] = None,
        out_dir=None,
        meta: Optional[dict] = None,
        config=None,
        progress: Optional[bool] = None,
        log: Optional[Callable[[str], Any]] = None,
        executor: Any = "local",
    ):
        self.layers = ssm_layers(model)
        if not self.layers:
            raise ValueError("IncrementalPruner(model): the model contains no prunable SSM layer (S4DLayer)")
        widths = {layer.d_model for layer in self.layers}
        if len(widths) != 1:
            raise ValueError(f"IncrementalPruner(model): all SSM layers must have the same d_model, got {sorted(widths)}")
        self.H = widths.pop()
        rates = [float(r) for r in rates]
        if not rates or any(not 0.0 < r < 1.0 for r in rates) or any(b <= a for a, b in zip(rates, rates[1:])):
            raise ValueError(f"rates must be strictly increasing fractions in (0, 1), got {rates}")
        seeds = [operator.index(s) for s in seeds]
        if not seeds or len(set(seeds)) != len(seeds) or any(not 0 <= s <= SEED_MAX for s in seeds):
            raise ValueError(f"seeds must be a non-empty list of distinct ints in [0, {SEED_MAX}], got {seeds}")
        if not callable(evaluate):
            raise TypeError("evaluate must be a callable (model, dataset) -> float")
        if fine_tune is not None and not callable(fine_tune):
            raise TypeError("fine_tune must be None or a callable (model, train_ds, val_ds, seed=...)")
        latency_batch_size = check_int(latency_batch_size, "latency_batch_size", func="IncrementalPruner", minimum=1)
        latency_repeats = check_int(latency_repeats, "latency_repeats", func="IncrementalPruner", minimum=1)
        if latency_budget_ms is not None and not latency_budget_ms > 0:
            raise ValueError(f"latency_budget_ms must be > 0 or None, got {latency_budget_ms!r}")
        if max_metric_drop is not None and not max_metric_drop >= 0:
            raise ValueError(f"max_metric_drop must be >= 0 or None, got {max_metric_drop!r}")
        # validate the strategy now, not after the first fine-tuning
        allocate(rates[0], len(self.layers), self.H, strategy, seed=seeds[0])

        self.baseline = model
        self.train_ds, self.val_ds, self.test_ds = train_ds, val_ds, test_ds
        self.evaluate, self.fine_tune = evaluate, fine_tune
        self.rates, self.seeds, self.strategy, self.selector = rates, seeds, strategy, selector
        self.incremental = bool(incremental)
        self.latency_batch_size, self.latency_warmup, self.latency_repeats = latency_batch_size, latency_warmup, latency_repeats
        self.threads = threads if threads is not None else torch.get_num_threads()
        self.latency_budget_ms, self.max_metric_drop = latency_budget_ms, max_metric_drop
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.meta = dict(meta or {})
        self.config = config
        self._models: dict[float, nn.Module] = {}  # models kept in this process, by rate
        self.progress, self.log = progress, log or (lambda line: None)
        self.executor: Executor = make_executor(executor)

    # ------------------------------------------------------------------ settings and state
    def settings(self) -> dict:
        """What must be equal for a run folder to be resumed."""
        return {
            "rates": self.rates, "seeds": self.seeds, "strategy": self.strategy, "selector": self.selector,
            "incremental": self.incremental, "n_layers": len(self.layers), "d_model": self.H,
            "latency_batch_size": self.latency_batch_size,
            # "run": the data's identity and the baseline's provenance (app.pipeline.run_identity), when given
            **{k: self.meta[k] for k in ("task", "model", "finetune", "run") if k in self.meta},
        }

    def _load_state(self) -> Optional[dict]:
        if self.out_dir is None or not (self.out_dir / SEARCH_FILE).exists():
            return None
        path = self.out_dir / SEARCH_FILE
        try:
            state = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: cannot read the saved search ({err}); move it away to start afresh") from err
        if state.get("settings") != json.loads(json.dumps(self.settings())):
            raise SearchMismatchError(
                f"{path} holds a search with other settings ({state.get('settings')}); these are "
                f"{self.settings()}. Use another output folder, or delete this one to start again.")
        return state

    def _save_state(self, state: dict) -> None:
        if self.out_dir is None:
            return
        from s4op_kernels._atomic import atomic_write_bytes

        self.out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.out_dir / SEARCH_FILE, json.dumps(state, indent=2).encode())

    # ------------------------------------------------------------------ measuring
    def _measure(self, models: list) -> list[tuple[float, float, float]]:
        """Per model, median latency (ms) of a compacted copy (:func:`measure_models`)."""
        return measure_models(models, self.train_ds.info, batch_size=self.latency_batch_size,
                              warmup=self.latency_warmup, repeats=self.latency_repeats, threads=self.threads)

    def _describe(self, model: nn.Module, val_metric: float, test_metric: Optional[float]) -> dict:
        (lat1, latb, ssm), = self._measure([model])
        layers = ssm_layers(model)
        return {
            "val_metric": val_metric, "test_metric": test_metric, "latency_ms": lat1, "latency_batch_ms": latb,
            "ssm_latency_ms": ssm,
            "params": count_parameters(model), "pruned_per_layer": [layer.d_model - layer.num_active for layer in layers],
            "active_channels": [layer.active_channels.tolist() for layer in layers],
        }

    # ------------------------------------------------------------------ the search
    def run(self) -> "PruningResult":
        """Run (or resume) the search; with ``out_dir``, holding the run folder's lock throughout."""
        from s4op_kernels.runlock import lock_run_folder

        with lock_run_folder(self.out_dir) if self.out_dir is not None else contextlib.nullcontext():
            self.executor.open(self._context(), self.baseline, self.log)  # refuses unpicklable callbacks now
            try:
                return self._run()
            finally:
                self.executor.close()

    def _run(self) -> "PruningResult":
        t_start = time.perf_counter()
        state = self._load_state()
        if state is None:
            self.log("baseline: evaluating and measuring")
            base_val = float(self.evaluate(self.baseline, self.val_ds))
            base_test = float(self.evaluate(self.baseline, self.test_ds)) if self.test_ds is not None else None
            state = {"format": FORMAT_VERSION, "settings": self.settings(), "meta": self.meta,
                     "baseline": self._describe(self.baseline, base_val, base_test), "rates": [],
                     "rejected": None, "stopped": None, "threads": self.threads,
                     "latency_repeats": self.latency_repeats, "elapsed_s": 0.0}
            self._save_state(state)
        else:
            self.log(f"resuming {self.out_dir}: {len(state['rates'])} of {len(self.rates)} rates already done")
            if state.get("failed"):
                f = state["failed"]
                self.log(f"the previous attempt stopped at {round(100 * f['rate'])}%: {f['error']}; running it again")
        elapsed_before = state.get("elapsed_s", 0.0)

        current = self.baseline
        if state["rates"] and self.incremental:
            current = self._load_rate_model(state["rates"][-1])
        done = len(state["rates"])
        bar = _bar(len(self.rates) * len(self.seeds), done * len(self.seeds), self.progress, "S4oP search")
        try:
            for rate in self.rates[done:]:
                if state["stopped"]:
                    break
                start = current if self.incremental else self.baseline
                try:
                    result = self._one_rate(rate, start, bar)
                except CandidateFailedError as err:
                    # Recorded, and the search stops: no choice among the candidates that did finish.
                    state["failed"] = {"rate": rate, "seed": err.seed, "attempts": err.attempts, "error": err.error,
                                       "executor": self.executor.describe()}
                    state["elapsed_s"] = elapsed_before + time.perf_counter() - t_start
                    self._save_state(state)
                    raise
                state.pop("failed", None)
                baseline_val = state["baseline"]["val_metric"]
                if self.max_metric_drop is not None and result.val_metric < baseline_val - self.max_metric_drop:
                    state["rejected"] = asdict(result)
                    state["stopped"] = (f"at {round(100 * rate)}% the best validation metric {result.val_metric:.4f} is "
                                        f"more than {self.max_metric_drop} below the baseline's {baseline_val:.4f}; "
                                        f"the previous rate is the answer")
                else:
                    result.checkpoint = self._save_rate_model(result, self._last_model)
                    state["rates"].append(asdict(result))
                    current = self._last_model
                    self._models[rate] = current
                    if self.latency_budget_ms is not None and result.latency_ms <= self.latency_budget_ms:
                        state["stopped"] = (f"latency budget {self.latency_budget_ms} ms met at {round(100 * rate)}% "
                                            f"({result.latency_ms:.2f} ms)")
                state["elapsed_s"] = elapsed_before + time.perf_counter() - t_start
                self._save_state(state)
                self.log(f"{round(100 * rate)}%: seed {result.seed}, val {result.val_metric:.4f}, "
                         f"latency {result.latency_ms:.2f} ms, params {result.params}")
                if state["stopped"]:
                    self.log(f"stopped: {state['stopped']}")
        finally:
            bar.close()
            self.executor.close()  # before the final timing: no idle pool or Ray instance beside it
        if state["rates"]:
            self.log("final latency: all kept models, interleaved")
            self._remeasure(state)
            self._save_state(state)
        return PruningResult.from_state(state, self.metric_name())

    def _remeasure(self, state: dict) -> None:
        """Re-time the baseline and every kept rate round-robin (``measure_latencies``), so the report's
        latencies are comparable with each other; the in-loop numbers (used for the latency budget) stay as
        ``*_in_loop``."""
        models = [self.baseline] + [self._models.get(r["rate"]) or self._load_rate_model(r) for r in state["rates"]]
        for row, times in zip([state["baseline"]] + state["rates"], self._measure(models)):
            for key in ("latency_ms", "latency_batch_ms", "ssm_latency_ms"):
                row.setdefault(f"{key[:-3]}_in_loop_ms", row[key])
            row["latency_ms"], row["latency_batch_ms"], row["ssm_latency_ms"] = times
        state["latency_method"] = (f"after the search, all models round-robin: {self.latency_warmup} warm-up + "
                                   f"{self.latency_repeats} timed forwards each, median")

    def metric_name(self) -> str:
        return str(self.meta.get("metric", "metric"))

    def _context(self) -> SearchContext:
        """What every candidate shares (the executor sends it to its workers once)."""
        # kernel_norm ranks channels by their kernels over the task's length
        length = self.train_ds.info.seq_len if self.selector == "kernel_norm" else None
        return SearchContext(train_ds=self.train_ds, val_ds=self.val_ds, evaluate=self.evaluate,
                             fine_tune=self.fine_tune, selector=self.selector, length=length)

    def _one_rate(self, rate: float, start: nn.Module, bar) -> RateResult:
        t0 = time.perf_counter()
        jobs = [CandidateJob(rate=rate, seed=seed, counts=tuple(self._counts(rate, start, seed)))
                for seed in self.seeds]
        outcomes = self.executor.run_rate(start, jobs, done=lambda: bar.update(1))
        best = None
        for outcome in outcomes:  # in seed order: ties keep the earlier seed
            if best is None or outcome.val_metric > best.val_metric:
                best = outcome
        candidates = [{"seed": o.seed, "val_metric": o.val_metric, "finetune_s": o.finetune_s} for o in outcomes]
        best_model = best.model if best.model is not None else self._model_from_state(best.state)
        # The test split is read only now, after the choice.
        test = float(self.evaluate(best_model, self.test_ds)) if self.test_ds is not None else None
        d = self._describe(best_model, best.val_metric, test)
        self._last_model = best_model
        return RateResult(rate=rate, seed=best.seed, candidates=candidates, wall_s=time.perf_counter() - t0,
                          executor=self.executor.describe(), **d)

    def _model_from_state(self, state: dict) -> nn.Module:
        """A candidate's model from the weights a worker sent back (pruned layers resize from the state)."""
        model = copy.deepcopy(self.baseline)
        model.load_state_dict(state)
        return model

    def _counts(self, rate: float, start: nn.Module, seed: int) -> list[int]:
        """Channels to prune per layer (totals) for the candidate of ``seed`` grown from ``start``."""
        layers = ssm_layers(start)
        current = [layer.d_model - layer.num_active for layer in layers]
        if self.strategy == "random" and any(current):
            # Global random channels, nested: draw the missing ones among the still-active channels of the
            # whole model (each layer keeps at least one), seeded per candidate.
            target = min(round(rate * self.H * len(layers)), len(layers) * (self.H - 1))
            need = max(0, target - sum(current))
            owners = torch.cat([torch.full((layer.num_active,), i) for i, layer in enumerate(layers)])
            order = owners[torch.randperm(owners.numel(), generator=torch.Generator().manual_seed(seed))]
            counts = list(current)
            for i in order.tolist():
                if need == 0:
                    break
                if counts[i] < self.H - 1:
                    counts[i] += 1
                    need -= 1
            return counts
        counts = allocate(rate, len(layers), self.H, self.strategy, seed=seed)
        if any(c < p for c, p in zip(counts, current)):
            # Only "depth_aware_original" can ask for fewer pruned channels in a layer at a higher rate
            # (see allocation.py); a pruned channel stays pruned, so keep the larger count.
            self.log(f"{round(100 * rate)}%: allocation {counts} is below the current {current} in some layer; "
                     f"keeping the pruned channels (nested search)")
            counts = [max(c, p) for c, p in zip(counts, current)]
        return counts

    def _rate_path(self, rate: float) -> Optional[Path]:
        return None if self.out_dir is None else self.out_dir / f"rate_{round(100 * rate):02d}"

    def _save_rate_model(self, result: RateResult, model: nn.Module) -> Optional[str]:
        path = self._rate_path(result.rate)
        if path is None:
            return None
        from s4op_kernels.checkpoint import save_checkpoint

        saved = save_checkpoint(path, model, config=self.config, task_info=getattr(self.train_ds, "info", None),
                                metrics={"val": result.val_metric, "test": result.test_metric},
                                extra={"rate": result.rate, "seed": result.seed, "search": self.settings()})
        return str(saved)

    def _load_rate_model(self, rate_entry: dict) -> nn.Module:
        """The kept model of a finished rate, read back through the verified loader (its sidecar's digests)
        and checked to belong to this search and to hold the channels search.json records."""
        from s4op_kernels.checkpoint import load_weights, read_meta

        path = self._rate_path(rate_entry["rate"])
        weights = Path(str(path) + ".safetensors")
        pct = round(100 * rate_entry["rate"])
        if not weights.exists():
            raise FileNotFoundError(f"{weights}: the checkpoint of the finished {pct}% rate is missing, so the search "
                                    f"cannot resume; delete {self.out_dir} to restart")
        state = load_weights(path)
        recorded = (read_meta(path).extra or {}).get("search")
        if recorded != json.loads(json.dumps(self.settings())):
            raise SearchMismatchError(f"{path}.json: the {pct}% checkpoint was saved by a search with other settings; "
                                      f"delete {self.out_dir} to restart")
        model = copy.deepcopy(self.baseline)
        model.load_state_dict(state)  # pruned layers resize themselves from active_channels
        if [layer.active_channels.tolist() for layer in ssm_layers(model)] != rate_entry["active_channels"]:
            raise SearchMismatchError(f"{weights}: its active channels differ from those {SEARCH_FILE} records for "
                                      f"the {pct}% rate; delete {self.out_dir} to restart")
        return model


class OneShotPruner(IncrementalPruner):
    """The one-shot variant: every rate is pruned from the baseline (paper, Figure 4)."""

    def __init__(self, *args, **kwargs):
        kwargs["incremental"] = False
        super().__init__(*args, **kwargs)


@dataclass
class PruningResult:
    """The search's outcome: the baseline row and one row per kept rate (see ``to_dict``)."""

    summary: dict

    @classmethod
    def from_state(cls, state: dict, metric: str) -> "PruningResult":
        s = copy.deepcopy(state)
        # flat copies of what the report's title line names (the nested "settings" stay the record)
        for key in ("strategy", "selector", "incremental", "latency_batch_size"):
            s[key] = s["settings"][key]
        s.update({k: v for k, v in s.get("meta", {}).items() if k not in s})
        s["metric"] = metric
        return cls(s)

    @property
    def rates(self) -> list[dict]:
        return self.summary["rates"]

    def to_dict(self) -> dict:
        return copy.deepcopy(self.summary)


def _bar(total: int, initial: int, progress: Optional[bool], desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="candidate", disable=not progress_enabled(progress),
                leave=False)


def summary_rate(summary: dict, rate: float) -> Optional[dict]:
    """The row of ``rate`` in a summary dict, or None."""
    for r in summary.get("rates", []):
        if math.isclose(r["rate"], rate):
            return r
    return None
