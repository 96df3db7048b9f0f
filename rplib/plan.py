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

Each estimate says where its epoch times came from and on which device they were measured
(:class:`EpochTime`): hours are labelled GPU-hours only when every epoch time behind them was
measured on a GPU, CPU-hours only when every one was measured on a CPU, and plain hours otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from . import chapters, profiles
from .config import RunConfig
from .cost import (SECONDS_PER_EPOCH, EpochTime, forward_macs, grid_hours, longest_first, run_cost, run_epochs,
                   seconds_per_epoch, stored_epoch_times, with_pretrainings)
from .store import RunDir

__all__ = ["SECONDS_PER_EPOCH", "ChapterPlan", "EpochTime", "EpochTimer", "run_epochs", "stored_epoch_times",
           "seconds_per_epoch", "grid_hours", "forward_macs", "run_cost", "longest_first", "plan", "hours_unit",
           "format_plan", "sizes_markdown"]


@dataclass(frozen=True)
class ChapterPlan:
    """One chapter's share of a profile."""

    chapter: str
    runs: int
    epochs: int
    finished: int
    hours: float | None  # estimated hours of the unfinished runs; None when an epoch time is unknown
    unknown: tuple[str, ...]  # "model/dataset" pairs without an epoch time
    sources: tuple[tuple[str, EpochTime], ...] = ()  # ("model/dataset", its epoch time) behind ``hours``


class EpochTimer:
    """Seconds per epoch of configs timed on this machine (:func:`rplib.train.time_epoch`), once per
    distinct network, data, batch size, device and sparse-or-dense."""

    def __init__(self, steps: int = 20, progress: bool = False):
        self.steps, self.progress = steps, progress
        self.seconds: dict[tuple, float] = {}
        self.devices: dict[tuple, tuple[str, str]] = {}  # key -> (device type, device name)

    @staticmethod
    def key(cfg: RunConfig) -> tuple:
        return cfg.model, cfg.data, cfg.optim.batch_size, cfg.device, cfg.sparsity.sparse

    def measure(self, configs: Iterable[RunConfig]) -> None:
        """Time every config whose key has no time yet (a progress bar over them when ``progress``)."""
        from tqdm import tqdm

        import torch

        from .train import resolve_device, time_epoch

        new = {self.key(c): c for c in configs if self.key(c) not in self.seconds}
        for key, cfg in tqdm(new.items(), desc="timing epochs", disable=not self.progress):
            self.seconds[key] = time_epoch(cfg, self.steps)
            device = resolve_device(cfg.device)
            name = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
            self.devices[key] = device.type, name

    def __call__(self, cfg: RunConfig) -> float:
        return self.seconds[self.key(cfg)]

    def epoch_time(self, cfg: RunConfig) -> EpochTime:
        """The measured epoch time of ``cfg`` with the device it was measured on."""
        device, name = self.devices[self.key(cfg)]
        return EpochTime(self(cfg), "measured", device, f"{name}, " * bool(name) + f"{self.steps} steps timed")


def plan(profile: str, only: Sequence[str] | None = None, root: Path | str = ".",
         runs: Path | str | None = None, timer: EpochTimer | None = None) -> list[ChapterPlan]:
    """The plan of every chapter (or ``only`` these) under ``profile``.

    ``runs`` is the run store; by default each chapter's own ``runs`` parameter, relative to
    ``notebooks/`` as when the notebook executes. With a ``timer``, unfinished runs whose (model,
    dataset) has no finished run in the store are estimated from epochs it times here instead of
    :data:`SECONDS_PER_EPOCH`. A chapter without a module in :mod:`rplib.chapters` gets an empty row
    whose estimate is unknown. Raises ``ValueError`` for an unknown profile, chapter or parameter
    (see :func:`rplib.profiles.plan`).
    """
    root = Path(root)
    out = []
    for name, overrides in profiles.plan(profile, only, root).items():
        if name not in chapters.CHAPTERS:  # a chapter without a grid in rplib.chapters cannot be planned
            out.append(ChapterPlan(name, 0, 0, 0, None, ("no grid in rplib.chapters",)))
            continue
        params = chapters.params(name, overrides)
        configs = with_pretrainings(chapters.grid(name, overrides))
        store = Path(runs) if runs is not None else root / "notebooks" / getattr(params, "runs", "../runs")
        stored = stored_epoch_times(configs, store)
        todo = [c for c in configs if not RunDir(store, c.hash).finished()]
        if timer is not None:
            timer.measure(c for c in todo if (c.model.name, c.data.name) not in stored)

        def epoch_time(c: RunConfig) -> EpochTime | None:
            pair = c.model.name, c.data.name
            if pair in stored:
                return stored[pair]
            if timer is not None:
                return timer.epoch_time(c)
            table = SECONDS_PER_EPOCH.get(pair)
            return None if table is None else EpochTime(table, "table", "cpu", "SECONDS_PER_EPOCH")

        times = {c.hash: epoch_time(c) for c in todo}
        unknown = tuple(sorted({f"{c.model.name}/{c.data.name}" for c in todo if times[c.hash] is None}))
        seconds = sum(run_epochs(c) * times[c.hash].seconds for c in todo if times[c.hash] is not None)
        sources = {(f"{c.model.name}/{c.data.name}", times[c.hash]) for c in todo if times[c.hash] is not None}
        out.append(ChapterPlan(name, len(configs), sum(run_epochs(c) for c in configs), len(configs) - len(todo),
                               None if unknown else seconds / 3600, unknown,
                               tuple(sorted(sources, key=lambda s: (s[0], s[1].seconds)))))
    return out


def hours_unit(plans: Sequence[ChapterPlan]) -> str:
    """``GPU-hours`` when every epoch time behind ``plans`` was measured on a GPU, ``CPU-hours`` when every one
    was measured on a CPU, else ``hours`` (no times at all, or times from several kinds of device)."""
    devices = {t.device for p in plans for _, t in p.sources}
    return {frozenset({"cuda"}): "GPU-hours", frozenset({"cpu"}): "CPU-hours"}.get(frozenset(devices), "hours")


def format_plan(plans: Sequence[ChapterPlan], profile: str) -> str:
    """A plain-text table of :func:`plan`'s rows and their total, then where each network's epoch time came
    from. The hours' unit is :func:`hours_unit`'s: a time measured on a CPU is never printed as GPU-hours."""
    unit = hours_unit(plans)
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
    sources = sorted({s for p in plans for s in p.sources}, key=lambda s: (s[0], s[1].seconds))
    if sources:
        lines.append(f"epoch times ({profile} profile):")
        lines += [f"  {pair}: {t.describe()}" for pair, t in sources]
    if unit == "hours" and sources:
        lines.append("  (times measured on different kinds of device: the hours mix them)")
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
