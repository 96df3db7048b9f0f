"""Chapter 06's claim effects: paired sparse - dense differences per seed, averaged over the networks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rplib import book, chapters
from rplib.chapters import robustness
from rplib.claims import CLAIMS

ROOT = Path(__file__).resolve().parents[1]
P = robustness.Params(models=["convnet", "mlp"], sparsities=[0.5, 0.9], reliability_sparsity=0.9, seeds=3)
SEEDS = [0, 1, 2]
# known per-seed sparse - dense differences at sparsity 0.9, per model and metric
DIFF = {("convnet", "AUROC"): [1.0, -2.0, 0.5], ("mlp", "AUROC"): [3.0, 0.0, -0.5],
        ("convnet", "ECE"): [0.01, 0.02, -0.01], ("mlp", "ECE"): [0.03, 0.0, 0.01],
        ("convnet", "robust accuracy"): [-1.0, 2.0, 4.0], ("mlp", "robust accuracy"): [1.0, 0.0, -2.0],
        ("convnet", "test accuracy"): [0.0, 0.0, 0.0], ("mlp", "test accuracy"): [0.0, 0.0, 0.0]}


def synthetic() -> pd.DataFrame:
    """One row per (model, sparsity, seed); dense values vary by seed so that only pairing recovers DIFF."""
    rng = np.random.default_rng(0)
    rows = []
    for model in P.models:
        for seed in SEEDS:
            base = {m: float(rng.integers(50, 90)) for m in ["AUROC", "ECE", "robust accuracy", "test accuracy"]}
            for s in [0.0, *P.sparsities]:
                values = {m: v + (DIFF[model, m][seed] if s == 0.9 else 7.0 * s if s else 0.0) for m, v in base.items()}
                rows.append({"model": model, "network": f"erk {s:g}" if s else "dense", "sparsity": s, "seed": seed}
                            | values)
    return pd.DataFrame(rows)


def test_claim_effects_are_the_paired_differences_averaged_over_models():
    effects = robustness.claim_effects(synthetic(), P)
    assert list(effects) == [k for k, c in CLAIMS.items() if c.chapter == P.CHAPTER]
    for claim, metric in robustness.CLAIM_METRICS.items():
        expected = (np.array(DIFF["convnet", metric]) + np.array(DIFF["mlp", metric])) / 2
        assert list(effects[claim].index) == SEEDS
        np.testing.assert_allclose(effects[claim].to_numpy(), expected, atol=1e-9)


def test_row_order_changes_nothing():
    frame = synthetic()
    shuffled = frame.sample(frac=1.0, random_state=3).reset_index(drop=True)
    a, b = robustness.claim_effects(frame, P), robustness.claim_effects(shuffled, P)
    for k in a:
        pd.testing.assert_series_equal(a[k], b[k])


def test_paired_effects_per_model_and_sparsity():
    e = robustness.paired_effects(synthetic(), P, "AUROC")
    half = e[(e.model == "mlp") & (e.sparsity == 0.5)].set_index("seed").effect
    np.testing.assert_allclose(half.to_numpy(), [3.5] * 3)
    table = robustness.difference_table(synthetic(), P)
    assert len(table) == len(P.models) * len(P.sparsities)
    assert table.loc[("mlp", 0.5), "AUROC, sparse - dense"] == "3.5 (no spread)"


def test_an_unpaired_seed_is_an_error():
    frame = synthetic()
    frame = frame[~((frame.model == "mlp") & (frame.sparsity == 0.0) & (frame.seed == 2))]
    with pytest.raises(ValueError, match="unpaired"):
        robustness.claim_effects(frame, P)


def test_a_model_missing_a_seed_is_an_error():
    frame = synthetic()
    frame = frame[~((frame.model == "mlp") & (frame.seed == 2))]
    with pytest.raises(ValueError, match=r"seeds \[2\] are not run for every model"):
        robustness.claim_effects(frame, P)


def test_a_duplicated_run_is_an_error():
    frame = synthetic()
    frame = pd.concat([frame, frame.iloc[[0]]])
    with pytest.raises(ValueError, match="several"):
        robustness.claim_effects(frame, P)


def test_cpu_profile_has_five_seeds_and_pairs_every_sparse_run_with_dense():
    name = P.CHAPTER
    overrides = book.plan("cpu", [name], ROOT)[name]
    p = chapters.params(name, overrides)
    assert p.seeds >= 5 and p.reliability_sparsity in p.sparsities
    runs = {(c.model.name, round(1 - c.sparsity.density, 6) if c.sparsity.sparse else 0.0, c.seed)
            for c in robustness.grid(p)}
    assert runs == {(m, s, seed) for m in p.models for s in [0.0, *p.sparsities] for seed in p.seed_list}


def test_claim_verdicts_pool_the_models_and_decide_each_model_beside():
    verdicts = {v.claim: v for v in robustness.claim_verdicts(synthetic(), P)}
    assert list(verdicts) == list(robustness.CLAIM_METRICS)
    v = verdicts["sparse_matches_dense_ood"]
    pooled = np.mean([DIFF["convnet", "AUROC"], DIFF["mlp", "AUROC"]], axis=0)  # per seed, over the models
    assert v.estimate == pytest.approx(pooled.mean())
    assert set(v.cases) == {"convnet", "mlp"}
    assert v.cases["convnet"]["estimate"] == pytest.approx(np.mean(DIFF["convnet", "AUROC"]))
    assert v.cases["mlp"]["estimate"] == pytest.approx(np.mean(DIFF["mlp", "AUROC"]))
