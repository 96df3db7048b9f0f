"""The book's bibliography style: entries labelled and sorted by author and year, as the citations read.

A Sphinx extension (``sphinx.extra_extensions`` in ``_config.yml``) that registers the pybtex formatting style
``rplib_author_year`` for sphinxcontrib-bibtex (``bibtex_default_style``): pybtex's ``unsrt`` entries (which
print each entry's DOI and URL) under labels such as ``Liu et al. 2022`` instead of ``[1]``, sorted by author,
year and title. Two entries with the same label get ``a``, ``b``, ... after the year.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from pybtex.plugin import register_plugin
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle
from pybtex.style.sorting.author_year_title import SortingStyle

STYLE_NAME = "rplib_author_year"


def _last_name(person: Any) -> str:
    return " ".join(person.last_names).replace("{", "").replace("}", "")


def author_year(entry: Any) -> str:
    """``Liu 2022``, ``Gale and Elsen 2019`` or ``Liu et al. 2022`` from the entry's authors (else editors)."""
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [_last_name(p) for p in people]
    who = (names[0] if len(names) == 1 else f"{names[0]} and {names[1]}" if len(names) == 2
           else f"{names[0]} et al." if names else entry.fields.get("title", entry.key))
    return f"{who} {entry.fields.get('year', 'n.d.')}"


class AuthorYearLabelStyle(BaseLabelStyle):
    """Labels ``Author year`` (:func:`author_year`), ``a``, ``b``, ... appended where two labels coincide."""

    def format_labels(self, sorted_entries: Iterable[Any]) -> Iterator[str]:
        entries = list(sorted_entries)
        labels = [author_year(e) for e in entries]
        counts, seen = Counter(labels), Counter()
        for label in labels:
            if counts[label] > 1:
                seen[label] += 1
                yield f"{label}{chr(ord('a') + seen[label] - 1)}"
            else:
                yield label


class AuthorYearStyle(UnsrtStyle):
    """pybtex's ``unsrt`` entries, labelled by :class:`AuthorYearLabelStyle`, sorted by author, year and title."""

    default_label_style = AuthorYearLabelStyle
    default_sorting_style = SortingStyle


def setup(app: Any) -> dict[str, Any]:
    """Register :class:`AuthorYearStyle` as ``rplib_author_year`` with pybtex."""
    register_plugin("pybtex.style.formatting", STYLE_NAME, AuthorYearStyle)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
