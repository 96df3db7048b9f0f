"""Chapter 04, sanity checks for pruning at initialisation: parameters, the labelled run grid, the chapter's
frame, its claims' paired effects, tables and figures."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import models, train
from ..claims import mean_interval, mean_over_cases
from ..config import ModelConfig, OptimConfig, RunConfig, SparsityConfig
from ..sparsity import layerwise_densities
from ..data import input_spec
from ._common import data_config
from ._params import ChapterParams

if TYPE_CHECKING:  # matplotlib is imported by the functions that draw, so that planning a grid does not load it
    import matplotlib.pyplot as plt

    from ..regime import Regime

__all__ = ["Params", "METHODS", "SANITY", "PRUNE_DATA", "NAMES", "PAI", "CORRUPTED", "TICKETS", "CHECKS", "CLAIM_IDS",
           "variants", "model_configs", "classifier_shares", "labelled_grid", "grid", "grid_note", "pretraining_config",
           "pretraining_configs", "build_frame", "case_effects", "claim_effects", "claim_verdicts", "check_table",
           "regime", "accuracy_table", "effects_table", "best_references", "plot_accuracy", "plot_effects",
           "layer_densities", "plot_layer_densities", "largest_departures", "classifier_note"]

METHODS = ("snip", "grasp", "lottery")
SANITY = {"rearrange": "rearranged", "shuffle": "shuffled weights", "reinit": "reinitialised"}
PRUNE_DATA = {"random_labels": "random labels", "random_pixels": "random pixels", "half": "half data"}
NAMES = {"snip": "SNIP", "grasp": "GraSP", "lottery": "lottery ticket", "smart_ratio": "random ticket",
         "hybrid": "hybrid ticket", "dense": "dense"}


@dataclass(frozen=True)
class Params(ChapterParams):
    """Parameters of ``04_sanity_checks`` (defaults: the smoke profile).

    ``densities`` is stored in decreasing order; ``rewind_epoch`` is lowered to ``epochs - 1`` when it is
    not below ``epochs`` (e.g. a paper profile shrunk to one epoch), and ``rewind_lowered`` says so.
    """

    CHAPTER = "04_sanity_checks"
    dataset: str = "mnist1d"
    num_samples: int = 1000
    val_fraction: float = 0.1
    data_root: str = "../data"
    download: bool = False
    networks: list = field(default_factory=lambda: ["cnn1d"])
    widths: list = field(default_factory=lambda: [1.0])
    densities: list = field(default_factory=lambda: [0.1])
    methods: list = field(default_factory=lambda: ["snip", "grasp", "lottery"])
    sanity_checks: list = field(default_factory=lambda: ["rearrange", "shuffle", "reinit"])
    prune_data: list = field(default_factory=lambda: ["random_labels", "random_pixels", "half"])
    random_tickets: bool = True
    hybrid_tickets: bool = True
    dense: bool = True
    prune_samples_per_class: int = 10
    lottery_rounds: int = 1
    rewind_epoch: int = 1
    epochs: int = 3
    batch_size: int = 128
    lr: float = 0.1
    weight_decay: float = 0.0001
    milestones: list = field(default_factory=lambda: [0.5, 0.75])
    seeds: int = 1
    seed_offset: int = 0
    device: str = "auto"
    runs: str = "../runs"
    rewind_lowered: bool = field(default=False, init=False)  # rewind_epoch was lowered to epochs - 1

    def __post_init__(self) -> None:
        self._data_fields()
        self._float("val_fraction", 0, 1, lo_open=True, hi_open=True)
        self._choices("networks", models.available())
        self._floats("widths", 0, None, lo_open=True)
        if len(self.widths) != len(self.networks):
            self._fail("widths", f"one width per network of {self.networks}", self.widths)
        self._floats("densities", 0, 1, lo_open=True, hi_open=True)
        self._choices("methods", METHODS)
        self._choices("sanity_checks", SANITY, min_len=0)
        self._choices("prune_data", PRUNE_DATA, min_len=0)
        for name in ("random_tickets", "hybrid_tickets", "dense"):
            self._bool(name)
        for name in ("prune_samples_per_class", "lottery_rounds"):
            self._int(name)
        self._int("rewind_epoch", 0)
        self._training_fields()
        self._float("weight_decay", 0)
        self._floats("milestones", 0, None, lo_open=True, allow_empty=True)
        self._set("densities", sorted({float(d) for d in self.densities}, reverse=True))
        self._set("rewind_lowered", self.rewind_epoch >= self.epochs)
        self._set("rewind_epoch", min(self.rewind_epoch, self.epochs - 1))


def variants(p: Params) -> dict[str, dict[str, Any]]:
    """Variant label -> config changes: the original mask, each sanity check, each corrupted pruning set."""
    out: dict[str, dict[str, Any]] = {"original": {}}
    out |= {label: {"sparsity.sanity": s} for s, label in SANITY.items() if s in p.sanity_checks}
    return out | {label: {"sparsity.prune_data": c} for c, label in PRUNE_DATA.items() if c in p.prune_data}


def model_configs(p: Params) -> dict[str, ModelConfig]:
    """Network label (``name xW`` when W != 1) -> its :class:`ModelConfig`."""
    return {f"{n} x{w:g}" if w != 1 else n: ModelConfig(n, width=float(w)) for n, w in zip(p.networks, p.widths)}


def _base(p: Params) -> RunConfig:
    """The chapter's base config: ``val_fraction`` of the training set held out as the validation split the
    smart-ratio claim chooses its reference on (drawn per run with the run's seed, see :func:`labelled_grid`)."""
    data = dataclasses.replace(data_config(p.dataset, p.data_root, p.download, p.num_samples),
                               val_fraction=p.val_fraction)
    return RunConfig(data=data,
                     optim=OptimConfig(epochs=p.epochs, batch_size=p.batch_size, lr=p.lr, weight_decay=p.weight_decay,
                                       milestones=tuple(p.milestones)),
                     device=p.device)


def classifier_shares(p: Params) -> dict[str, float]:
    """Each network's classifier share of the prunable weights; builds every network on the data and, with
    random or hybrid tickets, solves the smart ratio at every density (raises if the classifier alone
    exceeds the budget) -- before any training."""
    in_shape, num_classes = input_spec(_base(p).data)
    shares = {}
    for label, m in model_configs(p).items():
        net = models.build(m.name, num_classes, in_shape=in_shape, **m.options())
        params = models.prunable_parameters(net)
        shares[label] = params[models.classifier_name(net)].numel() / sum(t.numel() for t in params.values())
        if p.random_tickets or p.hybrid_tickets:
            for d in p.densities:
                layerwise_densities(net, d, "smart_ratio")
    return shares


def labelled_grid(p: Params) -> list[tuple[dict[str, Any], RunConfig]]:
    """``(labels, config)`` per run; labels: network, density, method, variant."""
    out = []
    for net_label, model_cfg in model_configs(p).items():
        for seed in p.seed_list:
            start = _base(p).with_({"data.split_seed": seed}, model=model_cfg, seed=seed)  # the split varies too
            if p.dense:
                out.append(({"network": net_label, "density": 1.0, "method": "dense", "variant": "original"}, start))
            for d in p.densities:
                for m in p.methods:
                    sp: dict[str, Any] = {"sparsity.method": m, "sparsity.density": d}
                    if m == "lottery":
                        sp |= {"sparsity.lottery_rounds": p.lottery_rounds, "sparsity.rewind_epoch": p.rewind_epoch}
                    else:
                        sp |= {"sparsity.prune_samples_per_class": p.prune_samples_per_class}
                    for variant, change in variants(p).items():
                        if m != "lottery" or "sparsity.prune_data" not in change:
                            out.append(({"network": net_label, "density": d, "method": m, "variant": variant},
                                        start.with_(sp | change)))
                tickets = {"smart_ratio": {"sparsity.method": "random"} if p.random_tickets else None,
                           "hybrid": {"sparsity.method": "hybrid", "sparsity.rewind_epoch": p.rewind_epoch}
                           if p.hybrid_tickets else None}
                for name, sp in tickets.items():
                    if sp is not None:
                        out.append(({"network": net_label, "density": d, "method": name, "variant": "original"},
                                    start.with_(sp | {"sparsity.density": d, "sparsity.scheme": "smart_ratio"})))
    return out


def grid(p: Params) -> list[RunConfig]:
    """The configs of :func:`labelled_grid`, in order."""
    return [cfg for _, cfg in labelled_grid(p)]


def grid_note(p: Params) -> str:
    """The grid of these parameters in one Markdown sentence (networks, data, epochs, densities, seeds, the methods
    and checks, the number of runs and of the dense pre-trainings their tickets need), computed from ``p``."""
    labelled = labelled_grid(p)
    checks = [SANITY[c] for c in p.sanity_checks] + [PRUNE_DATA[c] for c in p.prune_data]
    tickets = [NAMES[t] + "s" for t, on in (("smart_ratio", p.random_tickets), ("hybrid", p.hybrid_tickets)) if on]
    pre = len(pretraining_configs([cfg for _, cfg in labelled]))
    lottery = (f"; lottery tickets in {p.lottery_rounds} round{'s' if p.lottery_rounds > 1 else ''}, rewound to "
               f"epoch {p.rewind_epoch}") if "lottery" in p.methods or p.hybrid_tickets else ""
    return (f"{' / '.join(model_configs(p))} on {p.num_samples} {p.dataset} examples for {p.epochs} epochs, at "
            f"densit{'ies' if len(p.densities) > 1 else 'y'} {', '.join(f'{d:g}' for d in p.densities)}, with "
            f"{p.seeds} seed{'s' if p.seeds > 1 else ''} from seed {p.seed_offset}: "
            f"{', '.join(NAMES[m] for m in p.methods)} under {', '.join(checks) or 'no check'} (pruning data for "
            f"SNIP and GraSP only), {' and '.join(tickets) or 'no tickets'}"
            f"{', and the dense network' if p.dense else ''} -- {len(labelled)} runs, whose tickets draw on {pre} "
            f"dense pre-training{'s' if pre != 1 else ''} (one per network and seed){lottery}")


def pretraining_config(cfg: RunConfig) -> RunConfig:
    """The dense pre-training a lottery or hybrid ticket ``cfg`` draws its mask from: the same run (network, data
    and its split, training recipe, seed) without a mask, i.e. the chapter's dense run of that network and seed.

    Lottery tickets (Frankle & Carbin 2019, with rewinding as in Frankle et al. 2020) and hybrid tickets (Su et al.
    2020) both train the dense network first and keep its weights at ``rewind_epoch``; every ticket, density and
    sanity check of one (network, seed) can take its magnitudes and rewind point from that one training. (Rounds
    after the first of an iterative lottery ticket train masked networks of their own and are not shared.)
    """
    if cfg.sparsity.method not in TICKETS:
        raise ValueError(f"pretraining_config: method {cfg.sparsity.method!r} needs no dense pre-training; "
                         f"methods that do: {', '.join(TICKETS)}")
    return train.pretraining_config(cfg)


def pretraining_configs(configs: Sequence[RunConfig]) -> dict[tuple[str, int, str], RunConfig]:
    """The distinct dense pre-trainings the tickets of ``configs`` depend on, keyed by (network, seed, hash of the
    training recipe: data, optimiser, device): one per (network, seed), however many tickets, densities and
    checks use it (:func:`pretraining_config`)."""
    out: dict[tuple[str, int, str], RunConfig] = {}
    for cfg in configs:
        if cfg.sparsity.method in TICKETS:
            dense = pretraining_config(cfg)
            out.setdefault((cfg.model.name if cfg.model.width == 1 else f"{cfg.model.name} x{cfg.model.width:g}",
                            cfg.seed, dense.hash), dense)
    return out


# -- the chapter's frame, effects, tables and figures -------------------------------------------------------------

PAI = ("snip", "grasp")  # the pruning-at-initialisation methods the claims are about
CORRUPTED = ("random_labels", "random_pixels")  # corrupted scoring data of the claim ("half" is clean, only less)
TICKETS = ("lottery", "hybrid")  # the masks drawn from a dense pre-training of the same network and seed
#: Claim id -> what it checks: a sanity check of SNIP/GraSP (``sparsity.sanity``), their pruning data
#: (``sparsity.prune_data``), a sanity check of the lottery ticket, or a comparison of two tickets.
CHECKS = {"rearrange_costs_nothing": ("sanity", ("rearrange",)), "shuffle_costs_nothing": ("sanity", ("shuffle",)),
          "corrupted_data_costs_nothing": ("prune_data", CORRUPTED),
          "half_data_costs_nothing": ("prune_data", ("half",)),
          "smart_ratio_matches_pruning": ("ticket", ("smart_ratio",)),
          "lottery_fails_sanity": ("lottery", ("rearrange", "shuffle")),
          "hybrid_beats_random_ticket": ("ticket", ("hybrid", "smart_ratio")),
          "hybrid_beats_lottery": ("ticket", ("hybrid", "lottery"))}
CLAIM_IDS = tuple(CHECKS)
_LABELS = ["network", "density", "method", "variant"]


def build_frame(grid: Sequence[tuple[dict[str, Any], RunConfig]], results: Sequence[Any]) -> pd.DataFrame:
    """One row per run: the grid's labels, ``seed``, ``acc`` (final test accuracy, %), ``val`` (final validation
    accuracy, %; NaN without a validation split), ``kept_density`` and ``hash``."""
    from ..grid import to_frame

    if len(grid) != len(results):
        raise ValueError(f"build_frame: {len(grid)} grid entries but {len(results)} results")
    runs = to_frame(results)
    frame = pd.DataFrame([labels for labels, _ in grid])
    frame["seed"] = [cfg.seed for _, cfg in grid]
    frame["acc"] = 100 * runs["test_accuracy"].to_numpy(dtype=float)
    frame["val"] = 100 * (runs["val_accuracy"].to_numpy(dtype=float) if "val_accuracy" in runs else np.nan)
    frame["kept_density"] = runs["density"].to_numpy(dtype=float)  # the mask's measured density
    frame["hash"] = runs["hash"].to_numpy()
    return frame


def case_effects(frame: pd.DataFrame, p: Params, held_out: bool = False) -> pd.DataFrame:
    """Per-case, per-seed paired differences (points) behind the chapter's claims.

    One row per (claim, network, density, case, seed) with the ``effect``, and the ``method`` and
    ``reference`` of the case (:data:`CHECKS`). Cases: each SNIP/GraSP mask rearranged, or with its weights
    shuffled, minus the original mask (``rearrange_costs_nothing``, ``shuffle_costs_nothing``); each SNIP/GraSP
    mask scored on random labels or random pixels, or on half the data, minus the mask scored on the clean,
    whole batch (``corrupted_data_costs_nothing``, ``half_data_costs_nothing``); the lottery ticket rearranged
    or shuffled minus the original ticket (``lottery_fails_sanity``); the hybrid ticket minus the random ticket
    and minus the lottery ticket (``hybrid_beats_random_ticket``, ``hybrid_beats_lottery``); the random ticket
    (smart ratio) minus the better of SNIP and GraSP at that network and density, "better" by mean *validation*
    accuracy over seeds, never test accuracy (``smart_ratio_matches_pruning``; the ``reference`` column says
    which). Pairs are matched by seed with :func:`rplib.claims.paired`, so a seed missing on one side is an
    error; the cases come from ``p``, so a missing case is one too.

    That is the rule of version 2. ``held_out=True`` makes each seed's choice by the mean validation
    accuracy over the *other* seeds (:func:`rplib.claims.held_out_picks`), a descriptive check.
    """
    from ..claims import best_level, held_out_picks, paired

    missing = [c for c in [*_LABELS, "seed", "acc"] if c not in frame.columns]
    if missing:
        raise ValueError(f"case_effects: the frame lacks column(s) {missing}")
    pai = [m for m in PAI if m in p.methods]
    checks = []  # (claim, method, variant): each variant of a method paired with its original mask
    for claim, (kind, names) in CHECKS.items():
        if kind in ("sanity", "prune_data"):
            labels = SANITY if kind == "sanity" else PRUNE_DATA
            chosen = p.sanity_checks if kind == "sanity" else p.prune_data
            checks += [(claim, m, labels[n]) for m in pai for n in names if n in chosen]
        elif kind == "lottery" and "lottery" in p.methods:
            checks += [(claim, "lottery", SANITY[n]) for n in names if n in p.sanity_checks]
    rows = []

    def add(claim: str, net: str, d: float, method: str, case: str, reference: str | dict, effect: pd.Series) -> None:
        rows.extend({"claim": claim, "network": net, "density": d, "method": method, "case": case,
                     "reference": reference if isinstance(reference, str) else reference[seed], "seed": seed,
                     "effect": float(v)} for seed, v in effect.items())

    for net in model_configs(p):
        for d in p.densities:
            here = frame[(frame.network == net) & (frame.density == d)]
            for claim, m, variant in checks:
                add(claim, net, d, m, f"{NAMES[m]}, {variant}", "original",
                    paired(here[here.method == m], "variant", variant, "original", "acc"))
            original = here[here.variant == "original"]
            ran = {"smart_ratio": p.random_tickets, "lottery": "lottery" in p.methods}
            for claim, other in (("hybrid_beats_random_ticket", "smart_ratio"), ("hybrid_beats_lottery", "lottery")):
                if p.hybrid_tickets and ran[other]:
                    add(claim, net, d, "hybrid", f"hybrid ticket - {NAMES[other]}", other,
                        paired(original, "method", "hybrid", other, "acc"))
            if p.random_tickets and pai:
                gaps = {m: paired(original, "method", "smart_ratio", m, "acc") for m in pai}  # checks the pairs
                table = pd.DataFrame({m: original[original.method == m].set_index("seed")["val"] for m in pai})
                if table.isna().any().any():
                    raise ValueError("case_effects: the smart-ratio claim chooses SNIP or GraSP on validation accuracy; "
                                     "the runs have no validation split (set val_fraction > 0)")
                picks = held_out_picks(table, best_level) if held_out else dict.fromkeys(table.index,
                                                                                          best_level(table.mean()))
                best = {seed: levels[0] for seed, levels in picks.items()}
                add("smart_ratio_matches_pruning", net, d, "smart_ratio", "random ticket - best of SNIP/GraSP", best,
                    pd.Series({seed: gaps[m][seed] for seed, m in best.items()}))
    columns = ["claim", "network", "density", "method", "case", "reference", "seed", "effect"]
    out = pd.DataFrame(rows, columns=columns)
    return out.sort_values("claim", key=lambda c: c.map(CLAIM_IDS.index), kind="stable").reset_index(drop=True)


def claim_effects(frame: pd.DataFrame, p: Params, held_out: bool = False) -> dict[str, pd.Series]:
    """Claim id -> its per-seed effect (index: seed): the mean over the claim's cases of :func:`case_effects`
    (``held_out`` as there).

    Every case of a claim must cover the same seeds (each case is already paired by seed).
    """
    cases = case_effects(frame, p, held_out)
    out = {}
    for claim in CLAIM_IDS:
        c = cases[cases.claim == claim]
        if c.empty:
            continue
        table = c.pivot(index="seed", columns=["network", "density", "case"], values="effect")
        out[claim] = mean_over_cases(table, f"claim_effects: seeds {{seeds}} lack cases of {claim!r} that other "
                                            "seeds have").rename(claim)
    return out


def claim_verdicts(frame: pd.DataFrame, p: Params) -> list:
    """The chapter's verdicts, each pooled over its cases (:func:`claim_effects`) with every case's own verdict
    (network, density, case) beside it."""
    from ..claims import CLAIMS, decide_cases

    cases = case_effects(frame, p)
    out = []
    for claim in CLAIM_IDS:
        c = cases[cases.claim == claim]
        if c.empty:
            continue
        table = c.pivot(index="seed", columns=["network", "density", "case"], values="effect")
        table.columns = [f"{net}, d = {d:g}, {case}" for net, d, case in table.columns]
        out.append(decide_cases(CLAIMS[claim], table, f"claim_verdicts: seeds {{seeds}} lack cases of {claim!r} "
                                                      "that other seeds have"))
    return out


def check_table(frame: pd.DataFrame, p: Params) -> pd.DataFrame:
    """Every check side by side: one row per (network,) density and method -- SNIP, GraSP, the lottery ticket, the
    random and the hybrid ticket -- with the original mask's test accuracy (%) and, per check, the paired difference
    check - original mask of the same seed (points), ``mean [95% CI]`` over seeds; empty where a check was not run
    or does not apply (a ticket has no pruning data)."""
    from ..claims import paired
    from ..plotting import mean_ci

    rows = []
    for net in model_configs(p):
        for d in p.densities:
            here = frame[(frame.network == net) & (frame.density == d)]
            for m in [*METHODS, "smart_ratio", "hybrid"]:
                own = here[here.method == m]
                if own.empty:
                    continue
                row = {"network": net, "density": d, "method": NAMES[m],
                       "original: accuracy (%)": mean_ci(own[own.variant == "original"].acc)}
                for v in list(variants(p))[1:]:
                    row[f"{v} - original"] = (mean_ci(paired(own, "variant", v, "original", "acc"))
                                              if (own.variant == v).any() else "")
                rows.append(row)
    table = pd.DataFrame(rows).set_index(["network", "density", "method"])
    return table.droplevel("network") if len(p.networks) == 1 else table


def length_configs(p: Params) -> dict[str, list[RunConfig]]:
    """The runs the training-length check lengthens (:func:`rplib.regime.length_configs`): every network's dense runs (its first mask's without ``dense``)."""
    from ..regime import length_configs as lengthen

    labels = {(m.name, m.width): label for label, m in model_configs(p).items()}
    return lengthen(grid(p), lambda c: labels[c.model.name, c.model.width])


def regime(p: Params, frame: pd.DataFrame | None = None, length: pd.DataFrame | None = None) -> Regime:
    """The regime of the chapter's claims (:mod:`rplib.regime`): every network at every density; with ``frame``
    (:func:`build_frame`) the dense networks' test accuracy."""
    from ..regime import regime as make

    dense = None if frame is None else frame[frame.method == "dense"]
    notes = [f"lottery tickets in {p.lottery_rounds} round{'s' if p.lottery_rounds > 1 else ''}, rewound to epoch "
             f"{p.rewind_epoch}"] if "lottery" in p.methods or p.hybrid_tickets else []
    return make(Params.CHAPTER, p.dataset, input_spec(_base(p).data)[1], list(model_configs(p)), p.epochs,
                p.densities, dense, notes, length, dense_runs=p.dense)


def _density_label(d: float) -> str:
    return f"d = {d:g}"


def accuracy_table(frame: pd.DataFrame, p: Params) -> pd.DataFrame:
    """Final test accuracy (%), "mean [95% CI]" over seeds: one row per method and variant, one column per density.

    The dense network (d = 1) is repeated in every density's column.
    """
    from ..plotting import mean_ci_table

    dense = frame[frame.method == "dense"]
    t = pd.concat([dense.assign(density=d) for d in p.densities] + [frame[frame.method != "dense"]])
    t = t.assign(method=t.method.map(lambda m: "dense (d = 1)" if m == "dense" else NAMES[m]),
                 **{"density ": t.density.map(_density_label)})
    index = (["network"] if len(p.networks) > 1 else []) + ["method", "variant"]
    return mean_ci_table(t, index, "acc", columns="density ")


def effects_table(cases: pd.DataFrame, p: Params) -> pd.DataFrame:
    """The per-case paired differences of :func:`case_effects` (points), "mean [95% CI]" over seeds; columns: densities."""
    from ..plotting import mean_ci_table

    t = cases.assign(**{"density ": cases.density.map(_density_label)})
    index = ["claim"] + (["network"] if len(p.networks) > 1 else []) + ["case"]
    return mean_ci_table(t, index, "effect", columns="density ")


def best_references(cases: pd.DataFrame) -> str:
    """Which of SNIP and GraSP each random ticket was compared with, per network and density (Markdown); the
    seeds are named where the held-out choice differs between them."""
    rows = cases[cases.claim == "smart_ratio_matches_pruning"]
    parts = []
    for (net, d), here in rows.groupby(["network", "density"], sort=False):
        by_ref = here.groupby("reference", sort=False).seed.apply(list)
        if len(by_ref) == 1:
            parts.append(f"{NAMES[by_ref.index[0]]} at {net}, {_density_label(d)}")
        else:
            parts.append(" / ".join(f"{NAMES[r]} (seed{'s' if len(v) > 1 else ''} {', '.join(map(str, v))})"
                                    for r, v in by_ref.items()) + f" at {net}, {_density_label(d)}")
    return "; ".join(parts) or "no random tickets were trained"


def _panels(p: Params, height: float, width: float = 4.1, share: bool = False
            ) -> tuple[plt.Figure, dict[tuple[str, float], plt.Axes]]:
    """One panel per (network, density), two per row (at most 2 ``width`` inches wide); ``share``: common axes."""
    import matplotlib.pyplot as plt

    keys = [(net, d) for net in model_configs(p) for d in p.densities]
    ncols = min(2, len(keys))
    nrows = -(-len(keys) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows + 0.6), squeeze=False,
                             sharex=share, sharey=share)
    for ax in axes.flat[len(keys):]:
        ax.remove()
    return fig, dict(zip(keys, axes.flat))


