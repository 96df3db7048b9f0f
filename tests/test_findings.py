"""The findings page and the regime beside every verdict: paper columns from the claims, this book's setting and
dense accuracy from the chapters' glued regime records, raw and Holm-adjusted verdicts, disagreeing cases."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest

from rplib import book, regime
from rplib.claims import CLAIMS, NOT_REPORTED, Verdict, decide

ROOT = Path(__file__).resolve().parents[1]


def _output(name: str, value: object) -> dict:
    """A notebook output as myst_nb's glue writes it: the JSON text under a scrapbook name."""
    return {"output_type": "display_data", "metadata": {"scrapbook": {"name": name, "mime_prefix": ""}},
            "data": {"text/plain": repr(json.dumps(value))}}


def _notebook(verdicts: list[Verdict], r: regime.Regime | None) -> dict:
    outputs = [_output("verdicts", [dataclasses.asdict(v) for v in verdicts])]
    if r is not None:
        outputs.append(_output(regime.GLUE_NAME, dataclasses.asdict(r)))
    return {"cells": [{"cell_type": "code", "outputs": outputs}]}


def _row(page: str, claim: str, regime: int = 0) -> list[str]:
    """The claim's row in the table of the page's ``regime``-th regime (after the side-by-side table)."""
    lines = [x for x in page.splitlines() if x.startswith(f"| {CLAIMS[claim].statement} |") and "{doc}" in x]
    return [c.strip() for c in lines[regime].strip("|").split(" | ")]


def _glance(page: str, claim: str) -> list[str]:
    """The claim's row in the side-by-side table: statement, paper effect, one verdict per regime."""
    line = next(x for x in page.splitlines() if x.startswith(f"| {CLAIMS[claim].statement} |"))
    return [c.strip() for c in line.strip("|").split(" | ")]


def test_every_claim_names_its_paper_setting_and_effect():
    assert regime.missing_paper_fields() == {}
    lacking = {"x": dataclasses.replace(CLAIMS["erk_beats_uniform"], id="x", paper_effect=" ", paper="")}
    assert regime.missing_paper_fields(lacking) == {"x": ["paper", "paper_effect"]}


def test_a_claim_without_its_paper_fields_stops_the_findings_page(tmp_path, monkeypatch):
    monkeypatch.setitem(CLAIMS, "erk_beats_uniform", dataclasses.replace(CLAIMS["erk_beats_uniform"], paper_setting=""))
    with pytest.raises(ValueError, match="erk_beats_uniform.*paper_setting"):
        book.findings_markdown(tmp_path, ROOT)
    with pytest.raises(ValueError, match="paper_setting"):
        regime.regime_table(regime.regime("03_schemes", "mnist1d", 10, ["cnn1d"], 6, [0.1]))


def test_the_regime_and_paper_columns_come_from_the_glued_data(tmp_path):
    dense = pd.DataFrame({"network": ["cnn1d"] * 3 + ["mlp"] * 3, "acc": [71.0, 73.0, 72.0, 13.0, 12.0, 14.0]})
    r = regime.regime("03_schemes", "mnist1d", 10, ["cnn1d", "mlp"], 6, [0.1, 0.02], dense, ["a computed note"])
    v = decide(CLAIMS["erk_beats_uniform"], [1.0, 2.0, 3.0, 2.5, 1.5])
    (tmp_path / "03_schemes.ipynb").write_text(json.dumps(_notebook([v], r)))
    page = book.findings_markdown(tmp_path, ROOT)
    claim, chapter, paper, mine, verdict, effect, n, caveat = _row(page, "erk_beats_uniform")
    c = CLAIMS["erk_beats_uniform"]
    assert paper == f"{c.paper}: {c.paper_setting}; {c.paper_effect}"
    assert mine == ("mnist1d (10 classes); cnn1d / mlp; 6 epochs; densities 0.1, 0.02; "
                    "dense: cnn1d 72.0 [69.5, 74.5] %; mlp 13.0 [10.5, 15.5] %")
    assert "dense mlp near chance (13 % against chance 10 %)" in caveat and "a computed note" in caveat
    assert caveat.startswith(c.caveat) and "cnn1d near chance" not in caveat
    assert verdict.startswith("**agrees** (v2); Holm: **agrees**") and effect.startswith("2.0 [") and n == "5"
    # a declared claim of the same chapter that did not run, and one of a chapter without a regime record
    assert _row(page, "erk_plus_matches_erk")[3:5] == [mine, "not run"]
    assert _row(page, "dst_beats_static")[3:5] == ["regime not recorded", "not run"]
    assert NOT_REPORTED in _row(page, "erk_plus_matches_erk")[2]


