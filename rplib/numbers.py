"""How the book writes a number: one format for effects, intervals, densities and table cells.

* :func:`fixed` -- a number to a fixed count of decimals; a value that rounds to zero has no sign: ``0.000``,
  never ``-0.000``.
* :func:`significant` -- a number to significant digits without trailing zeros: a density 0.01 is ``0.01``,
  not ``0.0100``.
* :func:`interval` -- ``mean [low, high]``: three numbers in one unit share their decimals. A unit of
  :data:`UNIT_DECIMALS` sets them (every effect in points, accuracies in %, has one decimal, whatever its size:
  ``16.3 [15.1, 17.6]``, ``0.1 [-0.7, 0.9]``; ECE four: ``0.0045 [0.0029, 0.0060]``); otherwise they are chosen
  so that the largest of the three keeps ``digits`` significant digits. An interval narrower than those
  decimals gets as many more as it takes to show it (``15.00 [14.98, 15.02]``, not ``15.0 [15.0, 15.0]``);
  one of no width (every seed measured the same) is written ``2.2 (no spread)``.
* :func:`cell` -- the float format of the book's tables (``pandas.options.display.float_format``).

A missing value (NaN) is written as :data:`EMPTY`, an en dash, never as ``nan``: where there is nothing to show,
the page says so without a number. The rounding is Python's (round half to even on the binary value), as in
``format``.
"""

from __future__ import annotations

import math

__all__ = ["EMPTY", "UNIT_DECIMALS", "fixed", "significant", "interval", "cell"]

#: What a missing number prints as.
EMPTY = "\u2013"
_MAX_DECIMALS = 6
#: Decimals of a number in each unit the book's claims and tables use: a tenth of a point of accuracy is below
#: what one seed's test set resolves (800 MNIST-1D examples: 0.125 points), ECE margins are 0.005.
UNIT_DECIMALS = {"points": 1, "%": 1, "points per doubling": 1, "AUROC points": 1, "ECE": 4, "Kendall tau": 2,
                 "log ratio": 3}


def _finite(x: float) -> bool:
    return x is not None and math.isfinite(float(x))


def fixed(x: float, decimals: int) -> str:
    """``x`` with ``decimals`` decimals; without a sign where it rounds to zero (``0.0``, never ``-0.0``);
    :data:`EMPTY` for NaN."""
    if not _finite(x):
        return EMPTY if x is None or math.isnan(float(x)) else str(float(x))
    text = f"{float(x):.{max(decimals, 0)}f}"
    return text.lstrip("-") if float(text) == 0 else text


def _decimals(magnitude: float, digits: int) -> int:
    """Decimals that leave ``digits`` significant digits to a number of size ``magnitude`` (at most 6)."""
    if magnitude == 0:
        return 0
    return min(max(digits - 1 - math.floor(math.log10(magnitude)), 0), _MAX_DECIMALS)


def significant(x: float, digits: int = 3) -> str:
    """``x`` to ``digits`` significant digits, trailing zeros dropped (``0.01``, ``0.5``, ``60``, ``16.3``)."""
    if not _finite(x):
        return fixed(x, 0)
    text = fixed(x, _decimals(abs(float(x)), digits))
    return text.rstrip("0").rstrip(".") if "." in text else text


def interval(estimate: float, low: float, high: float, digits: int = 3, unit: str = "",
             decimals: int | None = None) -> str:
    """``"mean [low, high]"`` in shared decimals: ``decimals``, else the ``unit``'s (:data:`UNIT_DECIMALS`), else
    those that leave the largest of the three ``digits`` significant digits.

    Without an interval (``low``/``high`` NaN, e.g. a single seed) only the mean is written; an interval that
    rounds to one number gets more decimals, one of no width reads ``mean (no spread)``; without a mean,
    :data:`EMPTY`.
    """
    if not _finite(estimate):
        return EMPTY
    decimals = UNIT_DECIMALS.get(unit) if decimals is None else decimals
    if not (_finite(low) and _finite(high)):
        return significant(estimate, digits) if decimals is None else fixed(estimate, decimals)
    if decimals is None:
        decimals = _decimals(max(abs(float(estimate)), abs(float(low)), abs(float(high))), digits)
    if float(low) == float(high):
        return f"{fixed(estimate, decimals)} (no spread)"
    while fixed(low, decimals) == fixed(high, decimals) and decimals < _MAX_DECIMALS:
        decimals += 1  # an interval narrower than the unit's decimals shows with as many more as it takes
    return f"{fixed(estimate, decimals)} [{fixed(low, decimals)}, {fixed(high, decimals)}]"


def cell(x: float) -> str:
    """A float in a table: four significant digits, trailing zeros dropped; NaN as :data:`EMPTY`."""
    return significant(x, 4)
