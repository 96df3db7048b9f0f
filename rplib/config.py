"""Frozen run configuration: one dataclass describes a run completely and hashes to its directory.

``RunConfig`` nests the configs of each concern (data, model, sparsity, DST, optimisation,
evaluation). Every field is validated in ``__post_init__`` with a message naming the bad value
and the valid choices. ``RunConfig.hash`` is the SHA-256 of the canonical JSON of everything
except what says where a run executes or where its data live (``device``, ``data.root``,
``data.download``), with the data's identity instead (:meth:`rplib.data.DataConfig.identity`):
the same experiment hashes alike on every machine, however its paths are spelled.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any

from . import dst as _dst
from . import evaluate as _evaluate
from .data import CORRUPTIONS, DATASETS, OOD_SETS, DataConfig
from .dst import DSTConfig
from .evaluate import EvalConfig
from .fields import check_fields, describe_type, type_hints
from .scores import GRASP_VARIANTS, check_grasp_variant
from .sparsity import DATA_SCHEMES, SCHEMES, check_density
from .store import config_hash

__all__ = ["ModelConfig", "SparsityConfig", "OptimConfig", "RunConfig", "RECIPES", "SPARSE_METHODS", "SANITY_CHECKS",
           "DEVICES", "field_choices", "describe_fields"]

SPARSE_METHODS = ("dense", "random", "snip", "grasp", "synflow", "lottery", "hybrid")
SANITY_CHECKS = ("none", "rearrange", "shuffle", "reinit")
SCHEDULES = ("multistep", "cosine", "constant")
DEVICES = ("auto", "cpu", "cuda")


def _choice(value: Any, valid: typing.Iterable[str], what: str, field: str) -> None:
    valid = tuple(valid)
    if value not in valid:
        raise ValueError(f"{field}: unknown {what} {value!r}; valid choices: {', '.join(valid)}")


@dataclass(frozen=True)
class ModelConfig:
    """Network by registry name (:func:`rplib.models.build`) with its width multiplier and depth."""

    name: str = "cnn1d"
    width: float = 1.0
    depth: int | None = None
    hidden: tuple[int, ...] | None = None  # MLP hidden widths

    def __post_init__(self):
        from .models import available

        check_fields(self)
        _choice(self.name, available(), "model", "name")
        if not self.width > 0:
            raise ValueError(f"width (multiplier) must be > 0, got {self.width!r}")
        if self.depth is not None and self.depth < 1:
            raise ValueError(f"depth must be >= 1, got {self.depth!r}")
        if self.hidden is not None and (not self.hidden or min(self.hidden) < 1):
            raise ValueError(f"hidden must be a non-empty list of widths >= 1, got {list(self.hidden)!r}")
        if self.hidden is not None and self.name != "mlp":
            raise ValueError(f"hidden widths apply to the mlp only, not to {self.name!r}")

    def options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {}
        if self.name not in ("resnet50", "wide_resnet50_2"):
            opts["width"] = self.width
        if self.depth is not None:
            opts["depth"] = self.depth
        if self.hidden is not None:
            opts["hidden"] = tuple(self.hidden)
        return opts


@dataclass(frozen=True)
class SparsityConfig:
    """How the sparse network is obtained (REFERENCE.md sections 1-2).

    method: ``dense``; ``random`` (random mask with the layer-wise densities of ``scheme``, any
    data-free or data-dependent ratio scheme); ``snip``/``grasp``/``synflow`` (pruning at
    initialisation, mask kept as scored); ``lottery`` (iterative magnitude pruning over
    ``lottery_rounds`` rounds with rewinding to epoch ``rewind_epoch``); ``hybrid`` (the layer-wise
    budgets of ``scheme``, smart ratio by default, with magnitude selection inside each layer after
    one dense training, then rewinding).
    sanity: ``rearrange`` (permute each layer's mask), ``shuffle`` (permute surviving initial
    weights within each layer), ``reinit`` (keep the mask, draw new initial weights).
    prune_data: the corruption of the data used to score the mask (``random_labels``,
    ``random_pixels``, ``half``) for the data-dependent methods.
    scheme_options: keyword options of the layer-wise scheme (e.g. ``power_scale`` for ``erk``), and
    ``grasp_variant``, the GraSP scoring (:func:`rplib.scores.grasp_scores`): ``sanity_checking``
    (default) or ``rplib_v1``. Whenever the mask is scored by GraSP (method ``grasp``, or method
    ``random``/``hybrid`` with scheme ``grasp``) the variant is filled in, so the config (and its hash)
    names the scoring its mask came from; otherwise ``grasp_variant`` is dropped, so configs that do
    not use GraSP are unchanged by it.
    """

    method: str = "dense"
    density: float = 1.0
    scheme: str = "erk"
    scheme_options: tuple[tuple[str, Any], ...] = ()
    sanity: str = "none"
    prune_data: str = "none"
    prune_samples_per_class: int = 10
    prune_batches: int = 1
    lottery_rounds: int = 1
    rewind_epoch: int = 0

    def __post_init__(self):
        check_fields(self)
        _choice(self.method, SPARSE_METHODS, "sparse method", "method")
        try:
            check_density(self.density)
        except ValueError as e:
            raise ValueError(f"density: {e}") from None
        _choice(self.scheme, [*SCHEMES, *DATA_SCHEMES], "layer-wise scheme", "scheme")
        _choice(self.sanity, SANITY_CHECKS, "sanity check", "sanity")
        _choice(self.prune_data, CORRUPTIONS, "pruning-data corruption", "prune_data")
        options = dict(self.scheme_options)
        if "grasp_variant" in options:
            check_grasp_variant(options["grasp_variant"], "scheme_options.grasp_variant")
        if self.uses_grasp:
            options.setdefault("grasp_variant", GRASP_VARIANTS[0])
        else:
            options.pop("grasp_variant", None)
        object.__setattr__(self, "scheme_options", tuple(sorted(options.items())))
        if self.method == "dense":
            if self.density != 1.0:
                raise ValueError(f"method 'dense' needs density 1.0, got {self.density}; use method 'random' (or another)")
            if self.sanity != "none":
                raise ValueError(f"sanity check {self.sanity!r} needs a sparse method, not 'dense'")
        data_dependent = self.method in ("snip", "grasp") or (self.method == "random" and self.scheme in ("snip", "grasp"))
        if self.prune_data != "none" and not data_dependent:
            raise ValueError(f"prune_data={self.prune_data!r} only applies to data-dependent masks "
                             "(method snip/grasp, or method random with scheme snip/grasp)")
        for name in ("prune_samples_per_class", "prune_batches", "lottery_rounds"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.rewind_epoch < 0:
            raise ValueError(f"rewind_epoch must be >= 0, got {self.rewind_epoch}")

    @property
    def sparse(self) -> bool:
        return self.method != "dense"

    @property
    def uses_grasp(self) -> bool:
        """Whether GraSP scores the mask: method ``grasp``, or method ``random``/``hybrid`` with scheme ``grasp``."""
        return self.method == "grasp" or (self.method in ("random", "hybrid") and self.scheme == "grasp")


@dataclass(frozen=True)
class OptimConfig:
    """SGD with momentum (optionally Nesterov), weight decay, label smoothing and a learning-rate schedule.

    ``milestones`` are epochs (integers >= 1) or fractions of training (all in (0, 1)); the
    learning rate is multiplied by ``gamma`` at each. ``warmup_epochs`` ramps it linearly from
    ``lr / (warmup steps)`` to ``lr``; ``cosine`` anneals to 0 after the warm-up.
    """

    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    schedule: str = "multistep"
    milestones: tuple[float, ...] = (0.5, 0.75)
    gamma: float = 0.1
    warmup_epochs: int = 0
    label_smoothing: float = 0.0

    def __post_init__(self):
        check_fields(self)
        _choice(self.schedule, SCHEDULES, "learning-rate schedule", "schedule")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=true needs momentum > 0, got momentum 0")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ValueError(f"warmup_epochs must be in [0, epochs={self.epochs}), got {self.warmup_epochs!r}")
        ms = self.milestones
        fractions = all(0 < m < 1 for m in ms)
        epochs = all(float(m).is_integer() and m >= 1 for m in ms)
        if ms and not (fractions or epochs):
            raise ValueError(f"milestones must be all epochs (integers >= 1) or all fractions in (0, 1), got {ms}")
        if list(ms) != sorted(ms):
            raise ValueError(f"milestones must be increasing, got {ms}")
        if self.gamma < 0:
            raise ValueError(f"gamma must be >= 0 (the learning rate is multiplied by it at each milestone, and a "
                             f"negative learning rate climbs the loss), got {self.gamma!r}")

    def milestone_epochs(self) -> list[float]:
        return [m * self.epochs if 0 < m < 1 else float(m) for m in self.milestones]

    def lr_at(self, epoch: float) -> float:
        """Learning rate at a (fractional) epoch: warm-up, then multistep / cosine / constant."""
        if self.warmup_epochs and epoch < self.warmup_epochs:
            return self.lr * epoch / self.warmup_epochs
        if self.schedule == "cosine":
            t = (epoch - self.warmup_epochs) / (self.epochs - self.warmup_epochs)
            return self.lr * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
        if self.schedule == "multistep":
            return self.lr * self.gamma ** sum(epoch >= m for m in self.milestone_epochs())
        return self.lr

    @classmethod
    def preset(cls, name: str, **overrides) -> OptimConfig:
        """A paper's recipe (REFERENCE.md section 4) with optional overrides."""
        _choice(name, RECIPES, "recipe", "recipe")
        return dataclasses.replace(RECIPES[name], **overrides)


