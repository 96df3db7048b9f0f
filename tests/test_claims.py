"""Claims are decided by their declared rule from a 95% t-interval over paired effects."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rplib.claims import (CLAIMS, CLAIMS_V1, NOT_TESTED, Claim, Verdict, best_level, decide, held_out_check, held_out_mean,
                         held_out_picks, held_out_summary, interval_text, median_levels, rules_markdown,
                         verdict_reason, verdict_sentence, verdict_table)

DIFF = Claim("d", "ch", "s", "p", "e", +1, "difference", 0.0, "points")
EQUIV = Claim("q", "ch", "s", "p", "e", +1, "equivalence", 1.0, "points")


def effects(mean: float, sd: float = 1.0, n: int = 10, seed: int = 0) -> np.ndarray:
    """n values with exactly the given sample mean and standard deviation."""
    z = np.random.default_rng(seed).standard_normal(n)
    return mean + sd * (z - z.mean()) / z.std(ddof=1)


@pytest.mark.parametrize("mean, expected", [(5.0, "agrees"), (-5.0, "disagrees"), (0.0, "inconclusive")])
def test_difference_follows_the_sign_of_the_interval(mean, expected):
    assert decide(DIFF, effects(mean)).verdict == expected


@pytest.mark.parametrize("mean, expected", [(5.0, "disagrees"), (-5.0, "agrees"), (0.0, "inconclusive")])
def test_direction_minus_one_flips_the_verdict(mean, expected):
    assert decide(dataclasses.replace(DIFF, direction=-1), effects(mean)).verdict == expected


@pytest.mark.parametrize("mean, sd, expected", [
    (0.0, 0.3, "agrees"),        # whole interval inside [-1, 1]
    (5.0, 0.3, "disagrees"),     # whole interval above 1
    (-5.0, 0.3, "disagrees"),    # whole interval below -1
    (0.9, 1.0, "inconclusive"),  # straddles the margin
    (0.0, 5.0, "inconclusive"),  # too wide to tell
])
def test_equivalence_compares_the_interval_with_the_margin(mean, sd, expected):
    assert decide(EQUIV, effects(mean, sd)).verdict == expected


def test_interval_is_scipys_t_interval_of_the_mean():
    x = effects(0.7, 2.0, n=7, seed=3)
    v = decide(DIFF, x)
    ci = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    assert v.n == 7 and v.estimate == pytest.approx(0.7)
    assert (v.low, v.high) == pytest.approx(ci)
    assert v.low < v.estimate < v.high


def test_a_single_effect_is_inconclusive_with_no_interval():
    v = decide(DIFF, [10.0])
    assert v.verdict == "inconclusive" and v.n == 1 and v.estimate == 10.0
    assert math.isnan(v.low) and math.isnan(v.high)
    assert decide(EQUIV, []).verdict == "inconclusive"


def test_zero_variance_collapses_the_interval_to_the_mean():
    v = decide(DIFF, [2.0, 2.0, 2.0])
    assert (v.low, v.estimate, v.high) == (2.0, 2.0, 2.0) and v.verdict == "agrees"
    assert decide(DIFF, [0.0, 0.0]).verdict == "inconclusive"
    assert decide(EQUIV, [0.5, 0.5]).verdict == "agrees"
    assert decide(EQUIV, [1.5, 1.5]).verdict == "disagrees"


def test_bad_inputs_give_clear_errors():
    with pytest.raises(ValueError, match="unknown kind 'same'; valid kinds: difference, equivalence"):
        dataclasses.replace(DIFF, kind="same")
    with pytest.raises(ValueError, match="direction must be"):
        dataclasses.replace(DIFF, direction=0)
    with pytest.raises(ValueError, match="finite margin > 0"):
        dataclasses.replace(EQUIV, margin=0.0)
    with pytest.raises(ValueError, match="effects must be finite"):
        decide(DIFF, [1.0, float("nan")])
    with pytest.raises(TypeError, match="needs a Claim"):
        decide("erk_beats_uniform", [1.0, 2.0])


def test_registry_declares_the_book_claims():
    ids = {"scaling_gap_shrinks", "erk_beats_uniform", "sparse_matches_dense_ood", "sparse_matches_dense_calibration",
           "sparse_matches_dense_robustness", "rearrange_costs_nothing", "corrupted_data_costs_nothing",
           "smart_ratio_matches_pruning", "drop_criteria_alike", "magnitude_best_low_density", "dst_beats_static",
           "grad_flow_orders_schemes",
           "sparse_faster_at_005"}
    assert set(CLAIMS_V1) == ids
    assert set(CLAIMS) == ids | {"erk_plus_matches_erk", "shuffle_costs_nothing", "half_data_costs_nothing",
                                 "lottery_fails_sanity", "hybrid_beats_random_ticket", "hybrid_beats_lottery"}
    assert all(k == c.id for k, c in CLAIMS.items())
    assert CLAIMS["scaling_gap_shrinks"].direction == -1
    assert all(c.margin > 0 for c in CLAIMS.values() if c.kind == "equivalence")


def test_verdict_table_has_one_interval_string_per_claim():
    vs = [decide(CLAIMS["erk_beats_uniform"], [1.0, 2.0, 3.0]), Verdict("sparse_faster_at_005", 1.0, math.nan,
                                                                        math.nan, 1, "inconclusive")]
    t = verdict_table(vs)
    assert list(t.index) == ["erk_beats_uniform", "sparse_faster_at_005"]
    assert t.loc["erk_beats_uniform", "effect, mean [95% CI]"] == "2.0 [-0.5, 4.5]"
    assert t.loc["sparse_faster_at_005", "effect, mean [95% CI]"] == "1.000"  # one value: no interval, log ratio
    assert t.loc["erk_beats_uniform", "verdict"] == "inconclusive"
    assert t.loc["erk_beats_uniform", "statement"] == CLAIMS["erk_beats_uniform"].statement


def test_verdict_sentence_writes_the_effect_in_the_books_one_number_format():
    """The glued sentence of a verdict writes its effect as the verdict tables and the findings page do
    (rplib.numbers.interval: shared decimals, no forced sign), with the claim's unit and n."""
    v = decide(CLAIMS["erk_beats_uniform"], [1.0, 2.0, 3.0])
    assert verdict_sentence(v) == f"**inconclusive** ({interval_text(v)} points, n = 3)"
    assert verdict_sentence(v) == "**inconclusive** (2.0 [-0.5, 4.5] points, n = 3)"
    calibration = decide(CLAIMS["sparse_matches_dense_calibration"], [0.001, 0.0026, 0.0042])
    assert verdict_sentence(calibration) == "**inconclusive** (0.0026 [-0.0014, 0.0066] ECE, n = 3)"
    one = Verdict("sparse_faster_at_005", -0.0004, math.nan, math.nan, 1, "inconclusive")
    assert verdict_sentence(one) == "**inconclusive** (0.000 log ratio, n = 1)"  # one value: no interval


