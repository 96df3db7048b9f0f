"""Chapter 01, layer-wise densities: parameters only (the chapter scores networks, it trains nothing)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import models, sparsity
from ..config import RunConfig
from ._params import ChapterParams

__all__ = ["Params", "SCORED", "grid"]

SCORED = ("snip", "grasp")  # scored once per network; synflow's scores depend on d itself


@dataclass(frozen=True)
class Params(ChapterParams):
    """Parameters of ``01_layerwise_densities`` (defaults: the smoke profile)."""

    CHAPTER = "01_layerwise_densities"
    networks: list = field(default_factory=lambda: ["resnet20", "wrn"])
    densities: list = field(default_factory=lambda: [0.05, 0.2])
    schemes: list = field(default_factory=lambda: ["uniform", "uniform_plus", "er", "erk", "erk_plus", "smart_ratio"])
    data_schemes: list = field(default_factory=lambda: ["snip", "grasp"])
    score_batch: int = 8
    num_classes: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        self._choices("networks", models.available())
        self._floats("densities", 0, 1, lo_open=True)
        self._choices("schemes", sparsity.SCHEMES)
        self._choices("data_schemes", SCORED, min_len=0)
        self._int("score_batch")
        self._int("num_classes", 2)
        self._int("seed", 0)
        self._set("densities", sorted(float(d) for d in self.densities))


def grid(params: Params) -> list[RunConfig]:
    """No runs: the chapter computes layer-wise densities of untrained networks."""
    return []
