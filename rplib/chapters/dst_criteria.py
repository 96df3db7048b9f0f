"""Chapter 05, drop criteria in dynamic sparse training: parameters, run grids, the claims' effects,
and the chapter's tables and figures.

The claims ``drop_criteria_alike``, ``magnitude_best_low_density`` and ``dst_beats_static`` are
declared in :data:`rplib.claims.CLAIMS`; :func:`claim_effects` computes their per-seed effects from
the frame of runs (:func:`frame`) and :func:`setting_effects` the same effects per setting (growth
criterion, density) for the descriptive table. Accuracies are in percent.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .. import data as rdata, dst as rdst, models
from ..claims import best_level, held_out_mean, mean_over_cases, median_levels, paired
from ..config import ModelConfig, OptimConfig, RunConfig, SparsityConfig
from ..dst import DSTConfig
from ..plotting import color, errorbar_plot, figure_legend, heatmap, linestyle, mean_ci, mean_ci_table
from ._params import ChapterParams

if TYPE_CHECKING:
    from ..regime import Regime

__all__ = ["Params", "DENSE", "config", "dense_config", "grids", "grid", "run", "frame", "grid_note", "schedule_note",
           "CLAIM_IDS", "SAME_RANKING", "rivals", "rival_effects", "claim_effects", "claim_verdicts", "chance_table",
           "chance_note", "regime", "setting_effects", "effect_table", "accuracy_table", "gain_table", "sweep_table", "rewiring_table",
           "scheduled_alpha", "drop_set_similarity", "similarity_notes", "plot_accuracy", "plot_ranks",
           "plot_similarity", "plot_sweep", "plot_rewiring"]

STATIC = "static"  # the criterion (and growth "none") of static sparse training in :func:`frame`
STATIC_COLOR = color("dense")  # static sparse training's reference line in the book's reference colour
DENSE = "dense"  # the criterion (and growth "none") of the dense baseline in :func:`frame`


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
    seed_offset: int = 0
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
    dense: bool = True

    def __post_init__(self) -> None:
        self._data_fields()
        self._choice("model", models.available())
        self._ints("hidden")
        self._training_fields()
        self._int("update_period")
        self._float("weight_decay", 0)
        self._floats("densities", 0, 1, lo_open=True, hi_open=True)
        if len(set(self.densities)) != len(self.densities):
            self._fail("densities", "a list of distinct floats in (0, 1)", self.densities)
        self._choices("criteria", rdst.DROP_CRITERIA, min_len=2)
        self._choices("growths", rdst.GROWTH)
        if "magnitude" not in self.criteria:
            self._fail("criteria", "a list that includes 'magnitude' (the claims compare it with the others)",
                       self.criteria)
        if "random" not in self.growths:
            self._fail("growths", "a list that includes 'random' (DST against static uses random growth)",
                       self.growths)
        self._float("alpha", 0, 1, lo_open=True)
        self._ints("period_sweep")
        if len(set(self.period_sweep)) != len(self.period_sweep):
            self._fail("period_sweep", "a list of distinct integers >= 1", self.period_sweep)
        self._float("sweep_density", 0, 1, lo_open=True, hi_open=True)
        self._choices("sweep_criteria", rdst.DROP_CRITERIA)
        self._choice("sweep_growth", rdst.GROWTH)
        self._bool("dense")
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


def dense_config(p: Params, seed: int) -> RunConfig:
    """The dense network of the chapter's recipe: the baseline every density is read against."""
    return replace(_base(p), seed=seed)


def grids(p: Params) -> dict[str, list[RunConfig]]:
    """``dense`` (the dense baseline, when ``p.dense``), ``static`` (every density), ``criteria`` (growth x drop
    criterion x density) and ``sweep`` (update periods at ``sweep_density``, plus its static runs), each for every
    seed."""
    seeds = p.seed_list
    return {
        "dense": [dense_config(p, s) for s in seeds] if p.dense else [],
        "static": [config(p, d, s) for d in p.densities for s in seeds],
        "criteria": [config(p, d, s, c, g) for g in p.growths for c in p.criteria for d in p.densities for s in seeds],
        "sweep": ([config(p, p.sweep_density, s, c, p.sweep_growth, period) for period in p.period_sweep
                   for c in p.sweep_criteria for s in seeds] + [config(p, p.sweep_density, s) for s in seeds]),
    }


