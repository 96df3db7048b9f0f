"""Chapter 07, gradient flow: parameters, the masks compared, the run grid, the claim's effect, tables, figures."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats
from torch import nn

from .. import data as rdata, models
from ..claims import mean_over_cases
from ..config import ModelConfig, RunConfig, SparsityConfig
from ..evaluate import EvalConfig
from ..sparsity import DATA_SCHEMES, SCHEMES
from ..data import input_spec
from ._common import data_config, scaled_cifar_recipe
from ._params import ChapterParams

if TYPE_CHECKING:
    from ..regime import Regime

__all__ = ["Params", "CLAIM", "masks", "networks", "grid", "collect", "per_seed", "kendall_taus", "claim_effects",
           "tau_table", "results_table", "plot_flow", "plot_init_vs_accuracy", "regime", "claim_verdicts"]

CLAIM = "grad_flow_orders_schemes"
NORMS = ("grad flow at init", "mean grad flow in training")


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
    seed_offset: int = 0
    device: str = "auto"
    runs: str = "../runs"

    def __post_init__(self) -> None:
        self._data_fields()
        self._choices("models", models.available())
        self._float("width", 0, None, lo_open=True)
        self._training_fields()
        self._int("prune_samples_per_class")
        self._float("sparsity", 0, 1, lo_open=True, hi_open=True)
        self._choices("schemes", [*SCHEMES, *DATA_SCHEMES], min_len=2)
        self._bool("dense")


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
            for name in p.models for sp in masks(p).values() for seed in p.seed_list]


# --------------------------------------------------------------------------- results


def collect(results, p: Params) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(flow, final)``: the gradient flow per run and epoch, and one row per run with its gradient norm at
    initialisation (epoch 0), its mean over the training epochs, the final test accuracy (%), the final
    training loss and the densities of the first layer and the classifier."""
    from ..models import classifier_name, first_layer_name
    from ..store import RunDir, read_json

    nets = networks(p)
    flow_rows, final_rows = [], []
    for r in results:
        c = r.config
        key = {"model": c.model.name, "scheme": c.sparsity.scheme if c.sparsity.sparse else "dense", "seed": c.seed}
        flow_rows += [key | {"epoch": h["epoch"], "grad_flow": h["grad_flow"]} for h in r.history]
        report = read_json(RunDir(p.runs, r.metrics["hash"]).mask_report) if c.sparsity.sparse else []
        density = {row["name"]: row["density"] for row in report}
        net = nets[c.model.name]
        final_rows.append(key | {
            "grad flow at init": r.history[0]["grad_flow"],
            "mean grad flow in training": float(np.mean([h["grad_flow"] for h in r.history if h["epoch"] > 0])),
            "test accuracy": 100 * r.metrics["test_accuracy"],
            "final train loss": r.metrics["final_train_loss"],
            "first layer density": density.get(first_layer_name(net), 1.0),
            "classifier density": density.get(classifier_name(net), 1.0),
        })
    return pd.DataFrame(flow_rows), pd.DataFrame(final_rows)


# --------------------------------------------------------------------------- the claim's effect


def per_seed(frame: pd.DataFrame, schemes: list[str], value: str) -> pd.DataFrame:
    """``value`` of one network as a table seed x scheme; a scheme missing a seed, or a duplicated
    (scheme, seed), is a ``ValueError`` naming it."""
    rows = frame[frame.scheme.isin(schemes)]
    dup = rows[["scheme", "seed"]].duplicated()
    if dup.any():
        raise ValueError(f"per_seed: several runs for (scheme, seed) {rows[dup][['scheme', 'seed']].iloc[0].tolist()}")
    table = rows.pivot(index="seed", columns="scheme", values=value).reindex(columns=list(schemes))
    if table.isna().any().any():
        gaps = [(s, seed) for s in table.columns for seed in table.index[table[s].isna()]]
        raise ValueError(f"per_seed: unpaired seeds, (scheme, seed) without a run: {gaps[:5]}")
    return table.sort_index()


