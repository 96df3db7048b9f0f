"""Claims as data, decided by rules fixed before the data exist.

A :class:`Claim` states what a paper found, which effect measures it, the sign the paper
predicts and the rule that turns measurements into a verdict. :data:`CLAIMS` declares every
claim the book tests; the chapters compute per-seed (or per-repeat) *paired* effects and call
:func:`decide`, which returns a :class:`Verdict` from a 95% Student-t interval of their mean:

``difference`` claims
    *agrees* when the interval excludes zero on the predicted side (``direction``), *disagrees*
    when it excludes zero on the other side, *inconclusive* otherwise.
``equivalence`` claims
    *agrees* when the whole interval lies inside ``[-margin, margin]``, *disagrees* when the
    whole interval lies outside it (entirely below ``-margin`` or above ``margin``),
    *inconclusive* otherwise.

Degenerate samples: with fewer than two effects there is no interval; the verdict is
*inconclusive* with ``low = high = nan``. With two or more identical effects the sample
variance is zero and the interval collapses to the mean (``low = high = estimate``); the rules
above then apply to that single point.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["Claim", "Verdict", "CLAIMS", "KINDS", "VERDICTS", "GLUE_NAME", "HELD_OUT_GLUE_NAME", "mean_interval",
           "interval_text", "decide", "paired", "mean_over_cases", "best_level", "median_levels", "held_out_picks",
           "held_out_mean", "held_out_check", "held_out_summary", "publish_held_out", "read_held_out",
           "verdict_table", "verdict_sentence", "publish", "read_published", "rule_text", "rules_markdown"]

GLUE_NAME = "verdicts"  # the glued JSON list of a chapter's verdicts, read back by the findings page
HELD_OUT_GLUE_NAME = "held_out_verdicts"  # the glued JSON verdicts of publish_held_out, read back there too

KINDS = ("difference", "equivalence")
VERDICTS = ("agrees", "disagrees", "inconclusive")


@dataclass(frozen=True)
class Claim:
    """One paper finding and the rule that decides it.

    ``effect`` says what one measurement is (one number per seed or repeat, paired where the
    comparison is paired); ``direction`` is the sign the paper predicts for a ``difference``
    claim (+1 or -1); ``margin`` is the equivalence half-width for an ``equivalence`` claim,
    in ``unit``.
    """

    id: str
    chapter: str
    statement: str
    paper_finding: str
    effect: str
    direction: int
    kind: str
    margin: float
    unit: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"claim {self.id!r}: unknown kind {self.kind!r}; valid kinds: {', '.join(KINDS)}")
        if self.direction not in (1, -1):
            raise ValueError(f"claim {self.id!r}: direction must be +1 or -1, got {self.direction!r}")
        if self.kind == "equivalence" and not (self.margin > 0 and math.isfinite(self.margin)):
            raise ValueError(f"claim {self.id!r}: an equivalence claim needs a finite margin > 0, got {self.margin!r}")


@dataclass(frozen=True)
class Verdict:
    """The decision on one claim: mean effect, its 95% t-interval, the number of effects and the verdict."""

    claim: str
    estimate: float
    low: float
    high: float
    n: int
    verdict: str


def mean_interval(values: Iterable[float]) -> tuple[float, float, float]:
    """Mean and 95% Student-t interval of the mean (scipy); (mean, nan, nan) for n < 2; (mean, mean, mean)
    for zero variance. The one interval of the book: verdicts, tables and figure error bars use it."""
    x = np.asarray(list(values), dtype=float).ravel()
    mean = float(np.mean(x)) if x.size else math.nan
    if x.size < 2:
        return mean, math.nan, math.nan
    if np.all(x == x[0]):
        return mean, mean, mean
    ci = stats.ttest_1samp(x, 0.0).confidence_interval(0.95)
    return mean, float(ci.low), float(ci.high)


def decide(claim: Claim, effects: Sequence[float] | Iterable[float]) -> Verdict:
    """Decide ``claim`` from its paired effects (one per seed or repeat) by the rule in the module docstring."""
    if not isinstance(claim, Claim):
        raise TypeError(f"decide needs a Claim (e.g. rplib.claims.CLAIMS[...]), got {type(claim).__name__}")
    x = np.asarray(list(effects), dtype=float).ravel()
    if not np.all(np.isfinite(x)):
        raise ValueError(f"claim {claim.id!r}: effects must be finite numbers, got {x[~np.isfinite(x)][:5].tolist()}")
    estimate, low, high = mean_interval(x)
    if x.size < 2:
        verdict = "inconclusive"
    elif claim.kind == "difference":
        lo, hi = sorted((claim.direction * low, claim.direction * high))
        verdict = "agrees" if lo > 0 else "disagrees" if hi < 0 else "inconclusive"
    else:
        m = claim.margin
        verdict = ("agrees" if -m <= low and high <= m
                   else "disagrees" if high < -m or low > m else "inconclusive")
    return Verdict(claim.id, estimate, low, high, int(x.size), verdict)


def paired(frame: pd.DataFrame, by: str, treatment: object, reference: object, value: str,
           pair: str | Sequence[str] = "seed") -> pd.Series:
    """Per-pair differences ``value[treatment] - value[reference]``: rows matched on ``pair`` (the seed).

    ``frame`` holds one row per run; ``by`` is the column that tells treatment from reference. A pair
    missing either side, or a pair with several rows on one side, is an error naming the pair.
    """
    keys = [pair] if isinstance(pair, str) else list(pair)
    for col in [by, value, *keys]:
        if col not in frame.columns:
            raise ValueError(f"paired: no column {col!r}; columns: {', '.join(map(str, frame.columns))}")
    sides = {}
    for name, level in (("treatment", treatment), ("reference", reference)):
        rows = frame[frame[by] == level]
        dup = rows[keys].duplicated()
        if dup.any():
            raise ValueError(f"paired: several {by}={level!r} rows for {keys}={rows[keys][dup].iloc[0].tolist()}")
        sides[name] = rows.set_index(keys)[value]
    t, r = sides["treatment"], sides["reference"]
    unpaired = t.index.symmetric_difference(r.index)
    if len(unpaired):
        raise ValueError(f"paired: {by}={treatment!r} vs {reference!r} has unpaired {keys} {list(unpaired)[:5]}")
    if not len(t):
        raise ValueError(f"paired: no rows with {by}={treatment!r} or {by}={reference!r}")
    return (t - r.reindex(t.index)).sort_index().rename(f"{treatment} - {reference}")


def best_level(means: pd.Series) -> list:
    """The level with the highest mean (the first of ``means``' order on a tie)."""
    return [means.idxmax()]


def median_levels(means: pd.Series) -> list:
    """The level at the median rank of ``means``, or the two middle ones for an even count (ties keep the order
    of ``means``): the levels whose values the median of the level values averages."""
    ranked = means.sort_values(kind="stable").index.tolist()
    k = len(ranked)
    return ranked[(k - 1) // 2: k // 2 + 1]


def held_out_picks(table: pd.DataFrame, choose: Callable[[pd.Series], list]) -> dict:
    """Seed -> the levels (columns of a seeds x levels ``table``) that ``choose`` picks from the mean per level
    over the *other* seeds.

    A comparison with "the best" level scored on the seeds that chose it lets their noise choose it: the
    chosen level's lead is biased upward by the noise that made it look best, even when every level is
    alike. Chosen on the other seeds (cross-fitting), the pick never depends on the noise of the seed it is
    scored on, so alike levels give an expected effect of zero. With a single seed there is nothing to hold
    out and the seed chooses for itself (one seed decides no claim anyway).
    """
    if table.isna().any().any():
        raise ValueError(f"held_out_picks: the seeds x levels table has gaps at seeds "
                         f"{table.index[table.isna().any(axis=1)].tolist()}")
    return {seed: choose((table.drop(index=seed) if len(table) > 1 else table).mean()) for seed in table.index}


def held_out_mean(table: pd.DataFrame, choose: Callable[[pd.Series], list]) -> pd.Series:
    """Per seed, the mean of its own values at the levels :func:`held_out_picks` chose on the other seeds."""
    picks = held_out_picks(table, choose)
    return pd.Series({seed: table.loc[seed, levels].mean() for seed, levels in picks.items()},
                     dtype=float).rename_axis("seed")


def mean_over_cases(table: pd.DataFrame, missing: str) -> pd.Series:
    """Per-seed mean of a seeds x cases table of effects (one column per model, density, ...).

    A seed without every case is an error (a mean over fewer cases is not the claim's effect): the
    ``ValueError`` is ``missing`` with ``{seeds}`` replaced by those seeds.
    """
    gaps = table.index[table.isna().any(axis=1)].tolist()
    if gaps:
        raise ValueError(missing.format(seeds=gaps))
    return table.mean(axis=1).rename_axis("seed")


def _fmt(v: float) -> str:
    from .numbers import significant

    return significant(v)


def interval_text(v: Verdict) -> str:
    """``mean [low, high]`` of a verdict in :func:`rplib.numbers.interval`'s format (the mean alone without an
    interval)."""
    from .numbers import interval

    return interval(v.estimate, v.low, v.high)


def verdict_table(verdicts: Iterable[Verdict], claims: dict[str, Claim] | None = None) -> pd.DataFrame:
    """One row per verdict: the claim's statement, ``mean [low, high]`` as one string, unit, rule, n, verdict."""
    claims = CLAIMS if claims is None else claims
    rows = []
    for v in verdicts:
        c = claims.get(v.claim)
        rule = ("" if c is None else f"CI excludes 0, sign {c.direction:+d}" if c.kind == "difference"
                else f"CI inside ±{c.margin:g}")
        rows.append({"claim": v.claim, "statement": "" if c is None else c.statement,
                     "effect, mean [95% CI]": interval_text(v),
                     "unit": "" if c is None else c.unit, "rule": rule, "n": v.n, "verdict": v.verdict})
    columns = ["claim", "statement", "effect, mean [95% CI]", "unit", "rule", "n", "verdict"]
    return pd.DataFrame(rows, columns=columns).set_index("claim")


_HELD_OUT_VERDICT = "the rule's verdict on it"


def held_out_check(declared: dict[str, pd.Series], held_out: dict[str, pd.Series],
                   claims: dict[str, Claim] | None = None) -> pd.DataFrame:
    """Claims whose effect chooses a level on the seeds it scores, under the declared rule and with the choice
    held out of the scored seed (:func:`held_out_picks`): ``mean [95% CI]`` and the verdict the claim's rule
    gives to each, for the claims in ``held_out``. Only the first verdict counts; the check shows how much of
    an effect the choice's noise made."""
    claims = CLAIMS if claims is None else claims
    rows = []
    for k in held_out:
        a, b = decide(claims[k], declared[k]), decide(claims[k], held_out[k])
        rows.append({"claim": k, "declared rule, mean [95% CI]": interval_text(a), "verdict": a.verdict,
                     "choice held out, mean [95% CI]": interval_text(b), _HELD_OUT_VERDICT: b.verdict,
                     "unit": claims[k].unit})
    return pd.DataFrame(rows, columns=["claim", "declared rule, mean [95% CI]", "verdict",
                                       "choice held out, mean [95% CI]", _HELD_OUT_VERDICT, "unit"]
                        ).set_index("claim")


def held_out_summary(table: pd.DataFrame) -> str:
    """One Markdown sentence on a :func:`held_out_check` table: the verdicts the held-out choice would change."""
    if table.empty:
        return "No claim of this profile chooses a level, so there is nothing to check."
    changed = [f"`{k}` ({r['verdict']} → {r[_HELD_OUT_VERDICT]})" for k, r in table.iterrows()
               if r["verdict"] != r[_HELD_OUT_VERDICT]]
    if not changed:
        return "Held out, the choice changes no verdict: the declared verdicts do not rest on it."
    return (f"Held out, the choice changes the verdict of {' and '.join(changed)}: the declared verdict rests "
            "partly on the choosing, so it is to be read with this check beside it.")


def verdict_sentence(v: Verdict, claims: dict[str, Claim] | None = None) -> str:
    """The verdict in one line of Markdown for the chapter's prose: ``**agrees** (+1.2 [0.4, 2.0] points, n = 5)``."""
    c = (CLAIMS if claims is None else claims).get(v.claim)
    unit = f" {c.unit}" if c is not None and c.unit else ""
    return f"**{v.verdict}** ({v.estimate:+.3g} [{_fmt(v.low)}, {_fmt(v.high)}]{unit}, n = {v.n})"


def publish(verdicts: Sequence[Verdict], claims: dict[str, Claim] | None = None) -> pd.DataFrame:
    """Glue the chapter's verdicts and return their table for display in the notebook.

    Each verdict is glued as Markdown ``verdict_<claim id>`` (:func:`verdict_sentence`) for the prose,
    and all of them as JSON under :data:`GLUE_NAME` for the book's findings page
    (:func:`read_published`). Displaying the returned table shows the verdicts in the executed
    notebook too, where glued values are invisible outside the book build.
    """
    from IPython.display import Markdown
    from myst_nb import glue

    verdicts = list(verdicts)
    known = CLAIMS if claims is None else claims
    unknown = [v.claim for v in verdicts if v.claim not in known]
    if unknown:
        raise ValueError(f"publish: unknown claims {unknown}; declared claims: {', '.join(known)}")
    for v in verdicts:
        glue(f"verdict_{v.claim}", Markdown(verdict_sentence(v, claims)), display=False)
    glue(GLUE_NAME, json.dumps([dataclasses.asdict(v) for v in verdicts]), display=False)
    return verdict_table(verdicts, claims)


def _glued(nb: dict, name: str) -> object | None:
    """The JSON value glued under ``name`` in an executed notebook (``nbformat`` dict), or ``None``."""
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            if out.get("metadata", {}).get("scrapbook", {}).get("name") == name:
                text = next(v for k, v in out["data"].items() if k.endswith("text/plain"))
                text = "".join(text) if isinstance(text, list) else text
                return json.loads(ast.literal_eval(text))
    return None


def read_published(nb: dict) -> list[Verdict]:
    """The verdicts an executed notebook (``nbformat`` dict) glued with :func:`publish`; ``[]`` if none."""
    return [Verdict(**d) for d in _glued(nb, GLUE_NAME) or []]


def publish_held_out(declared: dict[str, pd.Series], held_out: dict[str, pd.Series],
                     claims: dict[str, Claim] | None = None) -> pd.DataFrame:
    """Glue the :func:`held_out_check` of ``held_out``'s claims and return its table for display.

    The sentence of :func:`held_out_summary` is glued as Markdown ``held_out_summary`` for the prose, and
    each claim's verdict on the held-out effect as JSON under :data:`HELD_OUT_GLUE_NAME` for the findings
    page (:func:`read_held_out`), which notes where it differs from the declared verdict.
    """
    from IPython.display import Markdown
    from myst_nb import glue

    table = held_out_check(declared, held_out, claims)
    glue("held_out_summary", Markdown(held_out_summary(table)), display=False)
    glue(HELD_OUT_GLUE_NAME, json.dumps(table[_HELD_OUT_VERDICT].to_dict()), display=False)
    return table


def read_held_out(nb: dict) -> dict[str, str]:
    """Claim id -> the verdict its rule gives with the choice held out, as glued by :func:`publish_held_out`."""
    return _glued(nb, HELD_OUT_GLUE_NAME) or {}


def rule_text(claim: Claim) -> str:
    """The decision rule of ``claim`` in words: the predicted sign, or the equivalence margin with its unit."""
    if claim.kind == "difference":
        return f"difference, predicted {'> 0' if claim.direction > 0 else '< 0'} ({claim.unit})"
    return f"equivalence, margin ±{claim.margin:g} {claim.unit}"


def rules_markdown(claims: dict[str, Claim] | None = None) -> str:
    """A Markdown table of the claims (all of :data:`CLAIMS` by default): id, chapter, statement, effect, rule.

    The book's page on verdicts (``book/verdicts.md``) holds this table verbatim; a test keeps the two equal.
    """
    claims = CLAIMS if claims is None else claims

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| claim | chapter | statement | effect (one per seed or repeat) | rule |", "|---|---|---|---|---|"]
    lines += [f"| `{c.id}` | `{c.chapter}` | {cell(c.statement)} | {cell(c.effect)} | {rule_text(c)} |"
              for c in claims.values()]
    return "\n".join(lines)


def _claims(*items: Claim) -> dict[str, Claim]:
    return {c.id: c for c in items}


#: Every claim the book tests, declared before any data (REFERENCE.md section 7 and the inference chapter).
#: Section 7's OoD/calibration/robustness statement and its rearrange/corrupted-data sanity check are
#: split into one claim per measured effect, since each claim has one effect and one margin.
CLAIMS: dict[str, Claim] = _claims(
    Claim("scaling_gap_shrinks", "02_scaling",
          "At a fixed sparsity the gap between random sparse and dense training shrinks as networks grow",
          "Liu et al. 2022: random ERK networks close the gap to dense as depth and width grow",
          "per-seed least-squares slope of the gap (dense - random sparse test accuracy at the chapter's gap "
          "sparsity, same seed, points) against log2 of the network's prunable weights, over every network of the "
          "depth and width sweeps, averaged over the chapter's layer-wise schemes",
          -1, "difference", 0.0, "points per doubling"),
    Claim("erk_beats_uniform", "03_schemes",
          "ERK layer-wise ratios beat uniform ones at high sparsity",
          "Liu et al. 2022: ERK-style ratios beat uniform at sparsity >= 0.9",
          "per-seed paired difference ERK - uniform test accuracy at the highest tested sparsity, points",
          +1, "difference", 0.0, "points"),
    Claim("sparse_matches_dense_ood", "06_ood_calibration_robustness",
          "Random sparse networks detect out-of-distribution inputs as well as dense ones",
          "Liu et al. 2022: sparse networks match and often beat dense ones on OoD detection",
          "per-seed paired difference sparse - dense OoD AUROC (max-softmax score, mean over the chapter's OoD sets), "
          "points (AUROC x 100), at the chapter's reliability sparsity (0.9), averaged per seed over the chapter's "
          "networks",
          +1, "equivalence", 1.0, "AUROC points"),
    Claim("sparse_matches_dense_calibration", "06_ood_calibration_robustness",
          "Random sparse networks are as well calibrated as dense ones",
          "Liu et al. 2022: sparse networks match and often beat dense ones on calibration",
          "per-seed paired difference sparse - dense expected calibration error (15 bins), at the chapter's reliability "
          "sparsity (0.9), averaged per seed over the chapter's networks",
          -1, "equivalence", 0.01, "ECE"),
    Claim("sparse_matches_dense_robustness", "06_ood_calibration_robustness",
          "Random sparse networks are as robust to adversarial examples as dense ones",
          "Liu et al. 2022: sparse networks match and often beat dense ones on adversarial robustness",
          "per-seed paired difference sparse - dense accuracy under attack (mean over the chapter's attacks and non-zero "
          "radii), points, at the chapter's reliability sparsity (0.9), averaged per seed over the chapter's networks",
          +1, "equivalence", 1.0, "points"),
    Claim("rearrange_costs_nothing", "04_sanity_checks",
          "Layer-wise rearranging a SNIP/GraSP mask costs no accuracy",
          "Su et al. 2020: only the layer-wise ratios of SNIP/GraSP masks matter",
          "per-seed paired difference rearranged - original SNIP/GraSP mask test accuracy (same seed), averaged per seed "
          "over the cases (networks, methods, densities), points",
          +1, "equivalence", 1.0, "points"),
    Claim("corrupted_data_costs_nothing", "04_sanity_checks",
          "Pruning on corrupted data (random labels or pixels) costs no accuracy",
          "Su et al. 2020: SNIP/GraSP masks pruned on corrupted data train as well",
          "per-seed paired difference corrupted - clean pruning data test accuracy of SNIP/GraSP masks (same seed), "
          "averaged per seed over the cases (networks, methods, densities, corruption kinds: random labels, random "
          "pixels), points",
          +1, "equivalence", 1.0, "points"),
    Claim("smart_ratio_matches_pruning", "04_sanity_checks",
          "Data-free smart ratios match SNIP/GraSP masks",
          "Su et al. 2020: random tickets with smart ratios match or beat SNIP and GraSP",
          "per-seed paired difference smart ratio (random ticket) - best of SNIP/GraSP original mask test accuracy (same "
          "seed; best: the higher mean over seeds in that case), averaged per seed over the cases (networks, "
          "densities), points",
          +1, "equivalence", 1.0, "points"),
    Claim("drop_criteria_alike", "05_dst_criteria",
          "Most drop criteria of dynamic sparse training perform alike",
          "Nowak et al. 2023: most criteria perform alike",
          "per-seed difference best - median drop criterion test accuracy (over all drop criteria, within one "
          "growth criterion and density), points, averaged per seed over the growth criteria (random, gradient) "
          "and the criteria grid's densities",
          +1, "equivalence", 1.0, "points"),
    Claim("magnitude_best_low_density", "05_dst_criteria",
          "At low density plain magnitude is the best drop criterion",
          "Nowak et al. 2023: at low density magnitude is usually best",
          "per-seed paired difference magnitude - the other drop criterion with the highest mean test accuracy "
          "over seeds, at the lowest density, points, averaged per seed over the growth criteria (random, gradient)",
          +1, "difference", 0.0, "points"),
    Claim("dst_beats_static", "05_dst_criteria",
          "Dynamic sparse training beats static sparse training at the same density",
          "Nowak et al. 2023 (and RigL, SET): DST beats a fixed random mask",
          "per-seed paired difference DST (magnitude drop, random growth) - static training of the same initial "
          "mask, test accuracy, points, averaged per seed over the criteria grid's densities",
          +1, "difference", 0.0, "points"),
    Claim("grad_flow_orders_schemes", "07_gradient_flow",
          "Layer-wise ratios with a larger gradient norm at initialisation train to a higher accuracy",
          "Liu et al. 2022 trace the accuracy differences between layer-wise ratios to their gradient flow",
          "per-seed Kendall tau between the sparse schemes' gradient norm at initialisation and their final test "
          "accuracy, averaged over the chapter's networks",
          +1, "difference", 0.0, "Kendall tau"),
    Claim("sparse_faster_at_005", "08_sparse_inference",
          "A random ERK mask at density 0.05 runs faster than dense on CPU",
          "None of the papers measures it; they count parameters and FLOPs",
          "per-repeat log speedup ln(t_dense / t_sparse), ResNet-20 (CIFAR 3x32x32) end to end, ERK density 0.05 "
          "exported to CSR, batch 1, 1 thread, dense and sparse repeats interleaved",
          +1, "difference", 0.0, "log ratio"),
)