def grid(p: Params) -> list[RunConfig]:
    """The distinct configs of :func:`grids` (runs shared between grids once), in order."""
    return list({c.hash: c for cfgs in grids(p).values() for c in cfgs}.values())


# --------------------------------------------------------------------------- runs and the frame


def run(configs: list[RunConfig], root: str) -> dict:
    """Train the ``configs`` (those not finished in the store ``root``; the others are read): ``{hash: Result}``."""
    from ..grid import run_grid

    return {r.config.hash: r for r in run_grid(configs, root=root)}


def frame(results: dict) -> pd.DataFrame:
    """One row per run: the flat config and metrics plus ``seed``, ``density``, ``criterion`` (``static`` for
    static training, ``dense`` for the dense baseline), ``growth`` (``none`` for both), ``update_period`` (0 for
    both) and ``accuracy`` (final test accuracy in percent)."""
    from ..grid import to_frame

    df = to_frame(list(results.values()))
    static = df["dst.drop"] == "none"
    dense = df["sparsity.method"] == "dense"
    criterion = df["dst.drop"].where(~static, STATIC).where(~dense, DENSE)
    return df.assign(density=df["sparsity.density"].astype(float).where(~dense, 1.0), criterion=criterion,
                     growth=df["dst.grow"].where(~static, "none"),
                     update_period=df["dst.update_period"].where(~static, 0).astype(int),
                     accuracy=100.0 * df["test_accuracy"])


def grid_note(p: Params) -> str:
    """The grid of these parameters in one Markdown sentence (seeds, criteria, growths, densities, Delta T, epochs,
    the sweep and the dense baseline), computed from ``p`` so that the prose never cites a stale number."""
    seeds = f"{p.seeds} seed{'s' if p.seeds > 1 else ''} (from seed {p.seed_offset})"
    crit = ", ".join(f"`{c}`" for c in p.criteria)
    sweep = ", ".join(map(str, p.period_sweep))
    return (f"{seeds}; {len(p.criteria)} drop criteria ({crit}) with {' and '.join(p.growths)} growth; densities "
            f"{', '.join(f'{d:g}' for d in p.densities)}; $\\Delta T$ = {p.update_period}; {p.epochs} epochs on "
            f"{p.num_samples} {p.dataset} examples; the sweep runs {', '.join(f'`{c}`' for c in p.sweep_criteria)} "
            f"with {p.sweep_growth} growth at $d$ = {p.sweep_density:g} for $\\Delta T$ in {{{sweep}}}; "
            + ("the dense network once per seed" if p.dense else "no dense baseline"))


