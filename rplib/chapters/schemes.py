"""Chapter 03, layer-wise schemes and ERK+: parameters, reachable (scheme, sparsity) pairs, the run grid,
the results frame, the claim's per-seed effects, the chapter's tables and its figure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from .. import models, sparsity
from ..claims import mean_interval, paired
from ..config import RunConfig
from ..data import input_spec
from ._common import data_config, scaled_cifar_recipe
from ._params import ChapterParams

if TYPE_CHECKING:
    from ..regime import Regime

__all__ = ["Params", "SALIENCY", "ALL_SCHEMES", "DEPTH_MODELS", "CLAIM_TREATMENT", "CLAIM_REFERENCE", "Network",
           "network", "describe", "config", "grid", "results_frame", "claim_effects", "differences",
           "accuracy_table", "difference_table", "plot_accuracy", "regime", "erk_plus_effects", "claim_verdicts"]

SALIENCY = ("snip", "grasp")  # data-dependent ratios: random masks with the saliency methods' layer-wise densities
ALL_SCHEMES = (*sparsity.SCHEMES, *SALIENCY)
DEPTH_MODELS = ("cnn1d", "resnet", "wrn")  # registry names that take a depth
# the claim erk_beats_uniform: ERK - uniform at the highest tested sparsity, whatever the chapter's
# baseline and challenger (which only order and reference the descriptive views)
CLAIM_TREATMENT, CLAIM_REFERENCE = "erk", "uniform"


@dataclass(frozen=True)
class Params(ChapterParams):
    """Parameters of ``03_schemes`` (defaults: the smoke profile)."""

    CHAPTER = "03_schemes"
    dataset: str = "mnist1d"
    num_samples: int = 1000
    data_root: str = "../data"
    download: bool = False
    model: str = "cnn1d"
    depth: int = 0
    width: float = 1.0
    schemes: list = field(default_factory=lambda: ["uniform", "erk", "erk_plus", "snip"])
    sparsities: list = field(default_factory=lambda: [0.5, 0.9])
    baseline: str = "uniform"
    challenger: str = "erk"
    prune_samples_per_class: int = 10
    epochs: int = 2
    batch_size: int = 128
    lr: float = 0.1
    seeds: int = 1
    seed_offset: int = 0
    device: str = "auto"
    runs: str = "../runs"

    def __post_init__(self) -> None:
        self._data_fields()
        self._choice("model", models.available())
        self._int("depth", 0)
        if self.depth and self.model not in DEPTH_MODELS:
            self._fail("depth", f"0 for model {self.model!r} (only {', '.join(DEPTH_MODELS)} take a depth)", self.depth)
        self._float("width", 0, None, lo_open=True)
        self._choices("schemes", ALL_SCHEMES)
        self._floats("sparsities", 0, 1, lo_open=True, hi_open=True)
        self._choice("baseline", self.schemes)
        self._choice("challenger", [s for s in self.schemes if s != self.baseline])
        self._int("prune_samples_per_class")
        self._training_fields()
        self._set("sparsities", sorted({round(float(s), 10) for s in self.sparsities}))
        self._set("width", float(self.width))


@dataclass(frozen=True)
class Network:
    """The chapter's network on the data: its size, each data-free scheme's ratios, and what cannot be reached."""

    prunable_weights: int
    ratios: dict[tuple[str, float], dict[str, float]]
    unreachable: dict[tuple[str, float], str]


def _base(p: Params) -> RunConfig:
    data_cfg = data_config(p.dataset, p.data_root, p.download, p.num_samples, mnist1d_only=True)
    return RunConfig(data=data_cfg, optim=scaled_cifar_recipe(p.epochs, p.batch_size, p.lr), device=p.device).with_(
        {"model.name": p.model, "model.width": p.width, "model.depth": p.depth or None,
         "sparsity.prune_samples_per_class": p.prune_samples_per_class})


def network(p: Params) -> Network:
    """Build the network on the data's input shape (a network that cannot take the inputs fails here) and
    solve every data-free scheme at every sparsity; a scheme whose dense layers alone exceed the budget is
    recorded as unreachable."""
    in_shape, num_classes = input_spec(_base(p).data)
    net = models.build(p.model, num_classes, in_shape=in_shape, width=p.width, **({"depth": p.depth} if p.depth else {}))
    try:
        with torch.no_grad():
            net.eval()(torch.zeros(2, *in_shape))
    except RuntimeError as err:
        raise ValueError(f"parameter 'model' of {p.CHAPTER}: {p.model!r} cannot take {p.dataset} inputs of shape "
                         f"{in_shape}: {err}") from None
    ratios, unreachable = {}, {}
    for scheme in p.schemes:
        if scheme in SALIENCY:
            continue
        for s in p.sparsities:
            try:
                ratios[scheme, s] = sparsity.layerwise_densities(net, round(1 - s, 10), scheme)
            except ValueError as err:
                unreachable[scheme, s] = str(err)
    return Network(sum(t.numel() for t in models.prunable_parameters(net).values()), ratios, unreachable)


def config(p: Params, scheme: str, s: float, seed: int) -> RunConfig:
    """One run: dense (``scheme="dense"``) or a random mask with the scheme's ratios at sparsity ``s``."""
    if scheme == "dense":
        return _base(p).with_(seed=seed)
    return _base(p).with_({"sparsity.method": "random", "sparsity.density": round(1 - s, 10),
                           "sparsity.scheme": scheme}, seed=seed)


