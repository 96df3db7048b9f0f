"""Chapter 06, OoD detection, calibration and robustness: parameters, run grid, claim effects, tables, figures."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd

from .. import data as rdata, models
from ..claims import mean_over_cases, paired
from ..config import ModelConfig, RunConfig, SparsityConfig
from ..evaluate import ATTACKS, OOD_SCORES, EvalConfig
from ..sparsity import SCHEMES
from ..data import input_spec
from ._common import data_config, scaled_cifar_recipe
from ._params import ChapterParams

if TYPE_CHECKING:
    from ..regime import Regime

__all__ = ["Params", "IMAGE_SETS", "DEFAULT_EPSILONS", "LOWER_IS_BETTER", "CLAIM_METRICS", "Frames", "check_networks",
           "grid", "eps_label", "radii_table", "collect", "paired_effects", "claim_effects", "difference_table",
           "summary_table", "plot_versus_sparsity", "plot_reliability", "plot_robustness", "regime", "claim_verdicts"]

IMAGE_SETS = ("cifar10", "cifar100", "svhn", "fashion_mnist")  # pixels in [0, 1]
DEFAULT_EPSILONS = {
    "mnist1d": [0.0, 0.05, 0.1, 0.2],  # no pixel bounds: the generator's raw values, std about 1
    "digits": [0.0, 0.5, 1.0, 2.0],  # raw values are counts 0..16: 1.0 is 1/16 of the range
    **{name: [0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255] for name in IMAGE_SETS},
}
LOWER_IS_BETTER = ("ECE", "NLL", "Brier")
#: Claim id -> the column of :func:`collect`'s frame whose paired sparse - dense difference is the claim's effect.
CLAIM_METRICS = {"sparse_matches_dense_ood": "AUROC", "sparse_matches_dense_calibration": "ECE",
                 "sparse_matches_dense_robustness": "robust accuracy"}
_DIGITS = {"test accuracy": 1, "AUROC": 1, "ECE": 4, "NLL": 3, "Brier": 3, "robust accuracy": 1}
#: The range of each metric (points for accuracies and AUROC; ECE and Brier score as fractions; NLL in nats).
_BOUNDS = {"test accuracy": (0.0, 100.0), "AUROC": (0.0, 100.0), "ECE": (0.0, 1.0), "NLL": (0.0, math.inf),
           "Brier": (0.0, 2.0), "robust accuracy": (0.0, 100.0)}


@dataclass(frozen=True)
class Params(ChapterParams):
    """Parameters of ``06_ood_calibration_robustness`` (defaults: the smoke profile).

    Stored normalised: sparsities sorted; an empty ``ood_sets`` becomes all OoD sets of the dataset; an
    empty ``epsilons`` the dataset's default radii; radius 0 (clean accuracy) is always included.
    """

    CHAPTER = "06_ood_calibration_robustness"
    dataset: str = "digits"
    num_samples: int = 1000
    data_root: str = "../data"
    download: bool = False
    models: list = field(default_factory=lambda: ["mlp"])
    width: float = 1.0
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1
    sparsities: list = field(default_factory=lambda: [0.5, 0.9])
    scheme: str = "erk"
    ood_sets: list = field(default_factory=list)
    ood_score: str = "msp"
    attacks: list = field(default_factory=lambda: ["fgsm", "pgd"])
    epsilons: list = field(default_factory=list)
    pgd_steps: int = 10
    attack_examples: int = 200
    reliability_sparsity: float = 0.9
    seeds: int = 2
    seed_offset: int = 0
    device: str = "auto"
    runs: str = "../runs"

    def __post_init__(self) -> None:
        self._choice("dataset", DEFAULT_EPSILONS)
        self._int("num_samples")
        self._str("data_root")
        self._bool("download")
        self._choices("models", models.available())
        self._float("width", 0, None, lo_open=True)
        self._training_fields()
        for name in ("pgd_steps", "attack_examples"):
            self._int(name)
        self._floats("sparsities", 0, 1, lo_open=True, hi_open=True)
        if len({round(float(s), 6) for s in self.sparsities}) != len(self.sparsities):
            self._fail("sparsities", "a list of distinct floats in (0, 1)", self.sparsities)
        self._choice("scheme", SCHEMES)
        self._choices("ood_sets", rdata.OOD_SETS[self.dataset], min_len=0)
        self._choice("ood_score", OOD_SCORES)
        self._choices("attacks", ATTACKS)
        self._floats("epsilons", 0, None, allow_empty=True)
        self._float("reliability_sparsity", 0, 1, lo_open=True, hi_open=True)
        self._set("sparsities", sorted(round(float(s), 6) for s in self.sparsities))
        self._set("reliability_sparsity", round(float(self.reliability_sparsity), 6))
        if self.reliability_sparsity not in self.sparsities:
            self._fail("reliability_sparsity", f"one of sparsities {self.sparsities}", self.reliability_sparsity)
        self._set("ood_sets", list(self.ood_sets) or list(rdata.OOD_SETS[self.dataset]))
        self._set("epsilons", sorted({0.0, *(float(e) for e in (self.epsilons or DEFAULT_EPSILONS[self.dataset]))}))


def _data(p: Params) -> rdata.DataConfig:
    return data_config(p.dataset, p.data_root, p.download, p.num_samples)


def check_networks(p: Params) -> None:
    """Build every network on the data's input shape: one that does not fit fails here, before any training."""
    in_shape, num_classes = input_spec(_data(p))
    for name in p.models:
        models.build(name, num_classes, in_shape=in_shape, **ModelConfig(name, width=p.width).options())


