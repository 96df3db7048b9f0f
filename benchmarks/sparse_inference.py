"""Inference latency and size of randomly pruned networks exported to CSR, against dense, on CPU.

For each network (Fantastic Weights MLP 3072-1024-512-10, cnn1d on MNIST-1D (1, 40), ResNet-20,
ResNet-56, VGG-19 on 3x32x32) and each ERK density, the sparse export (``rplib.inference``) and
the dense network are timed side by side in one run: the dense network and the sparse ones at all
densities are interleaved repeat by repeat, at batch 1 and a throughput batch, with 1 and 2
threads. Printed: median time per forward, the speedup dense/sparse (> 1: sparse is faster) and the
storage ratios CSR/dense, bitmask/dense and zlib(CSR)/dense.

    python benchmarks/sparse_inference.py [--quick] [--repeats 7] [--batch 32] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import math

import pandas as pd
import torch

from rplib.inference import NETWORKS, build_masked, byte_counts, latency


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="mlp and resnet20, densities 0.1 and 0.01, 3 repeats")
    ap.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    ap.add_argument("--densities", nargs="+", type=float, default=[0.5, 0.2, 0.1, 0.05, 0.02, 0.01])
    ap.add_argument("--batch", type=int, default=32, help="throughput batch (timed besides batch 1)")
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    if args.quick:
        args.networks, args.densities, args.repeats = ["mlp", "resnet20"], [0.1, 0.01], 3
    bad = [d for d in args.densities if not 0 < d < 1]
    if bad:
        raise SystemExit(f"--densities must lie in (0, 1) (1.0 is the dense network itself), got {bad}")
    timing, sizes = [], []
    for name in args.networks:
        model, masks = build_masked(name, args.densities)
        for d, m in masks.items():
            total = byte_counts(model, m).loc["total"]
            sizes.append({"network": name, "density": d, "csr/dense": total.csr / total.dense,
                          "bitmask/dense": total.bitmask / total.dense, "zlib(csr)/dense": total.csr_zlib / total.dense})
        for threads in args.threads:
            for batch in sorted({1, args.batch}):
                df = latency(model, masks, NETWORKS[name]["in_shape"], batch, threads, args.repeats)
                timing.append(df.rename(columns={"variant": "density"}).assign(network=name))
                print(f"  timed {name}, batch {batch}, {threads} thread(s)", flush=True)
    t = pd.concat(timing, ignore_index=True)
    keys = ["network", "density", "batch", "threads"]
    med = t.groupby(keys).agg(dense_ms=("dense_s", "median"), sparse_ms=("sparse_s", "median"),
                              log_speedup=("log_speedup", "median")).reset_index()
    med[["dense_ms", "sparse_ms"]] *= 1e3
    med["speedup"] = med.pop("log_speedup").map(math.exp)
    print(f"\nERK masks exported to CSR, torch {torch.__version__}, median of {args.repeats} interleaved repeats; "
          "speedup = t_dense / t_sparse (> 1: sparse faster)\n")
    wide = med.pivot_table(index=["network", "density"], columns=["batch", "threads"], values="speedup")
    wide.columns = [f"speedup b{b} t{th}" for b, th in wide.columns]
    dense_ms = med.groupby(["network", "batch", "threads"]).dense_ms.median().unstack(["batch", "threads"])
    dense_ms.columns = [f"dense ms b{b} t{th}" for b, th in dense_ms.columns]
    size = pd.DataFrame(sizes).set_index(["network", "density"])
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.3g}".format):
        print(wide.join(size).sort_index(level=[0, 1], ascending=[True, False]).to_string())
        print("\ndense forward time (ms):")
        print(dense_ms.to_string())


if __name__ == "__main__":
    main()
