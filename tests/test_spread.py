"""The spread-source study: a fresh MNIST-1D test set, final networks read back from the store, and the
split of a claim's seed-to-seed variance into the test set's sampling and training."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from rplib import chapters, spread, train
from rplib.claims import CLAIMS
from rplib.data import DataConfig, load, mnist1d_fresh_test
from rplib.grid import run_grid
from rplib.numbers import fixed
from rplib.store import StoreError

SCHEMES = {"seeds": 3, "epochs": 1, "num_samples": 1000, "schemes": ["uniform", "erk"],
           "sparsities": [0.8], "device": "cpu"}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """The schemes chapter's tiny grid (2 seeds x dense and two schemes, one epoch), trained once."""
    tmp = tmp_path_factory.mktemp("spread")
    values = SCHEMES | {"data_root": str(tmp / "data"), "runs": str(tmp / "runs")}
    p = chapters.params("03_schemes", values)
    results = run_grid(chapters.schemes.grid(p), root=tmp / "runs", progress=False)
    return tmp, values, p, results


def test_fresh_examples_are_new_deterministic_and_standardised_like_the_test_set(tmp_path):
    cfg = DataConfig(name="mnist1d", num_samples=1000, root=str(tmp_path))
    x, y = mnist1d_fresh_test(cfg, 300)
    again, _ = mnist1d_fresh_test(cfg, 300)
    assert x.shape == (300, 1, 40) and y.shape == (300,) and set(y.tolist()) <= set(range(10))
    assert torch.equal(x, again)
    bundle = load(cfg)
    book = torch.cat([bundle.train[0], bundle.test[0]]).flatten(1)
    nearest = torch.cdist(x.flatten(1), book).min(dim=1).values
    assert (nearest > 1e-3).all()  # no fresh example is one of the data set's
    assert abs(float(x.mean())) < 0.2 and abs(float(x.std()) - 1) < 0.2  # the training split's standardisation
    with pytest.raises(ValueError, match="dataset 'digits' has no generator; valid datasets: mnist1d"):
        mnist1d_fresh_test(DataConfig(name="digits"), 300)


def test_final_network_reproduces_the_stored_accuracy_and_refuses_another_runs_checkpoint(store):
    _, _, _, results = store
    r = results[0]
    model = train.trained_network(r)
    test = load(dataclasses.replace(r.config.data)).test
    assert spread.accuracy(model, *test) == pytest.approx(r.metrics["test_accuracy"], abs=1e-12)
    other = results[1]
    shutil.copy(other.path / "checkpoint.pt", r.path / "checkpoint.pt.bak")
    try:
        (r.path / "checkpoint.pt").rename(r.path / "own.pt")
        (r.path / "checkpoint.pt.bak").rename(r.path / "checkpoint.pt")
        with pytest.raises(StoreError, match=f"holds no final network of this run .*not epoch 1 of run {r.config.hash}"
                           ):
            train.trained_network(r)
    finally:
        (r.path / "own.pt").replace(r.path / "checkpoint.pt")


def test_a_stored_accuracy_that_the_network_does_not_reproduce_is_refused(store):
    tmp, _, _, results = store
    wrong = dataclasses.replace(results[0], metrics={**results[0].metrics, "test_accuracy": 0.01})
    with pytest.raises(ValueError, match="not the network the metrics came from"):
        spread.fresh_results([wrong], str(tmp / "data"), 200, progress=False)


def test_share_recovers_a_known_split_of_the_variance():
    rng = np.random.default_rng(1)
    n_book, n_fresh, sd_train, sd_test, seeds = 800, 20_000, 1.0, 1.5, 10
    estimates = []
    for _ in range(4000):
        theta = rng.normal(0, sd_train, seeds)
        book = theta + rng.normal(0, sd_test, seeds)
        fresh = theta + rng.normal(0, sd_test * np.sqrt(n_book / n_fresh), seeds)
        estimates.append(spread.share(book.std(ddof=1), fresh.std(ddof=1), n_book, n_fresh))
    truth = sd_test ** 2 / (sd_train ** 2 + sd_test ** 2)  # 0.69
    assert np.median(estimates) == pytest.approx(truth, abs=0.05)


def test_a_tables_spread_is_the_root_mean_square_of_its_rivals():
    table = pd.DataFrame({"a": [0.0, 2.0, 4.0], "b": [1.0, 1.0, 1.0]})
    assert spread.spread(table) == pytest.approx(np.sqrt((4.0 + 0.0) / 2))
    assert spread.spread(table["a"]) == pytest.approx(2.0)


