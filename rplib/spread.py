"""Where a claim's seed-to-seed spread comes from: the networks' training, or the sampling of the test set.

A claim's per-seed effect, measured on the book's test set of ``n`` examples (one set, shared by every seed),
is ``theta_s + e_s``: ``theta_s`` the effect of seed ``s``'s trained networks on the data's distribution and
``e_s`` the error of measuring it on ``n`` examples. MNIST-1D's generator draws new examples from the same
distribution (:func:`rplib.data.mnist1d_fresh_test`); on ``N`` of them the error's variance shrinks by
``n / N``. With ``v_book`` and ``v_fresh`` the variances over seeds of one claim's effects measured on the two
test sets (the same trained networks),

    v_test = (v_book - v_fresh) / (1 - n / N),        share = v_test / v_book,

``share`` is the part of the book's seed-to-seed variance that the test set's sampling makes and a larger
test set removes, and ``sqrt(v_fresh)`` the spread the claim would have with ``N`` test examples: the seeds
its rule needs for 80% power at that spread (:func:`rplib.power.seeds_needed`) stand beside those it needs at
the book's. A table claim's spread is the root mean square of its rivals' spreads. A percentile bootstrap
over seeds gives the share's interval.

Every seed shares the book's test set, so its sampling also moves every seed's effect together: that part is
in no seed-to-seed spread and no interval. The mean effect on the fresh examples beside the mean on the
book's shows one draw of it for each claim, and :func:`shared_error` its standard error: the spread of the
mean effect over resamples of the book's test examples, the trained networks held fixed, beside the seeds'
standard error that the interval is built from.

The effects are each chapter's own (:data:`EFFECTS`: its ``claim_effects`` from its results), recomputed with
each run's accuracy on the fresh examples in place of its test accuracy. Each run's final network
(:func:`rplib.train.trained_network`) must reproduce its stored test accuracy on the book's test set first,
so that the networks measured are the ones the verdicts rest on (a check made for a store trained on the CPU,
as the cpu profile is: a network trained on a GPU may score an example or two differently here, and is then
refused). Only the chapters on MNIST-1D take part: scikit-learn's digits (chapters 6 and 7) have no generator.

``python -m rplib.spread --runs <store>`` measures the cpu profile's chapters in a store where they have
finished and writes ``book/spread.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from . import chapters
from .claims import CLAIMS, decide, mean_over_cases
from .data import MNIST1D_FRESH_SEED, load, mnist1d_fresh_test, split_sizes
from .numbers import fixed
from .power import PILOT, seeds_needed
from .profiles import plan
from .store import RunDir, atomic_write_text
from .train import Result, trained_network

__all__ = ["FRESH_SAMPLES", "EFFECTS", "chapter_results", "hits", "accuracy", "fresh_results", "shared_error",
           "spread", "share", "bootstrap_share", "widened", "spread_table", "spread_markdown", "write_spread", "main"]

FRESH_SAMPLES = 10_000  # fresh MNIST-1D test examples: 12.5 times the book's 800
BOOTSTRAP = 2000  # resamples of the seeds behind each share's interval
SHARED_RESAMPLES = 200  # resamples of the book's test examples behind each claim's shared test-set error
PAGE = Path("book") / "spread.md"
SEED_SE, TEST_SE = "seeds' standard error", "test set's standard error"  # of a claim's mean effect
WIDE = "verdict, test set's error counted"


def _scaling(p, results: list[Result]) -> dict:
    s = chapters.scaling
    return {"scaling_gap_shrinks": s.effects(p, s.gaps(p, s.frame(p, results)))}


def _schemes(p, results: list[Result]) -> dict:
    s = chapters.schemes
    frame = s.results_frame(results)
    plus = s.erk_plus_effects(frame, p)  # pooled over its sparsities, as its verdict is (decide_cases)
    pooled = {} if plus.empty else {"erk_plus_matches_erk": mean_over_cases(plus, "seeds {seeds} lack ERK+ or ERK")}
    return s.claim_effects(frame, p) | pooled


def _sanity(p, results: list[Result]) -> dict:
    grid = chapters.sanity.labelled_grid(p)
    return chapters.sanity.claim_effects(chapters.sanity.build_frame(grid, results), p)


def _dst(p, results: list[Result]) -> dict:
    d = chapters.dst_criteria
    return d.claim_effects(d.frame({r.config.hash: r for r in results}), p)


#: chapter -> its claims' per-seed effects (claim id -> Series, or seeds x rivals DataFrame) from the results of
#: its grid (the chapter module's ``grid``), in grid order
EFFECTS: dict[str, Callable] = {"02_scaling": _scaling, "03_schemes": _schemes, "04_sanity_checks": _sanity,
                                "05_dst_criteria": _dst}


def chapter_results(chapter: str, p, runs: Path | str) -> list[Result]:
    """The finished results of the chapter's grid under parameters ``p``, in grid order, read from the store
    ``runs`` (nothing is trained: a missing run is a one-line error naming how many are missing)."""
    configs = chapters.CHAPTERS[chapter].grid(p)
    dirs = [RunDir(runs, c.hash) for c in configs]
    missing = [d.hash for d in dirs if not d.finished()]
    if missing:
        raise ValueError(f"{chapter}: {len(missing)} of {len(dirs)} runs have not finished in {runs} (e.g. "
                         f"{missing[0]}); run the chapter first (make book)")
    return [Result.load(d) for d in dirs]


def hits(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 2000) -> np.ndarray:
    """Which examples of ``x`` ``model`` classifies as ``y`` (a boolean array)."""
    with torch.no_grad():
        return torch.cat([model(x[i:i + batch]).argmax(1) == y[i:i + batch] for i in range(0, len(y), batch)]).numpy()


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 2000) -> float:
    """The share of ``x`` that ``model`` classifies as ``y``."""
    return float(hits(model, x, y, batch).mean())


def _with_accuracy(r: Result, value: float) -> Result:
    return dataclasses.replace(r, metrics={**r.metrics, "test_accuracy": value})


def fresh_results(results: Sequence[Result], data_root: str, samples: int = FRESH_SAMPLES,
                  progress: bool = True) -> tuple[list[Result], dict[str, np.ndarray]]:
    """``results`` with each test accuracy replaced by its final network's accuracy on ``samples`` fresh
    MNIST-1D examples, and each network's hits on the book's test set (run hash -> boolean array), which must
    first reproduce its stored test accuracy."""
    out, book_hits, sets = [], {}, {}
    for r in tqdm(results, desc="fresh test set", unit="run", disable=not progress, leave=False):
        data = dataclasses.replace(r.config.data, root=data_root)
        if data not in sets:  # the standardisation follows each run's training split
            sets[data] = load(data).test, mnist1d_fresh_test(data, samples)
        (test, fresh_set), model = sets[data], trained_network(r)
        book_hits[r.config.hash] = hits(model, *test)
        stored, again = r.metrics["test_accuracy"], float(book_hits[r.config.hash].mean())
        if abs(again - stored) > 0.5 / len(test[1]):
            raise ValueError(f"run {r.config.hash}: its final network scores {again:.4f} on the book's test set, "
                             f"not the stored {stored:.4f}; its checkpoint is not the network the metrics came from")
        out.append(_with_accuracy(r, accuracy(model, *fresh_set)))
    return out, book_hits


def shared_error(chapter: str, p, results: Sequence[Result], book_hits: dict[str, np.ndarray],
                 resamples: int = SHARED_RESAMPLES, seed: int = 0) -> dict[str, float]:
    """Claim id -> the standard error that the sampling of the book's test examples alone gives the claim's mean
    effect over seeds, the trained networks held fixed: the standard deviation, over resamples of the test
    examples (drawn with replacement, one draw for every run at once, as every run is scored on the same
    examples), of the mean effect recomputed from the resampled accuracies (a table claim: the mean over its
    rivals too)."""
    sizes = {len(h) for h in book_hits.values()}
    if len(sizes) != 1:
        raise ValueError(f"{chapter}: the runs were scored on test sets of different sizes {sorted(sizes)}")
    n, rng, means = sizes.pop(), np.random.default_rng(seed), {}
    for _ in range(resamples):
        rows = rng.integers(0, n, n)
        resampled = [_with_accuracy(r, float(book_hits[r.config.hash][rows].mean())) for r in results]
        for claim_id, effects in EFFECTS[chapter](p, resampled).items():
            means.setdefault(claim_id, []).append(float(np.mean(effects.to_numpy())))
    return {claim_id: float(np.std(m, ddof=1)) for claim_id, m in means.items()}


def spread(effects: pd.Series | pd.DataFrame) -> float:
    """The per-seed standard deviation of a claim's effects; for a table (seeds x rivals), the root mean square
    of the rivals' standard deviations."""
    if isinstance(effects, pd.Series):
        return float(effects.std(ddof=1))
    return float(np.sqrt(effects.var(ddof=1).mean()))


