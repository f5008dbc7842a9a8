"""Where the S4oP search's candidates run: in this process, in a local process pool, or as Ray tasks.

The search (:class:`~s4op_kernels.pruning.search.IncrementalPruner`) is a barrier per rate: the candidates
of one rate (one per seed) are independent of each other, and the next rate starts from the one chosen by
validation.  An *executor* runs the candidates of one rate and hands back, for each, its validation metric
and its weights; everything else (the choice, the test split, latency, checkpoints, ``search.json``) stays
with the driver, the process that runs the search.

==============  ==========================================================================================
``local``       the default, today's search: the candidates one after another in this process.
``processes``   a local process pool (``concurrent.futures.ProcessPoolExecutor``, spawn context) for a
                many-core workstation: ``workers`` candidates at once.
``ray``         Ray core tasks (``pip install "s4op-kernels[ray]"``), on a local Ray instance or a
                cluster (``address``): every candidate of a rate at once, as far as the cluster's CPUs
                (GPUs) allow.
==============  ==========================================================================================

One task is one candidate: it receives the rate's parent model, prunes it (``prune_model`` with the
candidate's seed and the driver's per-layer counts), fine-tunes it, scores it on the validation split and
returns the metric and the weights (a CPU state dict).  What a task needs is sent as little as possible:

- the search's constants (the datasets, the callbacks, an unpruned copy of the model to load weights into)
  once per search: ``ray.put`` once, each Ray worker process deserializing it once (a per-process cache);
  the process pool's workers receive it in their initializer, once per worker;
- the parent's weights once per rate: ``ray.put`` once per rate; for the pool, one copy per rate whose
  tensors torch.multiprocessing places in shared memory, so each task receives handles, not the data.

Threads: each task sets ``torch.set_num_threads(task_cpus)`` (the engine uses torch's threads too), so
``workers x task_cpus`` should not exceed the cores.  The thread count changes the rounding of float
reductions in training (a few ulp in the weights after an epoch), so the weights equal the local search's
bitwise only when the local search ran its candidates with the same thread count (``task_cpus`` of the
local executor; by default it uses torch's, i.e. all cores).

Failures: a task that raises (or whose worker dies) is run again, up to ``retries`` more times (Ray's
``max_retries`` with ``retry_exceptions``; the pool counts attempts itself, and a lost worker costs every
task then in the pool an attempt).  A candidate that still fails raises :class:`CandidateFailedError`; the
search records the failure in ``search.json`` and stops, and never chooses among the rest.  The local
executor does not retry: an exception propagates as it always did.

Which executor ran a rate does not change its result beyond the thread count, so it is not one of the
settings a resumed run must match: a run started locally can be resumed on Ray and the other way round.
Each rate's row records the executor that ran it (``executor``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import copy
import os
import pickle
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import torch
from torch import nn

from s4op_kernels._validate import check_int

EXECUTORS = ("local", "processes", "ray")
RAY_INSTALL = 'pip install "s4op-kernels[ray]"  (or: pip install ray)'


class CandidateFailedError(RuntimeError):
    """A candidate's task failed on every attempt; the search stops rather than choose among the rest."""

    def __init__(self, rate: float, seed: int, attempts: int, error: str, executor: str):
        self.rate, self.seed, self.attempts, self.error, self.executor = rate, seed, attempts, error, executor
        super().__init__(f"at {round(100 * rate)}% the candidate of seed {seed} failed {attempts} time(s) on the "
                         f"{executor} executor; last error: {error}")


class ExecutorUnavailableError(ImportError):
    """The executor's engine (Ray) is not installed."""


# ------------------------------------------------------------------------------------------ one candidate
@dataclass(frozen=True)
class CandidateJob:
    """One candidate: its rate, seed, and the total pruned channels per layer (computed by the driver)."""

    rate: float
    seed: int
    counts: tuple[int, ...]


@dataclass(frozen=True)
class SearchContext:
    """What every candidate of a search shares (sent to workers once per search)."""

    train_ds: Any
    val_ds: Any
    evaluate: Callable[[nn.Module, Any], float]
    fine_tune: Optional[Callable[..., Any]]
    selector: Any
    length: Optional[int]  # the task's sequence length, for the kernel_norm selector


@dataclass
class CandidateOutcome:
    """A finished candidate: its validation metric, the time from fine-tuning to scored, and either the
    model itself (local) or its weights (a CPU state dict, from another process)."""

    seed: int
    val_metric: float
    finetune_s: float
    model: Optional[nn.Module] = None
    state: Optional[dict] = None
    attempts: Optional[int] = 1  # None: not known (Ray retries by itself)


