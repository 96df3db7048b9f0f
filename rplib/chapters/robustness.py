"""Chapter 06, OoD detection, calibration and robustness: parameters, attack radii and the run grid."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .. import data as rdata, models
from ..config import DEVICES, ModelConfig, RunConfig, SparsityConfig
from ..evaluate import ATTACKS, OOD_SCORES, EvalConfig
from ..sparsity import SCHEMES
from ._common import data_config, input_spec, scaled_cifar_recipe
from ._params import ChapterParams

__all__ = ["Params", "IMAGE_SETS", "DEFAULT_EPSILONS", "LOWER_IS_BETTER", "check_networks", "grid"]

IMAGE_SETS = ("cifar10", "cifar100", "svhn")  # pixels in [0, 1]
DEFAULT_EPSILONS = {
    "mnist1d": [0.0, 0.05, 0.1, 0.2],  # no pixel bounds: the generator's raw values, std about 1
    "digits": [0.0, 0.5, 1.0, 2.0],  # raw values are counts 0..16: 1.0 is 1/16 of the range
    **{name: [0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255] for name in IMAGE_SETS},
}
LOWER_IS_BETTER = ("ECE", "NLL", "Brier")


@dataclass(frozen=True)
class Params(ChapterParams):
    """Parameters of ``06_ood_calibration_robustness`` (defaults: the smoke profile).

    Stored normalised: sparsities sorted; an empty ``ood_sets`` becomes all OoD sets of the dataset; an
    empty ``epsilons`` the dataset's default radii; radius 0 (clean accuracy) is always included.
    """

    CHAPTER = "06_ood_calibration_robustness"
    dataset: str = "digits"
    num_samples: int = 1000
    data_root: str = "../data"
    download: bool = False
    models: list = field(default_factory=lambda: ["mlp"])
    width: float = 1.0
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1
    sparsities: list = field(default_factory=lambda: [0.5, 0.9])
    scheme: str = "erk"
    ood_sets: list = field(default_factory=list)
    ood_score: str = "msp"
    attacks: list = field(default_factory=lambda: ["fgsm", "pgd"])
    epsilons: list = field(default_factory=list)
    pgd_steps: int = 10
    attack_examples: int = 200
    reliability_sparsity: float = 0.9
    seeds: int = 2
    device: str = "auto"
    runs: str = "../runs"

    def __post_init__(self) -> None:
        self._choice("dataset", DEFAULT_EPSILONS)
        self._int("num_samples")
        self._str("data_root")
        self._bool("download")
        self._choices("models", models.available())
        self._float("width", 0, None, lo_open=True)
        for name in ("epochs", "batch_size", "pgd_steps", "attack_examples", "seeds"):
            self._int(name)
        self._float("lr", 0, None, lo_open=True)
        self._floats("sparsities", 0, 1, lo_open=True, hi_open=True)
        if len({round(float(s), 6) for s in self.sparsities}) != len(self.sparsities):
            self._fail("sparsities", "a list of distinct floats in (0, 1)", self.sparsities)
        self._choice("scheme", SCHEMES)
        self._choices("ood_sets", rdata.OOD_SETS[self.dataset], min_len=0)
        self._choice("ood_score", OOD_SCORES)
        self._choices("attacks", ATTACKS)
        self._floats("epsilons", 0, None, allow_empty=True)
        self._float("reliability_sparsity", 0, 1, lo_open=True, hi_open=True)
        self._choice("device", DEVICES)
        self._str("runs")
        self._set("sparsities", sorted(round(float(s), 6) for s in self.sparsities))
        self._set("reliability_sparsity", round(float(self.reliability_sparsity), 6))
        if self.reliability_sparsity not in self.sparsities:
            self._fail("reliability_sparsity", f"one of sparsities {self.sparsities}", self.reliability_sparsity)
        self._set("ood_sets", list(self.ood_sets) or list(rdata.OOD_SETS[self.dataset]))
        self._set("epsilons", sorted({0.0, *(float(e) for e in (self.epsilons or DEFAULT_EPSILONS[self.dataset]))}))


def _data(p: Params) -> rdata.DataConfig:
    return data_config(p.dataset, p.data_root, p.download, p.num_samples)


def check_networks(p: Params) -> None:
    """Build every network on the data's input shape: one that does not fit fails here, before any training."""
    in_shape, num_classes = input_spec(_data(p))
    for name in p.models:
        models.build(name, num_classes, in_shape=in_shape, **ModelConfig(name, width=p.width).options())


def grid(p: Params) -> list[RunConfig]:
    """Every network dense and with a random mask at every sparsity, for every seed, evaluated on OoD
    detection, calibration and the attacks."""
    base = RunConfig(
        data=_data(p),
        optim=scaled_cifar_recipe(p.epochs, p.batch_size, p.lr),
        eval=EvalConfig(ood=tuple(p.ood_sets), ood_score=p.ood_score, calibration=True, attacks=tuple(p.attacks),
                        epsilons=tuple(p.epsilons), pgd_steps=p.pgd_steps, attack_examples=p.attack_examples),
        device=p.device,
    )
    return [replace(base, model=ModelConfig(name, width=p.width), seed=seed,
                    sparsity=SparsityConfig(method="random", density=round(1 - s, 6), scheme=p.scheme) if s
                    else SparsityConfig())
            for name in p.models for s in [0.0, *p.sparsities] for seed in range(p.seeds)]
