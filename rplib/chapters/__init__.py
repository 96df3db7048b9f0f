"""The chapters' typed parameters and run grids, computable without training.

Each chapter module has a frozen ``Params`` dataclass (the notebook's papermill parameters, validated
with one-line errors; unknown names are errors) and ``grid(params) -> list[RunConfig]``, the runs the
chapter trains; a chapter that trains has ``length_configs(params)``, the runs its training-length check
trains again for longer. :data:`CHAPTERS` maps a notebook name to its module.

A grid is one seed's runs repeated for every seed, so :func:`seed_grid` knows its size and
:func:`announce_grid` its estimated hours from the first seed's configs alone: a grid of more than
:data:`rplib.executors.LARGE_GRID` runs (say ``-p seeds 10000``) is announced before its configs are built.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import ModuleType

from . import dst_criteria, gradient_flow, layerwise, robustness, sanity, scaling, schemes, sparse_inference

__all__ = ["CHAPTERS", "params", "grid", "seed_grid", "announce_grid", "layerwise", "scaling", "schemes", "sanity",
           "dst_criteria", "robustness", "gradient_flow", "sparse_inference"]

CHAPTERS: dict[str, ModuleType] = {
    "01_layerwise_densities": layerwise,
    "02_scaling": scaling,
    "03_schemes": schemes,
    "04_sanity_checks": sanity,
    "05_dst_criteria": dst_criteria,
    "06_ood_calibration_robustness": robustness,
    "07_gradient_flow": gradient_flow,
    "08_sparse_inference": sparse_inference,
}


def _module(chapter: str) -> ModuleType:
    if chapter not in CHAPTERS:
        raise ValueError(f"unknown chapter {chapter!r}; chapters with a grid: {', '.join(CHAPTERS)}")
    return CHAPTERS[chapter]


def params(chapter: str, values: dict | None = None):
    """The chapter's validated ``Params`` from parameter overrides (none: the smoke defaults)."""
    return _module(chapter).Params.from_dict(values or {})


def grid(chapter: str, values: dict | None = None) -> list:
    """The distinct run configs the chapter trains with these parameter overrides, in run order: its grid, then
    the longer runs of its training-length check (:func:`rplib.regime.length_check`)."""
    from ..regime import longer

    module, p = _module(chapter), params(chapter, values)
    checks = module.length_configs(p) if hasattr(module, "length_configs") else {}
    runs = [*module.grid(p), *(longer(c) for cfgs in checks.values() for c in cfgs)]
    return list({c.hash: c for c in runs}.values())


def seed_grid(p) -> tuple[list, int]:
    """The distinct configs of the first seed of the chapter's grid under parameters ``p``, and the number of
    seeds (for a chapter without seeds: its whole grid, and 1). Every grid is its first seed's runs repeated for
    each seed, so its size is ``len(configs) * seeds`` and its epochs as many times the first seed's."""
    module = _module(p.CHAPTER)
    seeds = getattr(p, "seeds", None)
    first = module.grid(p if seeds is None else dataclasses.replace(p, seeds=1))
    return list({c.hash: c for c in first}.values()), seeds or 1


def announce_grid(p) -> None:
    """One line on stderr (:func:`rplib.executors.announce`) when the chapter's grid under ``p`` has more than
    :data:`rplib.executors.LARGE_GRID` runs: its size and the plan's estimate of its hours on one worker
    (:func:`rplib.cost.grid_hours` of the first seed's runs, times the seeds; finished runs not yet counted),
    before any other config is built, while Ctrl-C still stops it at once with nothing written."""
    from .. import executors
    from ..cost import grid_hours
    from ..store import default_root

    configs, seeds = seed_grid(p)
    total = len(configs) * seeds
    if total <= executors.LARGE_GRID:
        return
    hours = grid_hours(configs, Path(getattr(p, "runs", None) or default_root()))
    estimate = (f"about {hours * seeds:.1f} hours on one worker if none is finished" if hours is not None
                else "no epoch time known for an estimate")
    executors.announce(f"rplib: {p.CHAPTER}: a grid of {total} runs ({estimate}, see rplib plan) is about to be built; "
                       f"interrupt now (Ctrl-C) to stop")