def run_candidate(context: SearchContext, model: nn.Module, job: CandidateJob) -> tuple[float, float]:
    """Prune ``model`` in place to ``job.counts`` with ``job.seed``, fine-tune it, and score it on the
    validation split.  Returns ``(val_metric, seconds from fine-tuning to scored)``.  Every executor runs
    this; it is the body of the search's loop over seeds."""
    from s4op_kernels.pruning.selection import prune_model

    extra = {"length": context.length} if context.selector == "kernel_norm" else {}
    prune_model(model, list(job.counts), selector=context.selector, seed=job.seed, **extra)
    t = time.perf_counter()
    if context.fine_tune is not None:
        context.fine_tune(model, context.train_ds, context.val_ds, seed=job.seed)
    val = float(context.evaluate(model, context.val_ds))
    return val, time.perf_counter() - t


@contextlib.contextmanager
def torch_threads(n: Optional[int]):
    """``torch.set_num_threads(n)`` for the block (nothing when ``n`` is None), restored afterwards."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def cpu_state(model: nn.Module) -> dict:
    """A detached CPU copy of ``model``'s state dict (what a task sends back, and a rate's parent)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _remote_candidate(context: SearchContext, skeleton: nn.Module, parent: dict, job: CandidateJob,
                      threads: int, device: Optional[str]) -> CandidateOutcome:
    """A candidate in a worker process: the parent rebuilt from its weights, then :func:`run_candidate`."""
    model = copy.deepcopy(skeleton)
    model.load_state_dict(parent)  # pruned layers take the parent's active channels from the state
    if device is not None:
        model.to(device)
    with torch_threads(threads):
        val, seconds = run_candidate(context, model, job)
    return CandidateOutcome(seed=job.seed, val_metric=val, finetune_s=seconds, state=cpu_state(model))


# ------------------------------------------------------------------------------------------ executors
class Executor:
    """Runs the candidates of one rate (:meth:`run_rate`).  ``open`` is called once per search with what the
    candidates share, ``close`` at its end (also after an error)."""

    name = "executor"

    def describe(self) -> dict:
        """What is recorded with each rate this executor ran."""
        return {"name": self.name}

    def connect(self, log: Callable[[str], Any] = lambda line: None) -> None:
        """Reach what runs the tasks now (Ray: join the cluster or start the local instance), so that a wrong
        address fails before any training; :meth:`run_rate` does it too when it was not called."""

    @contextlib.contextmanager
    def connected(self, log: Callable[[str], Any] = lambda line: None):
        """:meth:`connect` now and :meth:`close` at the end of the block, however it ends (the search closes the
        executor too; this also covers a failure before the search, e.g. in the baseline's training)."""
        try:
            self.connect(log)
            yield self
        finally:
            self.close()

    def open(self, context: SearchContext, skeleton: nn.Module, log: Callable[[str], Any]) -> None:
        self.context, self.skeleton, self.log = context, skeleton, log

    def run_rate(self, start: nn.Module, jobs: Sequence[CandidateJob],
                 done: Callable[[], Any] = lambda: None) -> list[CandidateOutcome]:
        """One :class:`CandidateOutcome` per job, in the order of ``jobs``; ``done()`` after each finishes."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.describe().items() if k != 'name')})"


class LocalExecutor(Executor):
    """The candidates one after another in this process (the search as it always ran).  ``task_cpus``: the
    torch threads they train with (None: leave torch's setting, all cores by default)."""

    name = "local"

    def __init__(self, *, task_cpus: Optional[int] = None):
        self.task_cpus = None if task_cpus is None else check_int(task_cpus, "task_cpus", func="LocalExecutor",
                                                                  minimum=1)

    def describe(self) -> dict:
        return {"name": self.name, "threads": self.task_cpus or torch.get_num_threads()}

    def run_rate(self, start, jobs, done=lambda: None):
        out = []
        with torch_threads(self.task_cpus):
            for job in jobs:
                model = copy.deepcopy(start)
                val, seconds = run_candidate(self.context, model, job)
                out.append(CandidateOutcome(seed=job.seed, val_metric=val, finetune_s=seconds, model=model))
                done()
        return out


# ---- the process pool
_WORKER: dict = {}  # in a pool worker: the search's context and skeleton, set once by the initializer


def _pool_init(context: SearchContext, skeleton: nn.Module, threads: int) -> None:
    torch.set_num_threads(threads)
    _WORKER.update(context=context, skeleton=skeleton, threads=threads)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True, name="s4op-parent-watch").start()


