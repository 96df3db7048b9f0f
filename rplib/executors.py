"""Where the runs of a grid execute: serially, in a local process pool, on Slurm or on Dask.

:func:`rplib.grid.run_grid` hands the unfinished configurations of a grid to an executor; every
worker calls :func:`rplib.train.run` with the same run store, so each run lands in
``runs/<hash>/`` exactly as it would serially, and the caller reads the results from the store.
One setting chooses the executor, so notebooks never change:

``RPLIB_EXECUTOR``
    ``serial`` (default when unset, as in a notebook opened by hand or under nbval): one run after
    another in this process.
    ``auto`` (what ``make book`` uses unless told otherwise): ``serial`` when at most one run is
    unfinished or the local pool would have a single worker, else ``local``.
    ``local``: a pool of processes on this machine, forked from one server process that has
    imported rplib and torch once (spawned where fork is not available). On CPU ``RPLIB_WORKERS``
    workers (default: the number of cores) with one intra-op thread each; when the runs may use a GPU
    (device ``auto`` or ``cuda``) and GPUs are visible, ``RPLIB_WORKERS_PER_GPU`` workers (default 1)
    per GPU, each seeing only its GPU through ``CUDA_VISIBLE_DEVICES``.
    ``slurm``: one job array per grid through submitit; resources from the YAML file
    ``RPLIB_SLURM_CONFIG`` and ``RPLIB_SLURM_<KEY>`` variables (see :data:`SLURM_SETTINGS`), logs in
    ``RPLIB_SLURM_FOLDER`` (default ``<run store>/.submitit``).
    ``dask``: the workers of a running ``distributed`` scheduler at ``RPLIB_DASK_SCHEDULER``.

``RPLIB_THREADS`` (default 1) is the intra-op thread count of every run, passed on to every worker
whatever the executor: on CPU the same config then gives the same metrics serially, in a pool, on
Slurm or on Dask (:func:`rplib.train.run` applies it and records it). Only unfinished runs are
submitted, identical configurations once; a failing run does not stop the others, and
:class:`GridError` lists every failure once all runs have ended.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from .config import RunConfig
from .store import RunDir

if TYPE_CHECKING:
    from .train import Result

__all__ = ["EXECUTORS", "SLURM_SETTINGS", "Executor", "Serial", "Local", "Slurm", "Dask", "Auto", "RunFailure",
           "GridError", "describe", "from_settings", "announce", "execute_grid"]

EXECUTORS = ("auto", "serial", "local", "slurm", "dask")
#: a grid with more unfinished runs than this announces its size and estimated hours before it starts
LARGE_GRID = 1000

#: keys of the Slurm YAML file (``RPLIB_SLURM_CONFIG``), each also settable as ``RPLIB_SLURM_<KEY>``
#: (which wins over the file), with their types and defaults (``None``: the cluster's default)
SLURM_SETTINGS: dict[str, tuple[type, Any]] = {
    "partition": (str, None),
    "account": (str, None),
    "qos": (str, None),
    "gpus_per_node": (int, 0),
    "cpus_per_task": (int, 1),
    "mem_gb": (float, None),
    "timeout_min": (int, 240),
    "array_parallelism": (int, 64),
    "folder": (str, None),
}
_SIGNAL_DELAY_MIN = 2  # submitit warns a job 90 s before its time limit; shorter limits leave no time to run

Done = Callable[[RunConfig, "BaseException | None"], None]


# --------------------------------------------------------------------------- failures


@dataclass(frozen=True)
class RunFailure:
    """One run that ended without a result: its hash, key fields and a one-line error."""

    hash: str
    description: str
    error: str
    exception: BaseException | None = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        return f"{self.hash} ({self.description}): {self.error}"


class GridError(RuntimeError):
    """Some runs of a grid failed; the others are finished in the run store."""

    def __init__(self, failures: Sequence[RunFailure], total: int, root: Path):
        self.failures = list(failures)
        lines = [f"{len(self.failures)} of {total} runs failed ({total - len(self.failures)} finished in {root}):"]
        lines += [f"  {f}" for f in self.failures]
        super().__init__("\n".join(lines))


def describe(cfg: RunConfig) -> str:
    """The fields that tell runs of a grid apart at a glance."""
    parts = [cfg.data.name, cfg.model.name, cfg.sparsity.method]
    if cfg.sparsity.sparse:
        parts.append(f"density {cfg.sparsity.density:g}")
    if cfg.dst.enabled:
        parts.append(f"dst {cfg.dst.drop}/{cfg.dst.grow}")
    parts += [f"{cfg.optim.epochs} epochs", f"seed {cfg.seed}"]
    return ", ".join(parts)


def _one_line(err: BaseException) -> str:
    """``Type: message`` of an exception; for a Slurm job, the exception line of its traceback or its state."""
    from submitit.core.utils import FailedJobError, UncompletedJobError

    text = str(err).strip()
    if isinstance(err, FailedJobError):  # the job's traceback: its last unindented line is the exception
        lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith((" ", "-", "Traceback"))]
        tail = [ln for ln in lines if not ln.startswith(("Job (task=", "You can check"))]
        return tail[-1] if tail else text.splitlines()[0]
    if isinstance(err, UncompletedJobError):  # killed, cancelled or timed out: submitit's first two lines say so
        return " ".join(text.splitlines()[:2])
    first = text.splitlines()[0] if text else ""
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


# --------------------------------------------------------------------------- the worker side


def _work(config: RunConfig, root: str, threads: int) -> str:
    """Train (or resume) one run into ``root`` in a worker; returns its hash."""
    from .train import run

    os.environ["RPLIB_THREADS"] = str(threads)  # run() trains with it and records it
    return run(config, root, progress=False).path.name


# What the fork server imports once for every pool worker: rplib's training code, and torch._dynamo,
# which the first optimizer of a process imports (about 2 s). Forked workers skip both imports, and
# leave without the interpreter's teardown (about 1.3 s with torch loaded).
_PRELOAD = ["rplib.train", "torch._dynamo"]


def _pool_context() -> mp.context.BaseContext:
    """Fork server where the platform has one (it imports torch but never initialises CUDA), else spawn."""
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx


def _init_local_worker(gpus: mp.Queue, env: dict[str, str]) -> None:
    """Give a fresh pool process the caller's environment of now (a fork server keeps the one it
    started with) and pin it to the next GPU slot (``""``: CPU only) before anything touches CUDA."""
    os.environ.clear()
    os.environ.update(env)
    gpu = gpus.get()
    if gpu:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu


# --------------------------------------------------------------------------- executors


class Executor:
    """Runs a list of configs into a run store, reporting each run's end through ``done(config, error)``."""

    name = ""

    def execute(self, configs: Sequence[RunConfig], root: Path, done: Done, progress: bool) -> None:
        raise NotImplementedError


