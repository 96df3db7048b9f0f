"""Chapter 02, depth and width scaling: parameters, the networks of both sweeps, the run grid, the gap and its slopes.

The claim ``scaling_gap_shrinks`` (:data:`rplib.claims.CLAIMS`) is measured by :func:`effects`: per seed,
the least-squares slope of the gap (dense - random sparse test accuracy, points, same seed, at
``gap_sparsity``) against log2 of the network's prunable weights over every network of both sweeps,
averaged over the schemes. :func:`slopes` gives the same slope per sweep and scheme (descriptive).
:func:`length_configs` names the dense runs the training-length check trains again for longer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .. import models, sparsity
from ..claims import paired
from ..config import RunConfig
from ..data import input_spec
from ._common import data_config, scaled_cifar_recipe
from ._params import ChapterParams

if TYPE_CHECKING:
    from ..regime import Regime
    from ..train import Result

__all__ = ["Params", "FAMILIES", "PAPER", "sizes", "label", "prunable_weights", "config", "grid", "frame", "gaps",
           "sweeps", "slope", "slopes", "effects", "length_configs", "regime", "claim_verdicts"]

FAMILIES = ("cnn1d", "resnet", "wrn")  # registry names that take both a depth and a width


@dataclass(frozen=True)
class Params(ChapterParams):
    """Parameters of ``02_scaling`` (defaults: the smoke profile); lists are stored sorted and de-duplicated."""

    CHAPTER = "02_scaling"
    dataset: str = "mnist1d"
    num_samples: int = 1000
    data_root: str = "../data"
    download: bool = False
    model: str = "cnn1d"
    depths: list = field(default_factory=lambda: [3, 5])
    widths: list = field(default_factory=lambda: [0.5, 1.0])
    base_depth: int = 3
    base_width: float = 1.0
    sparsities: list = field(default_factory=lambda: [0.5, 0.9])
    schemes: list = field(default_factory=lambda: ["erk", "uniform"])
    gap_sparsity: float = 0.9
    epochs: int = 2
    batch_size: int = 128
    lr: float = 0.1
    seeds: int = 1
    seed_offset: int = 0
    device: str = "auto"
    runs: str = "../runs"

    def __post_init__(self) -> None:
        self._data_fields()
        self._choice("model", FAMILIES)
        if (self.model == "cnn1d") != (self.dataset == "mnist1d"):
            self._fail("model", "cnn1d for dataset mnist1d, resnet or wrn for image datasets", self.model)
        self._ints("depths")
        self._floats("widths", 0, None, lo_open=True)
        self._int("base_depth")
        self._float("base_width", 0, None, lo_open=True)
        self._floats("sparsities", 0, 1, lo_open=True, hi_open=True)
        self._choices("schemes", sparsity.SCHEMES)
        self._float("gap_sparsity", 0, 1, lo_open=True, hi_open=True)
        if self.gap_sparsity not in self.sparsities:
            self._fail("gap_sparsity", f"one of sparsities {self.sparsities}", self.gap_sparsity)
        self._training_fields()
        self._set("depths", sorted(set(self.depths)))
        self._set("widths", sorted({float(w) for w in self.widths}))
        self._set("base_width", float(self.base_width))
        self._set("sparsities", sorted({round(float(s), 10) for s in self.sparsities}))
        if len(sizes(self)) < 2:
            self._fail("depths", "depths and widths that give at least two networks (a slope needs two sizes)",
                       self.depths)


def sizes(p: Params) -> list[tuple[int, float]]:
    """Every (depth, width) of both sweeps: the depth sweep at ``base_width``, the width sweep at ``base_depth``."""
    return list(dict.fromkeys([(d, p.base_width) for d in p.depths] + [(p.base_depth, w) for w in p.widths]))


def label(p: Params, depth: int, width: float) -> str:
    """The network's name as the papers write it."""
    if p.model == "resnet":
        return f"ResNet-{depth}" + ("" if width == 1 else f" ({width:g}x wide)")
    if p.model == "wrn":
        return f"WRN-{depth}-{width:g}"
    return f"cnn1d depth {depth}, width {width:g}"


