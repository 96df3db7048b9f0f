"""Chapter 04's claims: per-seed paired effects from a synthetic frame, pairing errors, and the cpu profile's grid."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from rplib import book, chapters, models
from rplib.chapters import sanity
from rplib.claims import CLAIMS, decide
from rplib.plan import SECONDS_PER_EPOCH, plan
from rplib.pruning import magnitude_scores, mask_from_scores
from rplib.sparsity import Mask

ROOT = Path(__file__).resolve().parents[1]
NAME = "04_sanity_checks"

# Per-seed offsets (points) of each variant against the original mask, per (method, density).
REARRANGE = {("snip", 0.1): [1.0, -2.0, 0.5], ("snip", 0.05): [0.0, 1.0, -1.5],
             ("grasp", 0.1): [2.0, 0.0, 0.5], ("grasp", 0.05): [-1.0, 3.0, 0.5]}
LABELS = {("snip", 0.1): [0.5, 0.5, -1.0], ("snip", 0.05): [1.5, 0.0, 0.0],
          ("grasp", 0.1): [-0.5, 2.0, 1.0], ("grasp", 0.05): [0.0, -1.0, 2.0]}
PIXELS = {("snip", 0.1): [-1.0, 0.0, 0.0], ("snip", 0.05): [0.5, 0.5, 0.5],
          ("grasp", 0.1): [3.0, -3.0, 1.0], ("grasp", 0.05): [1.0, 1.0, -2.0]}
TICKET = {(0.1,): [-0.5, 1.0, 2.0], (0.05,): [0.5, -1.0, 0.0]}  # random ticket - SNIP (the better method by design)
SHUFFLE, HALF = 0.2, -0.3  # shuffled weights / half data - original SNIP or GraSP mask: these times the seed
LOTTERY = {"rearranged": -5.0, "shuffled weights": -4.0}  # lottery ticket under a check - original, minus the seed
HYBRID = 1.0  # hybrid ticket - random ticket: this plus half the seed; the original lottery ticket is SNIP - 10


def params(**kw) -> sanity.Params:
    base = dict(densities=[0.1, 0.05], seeds=3, methods=["snip", "grasp", "lottery"], sanity_checks=["rearrange",
                "shuffle", "reinit"], prune_data=["random_labels", "random_pixels", "half"], hybrid_tickets=True)
    return sanity.Params(**(base | kw))


def table_offset(table: dict, key: tuple, seed: int) -> float:
    """The offset of ``table`` (per-seed lists above); profiles with other densities or seeds get a generic one."""
    return table[key][seed] if key in table and seed < len(table[key]) else 0.1 * seed


def synthetic_frame(p: sanity.Params) -> pd.DataFrame:
    """One row per run of ``p``'s grid; accuracies built so that every claim's per-seed effect is known."""
    rng = np.random.default_rng(0)
    base = {}  # the original mask's accuracy per (method, density, seed): SNIP near 80, GraSP near 60
    rows = []
    for labels, cfg in sanity.labelled_grid(p):
        m, d, v, s = labels["method"], labels["density"], labels["variant"], cfg.seed
        key = ("snip" if m in ("smart_ratio", "hybrid", "lottery", "dense") else m, d, s)
        if key not in base:
            base[key] = (80.0 if key[0] == "snip" else 60.0) + rng.normal(0, 3)
        acc = base[key]
        if m in ("smart_ratio", "hybrid"):
            acc += table_offset(TICKET, (d,), s) + (HYBRID + 0.5 * s if m == "hybrid" else 0.0)
        elif m == "lottery":
            acc += -10.0 + (LOTTERY[v] - s if v in LOTTERY else 0.0 if v == "original" else -30.0)
        elif v == sanity.SANITY["shuffle"]:
            acc += SHUFFLE * s
        elif v == sanity.PRUNE_DATA["half"]:
            acc += HALF * s
        elif v == sanity.SANITY["rearrange"]:
            acc += table_offset(REARRANGE, (m, d), s)
        elif v == sanity.PRUNE_DATA["random_labels"]:
            acc += table_offset(LABELS, (m, d), s)
        elif v == sanity.PRUNE_DATA["random_pixels"]:
            acc += table_offset(PIXELS, (m, d), s)
        elif v != "original":
            acc -= 30.0  # reinitialised: no claim rests on it
        rows.append(labels | {"seed": s, "acc": acc, "val": acc})  # validation accuracy: SNIP ahead of GraSP
    return pd.DataFrame(rows)


def expected() -> dict[str, list[float]]:
    def mean(*tables):
        return list(np.mean([t[k] for t in tables for k in t], axis=0))

    seeds = np.arange(3)
    return {"rearrange_costs_nothing": mean(REARRANGE), "corrupted_data_costs_nothing": mean(LABELS, PIXELS),
            "smart_ratio_matches_pruning": mean(TICKET), "shuffle_costs_nothing": list(SHUFFLE * seeds),
            "half_data_costs_nothing": list(HALF * seeds),
            "lottery_fails_sanity": list(np.mean(list(LOTTERY.values())) - seeds),
            "hybrid_beats_random_ticket": list(HYBRID + 0.5 * seeds),
            "hybrid_beats_lottery": list(np.add(mean(TICKET), HYBRID + 0.5 * seeds + 10.0))}


def test_claim_effects_are_the_per_seed_means_of_the_paired_cases():
    p = params()
    effects = sanity.claim_effects(synthetic_frame(p), p)
    assert list(effects) == list(sanity.CLAIM_IDS)
    for claim, values in expected().items():
        assert list(effects[claim].index) == [0, 1, 2]
        np.testing.assert_allclose(effects[claim].to_numpy(), values, atol=1e-9, err_msg=claim)


def test_row_order_changes_nothing():
    p = params()
    frame = synthetic_frame(p)
    shuffled = frame.sample(frac=1.0, random_state=3).reset_index(drop=True)
    a, b = sanity.claim_effects(frame, p), sanity.claim_effects(shuffled, p)
    for claim in a:
        pd.testing.assert_series_equal(a[claim], b[claim])


def test_cases_are_paired_by_seed_and_counted_once():
    p = params()
    cases = sanity.case_effects(synthetic_frame(p), p)
    per_claim = cases.groupby("claim").size()
    # SNIP/GraSP: 2 methods x 2 densities x 3 seeds rearranged, shuffled, on half data; x 2 corruptions;
    # lottery tickets: 2 checks x 2 densities x 3 seeds; random and hybrid tickets: 2 densities x 3 seeds
    assert per_claim.to_dict() == {"rearrange_costs_nothing": 12, "shuffle_costs_nothing": 12,
                                   "corrupted_data_costs_nothing": 24, "half_data_costs_nothing": 12,
                                   "smart_ratio_matches_pruning": 6, "lottery_fails_sanity": 12,
                                   "hybrid_beats_random_ticket": 6, "hybrid_beats_lottery": 6}
    assert set(cases[cases.claim == "smart_ratio_matches_pruning"].reference) == {"snip"}
    table = sanity.effects_table(cases, p)
    assert list(table.columns) == ["d = 0.1", "d = 0.05"] and len(table) == 2 + 2 + 4 + 2 + 1 + 2 + 1 + 1


def test_a_held_out_reference_is_chosen_on_the_other_seeds():
    """GraSP far ahead on seed 0 only, at d = 0.1: the declared rule compares every seed's ticket with GraSP (the
    better mean over all seeds); held out, seed 0 is compared with SNIP (better on seeds 1 and 2) and seeds 1 and
    2 with GraSP (better on seeds 0 and 2, or 0 and 1)."""
    p = params()
    frame = synthetic_frame(p)
    lucky = (frame.method == "grasp") & (frame.variant == "original") & (frame.density == 0.1) & (frame.seed == 0)
    frame.loc[lucky, ["acc", "val"]] = 200.0
    acc = frame[frame.variant == "original"].set_index(["method", "density", "seed"]).acc
    net = frame.network.iloc[0]
    declared, held = (sanity.case_effects(frame, p, held_out=h) for h in (False, True))
    for cases, refs in ((declared, ["grasp"] * 3), (held, ["snip", "grasp", "grasp"])):
        rows = cases[(cases.claim == "smart_ratio_matches_pruning") & (cases.density == 0.1)].sort_values("seed")
        assert rows.reference.tolist() == refs
        assert rows.effect.tolist() == pytest.approx([acc["smart_ratio", 0.1, s] - acc[r, 0.1, s]
                                                      for s, r in enumerate(refs)])
    assert sanity.best_references(declared).startswith(f"GraSP at {net}, d = 0.1; SNIP at {net}, d = 0.05")
    assert sanity.best_references(held).startswith(f"SNIP (seed 0) / GraSP (seeds 1, 2) at {net}, d = 0.1; ")
    for claim in ("rearrange_costs_nothing", "corrupted_data_costs_nothing"):  # they choose nothing
        pd.testing.assert_series_equal(sanity.claim_effects(frame, p)[claim],
                                       sanity.claim_effects(frame, p, held_out=True)[claim])


def test_an_unpaired_seed_is_an_error():
    p = params()
    frame = synthetic_frame(p)
    lone = (frame.method == "grasp") & (frame.variant == "rearranged") & (frame.density == 0.05) & (frame.seed == 2)
    with pytest.raises(ValueError, match="unpaired"):
        sanity.claim_effects(frame[~lone], p)
    ticket = (frame.method == "smart_ratio") & (frame.seed == 1) & (frame.density == 0.1)
    with pytest.raises(ValueError, match="unpaired"):
        sanity.claim_effects(frame[~ticket], p)


def test_a_duplicated_run_is_an_error():
    p = params()
    frame = synthetic_frame(p)
    original = frame[(frame.method == "snip") & (frame.variant == "original") & (frame.seed == 1)].iloc[[0]]
    with pytest.raises(ValueError, match="several"):
        sanity.claim_effects(pd.concat([frame, original]), p)


def test_one_seed_is_inconclusive():
    p = params(seeds=1)
    effects = sanity.claim_effects(synthetic_frame(p), p)
    for claim, e in effects.items():
        v = decide(CLAIMS[claim], e)
        assert v.n == 1 and v.verdict == "inconclusive" and np.isnan(v.low)


def test_claims_belong_to_the_chapter():
    assert {c.id for c in CLAIMS.values() if c.chapter == NAME} == set(sanity.CLAIM_IDS)


@pytest.fixture(scope="module")
def cpu() -> sanity.Params:
    return chapters.params(NAME, book.load_profiles(ROOT)[NAME]["cpu"])


def test_cpu_profile_has_five_seeds_and_two_densities(cpu: sanity.Params):
    assert cpu.seeds >= 5 and len(cpu.densities) >= 2


def test_cpu_grid_pairs_every_variant_with_its_reference_for_every_seed(cpu: sanity.Params):
    grid = sanity.labelled_grid(cpu)
    seeds = set(cpu.seed_list)
    runs = pd.DataFrame([labels | {"seed": cfg.seed, "cfg": cfg} for labels, cfg in grid])
    for (net, d, m, v), g in runs.groupby(["network", "density", "method", "variant"]):
        assert set(g.seed) == seeds and len(g) == len(seeds), (net, d, m, v)
    originals = runs[runs.variant == "original"].set_index(["network", "density", "method", "seed"]).cfg
    for row in runs[runs.variant != "original"].itertuples():
        ref = originals[row.network, row.density, row.method, row.seed]
        # a variant differs from its original only in the check it names: same seed, model, data and training
        assert (row.cfg.seed, row.cfg.model, row.cfg.data, row.cfg.optim) == (ref.seed, ref.model, ref.data, ref.optim)
        assert row.cfg.sparsity.method == ref.sparsity.method and row.cfg.sparsity.density == ref.sparsity.density
    # every claim has cases, and all of them are paired for every seed
    effects = sanity.claim_effects(synthetic_frame(cpu), cpu)
    assert set(effects) == set(sanity.CLAIM_IDS)
    assert all(list(e.index) == sorted(seeds) for e in effects.values())


def test_cpu_profile_fits_its_budget(tmp_path: Path, cpu: sanity.Params):
    """The chapter's share of `make book` (<= 25 min on 2 cores): at most 8 minutes of training on 2 workers,
    estimated from the published build's seconds per epoch (plan's hours are one worker's), once every ticket takes
    its dense pre-training from the grid's dense run of its network and seed instead of training its own."""
    (row,) = plan("cpu", [NAME], ROOT, tmp_path)
    grid = sanity.grid(cpu)
    tickets = [c for c in grid if c.sparsity.method in sanity.TICKETS]
    shared = sum(c.optim.epochs for c in tickets) * SECONDS_PER_EPOCH["cnn1d", "mnist1d"] / 3600
    assert set(sanity.pretraining_configs(grid).values()) <= set(grid)  # each pre-training is a run of the grid
    assert row.hours is not None and (row.hours - shared) / 2 <= 8 / 60, row