def grid(p: Params, net: Network | None = None) -> list[RunConfig]:
    """The dense network and every reachable (scheme, sparsity) pair, each for every seed."""
    unreachable = (net or network(p)).unreachable
    configs = [config(p, "dense", 0.0, seed) for seed in p.seed_list]
    return configs + [config(p, scheme, s, seed) for scheme in p.schemes for s in p.sparsities
                      if (scheme, s) not in unreachable for seed in p.seed_list]


def describe(net: Network, p: Params) -> str:
    """The network's size, the unreachable (scheme, sparsity) pairs, and the schemes that coincide at a sparsity
    (equal layer-wise densities draw equal masks for a seed, hence equal results)."""
    depth = f", depth {p.depth}" if p.depth else ""
    lines = [f"{p.model} (width {p.width:g}{depth}) on {p.dataset}: {net.prunable_weights} prunable weights"]
    lines += [f"unreachable: {scheme} at sparsity {s:g} ({why.split(';')[0]})"
              for (scheme, s), why in net.unreachable.items()]
    for s in p.sparsities:
        groups: dict[tuple, list[str]] = {}
        for scheme in p.schemes:
            if (scheme, s) in net.ratios:
                groups.setdefault(tuple(sorted(net.ratios[scheme, s].items())), []).append(scheme)
        lines += [f"identical layer-wise densities at sparsity {s:g}: {', '.join(same)}"
                  for same in groups.values() if len(same) > 1]
    return "\n".join(lines)


def results_frame(results: Sequence) -> pd.DataFrame:
    """One row per run: ``scheme`` (``dense`` for the dense network), ``sparsity`` (0 for dense), ``seed``,
    final-epoch test ``accuracy`` in percent and the run's ``hash``."""
    from ..grid import to_frame

    raw = to_frame(results)
    dense = raw["sparsity.method"] == "dense"
    return pd.DataFrame({
        "scheme": raw["sparsity.method"].where(dense, raw["sparsity.scheme"]),
        "sparsity": (1 - raw["sparsity.density"]).where(~dense, 0.0).round(6),
        "seed": raw["seed"].astype(int),
        "accuracy": 100 * raw["test_accuracy"],
        "hash": raw["hash"],
    })


def _at(frame: pd.DataFrame, s: float) -> pd.DataFrame:
    return frame[np.isclose(frame["sparsity"].to_numpy(dtype=float), s) & (frame["scheme"] != "dense")]