def test_verdicts_page_table_is_the_registry():
    """book/verdicts.md holds rules_markdown() verbatim between its markers, so the page cannot drift from CLAIMS."""
    lines = (Path(__file__).parents[1] / "book" / "verdicts.md").read_text().splitlines()
    start = lines.index("% generated by rplib.claims.rules_markdown(); do not edit by hand")
    end = lines.index("% end of generated table", start)
    assert "\n".join(lines[start + 1:end]) == rules_markdown()
    start = lines.index("% generated by rplib.claims.rules_markdown(CLAIMS_V1); do not edit by hand")
    end = lines.index("% end of generated table", start)
    assert "\n".join(lines[start + 1:end]) == rules_markdown(CLAIMS_V1)
    assert sum(line.startswith("| claim | chapter |") for line in lines) == 2  # version 2 and 1, no hand-kept copy


def test_rules_markdown_has_one_row_per_claim_with_its_rule_and_its_effect_under_the_table():
    text = rules_markdown()
    lines = text.splitlines()
    rows = [line for line in lines if line.startswith("| `")]
    assert [r.split(" | ")[0] for r in rows] == [f"| `{k}`" for k in CLAIMS]
    assert all(r.count(" | ") == 3 for r in rows)  # four columns: claim, chapter, statement, rule
    gap = rows[list(CLAIMS).index("scaling_gap_shrinks")]
    assert "{doc}`02_scaling`" in gap and "difference, predicted < 0 (points per doubling)" in gap
    assert "equivalence, margin ±0.005 ECE" in rows[list(CLAIMS).index("sparse_matches_dense_calibration")]
    for k, c in CLAIMS.items():  # each effect once, as the definition of its claim's id, none left in the table
        i = lines.index(f"`{k}`")
        assert lines[i + 1] == f": {c.effect}" and lines[i - 1] == ""
        assert c.effect not in rows[list(CLAIMS).index(k)]
    odd = dataclasses.replace(EQUIV, statement="a | b")
    assert rules_markdown({"q": odd}).splitlines()[2].count(" | ") == 3  # a '|' in a cell is escaped


