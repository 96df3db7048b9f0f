"""Wall time of one grid run serially and through the local process pool, side by side.

A fixed grid of small MNIST-1D runs (cnn1d, dense and random-sparse, several seeds) is trained
twice into fresh temporary run stores: once with the ``serial`` executor, once with ``local``
(``--workers`` processes, one intra-op thread each). Prints both wall times (process start-up of
the pool included) and the ratio; on 2 free cores the pool should be at least 1.6x faster.

    python benchmarks/executor.py [--runs 16] [--epochs 8] [--samples 4000] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from rplib.config import ModelConfig, OptimConfig, RunConfig
from rplib.data import DataConfig
from rplib.executors import Local, Serial
from rplib.train import run_grid


def grid(runs: int, epochs: int, samples: int) -> list[RunConfig]:
    """``runs`` configs: seeds 0, 1, ... alternately dense and random-sparse (density 0.1, ERK)."""
    base = RunConfig(data=DataConfig(name="mnist1d", num_samples=samples), model=ModelConfig(name="cnn1d"),
                     optim=OptimConfig(epochs=epochs, batch_size=64, lr=0.05, milestones=(0.75,)), device="cpu")
    sparse = {"sparsity.method": "random", "sparsity.density": 0.1, "sparsity.scheme": "erk"}
    return [base.with_({"seed": i // 2} | (sparse if i % 2 else {})) for i in range(runs)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--samples", type=int, default=4000)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    configs = grid(args.runs, args.epochs, args.samples)
    print(f"{len(configs)} runs: MNIST-1D ({args.samples} samples), cnn1d, {args.epochs} epochs; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        serial = run_grid(configs, root=Path(tmp) / "serial", progress=False, executor=Serial())
        t_serial = time.perf_counter() - start
        print(f"  serial                      {t_serial:7.1f} s   ({torch.get_num_threads()} intra-op threads)")
        start = time.perf_counter()
        local = run_grid(configs, root=Path(tmp) / "local", progress=False, executor=Local(workers=args.workers))
        t_local = time.perf_counter() - start
        print(f"  local, {args.workers} workers            {t_local:7.1f} s   (1 intra-op thread each)")
    same = sum(a.metrics["test_accuracy"] == b.metrics["test_accuracy"] for a, b in zip(serial, local))
    print(f"  speed-up serial / local     {t_serial / t_local:7.2f} x   "
          f"(identical test accuracy in {same} of {len(configs)} runs)")


if __name__ == "__main__":
    main()