def _exit_with_parent(parent: int, every_s: float = 0.5) -> None:
    """A pool worker whose driver was killed would wait on its task queue forever (it holds the queue's write
    end itself, so it never sees end-of-file): leave once the parent is gone (this process is re-parented)."""
    while True:
        time.sleep(every_s)
        if os.getppid() != parent:
            os._exit(1)


def _cores() -> int:
    """The cores this process may run on (its affinity, where the platform tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _pool_task(parent: dict, job: CandidateJob) -> CandidateOutcome:
    return _remote_candidate(_WORKER["context"], _WORKER["skeleton"], parent, job, _WORKER["threads"], None)


class ProcessExecutor(Executor):
    """A local pool of ``workers`` processes (spawn), each candidate one task with ``task_cpus`` torch threads.

    ``workers`` defaults to ``cores // task_cpus`` (the cores this process may use; at least 1), and never more than there are seeds.  The
    callbacks and the selector must be picklable (module-level functions, ``functools.partial`` of them, or
    instances of module-level classes; not lambdas or closures).  ``retries``: extra attempts per task."""

    name = "processes"

    def __init__(self, *, workers: Optional[int] = None, task_cpus: int = 1, retries: int = 2):
        self.task_cpus = check_int(task_cpus, "task_cpus", func="ProcessExecutor", minimum=1)
        self.workers = None if workers is None else check_int(workers, "workers", func="ProcessExecutor", minimum=1)
        self.retries = check_int(retries, "retries", func="ProcessExecutor", minimum=0)
        self._pool: Optional[concurrent.futures.ProcessPoolExecutor] = None

    def describe(self) -> dict:
        return {"name": self.name, "workers": self.workers, "threads": self.task_cpus, "retries": self.retries}

    def open(self, context, skeleton, log):
        for what, value in (("fine_tune", context.fine_tune), ("evaluate", context.evaluate),
                            ("selector", context.selector)):
            try:
                pickle.dumps(value)
            except Exception as err:  # pickle raises several types (PicklingError, AttributeError, TypeError)
                raise TypeError(f"the processes executor sends {what} to its workers by pickling, and {value!r} "
                                f"cannot be pickled ({type(err).__name__}: {err}); use a module-level function, "
                                "a functools.partial of one, or an instance of a module-level class (or the "
                                "local or ray executor)") from None
        # Sending moves tensors into shared memory in place (torch.multiprocessing); the caller's model is left
        # as it is, the datasets are shared where they are rather than copied.
        super().open(context, copy.deepcopy(skeleton), log)

    def _start(self, n_jobs: int) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            import torch.multiprocessing as tmp

            if self.workers is None:
                self.workers = max(1, min(n_jobs, _cores() // self.task_cpus))
            self.log(f"processes: starting {self.workers} worker(s), {self.task_cpus} thread(s) each")
            self._pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=self.workers, mp_context=tmp.get_context("spawn"), initializer=_pool_init,
                initargs=(self.context, self.skeleton, self.task_cpus))
        return self._pool

    def _stop(self, kill: bool = False) -> None:
        """Shut the pool down; ``kill``: end the running tasks too (after a failure or an interrupt, nothing of
        the rate may run on)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if kill:
            processes = list((getattr(pool, "_processes", None) or {}).values())  # no public way before 3.14
            pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                if process.is_alive():
                    process.kill()
            for process in processes:
                process.join(timeout=10)
        pool.shutdown(wait=True, cancel_futures=True)

    def run_rate(self, start, jobs, done=lambda: None):
        try:
            return self._run_rate(start, jobs, done)
        except BaseException:
            self._stop(kill=True)
            raise

    def _run_rate(self, start, jobs, done):
        from concurrent.futures.process import BrokenProcessPool

        parent = cpu_state(start)  # one copy per rate: its tensors go to shared memory once, tasks get handles
        results: dict[int, CandidateOutcome] = {}
        attempts = {i: 0 for i in range(len(jobs))}
        pending: dict[concurrent.futures.Future, int] = {}

        def submit(i: int) -> None:
            attempts[i] += 1
            pending[self._start(len(jobs)).submit(_pool_task, parent, jobs[i])] = i

        def failed(i: int, err: BaseException) -> None:
            job = jobs[i]
            text = f"{type(err).__name__}: {err}"
            if attempts[i] > self.retries:
                raise CandidateFailedError(job.rate, job.seed, attempts[i], text, self.name) from err
            self.log(f"{round(100 * job.rate)}%: seed {job.seed} failed ({text}); attempt {attempts[i] + 1} of "
                     f"{self.retries + 1}")

        for i in range(len(jobs)):
            submit(i)
        while pending:
            finished, _ = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
            broken = []
            for future in finished:
                i = pending.pop(future)
                err = future.exception()
                if err is None:
                    results[i] = future.result()
                    results[i].attempts = attempts[i]
                    done()
                elif isinstance(err, BrokenProcessPool):
                    broken.append((i, err))
                else:
                    failed(i, err)
                    submit(i)
            if broken:
                # A worker died: every task still in the pool is lost with it.  Count an attempt against each,
                # start a fresh pool and run them again.
                lost = broken + [(i, broken[0][1]) for i in pending.values()]
                pending.clear()
                self._stop(kill=True)
                for i, err in sorted(lost):
                    failed(i, err)
                for i, _ in sorted(lost):
                    submit(i)
        return [results[i] for i in range(len(jobs))]

    def close(self):
        self._stop()


