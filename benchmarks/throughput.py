"""Training throughput, measured side by side in one run.

1. The cpu-profile models (MNIST-1D cnn1d at several depths/widths, the MLP, the digits ConvNet):
   training steps per second, dense and static sparse (ERK, density 0.1), through rplib's own
   training loop (tensor-resident data, batched augmentation).
2. The data path for CIFAR-10-shaped data with ResNet-20 on the best available device: images per
   second through rplib's on-device tensors + batched crop/flip, against a torchvision
   ``DataLoader`` with per-image ``RandomCrop``/``RandomHorizontalFlip``/``Normalize`` transforms.
   Random images stand in for CIFAR-10 (same shape and dtype; the machines that run this have no
   internet), so the numbers measure the pipeline, not the data.

    python benchmarks/throughput.py [--steps 20] [--skip-cpu-models]
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from collections.abc import Callable, Iterable

import torch
from torchvision.transforms import v2 as T

from rplib import data as rdata
from rplib import train
from rplib.config import ModelConfig, OptimConfig, RunConfig, SparsityConfig
from rplib.data import DataConfig
from rplib.models import build
from rplib.sparsity import layerwise_densities, random_mask

CIFAR_MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
CIFAR_STD = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)
CPU_MODELS = [
    ("mnist1d", ModelConfig("cnn1d", depth=3)), ("mnist1d", ModelConfig("cnn1d", depth=9)),
    ("mnist1d", ModelConfig("cnn1d", width=2.0)), ("mnist1d", ModelConfig("mlp")), ("digits", ModelConfig("convnet")),
]


def cpu_models(epochs: int) -> None:
    print(f"cpu-profile models on CPU ({torch.get_num_threads()} threads), batch 128, {epochs} epochs each:")
    print(f"  {'data':<8} {'model':<22} {'dense steps/s':>14} {'sparse steps/s':>15} {'ratio':>6}")
    for dataset, model in CPU_MODELS:
        rates = []
        for sp in (SparsityConfig(), SparsityConfig(method="random", density=0.1)):
            cfg = RunConfig(data=DataConfig(name=dataset, num_samples=5000), model=model, sparsity=sp,
                            optim=OptimConfig(epochs=epochs, batch_size=128), device="cpu")
            bundle = rdata.load(cfg.data, "cpu")
            torch.manual_seed(0)
            net = build(model.name, bundle.num_classes, in_shape=bundle.in_shape, **model.options())
            trainer = train._Trainer(cfg, bundle, torch.device("cpu"))
            opt = trainer.optimizer(net)
            if sp.sparse:
                random_mask(net, layerwise_densities(net, 0.1, "erk"), 0).attach(net, opt)
            trainer.epoch(net, opt, 0, 0, None, trainer.train_batches(0))  # warm-up
            t = time.perf_counter()
            step = 0
            for e in range(epochs):
                _, _, step = trainer.epoch(net, opt, e, step, None, trainer.train_batches(1, e))
            rates.append(step / (time.perf_counter() - t))
        name = f"{model.name} d={model.depth or 3} w={model.width:g}" if model.name == "cnn1d" else model.name
        print(f"  {dataset:<8} {name:<22} {rates[0]:>14.1f} {rates[1]:>15.1f} {rates[1] / rates[0]:>6.2f}")


def cifar_like(n: int, device: torch.device) -> tuple[rdata.DataBundle, torch.Tensor, torch.Tensor]:
    """``n`` random CIFAR-10-shaped images: a :class:`DataBundle` on ``device`` (normalised, crop + flip
    augmentation) and the raw uint8 images and labels on the CPU."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (n,), generator=g)
    x = ((images.float() / 255 - CIFAR_MEAN) / CIFAR_STD).to(device)
    bundle = rdata.DataBundle(name="cifar10", in_shape=(3, 32, 32), num_classes=10, device=device,
                              mean=CIFAR_MEAN.to(device), std=CIFAR_STD.to(device), bounds=(0.0, 1.0),
                              train=(x, labels.to(device)), val=None, test=None, _crop_padding=4, _flip=True)
    return bundle, images, labels


