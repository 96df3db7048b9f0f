"""Chapter 02, depth and width scaling: parameters, the networks of both sweeps, and the run grid."""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import models, sparsity
from ..config import DEVICES, RunConfig
from ._common import data_config, input_spec, scaled_cifar_recipe
from ._params import ChapterParams

__all__ = ["Params", "FAMILIES", "sizes", "label", "prunable_weights", "config", "grid"]

FAMILIES = ("cnn1d", "resnet", "wrn")  # registry names that take both a depth and a width


@dataclass(frozen=True)
class Params(ChapterParams):
    """Parameters of ``02_scaling`` (defaults: the smoke profile); lists are stored sorted and de-duplicated."""

    CHAPTER = "02_scaling"
    dataset: str = "mnist1d"
    num_samples: int = 1000
    data_root: str = "../data"
    download: bool = False
    model: str = "cnn1d"
    depths: list = field(default_factory=lambda: [3, 5])
    widths: list = field(default_factory=lambda: [0.5, 1.0])
    base_depth: int = 3
    base_width: float = 1.0
    sparsities: list = field(default_factory=lambda: [0.5, 0.9])
    schemes: list = field(default_factory=lambda: ["erk", "uniform"])
    gap_sparsity: float = 0.9
    epochs: int = 2
    batch_size: int = 128
    lr: float = 0.1
    seeds: int = 1
    device: str = "auto"
    runs: str = "../runs"

    def __post_init__(self) -> None:
        self._data_fields()
        self._choice("model", FAMILIES)
        if (self.model == "cnn1d") != (self.dataset == "mnist1d"):
            self._fail("model", "cnn1d for dataset mnist1d, resnet or wrn for image datasets", self.model)
        self._ints("depths")
        self._floats("widths", 0, None, lo_open=True)
        self._int("base_depth")
        self._float("base_width", 0, None, lo_open=True)
        self._floats("sparsities", 0, 1, lo_open=True, hi_open=True)
        self._choices("schemes", sparsity.SCHEMES)
        self._float("gap_sparsity", 0, 1, lo_open=True, hi_open=True)
        if self.gap_sparsity not in self.sparsities:
            self._fail("gap_sparsity", f"one of sparsities {self.sparsities}", self.gap_sparsity)
        for name in ("epochs", "batch_size", "seeds"):
            self._int(name)
        self._float("lr", 0, None, lo_open=True)
        self._choice("device", DEVICES)
        self._str("runs")
        self._set("depths", sorted(set(self.depths)))
        self._set("widths", sorted({float(w) for w in self.widths}))
        self._set("base_width", float(self.base_width))
        self._set("sparsities", sorted({round(float(s), 10) for s in self.sparsities}))


def sizes(p: Params) -> list[tuple[int, float]]:
    """Every (depth, width) of both sweeps: the depth sweep at ``base_width``, the width sweep at ``base_depth``."""
    return list(dict.fromkeys([(d, p.base_width) for d in p.depths] + [(p.base_depth, w) for w in p.widths]))


def label(p: Params, depth: int, width: float) -> str:
    """The network's name as the papers write it."""
    if p.model == "resnet":
        return f"ResNet-{depth}" + ("" if width == 1 else f" ({width:g}x wide)")
    if p.model == "wrn":
        return f"WRN-{depth}-{width:g}"
    return f"cnn1d depth {depth}, width {width:g}"


def _base(p: Params) -> RunConfig:
    data_cfg = data_config(p.dataset, p.data_root, p.download, p.num_samples, mnist1d_only=True)
    return RunConfig(data=data_cfg, optim=scaled_cifar_recipe(p.epochs, p.batch_size, p.lr), device=p.device)


def prunable_weights(p: Params) -> dict[tuple[int, float], int]:
    """Prunable weights of every network; building each (and its layer-wise densities) fails early on a bad size."""
    in_shape, num_classes = input_spec(_base(p).data)
    out = {}
    for d, w in sizes(p):
        net = models.build(p.model, num_classes, in_shape=in_shape, depth=d, width=w)
        out[d, w] = sum(t.numel() for t in models.prunable_parameters(net).values())
        for scheme in p.schemes:
            for s in p.sparsities:
                sparsity.layerwise_densities(net, round(1 - s, 10), scheme)
    return out


def config(p: Params, depth: int, width: float, scheme: str, s: float, seed: int) -> RunConfig:
    """One run: the network of this size, dense (``scheme="dense"``) or a random mask at sparsity ``s``."""
    changes = {"model.name": p.model, "model.depth": depth, "model.width": width}
    if scheme != "dense":
        changes |= {"sparsity.method": "random", "sparsity.density": round(1 - s, 10), "sparsity.scheme": scheme}
    return _base(p).with_(changes, seed=seed)


def grid(p: Params) -> list[RunConfig]:
    """Every network dense, then every (network, scheme, sparsity), each for every seed."""
    configs = [config(p, d, w, "dense", 0.0, seed) for d, w in sizes(p) for seed in range(p.seeds)]
    return configs + [config(p, d, w, scheme, s, seed) for d, w in sizes(p) for scheme in p.schemes
                      for s in p.sparsities for seed in range(p.seeds)]
