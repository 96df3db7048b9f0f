"""Dynamic sparse training: drop criterion x growth criterion x drop-fraction schedule x update period.

Every ``update_period`` optimizer steps, in every sparse layer, ``k = ceil(alpha(t) * nnz)`` active
weights with the lowest drop score are removed and exactly ``k`` inactive weights are grown;
regrown weights start at exactly 0 and per-layer counts never change (REFERENCE.md section 3).

* SET (Mocanu et al. 2018): ``set`` drop, random growth.
* RigL (Evci et al. 2020): magnitude drop, growth by the largest dense gradient, cosine schedule
  ``alpha(t) = alpha_0 / 2 (1 + cos(pi t / T_end))`` with updates stopping at ``T_end``.
* Fantastic Weights (Nowak et al. 2023): the drop criteria of :data:`DROP_CRITERIA` with random
  or gradient growth, ``alpha_0 = 0.5``, ``Delta T = 800``, cosine decay to the end of training.

Choices made here (and why):

* Growth picks among the weights inactive after the drop, the just-dropped ones included (as
  RigL does). Every grown weight, a just-dropped one included, restarts at exactly 0 (as the
  Fantastic Weights code does; RigL's default keeps the old value of a weight dropped and
  regrown at once). A weight dropped and regrown in the same update does not count as changed.
* Layers that are dense (or empty) are left alone: they have no inactive weight to grow into.
* Counts are exact, where the released codes grow Bernoulli samples or drop ``2 ceil(k / 2)``.
* ``set_as_released`` reproduces the criterion that the Fantastic Weights grids ran under the
  name SET; see :func:`drop_set`.

Masks are applied by zeroing weights after each optimizer step (:meth:`rplib.masks.Mask.attach`),
so ``weight.grad`` is the dense gradient that gradient growth and the gradient-based criteria need.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import nn

from .models import prunable_parameters
from .fields import check_fields
from .masks import Mask

__all__ = [
    "DROP_CRITERIA",
    "GRAD_CRITERIA",
    "GROWTH",
    "SCHEDULES",
    "PRESETS",
    "DSTConfig",
    "DynamicSparsity",
    "drop_fraction",
    "drop_set",
    "grow_set",
    "jaccard",
    "compare_criteria",
]

EPS = 1e-8  # keeps the ratio criteria finite where a weight or a gradient is exactly zero

# --------------------------------------------------------------------------- drop criteria
# Each takes (weight, grad, mask, **opts) and returns a float score of the weight's shape;
# the active weights with the LOWEST scores are dropped.


def _magnitude(weight: torch.Tensor, grad: torch.Tensor | None, mask: torch.Tensor, **_) -> torch.Tensor:
    """|w| (RigL; Han et al. 2015)."""
    return weight.detach().float().abs()


def _sign_ranks(weight: torch.Tensor, mask: torch.Tensor, negatives_closest_first: bool) -> torch.Tensor:
    """Interleaved ranks 0, 2, 4, ... of the active non-negative weights (ascending) and 1, 3, 5, ...
    of the active negative weights (closest to zero first, or most negative first); inactive: +inf."""
    w = weight.detach().float().flatten()
    score = torch.full(w.shape, math.inf, dtype=torch.float64, device=w.device)  # ranks stay exact past 2^24
    idx = mask.flatten().nonzero().squeeze(1)
    v = w[idx]
    pos = v >= 0
    for group, offset, descending in ((pos, 0, False), (~pos, 1, negatives_closest_first)):
        gi = idx[group]
        order = torch.argsort(v[group], descending=descending, stable=True)
        score[gi[order]] = 2.0 * torch.arange(gi.numel(), device=w.device, dtype=score.dtype) + offset
    return score.view_as(weight)


def _set(weight: torch.Tensor, grad: torch.Tensor | None, mask: torch.Tensor, **_) -> torch.Tensor:
    """SET (Mocanu et al. 2018): the k lowest scores are the ceil(k/2) smallest non-negative weights and
    the floor(k/2) negative weights closest to zero (the other sign fills in when one runs out)."""
    return _sign_ranks(weight, mask, negatives_closest_first=True)


def _set_as_released(weight: torch.Tensor, grad: torch.Tensor | None, mask: torch.Tensor, **_) -> torch.Tensor:
    """The ranking of the "SET" criterion in the released Fantastic Weights code: negatives sorted
    most negative first (the wrong way). Its selection is not bottom-k; see :func:`drop_set`."""
    return _sign_ranks(weight, mask, negatives_closest_first=False)


def _mest(weight: torch.Tensor, grad: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, **_) -> torch.Tensor:
    """MEST (Yuan et al. 2021): |w| + gamma |g|."""
    return weight.detach().float().abs() + gamma * grad.float().abs()


def _snip(weight: torch.Tensor, grad: torch.Tensor, mask: torch.Tensor, **_) -> torch.Tensor:
    """SNIP (Lee et al. 2019) during training: |w g|."""
    return (weight.detach().float() * grad.float()).abs()


def _sensitivity(weight: torch.Tensor, grad: torch.Tensor, mask: torch.Tensor, eps: float = EPS, **_) -> torch.Tensor:
    """Sensitivity: |g| / (|w| + eps)."""
    return grad.float().abs() / (weight.detach().float().abs() + eps)


def _rsensitivity(weight: torch.Tensor, grad: torch.Tensor, mask: torch.Tensor, eps: float = EPS, **_) -> torch.Tensor:
    """Reciprocal sensitivity (RSensitivity): |w| / (|g| + eps)."""
    return weight.detach().float().abs() / (grad.float().abs() + eps)


def _random(weight: torch.Tensor, grad: torch.Tensor | None, mask: torch.Tensor, *,
            generator: torch.Generator | None = None, **_) -> torch.Tensor:
    """Uniform random scores from ``generator`` (a CPU ``torch.Generator``; required)."""
    if generator is None:
        raise ValueError("the 'random' criterion needs generator=torch.Generator() (the global RNG is never used)")
    return torch.rand(weight.shape, generator=generator).to(weight.device)


def _taylor_fo(weight: torch.Tensor, grad: torch.Tensor, mask: torch.Tensor, **_) -> torch.Tensor:
    """First-order Taylor (Molchanov et al. 2019): (w g)^2."""
    return (weight.detach().float() * grad.float()).pow(2)


DROP_CRITERIA: dict[str, Callable[..., torch.Tensor]] = {
    "magnitude": _magnitude,
    "set": _set,
    "set_as_released": _set_as_released,
    "mest": _mest,
    "snip": _snip,
    "sensitivity": _sensitivity,
    "rsensitivity": _rsensitivity,
    "random": _random,
    "taylor_fo": _taylor_fo,
}
GRAD_CRITERIA = frozenset({"mest", "snip", "sensitivity", "rsensitivity", "taylor_fo"})
GROWTH: tuple[str, ...] = ("gradient", "random")
SCHEDULES: tuple[str, ...] = ("cosine", "constant", "linear")
UPDATE_WHEN: tuple[str, ...] = ("after_step", "before_step")
SCOPES: tuple[str, ...] = ("layer", "global")


def _n(t: torch.Tensor) -> int:
    return int(torch.count_nonzero(t))


def _pick(score: torch.Tensor, among: torch.Tensor, k: int) -> torch.Tensor:
    """Bool tensor marking the ``k`` entries of ``among`` with the lowest ``score``."""
    flat = among.flatten()
    out = torch.zeros_like(flat)
    if k > 0:
        idx = flat.nonzero().squeeze(1)
        out[idx[torch.topk(score.flatten()[idx], k, largest=False, sorted=False).indices]] = True
    return out.view_as(among)


def _sample(among: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """Bool tensor of ``k`` entries of ``among`` drawn uniformly at random without replacement.

    Draws i.i.d. uniform positions, keeps the distinct ones inside ``among`` until there are at
    least ``k``, then keeps a random ``k`` of them; the distinct hits are exchangeable, so the result
    is a uniform ``k``-subset. Costs O(k n / |among|) draws rather than a permutation of the layer;
    for ``k`` above half of ``among`` it samples the complement.
    """
    flat = among.flatten()
    count, n = _n(flat), flat.numel()
    if k > count // 2:
        return among & ~_sample(among, count - k, generator)
    hit = torch.zeros_like(flat)
    got = 0
    while got < k:
        m = math.ceil(1.1 * (k - got) * n / (count - got)) + 16
        hit[torch.randint(n, (m,), generator=generator).to(flat.device)] = True
        hit &= flat
        got = _n(hit)
    idx = hit.nonzero().squeeze(1)
    out = torch.zeros_like(flat)
    out[idx[torch.randperm(idx.numel(), generator=generator)[:k].to(idx.device)]] = True
    return out.view_as(among)


def _released_set_drop(weight: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """The released code's "SET" selection for a drop budget ``k``, with h = ceil(k / 2):

    positives at or below the h-th smallest positive are dropped; negatives are kept only when they
    lie strictly below the h-th most negative one, so all but h - 1 negatives are dropped; weights at
    exactly zero are always dropped. About half a layer goes, whatever ``k`` is.
    """
    w = weight.detach().float()
    drop = mask & (w == 0)
    h = math.ceil(k / 2)
    pos, neg = mask & (w > 0), mask & (w < 0)
    if h > 0 and pos.any():
        vals = torch.sort(w[pos]).values
        drop |= pos & (w <= vals[min(h, vals.numel()) - 1])
    if h > 0 and neg.any():
        vals = torch.sort(w[neg]).values
        drop |= neg & (w >= vals[min(h, vals.numel()) - 1])
    return drop


def _check_criterion(criterion: str) -> None:
    if criterion not in DROP_CRITERIA:
        raise ValueError(f"unknown drop criterion {criterion!r}; valid criteria: {', '.join(DROP_CRITERIA)}")


def _drop(criterion: str, weight: torch.Tensor, grad: torch.Tensor | None, mask: torch.Tensor, k: int,
          **opts) -> torch.Tensor:
    if k == 0:
        return torch.zeros_like(mask)
    if criterion == "set_as_released":
        return _released_set_drop(weight, mask, k)
    if criterion == "random":  # the k lowest of i.i.d. uniform scores: a uniform k-subset, drawn directly
        if opts.get("generator") is None:
            raise ValueError("the 'random' criterion needs generator=torch.Generator() (the global RNG is never used)")
        return _sample(mask, k, opts["generator"])
    return _pick(DROP_CRITERIA[criterion](weight, grad, mask, **opts), mask, k)


def drop_set(criterion: str, weight: torch.Tensor, grad: torch.Tensor | None, mask: torch.Tensor, k: int,
             **opts) -> torch.Tensor:
    """Bool tensor of the ``k`` active weights (``mask`` True) with the lowest ``criterion`` scores.

    ``opts`` go to the score function: ``gamma`` (MEST), ``eps`` (ratio criteria), ``generator``
    (``random``, which draws its uniform ``k``-subset directly rather than ranking random scores).
    ``set_as_released`` alone does not drop ``k``: it drops about half of the active weights, as
    the released Fantastic Weights code does (:func:`_released_set_drop`).
    """
    _check_criterion(criterion)
    mask = mask.to(torch.bool)
    if tuple(weight.shape) != tuple(mask.shape):
        raise ValueError(f"weight shape {tuple(weight.shape)} differs from mask shape {tuple(mask.shape)}")
    nnz = _n(mask)
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= nnz:
        raise ValueError(f"k must be an integer in [0, {nnz}] (the active weights), got {k!r}")
    if criterion in GRAD_CRITERIA and grad is None:
        raise ValueError(f"criterion {criterion!r} needs the gradient: call loss.backward() first")
    return _drop(criterion, weight, grad, mask, k, **opts)


def _grow(growth: str, grad: torch.Tensor | None, free: torch.Tensor, k: int,
          generator: torch.Generator | None) -> torch.Tensor:
    if growth == "random":
        if generator is None:
            raise ValueError("random growth needs generator=torch.Generator() (the global RNG is never used)")
        return _sample(free, k, generator)
    if grad is None:
        raise ValueError("gradient growth needs the gradient: call loss.backward() first")
    out = torch.zeros(free.numel(), dtype=torch.bool, device=free.device)
    if k > 0:
        score = torch.where(free, grad.detach().float().abs(), -math.inf)
        out[torch.topk(score.flatten(), k, sorted=False).indices] = True
    return out.view_as(free)


def grow_set(growth: str, grad: torch.Tensor | None, mask: torch.Tensor, k: int,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Bool tensor of exactly ``k`` inactive weights (``mask`` False) to grow.

    ``gradient``: the largest |dense gradient| (RigL); ``random``: uniformly at random from
    ``generator`` (SET).
    """
    if growth not in GROWTH:
        raise ValueError(f"unknown growth {growth!r}; valid growth criteria: {', '.join(GROWTH)}")
    free = ~mask.to(torch.bool)
    n_free = _n(free)
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= n_free:
        raise ValueError(f"k must be an integer in [0, {n_free}] (the inactive weights), got {k!r}")
    return _grow(growth, grad, free, k, generator)


