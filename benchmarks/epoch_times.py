"""Seconds per epoch per (model, dataset) of a cpu-profile run store: ``rplib plan``'s fallback table.

Reads the finished runs of every chapter's cpu-profile grid in the run store and pools them per
(model, dataset) as ``rplib.plan.seconds_per_epoch`` does (a run's wall time over its epochs).
Valid after ``make book`` trained every run from an empty store; prints the lines of
``rplib.plan.SECONDS_PER_EPOCH`` and how many runs each rests on.

    python benchmarks/epoch_times.py [--runs runs]
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from rplib import book, chapters
from rplib.plan import seconds_per_epoch
from rplib.store import RunDir

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, default=ROOT / "runs", help="the run store (default: runs/)")
    args = ap.parse_args()
    configs = {c.hash: c for name, overrides in book.plan("cpu", root=ROOT).items() if name in chapters.CHAPTERS
               for c in chapters.grid(name, overrides)}
    finished = [c for c in configs.values() if RunDir(args.runs, c.hash).finished()]
    print(f"{len(finished)} of {len(configs)} cpu-profile runs finished in {args.runs}")
    counts = Counter((c.model.name, c.data.name) for c in finished)
    for key, value in sorted(seconds_per_epoch(finished, args.runs).items()):
        print(f'    ("{key[0]}", "{key[1]}"): {value:.3f},  # {counts[key]} runs')


if __name__ == "__main__":
    main()
