"""Chapter parameters and grids (rplib.chapters): defaults match the notebooks, bad input fails in one line."""

from __future__ import annotations

import ast
import dataclasses
import re
import types
from pathlib import Path

import nbformat
import numpy as np
import pytest

from rplib import book, chapters
from rplib.chapters import dst_criteria, robustness, sanity, scaling, schemes

ROOT = Path(__file__).resolve().parents[1]
NAMES = list(chapters.CHAPTERS)


def _defaults(cls: type) -> dict:
    out = {}
    for f in dataclasses.fields(cls):
        if f.init:
            out[f.name] = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    return out


def test_every_notebook_chapter_has_a_module():
    assert NAMES == book.chapters(ROOT)[:len(NAMES)]
    assert set(NAMES) <= set(book.chapters(ROOT))


@pytest.mark.parametrize("name", NAMES)
def test_params_defaults_are_the_notebook_defaults(name: str):
    declared = book.notebook_parameters(ROOT / "notebooks" / f"{name}.ipynb")
    ours = _defaults(chapters.CHAPTERS[name].Params)
    assert list(ours) == list(declared), f"{name}: parameter names or order differ from the notebook's"
    for key, p in declared.items():
        assert ast.literal_eval(p["default"]) == ours[key], f"{name}: default of {key!r}"


@pytest.mark.parametrize("name", NAMES)
def test_profiles_validate(name: str):
    for profile in ("cpu", "paper"):
        overrides = book.plan(profile, [name], ROOT)[name]
        p = chapters.params(name, overrides)
        for key, value in overrides.items():
            if not isinstance(value, list):
                assert getattr(p, key) == value or key == "rewind_epoch"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_validates_right_after_its_parameters(name: str):
    nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    i = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    nxt = nb.cells[i + 1]
    assert nxt.cell_type == "code" and "Params.from_namespace(globals())" in nxt.source
    calls_grid = re.search(r"chapter\.(grid|grids|labelled_grid)\(params", "\n".join(c.source for c in nb.cells))
    trains = bool(chapters.grid(name))
    assert calls_grid or not trains, f"{name} does not build its grid with rplib.chapters"


@pytest.mark.parametrize("name, values, message", [
    ("05_dst_criteria", {"densities": 0.1},
     "parameter 'densities' of 05_dst_criteria must be a non-empty list of floats in (0, 1), got 0.1"),
    ("02_scaling", {"schemes": ["erk", "ERK"]},
     "parameter 'schemes' of 02_scaling must be a list of distinct names from uniform, "),
    ("02_scaling", {"seeds": True}, "parameter 'seeds' of 02_scaling must be an integer >= 1, got True"),
    ("02_scaling", {"gap_sparsity": 0.8}, "parameter 'gap_sparsity' of 02_scaling must be one of sparsities [0.5, 0.9]"),
    ("02_scaling", {"model": "resnet"}, "parameter 'model' of 02_scaling must be cnn1d for dataset mnist1d"),
    ("02_scaling", {"depths": [3], "widths": [1.0]},
     "parameter 'depths' of 02_scaling must be depths and widths that give at least two networks"),
    ("03_schemes", {"challenger": "uniform"}, "parameter 'challenger' of 03_schemes must be one of erk, erk_plus, snip"),
    ("04_sanity_checks", {"widths": [1.0, 2.0]}, "parameter 'widths' of 04_sanity_checks must be one width per network"),
    ("06_ood_calibration_robustness", {"ood_sets": ["nope"]}, "parameter 'ood_sets' of 06_ood_calibration_robustness"),
    ("07_gradient_flow", {"schemes": ["erk"]}, "must be a list of at least 2 distinct names"),
    ("02_scaling", {"sparsites": [0.5]}, "unknown parameter(s) ['sparsites'] of 02_scaling; valid parameters: dataset,"),
])
def test_bad_values_fail_in_one_line(name: str, values: dict, message: str):
    with pytest.raises(ValueError) as err:
        chapters.params(name, values)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_from_namespace_rejects_unknown_names_but_not_kernel_ones():
    ns = {"In": [], "Out": {}, "get_ipython": print, "_": 1, "chapter": types, "seeds": 2}
    assert scaling.Params.from_namespace(ns).seeds == 2
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['depht'\] of 02_scaling"):
        scaling.Params.from_namespace(ns | {"depht": 3})