def claim_effects(frame: pd.DataFrame, p: Params) -> dict[str, pd.Series]:
    """The chapter's claims and their per-seed effects (index = seed), from :func:`results_frame`'s columns.

    ``erk_beats_uniform``: ERK - uniform test accuracy (points) at the highest tested sparsity, paired by seed
    (same seed = same initial weights and data order). A seed missing on either side is an error.
    """
    missing = [s for s in (CLAIM_TREATMENT, CLAIM_REFERENCE) if s not in p.schemes]
    if missing:
        raise ValueError(f"claim erk_beats_uniform compares {CLAIM_TREATMENT} with {CLAIM_REFERENCE}; "
                         f"parameter 'schemes' of {p.CHAPTER} lacks {missing}")
    top = max(p.sparsities)
    effect = paired(_at(frame, top), "scheme", CLAIM_TREATMENT, CLAIM_REFERENCE, "accuracy")
    return {"erk_beats_uniform": effect.rename(f"{CLAIM_TREATMENT} - {CLAIM_REFERENCE} at sparsity {top:g}")}


def erk_plus_effects(frame: pd.DataFrame, p: Params, net: Network | None = None) -> pd.DataFrame:
    """Seeds x sparsities table of ERK+ - ERK test accuracy (points), paired by seed, at every sparsity of the grid
    at which ERK+ is reachable (the effect of ``erk_plus_matches_erk``); empty without both schemes."""
    if not {"erk", "erk_plus"} <= set(p.schemes):
        return pd.DataFrame()
    unreachable = (net or network(p)).unreachable
    table = {f"sparsity {s:g}": paired(_at(frame, s), "scheme", "erk_plus", "erk", "accuracy")
             for s in p.sparsities if ("erk_plus", s) not in unreachable and ("erk", s) not in unreachable}
    return pd.DataFrame(table).rename_axis("seed")


def claim_verdicts(frame: pd.DataFrame, p: Params, net: Network | None = None) -> list:
    """The chapter's verdicts: ``erk_beats_uniform`` at the highest sparsity (one case), and, when ERK and ERK+
    were trained, ``erk_plus_matches_erk`` pooled over the sparsities where ERK+ is reachable with each
    sparsity's own verdict beside it."""
    from ..claims import CLAIMS, decide, decide_cases

    out = [decide(CLAIMS[k], e) for k, e in claim_effects(frame, p).items()]
    plus = erk_plus_effects(frame, p, net)
    if not plus.empty:
        out.append(decide_cases(CLAIMS["erk_plus_matches_erk"], plus, "claim_verdicts: seeds {seeds} lack ERK+ or "
                                                                      "ERK at a sparsity that other seeds have"))
    return out


def _order(p: Params) -> list[str]:
    """The schemes other than the baseline, the challenger first."""
    return [p.challenger] + [s for s in p.schemes if s not in (p.baseline, p.challenger)]