def test_holm_across_the_book_and_disagreeing_cases_show_in_the_verdict_cell(tmp_path):
    cases = pd.DataFrame({"convnet": [0.1, -0.2, 0.0, 0.1, -0.1], "mlp": [-4.0, -4.5, -3.9, -4.2, -4.4]})
    ood = decide(CLAIMS["sparse_matches_dense_ood"], cases.mean(axis=1), cases=cases)
    weak = decide(CLAIMS["sparse_matches_dense_robustness"], [3.0, -3.0, 2.0, -2.0, 0.5])  # inconclusive
    barely = decide(CLAIMS["erk_beats_uniform"], [0.6, 1.5, 0.4, 1.6, 0.3])  # raw agrees, one-sided p = 0.017
    assert weak.verdict == "inconclusive" and barely.verdict == "agrees" and 0.0125 < barely.p_agree < 0.025
    (tmp_path / "06_ood_calibration_robustness.ipynb").write_text(json.dumps(_notebook([ood, weak], None)))
    (tmp_path / "03_schemes.ipynb").write_text(json.dumps(_notebook([barely], None)))
    page = book.findings_markdown(tmp_path, ROOT)
    verdict = _row(page, "sparse_matches_dense_ood")[4]
    assert "cases differ: convnet agrees, mlp disagrees" in verdict
    # three claims ran: Holm multiplies the second smallest family p (2 x 0.017) by 2, past 0.05
    assert _row(page, "erk_beats_uniform")[4].startswith("**agrees** (v2); Holm: **inconclusive**")


def test_near_chance_is_judged_with_the_interval_against_the_number_of_classes():
    assert regime.chance_level(10) == 10.0 and regime.chance_level(4) == 25.0
    assert regime.near_chance([12.0, 12.5, 13.0], 10)
    assert not regime.near_chance([12.0, 12.5, 13.0], 100)  # chance 1 %: 12 % is well above it
    assert not regime.near_chance([30.0, 31.0, 29.0], 10)
    assert not regime.near_chance([10.0, 11.0, 40.0], 10)  # far apart: not shown to lie below chance + 10
    assert regime.near_chance([19.0], 10) and not regime.near_chance([21.0], 10)  # one seed: its value
    with pytest.raises(ValueError, match="num_classes"):
        regime.chance_level(0)


def test_a_regime_needs_a_chapter_with_claims_and_a_dense_frame_with_its_columns():
    with pytest.raises(ValueError, match="chapter '01_layerwise_densities' has no claims"):
        regime.regime("01_layerwise_densities", "mnist1d", 10, ["cnn1d"], 3, [0.1])
    with pytest.raises(ValueError, match="lacks column 'acc'"):
        regime.regime("03_schemes", "mnist1d", 10, ["cnn1d"], 3, [0.1], pd.DataFrame({"network": ["a"], "x": [1]}))


def test_publish_regime_glues_what_read_regime_reads_back(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import pandas as pd\n"
        "from rplib.regime import publish_regime, regime\n"
        "publish_regime(regime('02_scaling', 'mnist1d', 10, ['cnn1d depth 3, width 1'], 60, [0.1],\n"
        "                      pd.DataFrame({'network': ['cnn1d depth 3, width 1'] * 2, 'acc': [80.0, 82.0]})))")])
    NotebookClient(nb, kernel_name="python3", timeout=120).execute()
    assert "scaling_gap_shrinks" in nb.cells[0].outputs[-1]["data"]["text/plain"]  # the table is shown
    r = regime.read_regime(json.loads(nbformat.writes(nb)))
    assert r is not None and r.chapter == "02_scaling" and r.networks == ("cnn1d depth 3, width 1",)
    assert r.dense_accuracy["cnn1d depth 3, width 1"][0] == 81.0 and r.epochs == 60


