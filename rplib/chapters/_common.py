"""Pieces shared by the chapters' grids: the data config and the training recipe."""

from __future__ import annotations

from .. import data as rdata
from ..config import OptimConfig

__all__ = ["data_config", "scaled_cifar_recipe"]


def data_config(dataset: str, data_root: str, download: bool, num_samples: int,
                mnist1d_only: bool = False) -> rdata.DataConfig:
    """The chapter's :class:`~rplib.data.DataConfig`; ``mnist1d_only`` passes ``num_samples`` for MNIST-1D only."""
    extra = {"num_samples": num_samples} if (dataset == "mnist1d" or not mnist1d_only) else {}
    return rdata.DataConfig(name=dataset, root=data_root, download=download, **extra)


def scaled_cifar_recipe(epochs: int, batch_size: int, lr: float) -> OptimConfig:
    """The random-pruning CIFAR recipe with its learning-rate steps (epochs 80 and 120 of 160) as fractions."""
    return OptimConfig.preset("random_pruning_cifar", epochs=epochs, batch_size=batch_size, lr=lr,
                              milestones=(0.5, 0.75))