RECIPES: dict[str, OptimConfig] = {
    # Liu et al. 2022, CIFAR ResNets/VGGs
    "random_pruning_cifar": OptimConfig(epochs=160, batch_size=128, lr=0.1, momentum=0.9, nesterov=True,
                                        weight_decay=5e-4, milestones=(80, 120)),
    # Liu et al. 2022, ImageNet WRN-50-2 (batch 192 x 4 GPUs)
    "random_pruning_imagenet": OptimConfig(epochs=100, batch_size=768, lr=0.4, momentum=0.9, nesterov=True,
                                           weight_decay=1e-4, milestones=(30, 60, 90), warmup_epochs=5,
                                           label_smoothing=0.1),
    # Su et al. 2020, VGG19-BN / ResNet-32 on CIFAR
    "sanity_checking": OptimConfig(epochs=160, batch_size=64, lr=0.1, momentum=0.9, weight_decay=1e-4,
                                   milestones=(80, 120)),
    # Nowak et al. 2023
    "fantastic_weights_resnet": OptimConfig(epochs=200, batch_size=128, lr=0.1, momentum=0.9, weight_decay=1e-4,
                                            milestones=(0.5, 0.75)),
    "fantastic_weights_mlp": OptimConfig(epochs=100, batch_size=128, lr=0.01, momentum=0.9, weight_decay=5e-4,
                                         milestones=(0.5, 0.75)),
}


