"""Wall time of one grid run serially and through the local process pool, side by side.

A fixed grid of small MNIST-1D runs (cnn1d, dense and random-sparse, several seeds) is trained
into fresh temporary run stores in three ways: serially with one intra-op thread per run (the
default, ``RPLIB_THREADS=1``), serially with two, and with ``local`` (``--workers`` processes, one
thread each). The speed of a shared virtual machine drifts by tens of percent within minutes, so
the three are run twice in mirrored order (serial 1, serial 2, local, local, serial 2, serial 1):
a drift that is linear in time then weighs on each form equally. Every phase runs in a fresh
Python process, so each local phase starts its own fork server and pool, as a fresh notebook kernel
would; each serial phase first trains one untimed epoch (the first-use imports, about 2 s, are
not counted against serial). Prints each phase's wall time, the ratios of the summed times (on 2
free cores the pool should be at least 1.6x faster than either serial form), the ceiling the
machine sets (``workers`` times a run's mean wall time alone over its mean wall time beside the
other workers' runs: cores that share caches, memory bandwidth or a physical core slow each other
down) and the pool's time beyond its runs' own (start-up, an uneven end).

    python benchmarks/executor.py [--runs 16] [--epochs 30] [--samples 4000] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rplib.config import ModelConfig, OptimConfig, RunConfig
from rplib.data import DataConfig

FORMS = {"serial1": "serial, 1 thread per run", "serial2": "serial, 2 threads per run", "local": "local"}
ORDER = ["serial1", "serial2", "local", "local", "serial2", "serial1"]


def grid(runs: int, epochs: int, samples: int) -> list[RunConfig]:
    """``runs`` configs: seeds 0, 1, ... alternately dense and random-sparse (density 0.1, ERK)."""
    base = RunConfig(data=DataConfig(name="mnist1d", num_samples=samples), model=ModelConfig(name="cnn1d"),
                     optim=OptimConfig(epochs=epochs, batch_size=64, lr=0.05, milestones=(0.75,)), device="cpu")
    sparse = {"sparsity.method": "random", "sparsity.density": 0.1, "sparsity.scheme": "erk"}
    return [base.with_({"seed": i // 2} | (sparse if i % 2 else {})) for i in range(runs)]


def phase(form: str, args: argparse.Namespace) -> dict:
    """Train the grid one way into a fresh store; its wall time, and each run's wall time and test accuracy."""
    from rplib.executors import Local, Serial
    from rplib.grid import run_grid
    from rplib.train import run

    configs = grid(args.runs, args.epochs, args.samples)
    os.environ["RPLIB_THREADS"] = "2" if form == "serial2" else "1"
    with tempfile.TemporaryDirectory() as tmp:
        if form != "local":  # the first-use imports and the data, untimed: a cost the pool pays itself
            run(configs[0].with_({"optim.epochs": 1}), root=Path(tmp) / "warm-up", progress=False)
        executor = Local(workers=args.workers) if form == "local" else Serial()
        start = time.perf_counter()
        results = run_grid(configs, root=Path(tmp) / "grid", progress=False, executor=executor)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "wall": [r.metrics["wall_time"] for r in results],
            "accuracy": [r.metrics["test_accuracy"] for r in results]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--samples", type=int, default=4000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--phase", choices=list(FORMS), help=argparse.SUPPRESS)  # one phase, in a child process
    args = ap.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, args)))
        return
    print(f"{args.runs} runs: MNIST-1D ({args.samples} samples), cnn1d, {args.epochs} epochs; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; local: {args.workers} workers x 1 thread")
    grid(args.runs, args.epochs, args.samples)  # a bad value fails here, before any phase
    phases: dict[str, list[dict]] = {form: [] for form in FORMS}
    for form in ORDER:
        out = subprocess.run([sys.executable, __file__, "--phase", form, "--runs", str(args.runs), "--epochs",
                              str(args.epochs), "--samples", str(args.samples), "--workers", str(args.workers)],
                             check=True, stdout=subprocess.PIPE, text=True).stdout
        phases[form].append(json.loads(out.splitlines()[-1]))
        print(f"  {FORMS[form]:<26} {phases[form][-1]['seconds']:7.1f} s")
    total = {form: sum(p["seconds"] for p in ps) for form, ps in phases.items()}
    for form in ("serial1", "serial2"):
        print(f"  speed-up {FORMS[form]} / local (summed over both phases): {total[form] / total['local']:5.2f} x")
    # the ceiling set by the machine: a run's own wall time alone vs beside the other workers' runs
    alone, beside = (sum(sum(p["wall"]) for p in phases[form]) / sum(len(p["wall"]) for p in phases[form])
                     for form in ("serial1", "local"))
    print(f"  one run takes {alone:.2f} s alone and {beside:.2f} s beside the other workers' runs: "
          f"at most {args.workers * alone / beside:.2f} x from {args.workers} workers on this machine")
    overhead = [p["seconds"] - sum(p["wall"]) / args.workers for p in phases["local"]]
    print(f"  the pool's time beyond its runs' own: {', '.join(f'{o:.1f} s' for o in overhead)} "
          f"(start-up, the last runs ending unevenly)")
    reference = phases["serial1"][0]["accuracy"]
    same = {form: ", ".join(str(sum(a == b for a, b in zip(reference, p["accuracy"]))) for p in ps)
            for form, ps in phases.items()}
    print(f"  runs with the test accuracy of the first serial 1-thread phase, of {args.runs} per phase: "
          f"{'; '.join(f'{FORMS[form]} {n}' for form, n in same.items())} (2 threads sum in another order)")


if __name__ == "__main__":
    main()
