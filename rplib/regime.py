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
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from .claims import CLAIMS, NOT_REPORTED, Claim, _fmt, _glued, mean_interval

__all__ = ["GLUE_NAME", "NEAR_CHANCE_POINTS", "NO_DENSE_RUN", "Regime", "chance_level", "near_chance", "regime",
           "setting_text", "dense_text", "regime_notes", "missing_paper_fields", "regime_table", "publish_regime",
           "read_regime"]

GLUE_NAME = "regime"  # the glued JSON regime record of a chapter, read back by the findings page
NEAR_CHANCE_POINTS = 10.0  # accuracy within this many points of chance level is "near chance"


@dataclass(frozen=True)
class Regime:
    """What a chapter trained: dataset and its number of classes, the networks, epochs, the densities (kept
    fractions) its claims are tested at, the dense networks' test accuracy (network -> ``[mean, low, high]``
    in %, empty without dense runs), ``notes`` the chapter computed from its data (e.g. criteria at chance) and
    ``dense_runs``, whether the chapter trains dense networks at all (a chapter's ``dense`` parameter)."""

    chapter: str
    dataset: str
    num_classes: int
    networks: tuple[str, ...]
    epochs: int
    densities: tuple[float, ...]
    dense_accuracy: dict = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    dense_runs: bool = True


#: what the regime says of the dense accuracy of a chapter that trains no dense network
NO_DENSE_RUN = "no dense run in this chapter"


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
           dense_runs: bool = True) -> Regime:
    """A chapter's :class:`Regime`; ``dense`` holds one row per dense run with columns ``network`` and ``acc``
    (test accuracy, %), or is ``None`` before training (or without dense runs); a row whose ``acc`` is missing
    (NaN) is no run. ``dense_runs`` is False for a chapter that trains no dense network."""
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
    return Regime(chapter, dataset, int(num_classes), tuple(map(str, networks)), int(epochs),
                  tuple(float(d) for d in densities), accuracy, tuple(notes), bool(dense_runs))


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
    return "; ".join(f"{n} {_fmt(m)} [{_fmt(lo)}, {_fmt(hi)}] %" for n, (m, lo, hi) in measured.items())


def regime_notes(r: Regime) -> list[str]:
    """Caveats computed from the data: dense networks near chance (module docstring), then the chapter's notes."""
    chance = chance_level(r.num_classes)
    out = []
    for n, (mean, _, high) in _measured(r).items():
        top = mean if math.isnan(high) else high
        if top < chance + NEAR_CHANCE_POINTS:
            out.append(f"dense {n} near chance ({_fmt(mean)} % against chance {chance:.3g} %)")
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
             "caveat": "; ".join([c.caveat, *notes]).strip("; ")} for c in mine]
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