def _build(cls: type, data: Any, path: str = "") -> Any:
    """``cls`` from a mapping; errors inside a section are prefixed with its dotted path (``optim.lr ...``)."""
    if not isinstance(data, dict):
        raise ValueError(f"{path.rstrip('.') or 'the config'} must be a mapping of {cls.__name__} fields, "
                         f"got {data!r} ({type(data).__name__})")
    hints = type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    bad = sorted(set(data) - set(names))
    if bad:
        raise ValueError(f"{path}{bad[0]}: unknown field{'s' if len(bad) > 1 else ''} {', '.join(map(repr, bad))} "
                         f"in {cls.__name__}; valid fields: {', '.join(names)}")
    values = {}
    for k, v in data.items():
        if dataclasses.is_dataclass(hints[k]) and isinstance(v, dict):
            values[k] = _build(hints[k], v, f"{path}{k}.")
        else:
            values[k] = v
    try:
        return cls(**values)
    except ValueError as e:
        raise ValueError(f"{path}{e}") from None


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one run."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    sparsity: SparsityConfig = field(default_factory=SparsityConfig)
    dst: DSTConfig = field(default_factory=DSTConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    seed: int = 0
    device: str = "auto"

    def __post_init__(self):
        check_fields(self)
        _choice(self.device, DEVICES, "device", "device")
        if self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.dst.enabled and not self.sparsity.sparse:
            raise ValueError("dynamic sparse training needs a sparse starting mask; set sparsity.method (e.g. 'random')")
        self.eval.check_data(self.data.name)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Inverse of :meth:`to_dict`; missing fields take their defaults, unknown ones are errors."""
        return _build(cls, data)

    @property
    def hash(self) -> str:
        d = self.to_dict()
        d.pop("device")
        d["data"] = self.data.identity(self.eval.ood)
        return config_hash(d)

    def with_(self, changes: dict[str, Any] | None = None, **kw: Any) -> RunConfig:
        """A copy with dotted-path changes, e.g. ``cfg.with_({"sparsity.density": 0.1}, seed=2)``."""
        d = self.to_dict()
        for path, value in {**(changes or {}), **kw}.items():
            node, *keys = path.split(".")
            target = d
            for key in [node, *keys][:-1]:
                if not isinstance(target.get(key), dict):
                    raise ValueError(f"unknown config path {path!r}")
                target = target[key]
            if [node, *keys][-1] not in target:
                raise ValueError(f"unknown config path {path!r}; valid: {sorted(target)}")
            target[[node, *keys][-1]] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
        return RunConfig.from_dict(d)


def field_choices() -> dict[str, tuple[str, ...]]:
    """The valid choices of every config field that takes a name (dotted path -> choices)."""
    from .models import available

    return {
        "data.name": DATASETS,
        "model.name": tuple(available()),
        "sparsity.method": SPARSE_METHODS,
        "sparsity.scheme": (*SCHEMES, *DATA_SCHEMES),
        "sparsity.sanity": SANITY_CHECKS,
        "sparsity.prune_data": CORRUPTIONS,
        "dst.drop": ("none", *_dst.DROP_CRITERIA),
        "dst.grow": _dst.GROWTH,
        "dst.schedule": _dst.SCHEDULES,
        "dst.update_when": _dst.UPDATE_WHEN,
        "dst.scope": _dst.SCOPES,
        "optim.schedule": SCHEDULES,
        "eval.ood_score": _evaluate.OOD_SCORES,
        "eval.attacks": _evaluate.ATTACKS,
        "eval.ood": tuple(sorted({s for sets in OOD_SETS.values() for s in sets})),
        "device": DEVICES,
    }


def describe_fields() -> list[dict[str, Any]]:
    """Every field of :class:`RunConfig`: dotted path, type, default and valid choices (``rplib config``)."""
    choices = field_choices()
    rows: list[dict[str, Any]] = []

    def walk(cls: type, instance: Any, prefix: str) -> None:
        hints = type_hints(cls)
        for f in dataclasses.fields(cls):
            value = getattr(instance, f.name)
            if dataclasses.is_dataclass(hints[f.name]):
                walk(hints[f.name], value, f"{prefix}{f.name}.")
                continue
            default = [list(v) if isinstance(v, tuple) else v for v in value] if isinstance(value, tuple) else value
            rows.append({"field": f"{prefix}{f.name}", "type": describe_type(hints[f.name]), "default": default,
                         "choices": list(choices.get(f"{prefix}{f.name}", ()))})

    walk(RunConfig, RunConfig(), "")
    return rows