def share(book: float, fresh: float, n_book: int, n_fresh: int) -> float:
    """The test set's share of the book's variance: ``(v_book - v_fresh) / (1 - n_book / n_fresh) / v_book``
    (NaN when the effects do not vary on the book's test set)."""
    if not book > 0:
        return float("nan")
    return (book ** 2 - fresh ** 2) / (1 - n_book / n_fresh) / book ** 2


def bootstrap_share(book: pd.Series | pd.DataFrame, fresh: pd.Series | pd.DataFrame, n_book: int, n_fresh: int,
                    resamples: int = BOOTSTRAP, seed: int = 0) -> tuple[float, float]:
    """The 95% percentile bootstrap interval of :func:`share`, resampling the seeds (rows) of both together."""
    fresh = fresh.loc[book.index]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        rows = rng.integers(0, len(book), len(book))
        values.append(share(spread(book.iloc[rows]), spread(fresh.iloc[rows]), n_book, n_fresh))
    values = [v for v in values if not np.isnan(v)]  # resamples of a single seed have no spread
    if not values:
        return float("nan"), float("nan")
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def widened(effects: pd.Series | pd.DataFrame, factor: float) -> pd.Series | pd.DataFrame:
    """``effects`` spread ``factor`` times as far about their mean (per rival for a table): the same mean, a
    standard deviation ``factor`` times as large, so that the claim's own rule (:func:`rplib.claims.decide`)
    decides with an interval ``factor`` times as wide."""
    return effects.mean() + factor * (effects - effects.mean())


