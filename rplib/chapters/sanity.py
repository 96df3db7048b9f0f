"""Chapter 04, sanity checks for pruning at initialisation: parameters and the labelled run grid."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import models
from ..config import DEVICES, ModelConfig, OptimConfig, RunConfig
from ..sparsity import layerwise_densities
from ._common import data_config, input_spec
from ._params import ChapterParams

__all__ = ["Params", "METHODS", "SANITY", "PRUNE_DATA", "NAMES", "variants", "model_configs", "classifier_shares",
           "labelled_grid", "grid"]

METHODS = ("snip", "grasp", "lottery")
SANITY = {"rearrange": "rearranged", "shuffle": "shuffled weights", "reinit": "reinitialised"}
PRUNE_DATA = {"random_labels": "random labels", "random_pixels": "random pixels", "half": "half data"}
NAMES = {"snip": "SNIP", "grasp": "GraSP", "lottery": "lottery ticket", "smart_ratio": "random ticket",
         "hybrid": "hybrid ticket", "dense": "dense"}


@dataclass(frozen=True)
class Params(ChapterParams):
    """Parameters of ``04_sanity_checks`` (defaults: the smoke profile).

    ``densities`` is stored in decreasing order; ``rewind_epoch`` is lowered to ``epochs - 1`` when it is
    not below ``epochs`` (e.g. a paper profile shrunk to one epoch), and ``rewind_lowered`` says so.
    """

    CHAPTER = "04_sanity_checks"
    dataset: str = "mnist1d"
    num_samples: int = 1000
    data_root: str = "../data"
    download: bool = False
    networks: list = field(default_factory=lambda: ["cnn1d"])
    widths: list = field(default_factory=lambda: [1.0])
    densities: list = field(default_factory=lambda: [0.1])
    methods: list = field(default_factory=lambda: ["snip", "grasp", "lottery"])
    sanity_checks: list = field(default_factory=lambda: ["rearrange", "shuffle", "reinit"])
    prune_data: list = field(default_factory=lambda: ["random_labels", "random_pixels", "half"])
    random_tickets: bool = True
    hybrid_tickets: bool = True
    dense: bool = True
    prune_samples_per_class: int = 10
    lottery_rounds: int = 1
    rewind_epoch: int = 1
    epochs: int = 3
    batch_size: int = 128
    lr: float = 0.1
    weight_decay: float = 0.0001
    milestones: list = field(default_factory=lambda: [0.5, 0.75])
    seeds: int = 1
    device: str = "auto"
    runs: str = "../runs"
    rewind_lowered: bool = field(default=False, init=False)  # rewind_epoch was lowered to epochs - 1

    def __post_init__(self) -> None:
        self._data_fields()
        self._choices("networks", models.available())
        self._floats("widths", 0, None, lo_open=True)
        if len(self.widths) != len(self.networks):
            self._fail("widths", f"one width per network of {self.networks}", self.widths)
        self._floats("densities", 0, 1, lo_open=True, hi_open=True)
        self._choices("methods", METHODS)
        self._choices("sanity_checks", SANITY, min_len=0)
        self._choices("prune_data", PRUNE_DATA, min_len=0)
        for name in ("random_tickets", "hybrid_tickets", "dense"):
            self._bool(name)
        for name in ("prune_samples_per_class", "lottery_rounds", "epochs", "batch_size", "seeds"):
            self._int(name)
        self._int("rewind_epoch", 0)
        self._float("lr", 0, None, lo_open=True)
        self._float("weight_decay", 0)
        self._floats("milestones", 0, None, lo_open=True, allow_empty=True)
        self._choice("device", DEVICES)
        self._str("runs")
        self._set("densities", sorted({float(d) for d in self.densities}, reverse=True))
        self._set("rewind_lowered", self.rewind_epoch >= self.epochs)
        self._set("rewind_epoch", min(self.rewind_epoch, self.epochs - 1))


def variants(p: Params) -> dict[str, dict[str, Any]]:
    """Variant label -> config changes: the original mask, each sanity check, each corrupted pruning set."""
    out: dict[str, dict[str, Any]] = {"original": {}}
    out |= {label: {"sparsity.sanity": s} for s, label in SANITY.items() if s in p.sanity_checks}
    return out | {label: {"sparsity.prune_data": c} for c, label in PRUNE_DATA.items() if c in p.prune_data}


def model_configs(p: Params) -> dict[str, ModelConfig]:
    """Network label (``name xW`` when W != 1) -> its :class:`ModelConfig`."""
    return {f"{n} x{w:g}" if w != 1 else n: ModelConfig(n, width=float(w)) for n, w in zip(p.networks, p.widths)}


def _base(p: Params) -> RunConfig:
    return RunConfig(data=data_config(p.dataset, p.data_root, p.download, p.num_samples),
                     optim=OptimConfig(epochs=p.epochs, batch_size=p.batch_size, lr=p.lr, weight_decay=p.weight_decay,
                                       milestones=tuple(p.milestones)),
                     device=p.device)


def classifier_shares(p: Params) -> dict[str, float]:
    """Each network's classifier share of the prunable weights; builds every network on the data and, with
    random or hybrid tickets, solves the smart ratio at every density (raises if the classifier alone
    exceeds the budget) -- before any training."""
    in_shape, num_classes = input_spec(_base(p).data)
    shares = {}
    for label, m in model_configs(p).items():
        net = models.build(m.name, num_classes, in_shape=in_shape, **m.options())
        params = models.prunable_parameters(net)
        shares[label] = params[models.classifier_name(net)].numel() / sum(t.numel() for t in params.values())
        if p.random_tickets or p.hybrid_tickets:
            for d in p.densities:
                layerwise_densities(net, d, "smart_ratio")
    return shares


def labelled_grid(p: Params) -> list[tuple[dict[str, Any], RunConfig]]:
    """``(labels, config)`` per run; labels: network, density, method, variant."""
    out = []
    for net_label, model_cfg in model_configs(p).items():
        for seed in range(p.seeds):
            start = _base(p).with_(model=model_cfg, seed=seed)
            if p.dense:
                out.append(({"network": net_label, "density": 1.0, "method": "dense", "variant": "original"}, start))
            for d in p.densities:
                for m in p.methods:
                    sp: dict[str, Any] = {"sparsity.method": m, "sparsity.density": d}
                    if m == "lottery":
                        sp |= {"sparsity.lottery_rounds": p.lottery_rounds, "sparsity.rewind_epoch": p.rewind_epoch}
                    else:
                        sp |= {"sparsity.prune_samples_per_class": p.prune_samples_per_class}
                    for variant, change in variants(p).items():
                        if m != "lottery" or "sparsity.prune_data" not in change:
                            out.append(({"network": net_label, "density": d, "method": m, "variant": variant},
                                        start.with_(sp | change)))
                tickets = {"smart_ratio": {"sparsity.method": "random"} if p.random_tickets else None,
                           "hybrid": {"sparsity.method": "hybrid", "sparsity.rewind_epoch": p.rewind_epoch}
                           if p.hybrid_tickets else None}
                for name, sp in tickets.items():
                    if sp is not None:
                        out.append(({"network": net_label, "density": d, "method": name, "variant": "original"},
                                    start.with_(sp | {"sparsity.density": d, "sparsity.scheme": "smart_ratio"})))
    return out


def grid(p: Params) -> list[RunConfig]:
    """The configs of :func:`labelled_grid`, in order."""
    return [cfg for _, cfg in labelled_grid(p)]
