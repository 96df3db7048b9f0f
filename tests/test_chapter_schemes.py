"""Chapter 03 (layer-wise schemes): the claim's per-seed effects, the descriptive differences, the cpu grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rplib import book, chapters
from rplib.chapters import schemes
from rplib.claims import CLAIMS, decide

ROOT = Path(__file__).resolve().parents[1]
P = schemes.Params(schemes=["uniform", "erk", "snip"], sparsities=[0.5, 0.9], seeds=4)


def synthetic(effect_at_top: dict[int, float], shift_at_low: float = 3.0) -> pd.DataFrame:
    """A results frame: uniform at random accuracies, erk = uniform + effect (top sparsity) or + shift (0.5)."""
    rng = np.random.default_rng(0)
    rows = []
    for seed, effect in effect_at_top.items():
        rows.append({"scheme": "dense", "sparsity": 0.0, "seed": seed, "accuracy": 90.0 + seed, "hash": f"d{seed}"})
        for s, diff in ((0.5, shift_at_low), (0.9, effect)):
            base = float(rng.uniform(40, 80))
            rows += [{"scheme": "uniform", "sparsity": s, "seed": seed, "accuracy": base, "hash": f"u{s}{seed}"},
                     {"scheme": "erk", "sparsity": s, "seed": seed, "accuracy": base + diff, "hash": f"e{s}{seed}"},
                     {"scheme": "snip", "sparsity": s, "seed": seed, "accuracy": base - 1.0, "hash": f"s{s}{seed}"}]
    return pd.DataFrame(rows)


EFFECTS = {0: 2.5, 1: -1.0, 2: 4.0, 3: 0.5}


def test_claim_effect_is_erk_minus_uniform_at_the_highest_sparsity_per_seed():
    effects = schemes.claim_effects(synthetic(EFFECTS), P)
    assert list(effects) == ["erk_beats_uniform"] and set(effects) <= set(CLAIMS)
    e = effects["erk_beats_uniform"]
    assert list(e.index) == [0, 1, 2, 3]
    assert e.to_numpy() == pytest.approx([EFFECTS[k] for k in range(4)])
    assert decide(CLAIMS["erk_beats_uniform"], e).n == 4


def test_row_order_changes_nothing():
    frame = synthetic(EFFECTS)
    shuffled = frame.sample(frac=1.0, random_state=1).reset_index(drop=True)
    a = schemes.claim_effects(frame, P)["erk_beats_uniform"]
    b = schemes.claim_effects(shuffled, P)["erk_beats_uniform"]
    pd.testing.assert_series_equal(a, b)


def test_effect_ignores_the_descriptive_baseline_and_challenger():
    p = schemes.Params(schemes=["uniform", "erk", "snip"], sparsities=[0.5, 0.9], baseline="snip", challenger="uniform")
    e = schemes.claim_effects(synthetic(EFFECTS), p)["erk_beats_uniform"]
    assert e.to_numpy() == pytest.approx(list(EFFECTS.values()))


def test_an_unpaired_seed_is_an_error():
    frame = synthetic(EFFECTS)
    frame = frame[~((frame.scheme == "uniform") & (frame.sparsity == 0.9) & (frame.seed == 2))]
    with pytest.raises(ValueError, match=r"unpaired \['seed'\] \[2\]"):
        schemes.claim_effects(frame, P)


def test_a_duplicated_seed_is_an_error():
    frame = synthetic(EFFECTS)
    frame = pd.concat([frame, frame[(frame.scheme == "erk") & (frame.sparsity == 0.9) & (frame.seed == 1)]])
    with pytest.raises(ValueError, match="several scheme='erk' rows"):
        schemes.claim_effects(frame, P)


def test_claim_needs_erk_and_uniform_in_the_schemes():
    p = schemes.Params(schemes=["uniform", "erk_plus"], challenger="erk_plus")
    with pytest.raises(ValueError, match="claim erk_beats_uniform compares erk with uniform"):
        schemes.claim_effects(synthetic(EFFECTS), p)


def test_single_seed_is_inconclusive():
    e = schemes.claim_effects(synthetic({0: 3.0}), P)["erk_beats_uniform"]
    v = decide(CLAIMS["erk_beats_uniform"], e)
    assert v.verdict == "inconclusive" and v.n == 1 and np.isnan(v.low)


def test_difference_table_is_paired_per_sparsity():
    frame = synthetic(EFFECTS)
    diffs = schemes.differences(frame, P)
    erk = diffs[(diffs.scheme == "erk")].set_index(["sparsity", "seed"]).difference
    assert erk.loc[0.9].to_numpy() == pytest.approx(list(EFFECTS.values()))
    assert erk.loc[0.5].to_numpy() == pytest.approx([3.0] * 4)
    assert diffs[diffs.scheme == "snip"].difference.to_numpy() == pytest.approx([-1.0] * 8)
    table = schemes.difference_table(frame, P)
    assert list(table.index) == ["erk - uniform", "snip - uniform"] and list(table.columns) == ["0.5", "0.9"]
    assert table.loc["erk - uniform", "0.5"] == "3.0 (no spread)"
    acc = schemes.accuracy_table(frame, P)
    assert list(acc.index) == ["uniform", "erk", "snip", "dense (no mask)"]


def test_cpu_profile_has_five_seeds_and_pairs_every_variant_with_uniform_for_every_seed():
    overrides = book.plan("cpu", ["03_schemes"], ROOT)["03_schemes"]
    p = chapters.params("03_schemes", overrides)
    assert p.seeds >= 5
    assert {"erk", "uniform"} <= set(p.schemes) and len(p.schemes) == 7
    net = schemes.network(p)
    configs = schemes.grid(p, net)
    assert len({c.hash for c in configs}) == len(configs)
    seen: dict[tuple[str, float], set[int]] = {}
    for c in configs:
        key = ("dense", 0.0) if c.sparsity.method == "dense" else (c.sparsity.scheme, round(1 - c.sparsity.density, 6))
        seen.setdefault(key, set()).add(c.seed)
    seeds = set(p.seed_list)
    assert seen.pop(("dense", 0.0)) == seeds
    top = max(p.sparsities)
    assert seen[("erk", top)] == seen[("uniform", top)] == seeds
    for (scheme, s), got in seen.items():
        assert got == seeds and seen[(p.baseline, s)] == seeds, (scheme, s)
    assert {(sc, s) for sc in p.schemes for s in p.sparsities} == set(seen) | set(net.unreachable)


def test_erk_plus_is_decided_at_every_sparsity_where_it_is_reachable():
    p = schemes.Params(schemes=["uniform", "erk", "erk_plus"], sparsities=[0.5, 0.9], seeds=4)
    frame = synthetic(EFFECTS)
    plus = frame[frame.scheme == "erk"].assign(scheme="erk_plus")
    plus["accuracy"] = plus.accuracy + plus.seed * 0.5 - plus.sparsity  # ERK+ - ERK: 0.5 seed - sparsity
    frame = pd.concat([frame, plus])
    net = schemes.Network(1000, {}, {("erk_plus", 0.9): "the dense classifier exceeds the budget"})
    table = schemes.erk_plus_effects(frame, p, net)
    assert list(table.columns) == ["sparsity 0.5"]  # 0.9 is unreachable for ERK+
    np.testing.assert_allclose(table["sparsity 0.5"].to_numpy(), [0.5 * s - 0.5 for s in range(4)])
    verdicts = {v.claim: v for v in schemes.claim_verdicts(frame, p, net)}
    assert set(verdicts) == {"erk_beats_uniform", "erk_plus_matches_erk"}
    assert set(verdicts["erk_plus_matches_erk"].cases) == {"sparsity 0.5"}
    assert schemes.erk_plus_effects(frame, P, net).empty  # no ERK+ in the schemes: no claim


def test_schemes_near_chance_at_a_sparsity_go_into_the_regimes_caveat():
    from rplib import regime as rregime

    p = schemes.Params(sparsities=[0.5, 0.98], schemes=["uniform", "erk"], seeds=3)
    rows = [{"scheme": "dense", "sparsity": 0.0, "seed": s, "accuracy": 88.0 + s, "hash": f"d{s}"} for s in range(3)]
    rows += [{"scheme": sc, "sparsity": sp, "seed": s, "accuracy": acc + s / 10, "hash": f"{sc}{sp}{s}"}
             for sc in ("uniform", "erk") for sp, acc in ((0.5, 87.0), (0.98, 10.0 if sc == "erk" else 60.0))
             for s in range(3)]
    r = schemes.regime(p, pd.DataFrame(rows))
    assert r.notes == ("near chance at sparsity 0.98: erk",)
    assert "near chance at sparsity 0.98: erk" in rregime.regime_notes(r)