@pytest.mark.parametrize("name", sorted({c.chapter for c in CLAIMS.values()}))
def test_each_chapter_opens_with_its_claims_regime_and_glues_it(name: str):
    import nbformat

    from rplib.chapters import CHAPTERS

    cells = [c for c in nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4).cells
             if c.cell_type == "code"]
    first = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])) + 1
    assert "regime_table(chapter.regime(params))" in cells[first].source, f"{name}: no regime table after parameters"
    assert any("publish_regime(chapter.regime(params" in c.source for c in cells), f"{name}: regime not glued"
    assert callable(getattr(CHAPTERS[name], "regime", None))


def test_a_chapter_without_dense_runs_says_so_wherever_its_regime_shows(tmp_path):
    from rplib.chapters import gradient_flow

    p = gradient_flow.Params.from_dict({"dense": False})
    final = pd.DataFrame({"model": ["mlp"] * 4, "scheme": ["erk", "snip"] * 2, "seed": [0, 0, 1, 1],
                          "test accuracy": [50.0, 60.0, 52.0, 58.0]})
    r = gradient_flow.regime(p, final)
    assert r.dense_accuracy == {} and not r.dense_runs
    assert regime.dense_text(r) == regime.NO_DENSE_RUN == "no dense run in this chapter"
    for shown in (regime.regime_table(gradient_flow.regime(p)), regime.regime_table(r)):  # before and after training
        assert set(shown["dense accuracy"]) == {regime.NO_DENSE_RUN}
    # a chapter that trains dense networks still waits for them, and a record glued with NaN for networks without
    # a dense run (as an earlier chapter 7 wrote) reads as no dense run, never as "– [–, –] %"
    with_dense = gradient_flow.regime(gradient_flow.Params.from_dict({}))
    assert set(regime.regime_table(with_dense)["dense accuracy"]) == {"measured below"}
    # a record from before the dense_runs field, read back with its default
    record = {k: v for k, v in dataclasses.asdict(r).items() if k != "dense_runs"} | {
        "dense_accuracy": {"convnet": [float("nan")] * 3, "mlp": [float("nan")] * 3}}
    v = decide(CLAIMS["grad_flow_orders_schemes"], [0.5, 0.6, 0.4, 0.7, 0.55])
    nb = _notebook([v], None)
    nb["cells"][0]["outputs"].append(_output(regime.GLUE_NAME, record))
    (tmp_path / "07_gradient_flow.ipynb").write_text(json.dumps(nb))
    mine = _row(book.findings_markdown(tmp_path, ROOT), "grad_flow_orders_schemes")[3]
    assert mine.endswith("; dense: no dense run in this chapter") and "–" not in mine


def test_the_findings_page_has_a_verdict_column_per_executed_regime(tmp_path):
    """The cpu regime's chapters in the book folder, the Fashion-MNIST part's in ``images/``: the side-by-side
    table shows both verdicts and the paper's effect; the images regime's own table links to its chapters, lists
    only the claims of its chapters, and Holm adjusts within each regime."""
    erk = CLAIMS["erk_beats_uniform"]
    (tmp_path / "03_schemes.ipynb").write_text(json.dumps(_notebook([decide(erk, [1.0, 2.0, 3.0, 2.5, 1.5])], None)))
    page = book.findings_markdown(tmp_path, ROOT)
    assert _glance(page, "erk_beats_uniform") == [erk.statement, erk.paper_effect, "**agrees** (Holm: agrees)",
                                                  "not run"]
    assert _glance(page, "sparse_faster_at_005")[3] == "not in this regime"  # chapter 8 has no images entry
    assert "No chapter of this regime has run yet: `make book PROFILE=images`." in page

    (tmp_path / "images").mkdir()
    worse = decide(erk, [-1.0, -2.0, -3.0, -2.5, -1.5])
    (tmp_path / "images" / "03_schemes.ipynb").write_text(json.dumps(_notebook([worse], None)))
    page = book.findings_markdown(tmp_path, ROOT)
    assert _glance(page, "erk_beats_uniform")[2:] == ["**agrees** (Holm: agrees)", "**disagrees** (Holm: disagrees)"]
    assert "make book PROFILE=images" not in page
    images_row = _row(page, "erk_beats_uniform", 1)
    assert images_row[1] == "{doc}`images/03_schemes`" and images_row[4].startswith("**disagrees** (v2)")
    assert _row(page, "erk_beats_uniform", 0)[1] == "{doc}`03_schemes`"
    images_claims = [x for x in page.split("## Fashion-MNIST")[1].splitlines() if "{doc}" in x]
    assert not any(CLAIMS["sparse_faster_at_005"].statement in x for x in images_claims)