class Serial(Executor):
    """Today's loop: one run after another in this process (with per-run progress bars)."""

    name = "serial"

    def execute(self, configs: Sequence[RunConfig], root: Path, done: Done, progress: bool) -> None:
        from .train import run

        for cfg in configs:
            try:
                run(cfg, root, progress=progress)
            except Exception as e:  # noqa: BLE001 - reported with the other failures at the end
                done(cfg, e)
            else:
                done(cfg, None)


def _visible_gpus() -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` entries."""
    import torch

    if not torch.cuda.is_available():
        return []
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed:
        return [d.strip() for d in listed.split(",") if d.strip()]
    return [str(i) for i in range(torch.cuda.device_count())]


@dataclass
class Local(Executor):
    """A pool of processes on this machine: per core on CPU, per GPU slot when runs use GPUs."""

    workers: int | None = None
    workers_per_gpu: int = 1
    threads: int = 1
    name = "local"

    def slots(self, configs: Sequence[RunConfig]) -> list[str]:
        """One entry per worker: the GPU it sees, or ``""`` for a CPU worker."""
        gpus = _visible_gpus() if any(c.device != "cpu" for c in configs) else []
        if gpus:
            n = self.workers or len(gpus) * self.workers_per_gpu
            return [gpus[i % len(gpus)] for i in range(n)]
        return [""] * (self.workers or os.cpu_count() or 1)

    def execute(self, configs: Sequence[RunConfig], root: Path, done: Done, progress: bool) -> None:
        slots = self.slots(configs)[: len(configs)]
        ctx = _pool_context()
        queue = ctx.Queue()
        for s in slots:
            queue.put(s)
        with cf.ProcessPoolExecutor(len(slots), mp_context=ctx, initializer=_init_local_worker,
                                    initargs=(queue, dict(os.environ))) as pool:
            futures = {pool.submit(_work, cfg, str(root), self.threads): cfg for cfg in configs}
            try:
                for fut in cf.as_completed(futures):
                    done(futures[fut], fut.exception())
            except BaseException:
                pool.shutdown(cancel_futures=True)  # interrupted: start no further runs, let running ones end
                raise


def _cancelled(job: Any) -> BaseException | None:
    """The error of a job that Slurm cancelled without a result, at once: submitit would first wait 15 s for
    a result file that a cancelled job never writes."""
    from submitit.core.utils import UncompletedJobError

    if not job.state.startswith("CANCELLED") or job.paths.result_pickle.exists():
        return None
    return UncompletedJobError(f"Job {job.job_id} was cancelled\nhas not produced any output (state: {job.state})")


@dataclass
class Slurm(Executor):
    """One Slurm job array per grid through submitit; ``settings`` as in :data:`SLURM_SETTINGS`."""

    settings: dict[str, Any]
    threads: int = 1
    poll_s: float = 1.0
    name = "slurm"

    def folder(self, root: Path) -> Path:
        return Path(self.settings["folder"]).resolve() if self.settings["folder"] else root / ".submitit"

    def execute(self, configs: Sequence[RunConfig], root: Path, done: Done, progress: bool) -> None:
        import submitit

        s = self.settings
        ex = submitit.AutoExecutor(folder=self.folder(root) / "%j", cluster="slurm")
        params: dict[str, Any] = {"name": "rplib", "timeout_min": s["timeout_min"], "cpus_per_task": s["cpus_per_task"],
                                  "slurm_array_parallelism": s["array_parallelism"]}
        optional = {"partition": "slurm_partition", "account": "slurm_account", "qos": "slurm_qos",
                    "mem_gb": "mem_gb", "gpus_per_node": "gpus_per_node"}
        params |= {arg: s[key] for key, arg in optional.items() if s[key]}
        ex.update_parameters(**params)
        n = len(configs)
        jobs = ex.map_array(_work, list(configs), [str(root)] * n, [self.threads] * n)
        pending = dict(zip(jobs, configs))
        last_check = time.monotonic()
        while pending:
            if time.monotonic() - last_check > 15:  # ask sacct regularly: a killed job leaves no result file
                jobs[0].watcher.update()
                last_check = time.monotonic()
            for job in [j for j in pending if j.done()]:
                cfg = pending.pop(job)
                err = _cancelled(job) or job.exception()
                if err is not None:
                    err = type(err)(f"{_one_line(err)} (Slurm job {job.job_id}, log {job.paths.stderr})")
                done(cfg, err)
            if pending:
                time.sleep(self.poll_s)


@dataclass
class Dask(Executor):
    """The workers of a running ``distributed`` scheduler at ``address``."""

    address: str
    threads: int = 1
    name = "dask"

    def execute(self, configs: Sequence[RunConfig], root: Path, done: Done, progress: bool) -> None:
        from distributed import Client, as_completed

        with Client(self.address, timeout="30s") as client:
            n = len(configs)
            futures = client.map(_work, list(configs), [str(root)] * n, [self.threads] * n, pure=False)
            by_key = {f.key: cfg for f, cfg in zip(futures, configs)}
            for fut in as_completed(futures):
                err = None if fut.status == "finished" else fut.exception() if fut.status == "error" else \
                    RuntimeError(f"the Dask task ended {fut.status}")
                done(by_key[fut.key], err)


@dataclass
class Auto(Executor):
    """``serial`` for at most one unfinished run or a single local worker, else ``local``."""

    local: Local
    name = "auto"

    def choose(self, configs: Sequence[RunConfig]) -> Executor:
        if len(configs) <= 1 or len(self.local.slots(configs)) <= 1:
            return Serial()
        return self.local

    def execute(self, configs: Sequence[RunConfig], root: Path, done: Done, progress: bool) -> None:
        self.choose(configs).execute(configs, root, done, progress)


# --------------------------------------------------------------------------- settings


def _positive_int(env: Mapping[str, str], key: str, default: int | None, minimum: int = 1) -> int | None:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise ValueError(f"{key}={raw!r} is not valid; valid values: integers >= {minimum}")
    return value


def _typed(where: str, value: Any, key: str) -> Any:
    """``value`` as the type of Slurm setting ``key``, or a one-line error naming ``where`` it was set."""
    kind = SLURM_SETTINGS[key][0]
    minimum = 0 if key == "gpus_per_node" else 1
    try:
        typed = None if isinstance(value, bool) else kind(value)
    except (TypeError, ValueError):
        typed = None
    if kind is str:
        ok = bool(typed and typed.strip())
    else:
        ok = typed is not None and typed == float(value) and typed >= minimum
    if not ok:
        valid = "a non-empty string" if kind is str else f"{'integers' if kind is int else 'numbers'} >= {minimum}"
        raise ValueError(f"Slurm setting {where}={value!r} is not valid; valid values: {valid}")
    return typed


def _slurm_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """The Slurm settings: defaults, then the YAML file ``RPLIB_SLURM_CONFIG``, then ``RPLIB_SLURM_<KEY>``."""
    import yaml

    raw: dict[str, tuple[str, Any]] = {}  # key -> (where it was set, value)
    path = env.get("RPLIB_SLURM_CONFIG", "").strip()
    if path:
        if not Path(path).is_file():
            raise ValueError(f"RPLIB_SLURM_CONFIG={path!r} is not a file; valid values: a YAML file with keys "
                             f"{', '.join(SLURM_SETTINGS)}")
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"RPLIB_SLURM_CONFIG={path!r} does not hold a YAML mapping; valid keys: "
                             f"{', '.join(SLURM_SETTINGS)}")
        for key, value in data.items():
            if key not in SLURM_SETTINGS:
                raise ValueError(f"{path}: unknown Slurm setting {key!r}; valid settings: {', '.join(SLURM_SETTINGS)}")
            raw[key] = (f"{path}: {key}", value)
    for key in SLURM_SETTINGS:
        var = "RPLIB_SLURM_FOLDER" if key == "folder" else f"RPLIB_SLURM_{key.upper()}"
        if env.get(var, "").strip():
            raw[key] = (var, env[var].strip())
    out = {key: _typed(*raw[key], key) if key in raw and raw[key][1] is not None else default
           for key, (_, default) in SLURM_SETTINGS.items()}
    if out["timeout_min"] <= _SIGNAL_DELAY_MIN:
        raise ValueError(f"Slurm setting timeout_min={out['timeout_min']!r} is not valid; valid values: minutes > "
                         f"{_SIGNAL_DELAY_MIN} (submitit signals a job 90 s before its limit)")
    return out


def from_settings(name: str | None = None, env: Mapping[str, str] | None = None) -> Executor:
    """The executor named ``name`` (default: ``RPLIB_EXECUTOR``, else ``serial``), its settings read from ``env``.

    Every setting is checked here, before anything is submitted; a bad one raises a one-line
    ``ValueError`` naming the setting, its value and the valid choices.
    """
    env = os.environ if env is None else env
    where = "executor" if name is not None else "RPLIB_EXECUTOR"
    name = (name if name is not None else env.get("RPLIB_EXECUTOR", "")).strip() or "serial"
    if name not in EXECUTORS:
        raise ValueError(f"{where}={name!r} is not an executor; valid choices: {', '.join(EXECUTORS)}")
    threads = _positive_int(env, "RPLIB_THREADS", 1)
    if name == "serial":
        return Serial()
    if name in ("local", "auto"):
        local = Local(_positive_int(env, "RPLIB_WORKERS", None), _positive_int(env, "RPLIB_WORKERS_PER_GPU", 1),
                      threads)
        return local if name == "local" else Auto(local)
    if name == "slurm":
        return Slurm(_slurm_settings(env), threads)
    address = env.get("RPLIB_DASK_SCHEDULER", "").strip()
    if not address:
        raise ValueError("RPLIB_DASK_SCHEDULER='' is not valid; valid values: the address of a running Dask "
                         "scheduler, e.g. tcp://127.0.0.1:8786")
    return Dask(address, threads)


# --------------------------------------------------------------------------- the grid


def announce(line: str) -> None:
    """Print ``line`` where the person who started the grid sees it: on stderr, and in a Jupyter kernel on the
    kernel process's own stderr, the terminal that started it (``papermill``'s; ipykernel copies what reaches
    that descriptor into the notebook too), since a kernel's ``sys.stderr`` reaches only the notebook."""
    kernel = type(sys.stderr).__module__.startswith("ipykernel.") and sys.__stderr__ is not None
    print(line, file=sys.__stderr__ if kernel else sys.stderr, flush=True)


def _announce_large_grid(total: int, pending: Sequence[RunConfig], root: Path) -> None:
    """One line on stderr before a grid of more than :data:`LARGE_GRID` unfinished runs starts: its size and
    :func:`rplib.cost.grid_hours`, while Ctrl-C still stops it before any run."""
    if len(pending) <= LARGE_GRID:
        return
    from .cost import grid_hours

    hours = grid_hours(pending, root)
    estimate = f"about {hours:.1f} hours on one worker" if hours is not None else "no epoch time known for an estimate"
    announce(f"rplib: a grid of {total} runs, {len(pending)} to train ({estimate}, see rplib plan); "
             f"interrupt now (Ctrl-C) to stop")


def execute_grid(configs: Iterable[RunConfig], root: Path | str, progress: bool,
                 executor: Executor | str | None = None) -> list[Result]:
    """Results of ``configs`` in input order: finished ones from the store, the others run by ``executor``.

    Identical configs run once; the unfinished ones are submitted longest first
    (:func:`rplib.cost.longest_first`). Waits for every submitted run, with a progress bar over finished
    runs; raises :class:`GridError` listing the failed runs after all others have landed in the store.
    """
    from .cost import longest_first
    from .train import Result

    configs = list(configs)
    for c in configs:
        if not isinstance(c, RunConfig):
            raise TypeError(f"run_grid() takes RunConfigs, got {type(c).__name__}")
    ex = executor if isinstance(executor, Executor) else from_settings(executor)
    root = Path(root)
    unique: dict[str, RunConfig] = {}
    for c in configs:
        unique.setdefault(c.hash, c)  # identical configs run once, as the first of them
    pending = [c for h, c in unique.items() if not RunDir(root, h).finished()]
    _announce_large_grid(len(unique), pending, root)
    pending = longest_first(pending)
    failures: list[RunFailure] = []

    def done(cfg: RunConfig, err: BaseException | None) -> None:
        bar.update(1)
        if err is None and not RunDir(root, cfg.hash).finished():
            err = RuntimeError(f"the worker returned but {RunDir(root, cfg.hash).metrics} is missing")
        if err is not None:
            failures.append(RunFailure(cfg.hash, describe(cfg), _one_line(err), err))

    with tqdm(total=len(unique), initial=len(unique) - len(pending), desc="runs", disable=not progress) as bar:
        if pending:
            ex.execute(pending, root.resolve(), done, progress)
    if failures:
        order = list(unique)
        failures.sort(key=lambda f: order.index(f.hash))
        raise GridError(failures, len(unique), root) from failures[0].exception
    results = {h: Result.load(RunDir(root, h)) for h in unique}
    return [results[c.hash] for c in configs]
