"""How long each chapter's grid takes on a pool of workers, in the grid's order and longest first.

Replays the pool: every chapter submits its whole grid to one ``run_grid`` call, and a worker
takes the next run as soon as it is free. When every run of a chapter is finished in the run store
(the cpu profile after ``make book``) a run's time is its measured ``wall_time``, in seconds; else
a model of it, its compute :func:`rplib.cost.run_cost` in tera multiply-accumulates (the paper
profile: relative run lengths only). The longest-first order is the one ``run_grid`` submits
(:func:`rplib.cost.longest_first`). Prints, per chapter, the time until the last run ends in both
orders, their ratio, and the lower bound max(total / workers, longest run).

    python benchmarks/grid_order.py [--profile cpu] [--runs runs] [--workers 2]
    python benchmarks/grid_order.py --profile paper --workers 64     # e.g. a Slurm array of 64 GPUs
"""

from __future__ import annotations

import argparse
import heapq
import json
from pathlib import Path

from rplib import book, chapters
from rplib.cost import longest_first, run_cost
from rplib.store import RunDir

ROOT = Path(__file__).resolve().parents[1]


def makespan(seconds: list[float], workers: int) -> float:
    """When the last of ``seconds`` ends if ``workers`` take them in this order, each the next when free."""
    free = [0.0] * workers
    for s in seconds:
        heapq.heappush(free, heapq.heappop(free) + s)
    return max(free)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", choices=("smoke", "cpu", "paper"), default="cpu")
    ap.add_argument("--runs", type=Path, default=ROOT / "runs", help="the run store (default: runs/)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    print(f"{args.profile} profile, {args.workers} workers")
    print(f"{'chapter':<32}{'runs':>6}{'grid order':>16}{'longest first':>16}{'ratio':>8}{'bound':>16}")
    for name, overrides in book.plan(args.profile, root=ROOT).items():
        configs = chapters.grid(name, overrides) if name in chapters.CHAPTERS else []
        if not configs:
            continue
        if all(RunDir(args.runs, c.hash).finished() for c in configs):
            unit, time = "s", {c.hash: json.loads(RunDir(args.runs, c.hash).metrics.read_text())["wall_time"]
                               for c in configs}
        else:
            unit, time = "TMAC", {c.hash: run_cost(c) / 1e12 for c in configs}
        given = makespan([time[c.hash] for c in configs], args.workers)
        lpt = makespan([time[c.hash] for c in longest_first(configs)], args.workers)
        bound = max(sum(time.values()) / args.workers, max(time.values()))
        print(f"{name:<32}{len(configs):>6}{given:>11.1f} {unit:<4}{lpt:>11.1f} {unit:<4}{given / lpt:>7.2f}x"
              f"{bound:>11.1f} {unit:<4}")


if __name__ == "__main__":
    main()
