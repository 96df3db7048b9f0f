"""Seconds per training epoch of each (model, dataset) of a profile: the table behind ``rplib plan``.

For every (model, dataset) pair in the chapters' grids of the profile, one representative run
(its first dense or random-mask configuration in grid order) trains for one epoch in a temporary run
store; the epoch's ``time`` from its ``history.json`` is printed as a line of
``rplib.plan.SECONDS_PER_EPOCH``.

    python benchmarks/epoch_times.py [--profile cpu]
"""

from __future__ import annotations

import argparse
import json
import tempfile

from rplib import book, chapters
from rplib.store import RunDir
from rplib.train import run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu", choices=book.PROFILES)
    args = ap.parse_args()
    picked = {}
    for name, overrides in book.plan(args.profile).items():
        for cfg in chapters.grid(name, overrides):
            if cfg.sparsity.method in ("dense", "random") and not cfg.dst.enabled:
                picked.setdefault((cfg.model.name, cfg.data.name), cfg)
    with tempfile.TemporaryDirectory() as store:
        for (model, dataset), cfg in sorted(picked.items()):
            one = cfg.with_({"optim.epochs": 1, "eval.ood": (), "eval.attacks": ()})
            run(one, root=store, progress=False)
            seconds = json.loads(RunDir(store, one.hash).history.read_text())[-1]["time"]
            print(f'    ("{model}", "{dataset}"): {seconds:.3f},')


if __name__ == "__main__":
    main()
