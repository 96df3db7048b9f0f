"""Typed, validated chapter parameters: the base class and the field checks every chapter uses.

A chapter's ``Params`` is a frozen dataclass whose fields are the notebook's papermill parameters.
``Params.from_namespace(globals())`` (in the notebook, right after the ``parameters`` cell) or
``Params.from_dict(values)`` builds it; a bad value or an unknown (e.g. misspelt) name raises a
one-line ``ValueError`` naming the parameter, the chapter, the expected type or choices and the
value, before anything is built or trained; ``from_namespace`` also announces a grid of more than
:data:`rplib.executors.LARGE_GRID` runs (:func:`rplib.chapters.announce_grid`) before any of it is built.
``__post_init__`` stores normalised values (sorted, de-duplicated lists; floats where a float is meant),
the ones the chapter's grid is built from.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any, ClassVar, TypeVar

__all__ = ["ChapterParams"]

P = TypeVar("P", bound="ChapterParams")

# names IPython puts into a kernel's globals; papermill parameters are never modules or these
_KERNEL_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit", "open"})


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _interval(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    if lo is None and hi is None:
        return ""
    if hi is None:
        return f" {'>' if lo_open else '>='} {lo:g}"
    if lo is None:
        return f" {'<' if hi_open else '<='} {hi:g}"
    return f" in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"


def _inside(v: float, lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> bool:
    if lo is not None and (v <= lo if lo_open else v < lo):
        return False
    return not (hi is not None and (v >= hi if hi_open else v > hi))


@dataclasses.dataclass(frozen=True)
class ChapterParams:
    """Base class of the chapters' parameter dataclasses (``CHAPTER`` names the notebook)."""

    CHAPTER: ClassVar[str] = ""

    # ------------------------------------------------------------------ construction

    @classmethod
    def names(cls) -> list[str]:
        """The parameter names, in declaration order."""
        return [f.name for f in dataclasses.fields(cls) if f.init]

    @classmethod
    def from_dict(cls: type[P], values: Mapping[str, Any]) -> P:
        """Parameters from a mapping; a name that is not a parameter of the chapter is an error."""
        unknown = sorted(set(values) - set(cls.names()))
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown} of {cls.CHAPTER}; valid parameters: "
                             f"{', '.join(cls.names())}")
        return cls(**values)

    @classmethod
    def from_namespace(cls: type[P], namespace: Mapping[str, Any]) -> P:
        """Parameters from a notebook's ``globals()`` right after its parameters (and papermill's injected) cell.

        Every public name there that is not a module or one of IPython's own must be a parameter, so
        a misspelt ``papermill -p`` name (which papermill only warns about) stops the notebook here. A grid
        of more than :data:`rplib.executors.LARGE_GRID` runs (``papermill -p seeds 10000``) is announced
        here, with its estimated hours, before the notebook builds it (:func:`rplib.chapters.announce_grid`).
        The book's figure and table style (:func:`rplib.plotting.use_style`) applies from here on, so the regime
        table a chapter shows next has whole cells.
        """
        from ..plotting import use_style
        from . import announce_grid

        use_style()

        values = {k: v for k, v in namespace.items()
                  if not k.startswith("_") and k not in _KERNEL_NAMES and not isinstance(v, ModuleType)}
        params = cls.from_dict(values)
        announce_grid(params)
        return params

    @property
    def seed_list(self) -> list[int]:
        """The seeds of a training chapter: ``seed_offset .. seed_offset + seeds - 1`` (a confirmatory run takes
        seeds disjoint from every seed used before)."""
        return list(range(self.seed_offset, self.seed_offset + self.seeds))

    # ------------------------------------------------------------------ field checks

    def _fail(self, name: str, expected: str, value: Any) -> None:
        raise ValueError(f"parameter {name!r} of {self.CHAPTER} must be {expected}, got {value!r}")

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    def _choice(self, name: str, valid: Iterable[str]) -> None:
        valid = tuple(valid)
        value = getattr(self, name)
        if not isinstance(value, str) or value not in valid:
            self._fail(name, f"one of {', '.join(map(str, valid))}", value)

    def _choices(self, name: str, valid: Iterable[str], min_len: int = 1) -> None:
        """A list of distinct names from ``valid``, at least ``min_len`` of them."""
        valid = tuple(valid)
        value = getattr(self, name)
        at_least = f"at least {min_len} " if min_len > 1 else "" if min_len == 1 else "any number of "
        expected = f"a list of {at_least}distinct names from {', '.join(map(str, valid))}"
        if (not isinstance(value, list) or len(value) < min_len or len(set(map(str, value))) != len(value)
                or any(v not in valid for v in value)):
            self._fail(name, expected, value)

    def _data_fields(self) -> None:
        """The data parameters every training chapter has: dataset, num_samples, data_root, download."""
        from ..data import DATASETS

        self._choice("dataset", DATASETS)
        self._int("num_samples")
        self._str("data_root")
        self._bool("download")

    def _training_fields(self) -> None:
        """The training parameters every training chapter has: epochs, batch_size, seeds, seed_offset, lr, device,
        runs."""
        from ..config import DEVICES

        for name in ("epochs", "batch_size", "seeds"):
            self._int(name)
        self._int("seed_offset", 0)
        self._float("lr", 0, None, lo_open=True)
        self._choice("device", DEVICES)
        self._str("runs")

    def _bool(self, name: str) -> None:
        if not isinstance(getattr(self, name), bool):
            self._fail(name, "true or false", getattr(self, name))

    def _str(self, name: str) -> None:
        if not isinstance(getattr(self, name), str) or not getattr(self, name):
            self._fail(name, "a non-empty string", getattr(self, name))

    def _int(self, name: str, low: int = 1) -> None:
        value = getattr(self, name)
        if not _is_int(value) or value < low:
            self._fail(name, f"an integer >= {low}", value)

    def _ints(self, name: str, low: int = 1) -> None:
        value = getattr(self, name)
        if not isinstance(value, list) or not value or not all(_is_int(v) and v >= low for v in value):
            self._fail(name, f"a non-empty list of integers >= {low}", value)

    def _float(self, name: str, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
               hi_open: bool = False) -> None:
        value = getattr(self, name)
        if not _is_number(value) or not _inside(value, lo, hi, lo_open, hi_open):
            self._fail(name, f"a number{_interval(lo, hi, lo_open, hi_open)}", value)

    def _floats(self, name: str, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
                hi_open: bool = False, allow_empty: bool = False) -> None:
        value = getattr(self, name)
        if (not isinstance(value, list) or (not value and not allow_empty)
                or not all(_is_number(v) and _inside(v, lo, hi, lo_open, hi_open) for v in value)):
            empty = "" if allow_empty else "non-empty "
            self._fail(name, f"a {empty}list of floats{_interval(lo, hi, lo_open, hi_open)}", value)