def test_cpu_grid_has_every_check_for_every_method_the_claims_name(cpu: sanity.Params):
    runs = {(labels["network"], labels["density"], labels["method"], labels["variant"], cfg.seed)
            for labels, cfg in sanity.labelled_grid(cpu)}
    needed = {  # claim -> (method, variant) pairs, each paired with the method's original mask
        "rearrange_costs_nothing": [(m, "rearranged") for m in sanity.PAI],
        "shuffle_costs_nothing": [(m, "shuffled weights") for m in sanity.PAI],
        "corrupted_data_costs_nothing": [(m, v) for m in sanity.PAI for v in ("random labels", "random pixels")],
        "half_data_costs_nothing": [(m, "half data") for m in sanity.PAI],
        "smart_ratio_matches_pruning": [("smart_ratio", "original")],
        "lottery_fails_sanity": [("lottery", "rearranged"), ("lottery", "shuffled weights")],
        "hybrid_beats_random_ticket": [("hybrid", "original"), ("smart_ratio", "original")],
        "hybrid_beats_lottery": [("hybrid", "original"), ("lottery", "original")],
    }
    assert set(needed) == set(sanity.CLAIM_IDS) == {c.id for c in CLAIMS.values() if c.chapter == NAME}
    for claim, pairs in needed.items():
        for m, v in pairs:
            for net in sanity.model_configs(cpu):
                for d in cpu.densities:
                    for seed in cpu.seed_list:
                        assert (net, d, m, v, seed) in runs, (claim, net, d, m, v, seed)
                        assert (net, d, m, "original", seed) in runs, (claim, net, d, m, seed)
    cases = sanity.case_effects(synthetic_frame(cpu), cpu)
    assert set(cases.claim) == set(sanity.CLAIM_IDS)  # every claim has its cases in the cpu profile


