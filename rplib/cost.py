"""A run's compute, known without training it, and the order a grid's runs are best started in.

:func:`run_epochs` counts a run's training epochs (tickets' dense trainings included),
:func:`run_cost` its forward multiply-accumulates, and :func:`longest_first` orders a grid by
decreasing cost for the executors (:mod:`rplib.executors`) and the planner (:mod:`rplib.plan`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch

from .config import ModelConfig, RunConfig
from .data import DataConfig, input_spec, split_sizes
from .models import build
from .train import count_flops

__all__ = ["run_epochs", "forward_macs", "run_cost", "longest_first"]


def run_epochs(cfg: RunConfig) -> int:
    """Training epochs of one run, counting the dense trainings that lottery and hybrid masks need first."""
    extra = {"lottery": cfg.sparsity.lottery_rounds, "hybrid": 1}.get(cfg.sparsity.method, 0)
    return cfg.optim.epochs * (1 + extra)


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
