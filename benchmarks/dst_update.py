"""Cost of one DST mask update against Delta T = 100 training steps, on CPU.

ResNet-20 (CIFAR-10 shapes, batch 128) at density 0.1 ERK: the time of one update (magnitude drop
with gradient or random growth, alpha = 0.3) against 100 steps of forward, backward and SGD; the
step time is measured over a few steps and scaled. ResNet-50 (ImageNet shapes) at the same
density: update time alone, and against 100 steps at a small batch (an upper bound on the ratio:
real batches cost more per step, the update costs the same). Target: updates <= 1% of training.

    python benchmarks/dst_update.py [--steps 3] [--reps 5] [--r50-batch 4] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from rplib import models
from rplib.dst import DSTConfig, DynamicSparsity
from rplib.models import prunable_parameters
from rplib.sparsity import layerwise_densities, random_mask

DELTA_T = 100
DENSITY = 0.1


def _setup(name: str, num_classes: int, in_shape: tuple[int, ...], batch: int):
    torch.manual_seed(0)
    model = models.build(name, num_classes, in_shape=in_shape)
    mask = random_mask(model, layerwise_densities(model, DENSITY, "erk"), seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    mask.attach(model, opt, zero_state=True)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, *in_shape, generator=g)
    y = torch.randint(0, num_classes, (batch,), generator=g)
    return model, mask, opt, x, y


def _train_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()


def time_steps(model, opt, x, y, steps: int) -> float:
    """Mean seconds per training step after one warm-up step."""
    model.train()
    _train_step(model, opt, x, y)
    t0 = time.perf_counter()
    for _ in range(steps):
        _train_step(model, opt, x, y)
    return (time.perf_counter() - t0) / steps


def time_update(model, mask, opt, grow: str, reps: int) -> float:
    """Median seconds of one update (magnitude drop, alpha = 0.3) on the model's current weights and grads."""
    cfg = DSTConfig(drop="magnitude", grow=grow, alpha=0.3, schedule="constant", end_fraction=1.0,
                    update_period=DELTA_T)
    dst = DynamicSparsity(cfg, mask, model, opt, total_steps=10**9, seed=0)
    times = []
    for rep in range(reps):
        t0 = time.perf_counter()
        dst.update(DELTA_T * (rep + 1))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3, help="timed ResNet-20 training steps (default 3)")
    ap.add_argument("--reps", type=int, default=5, help="timed updates per growth criterion (default 5)")
    ap.add_argument("--r50-batch", type=int, default=4, help="ResNet-50 batch for its step time; 0 skips it")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, density {DENSITY} ERK, "
          f"alpha 0.3, Delta T = {DELTA_T}")

    model, mask, opt, x, y = _setup("resnet20", 10, (3, 32, 32), 128)
    n = sum(p.numel() for p in prunable_parameters(model).values())
    step = time_steps(model, opt, x, y, args.steps)  # leaves dense gradients in .grad for the update
    print(f"\nResNet-20 ({n:,} prunable weights, {mask.kept():,} active), batch 128")
    print(f"  training step (fwd+bwd+SGD): {step * 1e3:9.1f} ms  -> Delta T = {DELTA_T} steps: {step * DELTA_T:7.2f} s")
    for grow in ("gradient", "random"):
        upd = time_update(model, mask, opt, grow, args.reps)
        print(f"  update, magnitude drop + {grow:8s} growth: {upd * 1e3:8.1f} ms  "
              f"-> {100 * upd / (step * DELTA_T):.3f}% of {DELTA_T} steps")

    batch = max(args.r50_batch, 1)
    model, mask, opt, x, y = _setup("resnet50", 1000, (3, 224, 224), batch)
    n = sum(p.numel() for p in prunable_parameters(model).values())
    print(f"\nResNet-50 ({n:,} prunable weights, {mask.kept():,} active)")
    if args.r50_batch > 0:
        step = time_steps(model, opt, x, y, 1)
        print(f"  training step at batch {batch} (fwd+bwd+SGD): {step:6.2f} s -> Delta T = {DELTA_T} steps: "
              f"{step * DELTA_T:7.1f} s")
    else:
        step = None
        g = torch.Generator().manual_seed(1)
        for p in model.parameters():
            p.grad = torch.randn(p.shape, generator=g)
        print("  (no training step timed: random dense gradients stand in)")
    for grow in ("gradient", "random"):
        upd = time_update(model, mask, opt, grow, max(2, args.reps // 2))
        ratio = f"-> {100 * upd / (step * DELTA_T):.3f}% of {DELTA_T} steps at batch {batch}" if step else ""
        print(f"  update, magnitude drop + {grow:8s} growth: {upd:6.2f} s  {ratio}")


if __name__ == "__main__":
    main()
