"""Chapter 05 (drop criteria in DST): the claims' per-seed effects, their pairing, and the cpu profile's grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rplib import book, plan
from rplib.chapters import dst_criteria as ch
from rplib.claims import CLAIMS, decide

ROOT = Path(__file__).resolve().parents[1]
CLAIM_IDS = ["drop_criteria_alike", "magnitude_best_low_density", "dst_beats_static"]


def _row(seed, density, criterion, accuracy, growth="random", period=5):
    static = criterion == ch.STATIC
    return {"seed": seed, "density": density, "criterion": criterion, "growth": "none" if static else growth,
            "update_period": 0 if static else period, "accuracy": float(accuracy)}


# Two seeds, random growth, densities 0.05 and 0.2, criteria magnitude / set / random, worked out by hand:
#   seed 0: d=0.05 mag 50 set 48 rnd 40 static 45 | d=0.2 mag 60 set 61 rnd 55 static 62
#   seed 1: d=0.05 mag 47 set 49 rnd 30 static 40 | d=0.2 mag 58 set 58 rnd 50 static 60
#   best - median:   seed 0 (2 + 1) / 2 = 1.5;   seed 1 (2 + 0) / 2 = 1.0
#   magnitude - best other (set: mean 48.5) at d=0.05:   seed 0 +2;   seed 1 -2
#   magnitude/random growth - static:   seed 0 (5 - 2) / 2 = 1.5;   seed 1 (7 - 2) / 2 = 2.5
ACC = {0: {0.05: (50, 48, 40, 45), 0.2: (60, 61, 55, 62)}, 1: {0.05: (47, 49, 30, 40), 0.2: (58, 58, 50, 60)}}
EXPECTED_V1 = {"drop_criteria_alike": {0: 1.5, 1: 1.0}, "magnitude_best_low_density": {0: 2.0, 1: -2.0},
               "dst_beats_static": {0: 1.5, 1: 2.5}}
# Rules version 2: seeds x rivals tables of magnitude - rival, averaged over the densities (criteria_alike) or at
# the lowest density (magnitude_best):
#   magnitude - set:    seed 0 (2 - 1) / 2 = 0.5;    seed 1 (-2 + 0) / 2 = -1;   at d=0.05: +2, -2
#   magnitude - random: seed 0 (10 + 5) / 2 = 7.5;   seed 1 (17 + 8) / 2 = 12.5; at d=0.05: 10, 17
EXPECTED = {"drop_criteria_alike": {"set": {0: 0.5, 1: -1.0}, "random": {0: 7.5, 1: 12.5}},
            "magnitude_best_low_density": {"set": {0: 2.0, 1: -2.0}, "random": {0: 10.0, 1: 17.0}},
            "dst_beats_static": {0: 1.5, 1: 2.5}}
# With the choices held out of the scored seed: seed 0 is scored on the other seed's best and median criterion.
#   d=0.05: seed 1 ranks set 49 > mag 47 > rnd 30, so seed 0 scores set - mag = -2; seed 0 ranks mag > set > rnd,
#   so seed 1 scores mag - set = -2.   d=0.2: seed 1 ranks mag = set (mag first) > rnd, median mag: 0; seed 0
#   ranks set > mag > rnd: seed 1 scores set - mag = 0.   So (-2 + 0) / 2 = -1 for both seeds.
#   magnitude's rival is set on either seed, as before.
HELD_OUT = EXPECTED_V1 | {"drop_criteria_alike": {0: -1.0, 1: -1.0}}
P = ch.Params(densities=[0.05, 0.2], criteria=["magnitude", "set", "random"], growths=["random"], update_period=5,
              seeds=2)


def _hand_frame() -> pd.DataFrame:
    rows = []
    for seed, by_density in ACC.items():
        for d, values in by_density.items():
            rows += [_row(seed, d, c, a) for c, a in zip(["magnitude", "set", "random", ch.STATIC], values)]
        # runs that must not enter the claims: another update period (the sweep), a density outside the grid
        rows += [_row(seed, 0.05, "magnitude", 99.0, period=50), _row(seed, 0.5, ch.STATIC, 99.0),
                 _row(seed, 0.5, "magnitude", 0.0)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("held_out, expected_effects", [(False, EXPECTED), (True, HELD_OUT)])
def test_claim_effects_are_the_hand_computed_per_seed_effects(held_out, expected_effects):
    effects = ch.claim_effects(_hand_frame(), P, held_out=held_out)
    assert list(effects) == CLAIM_IDS == list(ch.CLAIM_IDS)
    for claim, expected in expected_effects.items():
        assert effects[claim].index.tolist() == [0, 1]
        got = effects[claim]
        if isinstance(got, pd.DataFrame):  # rules version 2: seeds x rivals
            pd.testing.assert_frame_equal(got, pd.DataFrame(expected)[list(got.columns)], check_names=False)
        else:
            assert got.to_dict() == pytest.approx(expected), claim


def test_row_order_changes_nothing():
    frame = _hand_frame()
    base = ch.claim_effects(frame, P)
    for seed in range(3):
        shuffled = ch.claim_effects(frame.sample(frac=1.0, random_state=seed).reset_index(drop=True), P)
        for claim in CLAIM_IDS:
            (pd.testing.assert_frame_equal if isinstance(base[claim], pd.DataFrame) else pd.testing.assert_series_equal)(
                shuffled[claim], base[claim])


def test_effects_per_setting_average_to_the_claim_effects():
    long = ch.setting_effects(_hand_frame(), P)
    assert long.groupby("claim").size().to_dict() == {"drop_criteria_alike": 4, "magnitude_best_low_density": 2,
                                                      "dst_beats_static": 4}
    at = long.set_index(["claim", "density", "seed"]).effect
    assert at["drop_criteria_alike", 0.2, 0] == 1.0 and at["dst_beats_static", 0.05, 1] == 7.0
    table = ch.effect_table(_hand_frame(), P)
    assert table.loc[("magnitude_best_low_density", "random", 0.05)].iloc[0] == "0.0 [-25.4, 25.4]"


def test_a_random_frame_matches_a_loop_over_seeds():
    rng = np.random.default_rng(0)
    p = ch.Params(densities=[0.05, 0.1, 0.3], criteria=["random", "magnitude", "set", "mest", "snip"],
                  growths=["random", "gradient"], update_period=7, seeds=4)
    acc = {}
    rows = []
    for s in range(p.seeds):
        for d in p.densities:
            acc[ch.STATIC, "none", d, s] = rng.normal(50, 5)
            rows.append(_row(s, d, ch.STATIC, acc[ch.STATIC, "none", d, s]))
            for g in p.growths:
                for c in p.criteria:
                    acc[c, g, d, s] = rng.normal(50, 5)
                    rows.append(_row(s, d, c, acc[c, g, d, s], growth=g, period=7))
    effects = ch.claim_effects(pd.DataFrame(rows), p)
    assert list(effects["drop_criteria_alike"].columns) == ["random", "set", "mest", "snip"]  # every rival
    for s in range(p.seeds):
        for r in ["random", "set", "mest", "snip"]:
            alike = [acc["magnitude", g, d, s] - acc[r, g, d, s] for g in p.growths for d in p.densities]
            best = [acc["magnitude", g, 0.05, s] - acc[r, g, 0.05, s] for g in p.growths]
            assert effects["drop_criteria_alike"].loc[s, r] == pytest.approx(np.mean(alike))
            assert effects["magnitude_best_low_density"].loc[s, r] == pytest.approx(np.mean(best))
        static = [acc["magnitude", "random", d, s] - acc[ch.STATIC, "none", d, s] for d in p.densities]
        assert effects["dst_beats_static"][s] == pytest.approx(np.mean(static))
    held = ch.claim_effects(pd.DataFrame(rows), p, held_out=True)
    for s in range(p.seeds):
        def mean_elsewhere(c, g, d):
            return np.mean([acc[c, g, d, t] for t in range(p.seeds) if t != s])

        alike, best = [], []
        for g in p.growths:
            for d in p.densities:
                ranked = sorted(p.criteria, key=lambda c: mean_elsewhere(c, g, d))  # 5 criteria: one median
                alike.append(acc[ranked[-1], g, d, s] - acc[ranked[2], g, d, s])
            rival = max((c for c in p.criteria if c != "magnitude"), key=lambda c: mean_elsewhere(c, g, 0.05))
            best.append(acc["magnitude", g, 0.05, s] - acc[rival, g, 0.05, s])
        assert held["drop_criteria_alike"][s] == pytest.approx(np.mean(alike))
        assert held["magnitude_best_low_density"][s] == pytest.approx(np.mean(best))
        assert held["dst_beats_static"][s] == pytest.approx(effects["dst_beats_static"][s])


def test_an_unpaired_seed_is_an_error():
    frame = _hand_frame()
    lonely = (frame.seed == 1) & (frame.criterion == "set") & (frame.density == 0.2)
    with pytest.raises(ValueError, match="unpaired"):
        ch.claim_effects(frame[~lonely], P)
    no_static = (frame.seed == 0) & (frame.criterion == ch.STATIC) & (frame.density == 0.05)
    with pytest.raises(ValueError, match="unpaired"):
        ch.claim_effects(frame[~no_static], P)


def test_a_duplicated_run_is_an_error():
    frame = _hand_frame()
    with pytest.raises(ValueError, match="several"):
        ch.claim_effects(pd.concat([frame, frame.iloc[[0]]]), P)


def test_a_seed_missing_from_a_whole_setting_is_an_error():
    frame = _hand_frame()
    extra = pd.DataFrame([_row(2, 0.05, c, 40.0) for c in ["magnitude", "set", "random", ch.STATIC]])
    with pytest.raises(ValueError, match=r"seed\(s\) \[2\] lack"):
        ch.claim_effects(pd.concat([frame, extra]), P)


def test_one_seed_is_inconclusive():
    frame = _hand_frame()
    effects = ch.claim_effects(frame[frame.seed == 0], P)
    for claim, e in effects.items():
        v = decide(CLAIMS[claim], e)
        assert v.n == 1 and v.verdict == "inconclusive" and np.isnan(v.low)


def test_the_claims_need_magnitude_and_random_growth():
    with pytest.raises(ValueError, match="criteria.*'magnitude'"):
        ch.Params(criteria=["set", "random"])
    with pytest.raises(ValueError, match="growths.*'random'"):
        ch.Params(growths=["gradient"])


def _cpu() -> ch.Params:
    return ch.Params.from_dict(book.load_profiles(ROOT)["05_dst_criteria"]["cpu"])


def test_cpu_profile_has_five_seeds_and_every_distinct_criterion():
    from rplib.dst import DROP_CRITERIA

    p = _cpu()
    assert p.seeds >= 5 and p.dense
    distinct = {c for c in DROP_CRITERIA if c not in ch.SAME_RANKING}
    assert set(p.criteria) == distinct and set(p.growths) == {"random", "gradient"}


def test_cpu_grid_pairs_every_variant_with_its_reference_for_every_seed():
    p = _cpu()
    rows = [_row(c.seed, c.sparsity.density, ch.STATIC if c.dst.drop == "none" else c.dst.drop, 50.0 + i % 7,
                 growth=c.dst.grow, period=c.dst.update_period) for i, c in enumerate(ch.grid(p))]
    frame = pd.DataFrame(rows)
    effects = ch.claim_effects(frame, p)  # raises on any unpaired or missing run
    for claim in CLAIM_IDS:
        assert effects[claim].index.tolist() == p.seed_list, claim
    long = ch.setting_effects(frame, p)
    assert (long.groupby(["claim", "growth", "density"]).size() == p.seeds).all()
    gains = ch.gain_table(frame, p)  # every (growth, criterion, density) pairs with static on every seed
    assert gains.shape == (len(p.growths) * len(p.criteria), len(p.densities))


def test_cpu_profile_fits_the_budget(tmp_path: Path):
    (row,) = plan.plan("cpu", only=["05_dst_criteria"], root=ROOT, runs=tmp_path)
    # the chapter's share of `make book` (<= 20 min on 2 cores): at most 3 minutes of training on 2 workers,
    # estimated from the published build's seconds per epoch (plan's hours are one worker's)
    assert row.hours is not None and row.hours / 2 <= 3 / 60, row


# --------------------------------------------------------------------------- what chapter 5 shows beside the claims


def test_similarity_notes_count_the_pairs_of_distinct_criteria():
    p = ch.Params(criteria=["magnitude", "set", "snip", "taylor_fo", "random"])
    names = pd.Index(p.criteria)
    values = np.full((5, 5), 0.2)
    np.fill_diagonal(values, 1.0)
    sim = pd.DataFrame(values, index=names, columns=names)
    sim.loc["snip", "taylor_fo"] = sim.loc["taylor_fo", "snip"] = 1.0  # one ranking: no pair of its own
    sim.loc["magnitude", "set"] = sim.loc["set", "magnitude"] = 0.9
    sim.loc["random", "set"] = sim.loc["set", "random"] = np.nan  # e.g. a criterion that dropped nothing
    notes = ch.similarity_notes(sim, p)
    assert "taylor_fo" not in " ".join(notes.values())
    assert notes["sim_closest"] == "`magnitude` and `set` (0.90)"
    # 4 distinct criteria: 6 pairs, one without a value; 0.2 < chance 0.5 / 1.5, so only magnitude-set is above
    assert notes["sim_above_chance"] == "1 of 5 (and 1 without a value)"


def test_criteria_near_chance_are_flagged_against_the_number_of_classes():
    frame = _hand_frame()
    frame.loc[(frame.criterion == "random") & (frame.density == 0.05), "accuracy"] = [12.0, 12.5]  # 10 classes
    frame = pd.concat([frame, pd.DataFrame([{"seed": s, "density": 1.0, "criterion": ch.DENSE, "growth": "none",
                                             "update_period": 0, "accuracy": a} for s, a in [(0, 70.0), (1, 72.0)]])])
    chance = ch.chance_table(frame, P)
    assert list(chance.index) == [("random", "random", 0.05)]
    assert chance["chance (%)"].iloc[0] == 10.0
    assert ch.chance_note(chance) == "near chance: random (random growth, d = 0.05)"
    r = ch.regime(P, frame)
    assert r.dense_accuracy["mlp 256-256"][0] == 71.0 and r.notes == (ch.chance_note(chance),)
    frame.loc[(frame.criterion == "random") & (frame.density == 0.05), "accuracy"] = [40.0, 42.0]
    assert ch.chance_table(frame, P).empty


def test_the_dense_baseline_is_in_the_grid_once_per_seed():
    p = _cpu()
    dense = [c for c in ch.grid(p) if not c.sparsity.sparse]
    assert [c.seed for c in dense] == p.seed_list
    assert not [c for c in ch.grid(ch.Params(dense=False)) if not c.sparsity.sparse]