def schedule_note(p: Params) -> str:
    """Steps per epoch, the total steps T and the number of mask updates for each update period."""
    bundle = rdata.load(config(p, p.densities[0], 0).data)
    n_train = bundle.num_examples("train")
    steps = max(1, n_train // p.batch_size) * p.epochs  # full batches only, as the trainer
    periods = sorted({p.update_period, *p.period_sweep})
    updates = ", ".join(f"{(steps - 1) // t} for Delta T = {t}" for t in periods)
    note = f"{p.dataset}: {n_train} training examples, T = {steps} optimizer steps; mask updates: {updates}"
    never = [t for t in periods if (steps - 1) // t == 0]
    if never:
        note += (f"\nnote: Delta T = {never} leaves no mask update in T = {steps} steps; such runs train their "
                 "initial mask unchanged, as static training does")
    return note


def _dst(frame: pd.DataFrame, p: Params) -> pd.DataFrame:
    """The criteria grid's DST rows: every growth, drop criterion and density of ``p`` at ``update_period``."""
    rows = frame[(frame.criterion != STATIC) & (frame.update_period == p.update_period)]
    return rows[rows.criterion.isin(p.criteria) & rows.growth.isin(p.growths) & rows.density.isin(p.densities)]


def _ordered(rows: pd.DataFrame, p: Params) -> pd.DataFrame:
    """Rows sorted as the parameters list them: static first, then growth, criterion, density and seed."""
    order = {"growth": ["none", *p.growths], "criterion": [STATIC, *p.criteria]}
    return rows.sort_values(["growth", "criterion", "density", "seed"],
                            key=lambda c: c.map({v: i for i, v in enumerate(order[c.name])}) if c.name in order else c)


# --------------------------------------------------------------------------- the claims' effects


def _seed_table(rows: pd.DataFrame, by: str, levels: list, value: str = "accuracy") -> pd.DataFrame:
    """``seed x level`` table of ``value``; every level must pair with the first one on every seed (``paired``'s
    checks: a missing or duplicated seed is an error)."""
    for level in levels:
        paired(rows, by, level, levels[0], value)
    return rows[rows[by].isin(levels)].pivot(index="seed", columns=by, values=value)[list(levels)]


CLAIM_IDS = ("drop_criteria_alike", "magnitude_best_low_density", "dst_beats_static")


def setting_effects(frame: pd.DataFrame, p: Params, held_out: bool = False) -> pd.DataFrame:
    """The chapter's per-seed effects per setting, in points: columns ``claim``, ``growth``, ``density``,
    ``seed``, ``effect``.

    * ``drop_criteria_alike``: for every growth criterion and density, the seed's best minus its median
      drop criterion (over ``p.criteria``);
    * ``magnitude_best_low_density``: for every growth criterion at the lowest density, magnitude minus the
      other drop criterion with the highest mean accuracy over seeds (a paired difference, seed by seed);
    * ``dst_beats_static``: at every density, DST with magnitude drop and random growth minus static
      training of the same seed (the same initial mask).

    These are the declared rules. Both criteria claims choose criteria on the seeds they score, which lets
    a seed's noise make a criterion look best: the best-minus-median lead is positive even among alike
    criteria, and magnitude's rival is favoured. ``held_out=True`` is the check of that bias: each seed is
    scored on the best, median or rival criterion chosen by the mean over the *other* seeds
    (:func:`rplib.claims.held_out_picks`); ``dst_beats_static`` chooses nothing and is the same.
    """
    dyn = _dst(frame, p)
    parts = []

    def add(claim: str, growth: str, density: float, effect: pd.Series) -> None:
        parts.append(pd.DataFrame({"claim": claim, "growth": growth, "density": density,
                                   "seed": effect.index.to_numpy(), "effect": effect.to_numpy(dtype=float)}))

    alike, best = [], []
    for g in p.growths:
        for d in p.densities:
            acc = _seed_table(dyn[(dyn.growth == g) & (dyn.density == d)], "criterion", list(p.criteria))
            if held_out:
                alike.append((g, d, held_out_mean(acc, best_level) - held_out_mean(acc, median_levels)))
            else:
                alike.append((g, d, acc.max(axis=1) - acc.median(axis=1)))
            if d == p.densities[0]:
                others = acc.drop(columns="magnitude")  # the rival: the best other criterion by its mean over seeds
                rival = held_out_mean(others, best_level) if held_out else others[others.mean().idxmax()]
                best.append((g, d, acc["magnitude"] - rival))
    for args in alike:
        add("drop_criteria_alike", *args)
    for args in best:
        add("magnitude_best_low_density", *args)
    mag = (frame.criterion == "magnitude") & (frame.growth == "random") & (frame.update_period == p.update_period)
    for d in p.densities:
        rows = frame[(frame.density == d) & (mag | (frame.criterion == STATIC))]
        add("dst_beats_static", "random", d, paired(rows, "criterion", "magnitude", STATIC, "accuracy"))
    return pd.concat(parts, ignore_index=True)


#: Criteria whose score ranks the weights exactly as another criterion's does (the same drop set at every
#: update): snip scores |w g|, taylor_fo (w g)^2, so they are one criterion and only snip is a rival.
SAME_RANKING = {"taylor_fo": "snip"}


def rivals(p: Params) -> list[str]:
    """The drop criteria rules version 2 compares with magnitude: every distinct criterion of ``p`` but magnitude."""
    return [c for c in p.criteria if c != "magnitude" and SAME_RANKING.get(c) not in p.criteria]


def rival_effects(frame: pd.DataFrame, p: Params, densities: Sequence[float] | None = None) -> pd.DataFrame:
    """Seeds x rivals table of magnitude - rival test accuracy (points), paired by seed, averaged per seed over
    the growth criteria and ``densities`` (default: all of the grid's): the effect of the version-2 criteria claims."""
    if "magnitude" not in p.criteria:
        raise ValueError(f"the criteria claims compare every criterion with magnitude; criteria {p.criteria} lack it")
    dyn = _dst(frame, p)
    parts = []
    for g in p.growths:
        for d in (p.densities if densities is None else densities):
            acc = _seed_table(dyn[(dyn.growth == g) & (dyn.density == d)], "criterion", list(p.criteria))
            parts.append(acc[["magnitude"]].to_numpy() - acc[rivals(p)])
    return (sum(parts) / len(parts)).rename_axis("seed").rename_axis("rival", axis=1)


def claim_effects(frame: pd.DataFrame, p: Params, held_out: bool = False) -> dict[str, pd.Series | pd.DataFrame]:
    """The effects :func:`rplib.claims.decide` takes for the chapter's claims under rules version 2:
    ``drop_criteria_alike`` a seeds x rivals table of magnitude - rival over every growth criterion and density,
    ``magnitude_best_low_density`` the same at the lowest density (nothing is chosen on the scored seeds),
    ``dst_beats_static`` the per-seed mean over densities of DST - static. ``held_out`` gives the version-1
    effects of :func:`setting_effects` with the choices held out (a descriptive check)."""
    long = setting_effects(frame, p, held_out)
    out: dict[str, pd.Series | pd.DataFrame] = {}
    for claim in CLAIM_IDS:
        wide = long[long.claim == claim].pivot(index="seed", columns=["growth", "density"], values="effect")
        missing = (f"{claim}: seed(s) {{seeds}} lack (growth, density) settings that other seeds have; "
                   "the per-seed mean needs every setting for every seed")
        out[claim] = mean_over_cases(wide, missing).rename(claim)
    if not held_out:
        out["drop_criteria_alike"] = rival_effects(frame, p)
        out["magnitude_best_low_density"] = rival_effects(frame, p, [p.densities[0]])
    return out


def claim_verdicts(frame: pd.DataFrame, p: Params) -> list:
    """The chapter's verdicts under rules version 2, each with its cases: every rival of the criteria claims,
    every density of ``dst_beats_static``."""
    from ..claims import CLAIMS, decide

    effects = claim_effects(frame, p)
    long = setting_effects(frame, p)
    dst = long[long.claim == "dst_beats_static"].pivot(index="seed", columns="density", values="effect")
    dst.columns = [f"d = {d:g}" for d in dst.columns]
    return [decide(CLAIMS["drop_criteria_alike"], effects["drop_criteria_alike"]),
            decide(CLAIMS["magnitude_best_low_density"], effects["magnitude_best_low_density"]),
            decide(CLAIMS["dst_beats_static"], effects["dst_beats_static"], cases=dst)]


def effect_table(frame: pd.DataFrame, p: Params) -> pd.DataFrame:
    """The claims' effects per setting, ``mean [95% CI]`` over seeds (points)."""
    t = mean_ci_table(setting_effects(frame, p), ["claim", "growth", "density"], "effect")
    t.columns = ["effect (points), mean [95% CI]"]
    return t


# --------------------------------------------------------------------------- descriptive tables


def accuracy_table(frame: pd.DataFrame, p: Params) -> pd.DataFrame:
    """Final test accuracy (%), ``mean [95% CI]`` over seeds: static and every (growth, drop criterion) x density."""
    static = frame[(frame.criterion == STATIC) & frame.density.isin(p.densities)]
    t = mean_ci_table(_ordered(pd.concat([static, _dst(frame, p)]), p), ["growth", "criterion"], "accuracy",
                      columns="density")
    dense = frame.loc[frame.criterion == DENSE, "accuracy"]
    if len(dense):  # the dense baseline, the same in every density's column
        t.loc[("none", f"{DENSE} (d = 1)"), :] = mean_ci(dense)
    t.columns.name = "density d: test accuracy (%)"
    return t


def chance_table(frame: pd.DataFrame, p: Params) -> pd.DataFrame:
    """Every run group of the criteria grid (static and each growth x drop criterion x density) and the dense
    baseline whose test accuracy is near chance (:func:`rplib.regime.near_chance`: the upper end of its 95%
    interval within 10 points of ``100 / num_classes``): ``mean [95% CI]`` and the chance level; empty when none is."""
    from ..data import input_spec
    from ..regime import chance_level, near_chance

    num_classes = input_spec(_base(p).data)[1]
    rows = pd.concat([frame[frame.criterion == DENSE],
                      _ordered(pd.concat([frame[(frame.criterion == STATIC) & frame.density.isin(p.densities)],
                                          _dst(frame, p)]), p)])
    out = [{"growth": g, "criterion": c, "density": d, "test accuracy (%)": mean_ci(r.accuracy),
            "chance (%)": round(chance_level(num_classes), 3)}
           for (g, c, d), r in rows.groupby(["growth", "criterion", "density"], sort=False)
           if near_chance(r.accuracy, num_classes)]
    return pd.DataFrame(out, columns=["growth", "criterion", "density", "test accuracy (%)", "chance (%)"]).set_index(
        ["growth", "criterion", "density"])


def chance_note(chance: pd.DataFrame) -> str:
    """One line naming the settings of :func:`chance_table` (Markdown-safe), or saying that none is near chance."""
    if chance.empty:
        return "no criterion, density or growth trains near chance"
    parts = [f"{c} ({g} growth, d = {d:g})" if g != "none" else f"{c} (d = {d:g})" for g, c, d in chance.index]
    return f"near chance: {', '.join(parts)}"


def network_name(p: Params) -> str:
    """The chapter's network as its tables name it: ``mlp 300-100``."""
    return f"{p.model} {'-'.join(map(str, p.hidden))}" if p.model == "mlp" else p.model


def length_configs(p: Params) -> dict[str, list[RunConfig]]:
    """The runs the training-length check lengthens (:func:`rplib.regime.length_configs`): the dense baseline's runs."""
    from ..regime import length_configs as lengthen

    return lengthen([dense_config(p, seed) for seed in p.seed_list], lambda c: network_name(p))


def regime(p: Params, frame: pd.DataFrame | None = None, length: pd.DataFrame | None = None) -> Regime:
    """The regime of the chapter's claims (:mod:`rplib.regime`): the network at the criteria grid's densities; with
    ``frame`` the dense baseline's test accuracy and the settings that train near chance (:func:`chance_note`)."""
    from ..data import input_spec
    from ..regime import regime as make

    dense = notes = None
    if frame is not None:
        dense = frame[frame.criterion == DENSE].assign(network=network_name(p)).rename(columns={"accuracy": "acc"})
        chance = chance_table(frame, p)
        notes = [chance_note(chance)] if not chance.empty else []
    return make(Params.CHAPTER, p.dataset, input_spec(_base(p).data)[1], [network_name(p)], p.epochs, p.densities,
                dense, notes or (), length, dense_runs=p.dense)


def gain_table(frame: pd.DataFrame, p: Params) -> pd.DataFrame:
    """Per-seed paired DST - static test accuracy (points), ``mean [95% CI]``, per (growth, criterion) x density."""
    dyn, static = _dst(frame, p), frame[frame.criterion == STATIC]
    parts = []
    for (g, c, d), rows in _ordered(dyn, p).groupby(["growth", "criterion", "density"], sort=False):
        diff = paired(pd.concat([rows, static[static.density == d]]), "criterion", c, STATIC, "accuracy")
        parts.append(pd.DataFrame({"growth": g, "criterion": c, "density": d, "gain": diff.to_numpy()}))
    t = mean_ci_table(pd.concat(parts), ["growth", "criterion"], "gain", columns="density")
    t.columns.name = "density d: DST - static (points)"
    return t


def _sweep_rows(frame: pd.DataFrame, p: Params) -> pd.DataFrame:
    rows = frame[(frame.density == p.sweep_density) & (frame.criterion != STATIC) & (frame.growth == p.sweep_growth)]
    return rows[rows.criterion.isin(p.sweep_criteria) & rows.update_period.isin(p.period_sweep)]


def sweep_table(frame: pd.DataFrame, p: Params) -> pd.DataFrame:
    """The update-period sweep per criterion and Delta T: mask updates, test accuracy and ITOP rate (%),
    ``mean [95% CI]`` over seeds."""
    rows = _sweep_rows(frame, p).sort_values(["update_period", "seed"])
    rows = rows.assign(itop=100.0 * rows["dst.itop_rate"], **{"Delta T": rows.update_period})
    t = pd.concat([mean_ci_table(rows, ["criterion", "Delta T"], "accuracy"),
                   mean_ci_table(rows, ["criterion", "Delta T"], "itop")], axis=1)
    t.columns = ["test accuracy (%)", "ITOP rate (%)"]
    t.insert(0, "mask updates", rows.groupby(["criterion", "Delta T"])["dst.n_updates"].first().astype(int))
    order = [c for c in p.sweep_criteria if c in t.index.get_level_values("criterion")]
    return t.reindex(order, level="criterion")


def _negative_share(result) -> float:
    """Share of negative weights among the active weights of the sparse layers of a run's final network."""
    import torch

    ckpt = torch.load(result.path / "checkpoint.pt", map_location="cpu", weights_only=True)
    active = [ckpt["model"][k][m] for k, m in ckpt["mask"].items() if 0 < int(m.sum()) < m.numel()]
    return sum(int((w < 0).sum()) for w in active) / sum(w.numel() for w in active)


SET_VARIANTS = ("set", "set_as_released")


def rewiring_table(results: dict, frame: pd.DataFrame, p: Params) -> pd.DataFrame | None:
    """``set`` against ``set_as_released`` (and static): the share of active weights replaced per update and
    the share of negative active weights at the end (%), ``mean [95% CI]``; None unless both are criteria."""
    if not set(SET_VARIANTS) <= set(p.criteria):
        return None
    dyn = _dst(frame, p)
    rows = dyn[dyn.criterion.isin(SET_VARIANTS)]
    static = frame[(frame.criterion == STATIC) & frame.density.isin(p.densities)]
    static = pd.concat([static.assign(growth=g) for g in p.growths])  # the same static runs next to every growth
    negative = pd.concat([rows, static])
    long = pd.concat([rows.assign(quantity="replaced per update (%)", value=100.0 * rows["dst.mean_changed"]),
                      negative.assign(quantity="negative at the end (%)",
                                      value=100.0 * negative["hash"].map(lambda h: _negative_share(results[h])))])
    long = long.assign(criterion=pd.Categorical(long.criterion, [*SET_VARIANTS, STATIC]))
    t = mean_ci_table(long.sort_values(["criterion"], kind="stable"), ["quantity", "growth", "density"], "value",
                      columns="criterion").fillna("")
    t.columns = list(t.columns)
    return t


def scheduled_alpha(results: dict, p: Params) -> float:
    """Mean of alpha(t) over the mask updates at ``update_period`` (the same schedule for every run)."""
    r = results[config(p, p.densities[0], p.seed_offset, "magnitude", "random").hash]
    alphas = [u["alpha"] for u in json.loads((r.path / "dst_log.json").read_text())]
    return float(np.mean(alphas)) if alphas else float("nan")


def drop_set_similarity(results: dict, p: Params) -> pd.DataFrame:
    """Jaccard similarity of the drop sets every pair of criteria picks from one trained network (magnitude
    drop, first growth criterion, lowest density, first seed) and one batch's gradient, ``k = ceil(alpha_0 n)``
    per layer, averaged over the sparse layers."""
    import torch

    from ..masks import Mask

    probe = results[config(p, p.densities[0], p.seed_offset, "magnitude", p.growths[0]).hash]
    bundle = rdata.load(probe.config.data)
    ckpt = torch.load(probe.path / "checkpoint.pt", map_location="cpu", weights_only=True)
    net = models.build(p.model, bundle.num_classes, in_shape=bundle.in_shape, **probe.config.model.options())
    net.load_state_dict(ckpt["model"])
    net.train()  # gradients as during training (batch statistics in normalisation layers)
    x, y = next(bundle.batches("train", p.batch_size))
    torch.nn.functional.cross_entropy(net(x), y).backward()
    pairs = rdst.compare_criteria(net, Mask(ckpt["mask"]), p.criteria, alpha=p.alpha, seed=0)
    names = pd.Index(p.criteria, name="drop criterion")
    sim = pd.DataFrame(np.eye(len(p.criteria)), index=names, columns=names)
    for (a, b), v in pairs.items():
        sim.loc[a, b] = sim.loc[b, a] = v
    return sim


def similarity_notes(similarity: pd.DataFrame, p: Params) -> dict[str, str]:
    """Markdown snippets for the prose: the most and least similar pair of *distinct* criteria (a criterion that
    ranks weights exactly as another, :data:`SAME_RANKING`, is left out when its twin is there), the no-agreement
    level alpha_0 / (2 - alpha_0) of two independent random drop sets, and how many of the distinct pairs lie above
    it (pairs without a value, e.g. a criterion that dropped nothing, are left out and counted)."""
    keep = [c for c in similarity.index if SAME_RANKING.get(c) not in similarity.index]
    similarity = similarity.loc[keep, keep]
    pairs = pd.Series({(a, b): similarity.loc[a, b] for i, a in enumerate(keep) for b in keep[i + 1:]}, dtype=float)
    undefined = int(pairs.isna().sum())
    pairs = pairs.dropna().sort_values(ascending=False)
    chance = p.alpha / (2 - p.alpha)
    (a, b), (c, d) = pairs.index[0], pairs.index[-1]
    return {"sim_closest": f"`{a}` and `{b}` ({pairs.iloc[0]:.2f})",
            "sim_farthest": f"`{c}` and `{d}` ({pairs.iloc[-1]:.2f})",
            "sim_chance": f"{chance:.2f}",
            "sim_above_chance": f"{int((pairs > chance).sum())} of {len(pairs)}"
                                + (f" (and {undefined} without a value)" if undefined else "")}


# --------------------------------------------------------------------------- figures


def _density_axis(ax: plt.Axes, densities: list) -> None:
    ax.set_xscale("log")
    ax.set_xticks(densities, [f"{d:g}" for d in densities])
    ax.minorticks_off()


def plot_accuracy(frame: pd.DataFrame, p: Params) -> plt.Figure:
    """Final test accuracy (%) against density, one panel per growth criterion, static in every panel and the dense
    baseline as a dotted line with its 95% band; means over seeds with 95% t-intervals."""
    from ..claims import mean_interval

    static = frame[(frame.criterion == STATIC) & frame.density.isin(p.densities)]
    dense = frame.loc[frame.criterion == DENSE, "accuracy"]
    dyn = _ordered(_dst(frame, p), p)
    names = [STATIC, *p.criteria]  # dodged: each criterion's points sit slightly apart on the log axis
    shift = {c: np.exp(0.025 * (i - (len(names) - 1) / 2)) for i, c in enumerate(names)}
    static, dyn = (t.assign(x=t.density * t.criterion.map(shift)) for t in (static, dyn))
    ncols = min(2, len(p.growths))
    nrows = -(-len(p.growths) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.5 * ncols, 3.4 * nrows + 1.0), sharey=True, squeeze=False)
    for ax, g in zip(axes.flat, p.growths):
        errorbar_plot(static, x="x", y="accuracy", hue="criterion", ax=ax, err="ci95", color=STATIC_COLOR)
        errorbar_plot(dyn[dyn.growth == g], x="x", y="accuracy", hue="criterion", ax=ax, err="ci95")
        if len(dense):
            mean, low, high = mean_interval(dense)
            ax.axhline(mean, color="black", linestyle=":", linewidth=1.2, label=DENSE)
            if high > low:
                ax.axhspan(low, high, color="black", alpha=0.08, linewidth=0)
        _density_axis(ax, p.densities)
        ax.set_title(f"{g} growth")
        ax.set_xlabel("density d")
        ax.set_ylabel("test accuracy (%)" if ax in axes[:, 0] else "")
    for ax in axes.flat[len(p.growths):]:
        ax.set_visible(False)
    figure_legend(fig, title="drop criterion")
    return fig


def plot_ranks(frame: pd.DataFrame, p: Params) -> plt.Figure:
    """Mean rank over seeds of every drop criterion (1 = best) within growth, density and seed."""
    dyn = _dst(frame, p)
    ranked = dyn.assign(rank=dyn.groupby(["growth", "density", "seed"]).accuracy.rank(ascending=False,
                                                                                       method="average"))
    mean_rank = ranked.groupby(["growth", "criterion", "density"])["rank"].mean()
    fig, axes = plt.subplots(1, len(p.growths), squeeze=False,
                             figsize=(min(9.0, (0.6 * len(p.densities) + 3.6) * len(p.growths)),
                                      0.35 * len(p.criteria) + 1.8))
    for ax, g in zip(axes[0], p.growths):
        t = mean_rank.loc[g].unstack("density").reindex(p.criteria)
        t.index.name, t.columns.name = "drop criterion", "density"
        heatmap(t, ax=ax, fmt="{:.1f}", vmin=1, vmax=len(p.criteria), cbar_label="mean rank (1 = best)")
        ax.set_title(f"{g} growth")
        if g != p.growths[0]:
            ax.set_ylabel("")
    return fig


def plot_similarity(similarity: pd.DataFrame, p: Params) -> plt.Figure:
    """The drop-set similarity of :func:`drop_set_similarity` as a heat map."""
    n = len(similarity)
    fig, ax = plt.subplots(figsize=(min(9.0, 0.55 * n + 3.2), 0.45 * n + 1.4))
    heatmap(similarity, ax=ax, fmt="{:.2f}", vmin=0, vmax=1, cbar_label="Jaccard similarity of drop sets")
    return fig


def plot_sweep(frame: pd.DataFrame, p: Params) -> plt.Figure:
    """Test accuracy (%) against the update period at ``sweep_density``; the horizontal line is static training."""
    rows = _sweep_rows(frame, p)
    static = frame[(frame.criterion == STATIC) & (frame.density == p.sweep_density)]
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    errorbar_plot(rows, x="update_period", y="accuracy", hue="criterion", ax=ax, err="ci95")
    ax.axhline(static.accuracy.mean(), color=STATIC_COLOR, linestyle=linestyle(STATIC), label=STATIC)
    ax.set_xscale("log")
    ax.set_xticks(p.period_sweep, [str(t) for t in p.period_sweep])
    ax.minorticks_off()
    ax.set_xlabel("update period Delta T (optimizer steps)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"d = {p.sweep_density:g}, {p.sweep_growth} growth")
    figure_legend(fig, title="drop criterion")
    return fig


def plot_rewiring(results: dict, p: Params) -> plt.Figure | None:
    """Share of active weights replaced at every update (%) by ``set`` and ``set_as_released`` (first seed, lowest
    density, first growth criterion) next to the scheduled alpha(t); None unless both are criteria."""
    if not set(SET_VARIANTS) <= set(p.criteria):
        return None
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    for c, marker in zip(SET_VARIANTS, "os"):
        log = json.loads((results[config(p, p.densities[0], p.seed_offset, c, p.growths[0]).hash].path / "dst_log.json")
                         .read_text())
        ax.plot([u["step"] for u in log], [100 * u["changed_total"] for u in log], label=c, color=color(c),
                linestyle=linestyle(c), marker=marker)
    ax.plot([u["step"] for u in log], [100 * u["alpha"] for u in log], color="black", linestyle=":",
            label="alpha(t)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("active weights replaced (%)")
    ax.set_title(f"d = {p.densities[0]:g}, {p.growths[0]} growth, seed {p.seed_offset}")
    figure_legend(fig)
    return fig
