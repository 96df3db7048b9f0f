"""What a profile will train, without training: runs, epochs, finished runs and estimated hours per chapter.

``rplib plan --profile {smoke,cpu,paper} [--only CHAPTER ...] [--root RUNS]`` prints one row per
chapter: the number of distinct runs of its grid (:mod:`rplib.chapters`), their total training epochs
(lottery tickets train ``lottery_rounds`` dense copies first, hybrid tickets one), how many are
finished in the run store (``<runs>/<hash>/metrics.json``) and the estimated hours of the unfinished
ones.

Seconds per epoch come, per (model, dataset), from the finished runs in the store when there are
any (their whole wall time: data, mask, pre-training, training and evaluation, over their epochs);
else, with ``--measure``, from timing a few training steps of each distinct network, dataset,
batch size and device on this machine (:func:`rplib.train.time_epoch`: the GPU-hours of the paper
profile on a GPU node, before any dataset is downloaded); else from :data:`SECONDS_PER_EPOCH`. The
hours are a sum over runs: the hours of one worker, to be divided by the number of workers
(processes, GPUs, array tasks) that run them at once.
"""

from __future__ import annotations

import functools
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from . import book, chapters
from .config import ModelConfig, RunConfig
from .data import DataConfig, input_spec, split_sizes
from .store import RunDir

__all__ = ["SECONDS_PER_EPOCH", "ChapterPlan", "EpochTimer", "run_epochs", "seconds_per_epoch", "forward_macs",
           "run_cost", "longest_first", "grid_hours", "plan", "format_plan", "sizes_markdown"]

# Seconds per epoch on CPU, as :func:`seconds_per_epoch` measures them, from the cpu-profile build of
# the book (every run trained from an empty store by `make book`: 2 local workers, 1 thread each, on
# 2 CPU cores); ``python benchmarks/epoch_times.py`` recomputes them from a run store. Smoke runs
# (1000 MNIST-1D examples instead of 4000) take less. The paper profile's GPU models have no entry:
# their estimate needs finished runs in the store.
SECONDS_PER_EPOCH: dict[tuple[str, str], float] = {
    ("cnn1d", "mnist1d"): 0.256,
    ("convnet", "digits"): 0.236,
    ("mlp", "digits"): 0.033,
    ("mlp", "mnist1d"): 0.068,
}


@dataclass(frozen=True)
class ChapterPlan:
    """One chapter's share of a profile."""

    chapter: str
    runs: int
    epochs: int
    finished: int
    hours: float | None  # estimated hours of the unfinished runs; None when an epoch time is unknown
    unknown: tuple[str, ...]  # "model/dataset" pairs without an epoch time


def run_epochs(cfg: RunConfig) -> int:
    """Training epochs of one run, counting the dense trainings that lottery and hybrid masks need first."""
    extra = {"lottery": cfg.sparsity.lottery_rounds, "hybrid": 1}.get(cfg.sparsity.method, 0)
    return cfg.optim.epochs * (1 + extra)


def seconds_per_epoch(configs: Iterable[RunConfig], runs: Path) -> dict[tuple[str, str], float]:
    """Wall seconds per epoch of the finished runs in ``runs``, per (model, dataset), over ``configs``.

    Each run's ``wall_time`` (its whole run: data, mask, pre-training, training, evaluation) counts
    for its :func:`run_epochs`; a pair's value is its runs' total seconds over their total epochs.
    """
    seconds: dict[tuple[str, str], float] = defaultdict(float)
    epochs: dict[tuple[str, str], int] = defaultdict(int)
    for cfg in configs:
        rd = RunDir(runs, cfg.hash)
        if rd.finished():
            wall = json.loads(rd.metrics.read_text()).get("wall_time")
            if wall is not None:
                seconds[cfg.model.name, cfg.data.name] += float(wall)
                epochs[cfg.model.name, cfg.data.name] += run_epochs(cfg)
    return {key: seconds[key] / epochs[key] for key in seconds if epochs[key]}