def _base(p: Params) -> RunConfig:
    data_cfg = data_config(p.dataset, p.data_root, p.download, p.num_samples, mnist1d_only=True)
    return RunConfig(data=data_cfg, optim=scaled_cifar_recipe(p.epochs, p.batch_size, p.lr), device=p.device)


def prunable_weights(p: Params) -> dict[tuple[int, float], int]:
    """Prunable weights of every network; building each (and its layer-wise densities) fails early on a bad size."""
    in_shape, num_classes = input_spec(_base(p).data)
    out = {}
    for d, w in sizes(p):
        net = models.build(p.model, num_classes, in_shape=in_shape, depth=d, width=w)
        out[d, w] = sum(t.numel() for t in models.prunable_parameters(net).values())
        for scheme in p.schemes:
            for s in p.sparsities:
                sparsity.layerwise_densities(net, round(1 - s, 10), scheme)
    return out


def config(p: Params, depth: int, width: float, scheme: str, s: float, seed: int) -> RunConfig:
    """One run: the network of this size, dense (``scheme="dense"``) or a random mask at sparsity ``s``."""
    changes = {"model.name": p.model, "model.depth": depth, "model.width": width}
    if scheme != "dense":
        changes |= {"sparsity.method": "random", "sparsity.density": round(1 - s, 10), "sparsity.scheme": scheme}
    return _base(p).with_(changes, seed=seed)


def grid(p: Params) -> list[RunConfig]:
    """Every network dense, then every (network, scheme, sparsity), each for every seed."""
    configs = [config(p, d, w, "dense", 0.0, seed) for d, w in sizes(p) for seed in p.seed_list]
    return configs + [config(p, d, w, scheme, s, seed) for d, w in sizes(p) for scheme in p.schemes
                      for s in p.sparsities for seed in p.seed_list]


# --------------------------------------------------------------------------- results


#: Liu et al. (2022), CIFAR-10 ResNets at sparsity 0.9: test accuracy (%) read off the depth figure in the
#: authors' repository (about +-0.15 points); dense and the two schemes of this chapter. Descriptive only.
PAPER = pd.DataFrame({"depth": [20, 32, 44, 56, 110],
                      "dense": [92.4, 93.1, 93.3, 93.15, 93.35],
                      "erk": [87.8, 89.7, 90.6, 90.6, 91.9],
                      "uniform": [86.3, 88.6, 89.5, 90.4, 91.35]}).set_index("depth")


def frame(p: Params, results: Sequence[Result]) -> pd.DataFrame:
    """One row per run: network (name, depth, width, prunable weights), scheme ("dense" or the scheme), sparsity
    (0 for dense), seed, epochs, test accuracy in points and the run hash."""
    n = prunable_weights(p)
    rows = []
    for r in results:
        c = r.config
        d, w = c.model.depth, float(c.model.width)
        dense = c.sparsity.method == "dense"
        rows.append({"network": label(p, d, w), "depth": d, "width": w, "weights": n.get((d, w)),
                     "scheme": "dense" if dense else c.sparsity.scheme,
                     "sparsity": 0.0 if dense else round(1 - c.sparsity.density, 6), "seed": c.seed,
                     "epochs": c.optim.epochs, "accuracy": 100 * r.metrics["test_accuracy"], "hash": c.hash})
    return pd.DataFrame(rows)


