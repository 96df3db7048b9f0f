"""A run's compute, known without training it, and the order a grid's runs are best started in.

:func:`run_epochs` counts a run's training epochs (tickets' dense trainings included),
:func:`run_cost` its forward multiply-accumulates, and :func:`longest_first` orders a grid by
decreasing cost for the executors (:mod:`rplib.executors`) and the planner (:mod:`rplib.plan`).
Epoch times come from the finished runs of a store (:func:`stored_epoch_times`) or from
:data:`SECONDS_PER_EPOCH`; :func:`grid_hours` estimates a grid's hours from them.
"""

from __future__ import annotations

import functools
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import ModelConfig, RunConfig
from .data import DataConfig, input_spec, split_sizes
from .models import build
from .store import RunDir
from .train import REWIND_EPOCHS_KEPT, count_flops, pretraining_config

__all__ = ["SECONDS_PER_EPOCH", "EpochTime", "run_epochs", "with_pretrainings", "stored_epoch_times", "seconds_per_epoch", "grid_hours",
           "forward_macs", "run_cost", "longest_first"]

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
    # The images profile's networks on Fashion-MNIST (60,000 images, not augmented), measured on this 2-core
    # machine while it was shared: CPU seconds (1 thread; a process's CPU time, not its wall time, which the
    # sharing inflated 2-6x) per epoch of one whole run (data loading included) of the chapters' recipe,
    # batch 128: LeNet-5 and LeNet-300-100 (mlp 300-100) over 4 epochs, ResNet-8 at width 0.25 over 2 (22.5 s).
    # The resnet value is the mean over chapter 02's four networks (ResNet-8 at widths 0.125, 0.25 and 0.375,
    # ResNet-14 at 0.25), scaled from ResNet-8's by the CPU time of timed steps (rplib.train.time_epoch).
    ("lenet5", "fashion_mnist"): 6.1,
    ("mlp", "fashion_mnist"): 1.9,
    ("resnet", "fashion_mnist"): 25.2,
}


@dataclass(frozen=True)
class EpochTime:
    """Seconds per epoch of one network and where they come from: ``store`` (finished runs), ``measured``
    (timed here, :class:`EpochTimer`) or ``table`` (:data:`SECONDS_PER_EPOCH`); ``device`` is the device
    type they were measured on (``cpu``, ``cuda``), ``detail`` says more (runs counted, the GPU's name)."""

    seconds: float
    source: str
    device: str
    detail: str = ""

    def describe(self) -> str:
        extra = f", {self.detail}" if self.detail else ""
        return f"{self.seconds:.3g} s/epoch, {self.source} on {self.device}{extra}"


def run_epochs(cfg: RunConfig) -> int:
    """Training epochs of one run, counting the dense trainings that lottery and hybrid masks need first.

    A ticket whose rewind point the store's dense run keeps takes its first dense training from that run
    (:func:`rplib.train.pretraining_config`, a run of its own: :func:`with_pretrainings` adds it to a grid);
    only a lottery ticket's later rounds, masked trainings, are its own.
    """
    sp = cfg.sparsity
    shared = sp.rewind_epoch <= REWIND_EPOCHS_KEPT
    extra = {"lottery": sp.lottery_rounds - shared, "hybrid": 1 - shared}.get(sp.method, 0)
    return cfg.optim.epochs * (1 + extra)


def with_pretrainings(configs: Sequence[RunConfig]) -> list[RunConfig]:
    """``configs`` followed by the dense runs their tickets take their pre-training from, where those are not
    among ``configs`` already (each once)."""
    out, seen = list(configs), {c.hash for c in configs}
    for c in configs:
        if c.sparsity.method in ("lottery", "hybrid") and c.sparsity.rewind_epoch <= REWIND_EPOCHS_KEPT:
            dense = pretraining_config(c)
            if dense.hash not in seen:
                seen.add(dense.hash)
                out.append(dense)
    return out


@functools.lru_cache(maxsize=None)
def forward_macs(model: ModelConfig, data: DataConfig) -> int:
    """Dense multiply-accumulates of one example's forward pass (:func:`rplib.train.count_flops`) on the
    CPU, without data files and without touching the global random state."""
    in_shape, num_classes = input_spec(data)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        net = build(model.name, num_classes, in_shape=in_shape, **model.options())
        return count_flops(net, in_shape, None, torch.device("cpu"))["flops_dense"]


def run_cost(cfg: RunConfig) -> int:
    """A run's compute in forward multiply-accumulates: :func:`run_epochs` x training examples x
    :func:`forward_macs`. Comparable across networks, widths and depths on one device, unlike the
    epoch times of :mod:`rplib.plan`, which are per (model, dataset)."""
    return run_epochs(cfg) * split_sizes(cfg.data)["train"] * forward_macs(cfg.model, cfg.data)


def longest_first(configs: Sequence[RunConfig]) -> list[RunConfig]:
    """``configs`` by decreasing :func:`run_cost`, ties in their given order.

    A pool of workers that takes runs in this order schedules longest-processing-time first, whose
    end comes within 4/3 of the shortest possible (Graham 1969); in the given order the largest
    networks of a scaling grid, or a chapter's lottery tickets (several dense trainings each), may
    start last and train alone while the other workers idle.
    """
    return sorted(configs, key=lambda c: -run_cost(c))


def stored_epoch_times(configs: Iterable[RunConfig], runs: Path) -> dict[tuple[str, str], EpochTime]:
    """Wall seconds per epoch of the finished runs in ``runs``, per (model, dataset), over ``configs``.

    Each run's ``wall_time`` (its whole run: data, mask, pre-training, training, evaluation) counts
    for its :func:`run_epochs`; a pair's value is its runs' total seconds over their total epochs, on
    the device type its runs recorded (``mixed`` when they differ).
    """
    seconds: dict[tuple[str, str], float] = defaultdict(float)
    epochs: dict[tuple[str, str], int] = defaultdict(int)
    devices: dict[tuple[str, str], set[str]] = defaultdict(set)
    counted: dict[tuple[str, str], int] = defaultdict(int)
    for cfg in configs:
        rd = RunDir(runs, cfg.hash)
        if rd.finished():
            metrics = json.loads(rd.metrics.read_text())
            if metrics.get("wall_time") is not None:
                key = cfg.model.name, cfg.data.name
                seconds[key] += float(metrics["wall_time"])
                epochs[key] += run_epochs(cfg)
                devices[key].add(str(metrics.get("device", "cpu")).split(":")[0])
                counted[key] += 1
    return {key: EpochTime(seconds[key] / epochs[key], "store",
                           devices[key].pop() if len(devices[key]) == 1 else "mixed", f"{counted[key]} finished runs")
            for key in seconds if epochs[key]}


def seconds_per_epoch(configs: Iterable[RunConfig], runs: Path) -> dict[tuple[str, str], float]:
    """:func:`stored_epoch_times` without their provenance: seconds per epoch per (model, dataset)."""
    return {key: t.seconds for key, t in stored_epoch_times(configs, runs).items()}


def grid_hours(configs: Sequence[RunConfig], runs: Path) -> float | None:
    """Estimated hours of training ``configs`` on one worker, without timing anything: epoch times of the
    finished runs in ``runs`` per (model, dataset), else :data:`SECONDS_PER_EPOCH`; None when a pair has
    neither."""
    known = SECONDS_PER_EPOCH | seconds_per_epoch(configs, runs)
    pairs = {(c.model.name, c.data.name) for c in configs}
    if not pairs <= known.keys():
        return None
    return sum(run_epochs(c) * known[c.model.name, c.data.name] for c in configs) / 3600