def test_paired_matches_rows_by_seed_and_refuses_unpaired_rows():
    import pandas as pd

    from rplib.claims import paired

    frame = pd.DataFrame({"scheme": ["erk", "uniform", "uniform", "erk"], "seed": [0, 1, 0, 1],
                          "acc": [80.0, 70.0, 75.0, 72.0]})
    assert paired(frame, "scheme", "erk", "uniform", "acc").tolist() == [5.0, 2.0]  # seed 0, then seed 1
    with pytest.raises(ValueError, match=r"unpaired \['seed'\] \[2\]"):
        paired(pd.concat([frame, frame.iloc[[0]].assign(seed=2)]), "scheme", "erk", "uniform", "acc")
    with pytest.raises(ValueError, match="several scheme='erk' rows"):
        paired(pd.concat([frame, frame.iloc[[0]]]), "scheme", "erk", "uniform", "acc")
    with pytest.raises(ValueError, match="no column 'accuracy'"):
        paired(frame, "scheme", "erk", "uniform", "accuracy")


def test_published_verdicts_reach_the_findings_page(tmp_path):
    """publish() glues the verdicts into an executed notebook; the findings page reads them back."""
    import json

    import nbformat
    from nbclient import NotebookClient

    from rplib import book

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "from rplib.claims import CLAIMS, decide, publish\n"
        "publish([decide(CLAIMS['erk_beats_uniform'], [1.0, 2.0, 3.0, 2.5, 1.5])])")])
    NotebookClient(nb, kernel_name="python3", timeout=120).execute()
    table = nb.cells[0].outputs[-1]["data"]["text/plain"]
    assert "erk_beats_uniform" in table and "agrees" in table  # shown in the notebook, not only glued
    glued = {o["metadata"]["scrapbook"]["name"]: o["data"] for o in nb.cells[0].outputs if "scrapbook" in o.metadata}
    # the chapter's other claim, not decided under these parameters, still has its sentence for the prose
    assert glued["verdict_erk_plus_matches_erk"]["application/papermill.record/text/markdown"] == NOT_TESTED
    assert "verdict_sparse_faster_at_005" not in glued  # another chapter's claim
    root = Path(__file__).parents[1]
    (tmp_path / "03_schemes.ipynb").write_text(json.dumps(nb))
    page = book.findings_markdown(tmp_path, root)
    rows = [line for line in page.splitlines() if "{doc}" in line]  # the cpu regime's table (none ran in images)
    row = next(line for line in rows if CLAIMS["erk_beats_uniform"].statement in line)
    assert "**agrees**" in row and "2.0 [" in row and "| 5 |" in row
    assert sum("| not run |" in line for line in rows) == len(CLAIMS) - 1


def test_a_held_out_check_that_reaches_another_verdict_is_noted_on_the_findings_page(tmp_path):
    import json

    import nbformat
    from nbclient import NotebookClient

    from rplib import book

    alike = CLAIMS["drop_criteria_alike"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import pandas as pd\n"
        "from rplib.claims import CLAIMS_V1 as CLAIMS, decide, publish, publish_held_out\n"
        "declared = {'drop_criteria_alike': pd.Series([3.0, 2.5, 3.2, 2.8]),\n"
        "            'dst_beats_static': pd.Series([1.0, 2.0, 1.5, 2.5])}\n"
        "publish([decide(CLAIMS[k], e) for k, e in declared.items()])"), nbformat.v4.new_code_cell(
        "publish_held_out(declared, {'drop_criteria_alike': pd.Series([0.1, -0.2, 0.0, 0.3]),\n"
        "                            'dst_beats_static': pd.Series([1.0, 2.0, 1.5, 2.5])}, CLAIMS)")])
    NotebookClient(nb, kernel_name="python3", timeout=120).execute()
    assert "the rule's verdict on it" in nb.cells[1].outputs[-1]["data"]["text/plain"]
    (tmp_path / "05_dst_criteria.ipynb").write_text(json.dumps(nb))
    page = book.findings_markdown(tmp_path, Path(__file__).parents[1])
    rows = [line for line in page.splitlines() if "{doc}" in line]  # the cpu regime's table
    row = next(line for line in rows if alike.statement in line)
    assert "**disagrees** (agrees with the choice held out)" in row
    row = next(line for line in rows if CLAIMS["dst_beats_static"].statement in line)
    assert "**agrees** (v1); Holm" in row  # the same verdict either way: no note


# --------------------------------------------------------------------------- choices held out of the scored seed


def test_median_levels_are_the_levels_the_median_averages():
    assert median_levels(pd.Series({"a": 3.0, "b": 1.0, "c": 2.0})) == ["c"]
    assert median_levels(pd.Series({"a": 3.0, "b": 1.0, "c": 2.0, "d": 4.0})) == ["c", "a"]
    assert median_levels(pd.Series({"a": 1.0, "b": 1.0, "c": 1.0})) == ["b"]  # ties keep the given order
    assert best_level(pd.Series({"a": 1.0, "b": 2.0, "c": 2.0})) == ["b"]