def gaps(p: Params, runs: pd.DataFrame) -> pd.DataFrame:
    """The gap per network, scheme and seed: dense - sparse test accuracy (points) at ``gap_sparsity``, same seed.

    ``runs`` is :func:`frame`; a sparse run without its dense run of the same seed is an error
    (:func:`rplib.claims.paired`).
    """
    out = []
    for (d, w), net in runs.groupby(["depth", "width"], sort=False):
        for scheme in p.schemes:
            rows = net[(net.scheme == "dense") | ((net.scheme == scheme) & (net.sparsity == p.gap_sparsity))]
            gap = paired(rows, "scheme", "dense", scheme, "accuracy")
            out.append(pd.DataFrame({"network": net.network.iloc[0], "depth": d, "width": w,
                                     "weights": net.weights.iloc[0], "scheme": scheme, "seed": gap.index,
                                     "gap": gap.to_numpy()}))
    return pd.concat(out, ignore_index=True)


def slope(weights: Sequence[float], gap: Sequence[float]) -> float:
    """Least-squares slope of ``gap`` against log2(``weights``): points per doubling of the prunable weights."""
    return float(np.polyfit(np.log2(np.asarray(weights, dtype=float)), np.asarray(gap, dtype=float), 1)[0])


def sweeps(p: Params, rows: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The rows (of :func:`frame` or :func:`gaps`) of the depth sweep, the width sweep and both ("both": all)."""
    return {"depth": rows[(rows.width == p.base_width) & rows.depth.isin(p.depths)],
            "width": rows[(rows.depth == p.base_depth) & rows.width.isin(p.widths)],
            "both": rows}


def slopes(p: Params, g: pd.DataFrame) -> pd.DataFrame:
    """Per-seed slopes (:func:`slope`) of the gaps ``g`` (:func:`gaps`) for every sweep (depth, width, both) and
    scheme; a sweep with a single network has no slope and no row."""
    out = [{"sweep": sweep, "scheme": scheme, "seed": seed, "slope": slope(s.weights, s.gap)}
           for sweep, rows in sweeps(p, g).items() if rows.weights.nunique() > 1
           for (scheme, seed), s in rows.groupby(["scheme", "seed"], sort=False)]
    return pd.DataFrame(out, columns=["sweep", "scheme", "seed", "slope"])


def effects(p: Params, g: pd.DataFrame) -> pd.Series:
    """The claim's effect, one number per seed: the slope over every network of both sweeps, averaged over schemes."""
    s = slopes(p, g)
    return s[s.sweep == "both"].groupby("seed").slope.mean().rename("slope (points per doubling)")


def claim_verdicts(p: Params, g: pd.DataFrame) -> list:
    """The chapter's verdict from the gaps ``g`` (:func:`gaps`): the per-seed slope over both sweeps averaged over
    the schemes (:func:`effects`), with each scheme's own verdict beside it."""
    from ..claims import CLAIMS, decide_cases

    s = slopes(p, g)
    table = s[s.sweep == "both"].pivot(index="seed", columns="scheme", values="slope")[list(p.schemes)]
    return [decide_cases(CLAIMS["scaling_gap_shrinks"], table, "claim_verdicts: seeds {seeds} lack the slope of a "
                                                               "scheme that other seeds have")]


def length_configs(p: Params) -> dict[str, list[RunConfig]]:
    """The runs the training-length check lengthens (:func:`rplib.regime.length_configs`): every network's dense runs."""
    from ..regime import length_configs as lengthen

    return lengthen(grid(p), lambda c: label(p, c.model.depth, c.model.width))


def regime(p: Params, runs: pd.DataFrame | None = None, length: pd.DataFrame | None = None) -> Regime:
    """The regime of the chapter's claim (:mod:`rplib.regime`): every network of the sweeps, at the gap's density;
    with ``runs`` (:func:`frame`) the dense networks' test accuracy."""
    from ..regime import regime as make

    dense = None if runs is None else runs[runs.scheme == "dense"].rename(columns={"accuracy": "acc"})
    return make(Params.CHAPTER, p.dataset, input_spec(_base(p).data)[1], [label(p, d, w) for d, w in sizes(p)],
                p.epochs, [round(1 - p.gap_sparsity, 10)], dense, length=length)
