"""Pieces shared by the chapters' grids: data shapes without loading big datasets, the training recipe."""

from __future__ import annotations

from .. import data as rdata
from ..config import OptimConfig

__all__ = ["data_config", "input_spec", "scaled_cifar_recipe"]

_IMAGE_SETS = {"cifar10": ((3, 32, 32), 10), "cifar100": ((3, 32, 32), 100), "svhn": ((3, 32, 32), 10)}


def data_config(dataset: str, data_root: str, download: bool, num_samples: int,
                mnist1d_only: bool = False) -> rdata.DataConfig:
    """The chapter's :class:`~rplib.data.DataConfig`; ``mnist1d_only`` passes ``num_samples`` for MNIST-1D only."""
    extra = {"num_samples": num_samples} if (dataset == "mnist1d" or not mnist1d_only) else {}
    return rdata.DataConfig(name=dataset, root=data_root, download=download, **extra)


def input_spec(cfg: rdata.DataConfig) -> tuple[tuple[int, ...], int]:
    """``(in_shape, num_classes)`` of a dataset: CIFAR/SVHN by their fixed shapes, the offline sets by loading."""
    if cfg.name in _IMAGE_SETS:
        return _IMAGE_SETS[cfg.name]
    bundle = rdata.load(cfg)
    return tuple(bundle.in_shape), bundle.num_classes


def scaled_cifar_recipe(epochs: int, batch_size: int, lr: float) -> OptimConfig:
    """The random-pruning CIFAR recipe with its learning-rate steps (epochs 80 and 120 of 160) as fractions."""
    return OptimConfig.preset("random_pruning_cifar", epochs=epochs, batch_size=batch_size, lr=lr,
                              milestones=(0.5, 0.75))