def grid_hours(configs: Sequence[RunConfig], runs: Path) -> float | None:
    """Estimated hours of training ``configs`` on one worker, as :func:`plan` estimates them without timing:
    epoch times of the finished runs in ``runs`` per (model, dataset), else :data:`SECONDS_PER_EPOCH`; None
    when a pair has neither."""
    stored = {**SECONDS_PER_EPOCH, **seconds_per_epoch(configs, runs)}
    pairs = {(c.model.name, c.data.name) for c in configs}
    if not pairs <= stored.keys():
        return None
    return sum(run_epochs(c) * stored[c.model.name, c.data.name] for c in configs) / 3600


@functools.lru_cache(maxsize=None)
def forward_macs(model: ModelConfig, data: DataConfig) -> int:
    """Dense multiply-accumulates of one example's forward pass (:func:`rplib.train.count_flops`) on the
    CPU, without data files and without touching the global random state."""
    from .models import build
    from .train import count_flops

    in_shape, num_classes = input_spec(data)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        net = build(model.name, num_classes, in_shape=in_shape, **model.options())
        return count_flops(net, in_shape, None, torch.device("cpu"))["flops_dense"]


def run_cost(cfg: RunConfig) -> int:
    """A run's compute in forward multiply-accumulates: :func:`run_epochs` x training examples x
    :func:`forward_macs`. Comparable across networks, widths and depths on one device, unlike the
    epoch times of the table, which are per (model, dataset)."""
    return run_epochs(cfg) * split_sizes(cfg.data)["train"] * forward_macs(cfg.model, cfg.data)


def longest_first(configs: Sequence[RunConfig]) -> list[RunConfig]:
    """``configs`` by decreasing :func:`run_cost`, ties in their given order.

    A pool of workers that takes runs in this order schedules longest-processing-time first, whose
    end comes within 4/3 of the shortest possible (Graham 1969); in the given order the largest
    networks of a scaling grid, or a chapter's lottery tickets (several dense trainings each), may
    start last and train alone while the other workers idle.
    """
    return sorted(configs, key=lambda c: -run_cost(c))


class EpochTimer:
    """Seconds per epoch of configs timed on this machine (:func:`rplib.train.time_epoch`), once per
    distinct network, data, batch size, device and sparse-or-dense."""

    def __init__(self, steps: int = 20, progress: bool = False):
        self.steps, self.progress = steps, progress
        self.seconds: dict[tuple, float] = {}

    @staticmethod
    def key(cfg: RunConfig) -> tuple:
        return cfg.model, cfg.data, cfg.optim.batch_size, cfg.device, cfg.sparsity.sparse

    def measure(self, configs: Iterable[RunConfig]) -> None:
        """Time every config whose key has no time yet (a progress bar over them when ``progress``)."""
        from tqdm import tqdm

        from .train import time_epoch

        new = {self.key(c): c for c in configs if self.key(c) not in self.seconds}
        for key, cfg in tqdm(new.items(), desc="timing epochs", disable=not self.progress):
            self.seconds[key] = time_epoch(cfg, self.steps)

    def __call__(self, cfg: RunConfig) -> float:
        return self.seconds[self.key(cfg)]


