"""Chapter 08, what sparsity buys: parameters only (the chapter times inference, it trains nothing)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..config import RunConfig
from ..inference import NETWORKS, REFERENCE_LAYERS
from ._params import ChapterParams

if TYPE_CHECKING:
    from ..regime import Regime

__all__ = ["Params", "grid", "regime"]


@dataclass(frozen=True)
class Params(ChapterParams):
    """Parameters of ``08_sparse_inference`` (defaults: the smoke profile); densities are kept in the given order."""

    CHAPTER = "08_sparse_inference"
    networks: list = field(default_factory=lambda: ["cnn1d", "resnet20"])
    densities: list = field(default_factory=lambda: [0.2, 0.05, 0.01])
    layers: list = field(default_factory=lambda: ["Linear 3072->1024 (MLP)",
                                                  "Conv2d 64->64 3x3, 8x8 (ResNet stage 3)"])
    layer_densities: list = field(default_factory=lambda: [0.5, 0.1, 0.02])
    throughput_batch: int = 8
    threads: list = field(default_factory=lambda: [1])
    repeats: int = 3
    claim_repeats: int = 30
    min_time: float = 0.002
    seed: int = 0

    def __post_init__(self) -> None:
        self._choices("networks", NETWORKS)
        self._choices("layers", REFERENCE_LAYERS)
        for name in ("densities", "layer_densities"):
            self._floats(name, 0, 1, lo_open=True, hi_open=True)  # the dense network is always timed
            if len(set(getattr(self, name))) != len(getattr(self, name)):
                self._fail(name, "a list of distinct densities", getattr(self, name))
        self._int("throughput_batch", 2)  # batch 1 is always timed
        self._ints("threads")
        self._int("repeats")
        self._int("claim_repeats", 2)  # an interval needs two
        self._float("min_time", 0, None, lo_open=True)
        self._int("seed", 0)


def grid(params: Params) -> list[RunConfig]:
    """No runs: the chapter times exported networks, it trains nothing."""
    return []


def regime(params: Params) -> Regime:
    """The regime of the chapter's claim (:mod:`rplib.regime`): ResNet-20 at density 0.05 on CIFAR-shaped random
    inputs (10 classes), untrained: the claim times inference, so there is no dense accuracy."""
    from ..regime import regime as make

    return make(Params.CHAPTER, "random CIFAR-shaped inputs (3x32x32)", 10, ["resnet20"], 0, [0.05])
