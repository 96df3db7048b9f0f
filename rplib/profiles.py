"""The book's chapters and profiles: which notebooks ``_toc.yml`` lists, and the parameters each chapter
runs with under a profile (``notebooks/profiles.yml``), checked against its notebook and its typed
parameters in :mod:`rplib.chapters` before anything runs.

Read by the book's executor (:mod:`rplib.book`) and the planner (:mod:`rplib.plan`), which both sit above it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

__all__ = ["PROFILES", "OVERRIDABLE", "PUBLISHED_PARTS", "toc_files", "chapters", "load_profiles", "notebook_parameters",
           "check_profile", "plan"]

PROFILES = ("smoke", "cpu", "images", "paper")
OVERRIDABLE = PROFILES[1:]  # smoke is the parameters cell itself, never overridden
# published profiles whose chapters form a part of their own in the book, and that part's folder
PUBLISHED_PARTS = {"images": Path("book") / "images"}


def _walk_toc(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if "file" in node:
            yield str(node["file"])
        for key in ("parts", "chapters", "sections"):
            for child in node.get(key, []) or []:
                yield from _walk_toc(child)
    elif isinstance(node, list):
        for child in node:
            yield from _walk_toc(child)


def toc_files(root: Path | str = ".") -> list[str]:
    """Every file entry of ``_toc.yml`` (root first), without suffix, in reading order."""
    toc = yaml.safe_load((Path(root) / "_toc.yml").read_text())
    return [str(toc["root"]), *_walk_toc(toc)]


def chapters(root: Path | str = ".") -> list[str]:
    """Names of the notebook chapters: toc entries ``book/<name>`` with a source ``notebooks/<name>.ipynb``."""
    root = Path(root)
    names = [Path(f).name for f in toc_files(root) if Path(f).parent == Path("book")]
    return [n for n in names if (root / "notebooks" / f"{n}.ipynb").is_file()]


def load_profiles(root: Path | str = ".") -> dict[str, dict[str, dict[str, Any]]]:
    """``notebooks/profiles.yml``: ``{chapter: {profile: {parameter: value}}}``."""
    data = yaml.safe_load((Path(root) / "notebooks" / "profiles.yml").read_text()) or {}
    return {name: dict(entry or {}) for name, entry in data.items()}


def notebook_parameters(path: Path | str) -> dict[str, dict[str, Any]]:
    """The parameters papermill infers from the notebook's ``parameters`` cell: name -> {type, default, help}."""
    from papermill import inspect_notebook

    return inspect_notebook(str(path))


def check_profile(profile: str) -> None:
    """Raise a one-line ``ValueError`` unless ``profile`` is one of :data:`PROFILES`."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid profiles: {', '.join(PROFILES)}")


def plan(profile: str, only: Sequence[str] | None = None, root: Path | str = ".") -> dict[str, dict[str, Any]]:
    """The parameters each chapter will run with, ``{name: {parameter: value}}`` in toc order.

    Raises ``ValueError`` for an unknown profile, an unknown chapter in ``only``, a chapter missing
    from ``profiles.yml``, a parameter the notebook does not define, or a value its chapter's
    ``rplib.chapters`` parameters reject -- before anything runs.
    """
    check_profile(profile)
    root = Path(root)
    names = chapters(root)
    profiles = load_profiles(root)
    if profile in PUBLISHED_PARTS:  # a part of the book holds only the chapters the profile has parameters for
        names = [n for n in names if profile in (profiles.get(n) or {})]
    if only:
        bad = [n for n in only if n not in names]
        if bad:
            raise ValueError(f"unknown chapter(s) {bad}; valid chapters: {', '.join(names)}")
        names = [n for n in names if n in only]
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        if name not in profiles:
            raise ValueError(f"chapter {name!r} has no entry in notebooks/profiles.yml; chapters there: "
                             f"{', '.join(profiles)}")
        bad_profiles = sorted(set(profiles[name]) - set(OVERRIDABLE))
        if bad_profiles:
            raise ValueError(f"notebooks/profiles.yml[{name}] names unknown profile(s) {bad_profiles}; valid: "
                             f"{', '.join(OVERRIDABLE)} (smoke is the notebook's parameters cell)")
        params = dict(profiles[name].get(profile) or {}) if profile != "smoke" else {}
        known = notebook_parameters(root / "notebooks" / f"{name}.ipynb")
        bad = sorted(set(params) - set(known))
        if bad:
            raise ValueError(f"notebooks/profiles.yml[{name}][{profile}] sets unknown parameter(s) {bad}; "
                             f"parameters of notebooks/{name}.ipynb: {', '.join(known)}")
        _check_values(name, params)
        out[name] = params
    return out


def _check_values(name: str, params: dict[str, Any]) -> None:
    """Validate the values too when the chapter has typed parameters in :mod:`rplib.chapters`."""
    from . import chapters as typed

    if name in typed.CHAPTERS:
        typed.params(name, params)
