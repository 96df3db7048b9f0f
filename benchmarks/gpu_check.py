"""GPU check, side by side in one run (sized for well under 8 minutes on one GPU; synthetic CIFAR-10 data):

1. ResNet-20 training step time and images/s: rplib's on-device path (tensors resident on the GPU,
   batched crop/flip, bf16 autocast, channels_last) against a torchvision ``DataLoader`` with
   per-image transforms;
2. aggregate images/s of 1, 2 and 4 concurrent training processes sharing the GPU;
3. a 2-epoch data-parallel run through ``torchrun --nproc-per-node 1`` (NCCL) and ``rplib train``, on
   CIFAR-10 files with random images written in the real on-disk format (the GPU machines have no
   internet, so nothing can be downloaded);
4. the paper profile's GPU-hours per chapter, from timed training steps of each of its networks
   (``rplib plan --profile paper --measure``; with ``--tiny``, the smoke profile's).

    python benchmarks/gpu_check.py                       # needs a CUDA GPU; exits with a message if none
    python benchmarks/gpu_check.py --device cpu --tiny   # the same logic, a few steps on the CPU
    RPLIB_FAST_PATH=on python benchmarks/gpu_check.py --device cpu --tiny   # ... with channels_last and bf16
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

import torch

from rplib.train import FastPath
from throughput import cifar_like, images_per_second, measure_data_paths, resnet20_trainer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from fakedata import write_cifar10  # noqa: E402  (the CIFAR-10 on-disk format, shared with the tests)

CONCURRENCY = (1, 2, 4)
BATCH = 128


def _env() -> dict[str, str]:
    return os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def worker(steps: int, device: torch.device, n: int, ready: Path, count: int) -> None:
    """One of ``count`` concurrent processes: warm up, wait for all (files in ``ready``), print images/s as JSON."""

    def wait_for_all() -> None:
        (ready / str(os.getpid())).touch()
        deadline = time.time() + 300
        while len(list(ready.iterdir())) < count:
            if time.time() > deadline:
                raise RuntimeError(f"only {len(list(ready.iterdir()))} of {count} concurrent processes got ready")
            time.sleep(0.01)

    bundle, _, _ = cifar_like(n, device)
    model, trainer, opt = resnet20_trainer(bundle, device, BATCH)
    g = torch.Generator().manual_seed(os.getpid())
    batches = bundle.batches("train", BATCH, shuffle=True, augment=True, generator=g, drop_last=True)
    print(json.dumps({"images_per_s": images_per_second(model, trainer, opt, batches, steps, device, wait_for_all)}))


def concurrent(steps: int, device: torch.device, n: int, tmp: Path) -> dict[int, list[float]]:
    """Images/s of each of 1, 2 and 4 processes training at the same time (timed after a common start)."""
    out: dict[int, list[float]] = {}
    for count in CONCURRENCY:
        ready = tmp / f"ready{count}"
        ready.mkdir()
        cmd = [sys.executable, __file__, "--worker", str(ready), "--count", str(count), "--steps", str(steps),
               "--device", device.type, "--images", str(n)]
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=_env()) for _ in range(count)]
        rates = []
        for p in procs:
            stdout, _ = p.communicate(timeout=240)
            if p.returncode:
                raise RuntimeError(f"a concurrent training process failed with exit status {p.returncode}")
            rates.append(json.loads(stdout.strip().splitlines()[-1])["images_per_s"])
        out[count] = rates
    return out


def ddp_run(device: torch.device, tiny: bool, tmp: Path) -> tuple[dict, float]:
    """``rplib train`` for 2 epochs under ``torchrun --nproc-per-node 1``; returns (metrics, wall seconds)."""
    per_batch = 64 if tiny else 10_000  # five training batches: 320 or 50,000 images
    write_cifar10(tmp / "data", per_batch=per_batch, n_test=64 if tiny else 10_000)
    sets = {"data.name": "cifar10", "data.root": str(tmp / "data"), "model.name": "resnet20", "optim.epochs": 2,
            "optim.batch_size": 64 if tiny else BATCH, "sparsity.method": "random", "sparsity.density": 0.1,
            "sparsity.scheme": "erk", "device": device.type}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "1", "--standalone",
           "-m", "rplib", "train", "--quiet", "--json", "--root", str(tmp / "runs")]
    for k, v in sets.items():
        cmd += ["--set", f"{k}={v}"]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300)
    wall = time.perf_counter() - t
    if proc.returncode:
        raise RuntimeError(f"the torchrun run failed with exit status {proc.returncode}:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout[proc.stdout.index("{"):]), wall


def paper_plan(tiny: bool, tmp: Path) -> str:
    """``rplib plan --measure`` of the paper profile (smoke, a step each, when ``tiny``) against an empty store."""
    profile, steps = ("smoke", 1) if tiny else ("paper", 20)
    cmd = [sys.executable, "-m", "rplib", "plan", "--profile", profile, "--measure", str(steps),
           "--root", str(tmp / "empty"), "--book-root", str(REPO)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300)
    if proc.returncode:
        raise RuntimeError(f"rplib plan failed with exit status {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    ap.add_argument("--tiny", action="store_true", help="a few steps on little data: checks the logic, not the speed")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per measurement (default 200, tiny 2)")
    ap.add_argument("--images", type=int, default=None, help="synthetic training images (default 50000, tiny 1024)")
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--count", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU is available, nothing measured "
              "(run it on a GPU machine, or check the logic with --device cpu --tiny)", file=sys.stderr)
        return 0
    device = torch.device(args.device)
    steps = args.steps or (2 if args.tiny else 200)
    n = args.images or (1024 if args.tiny else 50_000)
    if args.worker is not None:
        worker(steps, device, n, args.worker, args.count)
        return 0

    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    fast = ", ".join(FastPath.resolve(device).names) or "off"
    print(f"gpu_check on {device} ({name}), torch {torch.__version__}, ResNet-20, batch {BATCH}, {steps} timed steps, "
          f"fast path: {fast}")
    t0 = time.perf_counter()
    paths = measure_data_paths(steps, device, n)
    print(f"\n1. data path{'':33} {'step ms':>9} {'images/s':>10}")
    for key, label in (("on_device", "on-device tensors + batched augmentation"),
                       ("dataloader", f"torchvision DataLoader ({paths['workers']} workers)")):
        print(f"   {label:<42} {1000 * BATCH / paths[key]:>9.2f} {paths[key]:>10.0f}")
    print(f"   ratio on-device / DataLoader: {paths['on_device'] / paths['dataloader']:.2f}")

    with tempfile.TemporaryDirectory() as tmp:
        rates = concurrent(steps, device, n, Path(tmp))
        print(f"\n2. concurrent runs on one {device.type.upper()}{'':14} {'total images/s':>15} {'per run':>10}")
        for count, r in rates.items():
            print(f"   {count} process{'es' if count > 1 else '':<2}{'':31} {sum(r):>15.0f} {sum(r) / count:>10.0f}")
        metrics, wall = ddp_run(device, args.tiny, Path(tmp))
        planned = paper_plan(args.tiny, Path(tmp))
    print("\n3. torchrun --nproc-per-node 1 (" + ("nccl" if device.type == "cuda" else "gloo") + "), rplib train, "
          "ResNet-20 ERK density 0.1, 2 epochs")
    print(f"   process group {metrics['process_group']}, world size {metrics['world_size']}, {metrics['steps']} steps, "
          f"training + evaluation "
          f"{metrics['wall_time']:.1f} s (process wall {wall:.1f} s), test accuracy {metrics['test_accuracy']:.4f} "
          f"(random labels: about 0.1), device {metrics['device']}")
    print(f"\n4. rplib plan --profile {'smoke' if args.tiny else 'paper'} --measure (one worker's hours, empty store)")
    print("   " + planned.rstrip().replace("\n", "\n   "))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