def grid(p: Params) -> list[RunConfig]:
    """Every network dense and with a random mask at every sparsity, for every seed, evaluated on OoD
    detection, calibration and the attacks."""
    base = RunConfig(
        data=_data(p),
        optim=scaled_cifar_recipe(p.epochs, p.batch_size, p.lr),
        eval=EvalConfig(ood=tuple(p.ood_sets), ood_score=p.ood_score, calibration=True, attacks=tuple(p.attacks),
                        epsilons=tuple(p.epsilons), pgd_steps=p.pgd_steps, attack_examples=p.attack_examples),
        device=p.device,
    )
    return [replace(base, model=ModelConfig(name, width=p.width), seed=seed,
                    sparsity=SparsityConfig(method="random", density=round(1 - s, 6), scheme=p.scheme) if s
                    else SparsityConfig())
            for name in p.models for s in [0.0, *p.sparsities] for seed in p.seed_list]


# --------------------------------------------------------------------------- results


class Frames(NamedTuple):
    """The chapter's results: one row per run (``frame``), per run, attack and radius (``robust``), and the
    reliability bins per (model, sparsity, seed)."""

    frame: pd.DataFrame
    robust: pd.DataFrame
    reliability: dict


def eps_label(e: float, dataset: str) -> str:
    """An attack radius as printed: ``k/255`` on the image sets, the raw number otherwise."""
    return f"{e * 255:g}/255" if dataset in IMAGE_SETS else f"{e:g}"


def radii_table(p: Params) -> pd.DataFrame:
    """The attack radii in raw units, as a fraction of the input range and of the raw standard deviation."""
    bundle = rdata.load(_data(p))
    raw_std = float(bundle.std.mean())
    span = (bundle.bounds[1] - bundle.bounds[0]) if bundle.bounds else None
    return pd.DataFrame({
        "eps (raw units)": [eps_label(e, p.dataset) for e in p.epsilons],
        "eps / range": [f"{e / span:.4f}" if span else "no bounds" for e in p.epsilons],
        "eps / raw std": [f"{e / raw_std:.4f}" for e in p.epsilons],
    }).set_index("eps (raw units)")


