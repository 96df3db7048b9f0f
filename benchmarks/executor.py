"""Wall time of one grid run serially and through the local process pool, side by side.

A fixed grid of small MNIST-1D runs (cnn1d, dense and random-sparse, several seeds) is trained
into fresh temporary run stores three times: serially with one intra-op thread per run (the
default, ``RPLIB_THREADS=1``), serially with two, and with ``local`` (``--workers`` processes, one
thread each). Prints the wall times (process start-up of the pool included) and the ratios; on 2
free cores the pool should be at least 1.6x faster than either serial form. It also prints the
ceiling the machine sets: ``workers`` times a run's mean wall time alone over its mean wall time
beside the other workers' runs (cores that share caches, memory bandwidth or a physical core slow
each other down), and the pool's time beyond its runs' own (start-up, an uneven end).

    python benchmarks/executor.py [--runs 16] [--epochs 30] [--samples 4000] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from rplib.config import ModelConfig, OptimConfig, RunConfig
from rplib.data import DataConfig
from rplib.executors import Local, Serial
from rplib.train import run, run_grid


def grid(runs: int, epochs: int, samples: int) -> list[RunConfig]:
    """``runs`` configs: seeds 0, 1, ... alternately dense and random-sparse (density 0.1, ERK)."""
    base = RunConfig(data=DataConfig(name="mnist1d", num_samples=samples), model=ModelConfig(name="cnn1d"),
                     optim=OptimConfig(epochs=epochs, batch_size=64, lr=0.05, milestones=(0.75,)), device="cpu")
    sparse = {"sparsity.method": "random", "sparsity.density": 0.1, "sparsity.scheme": "erk"}
    return [base.with_({"seed": i // 2} | (sparse if i % 2 else {})) for i in range(runs)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--samples", type=int, default=4000)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    configs = grid(args.runs, args.epochs, args.samples)
    print(f"{len(configs)} runs: MNIST-1D ({args.samples} samples), cnn1d, {args.epochs} epochs; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    times, results = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        # an untimed one-epoch run first: it generates MNIST-1D (cached in this process) and pays the
        # first-use imports (the first optimizer imports torch._dynamo, ~2 s), so that neither serial
        # form times them; each pool worker pays them itself, a cost of the pool its wall time includes
        run(configs[0].with_({"optim.epochs": 1}), root=Path(tmp) / "warm-up", progress=False)
        for label, threads, executor in [("serial, 1 thread per run", "1", Serial()),
                                         ("serial, 2 threads per run", "2", Serial()),
                                         (f"local, {args.workers} workers x 1 thread", "1", Local(workers=args.workers))]:
            os.environ["RPLIB_THREADS"] = threads
            start = time.perf_counter()
            results[label] = run_grid(configs, root=Path(tmp) / label.replace(" ", "_"), progress=False,
                                      executor=executor)
            times[label] = time.perf_counter() - start
            print(f"  {label:<28} {times[label]:7.1f} s")
    labels = list(times)
    for label in labels[:2]:
        print(f"  speed-up {label} / local: {times[label] / times[labels[2]]:5.2f} x")
    # the ceiling set by the machine: a run's own wall time alone vs beside the other workers' runs
    alone, beside = (sum(r.metrics["wall_time"] for r in results[label]) / len(configs)
                     for label in (labels[0], labels[2]))
    print(f"  one run takes {alone:.2f} s alone and {beside:.2f} s beside the other workers' runs: "
          f"at most {args.workers * alone / beside:.2f} x from {args.workers} workers on this machine")
    overhead = times[labels[2]] - beside * len(configs) / args.workers
    print(f"  the pool's time beyond its runs' own ({len(configs)} x {beside:.2f} s over {args.workers} workers): "
          f"{overhead:.1f} s (start-up, the last runs ending unevenly)")
    same = sum(a.metrics["test_accuracy"] == b.metrics["test_accuracy"]
               for a, b in zip(results[labels[0]], results[labels[2]]))
    print(f"  identical test accuracy, serial (1 thread) vs local: {same} of {len(configs)} runs")

if __name__ == "__main__":
    main()