def jaccard(a: torch.Tensor, b: torch.Tensor) -> float:
    """|a & b| / |a | b| of two bool sets (1.0 when both are empty)."""
    if a.shape != b.shape:
        raise ValueError(f"sets of different shapes: {tuple(a.shape)} and {tuple(b.shape)}")
    a, b = a.to(torch.bool), b.to(torch.bool)
    union = _n(a | b)
    return 1.0 if union == 0 else _n(a & b) / union


def _count(alpha: float, nnz: int) -> int:
    """k = ceil(alpha * nnz), robust to float noise (0.3 * 100 gives 30, not 31)."""
    return min(nnz, math.ceil(round(alpha * nnz, 6)))


def compare_criteria(model: nn.Module, mask: Mask, criteria: Sequence[str], alpha: float, seed: int = 0,
                     **opts) -> dict[tuple[str, str], float]:
    """Mean over sparse layers of the Jaccard similarity of the drop sets two criteria choose.

    Every criterion sees the same state: the current weights and ``.grad`` of ``model`` and
    ``k = ceil(alpha * nnz)`` per layer. Returns ``{(a, b): similarity}`` for every pair ``a`` before
    ``b`` in ``criteria``. ``seed`` drives the ``random`` criterion; ``opts`` go to the criteria.
    """
    for c in criteria:
        _check_criterion(c)
    if len(criteria) < 2 or len(set(criteria)) != len(criteria):
        raise ValueError(f"criteria must name at least two distinct criteria, got {list(criteria)}")
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")
    mask.check_fits(model)
    params = prunable_parameters(model)
    layers = [n for n, m in mask.masks.items() if 0 < _n(m) < m.numel()]  # the layers DST rewires
    if not layers:
        raise ValueError("the mask has no sparse layer (every layer is dense or empty)")
    sets: dict[str, list[torch.Tensor]] = {c: [] for c in criteria}
    for c in criteria:
        gen = torch.Generator().manual_seed(int(seed))
        for name in layers:
            w, m = params[name], mask.masks[name].to(params[name].device)
            sets[c].append(drop_set(c, w, w.grad, m, _count(alpha, _n(m)), generator=gen, **opts))
    return {(a, b): float(np.mean([jaccard(x, y) for x, y in zip(sets[a], sets[b])]))
            for a, b in itertools.combinations(criteria, 2)}