def test_a_regime_on_other_data_gives_that_datas_caveat_not_the_cpu_profiles(tmp_path):
    """A claim's own caveat describes the cpu profile's MNIST-1D and digits; in a Fashion-MNIST regime the
    chapter's regime table and the findings page give every claim the images profile tests its Fashion-MNIST
    caveat instead (a caveat about 1-D CNNs beside LeNet-5 misleads)."""
    import yaml

    profiles = yaml.safe_load((ROOT / "notebooks" / "profiles.yml").read_text())
    tested = [c for c in CLAIMS.values() if "images" in profiles.get(c.chapter, {})]
    assert len(tested) >= 15
    for c in tested:
        r = regime.Regime(c.chapter, "fashion_mnist", 10, ("lenet5",), 4, (0.1,))
        text = regime.caveat(c, r)
        assert text and not any(w in text for w in ("MNIST-1D", "1-D", "8x8", "digits:")), (c.id, text)
        assert regime.caveat(c, dataclasses.replace(r, dataset="mnist1d")) == c.caveat
        assert regime.regime_table(r).loc[c.id, "caveat"].startswith(text)

    erk = CLAIMS["erk_beats_uniform"]
    r = regime.Regime("03_schemes", "fashion_mnist", 10, ("lenet5",), 4, (0.02,))
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "03_schemes.ipynb").write_text(json.dumps(_notebook([decide(erk, [1.0, 2.0, 1.5])], r)))
    caution = _row(book.findings_markdown(tmp_path, ROOT), "erk_beats_uniform", 1)[7]
    assert caution.startswith(regime.DATASET_CAVEATS["fashion_mnist"]["erk_beats_uniform"]), caution
    assert erk.caveat not in caution


# --------------------------------------------------------------------------- training length


def _tiny(**changes):
    from rplib.config import ModelConfig, OptimConfig, RunConfig
    from rplib.data import DataConfig

    cfg = RunConfig(data=DataConfig(name="mnist1d", num_samples=600), model=ModelConfig(name="mlp", hidden=(32,)),
                    optim=OptimConfig(epochs=1, batch_size=64, lr=0.05), device="cpu")
    return cfg.with_(changes)


def test_longer_scales_the_epochs_and_the_schedule_given_in_epochs():
    cfg = _tiny(**{"optim.epochs": 4, "optim.milestones": (2, 3), "optim.warmup_epochs": 1, "eval.calibration": True})
    long = regime.longer(cfg)
    assert (long.optim.epochs, long.optim.milestones, long.optim.warmup_epochs) == (12, (6, 9), 3)
    assert not long.eval.calibration and long.model == cfg.model and long.seed == cfg.seed
    assert regime.longer(_tiny(**{"optim.milestones": (0.5, 0.75)}), 2).optim.milestones == (0.5, 0.75)
    with pytest.raises(ValueError, match="factor must be an integer >= 2, got 1"):
        regime.longer(cfg, 1)


def test_length_configs_take_each_networks_dense_runs_else_its_first_mask():
    sparse = {"sparsity.method": "random", "sparsity.density": 0.1}
    configs = [_tiny(seed=s, **sparse) for s in range(3)] + [_tiny(seed=s) for s in range(3)]
    configs += [_tiny(seed=s, **{"model.hidden": (64,), **sparse}) for s in range(3)]
    configs += [_tiny(seed=s, **{"model.hidden": (64,), "sparsity.method": "random", "sparsity.density": 0.3})
                for s in range(3)]
    chosen = regime.length_configs(configs, lambda c: f"mlp {c.model.hidden[0]}")
    assert [(c.sparsity.method, c.seed) for c in chosen["mlp 32"]] == [("dense", 0), ("dense", 1)]
    assert [(c.sparsity.density, c.seed) for c in chosen["mlp 64"]] == [(0.1, 0), (0.1, 1)]  # no dense run
    assert len(regime.length_configs(configs, lambda c: "one", seeds=3)["one"]) == 3