def plot_accuracy(frame: pd.DataFrame, p: Params) -> plt.Figure:
    """Test accuracy of every method under every variant (mean and 95% CI over seeds), one panel per network
    and density; lines (bands: 95% CI) are the dense network, random and hybrid tickets."""
    from ..plotting import color, errorbar_plot, figure_legend, linestyle

    fig, axes = _panels(p, 3.4)
    labels = list(variants(p))
    methods = [m for m in p.methods if (frame.method == m).any()]
    for (net, d), ax in axes.items():
        here = frame[frame.network == net]
        for k, m in enumerate(methods):
            rows = here[(here.density == d) & (here.method == m)]
            rows = rows.assign(x=rows.variant.map(labels.index) + (k - (len(methods) - 1) / 2) * 0.22)
            errorbar_plot(rows, x="x", y="acc", hue="method", ax=ax, err="ci95", label_fmt=NAMES[m],
                          linestyle="none", marker="o")
        for r in ("dense", "smart_ratio", "hybrid"):
            ref = here[(here.method == r) & (here.density == (1.0 if r == "dense" else d))].acc
            if len(ref):
                mean, low, high = mean_interval(ref)
                ax.axhline(mean, color=color(r), linestyle=linestyle(r), linewidth=1.2, label=NAMES[r])
                if high > low:
                    ax.axhspan(low, high, color=color(r), alpha=0.12, linewidth=0)
        ax.set_xticks(range(len(labels)), labels, rotation=35, ha="right")
        ax.set_xlabel("")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{net}, {_density_label(d)}")
    figure_legend(fig)
    return fig


