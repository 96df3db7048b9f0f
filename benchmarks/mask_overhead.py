"""Cost of keeping a network sparse during training, measured side by side in one run.

Time per training step (forward, backward, SGD step with momentum and weight decay) of
ResNet-20 on random CIFAR-shaped batches, on CPU:

* dense: no mask;
* rplib: ``Mask.attach`` (pruned weights and momentum zeroed after each step; no forward multiply);
* torch.nn.utils.prune: ``weight = weight_orig * weight_mask`` recomputed in every forward.

The three variants are interleaved round by round so that machine noise hits them alike; the
median over rounds is reported, with the ratios to dense. Target: rplib <= 1.05 x dense.

    python benchmarks/mask_overhead.py [--batch 128] [--steps 5] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn
from torch.nn.utils import prune

from rplib import models
from rplib.models import prunable_parameters
from rplib.sparsity import layerwise_densities, random_mask


def make(variant: str, density: float):
    torch.manual_seed(0)
    model = models.build("resnet20", 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    mask = random_mask(model, layerwise_densities(model, density, "erk"), seed=0)
    if variant == "rplib":
        mask.attach(model, opt)
    elif variant == "torch_prune":
        modules = dict(model.named_modules())
        for name, m in mask.masks.items():
            prune.custom_from_mask(modules[name.removesuffix(".weight")], "weight", m)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    return model, opt


def step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    opt.zero_grad(set_to_none=False)
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per round and variant")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--density", type=float, default=0.1)
    args = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (args.batch,), generator=g)
    variants = ["dense", "rplib", "torch_prune"]
    nets = {v: make(v, args.density) for v in variants}
    for v in variants:  # warm-up
        for _ in range(2):
            step(*nets[v], x, y)
    times: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(args.rounds):
        for v in variants:
            t = time.perf_counter()
            for _ in range(args.steps):
                step(*nets[v], x, y)
            times[v].append((time.perf_counter() - t) / args.steps)
    # the rplib network really is sparse after training
    model, _ = nets["rplib"]
    kept = sum(int((p != 0).sum()) for p in prunable_parameters(model).values())
    total = sum(p.numel() for p in prunable_parameters(model).values())
    med = {v: statistics.median(ts) for v, ts in times.items()}
    print(f"ResNet-20, batch {args.batch}, density {args.density} (ERK), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, median of {args.rounds} rounds x {args.steps} steps")
    for v in variants:
        print(f"  {v:<12} {med[v] * 1000:8.1f} ms/step   ratio to dense {med[v] / med['dense']:.3f}")
    print(f"  rplib nonzero prunable weights after training: {kept}/{total} = {kept / total:.4f}")
    print(f"ratio rplib/dense = {med['rplib'] / med['dense']:.3f} (target <= 1.05); "
          f"ratio torch_prune/dense = {med['torch_prune'] / med['dense']:.3f}")


if __name__ == "__main__":
    main()