# ---- Ray
_RAY_CACHE: "OrderedDict[str, Any]" = OrderedDict()  # in a Ray worker: deserialized shared objects, by ref
_RAY_CACHE_SIZE = 4


def _ray_fetch(ref):
    """``ray.get(ref)``, deserialized once per worker process (the search's context, a rate's parent)."""
    import ray

    key = ref.hex()
    if key in _RAY_CACHE:
        _RAY_CACHE.move_to_end(key)
        return _RAY_CACHE[key]
    value = ray.get(ref)
    _RAY_CACHE[key] = value
    while len(_RAY_CACHE) > _RAY_CACHE_SIZE:
        _RAY_CACHE.popitem(last=False)
    return value


def _ray_task(shared: list, parent: list, job: CandidateJob, threads: int, device: Optional[str]) -> CandidateOutcome:
    # The refs come wrapped in lists, so Ray hands them over unresolved and _ray_fetch can cache them.
    context, skeleton = _ray_fetch(shared[0])
    return _remote_candidate(context, skeleton, _ray_fetch(parent[0]), job, threads, device)


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def import_ray():
    """The ``ray`` module, or :class:`ExecutorUnavailableError` with the install command."""
    try:
        import ray
    except ImportError as err:
        raise ExecutorUnavailableError(f"the ray executor needs Ray, which is not installed ({err}); install it "
                                       f"with: {RAY_INSTALL}") from None
    return ray