def plot_effects(cases: pd.DataFrame, p: Params) -> plt.Figure:
    """Per-case paired differences (points; mean and 95% CI over seeds), one panel per network and density,
    with the equivalence band of the claims that have one (the ticket claims predict a sign instead)."""
    from ..claims import CLAIMS
    from ..plotting import color, figure_legend

    order = list(dict.fromkeys(cases.case))
    fig, axes = _panels(p, 0.4 * max(len(order), 2) + 1.0, width=3.4, share=True)
    margins = sorted({CLAIMS[c].margin for c in cases.claim.unique() if CLAIMS[c].kind == "equivalence"})
    for (net, d), ax in axes.items():
        here = cases[(cases.network == net) & (cases.density == d)]
        for m in pd.unique(here.method):
            rows = here[here.method == m]
            for case, g in rows.groupby("case", sort=False):
                mean, low, high = mean_interval(g.effect)
                y = order.index(case)
                ax.errorbar([mean], [y], xerr=[[mean - low], [high - mean]] if high > low else None, marker="o",
                            linestyle="none", color=color(m), label=NAMES[m])
        for m in margins:
            ax.axvspan(-m, m, color="0.85", alpha=0.5, linewidth=0, zorder=0, label=f"equivalence margin ±{m:g}")
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_yticks(range(len(order)), order)
        ax.set_xlabel("paired difference (points)")
        ax.set_title(f"{net}, {_density_label(d)}")
    next(iter(axes.values())).invert_yaxis()  # the axes are shared: the first case on top in every panel
    figure_legend(fig, ncols=3)  # long labels: three to a row keep the figure within the column
    return fig