def collect(results, p: Params) -> Frames:
    """One row per run: model, network label, sparsity (0 = dense), seed and every metric.

    Accuracies are in percent and AUROCs in points (x 100). ``AUROC`` is the mean over the OoD sets,
    ``robust accuracy`` the mean over the attacks and the non-zero radii: the columns the claims use.
    """
    rows, robust_rows, reliability = [], [], {}
    for r in results:
        c, m = r.config, r.metrics
        s = round(1 - c.sparsity.density, 6) if c.sparsity.sparse else 0.0
        key = {"model": c.model.name, "network": f"{p.scheme} {s:g}" if s else "dense", "sparsity": s, "seed": c.seed}
        values = {"test accuracy": 100 * m["test_accuracy"]}
        values |= {f"AUROC {name}": 100 * m["ood"][name]["auroc"] for name in p.ood_sets}
        values["AUROC"] = float(np.mean([values[f"AUROC {name}"] for name in p.ood_sets]))
        values |= {k: m["calibration"][k.lower()] for k in LOWER_IS_BETTER}
        attacked = []
        for attack in p.attacks:
            for e in p.epsilons:
                acc = 100 * m["robustness"][attack][str(e)]
                robust_rows.append(key | {"attack": attack, "eps": e, "robust accuracy": acc})
                attacked += [acc] if e > 0 else []
        values["robust accuracy"] = float(np.mean(attacked)) if attacked else float("nan")
        rows.append(key | values)
        reliability[(c.model.name, s, c.seed)] = m["calibration"]["reliability"]
    return Frames(pd.DataFrame(rows), pd.DataFrame(robust_rows), reliability)


# --------------------------------------------------------------------------- effects and verdicts


def paired_effects(frame: pd.DataFrame, p: Params, metric: str) -> pd.DataFrame:
    """Per model, sparsity and seed: the paired difference sparse - dense of ``metric`` (same seed)."""
    out = []
    for name in p.models:
        t = frame[frame.model == name]
        for s in p.sparsities:
            d = paired(t, "sparsity", s, 0.0, metric)
            out.append(pd.DataFrame({"model": name, "sparsity": s, "seed": d.index, "effect": d.to_numpy()}))
    return pd.concat(out, ignore_index=True)


def claim_effects(frame: pd.DataFrame, p: Params) -> dict[str, pd.Series]:
    """Claim id -> per-seed effect: the paired sparse - dense difference of the claim's metric at
    ``p.reliability_sparsity``, averaged per seed over ``p.models`` (index = seed).

    Every model must have both sides for the same seeds; an unpaired or duplicated run is a ``ValueError``.
    """
    out = {}
    for claim, metric in CLAIM_METRICS.items():
        per_model = {name: paired(frame[frame.model == name], "sparsity", p.reliability_sparsity, 0.0, metric)
                     for name in p.models}
        out[claim] = mean_over_cases(pd.DataFrame(per_model), "claim_effects: seeds {seeds} are not run for every "
                                     f"model {list(p.models)}").rename(claim)
    return out


def claim_verdicts(frame: pd.DataFrame, p: Params) -> list:
    """The chapter's verdicts, each pooled over the networks (:func:`claim_effects`) with every network's own
    verdict beside it."""
    from ..claims import CLAIMS, decide_cases

    out = []
    for claim, metric in CLAIM_METRICS.items():
        table = pd.DataFrame({name: paired(frame[frame.model == name], "sparsity", p.reliability_sparsity, 0.0, metric)
                              for name in p.models})
        out.append(decide_cases(CLAIMS[claim], table, "claim_verdicts: seeds {seeds} are not run for every model "
                                f"{list(p.models)}"))
    return out


# --------------------------------------------------------------------------- tables


def difference_table(frame: pd.DataFrame, p: Params) -> pd.DataFrame:
    """Paired sparse - dense differences per model and sparsity, ``mean [95% CI]`` over seeds, for test accuracy
    and the three claims' metrics (points; ECE as a fraction)."""
    from ..plotting import mean_ci

    cols = {}
    for metric in ["test accuracy", *CLAIM_METRICS.values()]:
        e = paired_effects(frame, p, metric)
        low, high = _BOUNDS[metric]
        cols[f"{metric}, sparse - dense"] = e.groupby(["model", "sparsity"], sort=False).effect.agg(
            lambda v, d=_DIGITS[metric], b=(low - high, high - low): mean_ci(v, d, b))
    return pd.DataFrame(cols)