def resnet20_trainer(bundle: rdata.DataBundle, device: torch.device, batch_size: int = 128):
    """ResNet-20, its rplib trainer and optimizer, on the trainer's fast path (:class:`rplib.train.FastPath`:
    channels_last and bf16 autocast on CUDA, unless ``RPLIB_FAST_PATH`` says otherwise)."""
    model = build("resnet20", 10).to(device)
    cfg = RunConfig(data=DataConfig(name="cifar10"), model=ModelConfig("resnet20"),
                    optim=OptimConfig(batch_size=batch_size), device=device.type)
    trainer = train._Trainer(cfg, bundle, device)
    trainer.fast.prepare(model, bundle.in_shape)
    return model, trainer, trainer.optimizer(model)


def images_per_second(model, trainer, opt, batches: Iterable, steps: int, device: torch.device,
                      before_timing: Callable[[], None] | None = None) -> float:
    """Training images per second over ``steps`` batches of ``batches``, after 3 warm-up steps."""
    it = iter(batches)
    first = [next(it) for _ in range(3)]
    trainer.epoch(model, opt, 0, 0, None, [(a.to(device), b.to(device)) for a, b in first])  # warm-up
    if before_timing is not None:
        before_timing()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    trainer.epoch(model, opt, 0, 0, None, ((a.to(device, non_blocking=True), b.to(device, non_blocking=True))
                                           for a, b in itertools.islice(it, steps)))
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * trainer.cfg.optim.batch_size / (time.perf_counter() - t)


def measure_data_paths(steps: int, device: torch.device, n: int) -> dict[str, float]:
    """ResNet-20 images/s through the on-device path and through a torchvision ``DataLoader``."""
    bundle, images, labels = cifar_like(n, device)
    tf = T.Compose([T.ToDtype(torch.float32, scale=True), T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(),
                    T.Normalize(CIFAR_MEAN.flatten().tolist(), CIFAR_STD.flatten().tolist())])

    class Images(torch.utils.data.Dataset):
        def __len__(self):
            return n

        def __getitem__(self, i):
            return tf(images[i]), labels[i]

    workers = min(8, os.cpu_count() or 1)
    loader = torch.utils.data.DataLoader(Images(), batch_size=128, shuffle=True, num_workers=workers, drop_last=True,
                                         pin_memory=device.type == "cuda", persistent_workers=True)
    model, trainer, opt = resnet20_trainer(bundle, device)
    g = torch.Generator().manual_seed(1)
    on_device = images_per_second(model, trainer, opt, bundle.batches("train", 128, shuffle=True, augment=True,
                                                                      generator=g, drop_last=True), steps, device)
    dataloader = images_per_second(model, trainer, opt, loader, steps, device)
    return {"on_device": on_device, "dataloader": dataloader, "workers": workers}


def data_paths(steps: int, device: torch.device) -> None:
    r = measure_data_paths(steps, device, 10_000 if device.type == "cpu" else 50_000)
    print(f"ResNet-20, CIFAR-10-shaped data, batch 128, {steps} steps on {device} "
          f"({torch.cuda.get_device_name() if device.type == 'cuda' else f'{torch.get_num_threads()} threads'}):")
    print(f"  on-device tensors + batched augmentation: {r['on_device']:9.0f} images/s")
    print(f"  torchvision DataLoader ({r['workers']} workers):   {r['dataloader']:9.0f} images/s")
    print(f"  ratio on-device / DataLoader = {r['on_device'] / r['dataloader']:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=None, help="timed steps for the data-path comparison")
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs per cpu-profile model")
    ap.add_argument("--skip-cpu-models", action="store_true")
    args = ap.parse_args()
    device = train.resolve_device("auto")
    if not args.skip_cpu_models:
        cpu_models(args.epochs)
    data_paths(args.steps or (200 if device.type == "cuda" else 10), device)


if __name__ == "__main__":
    main()
