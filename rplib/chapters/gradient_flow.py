"""Chapter 07, gradient flow: parameters, the masks compared and the run grid."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from torch import nn

from .. import data as rdata, models
from ..config import DEVICES, ModelConfig, RunConfig, SparsityConfig
from ..evaluate import EvalConfig
from ..sparsity import DATA_SCHEMES, SCHEMES
from ._common import data_config, input_spec, scaled_cifar_recipe
from ._params import ChapterParams

__all__ = ["Params", "masks", "networks", "grid"]


@dataclass(frozen=True)
class Params(ChapterParams):
    """Parameters of ``07_gradient_flow`` (defaults: the smoke profile)."""

    CHAPTER = "07_gradient_flow"
    dataset: str = "digits"
    num_samples: int = 1000
    data_root: str = "../data"
    download: bool = False
    models: list = field(default_factory=lambda: ["mlp"])
    width: float = 1.0
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1
    sparsity: float = 0.9
    schemes: list = field(default_factory=lambda: ["erk", "snip", "uniform"])
    dense: bool = True
    prune_samples_per_class: int = 10
    seeds: int = 2
    device: str = "auto"
    runs: str = "../runs"

    def __post_init__(self) -> None:
        self._data_fields()
        self._choices("models", models.available())
        self._float("width", 0, None, lo_open=True)
        for name in ("epochs", "batch_size", "prune_samples_per_class", "seeds"):
            self._int(name)
        self._float("lr", 0, None, lo_open=True)
        self._float("sparsity", 0, 1, lo_open=True, hi_open=True)
        self._choices("schemes", [*SCHEMES, *DATA_SCHEMES], min_len=2)
        self._bool("dense")
        self._choice("device", DEVICES)
        self._str("runs")


def _data(p: Params) -> rdata.DataConfig:
    return data_config(p.dataset, p.data_root, p.download, p.num_samples)


def networks(p: Params) -> dict[str, nn.Module]:
    """Every network built on the data's input shape (one that does not fit fails here, before training)."""
    in_shape, num_classes = input_spec(_data(p))
    return {name: models.build(name, num_classes, in_shape=in_shape, **ModelConfig(name, width=p.width).options())
            for name in p.models}


def masks(p: Params) -> dict[str, SparsityConfig]:
    """Scheme (or ``dense``) -> the sparsity config of its random mask."""
    out = {s: SparsityConfig(method="random", density=round(1 - p.sparsity, 6), scheme=s,
                             prune_samples_per_class=p.prune_samples_per_class) for s in p.schemes}
    return out | ({"dense": SparsityConfig()} if p.dense else {})


def grid(p: Params) -> list[RunConfig]:
    """Every network with every mask, for every seed, recording the gradient flow after each epoch."""
    base = RunConfig(data=_data(p), optim=scaled_cifar_recipe(p.epochs, p.batch_size, p.lr),
                     eval=EvalConfig(grad_flow=True), device=p.device)
    return [replace(base, model=ModelConfig(name, width=p.width), sparsity=sp, seed=seed)
            for name in p.models for sp in masks(p).values() for seed in range(p.seeds)]