def summary_table(frame: pd.DataFrame, p: Params) -> pd.DataFrame:
    """Every metric per model (rows) and network (columns), ``mean [95% CI]`` over seeds."""
    from ..plotting import mean_ci

    metrics = ["test accuracy", *(f"AUROC {s}" for s in p.ood_sets), "AUROC", *LOWER_IS_BETTER, "robust accuracy"]
    long = frame.melt(id_vars=["model", "network", "sparsity", "seed"], value_vars=metrics, var_name="metric")
    kind = {m: m.split(" ")[0] if m.startswith("AUROC") else m for m in metrics}
    cells = long.groupby(["model", "metric", "network"], sort=False).value.agg(list)
    cells = pd.Series({k: mean_ci(v, _DIGITS[kind[k[1]]], _BOUNDS[kind[k[1]]]) for k, v in cells.items()})
    table = cells.unstack(-1)
    networks = list(dict.fromkeys(frame.sort_values("sparsity").network))
    order = pd.MultiIndex.from_product([list(p.models), metrics], names=["model", "metric"])
    return table.reindex(index=order, columns=networks)


# --------------------------------------------------------------------------- figures


def _dense_band(ax, values: pd.Series) -> None:
    from ..plotting import ci95_halfwidth, color

    mean, half = values.mean(), ci95_halfwidth(values)
    ax.axhspan(mean - half, mean + half, color=color("dense"), alpha=0.12, linewidth=0)
    ax.axhline(mean, color=color("dense"), linestyle="--", linewidth=1.2, label="dense")


def plot_versus_sparsity(frame: pd.DataFrame, p: Params, metrics: list[str], ylabels: list[str]):
    """One panel per model (rows) and metric (columns): the sparse networks' mean and 95% CI against sparsity,
    the dense network as a dashed line with its 95% CI band; one legend."""
    import matplotlib.pyplot as plt

    from ..plotting import errorbar_plot, figure_legend

    rows, cols = len(p.models), len(metrics)
    fig, axes = plt.subplots(rows, cols, figsize=(min(9.0, 4.2 * cols), 2.9 * rows + 0.6), squeeze=False)
    for i, name in enumerate(p.models):
        t = frame[frame.model == name]
        sparse = t[t.sparsity > 0].assign(scheme=p.scheme)
        for ax, metric, ylabel in zip(axes[i], metrics, ylabels):
            _dense_band(ax, t.loc[t.sparsity == 0, metric])
            errorbar_plot(sparse, x="sparsity", y=metric, hue="scheme", ax=ax, err="ci95", label_fmt="random {}")
            ax.set_title(f"{name}: {metric}")
            ax.set_ylabel(ylabel)
    figure_legend(fig, title="network (random: its layer-wise scheme)")
    return fig


def _pooled(reliability: dict, name: str, s: float, seeds) -> pd.DataFrame:
    """Reliability bins of every seed, pooled: counts add up, accuracy and confidence are count-weighted."""
    bins = [pd.DataFrame({k: v for k, v in reliability[(name, s, seed)].items() if k != "edges"}) for seed in seeds]
    t = pd.concat(bins, keys=list(seeds), names=["seed", "bin"]).reset_index()
    t["hits"], t["conf"] = t["accuracy"] * t["count"], t["confidence"] * t["count"]
    g = t.groupby("bin")[["hits", "conf", "count"]].sum()
    return pd.DataFrame({"accuracy": g.hits / g["count"], "confidence": g.conf / g["count"], "count": g["count"]})