def differences(frame: pd.DataFrame, p: Params) -> pd.DataFrame:
    """Per-seed paired differences ``scheme - baseline`` (points) at every sparsity where both were trained:
    columns ``scheme``, ``sparsity``, ``seed``, ``difference``."""
    parts = []
    for s in p.sparsities:
        at = _at(frame, s)
        for scheme in _order(p):
            if (at["scheme"] == scheme).any():
                d = paired(at, "scheme", scheme, p.baseline, "accuracy")
                parts.append(pd.DataFrame({"scheme": scheme, "sparsity": s, "seed": d.index, "difference": d.values}))
    columns = ["scheme", "sparsity", "seed", "difference"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def _sparsity_columns(table: pd.DataFrame, p: Params, fill: str) -> pd.DataFrame:
    table = table.reindex(columns=p.sparsities)
    table.columns = pd.Index([f"{s:g}" for s in p.sparsities], name="sparsity")
    return table.fillna(fill)


def accuracy_table(frame: pd.DataFrame, p: Params) -> pd.DataFrame:
    """Test accuracy (%), "mean [95% CI]" over seeds: one row per scheme (and dense), one column per sparsity."""
    from ..plotting import mean_ci, mean_ci_table

    sparse = frame[frame["scheme"] != "dense"]
    table = mean_ci_table(sparse, "scheme", "accuracy", columns="sparsity", bounds=(0.0, 100.0)).reindex(p.schemes)
    table = _sparsity_columns(table, p, "unreachable")
    dense = frame.loc[frame["scheme"] == "dense", "accuracy"]
    if len(dense):
        table.loc["dense (no mask)"] = mean_ci(dense, bounds=(0.0, 100.0))
    return table


def difference_table(frame: pd.DataFrame, p: Params) -> pd.DataFrame:
    """Paired differences ``scheme - baseline`` (points), "mean [95% CI]" over seeds: one row per scheme (the
    challenger first), one column per sparsity."""
    from ..plotting import mean_ci_table

    diffs = differences(frame, p)
    table = mean_ci_table(diffs, "scheme", "difference", columns="sparsity", bounds=(-100.0, 100.0)).reindex(_order(p))
    table.index = pd.Index([f"{s} - {p.baseline}" for s in table.index], name="difference")
    return _sparsity_columns(table, p, "unreachable")


def plot_accuracy(frame: pd.DataFrame, p: Params):
    """Left: test accuracy against sparsity per scheme (mean and 95% CI over seeds), dense as a line and band.
    Right: each scheme's paired difference to the baseline. The sparsity axis is logit-scaled."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator

    from ..plotting import color, errorbar_plot, figure_legend

    fig, axes = plt.subplots(1, 2, figsize=(9.0, 4.2))
    sparse = frame[frame["scheme"] != "dense"]
    dense = frame.loc[frame["scheme"] == "dense", "accuracy"]
    if len(dense):
        axes[0].axhline(dense.mean(), color=color("dense"), linewidth=1.0, label="dense")
        _, low, high = mean_interval(dense)
        if high > low:
            axes[0].axhspan(low, high, color="0.5", alpha=0.2, linewidth=0)
    order = [s for s in p.schemes if (sparse["scheme"] == s).any()]
    errorbar_plot(sparse.set_index("scheme").loc[order].reset_index(), x="sparsity", y="accuracy", hue="scheme",
                  ax=axes[0], err="ci95")
    axes[0].set_ylabel("test accuracy (%)")
    diffs = differences(frame, p)
    if len(diffs):
        errorbar_plot(diffs, x="sparsity", y="difference", hue="scheme", ax=axes[1], err="ci95")
    axes[1].axhline(0, color=color(p.baseline), linewidth=1.0, label=p.baseline)
    axes[1].set_ylabel(f"accuracy - {p.baseline} (points)")
    for ax in axes:
        ax.set_xscale("logit")
        ax.set_xticks(p.sparsities, [f"{s:g}" for s in p.sparsities])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel("sparsity (logit scale)")
    figure_legend(fig, title="scheme")
    return fig


def network_name(p: Params) -> str:
    """The chapter's network as its tables name it: ``cnn1d (width 2, depth 5)``."""
    return f"{p.model} (width {p.width:g}{f', depth {p.depth}' if p.depth else ''})"


def length_configs(p: Params) -> dict[str, list[RunConfig]]:
    """The runs the training-length check lengthens (:func:`rplib.regime.length_configs`): the dense network's runs."""
    from ..regime import length_configs as lengthen

    return lengthen([config(p, "dense", 0.0, seed) for seed in p.seed_list], lambda c: network_name(p))


def regime(p: Params, frame: pd.DataFrame | None = None, length: pd.DataFrame | None = None) -> Regime:
    """The regime of the chapter's claims (:mod:`rplib.regime`): the network at every density of the grid; with
    ``frame`` (:func:`results_frame`) the dense network's test accuracy and the schemes that train near chance at a
    sparsity (:func:`chance_note`)."""
    from ..regime import regime as make

    name = network_name(p)
    num_classes = input_spec(_base(p).data)[1]
    dense = None if frame is None else frame[frame.scheme == "dense"].assign(network=name).rename(
        columns={"accuracy": "acc"})
    notes = [] if frame is None else chance_note(frame, p, num_classes)
    return make(Params.CHAPTER, p.dataset, num_classes, [name], p.epochs, [round(1 - s, 10) for s in p.sparsities],
                dense, notes, length=length)


def chance_note(frame: pd.DataFrame, p: Params, num_classes: int) -> list[str]:
    """One note per sparsity at which schemes train near chance (:func:`rplib.regime.near_chance` of their seeds'
    accuracies): a claim compared there compares networks that learned too little."""
    from ..regime import near_chance

    notes = []
    for s in p.sparsities:
        rows = _at(frame, s)
        low = [scheme for scheme, g in rows.groupby("scheme", sort=False) if near_chance(g["accuracy"], num_classes)]
        if low:
            notes.append(f"near chance at sparsity {s:g}: {', '.join(low)}")
    return notes