def test_params_store_normalised_values():
    p = scaling.Params(depths=[5, 3, 5], widths=[1, 0.5], sparsities=[0.9, 0.5, 0.9])
    assert (p.depths, p.widths, p.sparsities) == ([3, 5], [0.5, 1.0], [0.5, 0.9])
    s = sanity.Params(densities=[0.05, 0.1], epochs=1, rewind_epoch=1)
    assert s.densities == [0.1, 0.05] and s.rewind_epoch == 0 and s.rewind_lowered
    r = robustness.Params(dataset="digits", epsilons=[1.0])
    assert r.epsilons == [0.0, 1.0] and r.ood_sets


def test_grids_have_the_documented_shape():
    p = scaling.Params(depths=[3, 5], widths=[0.5, 1.0], seeds=2)
    assert len(scaling.sizes(p)) == 3  # (3, 1.0) is in both sweeps
    assert len(scaling.grid(p)) == 3 * (1 + 2 * 2) * 2
    d = dst_criteria.Params()
    g = dst_criteria.grids(d)
    assert len(g["criteria"]) == len(d.growths) * len(d.criteria) * len(d.densities) * d.seeds
    assert len(dst_criteria.grid(d)) == len({c.hash for cfgs in g.values() for c in cfgs})
    s = schemes.Params(sparsities=[0.5, 0.99], schemes=["uniform", "erk_plus"], challenger="erk_plus")
    net = schemes.network(s)
    assert ("erk_plus", 0.99) in net.unreachable
    assert len(schemes.grid(s, net)) == 1 + 4 - len(net.unreachable)
    assert all(c.hash not in {d.hash for d in scaling.grid(scaling.Params())} for c in schemes.grid(s, net)[1:])


def test_unknown_chapter():
    with pytest.raises(ValueError, match="unknown chapter '99_x'; chapters with a grid: 01_layerwise_densities"):
        chapters.grid("99_x")


def _results(configs, accuracy) -> list:
    """Finished-looking results of ``configs`` (nothing trained): test accuracy ``accuracy(config)``."""
    from rplib.train import Result

    return [Result(c, {"test_accuracy": accuracy(c)}, [], Path(".")) for c in configs]


def test_scaling_gap_slopes_and_the_claims_effect():
    """The gap is dense - sparse of the same seed; slopes are per doubling of prunable weights; the effect
    averages the both-sweeps slope over the schemes, one number per seed."""
    p = scaling.Params(seeds=3)  # smoke sizes: (3, 1.0), (5, 1.0), (3, 0.5)
    n = scaling.prunable_weights(p)
    true_slope = {"erk": -3.0, "uniform": -5.0}

    def accuracy(c):  # points: dense 90 - seed; sparse at gap_sparsity 60 + slope * log2(N) below it, else equal
        dense = 90 - c.seed
        if c.sparsity.method == "dense" or c.sparsity.density > 0.5:
            return dense / 100
        return (dense - 60 - true_slope[c.sparsity.scheme] * np.log2(n[c.model.depth, c.model.width])) / 100

    runs = scaling.frame(p, _results(scaling.grid(p), accuracy))
    assert set(runs.scheme) == {"dense", "erk", "uniform"} and runs.weights.notna().all()
    gaps = scaling.gaps(p, runs)
    assert len(gaps) == 3 * 2 * 3  # networks x schemes x seeds, at gap_sparsity only
    slopes = scaling.slopes(p, gaps)
    assert set(slopes.sweep) == {"depth", "width", "both"}
    for scheme, expected in true_slope.items():
        assert slopes[slopes.scheme == scheme].slope.to_numpy() == pytest.approx(expected)
    effects = scaling.effects(p, gaps)
    assert list(effects.index) == [0, 1, 2] and effects.to_numpy() == pytest.approx(-4.0)
    assert scaling.slope([2, 4, 8], [3.0, 2.0, 1.0]) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="unpaired"):
        scaling.gaps(p, runs.drop(runs[(runs.scheme == "dense") & (runs.seed == 1)].index[:1]))