class RayExecutor(Executor):
    """Every candidate of a rate as one Ray task (``num_cpus=task_cpus``, ``num_gpus=task_gpus``).

    ``address``: the cluster to join (``"auto"``, ``"HOST:PORT"``, ``"ray://HOST:PORT"``); None joins the
    instance this process already joined, else the one ``RAY_ADDRESS`` names, else starts a local instance
    (``ray.init()``), shut down again at the end of the search.  Every node needs this package installed.
    ``task_gpus > 0``: each candidate is moved to its GPU (``cuda``) before ``fine_tune`` and ``evaluate``,
    which then run on the model's device (those of ``s4op prune`` do), and its weights come back on the CPU.
    ``retries``: Ray's ``max_retries`` with ``retry_exceptions=True``."""

    name = "ray"

    def __init__(self, *, address: Optional[str] = None, task_cpus: float = 1, task_gpus: float = 0,
                 retries: int = 2, init_kwargs: Optional[dict] = None):
        self._ray = import_ray()
        if isinstance(task_cpus, bool) or not isinstance(task_cpus, (int, float)) or not task_cpus > 0:
            raise ValueError(f"RayExecutor(task_cpus): expected a number > 0, got {task_cpus!r}")
        if isinstance(task_gpus, bool) or not isinstance(task_gpus, (int, float)) or not task_gpus >= 0:
            raise ValueError(f"RayExecutor(task_gpus): expected a number >= 0, got {task_gpus!r}")
        if address is not None and (not isinstance(address, str) or not address.strip()):
            raise ValueError(f"RayExecutor(address): expected 'auto', 'HOST:PORT' or None, got {address!r}")
        self.address, self.task_cpus, self.task_gpus = address, task_cpus, task_gpus
        self.retries = check_int(retries, "retries", func="RayExecutor", minimum=0)
        self.init_kwargs = dict(init_kwargs or {})
        self._started = self._connected = False
        self._shared = None
        self._parent: Optional[tuple[nn.Module, Any]] = None

    @property
    def threads(self) -> int:
        return max(1, int(self.task_cpus))

    def describe(self) -> dict:
        return {"name": self.name, "address": self.address, "task_cpus": self.task_cpus,
                "task_gpus": self.task_gpus, "threads": self.threads, "retries": self.retries}

    def connect(self, log=lambda line: None) -> None:
        ray = self._ray
        if self._connected and ray.is_initialized():
            return
        if not ray.is_initialized():
            where = self.address or os.environ.get("RAY_ADDRESS")
            log(f"ray: {'joining ' + where if where else 'starting a local Ray instance'}")
            ray.init(address=self.address, **self.init_kwargs)  # ConnectionError if there is no such cluster
            self._started = True
        elif self.address is not None:
            log("ray: this process has already joined a Ray instance; using it")
        self._connected = True

    def _connect(self) -> None:
        ray = self._ray
        if self._shared is not None:
            return
        self.connect(self.log)
        have = ray.cluster_resources()
        if self.task_cpus > have.get("CPU", 0) or self.task_gpus > have.get("GPU", 0):
            self.log(f"ray: each task asks for {self.task_cpus} CPU(s) and {self.task_gpus} GPU(s), and the cluster "
                     f"has {have.get('CPU', 0):g} CPU(s) and {have.get('GPU', 0):g} GPU(s) in all: the tasks wait "
                     "until a node that has them joins")
        self._remote = ray.remote(_ray_task)
        self._shared = ray.put((self.context, self.skeleton))  # once per search

    def run_rate(self, start, jobs, done=lambda: None):
        ray = self._ray
        self._connect()
        if self._parent is None or self._parent[0] is not start:  # once per rate (one-shot: once)
            self._parent = (start, ray.put(cpu_state(start)))
        device = "cuda" if self.task_gpus > 0 else None
        task = self._remote.options(num_cpus=self.task_cpus, num_gpus=self.task_gpus, max_retries=self.retries,
                                    retry_exceptions=True)
        refs = [task.remote([self._shared], [self._parent[1]], job, self.threads, device) for job in jobs]
        index = {ref: i for i, ref in enumerate(refs)}
        results: dict[int, CandidateOutcome] = {}
        waiting = list(refs)
        try:
            while waiting:
                ready, waiting = ray.wait(waiting, num_returns=1)
                for ref in ready:
                    i = index[ref]
                    try:
                        results[i] = ray.get(ref)
                    except ray.exceptions.RayError as err:
                        job = jobs[i]
                        cause = getattr(err, "cause", None)
                        text = (f"{type(cause).__name__}: {cause}" if isinstance(cause, BaseException)
                                else f"{type(err).__name__}: {_last_line(str(err))}")
                        raise CandidateFailedError(job.rate, job.seed, self.retries + 1, text, self.name) from err
                    results[i].attempts = None  # Ray does not say how many attempts a task took
                    done()
        except BaseException:
            for ref in waiting:  # nothing of this rate may run on after the search stops
                ray.cancel(ref, force=True)
            raise
        return [results[i] for i in range(len(jobs))]

    def close(self):
        self._shared = self._parent = None
        self._connected = False
        if self._started:
            self._ray.shutdown()
            self._started = False


def make_executor(executor="local", *, address: Optional[str] = None, task_cpus=None, task_gpus: float = 0,
                  workers: Optional[int] = None, retries: int = 2) -> Executor:
    """An :class:`Executor` by name (``"local"``, ``"processes"``, ``"ray"``), or ``executor`` itself if it is
    one.  Options that the chosen executor does not take are refused rather than ignored.  ``task_cpus``
    defaults to torch's threads for ``local`` and to 1 for the others."""
    if isinstance(executor, Executor):
        return executor
    if executor is None:
        executor = "local"
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {list(EXECUTORS)} or an Executor, got {executor!r}")
    unused = {"address": address is not None and executor != "ray",
              "task_gpus": bool(task_gpus) and executor != "ray",
              "workers": workers is not None and executor != "processes"}
    bad = [k for k, v in unused.items() if v]
    if bad:
        raise ValueError(f"the {executor} executor takes no {', '.join(bad)} (address and task_gpus are the ray "
                         "executor's, workers the processes executor's)")
    if executor == "local":
        return LocalExecutor(task_cpus=task_cpus)
    if executor == "processes":
        return ProcessExecutor(workers=workers, task_cpus=1 if task_cpus is None else task_cpus, retries=retries)
    return RayExecutor(address=address, task_cpus=1 if task_cpus is None else task_cpus, task_gpus=task_gpus,
                       retries=retries)
