"""Chapter 03, layer-wise schemes and ERK+: parameters, reachable (scheme, sparsity) pairs and the run grid."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .. import models, sparsity
from ..config import DEVICES, RunConfig
from ._common import data_config, input_spec, scaled_cifar_recipe
from ._params import ChapterParams

__all__ = ["Params", "SALIENCY", "ALL_SCHEMES", "DEPTH_MODELS", "Network", "network", "config", "grid"]

SALIENCY = ("snip", "grasp")  # data-dependent ratios: random masks with the saliency methods' layer-wise densities
ALL_SCHEMES = (*sparsity.SCHEMES, *SALIENCY)
DEPTH_MODELS = ("cnn1d", "resnet", "wrn")  # registry names that take a depth


@dataclass(frozen=True)
class Params(ChapterParams):
    """Parameters of ``03_schemes`` (defaults: the smoke profile)."""

    CHAPTER = "03_schemes"
    dataset: str = "mnist1d"
    num_samples: int = 1000
    data_root: str = "../data"
    download: bool = False
    model: str = "cnn1d"
    depth: int = 0
    width: float = 1.0
    schemes: list = field(default_factory=lambda: ["uniform", "erk", "erk_plus", "snip"])
    sparsities: list = field(default_factory=lambda: [0.5, 0.9])
    baseline: str = "uniform"
    challenger: str = "erk"
    prune_samples_per_class: int = 10
    epochs: int = 2
    batch_size: int = 128
    lr: float = 0.1
    seeds: int = 1
    device: str = "auto"
    runs: str = "../runs"

    def __post_init__(self) -> None:
        self._data_fields()
        self._choice("model", models.available())
        self._int("depth", 0)
        if self.depth and self.model not in DEPTH_MODELS:
            self._fail("depth", f"0 for model {self.model!r} (only {', '.join(DEPTH_MODELS)} take a depth)", self.depth)
        self._float("width", 0, None, lo_open=True)
        self._choices("schemes", ALL_SCHEMES)
        self._floats("sparsities", 0, 1, lo_open=True, hi_open=True)
        self._choice("baseline", self.schemes)
        self._choice("challenger", [s for s in self.schemes if s != self.baseline])
        for name in ("prune_samples_per_class", "epochs", "batch_size", "seeds"):
            self._int(name)
        self._float("lr", 0, None, lo_open=True)
        self._choice("device", DEVICES)
        self._str("runs")
        self._set("sparsities", sorted({round(float(s), 10) for s in self.sparsities}))
        self._set("width", float(self.width))


@dataclass(frozen=True)
class Network:
    """The chapter's network on the data: its size, each data-free scheme's ratios, and what cannot be reached."""

    prunable_weights: int
    ratios: dict[tuple[str, float], dict[str, float]]
    unreachable: dict[tuple[str, float], str]


def _base(p: Params) -> RunConfig:
    data_cfg = data_config(p.dataset, p.data_root, p.download, p.num_samples, mnist1d_only=True)
    return RunConfig(data=data_cfg, optim=scaled_cifar_recipe(p.epochs, p.batch_size, p.lr), device=p.device).with_(
        {"model.name": p.model, "model.width": p.width, "model.depth": p.depth or None,
         "sparsity.prune_samples_per_class": p.prune_samples_per_class})


def network(p: Params) -> Network:
    """Build the network on the data's input shape (a network that cannot take the inputs fails here) and
    solve every data-free scheme at every sparsity; a scheme whose dense layers alone exceed the budget is
    recorded as unreachable."""
    in_shape, num_classes = input_spec(_base(p).data)
    net = models.build(p.model, num_classes, in_shape=in_shape, width=p.width, **({"depth": p.depth} if p.depth else {}))
    try:
        with torch.no_grad():
            net.eval()(torch.zeros(2, *in_shape))
    except RuntimeError as err:
        raise ValueError(f"parameter 'model' of {p.CHAPTER}: {p.model!r} cannot take {p.dataset} inputs of shape "
                         f"{in_shape}: {err}") from None
    ratios, unreachable = {}, {}
    for scheme in p.schemes:
        if scheme in SALIENCY:
            continue
        for s in p.sparsities:
            try:
                ratios[scheme, s] = sparsity.layerwise_densities(net, round(1 - s, 10), scheme)
            except ValueError as err:
                unreachable[scheme, s] = str(err)
    return Network(sum(t.numel() for t in models.prunable_parameters(net).values()), ratios, unreachable)


def config(p: Params, scheme: str, s: float, seed: int) -> RunConfig:
    """One run: dense (``scheme="dense"``) or a random mask with the scheme's ratios at sparsity ``s``."""
    if scheme == "dense":
        return _base(p).with_(seed=seed)
    return _base(p).with_({"sparsity.method": "random", "sparsity.density": round(1 - s, 10),
                           "sparsity.scheme": scheme}, seed=seed)


def grid(p: Params, net: Network | None = None) -> list[RunConfig]:
    """The dense network and every reachable (scheme, sparsity) pair, each for every seed."""
    unreachable = (net or network(p)).unreachable
    configs = [config(p, "dense", 0.0, seed) for seed in range(p.seeds)]
    return configs + [config(p, scheme, s, seed) for scheme in p.schemes for s in p.sparsities
                      if (scheme, s) not in unreachable for seed in range(p.seeds)]
