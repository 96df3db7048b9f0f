"""Seconds per training epoch per (model, dataset), measured by the published build: ``rplib plan``'s table.

The executed cpu-profile chapters in ``book/`` carry papermill's wall time for every cell. For each
chapter, the time of its training cell (the one calling ``run_grid``; evaluation included) is divided
by the epochs of its grid (``rplib.plan.run_epochs``); the times and epochs of the chapters that
train a (model, dataset) pair are pooled. Valid when that build trained every run from an empty run
store. Prints the lines of ``rplib.plan.SECONDS_PER_EPOCH``.

    python benchmarks/epoch_times.py
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import nbformat

from rplib import book, chapters
from rplib.plan import run_epochs

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    seconds: dict[tuple[str, str], float] = defaultdict(float)
    epochs: dict[tuple[str, str], int] = defaultdict(int)
    for name, overrides in book.plan(book.PUBLISHED, root=ROOT).items():
        configs = chapters.grid(name, overrides)
        path = ROOT / "book" / f"{name}.ipynb"
        if not configs or not path.is_file():
            continue
        nb = nbformat.read(path, as_version=4)
        wall = sum(c.metadata.papermill.duration for c in nb.cells if c.cell_type == "code" and "run_grid(" in c.source)
        for key in {(c.model.name, c.data.name) for c in configs}:
            seconds[key] += wall
            epochs[key] += sum(run_epochs(c) for c in configs)
    for key in sorted(seconds):
        print(f'    ("{key[0]}", "{key[1]}"): {seconds[key] / epochs[key]:.3f},')


if __name__ == "__main__":
    main()