def plot_reliability(frames: Frames, p: Params):
    """Reliability diagrams, one column per model: dense vs the sparse network at ``reliability_sparsity``,
    bins pooled over seeds (top), the fraction of test examples per bin (bottom); one legend."""
    import matplotlib.pyplot as plt

    from ..plotting import color, figure_legend

    seeds = sorted(frames.frame.seed.unique())
    n_bins = len(next(iter(frames.reliability.values()))["count"])
    centres = (np.arange(n_bins) + 0.5) / n_bins
    cols = len(p.models)
    fig, axes = plt.subplots(2, cols, figsize=(min(9.0, 4.4 * cols), 5.4), sharex=True, height_ratios=[3, 1],
                             squeeze=False)
    sides = ((-0.25, 0.0, "dense"), (0.25, p.reliability_sparsity, f"random {p.scheme} {p.reliability_sparsity:g}"))
    for j, name in enumerate(p.models):
        top, bottom = axes[0, j], axes[1, j]
        eces = []
        for offset, s, label in sides:
            pooled = _pooled(frames.reliability, name, s, seeds)
            t = frames.frame
            eces.append(t.loc[(t.model == name) & (t.sparsity == s), "ECE"].mean())
            c = color("dense") if s == 0 else color(p.scheme)
            top.bar(centres + offset / n_bins, pooled["accuracy"].fillna(0), width=0.5 / n_bins, color=c, alpha=0.8,
                    label=label)
            bottom.bar(centres + offset / n_bins, pooled["count"] / pooled["count"].sum(), width=0.5 / n_bins,
                       color=c, alpha=0.8)
        top.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        top.set_title(f"{name}: ECE {eces[0]:.3f} vs {eces[1]:.3f}")
        top.set_ylabel("accuracy in bin")
        bottom.set_yscale("log")
        bottom.set_ylabel("fraction")
        bottom.set_xlabel("confidence (max softmax)")
        bottom.set_xlim(0, 1)
    figure_legend(fig, title=f"bins pooled over {len(seeds)} seed(s)")
    return fig


def plot_robustness(robust: pd.DataFrame, p: Params):
    """Accuracy under attack against the radius, one panel per model (rows) and attack (columns), mean and 95% CI
    over seeds; dense in black, one colour per sparsity (:func:`rplib.plotting.level_colors`) with a marker
    and line style of its own as a second cue; one legend."""
    import matplotlib.pyplot as plt

    from ..plotting import color, errorbar_plot, figure_legend, level_colors

    styles = ["-", "--", ":", "-."]
    markers = ["o", "s", "^", "D", "v"]
    colors = level_colors(s for s in robust.sparsity.unique() if s > 0)
    rows, cols = len(p.models), len(p.attacks)
    fig, axes = plt.subplots(rows, cols, figsize=(min(9.0, 4.4 * cols), 3.0 * rows + 0.8), squeeze=False)
    for i, name in enumerate(p.models):
        for ax, attack in zip(axes[i], p.attacks):
            a = robust[(robust.model == name) & (robust.attack == attack)]
            for k, (s, g) in enumerate(a.groupby("sparsity")):
                style = ({"color": color("dense"), "linestyle": "-", "marker": "o"} if s == 0 else
                         {"color": colors[s], "linestyle": styles[(k - 1) % len(styles)],
                          "marker": markers[(k - 1) % len(markers)]})
                errorbar_plot(g.assign(net="dense" if s == 0 else f"random {p.scheme} {s:g}"), x="eps",
                              y="robust accuracy", hue="net", ax=ax, err="ci95", **style)
            ax.set_xticks(p.epsilons, [eps_label(e, p.dataset) for e in p.epsilons])
            ax.set_xlabel(r"$\varepsilon$ (raw input units)")
            ax.set_ylabel("accuracy (%)")
            ax.set_title(f"{name}: {attack.upper()}")
    figure_legend(fig, title="network (random: scheme and sparsity)")
    return fig


def length_configs(p: Params) -> dict[str, list[RunConfig]]:
    """The runs the training-length check lengthens (:func:`rplib.regime.length_configs`): every network's dense runs."""
    from ..regime import length_configs as lengthen

    return lengthen(grid(p), lambda c: c.model.name)


def regime(p: Params, frame: pd.DataFrame | None = None, length: pd.DataFrame | None = None) -> Regime:
    """The regime of the chapter's claims (:mod:`rplib.regime`): every network at the reliability density; with
    ``frame`` (:func:`collect`'s runs) the dense networks' test accuracy."""
    from ..regime import regime as make

    dense = None if frame is None else frame[frame.sparsity == 0].assign(network=lambda d: d.model).rename(
        columns={"test accuracy": "acc"})
    return make(Params.CHAPTER, p.dataset, input_spec(_data(p))[1], list(p.models), p.epochs,
                [round(1 - p.reliability_sparsity, 10)], dense, length=length)
