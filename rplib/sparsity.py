"""Layer-wise density allocation and exact masks.

Two separate questions (REFERENCE.md section 1):

* how a global density budget ``d`` is split across layers -- :func:`layerwise_densities`
  (``uniform``, ``uniform_plus``, ``er``, ``erk``, ``erk_plus``, ``smart_ratio`` and the
  data-dependent ``snip``, ``grasp``, ``synflow`` ratios);
* which weights inside each layer survive -- :func:`random_mask` (or
  :func:`rplib.pruning.mask_from_scores` for magnitude and saliency masks).

Densities returned here are already *apportioned*: ``d_l * n_l`` is an integer for every
layer and the integers add up to exactly ``round(d * N)`` (largest-remainder rounding),
so masks built from them hit the budget exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .models import classifier_name, first_layer_name, prunable_parameters

__all__ = [
    "SCHEMES",
    "DATA_SCHEMES",
    "SMART_RATIO_ORDERS",
    "layerwise_densities",
    "random_mask",
    "Mask",
    "LayerReport",
    "check_density",
]

SMART_RATIO_ORDERS = ("quadratic", "linear", "ascending", "cubic", "uniform")


def check_density(density: float, what: str = "density") -> float:
    """Validate a kept fraction: a number in (0, 1]."""
    if isinstance(density, bool) or not isinstance(density, (int, float)) or not (0.0 < density <= 1.0):
        raise ValueError(f"{what} must be in (0, 1] (the kept fraction; sparsity = 1 - density), got {density!r}")
    return float(density)


# --------------------------------------------------------------------------- exact apportionment


def _apportion(shapes: dict[str, tuple[int, ...]], fractions: dict[str, float], total: int) -> dict[str, float]:
    """Turn real-valued densities into integer counts summing to ``total`` (largest remainder), back as densities."""
    numel = {k: math.prod(s) for k, s in shapes.items()}
    raw = {k: min(max(fractions[k], 0.0), 1.0) * numel[k] for k in shapes}
    counts = {k: int(math.floor(v + 1e-9)) for k, v in raw.items()}
    left = total - sum(counts.values())
    order = sorted(shapes, key=lambda k: (-(raw[k] - counts[k]), k))
    step = 1 if left > 0 else -1
    while left != 0:
        moved = False
        for k in order if step > 0 else reversed(order):
            if left == 0:
                break
            if (step > 0 and counts[k] < numel[k]) or (step < 0 and counts[k] > 0):
                counts[k] += step
                left -= step
                moved = True
        if not moved:
            raise ValueError(f"cannot place {total} weights in layers of {sum(numel.values())} weights")
    return {k: counts[k] / numel[k] for k in shapes}


# --------------------------------------------------------------------------- schemes


def _uniform(shapes, density, **_):
    return {k: density for k in shapes}


def _erk_score(shape: tuple[int, ...], kernel: bool, power_scale: float) -> float:
    """ERK score sum(shape)/prod(shape) (Evci et al. 2020); ER drops the kernel dims: (c_out + c_in)/(c_out c_in)."""
    dims = shape if kernel else shape[:2]
    return (sum(dims) / math.prod(dims)) ** power_scale


def _solve_erk(shapes: dict[str, tuple[int, ...]], budget: float, kernel: bool, power_scale: float,
               fixed: dict[str, float] | None = None) -> tuple[dict[str, float], float]:
    """d_l = eps * s_l with sum_l d_l n_l = budget; layers whose d_l would exceed 1 become dense and leave the solve.

    Returns the densities and the final eps.
    """
    fixed = dict(fixed or {})
    numel = {k: math.prod(s) for k, s in shapes.items()}
    score = {k: _erk_score(s, kernel, power_scale) for k, s in shapes.items()}
    dense: set[str] = set()
    while True:
        free = [k for k in shapes if k not in dense and k not in fixed]
        rest = budget - sum(numel[k] for k in dense) - sum(fixed[k] * numel[k] for k in fixed)
        denom = sum(score[k] * numel[k] for k in free)
        if not free:
            eps = 0.0
            break
        eps = rest / denom
        over = [k for k in free if eps * score[k] > 1.0]
        if not over:
            break
        dense.update(over)
    out = {k: 1.0 for k in dense} | fixed | {k: eps * score[k] for k in free}
    return {k: out[k] for k in shapes}, eps


def _erk(shapes, density, power_scale: float = 1.0, **_):
    budget = density * sum(math.prod(s) for s in shapes.values())
    return _solve_erk(shapes, budget, True, power_scale)[0]


def _er(shapes, density, power_scale: float = 1.0, **_):
    budget = density * sum(math.prod(s) for s in shapes.values())
    return _solve_erk(shapes, budget, False, power_scale)[0]


def _erk_plus(shapes, density, classifier: str, classifier_density: float = 1.0, power_scale: float = 1.0, **_):
    """ERK+: the classifier is dense (or at ``classifier_density``), ERK is solved on the other layers."""
    check_density(classifier_density, "classifier_density")
    budget = density * sum(math.prod(s) for s in shapes.values())
    if classifier_density * math.prod(shapes[classifier]) > budget:
        raise ValueError(
            f"erk_plus: a classifier at density {classifier_density} alone exceeds the budget of density {density}; "
            "lower classifier_density or raise density"
        )
    return _solve_erk(shapes, budget, True, power_scale, fixed={classifier: classifier_density})[0]


def _uniform_plus(shapes, density, classifier: str, first: str, first_is_conv: bool,
                  min_classifier_density: float = 0.2, **_):
    """Uniform+ (Gale et al. 2019): first conv dense, classifier at least ``min_classifier_density``, rest equal."""
    numel = {k: math.prod(s) for k, s in shapes.items()}
    budget = density * sum(numel.values())
    dense = [first] if first_is_conv and first != classifier else []
    rest = [k for k in shapes if k not in dense and k != classifier]
    left = budget - sum(numel[k] for k in dense)
    # try the classifier at the same density as the rest; raise it to the floor if it falls below
    x = left / (sum(numel[k] for k in rest) + numel[classifier])
    cls = x
    if x < min_classifier_density:
        cls = min_classifier_density
        x = (left - cls * numel[classifier]) / max(sum(numel[k] for k in rest), 1)
    if x < 0 or (not rest and abs(left - cls * numel[classifier]) > 1):
        floor = (sum(numel[k] for k in dense) + min_classifier_density * numel[classifier]) / sum(numel.values())
        raise ValueError(f"uniform_plus cannot reach density {density}: the dense first layer and the classifier "
                         f"floor alone need density {floor:.4f}; use a density above that or another scheme")
    return {k: 1.0 for k in dense} | {k: x for k in rest} | {classifier: cls}


def _smart_ratio(shapes, density, classifier: str, residual: bool, order: str = "quadratic",
                 classifier_density: float = 0.3, **_):
    """Smart ratio (Su et al. 2020): keep score r_l = (L-l+1)^2 + (L-l+1) for layer l = 1..L.

    VGG-style nets without residual connections divide the score by l^2. The classifier keeps
    ``classifier_density``; the other layers get p_l = k r_l with k solving the budget, and any layer
    that would exceed 1 is made dense, its excess going to the layers that are not yet dense.
    ``order`` selects the ablations: linear (L-l+1), ascending (l^2+l), cubic ((L-l+1)^3), uniform.
    """
    if order not in SMART_RATIO_ORDERS:
        raise ValueError(f"unknown smart_ratio order {order!r}; valid orders: {', '.join(SMART_RATIO_ORDERS)}")
    check_density(classifier_density, "classifier_density")
    names = list(shapes)
    L = len(names)
    numel = {k: math.prod(s) for k, s in shapes.items()}
    raw: dict[str, float] = {}
    for idx, k in enumerate(names, start=1):
        j = L - idx + 1
        r = {"quadratic": j * j + j, "linear": j, "ascending": idx * idx + idx, "cubic": j ** 3, "uniform": 1}[order]
        if not residual and order == "quadratic":
            r = r / idx**2
        raw[k] = float(r)
    budget = density * sum(numel.values())
    if classifier_density * numel[classifier] > budget:
        raise ValueError(f"smart_ratio: the classifier at density {classifier_density} alone exceeds the budget "
                         f"of density {density}; lower classifier_density")
    out = {classifier: classifier_density}
    dense: set[str] = set()
    while True:
        free = [k for k in names if k != classifier and k not in dense]
        left = budget - classifier_density * numel[classifier] - sum(numel[k] for k in dense)
        if not free:
            break
        kk = left / sum(raw[k] * numel[k] for k in free)
        over = [k for k in free if kk * raw[k] > 1.0]
        if not over:
            break
        dense.update(over)
    if not free and left > 0.5:
        raise ValueError(f"smart_ratio: density {density} needs more than a classifier at {classifier_density}; "
                         "raise classifier_density")
    out |= {k: 1.0 for k in dense} | {k: kk * raw[k] for k in free}
    return {k: out[k] for k in names}


SCHEMES: dict[str, Callable[..., dict[str, float]]] = {
    "uniform": _uniform,
    "uniform_plus": _uniform_plus,
    "er": _er,
    "erk": _erk,
    "erk_plus": _erk_plus,
    "smart_ratio": _smart_ratio,
}
DATA_SCHEMES = ("snip", "grasp", "synflow")
_OPTIONS = {
    "uniform": set(),
    "uniform_plus": {"min_classifier_density"},
    "er": {"power_scale"},
    "erk": {"power_scale"},
    "erk_plus": {"classifier_density", "power_scale"},
    "smart_ratio": {"order", "classifier_density", "residual"},
    "snip": {"data", "loss_fn"},
    "grasp": {"data", "loss_fn", "temperature", "variant", "seed"},
    "synflow": {"iterations", "data"},
}


def layerwise_densities(model: nn.Module, density: float, scheme: str, **options) -> dict[str, float]:
    """Per-layer densities ``{param_name: d_l}`` for a global density ``density`` under ``scheme``.

    ``sum_l d_l n_l == round(density * N)`` exactly and every ``d_l * n_l`` is an integer.
    Data-dependent schemes (``snip``, ``grasp``, ``synflow``) score the given ``model`` on
    ``data`` (a batch ``(x, y)`` or an iterable of batches), keep a global top-k, and return
    each layer's kept fraction, to be used with :func:`random_mask` (REFERENCE.md section 1).
    ``grasp`` also takes ``variant`` and ``seed`` (:func:`rplib.pruning.grasp_scores`).
    """
    valid = sorted([*SCHEMES, *DATA_SCHEMES])
    if scheme not in valid:
        raise ValueError(f"unknown scheme {scheme!r}; valid schemes: {', '.join(valid)}")
    density = check_density(density)
    bad = sorted(set(options) - _OPTIONS[scheme])
    if bad:
        raise ValueError(f"unknown option(s) {bad} for scheme {scheme!r}; valid options: {sorted(_OPTIONS[scheme])}")
    params = prunable_parameters(model)
    if not params:
        raise ValueError(f"{type(model).__name__} has no prunable (Conv/Linear) layers")
    shapes = {k: tuple(p.shape) for k, p in params.items()}
    total = round(density * sum(p.numel() for p in params.values()))
    if total < 1:
        raise ValueError(f"density {density} keeps no weight of {sum(p.numel() for p in params.values())}")
    if scheme in DATA_SCHEMES:
        from . import pruning

        if scheme != "synflow" and options.get("data") is None:
            raise ValueError(f"scheme {scheme!r} is data-dependent: pass data=(x, y) or an iterable of batches")
        if scheme == "synflow":
            options["density"] = density
        scores = pruning.score(model, scheme, **options)
        mask = pruning.mask_from_scores(scores, density)
        return {k: float(m.sum()) / m.numel() for k, m in mask.masks.items()}
    if scheme == "uniform_plus":
        first = first_layer_name(model)
        options = {"first_is_conv": len(shapes[first]) > 2, "first": first} | options
    if scheme in ("uniform_plus", "erk_plus", "smart_ratio"):
        options = {"classifier": classifier_name(model)} | options
    if scheme == "smart_ratio":
        options.setdefault("residual", bool(getattr(model, "residual", True)))
    fractions = SCHEMES[scheme](shapes, density, **options)
    return _apportion(shapes, fractions, total)


# --------------------------------------------------------------------------- masks


@dataclass(frozen=True)
class LayerReport:
    name: str
    shape: tuple[int, ...]
    n: int
    kept: int
    density: float


class Mask:
    """Per-parameter boolean keep-masks keyed by parameter name.

    Training keeps pruned weights at exactly zero through :meth:`attach`: after every optimizer
    step the pruned weights (and, by default, their optimizer state) are zeroed in one fused
    multiply. Nothing is multiplied in the forward pass, so ``weight.grad`` stays dense
    (what gradient-based growth in dynamic sparse training needs).
    """

    def __init__(self, masks: dict[str, torch.Tensor]):
        self.masks = {k: m.to(torch.bool) for k, m in masks.items()}
        self._float: dict[str, torch.Tensor] = {}

    # -- information
    def __repr__(self) -> str:
        return f"Mask({len(self.masks)} layers, density={self.density():.4f})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Mask) and self.masks.keys() == other.masks.keys()
                and all(torch.equal(self.masks[k].cpu(), other.masks[k].cpu()) for k in self.masks))

    def numel(self) -> int:
        return sum(m.numel() for m in self.masks.values())

    def kept(self) -> int:
        return int(sum(int(m.sum()) for m in self.masks.values()))

    def density(self) -> float:
        """Overall kept fraction over all masked weights."""
        return self.kept() / self.numel()

    def layer_densities(self) -> dict[str, float]:
        return {k: int(m.sum()) / m.numel() for k, m in self.masks.items()}

    def report(self) -> list[LayerReport]:
        """Per-layer rows: name, shape, n, kept, density."""
        return [LayerReport(k, tuple(m.shape), m.numel(), int(m.sum()), int(m.sum()) / m.numel())
                for k, m in self.masks.items()]

    def table(self) -> str:
        """The per-layer report as a fixed-width text table with a total row."""
        rows = self.report()
        w = max([len(r.name) for r in rows] + [5])
        lines = [f"{'layer':<{w}}  {'shape':<18} {'n':>10} {'kept':>10} {'density':>8}"]
        for r in rows:
            lines.append(f"{r.name:<{w}}  {'x'.join(map(str, r.shape)):<18} {r.n:>10d} {r.kept:>10d} {r.density:>8.4f}")
        lines.append(f"{'total':<{w}}  {'':<18} {self.numel():>10d} {self.kept():>10d} {self.density():>8.4f}")
        return "\n".join(lines)

    # -- checks and I/O
    def check_fits(self, model: nn.Module) -> None:
        """Raise ``ValueError`` unless every mask matches a prunable parameter of ``model`` by name and shape."""
        params = prunable_parameters(model)
        missing = sorted(set(self.masks) - set(params))
        if missing:
            raise ValueError(f"mask has layers the model lacks: {missing[:5]}; model layers: {list(params)[:8]}...")
        for k, m in self.masks.items():
            if tuple(m.shape) != tuple(params[k].shape):
                raise ValueError(f"mask for {k!r} has shape {tuple(m.shape)}, the model's is {tuple(params[k].shape)}")

    def to(self, device: torch.device | str) -> Mask:
        return Mask({k: m.to(device) for k, m in self.masks.items()})

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: m.detach().cpu().clone() for k, m in self.masks.items()}

    def save(self, path: str | Path) -> None:
        from .store import atomic_torch_save

        atomic_torch_save(self.state_dict(), Path(path))

    @classmethod
    def load(cls, path: str | Path) -> Mask:
        return cls(torch.load(Path(path), map_location="cpu", weights_only=True))

    # -- applying the mask
    def float_mask(self, name: str) -> torch.Tensor:
        """The keep-mask as a float tensor (cached; refreshed by :meth:`update_`)."""
        f = self._float.get(name)
        if f is None or f.device != self.masks[name].device:
            f = self._float[name] = self.masks[name].to(torch.float32)
        return f

    def update_(self, name: str, keep: torch.Tensor) -> None:
        """Replace one layer's mask in place (dynamic sparse training); the attached hook sees it at once."""
        self.masks[name].copy_(keep)
        if name in self._float:
            self._float[name].copy_(keep)

    @torch.no_grad()
    def apply_(self, model: nn.Module) -> nn.Module:
        """Zero the pruned weights of ``model`` in place."""
        self.check_fits(model)
        params = prunable_parameters(model)
        for k in self.masks:
            params[k].mul_(self.float_mask(k).to(params[k].dtype))
        return model

    def attach(self, model: nn.Module, optimizer: torch.optim.Optimizer, zero_state: bool = True):
        """Apply the mask now and after every ``optimizer.step()``.

        With ``zero_state`` the optimizer's per-weight state (SGD momentum, Adam moments) of
        pruned weights is zeroed too. Returns the hook handle (``.remove()`` to detach).
        """
        self.apply_(model)
        params = prunable_parameters(model)
        names = list(self.masks)
        plist = [params[k] for k in names]
        for k, p in zip(names, plist):
            if self.masks[k].device != p.device:
                self.masks[k] = self.masks[k].to(p.device)
        fmasks = [self.float_mask(k) for k in names]

        @torch.no_grad()
        def hook(opt, args, kwargs):
            torch._foreach_mul_(plist, fmasks)
            if zero_state:
                for p, m in zip(plist, fmasks):
                    for v in opt.state.get(p, {}).values():
                        if torch.is_tensor(v) and v.shape == p.shape:
                            v.mul_(m)

        return optimizer.register_step_post_hook(hook)

    # -- sanity-check operations (Su et al. 2020)
    def rearranged(self, seed: int) -> Mask:
        """Layer-wise rearrange: permute each layer's mask at random, keeping its count."""
        g = torch.Generator().manual_seed(seed)
        out = {}
        for k, m in self.masks.items():
            flat = m.flatten().cpu()
            out[k] = flat[torch.randperm(flat.numel(), generator=g)].view_as(m).to(m.device)
        return Mask(out)

    @torch.no_grad()
    def shuffle_weights_(self, model: nn.Module, seed: int) -> nn.Module:
        """Layer-wise weight shuffling: keep the mask, permute the surviving weight values within each layer."""
        self.check_fits(model)
        g = torch.Generator().manual_seed(seed)
        params = prunable_parameters(model)
        for k, m in self.masks.items():
            p = params[k]
            idx = m.flatten().nonzero().squeeze(1).to(p.device)
            vals = p.view(-1)[idx]
            perm = torch.randperm(idx.numel(), generator=g).to(p.device)
            p.view(-1)[idx] = vals[perm]
        return model


def random_mask(model: nn.Module, densities: dict[str, float], seed: int) -> Mask:
    """Random mask keeping exactly ``round(d_l n_l)`` weights of each layer, uniformly at random.

    Drawn from a private generator seeded with ``seed`` (the global RNG is untouched). With
    densities from :func:`layerwise_densities`, the total is exactly ``round(d N)``.
    """
    params = prunable_parameters(model)
    unknown = sorted(set(densities) - set(params))
    if unknown:
        raise ValueError(f"densities name layers the model lacks: {unknown[:5]}; valid layers: {list(params)[:8]}...")
    g = torch.Generator().manual_seed(int(seed))
    masks = {}
    for k, p in params.items():
        d = densities.get(k, 1.0)
        if not 0.0 <= d <= 1.0:
            raise ValueError(f"density of layer {k!r} must be in [0, 1], got {d!r}")
        n = p.numel()
        keep = int(round(d * n))
        flat = torch.zeros(n, dtype=torch.bool)
        flat[torch.randperm(n, generator=g)[:keep]] = True
        masks[k] = flat.view_as(p).to(p.device)
    return Mask(masks)