def test_a_seed_is_scored_on_the_levels_the_other_seeds_chose():
    # seed 0's noise puts "a" far ahead; seeds 1 and 2 prefer "b"
    table = pd.DataFrame({"a": [10.0, 0.0, 0.0], "b": [0.0, 5.0, 5.0], "c": [1.0, 1.0, 1.0]})
    assert held_out_picks(table, best_level) == {0: ["b"], 1: ["a"], 2: ["a"]}
    assert held_out_mean(table, best_level).tolist() == [0.0, 0.0, 0.0]  # in-sample best: 10, 5, 5
    assert held_out_mean(table, median_levels).tolist() == [1.0, 5.0, 5.0]  # c for seed 0, b for the others
    one = table.iloc[:1]
    assert held_out_picks(one, best_level) == {0: ["a"]}  # one seed: nothing to hold out
    gappy = table.copy()
    gappy.loc[1, "a"] = np.nan
    with pytest.raises(ValueError, match=r"gaps at seeds \[1\]"):
        held_out_picks(gappy, best_level)


def test_alike_levels_give_no_lead_when_chosen_on_other_seeds():
    """Eight alike levels, six seeds, noise only: the in-sample best leads the median by about one standard
    deviation, the held-out best by nothing (mean over 400 draws within three standard errors of zero)."""
    rng = np.random.default_rng(1)
    in_sample, held_out = [], []
    for _ in range(400):
        table = pd.DataFrame(rng.standard_normal((6, 8)), columns=list("abcdefgh"))
        in_sample.append((table.max(axis=1) - table.median(axis=1)).mean())
        held_out.append((held_out_mean(table, best_level) - held_out_mean(table, median_levels)).mean())
    assert np.mean(in_sample) > 0.8
    assert abs(np.mean(held_out)) < 3 * np.std(held_out, ddof=1) / np.sqrt(len(held_out))


def test_held_out_check_decides_both_effects_by_the_claims_rule():
    declared = {"q": pd.Series([2.0, 2.1, 1.9, 2.0]), "d": pd.Series([1.0, 2.0, 3.0, 2.0])}
    held = {"q": pd.Series([0.1, -0.1, 0.0, 0.05])}
    t = held_out_check(declared, held, {"q": EQUIV, "d": DIFF})
    assert t.index.tolist() == ["q"]  # only the claims that were checked
    assert t.loc["q", "verdict"] == "disagrees" and t.loc["q", "the rule's verdict on it"] == "agrees"
    assert t.loc["q", "choice held out, mean [95% CI]"].startswith("0.013 [")  # decimals of the widest bound
    assert held_out_summary(t) == ("Held out, the choice changes the verdict of `q` (disagrees → agrees): the "
                                   "declared verdict rests partly on the choosing, so it is to be read with this "
                                   "check beside it.")
    same = held_out_check(declared, {"d": declared["d"]}, {"q": EQUIV, "d": DIFF})
    assert held_out_summary(same).startswith("Held out, the choice changes no verdict")
    assert held_out_summary(same.iloc[:0]).startswith("No claim")


def test_the_verdict_table_says_which_side_the_effect_fell_on():
    """A disagreeing equivalence names the side of the margin its effect lies on; a difference says whether it
    went the predicted way (a bare "disagrees" beside "margin ±1" leaves the reader to guess)."""
    robust = CLAIMS["sparse_matches_dense_robustness"]
    below = decide(robust, [-3.1, -2.8, -2.9, -3.0, -2.7])
    above = decide(robust, [3.1, 2.8, 2.9, 3.0, 2.7])
    inside = decide(robust, [0.1, -0.1, 0.05, 0.0, -0.05])
    assert (below.verdict, above.verdict, inside.verdict) == ("disagrees", "disagrees", "agrees")
    why = verdict_table([below]).loc["sparse_matches_dense_robustness", "why"]
    assert why == "shown below -1 points"
    assert verdict_reason(above, robust) == "shown above +1 points"
    assert verdict_reason(inside, robust) == "shown inside ±1 points"
    erk = CLAIMS["erk_beats_uniform"]
    assert verdict_reason(decide(erk, [-2.0, -3.0, -2.5, -2.2, -2.8]), erk) == "shown < 0, against the prediction"
    assert verdict_reason(decide(erk, [1.0, -1.0, 0.5]), erk) == "not shown > 0"
