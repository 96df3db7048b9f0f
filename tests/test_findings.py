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


def _row(page: str, claim: str) -> list[str]:
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
                    "dense: cnn1d 72 [69.5, 74.5] %; mlp 13 [10.5, 15.5] %")
    assert "dense mlp near chance (13 % against chance 10 %)" in caveat and "a computed note" in caveat
    assert caveat.startswith(c.caveat) and "cnn1d near chance" not in caveat
    assert verdict.startswith("**agrees** (v2); Holm: **agrees**") and effect.startswith("2.00 [") and n == "5"
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