def test_length_check_trains_three_times_as_long_and_the_caveat_names_a_gain(tmp_path):
    checks = {"mlp": [_tiny(seed=0), _tiny(seed=1)]}
    length = regime.length_check(checks, root=tmp_path)
    assert list(length.columns) == ["network", "seed", "epochs", "acc", "longer"] and len(length) == 2
    stored = sorted(json.loads(f.read_text())["optim"]["epochs"] for f in tmp_path.glob("*/config.json"))
    assert stored == [1, 1, 3, 3]
    assert ((length.acc > 0) & (length.longer > 0)).all() and not length.acc.equals(length.longer)
    table = regime.length_table(length)
    assert list(table.columns) == ["seeds", "accuracy, 1 epochs", "accuracy, 3 epochs", "gain (points)",
                                   "gain within 1 point"]

    def notes(gains: list[float]) -> list[str]:
        frame = pd.DataFrame({"network": "mlp", "seed": range(len(gains)), "epochs": 4, "acc": 80.0,
                              "longer": [80.0 + g for g in gains]})
        r = regime.regime("03_schemes", "mnist1d", 10, ["mlp"], 4, [0.1], length=frame)
        return regime.regime_notes(r)

    assert notes([2.0, 3.0]) == ["mlp gains 2.5 [-3.9, 8.9] points when trained 3x as long"]
    assert notes([0.5, 1.0]) == []  # within the tolerance
    assert regime.length_table(pd.DataFrame({"network": "mlp", "seed": [0, 1], "epochs": 4, "acc": 80.0,
                                             "longer": [82.0, 83.0]}))["gain within 1 point"].item() == "no"


def test_every_training_chapter_checks_its_training_length_and_the_plan_counts_it():
    from rplib import chapters

    for name, module in chapters.CHAPTERS.items():
        if name in ("01_layerwise_densities", "08_sparse_inference"):
            continue
        p = chapters.params(name)
        checks = module.length_configs(p)
        assert checks and all(len(cfgs) == min(regime.LENGTH_SEEDS, len(p.seed_list)) for cfgs in checks.values())
        planned = {c.hash for c in chapters.grid(name)}
        assert {regime.longer(c).hash for cfgs in checks.values() for c in cfgs} <= planned, name
        source = (ROOT / "notebooks" / f"{name}.ipynb").read_text()
        assert "length_check(chapter.length_configs(params)" in source and "length))" in source, name


def test_a_regime_without_planned_seeds_shows_the_power_its_own_spread_implies(tmp_path):
    """The Fashion-MNIST regime's seeds were not planned: its table is followed by the power its seeds had at its
    own spread, the smallest margin they support and the seeds 80% power needs (rplib.power)."""
    from rplib import power

    erk = CLAIMS["erk_beats_uniform"]
    (tmp_path / "images").mkdir()
    v = decide(erk, [1.0, 2.0, 3.0, 2.5, 1.5])
    (tmp_path / "images" / "03_schemes.ipynb").write_text(json.dumps(_notebook([v], None)))
    page = book.findings_markdown(tmp_path, ROOT)
    sd = power.pilot_spread(v)
    row = next(x for x in page.splitlines() if x.startswith("| `erk_beats_uniform` |"))
    assert row == (f"| `erk_beats_uniform` | {sd:.3g} {erk.unit} | 5 | {power.power(erk, 5, sd):.2f} | "
                   f"±{erk.design_effect:g} | ±{power.smallest_margin(erk, 5, sd):.3g} | "
                   f"{power.seeds_needed(erk, sd)} |")
    assert page.index("## Fashion-MNIST") < page.index(row)
    (tmp_path / "images" / "03_schemes.ipynb").unlink()
    (tmp_path / "03_schemes.ipynb").write_text(json.dumps(_notebook([v], None)))  # the planned cpu regime: no table
    assert "seeds for 80% power" not in book.findings_markdown(tmp_path, ROOT)


def test_the_length_tables_intervals_stay_inside_an_accuracys_range():
    spread = pd.DataFrame({"network": "mlp", "seed": [0, 1], "epochs": 4, "acc": [20.0, 99.0], "longer": [99.5, 99.9]})
    table = regime.length_table(spread)
    low, high = (float(x) for x in table["accuracy, 4 epochs"].item().split("[")[1].rstrip("]").split(", "))
    assert 0.0 <= low and high <= 100.0
