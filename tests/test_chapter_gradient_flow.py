"""Chapter 07's claim effect: per seed, Kendall tau of gradient norm at initialisation and accuracy, averaged
over the networks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rplib import book, chapters
from rplib.chapters import gradient_flow
from rplib.claims import CLAIMS

ROOT = Path(__file__).resolve().parents[1]
P = gradient_flow.Params(models=["convnet", "mlp"], schemes=["erk", "snip", "uniform_plus", "uniform"], seeds=3)
# per (model, seed): the schemes' gradient norms and accuracies (order of P.schemes) and the known tau
CASES = {
    ("convnet", 0): ([4.0, 3.0, 2.0, 1.0], [98.0, 97.0, 96.0, 95.0], 1.0),
    ("convnet", 1): ([4.0, 3.0, 2.0, 1.0], [95.0, 96.0, 97.0, 98.0], -1.0),
    ("convnet", 2): ([4.0, 3.0, 2.0, 1.0], [97.0, 98.0, 96.0, 95.0], 4 / 6),  # one discordant pair of six
    ("mlp", 0): ([0.3, 0.2, 0.1, 0.05], [90.0, 80.0, 70.0, 60.0], 1.0),
    ("mlp", 1): ([0.3, 0.2, 0.1, 0.05], [90.0, 80.0, 60.0, 70.0], 4 / 6),
    ("mlp", 2): ([0.3, 0.2, 0.1, 0.05], [80.0, 80.0, 80.0, 80.0], 0.0),  # constant accuracy: no ordering
}


def synthetic(dense: bool = True) -> pd.DataFrame:
    rows = []
    for (model, seed), (norms, accs, _) in CASES.items():
        for scheme, g, a in zip(P.schemes, norms, accs):
            rows.append({"model": model, "scheme": scheme, "seed": seed, "grad flow at init": g,
                         "mean grad flow in training": 1.0 / g, "test accuracy": a})
        if dense:  # far larger norm and accuracy: would change tau if it were counted
            rows.append({"model": model, "scheme": "dense", "seed": seed, "grad flow at init": 100.0,
                         "mean grad flow in training": 1.0, "test accuracy": 10.0})
    return pd.DataFrame(rows)


def test_claim_effect_is_the_mean_tau_over_networks_per_seed():
    effects = gradient_flow.claim_effects(synthetic(), P)
    assert list(effects) == ["grad_flow_orders_schemes"] and CLAIMS["grad_flow_orders_schemes"].chapter == P.CHAPTER
    expected = [(CASES["convnet", s][2] + CASES["mlp", s][2]) / 2 for s in range(3)]
    e = effects["grad_flow_orders_schemes"]
    assert list(e.index) == [0, 1, 2]
    np.testing.assert_allclose(e.to_numpy(), expected, atol=1e-12)


def test_row_order_changes_nothing():
    a = gradient_flow.claim_effects(synthetic(), P)["grad_flow_orders_schemes"]
    b = gradient_flow.claim_effects(synthetic().sample(frac=1.0, random_state=5), P)["grad_flow_orders_schemes"]
    pd.testing.assert_series_equal(a, b)


def test_an_unpaired_seed_is_an_error():
    frame = synthetic()
    frame = frame[~((frame.model == "mlp") & (frame.scheme == "snip") & (frame.seed == 1))]
    with pytest.raises(ValueError, match=r"unpaired seeds.*\('snip', 1\)"):
        gradient_flow.claim_effects(frame, P)


def test_a_network_missing_a_seed_is_an_error():
    frame = synthetic()
    frame = frame[~((frame.model == "mlp") & (frame.seed == 2))]
    with pytest.raises(ValueError, match=r"seeds \[2\] are not run for every network"):
        gradient_flow.claim_effects(frame, P)


def test_a_duplicated_run_is_an_error():
    frame = synthetic()
    with pytest.raises(ValueError, match="several runs"):
        gradient_flow.claim_effects(pd.concat([frame, frame.iloc[[0]]]), P)


def test_tau_table_describes_both_norms():
    t = gradient_flow.tau_table(synthetic(), P)
    assert list(t.index) == P.models and t.shape[1] == 2
    assert t.loc["mlp", "tau: mean grad flow in training vs accuracy"].startswith("-")


def test_cpu_profile_has_five_seeds_and_every_scheme_for_every_seed():
    name = P.CHAPTER
    p = chapters.params(name, book.plan("cpu", [name], ROOT)[name])
    assert p.seeds >= 5 and len(p.schemes) >= 3
    runs = {(c.model.name, c.sparsity.scheme if c.sparsity.sparse else "dense", c.seed)
            for c in gradient_flow.grid(p)}
    schemes = [*p.schemes, *(["dense"] if p.dense else [])]
    assert runs == {(m, s, seed) for m in p.models for s in schemes for seed in p.seed_list}


def test_claim_verdict_pools_the_networks_and_decides_each_network_beside():
    (v,) = gradient_flow.claim_verdicts(synthetic(), P)
    assert v.claim == "grad_flow_orders_schemes" and set(v.cases) == {"convnet", "mlp"}
    for model in ("convnet", "mlp"):
        assert v.cases[model]["estimate"] == pytest.approx(np.mean([CASES[model, s][2] for s in range(3)]))
        assert v.cases[model]["high"] <= 1.0 and v.cases[model]["low"] >= -1.0  # Kendall tau's range