def layer_densities(grid: Sequence[tuple[dict[str, Any], RunConfig]], results: Sequence[Any]) -> pd.DataFrame:
    """Layer densities d_l of the original masks (SNIP, GraSP, lottery) and the random tickets, from the runs' mask
    reports: one row per run and layer (layer 1 is the first prunable layer, the last the classifier)."""
    from ..store import read_json

    rows = []
    for (labels, cfg), res in zip(grid, results):
        if labels["variant"] == "original" and labels["method"] in (*METHODS, "smart_ratio"):
            for index, layer in enumerate(read_json(res.path / "mask_report.json"), start=1):
                rows.append(labels | {"seed": cfg.seed, "layer": index, "d_l": layer["density"]})
    return pd.DataFrame(rows, columns=[*_LABELS, "seed", "layer", "d_l"])


def plot_layer_densities(layers: pd.DataFrame, p: Params) -> plt.Figure:
    """Layer densities d_l (log scale; mean and 95% CI over seeds) of each method, one panel per network and density."""
    from matplotlib.ticker import MaxNLocator

    from ..plotting import errorbar_plot, figure_legend

    fig, axes = _panels(p, 3.0)
    for (net, d), ax in axes.items():
        here = layers[(layers.network == net) & (layers.density == d)]
        for m in pd.unique(here.method):
            errorbar_plot(here[here.method == m], x="layer", y="d_l", hue="method", ax=ax, err="ci95", marker=".",
                          label_fmt=NAMES[m])
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("layer density $d_l$")
        ax.set_title(f"{net}, {_density_label(d)}")
    figure_legend(fig)
    return fig