def drop_fraction(schedule: str, alpha0: float, step: float, t_end: float) -> float:
    """alpha(t): ``cosine`` alpha_0 / 2 (1 + cos(pi t / T_end)) (RigL), ``constant`` alpha_0 (SET),
    ``linear`` alpha_0 (1 - t / T_end); 0 from ``T_end`` on."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; valid schedules: {', '.join(SCHEDULES)}")
    if step >= t_end:
        return 0.0
    x = step / t_end
    if schedule == "cosine":
        return alpha0 / 2 * (1 + math.cos(math.pi * x))
    if schedule == "linear":
        return alpha0 * (1 - x)
    return alpha0


# --------------------------------------------------------------------------- configuration


PRESETS: dict[str, dict[str, Any]] = {
    # SET (Mocanu et al. 2018): zeta = 0.3 at every rewiring, to the end of training. The paper rewires
    # once per epoch: pass update_period=<steps per epoch> to match it.
    "set": dict(drop="set", grow="random", alpha=0.3, schedule="constant", end_fraction=1.0,
                update_period=100, reset_momentum=True),
    # RigL (Evci et al. 2020): magnitude drop, gradient growth, cosine from 0.3, stop at 75%.
    "rigl": dict(drop="magnitude", grow="gradient", alpha=0.3, schedule="cosine", end_fraction=0.75,
                 update_period=100, reset_momentum=True),
    # Fantastic Weights (Nowak et al. 2023): alpha_0 = 0.5, Delta T = 800, cosine to the end, momentum
    # kept; override drop= and grow= to run its grid.
    "fantastic_weights": dict(drop="magnitude", grow="random", alpha=0.5, schedule="cosine", end_fraction=1.0,
                              update_period=800, reset_momentum=False),
}


@dataclass(frozen=True)
class DSTConfig:
    """One DST algorithm: drop criterion x growth criterion x drop-fraction schedule x update period.

    ``drop="none"`` is static sparse training. ``scope="global"`` ranks drop scores over all sparse
    layers at once (``ceil(alpha * total nnz)`` dropped); growth stays per layer and refills each
    layer's own count. ``gamma`` is MEST's gradient weight.
    """

    drop: str = "none"
    grow: str = "random"
    alpha: float = 0.3
    schedule: str = "cosine"
    end_fraction: float = 0.75
    update_period: int = 100
    reset_momentum: bool = True
    update_when: str = "after_step"
    scope: str = "layer"
    gamma: float = 1.0

    def __post_init__(self) -> None:
        check_fields(self)
        choices = {"drop": ("none", *DROP_CRITERIA), "grow": GROWTH, "schedule": SCHEDULES,
                   "update_when": UPDATE_WHEN, "scope": SCOPES}
        for name, valid in choices.items():
            if getattr(self, name) not in valid:
                raise ValueError(f"{name}: unknown DST {name} {getattr(self, name)!r}; valid choices: {', '.join(valid)}")
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"alpha (initial drop fraction) must be in (0, 1], got {self.alpha!r}")
        if not 0.0 < self.end_fraction <= 1.0:
            raise ValueError(f"end_fraction (T_end / total steps) must be in (0, 1], got {self.end_fraction!r}")
        if self.update_period < 1:
            raise ValueError(f"update_period (Delta T, optimizer steps) must be an integer >= 1, "
                             f"got {self.update_period!r}")
        if self.gamma < 0:
            raise ValueError(f"gamma (MEST gradient weight) must be a finite number >= 0, got {self.gamma!r}")

    @property
    def enabled(self) -> bool:
        return self.drop != "none"

    @classmethod
    def preset(cls, name: str, **overrides) -> DSTConfig:
        """A preset of :data:`PRESETS` with ``overrides`` applied."""
        if name not in PRESETS:
            raise ValueError(f"unknown DST preset {name!r}; valid presets: {', '.join(PRESETS)}")
        valid = [f.name for f in fields(cls)]
        bad = sorted(set(overrides) - set(valid))
        if bad:
            raise ValueError(f"unknown DSTConfig field(s) {bad}; valid fields: {', '.join(valid)}")
        return cls(**(PRESETS[name] | overrides))


# --------------------------------------------------------------------------- the training-loop object


def _generator(seed: int, step: int) -> torch.Generator:
    """A CPU generator seeded from (seed, step): the same update draws the same numbers after a resume."""
    state = np.random.SeedSequence([seed, step]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


class DynamicSparsity:
    """Drives the mask updates of one training run.

    The trainer calls :meth:`before_step` after ``loss.backward()`` and before ``optimizer.step()``,
    and :meth:`after_step` after it; ``step`` counts optimizer steps 1..``total_steps`` (the step
    being taken, for :meth:`before_step`; the one just taken, for :meth:`after_step`). An update
    runs in the hook chosen by ``cfg.update_when`` when ``step % update_period == 0``,
    ``step < T_end`` and ``k > 0``. Masks change through :meth:`Mask.update_`, so the post-step
    hook of :meth:`Mask.attach` sees them at once.

    ``log`` holds one record per update: ``step``, ``alpha``, ``changed`` (per layer, the fraction
    of its active weights replaced by new ones), ``changed_total`` (the same over all rewired
    layers) and ``itop_rate``.
    """

    def __init__(self, cfg: DSTConfig, mask: Mask, model: nn.Module, optimizer: torch.optim.Optimizer | None,
                 total_steps: int, seed: int):
        if not isinstance(cfg, DSTConfig):
            raise ValueError(f"cfg must be a DSTConfig, got {type(cfg).__name__}")
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
            raise ValueError(f"total_steps must be an integer >= 1, got {total_steps!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        mask.check_fits(model)
        params = prunable_parameters(model)
        self.cfg, self.mask, self.optimizer = cfg, mask, optimizer
        self.params = {k: params[k] for k in mask.masks}
        self.total_steps, self.seed = total_steps, seed
        self.t_end = cfg.end_fraction * total_steps
        self.ever_active = {k: m.clone() for k, m in mask.masks.items()}
        self._ever_n = {k: _n(m) for k, m in self.ever_active.items()}
        self.log: list[dict[str, Any]] = []

    # -- schedule
    def alpha(self, step: int) -> float:
        """The drop fraction alpha(t) at optimizer step ``step``."""
        return drop_fraction(self.cfg.schedule, self.cfg.alpha, step, self.t_end)

    # -- hooks
    def before_step(self, step: int) -> None:
        if self.cfg.update_when == "before_step":
            self._maybe_update(step)

    def after_step(self, step: int) -> None:
        if self.cfg.update_when == "after_step":
            self._maybe_update(step)

    def _maybe_update(self, step: int) -> None:
        if self.cfg.enabled and step % self.cfg.update_period == 0 and step < self.t_end:
            self.update(step)

    # -- the update
    def _drop_sets(self, names: list[str], nnz: dict[str, int], alpha: float,
                   gen: torch.Generator) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        opts = {"gamma": cfg.gamma, "generator": gen}
        grads = {n: self.params[n].grad for n in names}
        if cfg.drop in GRAD_CRITERIA and any(g is None for g in grads.values()):
            raise ValueError(f"drop criterion {cfg.drop!r} needs gradients: call loss.backward() before the update")
        masks = {n: self.mask.masks[n].to(self.params[n].device) for n in names}
        if cfg.scope == "layer":
            return {n: _drop(cfg.drop, self.params[n], grads[n], masks[n], _count(alpha, nnz[n]), **opts)
                    for n in names}
        # global: one ranking over the concatenated layers, split back per layer
        w = torch.cat([self.params[n].detach().flatten() for n in names])
        g = torch.cat([grads[n].flatten() for n in names]) if cfg.drop in GRAD_CRITERIA else None
        m = torch.cat([masks[n].flatten() for n in names])
        flat = _drop(cfg.drop, w, g, m, _count(alpha, sum(nnz.values())), **opts)
        parts = torch.split(flat, [masks[n].numel() for n in names])
        return {n: p.view_as(masks[n]) for n, p in zip(names, parts)}

    @torch.no_grad()
    def update(self, step: int) -> dict[str, Any] | None:
        """Drop and regrow now (the hooks call this on schedule); returns the log record, or None if k = 0."""
        alpha = self.alpha(step)
        nnz = {n: _n(m) for n, m in self.mask.masks.items()}
        names = [n for n, m in self.mask.masks.items() if 0 < nnz[n] < m.numel()]  # dense layers stay
        if alpha <= 0 or not names:
            return None
        if self.cfg.grow == "gradient" and any(self.params[n].grad is None for n in names):
            raise ValueError("gradient growth needs gradients: call loss.backward() before the update")
        gen = _generator(self.seed, step)
        drops = self._drop_sets(names, {n: nnz[n] for n in names}, alpha, gen)
        k = {n: _n(d) for n, d in drops.items()}
        if not any(k.values()):
            return None
        changed: dict[str, float] = {}
        for name in names:
            w = self.params[name]
            old = self.mask.masks[name].to(w.device, copy=True)
            kept = old & ~drops[name]
            grown = _grow(self.cfg.grow, w.grad, ~kept, k[name], gen)
            new = kept | grown
            w.masked_fill_(~kept, 0.0)  # dropped weights go, regrown ones start at exactly 0
            if self.cfg.reset_momentum and self.optimizer is not None:
                for v in self.optimizer.state.get(w, {}).values():
                    if torch.is_tensor(v) and v.shape == w.shape:
                        v.masked_fill_(grown, 0)
            self.mask.update_(name, new)
            self.ever_active[name] = self.ever_active[name].to(new.device) | new
            self._ever_n[name] = _n(self.ever_active[name])
            changed[name] = _n(old & ~new) / nnz[name]
        total = sum(changed[n] * nnz[n] for n in names) / sum(nnz[n] for n in names)
        record = {"step": int(step), "alpha": float(alpha), "changed": changed, "changed_total": total,
                  "itop_rate": self.itop_rate()}
        self.log.append(record)
        return record

    # -- reporting
    def itop_rate(self) -> float:
        """In-time over-parameterisation (Liu et al. 2021): fraction of the prunable weights ever active."""
        return sum(self._ever_n.values()) / sum(m.numel() for m in self.ever_active.values())

    def summary(self) -> dict[str, Any]:
        """``n_updates``, final ``itop_rate`` and ``mean_changed`` (mean over updates of the fraction of
        active weights replaced)."""
        return {"n_updates": len(self.log), "itop_rate": self.itop_rate(),
                "mean_changed": float(np.mean([r["changed_total"] for r in self.log])) if self.log else 0.0}

    # -- resume
    def state_dict(self) -> dict[str, Any]:
        """The ever-active masks, the current masks and the log: with the model and optimizer
        checkpoint, enough to resume exactly (random draws are seeded from (seed, step))."""
        return {"ever_active": {k: m.cpu().clone() for k, m in self.ever_active.items()},
                "masks": self.mask.state_dict(),
                "log": [dict(r, changed=dict(r["changed"])) for r in self.log]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; the masks are written back into the attached :class:`Mask`."""
        for key in ("ever_active", "masks", "log"):
            if key not in state:
                raise ValueError(f"DST state lacks {key!r}; expected keys: ever_active, masks, log")
        for key in ("ever_active", "masks"):
            if set(state[key]) != set(self.mask.masks):
                raise ValueError(f"DST state {key} has layers {sorted(state[key])[:5]}..., "
                                 f"the mask has {sorted(self.mask.masks)[:5]}...")
            for k, m in state[key].items():
                if tuple(m.shape) != tuple(self.mask.masks[k].shape):
                    raise ValueError(f"DST state {key}[{k!r}] has shape {tuple(m.shape)}, "
                                     f"the mask's is {tuple(self.mask.masks[k].shape)}")
        for k, m in state["masks"].items():
            self.mask.update_(k, m.to(self.mask.masks[k].device))
        self.ever_active = {k: m.to(torch.bool).to(self.mask.masks[k].device).clone()
                            for k, m in state["ever_active"].items()}
        self._ever_n = {k: _n(m) for k, m in self.ever_active.items()}
        self.log = [dict(r, changed=dict(r["changed"])) for r in state["log"]]
