"""Layer-wise density allocation.

Two separate questions (REFERENCE.md section 1):

* how a global density budget ``d`` is split across layers -- :func:`layerwise_densities`
  (``uniform``, ``uniform_plus``, ``er``, ``erk``, ``erk_plus``, ``smart_ratio`` and the
  data-dependent ``snip``, ``grasp``, ``synflow`` ratios), here;
* which weights inside each layer survive -- :func:`rplib.masks.random_mask` (or
  :func:`rplib.masks.mask_from_scores` for magnitude and saliency masks). :class:`Mask`,
  :class:`LayerReport`, :func:`random_mask` and :func:`check_density` are importable from here too.

Densities returned here are already *apportioned*: ``d_l * n_l`` is an integer for every
layer and the integers add up to exactly ``round(d * N)`` (largest-remainder rounding),
so masks built from them hit the budget exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import nn

from . import scores
from .masks import LayerReport, Mask, check_density, mask_from_scores, random_mask
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
    ``grasp`` also takes ``variant`` and ``seed`` (:func:`rplib.scores.grasp_scores`).
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
        if scheme != "synflow" and options.get("data") is None:
            raise ValueError(f"scheme {scheme!r} is data-dependent: pass data=(x, y) or an iterable of batches")
        if scheme == "synflow":
            options["density"] = density
        mask = mask_from_scores(scores.score(model, scheme, **options), density)
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
