"""Chapter 05, drop criteria in dynamic sparse training: parameters and the three run grids."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .. import data as rdata, dst as rdst, models
from ..config import DEVICES, ModelConfig, OptimConfig, RunConfig, SparsityConfig
from ..dst import DSTConfig
from ._params import ChapterParams

__all__ = ["Params", "config", "grids", "grid"]


@dataclass(frozen=True)
class Params(ChapterParams):
    """Parameters of ``05_dst_criteria`` (defaults: the smoke profile); densities and period_sweep are stored sorted."""

    CHAPTER = "05_dst_criteria"
    dataset: str = "mnist1d"
    num_samples: int = 1000
    data_root: str = "../data"
    download: bool = False
    model: str = "mlp"
    hidden: list = field(default_factory=lambda: [256, 256])
    epochs: int = 3
    batch_size: int = 128
    lr: float = 0.1
    weight_decay: float = 5e-4
    seeds: int = 1
    device: str = "auto"
    runs: str = "../runs"
    densities: list = field(default_factory=lambda: [0.05, 0.2])
    criteria: list = field(default_factory=lambda: ["magnitude", "set", "set_as_released", "random"])
    growths: list = field(default_factory=lambda: ["random", "gradient"])
    alpha: float = 0.5
    update_period: int = 5
    period_sweep: list = field(default_factory=lambda: [2, 5])
    sweep_density: float = 0.05
    sweep_criteria: list = field(default_factory=lambda: ["magnitude", "random"])
    sweep_growth: str = "random"

    def __post_init__(self) -> None:
        self._data_fields()
        self._choice("model", models.available())
        self._ints("hidden")
        for name in ("epochs", "batch_size", "seeds", "update_period"):
            self._int(name)
        self._float("lr", 0, None, lo_open=True)
        self._float("weight_decay", 0)
        self._choice("device", DEVICES)
        self._str("runs")
        self._floats("densities", 0, 1, lo_open=True, hi_open=True)
        if len(set(self.densities)) != len(self.densities):
            self._fail("densities", "a list of distinct floats in (0, 1)", self.densities)
        self._choices("criteria", rdst.DROP_CRITERIA, min_len=2)
        self._choices("growths", rdst.GROWTH)
        self._float("alpha", 0, 1, lo_open=True)
        self._ints("period_sweep")
        if len(set(self.period_sweep)) != len(self.period_sweep):
            self._fail("period_sweep", "a list of distinct integers >= 1", self.period_sweep)
        self._float("sweep_density", 0, 1, lo_open=True, hi_open=True)
        self._choices("sweep_criteria", rdst.DROP_CRITERIA)
        self._choice("sweep_growth", rdst.GROWTH)
        self._set("densities", sorted(float(d) for d in self.densities))
        self._set("period_sweep", sorted(self.period_sweep))
        self._set("sweep_density", float(self.sweep_density))


def _base(p: Params) -> RunConfig:
    return RunConfig(
        data=rdata.DataConfig(p.dataset, root=p.data_root, download=p.download, num_samples=p.num_samples),
        model=ModelConfig(p.model, hidden=tuple(p.hidden) if p.model == "mlp" else None),
        optim=OptimConfig.preset("fantastic_weights_mlp", epochs=p.epochs, batch_size=p.batch_size, lr=p.lr,
                                 weight_decay=p.weight_decay),
        device=p.device,
    )


def config(p: Params, density: float, seed: int, drop: str = "none", grow: str = "random",
           period: int | None = None) -> RunConfig:
    """A random ERK mask at ``density``; static when ``drop`` is "none", else the Fantastic Weights DST
    with ``period`` (default: ``update_period``) steps between mask updates."""
    dst = DSTConfig() if drop == "none" else DSTConfig.preset(
        "fantastic_weights", drop=drop, grow=grow, alpha=p.alpha, update_period=period or p.update_period)
    return replace(_base(p), sparsity=SparsityConfig("random", density, "erk"), dst=dst, seed=seed)


def grids(p: Params) -> dict[str, list[RunConfig]]:
    """``static`` (every density), ``criteria`` (growth x drop criterion x density) and ``sweep``
    (update periods at ``sweep_density``, plus its static runs), each for every seed."""
    seeds = range(p.seeds)
    return {
        "static": [config(p, d, s) for d in p.densities for s in seeds],
        "criteria": [config(p, d, s, c, g) for g in p.growths for c in p.criteria for d in p.densities for s in seeds],
        "sweep": ([config(p, p.sweep_density, s, c, p.sweep_growth, period) for period in p.period_sweep
                   for c in p.sweep_criteria for s in seeds] + [config(p, p.sweep_density, s) for s in seeds]),
    }


def grid(p: Params) -> list[RunConfig]:
    """The distinct configs of :func:`grids` (runs shared between grids once), in order."""
    return list({c.hash: c for cfgs in grids(p).values() for c in cfgs}.values())