def plan(profile: str, only: Sequence[str] | None = None, root: Path | str = ".",
         runs: Path | str | None = None, timer: EpochTimer | None = None) -> list[ChapterPlan]:
    """The plan of every chapter (or ``only`` these) under ``profile``.

    ``runs`` is the run store; by default each chapter's own ``runs`` parameter, relative to
    ``notebooks/`` as when the notebook executes. With a ``timer``, unfinished runs whose (model,
    dataset) has no finished run in the store are estimated from epochs it times here instead of
    :data:`SECONDS_PER_EPOCH`. A chapter without a module in :mod:`rplib.chapters` gets an empty row
    whose estimate is unknown. Raises ``ValueError`` for an unknown profile, chapter or parameter
    (see :func:`rplib.book.plan`).
    """
    root = Path(root)
    out = []
    for name, overrides in book.plan(profile, only, root).items():
        if name not in chapters.CHAPTERS:  # a chapter without a grid in rplib.chapters cannot be planned
            out.append(ChapterPlan(name, 0, 0, 0, None, ("no grid in rplib.chapters",)))
            continue
        params = chapters.params(name, overrides)
        configs = chapters.grid(name, overrides)
        store = Path(runs) if runs is not None else root / "notebooks" / getattr(params, "runs", "../runs")
        stored = seconds_per_epoch(configs, store)
        todo = [c for c in configs if not RunDir(store, c.hash).finished()]
        if timer is not None:
            timer.measure(c for c in todo if (c.model.name, c.data.name) not in stored)

        def epoch_seconds(c: RunConfig) -> float | None:
            pair = c.model.name, c.data.name
            return stored[pair] if pair in stored else timer(c) if timer is not None else SECONDS_PER_EPOCH.get(pair)

        unknown = tuple(sorted({f"{c.model.name}/{c.data.name}" for c in todo if epoch_seconds(c) is None}))
        seconds = sum(run_epochs(c) * (epoch_seconds(c) or 0.0) for c in todo)
        out.append(ChapterPlan(name, len(configs), sum(run_epochs(c) for c in configs), len(configs) - len(todo),
                               None if unknown else seconds / 3600, unknown))
    return out


def format_plan(plans: Sequence[ChapterPlan], profile: str) -> str:
    """A plain-text table of :func:`plan`'s rows and their total."""
    unit = "GPU-hours" if profile == "paper" else "CPU-hours"
    rows = [(p.chapter, str(p.runs), str(p.epochs), str(p.finished),
             f"{p.hours:.2f}" if p.hours is not None else "unknown") for p in plans]
    known = [p.hours for p in plans if p.hours is not None]
    total = sum(known) if len(known) == len(plans) else None
    rows.append(("total", str(sum(p.runs for p in plans)), str(sum(p.epochs for p in plans)),
                 str(sum(p.finished for p in plans)), f"{total:.2f}" if total is not None else "unknown"))
    head = ("chapter", "runs", "epochs", "finished", f"{unit} left")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in [head, *rows]]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(-1, "-" * len(lines[0]))
    missing = sorted({u for p in plans for u in p.unknown})
    if missing:
        lines.append(f"unknown: {', '.join(missing)} (an epoch time comes from a finished run in the store, from "
                     "timing a few steps here with --measure, or from rplib.plan.SECONDS_PER_EPOCH)")
    return "\n".join(lines)


def sizes_markdown(root: Path | str = ".") -> str:
    """A Markdown table of every chapter's runs and training epochs under the cpu and paper profiles, and
    the cpu profile's worker-hours from :data:`SECONDS_PER_EPOCH`.

    ``book/reproduce.md`` holds it verbatim (a test keeps the two equal). The paper profile's GPU-hours
    are left to ``rplib plan``, which reads the epoch times of the machine's own store or times a few
    steps (``--measure``).
    """
    rows = {p: {c.chapter: c for c in plan(p, root=root, runs=Path(root) / "_build" / "no-store")}
            for p in ("cpu", "paper")}
    lines = ["| chapter | cpu runs | cpu epochs | cpu worker-hours | paper runs | paper epochs |",
             "|---|---:|---:|---:|---:|---:|"]
    for name in rows["cpu"]:
        cpu, paper = rows["cpu"][name], rows["paper"][name]
        lines.append(f"| `{name}` | {cpu.runs} | {cpu.epochs} | {cpu.hours:.2f} | {paper.runs} | {paper.epochs} |")
    cpu, paper = rows["cpu"].values(), rows["paper"].values()
    lines.append(f"| total | {sum(c.runs for c in cpu)} | {sum(c.epochs for c in cpu)} | "
                 f"{sum(c.hours for c in cpu):.2f} | {sum(c.runs for c in paper)} | {sum(c.epochs for c in paper)} |")
    return "\n".join(lines)