def test_one_dense_pre_training_per_network_and_seed_however_many_tickets_use_it(cpu: sanity.Params):
    grid = sanity.grid(cpu)
    tickets = [c for c in grid if c.sparsity.method in sanity.TICKETS]
    pre = sanity.pretraining_configs(grid)
    assert len(tickets) == len(cpu.networks) * len(cpu.seed_list) * len(cpu.densities) * 4  # 3 lottery + 1 hybrid
    assert len(pre) == len(cpu.networks) * len(cpu.seed_list)
    assert {(c.model, c.seed) for c in pre.values()} == {(c.model, c.seed) for c in tickets}
    dense = {c for c in grid if not c.sparsity.sparse}
    assert set(pre.values()) == dense  # the chapter's dense runs are the pre-trainings
    more = dataclasses.replace(cpu, densities=[0.2, 0.1, 0.05, 0.02])  # more tickets, the same pre-trainings
    assert sanity.pretraining_configs(sanity.grid(more)) == pre
    with pytest.raises(ValueError, match="needs no dense pre-training"):
        sanity.pretraining_config(next(c for c in grid if c.sparsity.method == "snip"))


def _lottery_ticket(density: float = 0.2) -> tuple[torch.nn.Module, Mask]:
    """A one-shot lottery ticket of a small MLP: a few SGD steps on random data, magnitude pruning of the trained
    weights, the initial weights restored (rewinding to step 0)."""
    torch.manual_seed(0)
    net = models.build("mlp", 10, in_shape=(40,), hidden=(32, 16))
    initial = copy.deepcopy(net.state_dict())
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x, y = torch.randn(64, 40), torch.randint(0, 10, (64,))
    for _ in range(20):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    mask = mask_from_scores(magnitude_scores(net), density)
    net.load_state_dict(initial)
    return net, mask


def test_a_rearranged_lottery_ticket_differs_layer_by_layer_with_the_same_counts():
    _, ticket = _lottery_ticket()
    moved = ticket.rearranged(seed=1)
    for name, m in ticket.masks.items():
        assert int(moved.masks[name].sum()) == int(m.sum()) > 0, name
        assert not torch.equal(moved.masks[name], m), name


def test_a_shuffled_lottery_ticket_keeps_its_mask_and_moves_its_weights_within_each_layer():
    net, ticket = _lottery_ticket()
    before = {k: p.detach().clone() for k, p in models.prunable_parameters(net).items()}
    ticket.shuffle_weights_(net, seed=1)
    after = models.prunable_parameters(net)
    for name, m in ticket.masks.items():
        kept = m.bool()
        old, new = before[name][kept], after[name].detach()[kept]
        assert kept.sum() > 1 and not torch.equal(old, new), name  # the surviving weights moved
        assert torch.equal(old.sort().values, new.sort().values), name  # the same values, the same count
        assert torch.equal(before[name][~kept], after[name].detach()[~kept]), name  # pruned weights untouched