def _needed(claim, sd: float) -> int:
    return seeds_needed(claim, sd) if sd > 0 else 2  # effects that do not vary: the fewest seeds a rule takes


def spread_table(runs: Path | str, data_root: str = "data", samples: int = FRESH_SAMPLES, profile: str = "cpu",
                 root: Path | str = ".", progress: bool = True) -> pd.DataFrame:
    """One row per claim of the MNIST-1D chapters of ``profile``: seeds, spread on the book's test set and on
    ``samples`` fresh examples, the test set's share of the variance (with its bootstrap interval), the mean
    effect on both, the standard errors of the mean from the seeds and from the test set's sampling
    (:func:`shared_error`), the claim's raw verdict and its verdict with an interval widened to count both
    (:func:`widened`), and the seeds 80% power needs at either spread."""
    rows = []
    for chapter, values in plan(profile, root=root).items():
        if chapter not in EFFECTS:
            continue
        p = chapters.params(chapter, values)
        if p.dataset != "mnist1d":
            continue
        results = chapter_results(chapter, p, runs)
        n_book = split_sizes(results[0].config.data)["test"]
        book = EFFECTS[chapter](p, results)
        fresh_scored, book_hits = fresh_results(results, data_root, samples, progress)
        fresh = EFFECTS[chapter](p, fresh_scored)
        shared = shared_error(chapter, p, results, book_hits)
        for claim_id, effects in book.items():
            c = CLAIMS[claim_id]
            sd_book, sd_fresh = spread(effects), spread(fresh[claim_id])
            low, high = bootstrap_share(effects, fresh[claim_id], n_book, samples)
            seed_se = sd_book / np.sqrt(len(effects))
            factor = float(np.sqrt(1 + (shared[claim_id] / seed_se) ** 2))
            rows.append({"claim": claim_id, "chapter": chapter, "unit": c.unit, "seeds": len(effects),
                         "table": isinstance(effects, pd.DataFrame),
                         "test examples": n_book, "spread (book test set)": sd_book,
                         "spread (fresh test set)": sd_fresh,
                         "test-set share": share(sd_book, sd_fresh, n_book, samples),
                         "share low": low, "share high": high,
                         "mean (book test set)": float(np.mean(effects.to_numpy())),
                         "mean (fresh test set)": float(np.mean(fresh[claim_id].to_numpy())),
                         SEED_SE: seed_se, TEST_SE: shared[claim_id],
                         "verdict": decide(c, effects).verdict,
                         WIDE: decide(c, widened(effects, factor)).verdict,
                         "seeds needed (book test set)": _needed(c, sd_book),
                         "seeds needed (fresh test set)": _needed(c, sd_fresh)})
    return pd.DataFrame(rows).set_index("claim")