def _tau(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b of x and y; 0 (no ordering) when either is constant, where scipy's tau is undefined."""
    if np.all(x == x[0]) or np.all(y == y[0]):
        return 0.0
    return float(stats.kendalltau(x, y).statistic)


def kendall_taus(frame: pd.DataFrame, p: Params, norm: str = "grad flow at init") -> pd.DataFrame:
    """Per network (columns) and seed (rows): Kendall tau between the sparse schemes' ``norm`` and their final
    test accuracy, the schemes of one seed compared with each other (the dense reference is left out)."""
    out = {}
    for name in p.models:
        t = frame[frame.model == name]
        g, acc = per_seed(t, list(p.schemes), norm), per_seed(t, list(p.schemes), "test accuracy")
        if not g.index.equals(acc.index):
            raise ValueError(f"kendall_taus: {name}: seeds differ between {norm!r} and test accuracy")
        out[name] = pd.Series([_tau(g.loc[s].to_numpy(), acc.loc[s].to_numpy()) for s in g.index], index=g.index)
    return pd.DataFrame(out).rename_axis("seed")


def claim_effects(frame: pd.DataFrame, p: Params) -> dict[str, pd.Series]:
    """``{CLAIM: per-seed effect}``: per seed, Kendall tau between the sparse schemes' gradient norm at
    initialisation and their final test accuracy, averaged over ``p.models`` (index = seed)."""
    missing = f"kendall_taus: seeds {{seeds}} are not run for every network {list(p.models)}"
    return {CLAIM: mean_over_cases(kendall_taus(frame, p), missing).rename(CLAIM)}


def claim_verdicts(frame: pd.DataFrame, p: Params) -> list:
    """The chapter's verdict, pooled over the networks (:func:`claim_effects`) with each network's own Kendall tau
    verdict beside it."""
    from ..claims import CLAIMS, decide_cases

    missing = f"kendall_taus: seeds {{seeds}} are not run for every network {list(p.models)}"
    return [decide_cases(CLAIMS[CLAIM], kendall_taus(frame, p), missing)]


# --------------------------------------------------------------------------- tables


def tau_table(frame: pd.DataFrame, p: Params) -> pd.DataFrame:
    """Per network: Kendall tau of the gradient norm at initialisation (the claim) and of the mean gradient norm
    during training (descriptive) with final accuracy, mean [95% CI] over seeds."""
    from ..plotting import mean_ci

    cols = {f"tau: {norm} vs accuracy": kendall_taus(frame, p, norm).agg(lambda v: mean_ci(v, 2)) for norm in NORMS}
    return pd.DataFrame(cols).rename_axis("model")


def _order(p: Params) -> list[str]:
    return [*p.schemes, "dense"] if p.dense else list(p.schemes)


def results_table(frame: pd.DataFrame, p: Params) -> pd.DataFrame:
    """Per network and mask: gradient norms, test accuracy (%), final training loss and the densities of the
    first layer and the classifier, mean [95% CI] over seeds."""
    from ..plotting import mean_ci

    digits = {"grad flow at init": 3, "mean grad flow in training": 3, "test accuracy": 1, "final train loss": 3,
              "first layer density": 3, "classifier density": 3}
    table = frame.groupby(["model", "scheme"], sort=False).agg(
        {k: (lambda v, d=d: mean_ci(v, d)) for k, d in digits.items()})
    return table.reindex(pd.MultiIndex.from_product([list(p.models), _order(p)], names=["model", "scheme"]))


# --------------------------------------------------------------------------- figures


def _log_axis(axis) -> None:
    """Logarithmic axis labelled 1, 2, 5 x 10^k in plain numbers."""
    from matplotlib import ticker

    axis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    axis.set_minor_formatter(ticker.NullFormatter())


def plot_flow(flow: pd.DataFrame, p: Params):
    """Gradient norm on the fixed batch against epoch (log axis), one panel per network, mean and 95% CI over
    seeds, one line per mask; one legend."""
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    from ..plotting import errorbar_plot, figure_legend

    cols = len(p.models)
    fig, axes = plt.subplots(1, cols, figsize=(min(9.0, 4.5 * cols), 3.8), squeeze=False)
    for ax, name in zip(axes[0], p.models):
        t = flow[flow.model == name]
        t = t.assign(scheme=pd.Categorical(t.scheme, _order(p))).sort_values("scheme")
        t["scheme"] = t.scheme.astype(str)
        errorbar_plot(t, x="epoch", y="grad_flow", hue="scheme", ax=ax, err="ci95", markersize=3)
        ax.set_yscale("log")
        _log_axis(ax.yaxis)
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
        ax.set_ylabel(r"$\|\nabla_\theta \mathcal{L} \odot m\|_2$")
        ax.set_title(f"{name}, sparsity {p.sparsity:g}")
    figure_legend(fig, title="mask")
    return fig


def plot_init_vs_accuracy(frame: pd.DataFrame, p: Params):
    """Final test accuracy against the gradient norm at initialisation, one panel per network: every seed as a
    small point, the mean over seeds with 95% CI in both directions as a large one; one legend."""
    import matplotlib.pyplot as plt

    from ..plotting import ci95_halfwidth as half, color, figure_legend

    cols = len(p.models)
    fig, axes = plt.subplots(1, cols, figsize=(min(9.0, 4.5 * cols), 3.8), squeeze=False)
    for ax, name in zip(axes[0], p.models):
        t = frame[frame.model == name]
        for k in _order(p):
            g = t[t.scheme == k]
            x, y = g["grad flow at init"], g["test accuracy"]
            ax.scatter(x, y, s=12, color=color(k), alpha=0.4)
            ax.errorbar(x.mean(), y.mean(), xerr=half(x), yerr=half(y), marker="o", markersize=7, color=color(k),
                        linestyle="none", label=k)
        ax.set_xscale("log")
        _log_axis(ax.xaxis)
        ax.set_xlabel("grad flow at init")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{name}, sparsity {p.sparsity:g}")
    figure_legend(fig, title="mask")
    return fig


def length_configs(p: Params) -> dict[str, list[RunConfig]]:
    """The runs the training-length check lengthens (:func:`rplib.regime.length_configs`): every network's dense runs, or its runs of the first scheme without ``dense``."""
    from ..regime import length_configs as lengthen

    return lengthen(grid(p), lambda c: c.model.name)


def regime(p: Params, final: pd.DataFrame | None = None, length: pd.DataFrame | None = None) -> Regime:
    """The regime of the chapter's claim (:mod:`rplib.regime`): every network at the chapter's density; with
    ``final`` (:func:`collect`'s runs) the dense networks' test accuracy, when they were trained (``dense``)."""
    from ..regime import regime as make

    dense = None if final is None else final[final.scheme == "dense"].assign(network=lambda d: d.model).rename(
        columns={"test accuracy": "acc"})
    return make(Params.CHAPTER, p.dataset, input_spec(_data(p))[1], list(p.models), p.epochs,
                [round(1 - p.sparsity, 10)], dense, length=length, dense_runs=p.dense)
