"""The regime of a chapter's claims: what this book trained (data, networks, epochs, densities, dense accuracy).

A verdict reached on small networks trained briefly on MNIST-1D is a verdict about that regime, not about
the paper's CIFAR ResNets. Each chapter builds one :class:`Regime` with :func:`regime` from its parameters
(and, once its runs are trained, from its dense runs' test accuracy), shows :func:`regime_table` for its
claims at the top (the paper's setting and effect beside this book's) and glues the record with
:func:`publish_regime` under :data:`GLUE_NAME`; the findings page (:func:`rplib.book.findings_markdown`)
reads it back with :func:`read_regime` and puts it beside every verdict of the chapter.

Near chance: a network (or a drop criterion) whose test accuracy is shown to lie within
:data:`NEAR_CHANCE_POINTS` points of chance level ``100 / num_classes`` (the upper end of the 95% t-interval of
:func:`rplib.claims.mean_interval` is below chance + 10 points; the mean with fewer than two seeds) learned too
little for a claim about how it learns; the findings page says so in the caveat.

Training length: each chapter trains its dense networks (a network without a dense run: its runs of the
chapter's first mask) :data:`LENGTH_FACTOR` times as long for the first :data:`LENGTH_SEEDS` seeds
(:func:`length_configs`, :func:`longer`, :func:`length_check`). A network whose test accuracy gains more than
:data:`LENGTH_TOLERANCE` points on average is short of convergence at the chapter's budget, and the findings
page says so in the caveat. The check is descriptive (a direction and a size from two seeds), not a test.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .claims import CLAIMS, NOT_REPORTED, Claim, _fmt, _glued, mean_interval
from .config import RunConfig
from .evaluate import EvalConfig
from .numbers import interval

__all__ = ["GLUE_NAME", "NEAR_CHANCE_POINTS", "NO_DENSE_RUN", "Regime", "chance_level", "near_chance", "regime",
           "setting_text", "dense_text", "DATASET_CAVEATS", "caveat", "regime_notes", "missing_paper_fields",
           "regime_table", "publish_regime", "read_regime", "LENGTH_FACTOR", "LENGTH_SEEDS", "LENGTH_TOLERANCE",
           "longer", "length_configs", "length_check", "length_table"]

GLUE_NAME = "regime"  # the glued JSON regime record of a chapter, read back by the findings page
NEAR_CHANCE_POINTS = 10.0  # accuracy within this many points of chance level is "near chance"
LENGTH_FACTOR = 3  # the training-length check trains this many times as long
LENGTH_SEEDS = 2  # ... for the first this many seeds of each network
LENGTH_TOLERANCE = 1.0  # a mean gain above this many points of test accuracy: short of convergence


@dataclass(frozen=True)
class Regime:
    """What a chapter trained: dataset and its number of classes, the networks, epochs, the densities (kept
    fractions) its claims are tested at, the dense networks' test accuracy (network -> ``[mean, low, high]``
    in %, empty without dense runs), ``notes`` the chapter computed from its data (e.g. criteria at chance) and
    ``dense_runs``, whether the chapter trains dense networks at all (a chapter's ``dense`` parameter), and the
    training-length check's gain per network (``[mean, low, high]`` points, :func:`length_check`)."""

    chapter: str
    dataset: str
    num_classes: int
    networks: tuple[str, ...]
    epochs: int
    densities: tuple[float, ...]
    dense_accuracy: dict = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    dense_runs: bool = True
    length_gain: dict = field(default_factory=dict)


#: what the regime says of the dense accuracy of a chapter that trains no dense network
NO_DENSE_RUN = "no dense run in this chapter"

_FASHION_SMALL = ("LeNet-5 trained 4 epochs on Fashion-MNIST, far smaller and shorter-trained than the paper's "
                  "VGG-19 and ResNet-32 (160 epochs on CIFAR)")
_FASHION_DST = "LeNet-300-100 trained 4 epochs on Fashion-MNIST"
_FASHION_RELIABILITY = "LeNet-5 and an MLP 784-256-256 trained 4 epochs on Fashion-MNIST"
#: A claim's caveat in a regime on other data than the cpu profile's: dataset -> claim id -> caveat. A claim's own
#: :attr:`rplib.claims.Claim.caveat` describes the cpu profile's regime (MNIST-1D, scikit-learn digits, random
#: inputs) and is what :func:`caveat` gives for every dataset without an entry here.
DATASET_CAVEATS: dict[str, dict[str, str]] = {
    "fashion_mnist": {
        "scaling_gap_shrinks": "CIFAR ResNets of 1k-11k weights trained 3 epochs on Fashion-MNIST, against the "
                               "paper's 0.27M-1.7M weights trained 160 epochs on CIFAR-10",
        "erk_beats_uniform": "tested at the highest sparsity of the grid (0.98) on LeNet-5, a network without batch "
                             "normalisation, trained 4 epochs",
        "erk_plus_matches_erk": "ERK+ is unreachable at the highest sparsities of small networks; LeNet-5 trained 4 "
                                "epochs",
        "sparse_matches_dense_ood": _FASHION_RELIABILITY + "; the out-of-distribution sets are scikit-learn digits "
                                    "enlarged to 28x28 and Gaussian noise, not the paper's",
        "sparse_matches_dense_calibration": _FASHION_RELIABILITY,
        "sparse_matches_dense_robustness": _FASHION_RELIABILITY + "; FGSM and PGD of radius up to 8/255",
        **{k: _FASHION_SMALL for k in ("rearrange_costs_nothing", "shuffle_costs_nothing",
                                       "corrupted_data_costs_nothing", "half_data_costs_nothing",
                                       "smart_ratio_matches_pruning", "hybrid_beats_random_ticket")},
        **{k: _FASHION_SMALL + "; few pruning rounds" for k in ("lottery_fails_sanity", "hybrid_beats_lottery")},
        **{k: _FASHION_DST for k in ("drop_criteria_alike", "magnitude_best_low_density", "dst_beats_static")},
    },
}


def caveat(c: Claim, r: Regime | None) -> str:
    """The caveat of claim ``c`` in regime ``r``: :data:`DATASET_CAVEATS` for the regime's dataset where it has an
    entry, else the claim's own (the cpu profile's regime); without a regime record, the claim's own."""
    if r is None:
        return c.caveat
    return DATASET_CAVEATS.get(r.dataset, {}).get(c.id, c.caveat)


def chance_level(num_classes: int) -> float:
    """Test accuracy (%) of guessing among ``num_classes`` balanced classes: ``100 / num_classes``."""
    if num_classes < 1:
        raise ValueError(f"chance_level: num_classes must be >= 1, got {num_classes!r}")
    return 100.0 / num_classes


def near_chance(accuracies: Iterable[float], num_classes: int, points: float = NEAR_CHANCE_POINTS) -> bool:
    """Whether accuracies (%, one per seed) are shown to lie within ``points`` of chance: the upper end of their 95%
    t-interval (their mean with fewer than two) is below ``chance_level + points``."""
    mean, _, high = mean_interval(accuracies)
    top = mean if math.isnan(high) else high
    return bool(top < chance_level(num_classes) + points)


def regime(chapter: str, dataset: str, num_classes: int, networks: Sequence[str], epochs: int,
           densities: Sequence[float], dense: pd.DataFrame | None = None, notes: Sequence[str] = (),
           length: pd.DataFrame | None = None, dense_runs: bool = True) -> Regime:
    """A chapter's :class:`Regime`; ``dense`` holds one row per dense run with columns ``network`` and ``acc``
    (test accuracy, %), or is ``None`` before training (or without dense runs); a row whose ``acc`` is missing
    (NaN) is no run. ``length`` is the chapter's :func:`length_check`; ``dense_runs`` is False for a chapter
    that trains no dense network."""
    if chapter not in {c.chapter for c in CLAIMS.values()}:
        raise ValueError(f"regime: chapter {chapter!r} has no claims; chapters with claims: "
                         f"{', '.join(sorted({c.chapter for c in CLAIMS.values()}))}")
    accuracy = {}
    if dense is not None and len(dense):
        for col in ("network", "acc"):
            if col not in dense.columns:
                raise ValueError(f"regime: the dense frame lacks column {col!r}; columns: {list(dense.columns)}")
        accuracy = {str(n): list(mean_interval(g["acc"].dropna())) for n, g in dense.groupby("network", sort=False)
                    if g["acc"].notna().any()}
    gain = {} if length is None else {n: list(g) for n, g in length_gains(length).items()}
    return Regime(chapter, dataset, int(num_classes), tuple(map(str, networks)), int(epochs),
                  tuple(float(d) for d in densities), accuracy, tuple(notes), bool(dense_runs), gain)


def setting_text(r: Regime) -> str:
    """This book's setting in one line: ``mnist1d (10 classes); cnn1d x2; 10 epochs; density 0.1, 0.05``."""
    dens = ", ".join(f"{d:g}" for d in r.densities)
    epochs = f"{r.epochs} epochs" if r.epochs else "no training"
    return (f"{r.dataset} ({r.num_classes} classes); {' / '.join(r.networks)}; {epochs}; "
            f"densit{'ies' if len(r.densities) > 1 else 'y'} {dens}")


def _measured(r: Regime) -> dict:
    """The networks of ``r.dense_accuracy`` with a measured mean (a record written before runs without a value
    were dropped may hold ``NaN`` for a network that never trained)."""
    return {n: v for n, v in r.dense_accuracy.items() if not math.isnan(v[0])}


def dense_text(r: Regime) -> str:
    """Dense test accuracy per network, ``mean [low, high] %``; :data:`NO_DENSE_RUN` without a dense run."""
    measured = _measured(r)
    if not measured:
        return NO_DENSE_RUN
    return "; ".join(f"{n} {interval(m, lo, hi, unit='%')} %" for n, (m, lo, hi) in measured.items())


def regime_notes(r: Regime) -> list[str]:
    """Caveats computed from the data: dense networks near chance (module docstring), then the chapter's notes."""
    chance = chance_level(r.num_classes)
    out = []
    for n, (mean, _, high) in _measured(r).items():
        top = mean if math.isnan(high) else high
        if top < chance + NEAR_CHANCE_POINTS:
            out.append(f"dense {n} near chance ({_fmt(mean)} % against chance {chance:.3g} %)")
    for n, (mean, low, high) in r.length_gain.items():
        if mean > LENGTH_TOLERANCE:
            gain = interval(mean, low, high, unit="points")
            out.append(f"{n} gains {gain} points when trained {LENGTH_FACTOR}x as long")
    return out + list(r.notes)


def missing_paper_fields(claims: Mapping[str, Claim] | None = None) -> dict[str, list[str]]:
    """Claim id -> the paper fields (``paper``, ``paper_setting``, ``paper_effect``) it leaves empty; a claim
    whose paper gives no number says :data:`rplib.claims.NOT_REPORTED` instead of leaving the field empty."""
    claims = CLAIMS if claims is None else claims
    out = {}
    for c in claims.values():
        empty = [f for f in ("paper", "paper_setting", "paper_effect") if not getattr(c, f).strip()]
        if empty:
            out[c.id] = empty
    return out


def regime_table(r: Regime, claims: Mapping[str, Claim] | None = None) -> pd.DataFrame:
    """The chapter's claims with the paper's setting and effect beside this book's setting and dense accuracy
    (``measured below`` before training, :data:`NO_DENSE_RUN` for a chapter without dense runs): what each
    chapter shows first."""
    claims = CLAIMS if claims is None else claims
    mine = [c for c in claims.values() if c.chapter == r.chapter]
    missing = missing_paper_fields({c.id: c for c in mine})
    if missing:
        raise ValueError(f"regime_table: claims lack paper fields {missing}; write {NOT_REPORTED!r} where the paper "
                         "gives none")
    notes = regime_notes(r)
    dense = dense_text(r) if _measured(r) or not r.dense_runs else "measured below"
    rows = [{"claim": c.id, "paper": c.paper, "paper's setting": c.paper_setting, "paper's effect": c.paper_effect,
             "this book": setting_text(r), "dense accuracy": dense,
             "caveat": "; ".join([caveat(c, r), *notes]).strip("; ")} for c in mine]
    columns = ["claim", "paper", "paper's setting", "paper's effect", "this book", "dense accuracy", "caveat"]
    return pd.DataFrame(rows, columns=columns).set_index("claim")


def publish_regime(r: Regime) -> pd.DataFrame:
    """Glue ``r`` as JSON under :data:`GLUE_NAME` for the findings page and return :func:`regime_table`."""
    from myst_nb import glue

    table = regime_table(r)
    glue(GLUE_NAME, json.dumps(dataclasses.asdict(r)), display=False)
    return table


def read_regime(nb: dict) -> Regime | None:
    """The regime an executed notebook (``nbformat`` dict) glued with :func:`publish_regime`; ``None`` if none."""
    d = _glued(nb, GLUE_NAME)
    if d is None:
        return None
    return Regime(**{**d, "networks": tuple(d["networks"]), "densities": tuple(d["densities"]),
                     "notes": tuple(d["notes"])})


def longer(cfg: RunConfig, factor: int = LENGTH_FACTOR) -> RunConfig:
    """``cfg`` trained ``factor`` times as long: ``factor`` x the epochs and the warm-up, learning-rate milestones
    given in epochs scaled with them (milestones given as fractions of training stay), and no evaluation beyond
    test accuracy (out-of-distribution sets, calibration, attacks and gradient flow cost time and decide nothing
    here)."""
    if not (isinstance(factor, int) and factor >= 2):
        raise ValueError(f"longer: factor must be an integer >= 2, got {factor!r}")
    o = cfg.optim
    fractions = all(0 < m < 1 for m in o.milestones)
    milestones = o.milestones if fractions else tuple(m * factor for m in o.milestones)
    return dataclasses.replace(cfg, eval=EvalConfig(),
                               optim=dataclasses.replace(o, epochs=o.epochs * factor, milestones=milestones,
                                                         warmup_epochs=o.warmup_epochs * factor))


def length_configs(configs: Sequence[RunConfig], network: Callable[[RunConfig], str],
                   seeds: int = LENGTH_SEEDS) -> dict[str, list[RunConfig]]:
    """The runs the training-length check lengthens: per network (``network(cfg)`` names it), its dense runs among
    ``configs`` or, for a network trained sparse only, its runs of the first mask in grid order; the first
    ``seeds`` seeds of them."""
    by_network: dict[str, list[RunConfig]] = {}
    for cfg in configs:
        by_network.setdefault(network(cfg), []).append(cfg)
    out = {}
    for name, runs in by_network.items():
        dense = [c for c in runs if c.sparsity.method == "dense"]
        chosen = dense or [c for c in runs if (c.model, c.sparsity) == (runs[0].model, runs[0].sparsity)]
        out[name] = list({c.seed: c for c in chosen}.values())[:seeds]
    return out


def length_check(configs: Mapping[str, Sequence[RunConfig]], root: str | Path | None = None,
                 factor: int = LENGTH_FACTOR) -> pd.DataFrame:
    """Train each run of ``configs`` (:func:`length_configs`) ``factor`` times as long (:func:`longer`; runs already
    in the store are read back, the chapter's own runs among them): one row per run with ``network``, ``seed``,
    ``epochs``, ``acc`` and ``longer`` (final-epoch test accuracy, %, of the run and of the longer run)."""
    from .grid import run_grid

    pairs = [(name, cfg) for name, cfgs in configs.items() for cfg in cfgs]
    runs = [cfg for _, cfg in pairs] + [longer(cfg, factor) for _, cfg in pairs]
    results = run_grid(runs, root=root)
    n = len(pairs)
    return pd.DataFrame([{"network": name, "seed": cfg.seed, "epochs": cfg.optim.epochs,
                          "acc": 100 * results[i].metrics["test_accuracy"],
                          "longer": 100 * results[n + i].metrics["test_accuracy"]}
                         for i, (name, cfg) in enumerate(pairs)],
                        columns=["network", "seed", "epochs", "acc", "longer"])


def length_gains(length: pd.DataFrame) -> dict[str, tuple[float, float, float]]:
    """:func:`length_check`'s gain per network in points (longer - chapter's run, paired by seed): mean and 95%
    t-interval (:func:`rplib.claims.mean_interval`, kept inside the range of a difference of accuracies)."""
    return {str(n): mean_interval(g["longer"] - g["acc"], (-100.0, 100.0))
            for n, g in length.groupby("network", sort=False)}


def length_table(length: pd.DataFrame, factor: int = LENGTH_FACTOR) -> pd.DataFrame:
    """:func:`length_check` per network: the seeds, test accuracy (%) at the chapter's epochs and at ``factor``
    times as many, mean [95% CI] over seeds (intersected with the range of an accuracy), and the gain in points
    (its mean above :data:`LENGTH_TOLERANCE`: short of convergence)."""
    def accuracy(values: pd.Series) -> str:
        return interval(*mean_interval(values, (0.0, 100.0)), unit="%")

    rows, gains = [], length_gains(length)
    for name, g in length.groupby("network", sort=False):
        gain = gains[name]
        epochs = int(g["epochs"].iloc[0])
        rows.append({"network": name, "seeds": len(g),
                     f"accuracy, {epochs} epochs": accuracy(g["acc"]),
                     f"accuracy, {factor * epochs} epochs": accuracy(g["longer"]),
                     "gain (points)": interval(*gain, unit="points"),
                     f"gain within {LENGTH_TOLERANCE:g} point": "yes" if gain[0] <= LENGTH_TOLERANCE else "no"})
    return pd.DataFrame(rows).set_index("network")
