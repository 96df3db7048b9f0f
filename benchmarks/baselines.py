"""Dense baselines at the cpu profile's scale, against the accuracies the MNIST-1D authors publish.

Greydanus (2020) reports test accuracies on the default MNIST-1D split (4000 train / 1000 test)
of about 94% for a CNN and 68% for an MLP. This trains rplib's ``cnn1d`` (the authors' three
stride-2 convolutions, with batch norm) and ``mlp`` densely over several seeds through
``rplib.run`` (results land in the run store like any run) and prints mean +- std of the
final-epoch test accuracy beside the published figure.

    python benchmarks/baselines.py [--seeds 3] [--epochs 30] [--root runs]
"""

from __future__ import annotations

import argparse
import statistics

from rplib.config import ModelConfig, OptimConfig, RunConfig
from rplib.data import DataConfig
from rplib.train import run

PUBLISHED = {"cnn1d": 0.94, "mlp": 0.68}  # MNIST-1D paper, Table 1 (CNN, MLP)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--root", default=None, help="run store (default: $RPLIB_RUNS or ./runs)")
    args = ap.parse_args()
    print(f"MNIST-1D (5000 samples: 4000 train / 1000 test), dense, {args.epochs} epochs, cosine lr 0.1, "
          f"batch 128, {args.seeds} seeds")
    for name, published in PUBLISHED.items():
        accs, secs = [], []
        for seed in range(args.seeds):
            cfg = RunConfig(data=DataConfig(name="mnist1d", num_samples=5000), model=ModelConfig(name),
                            optim=OptimConfig(epochs=args.epochs, batch_size=128, lr=0.1, schedule="cosine"),
                            seed=seed, device="cpu")
            result = run(cfg, root=args.root)
            accs.append(result.metrics["test_accuracy"])
            secs.append(result.metrics["wall_time"])
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        print(f"  {name:<6} test accuracy {statistics.mean(accs):.3f} +- {sd:.3f}   published {published:.2f}   "
              f"ratio {statistics.mean(accs) / published:.3f}   ({statistics.mean(secs):.1f} s per run when trained)")


if __name__ == "__main__":
    main()