def _pct(v: float) -> str:
    return f"{fixed(100 * v, 0)}%"


def _signed(v: float) -> str:
    text = fixed(v, 2)
    return text if text.startswith("-") or float(text) == 0 else f"+{text}"


def spread_markdown(t: pd.DataFrame, samples: int = FRESH_SAMPLES) -> str:
    """The page's table and the sentences that read it, every number from ``t`` (and the power table's pilots)."""
    n_book = int(t["test examples"].iloc[0])
    units = ", ".join(sorted(set(t["unit"])))
    lines = [f"Spreads and effects are in the claims' units ({units}). For a claim that compares one "
             "reference with several rivals (per rival), the spread is the root mean square of the rivals' "
             "spreads and the mean effect the mean over its rivals.", "",
             f"| claim | seeds | pilot spread (power table) | spread per seed, {n_book} test examples | "
             f"spread, {samples:,} fresh examples | test set's share of the variance [95% bootstrap] | "
             "mean effect, book's test set | mean effect, fresh examples | "
             "standard error of the mean effect: seeds / test set (shared) | "
             "raw verdict: as published / with the test set's error counted | "
             "seeds for 80% power: book's test set / fresh |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for k, r in t.iterrows():
        table = " (per rival)" if r["table"] else ""
        lines.append(f"| `{k}`{table} | {r['seeds']} | {fixed(PILOT[k].sd, 2)} | "
                     f"{fixed(r['spread (book test set)'], 2)} | {fixed(r['spread (fresh test set)'], 2)} | "
                     f"{_pct(r['test-set share'])} [{_pct(r['share low'])}, {_pct(r['share high'])}] | "
                     f"{_signed(r['mean (book test set)'])} | {_signed(r['mean (fresh test set)'])} | "
                     f"{fixed(r[SEED_SE], 2)} / {fixed(r[TEST_SE], 2)} | "
                     f"{r['verdict']} / {r[WIDE]} | "
                     f"{r['seeds needed (book test set)']} / {r['seeds needed (fresh test set)']} |")
    shares = t["test-set share"]
    fewer = t[t["seeds needed (fresh test set)"] < t["seeds needed (book test set)"]]
    shift = (t["mean (fresh test set)"] - t["mean (book test set)"]).abs()
    cut = (fewer["seeds needed (book test set)"] - fewer["seeds needed (fresh test set)"]) \
        / fewer["seeds needed (book test set)"]
    most = ", ".join(f"`{k}` ({fewer.loc[k, 'seeds needed (book test set)']} to "
                     f"{fewer.loc[k, 'seeds needed (fresh test set)']})"
                     for k in cut.sort_values(ascending=False).index[:3])
    wider = [k for k in t.index if t.loc[k, "spread (book test set)"] > PILOT[k].sd]
    ratio = t[TEST_SE] / t[SEED_SE]
    widest = float(np.sqrt(1 + ratio.max() ** 2))
    lines += ["", f"Over the {len(t)} claims, the sampling of the {n_book} test examples makes "
              f"{_pct(shares.median())} of the seed-to-seed variance at the median (from {_pct(shares.min())} "
              f"to {_pct(shares.max())}); the rest is training's (initialisation, mask, batch order). "
              f"With 5 or 10 seeds each claim's share is a rough figure (its interval is wide, and a negative "
              f"estimate only means that the two spreads are within noise of each other).", "",
              f"A test set of {samples:,} examples would cut the seeds that 80% power needs for "
              f"{len(fewer)} of them, most for {most}. The spreads of the confirmatory runs exceed the pilot "
              f"spreads the seeds were chosen with for {len(wider)} of the {len(t)} claims: the power table "
              f"promised more than these runs could deliver, and the seed counts of the last column, at the "
              f"spreads measured here, are the ones to plan a next run with.", "",
              f"On the fresh examples the mean effects move by {fixed(shift.median(), 2)} points at the median "
              f"(at most {fixed(shift.max(), 2)}): the part of the test set's error that every seed shares, which "
              f"no interval over seeds contains. Its typical size is the test set's standard error of the mean "
              f"effect ({SHARED_RESAMPLES} resamples of the {n_book} test examples, the networks fixed): "
              f"{fixed(t[TEST_SE].median(), 2)} points at the median, against the seeds' standard error of "
              f"{fixed(t[SEED_SE].median(), 2)} from which the 95% intervals are built. It is at least half the "
              f"seeds' for {int((ratio >= 0.5).sum())} of the {len(t)} claims. An interval that counted both would "
              f"be wider by at most a factor of $\\sqrt{{1 + r^2}}$, $r$ the ratio of the two: "
              f"{fixed(float(np.sqrt(1 + ratio.median() ** 2)), 2)} at the median, {fixed(widest, 2)} for "
              f"`{ratio.idxmax()}` (the bootstrap's error also holds the part that varies between seeds, which "
              f"the seeds' error already counts). " + _changed_sentence(t)]
    return "\n".join(lines)


def _changed_sentence(t: pd.DataFrame) -> str:
    """Which raw verdicts the widest interval that counts the test set's error would change."""
    changed = t[t["verdict"] != t[WIDE]]
    if changed.empty:
        return ("Decided by their own rules with intervals widened that far, the claims keep their raw verdicts "
                "(the table's next to last column).")
    moves = ", ".join(f"`{k}` ({r['verdict']} to {r[WIDE]})" for k, r in changed.iterrows())
    return (f"Decided by their own rules with intervals widened that far (the table's next to last column), "
            f"{len(changed)} of the {len(t)} raw verdicts would change: {moves}.")


_INTRO = """# Where the spread comes from

Every verdict of this book rests on a per-seed effect whose spread over seeds sets the width of its
interval, and so the seeds its rule needs ({{doc}}`verdicts`, power by design). That spread has two
sources: the training of each seed's networks (initialisation, mask, batch order), and the sampling of the
{n_book} MNIST-1D test examples each network is scored on. Only the second shrinks with a larger test set.

MNIST-1D is generated, so a second test set costs nothing: {samples:,} new examples from the same
generator (seed {seed}, `rplib.data.mnist1d_fresh_test`), on which no run trained or was selected. Each
confirmatory run's final network is scored on them (after reproducing its stored test accuracy on the
book's test set, run by run), and each claim's effects are recomputed by its chapter's own code. The
variances over seeds on the two test sets separate the sources (`rplib.spread`: the test set's share is
$(v_\\text{{book}} - v_\\text{{fresh}}) / (1 - {n_book}/{samples}) / v_\\text{{book}}$). The chapters on
scikit-learn's digits (6 and 7) have no generator and are not in the table.

Every seed is scored on the same {n_book} examples, so part of their sampling error moves every seed's
effect alike: no spread over seeds contains it, and so no interval. The last paragraph below measures
it. The published verdicts stay those of the book's test set: the rules and the test set were fixed
before the confirmatory runs, and this page was measured after them.

"""


def write_spread(t: pd.DataFrame, samples: int = FRESH_SAMPLES, root: Path | str = ".") -> Path:
    """Write ``book/spread.md`` from the table of :func:`spread_table`."""
    n_book = int(t["test examples"].iloc[0])
    text = _INTRO.format(n_book=n_book, samples=samples, seed=MNIST1D_FRESH_SEED)
    text += spread_markdown(t, samples) + "\n"
    path = Path(root) / PAGE
    atomic_write_text(path, text)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rplib.spread", description=__doc__.splitlines()[0])
    ap.add_argument("--runs", required=True, help="the store where the profile's chapters have finished")
    ap.add_argument("--data-root", default="data", help="where MNIST-1D is kept (default: data)")
    ap.add_argument("--samples", type=int, default=FRESH_SAMPLES,
                    help=f"fresh test examples (default: {FRESH_SAMPLES})")
    ap.add_argument("--profile", default="cpu", help="the profile whose chapters ran (default: cpu)")
    args = ap.parse_args(argv)
    try:
        t = spread_table(args.runs, args.data_root, args.samples, args.profile)
        print(write_spread(t, args.samples))
    except ValueError as e:
        print(f"rplib.spread: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