def largest_departures(layers: pd.DataFrame) -> pd.DataFrame:
    """Per network, density and method: the layer where the smart ratio departs most (in log10) from the method's
    mean layer densities, with both densities."""
    mean_d = layers.groupby(["network", "density", "method", "layer"], sort=False).d_l.mean()
    rows = []
    for (net, d, m), own in mean_d.groupby(level=["network", "density", "method"], sort=False):
        if m == "smart_ratio" or (net, d, "smart_ratio") not in mean_d.index.droplevel("layer"):
            continue
        own, ratio = own.droplevel([0, 1, 2]), mean_d.loc[(net, d, "smart_ratio")]
        gap = (np.log10(ratio.clip(lower=1e-4)) - np.log10(own.clip(lower=1e-4))).abs()
        layer = int(gap.idxmax())
        rows.append({"network": net, "density": d, "method": NAMES[m], "layer": f"{layer} of {len(gap)}",
                     "d_l (method)": round(float(own[layer]), 3), "d_l (smart ratio)": round(float(ratio[layer]), 3)})
    index = ["network", "density", "method"]
    return pd.DataFrame(rows, columns=[*index, "layer", "d_l (method)", "d_l (smart ratio)"]).set_index(index)


def classifier_note(shares: dict[str, float], p: Params) -> str:
    """What the smart ratio's fixed classifier density of 0.3 costs at the lowest density, per network (Markdown)."""
    d = p.densities[-1]
    return "; ".join(f"in {label} the classifier holds {100 * share:.1f}% of the prunable weights, so at "
                     f"d = {d:g} its density of 0.3 takes {100 * 0.3 * share / d:.0f}% of the budget"
                     for label, share in shares.items())