def test_spread_table_and_page_from_a_chapters_store(store, tmp_path, monkeypatch):
    tmp, values, p, _ = store
    monkeypatch.setattr(spread, "plan", lambda profile, root=".": {"03_schemes": values})
    t = spread.spread_table(tmp / "runs", str(tmp / "data"), samples=400, progress=False)
    assert list(t.index) == ["erk_beats_uniform"]
    assert (t["seeds"] == 3).all() and (t["test examples"] == 200).all()
    for _, r in t.iterrows():
        assert r["spread (book test set)"] > 0 and np.isfinite(r["spread (fresh test set)"])
        assert r["test-set share"] == pytest.approx(spread.share(r["spread (book test set)"],
                                                                 r["spread (fresh test set)"], 200, 400))
        assert r["share low"] <= r["share high"]
        assert r[spread.SEED_SE] == pytest.approx(r["spread (book test set)"] / np.sqrt(3))
        assert 0 < r[spread.TEST_SE] < 100
    page = spread.write_spread(t, 400, root=tmp_path).read_text()
    assert "`erk_beats_uniform`" in page and "400 fresh examples" in page
    assert f"| {fixed(t.loc['erk_beats_uniform', 'spread (book test set)'], 2)} |" in page


def test_a_chapter_not_run_in_the_store_is_one_line_before_any_work(store, tmp_path, monkeypatch):
    _, values, _, _ = store
    monkeypatch.setattr(spread, "plan", lambda profile, root=".": {"03_schemes": values})
    with pytest.raises(ValueError, match=r"03_schemes: 9 of 9 runs have not finished in .*run the chapter first"):
        spread.spread_table(tmp_path / "empty", "data", samples=400, progress=False)
    assert not (tmp_path / "empty").exists()


def _fake_results(chapter: str, p, seed: int) -> list:
    """The chapter's grid as finished results with random accuracies (nothing trained)."""
    rng = np.random.default_rng(seed)
    out = []
    for c in chapters.CHAPTERS[chapter].grid(p):
        metrics = {"test_accuracy": float(rng.uniform(0.3, 0.9)), "val_accuracy": float(rng.uniform(0.3, 0.9)),
                   "density": c.sparsity.density if c.sparsity.method != "dense" else 1.0, "hash": c.hash,
                   "epochs": c.optim.epochs, "test_loss": 1.0}
        out.append(train.Result(c, metrics, [], Path("unused") / c.hash))
    return out


@pytest.mark.parametrize("chapter", sorted(spread.EFFECTS))
def test_each_mnist1d_chapter_gives_every_claim_its_effects_from_the_test_accuracies(chapter):
    p = chapters.params(chapter, {"seeds": 2})
    one = spread.EFFECTS[chapter](p, _fake_results(chapter, p, 0))
    assert set(one) == {c.id for c in CLAIMS.values() if c.chapter == chapter}
    other = spread.EFFECTS[chapter](p, _fake_results(chapter, p, 1))
    for claim_id, effects in one.items():
        assert len(effects) == 2 and not np.allclose(effects.to_numpy(), other[claim_id].to_numpy()), claim_id


def test_shared_test_set_error_is_zero_for_identical_networks_and_the_binomial_one_for_independent_ones():
    p = chapters.params("03_schemes", {"seeds": 4})
    results = _fake_results("03_schemes", p, 0)
    n, rng = 400, np.random.default_rng(2)
    same = rng.random(n) < 0.5
    assert spread.shared_error("03_schemes", p, results, {r.config.hash: same for r in results})[
        "erk_beats_uniform"] == 0
    independent = {r.config.hash: rng.random(n) < 0.5 for r in results}
    se = spread.shared_error("03_schemes", p, results, independent, resamples=150)["erk_beats_uniform"]
    # per seed: 100 * (ERK - uniform) of two independent accuracies on n examples; the mean of 4 seeds
    assert se == pytest.approx(100 * np.sqrt(2 * 0.25 / n / 4), rel=0.2)
    with pytest.raises(ValueError, match="test sets of different sizes"):
        spread.shared_error("03_schemes", p, results, {**independent, results[0].config.hash: same[:10]})


def test_widened_effects_keep_their_mean_and_widen_the_interval_the_rule_decides_with():
    from rplib.claims import decide

    claim = CLAIMS["half_data_costs_nothing"]  # equivalence within +-1 point
    effects = pd.Series([0.1, -0.2, 0.3, 0.0, 0.2, -0.1, 0.15, 0.05, -0.05, 0.1])
    wide = spread.widened(effects, 3.0)
    assert wide.mean() == pytest.approx(effects.mean()) and wide.std() == pytest.approx(3 * effects.std())
    narrow_v, wide_v = decide(claim, effects), decide(claim, wide)
    assert (wide_v.high - wide_v.low) == pytest.approx(3 * (narrow_v.high - narrow_v.low))
    assert narrow_v.verdict == "agrees" and decide(claim, spread.widened(effects, 12.0)).verdict == "inconclusive"
    table = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [0.0, 0.0, 3.0]})
    assert (spread.widened(table, 2.0).mean() == table.mean()).all()
