"""The chapters' typed parameters and run grids, computable without training.

Each chapter module has a frozen ``Params`` dataclass (the notebook's papermill parameters, validated
with one-line errors; unknown names are errors) and ``grid(params) -> list[RunConfig]``, the runs the
chapter trains; a chapter that trains has ``length_configs(params)``, the runs its training-length check
trains again for longer. :data:`CHAPTERS` maps a notebook name to its module.
"""

from __future__ import annotations

from types import ModuleType

from . import dst_criteria, gradient_flow, layerwise, robustness, sanity, scaling, schemes, sparse_inference

__all__ = ["CHAPTERS", "params", "grid", "layerwise", "scaling", "schemes", "sanity", "dst_criteria", "robustness",
           "gradient_flow", "sparse_inference"]

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
