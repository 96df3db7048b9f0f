"""The book's number format: shared decimals for an interval, no negative zero, densities without trailing zeros."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from rplib import numbers
from rplib.claims import Verdict, interval_text


@pytest.mark.parametrize("values, text", [
    ((-13.26, -14.02, -12.49), "-13.3 [-14.0, -12.5]"),
    ((16.3, 15.1, 17.6), "16.3 [15.1, 17.6]"),
    ((0.00262, -0.00514, 0.0104), "0.0026 [-0.0051, 0.0104]"),
    ((0.673, 0.407, 0.939), "0.673 [0.407, 0.939]"),
    ((-0.00001, -0.04, 0.04), "0.0000 [-0.0400, 0.0400]"),
    ((0.58, math.nan, math.nan), "0.58"),
    ((math.nan, math.nan, math.nan), numbers.EMPTY),
])
def test_interval_shares_decimals_and_never_prints_negative_zero(values, text):
    assert numbers.interval(*values) == text


def test_fixed_and_significant():
    assert numbers.fixed(-0.0004, 3) == "0.000" and numbers.fixed(-0.0006, 3) == "-0.001"
    assert [numbers.significant(d) for d in (0.01, 0.05, 0.5, 1.0, 60.0)] == ["0.01", "0.05", "0.5", "1", "60"]
    assert numbers.significant(-0.00004, 3) == "-0.00004" and numbers.significant(math.nan) == numbers.EMPTY
    assert numbers.cell(0.0093) == "0.0093" and numbers.cell(400480.0) == "400480"


@pytest.mark.parametrize("values, unit, text", [
    ((0.081, -0.736, 0.899), "points", "0.1 [-0.7, 0.9]"),
    ((-12.91, -14.2, -11.61), "points per doubling", "-12.9 [-14.2, -11.6]"),
    ((0.00446, 0.00293, 0.00599), "ECE", "0.0045 [0.0029, 0.0060]"),
    ((0.5637, 0.467, 0.662), "Kendall tau", "0.56 [0.47, 0.66]"),
    ((2.2, 2.2, 2.2), "points", "2.2 (no spread)"),
    ((15.0, 14.98, 15.02), "points", "15.00 [14.98, 15.02]"),
    ((88.0, math.nan, math.nan), "%", "88.0"),
])
def test_a_units_numbers_share_its_decimals_and_an_interval_of_no_width_says_so(values, unit, text):
    """One unit, one count of decimals, whatever the size (the same claim's effects line up in a table)."""
    assert numbers.interval(*values, unit=unit) == text


def test_tables_show_whole_cells():
    from rplib.plotting import use_style

    use_style()
    statement = "At a fixed sparsity the gap between random sparse and dense training shrinks as networks grow"
    html = pd.DataFrame({"statement": [statement]}).to_html()
    assert statement in html and "..." not in html


def test_claims_write_verdicts_in_the_book_format():
    assert interval_text(Verdict("c", -0.000001, -0.004, 0.004, 5, "agrees")) == "0.00000 [-0.00400, 0.00400]"
    assert interval_text(Verdict("sparse_matches_dense_calibration", -0.000001, -0.004, 0.004, 5, "agrees")) == \
        "0.0000 [-0.0040, 0.0040]"
    assert interval_text(Verdict("c", 0.58, math.nan, math.nan, 1, "inconclusive")) == "0.58"


def test_tables_write_densities_as_a_reader_does():
    from rplib.plotting import use_style

    use_style()
    text = pd.DataFrame({"density": [0.01, 0.5], "kept": [0.0100, 1.0]}).to_string(index=False)
    assert "0.0100" not in text and "0.01" in text and "1.0000" not in text
