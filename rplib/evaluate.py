"""Beyond test accuracy: OoD detection, calibration, adversarial robustness and gradient flow.

The random-pruning paper (Liu et al., ICLR 2022, "The Unreasonable Effectiveness of Random
Pruning") compares randomly pruned and dense networks on

- out-of-distribution detection: AUROC / AUPR / FPR at 95% TPR of a confidence score
  (maximum softmax probability, Hendrycks & Gimpel 2017; maximum logit, Hendrycks et al. 2022;
  energy, Liu et al. 2020);
- calibration: expected calibration error over 15 equal-width confidence bins (Guo et al. 2017),
  negative log-likelihood and the Brier score (Brier 1950);
- adversarial robustness: accuracy under FGSM (Goodfellow et al. 2015) and L-inf PGD
  (Madry et al. 2018) attacks of radius eps in raw input space;

and explains the differences between layer-wise ratio schemes by gradient flow, the norm of the
loss gradient with respect to the active weights (Evci et al. 2020; Wang et al. 2020).

Inputs are normalised tensors ``x = (raw - mean) / std``; attack radii are in raw input space, the
units of ``bundle.bounds`` (pixels in [0, 1] for the image sets), so a step of ``eps`` in raw space
is ``eps / std`` per channel in the network's input.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import data
from .fields import check_fields
from .models import prunable_parameters
from .masks import Mask

__all__ = [
    "OOD_SCORES", "ATTACKS", "EvalConfig", "ood_scores", "ood_metrics", "ece", "reliability",
    "calibration_metrics", "fgsm", "pgd", "robust_accuracy", "grad_flow", "evaluate",
]

OOD_SCORES = ("msp", "max_logit", "energy")
ATTACKS = ("fgsm", "pgd")


@dataclass(frozen=True)
class EvalConfig:
    """What :func:`evaluate` measures beyond accuracy. The defaults measure nothing extra.

    ``epsilons`` are L-inf radii in raw input space; ``pgd_step_size`` ``None`` means
    ``2.5 * eps / pgd_steps`` (Madry et al. 2018); attacks use the first ``attack_examples``
    test examples. ``grad_flow`` asks the trainer to record :func:`grad_flow` every epoch.
    """

    ood: tuple[str, ...] = ()
    ood_score: str = "msp"
    calibration: bool = False
    attacks: tuple[str, ...] = ()
    epsilons: tuple[float, ...] = (0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255)
    pgd_steps: int = 10
    pgd_step_size: float | None = None
    pgd_random_start: bool = True
    attack_examples: int = 1000
    grad_flow: bool = False

    def __post_init__(self) -> None:
        check_fields(self)
        if self.ood_score not in OOD_SCORES:
            raise ValueError(f"ood_score: unknown OoD score {self.ood_score!r}; valid scores: {', '.join(OOD_SCORES)}")
        bad = [a for a in self.attacks if a not in ATTACKS]
        if bad:
            raise ValueError(f"attacks: unknown attack(s) {bad}; valid attacks: {', '.join(ATTACKS)}")
        object.__setattr__(self, "epsilons", tuple(_check_eps(e) for e in self.epsilons))
        if self.pgd_steps < 1:
            raise ValueError(f"pgd_steps must be an integer >= 1, got {self.pgd_steps!r}")
        if self.pgd_step_size is not None and not self.pgd_step_size > 0:
            raise ValueError(f"pgd_step_size must be None or a finite number > 0, got {self.pgd_step_size!r}")
        if self.attack_examples < 1:
            raise ValueError(f"attack_examples must be an integer >= 1, got {self.attack_examples!r}")

    def check_data(self, data_name: str) -> None:
        """Raise ``ValueError`` unless every OoD set is valid for ``data_name`` (``rplib.data.OOD_SETS``)."""
        if not self.ood:
            return
        valid = tuple(data.OOD_SETS.get(data_name, ()))
        bad = [s for s in self.ood if s not in valid]
        if bad:
            raise ValueError(f"eval.ood: unknown OoD set(s) {bad} for data {data_name!r}; "
                             f"valid OoD sets: {', '.join(valid) if valid else 'none'}")


def _is_real(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_eps(eps: float) -> float:
    if not (_is_real(eps) and eps >= 0):
        raise ValueError(f"attack radius eps must be a finite number >= 0, got {eps!r}")
    return float(eps)


# --------------------------------------------------------------------------- OoD detection


def ood_scores(logits: Tensor, kind: str = "msp") -> Tensor:
    """Per-example confidence scores, higher = more in-distribution.

    ``msp``: max_k softmax(f)_k (Hendrycks & Gimpel 2017); ``max_logit``: max_k f_k
    (Hendrycks et al. 2022); ``energy``: logsumexp_k f_k, the negative free energy -E(x) at
    temperature 1 (Liu et al. 2020, Eq. 7).
    """
    if kind not in OOD_SCORES:
        raise ValueError(f"unknown OoD score {kind!r}; valid scores: {', '.join(OOD_SCORES)}")
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape (n, classes), got {tuple(logits.shape)}")
    logits = logits.detach().float()
    if kind == "msp":
        return logits.softmax(dim=1).amax(dim=1)
    if kind == "max_logit":
        return logits.amax(dim=1)
    return logits.logsumexp(dim=1)


def _scores_array(s: Tensor, what: str) -> np.ndarray:
    a = torch.as_tensor(s).detach().cpu().double().numpy()
    if a.ndim != 1 or a.size == 0 or not np.isfinite(a).all():
        raise ValueError(f"{what} must be a non-empty 1-D tensor of finite scores, got shape {a.shape}")
    return a


def ood_metrics(score_in: Tensor, score_out: Tensor) -> dict[str, float]:
    """AUROC, AUPR and FPR95 of separating in-distribution (positive) from OoD examples by score.

    ``aupr`` is the average precision with in-distribution as positive (AUPR-In); ``fpr95`` is the
    fraction of OoD examples scored at or above the highest threshold that accepts at least 95% of
    the in-distribution examples.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve  # a slow import, used here only

    s_in, s_out = _scores_array(score_in, "score_in"), _scores_array(score_out, "score_out")
    labels = np.concatenate([np.ones(s_in.size), np.zeros(s_out.size)])
    scores = np.concatenate([s_in, s_out])
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    return {
        "auroc": float(roc_auc_score(labels, scores)),
        "aupr": float(average_precision_score(labels, scores)),
        "fpr95": float(fpr[np.searchsorted(tpr, 0.95, side="left")]),
    }


# --------------------------------------------------------------------------- calibration


def _check_probs(probs: Tensor, labels: Tensor, n_bins: int) -> None:
    if probs.dim() != 2 or probs.shape[0] == 0:
        raise ValueError(f"probs must have shape (n, classes) with n >= 1, got {tuple(probs.shape)}")
    if labels.shape != (probs.shape[0],):
        raise ValueError(f"labels must have shape ({probs.shape[0]},), got {tuple(labels.shape)}")
    if labels.min() < 0 or labels.max() >= probs.shape[1]:
        raise ValueError(f"labels must lie in [0, {probs.shape[1] - 1}], got range "
                         f"[{int(labels.min())}, {int(labels.max())}]")
    if not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be an integer >= 1, got {n_bins!r}")


def reliability(probs: Tensor, labels: Tensor, n_bins: int = 15) -> dict[str, list[float]]:
    """Reliability-diagram data (Guo et al. 2017, Sec. 2): confidence max_k p_k binned into
    ``n_bins`` equal-width bins B_m = ((m-1)/M, m/M].

    Returns per bin the mean ``confidence``, the ``accuracy`` of the argmax prediction and the
    ``count`` (empty bins report 0 confidence and accuracy with count 0), plus the M+1 ``edges``.
    """
    _check_probs(probs, labels, n_bins)
    probs = probs.detach().cpu().double()
    conf, pred = probs.max(dim=1)
    correct = (pred == labels.detach().cpu()).double()
    edges = torch.linspace(0.0, 1.0, n_bins + 1, dtype=torch.float64)
    idx = torch.bucketize(conf, edges[1:-1], right=False)  # edges[m-1] < conf <= edges[m]
    count = torch.bincount(idx, minlength=n_bins).double()
    denom = count.clamp(min=1)
    return {
        "confidence": (torch.bincount(idx, conf, minlength=n_bins) / denom).tolist(),
        "accuracy": (torch.bincount(idx, correct, minlength=n_bins) / denom).tolist(),
        "count": [int(c) for c in count.tolist()],
        "edges": edges.tolist(),
    }


def _ece(rel: dict[str, list[float]]) -> float:
    n = sum(rel["count"])
    return float(sum(c / n * abs(a - p) for c, a, p in zip(rel["count"], rel["accuracy"], rel["confidence"])))


def ece(probs: Tensor, labels: Tensor, n_bins: int = 15) -> float:
    """Expected calibration error, sum_m |B_m| / n * |acc(B_m) - conf(B_m)| (Guo et al. 2017, Eq. 3)."""
    return _ece(reliability(probs, labels, n_bins))


def calibration_metrics(logits: Tensor, labels: Tensor, n_bins: int = 15) -> dict[str, Any]:
    """ECE, NLL = mean_i -log p_{y_i}, Brier = mean_i sum_k (p_ik - 1[k = y_i])^2 (Brier 1950),
    and the reliability-diagram data, all from softmax(logits)."""
    logits = logits.detach().cpu().double()
    labels = labels.detach().cpu().long()
    probs = logits.softmax(dim=1)
    _check_probs(probs, labels, n_bins)
    onehot = F.one_hot(labels, probs.shape[1]).double()
    rel = reliability(probs, labels, n_bins)
    return {
        "ece": _ece(rel),
        "nll": float(F.cross_entropy(logits, labels)),
        "brier": float(((probs - onehot) ** 2).sum(dim=1).mean()),
        "reliability": rel,
    }


# --------------------------------------------------------------------------- adversarial attacks


def _stats(v: float | Tensor, x: Tensor, what: str) -> Tensor:
    t = torch.as_tensor(v, dtype=x.dtype, device=x.device)
    if what == "std" and not bool((t > 0).all()):
        raise ValueError(f"std must be > 0 everywhere, got {v!r}")
    return t


def _input_grad(model: nn.Module, raw: Tensor, y: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """d/d raw of the summed cross-entropy; parameters' ``.grad`` are left untouched."""
    raw = raw.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = F.cross_entropy(model((raw - mean) / std), y, reduction="sum")
        (g,) = torch.autograd.grad(loss, raw)
    return g


def _clip(raw: Tensor, bounds: tuple[float, float] | None) -> Tensor:
    return raw if bounds is None else raw.clamp(bounds[0], bounds[1])


def fgsm(model: nn.Module, x: Tensor, y: Tensor, eps: float, *, mean: float | Tensor, std: float | Tensor,
         bounds: tuple[float, float] | None) -> Tensor:
    """Fast gradient sign method (Goodfellow et al. 2015): raw' = clip(raw + eps * sign(grad_raw L)).

    ``x`` is normalised, ``eps`` raw-space; returns the normalised adversarial input
    ``(raw' - mean) / std``. ``eps = 0`` returns ``x`` unchanged. The model runs in eval mode
    (its mode is restored) and no gradient reaches the parameters' ``.grad``.
    """
    eps = _check_eps(eps)
    mean, std = _stats(mean, x, "mean"), _stats(std, x, "std")
    if eps == 0:
        return x.detach().clone()
    was_training = model.training
    model.eval()
    try:
        raw = x.detach() * std + mean
        adv = _clip(raw + eps * _input_grad(model, raw, y, mean, std).sign(), bounds)
    finally:
        model.train(was_training)
    return (adv - mean) / std


def pgd(model: nn.Module, x: Tensor, y: Tensor, eps: float, *, steps: int = 10, step_size: float | None = None,
        random_start: bool = True, mean: float | Tensor, std: float | Tensor,
        bounds: tuple[float, float] | None, generator: torch.Generator | None = None) -> Tensor:
    """L-inf projected gradient descent (Madry et al. 2018, Eq. 2), in raw input space.

    raw^{t+1} = clip_bounds(Proj_{||. - raw||_inf <= eps}(raw^t + step_size * sign(grad L))),
    ``step_size`` defaulting to 2.5 * eps / steps, started uniformly in the eps-ball when
    ``random_start`` (noise drawn from ``generator``, a fresh one seeded 0 if ``None``).
    Returns the normalised adversarial input; ``eps = 0`` returns ``x`` unchanged.
    """
    eps = _check_eps(eps)
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if step_size is not None and not (_is_real(step_size) and step_size > 0):
        raise ValueError(f"step_size must be None or a finite number > 0, got {step_size!r}")
    mean, std = _stats(mean, x, "mean"), _stats(std, x, "std")
    if eps == 0:
        return x.detach().clone()
    alpha = 2.5 * eps / steps if step_size is None else float(step_size)
    raw = x.detach() * std + mean
    adv = raw
    if random_start:
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        noise = torch.rand(raw.shape, generator=g, device=g.device, dtype=raw.dtype).to(raw.device)
        adv = _clip(raw + eps * (2 * noise - 1), bounds)
    was_training = model.training
    model.eval()
    try:
        for _ in range(steps):
            adv = adv + alpha * _input_grad(model, adv, y, mean, std).sign()
            adv = _clip(torch.minimum(torch.maximum(adv, raw - eps), raw + eps), bounds)
    finally:
        model.train(was_training)
    return (adv - mean) / std


_ATTACK_FNS: dict[str, Callable[..., Tensor]] = {"fgsm": fgsm, "pgd": pgd}


def robust_accuracy(model: nn.Module, x: Tensor, y: Tensor, attack: str, epsilons: Sequence[float], *,
                    batch_size: int = 1000, **kw: Any) -> dict[float, float]:
    """Accuracy on ``attack``-perturbed inputs for every radius in ``epsilons`` (raw space).

    ``kw`` go to the attack (``mean``, ``std``, ``bounds``; for PGD also ``steps``, ``step_size``,
    ``random_start``, ``generator``). The model is evaluated in eval mode; its mode is restored.
    """
    if attack not in _ATTACK_FNS:
        raise ValueError(f"unknown attack {attack!r}; valid attacks: {', '.join(ATTACKS)}")
    epsilons = [_check_eps(e) for e in epsilons]
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"x and y must hold the same number (>= 1) of examples, got {x.shape[0]} and {y.shape[0]}")
    attack_fn = _ATTACK_FNS[attack]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = {}
    try:
        for eps in epsilons:
            correct = 0
            for i in range(0, x.shape[0], batch_size):
                xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
                adv = attack_fn(model, xb, yb, eps, **kw)
                with torch.no_grad():
                    correct += int((model(adv).argmax(dim=1) == yb).sum())
            out[eps] = correct / x.shape[0]
    finally:
        model.train(was_training)
    return out


# --------------------------------------------------------------------------- gradient flow


def grad_flow(model: nn.Module, mask: Mask | None, x: Tensor, y: Tensor,
              loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy, *,
              batch_size: int | None = None) -> float:
    """Gradient flow ||g ⊙ m||_2: the L2 norm of the gradient of the mean loss on (x, y) with
    respect to the active prunable weights (Evci et al. 2020; as used by Liu et al. 2022).

    ``mask`` ``None`` means dense: every prunable weight is active; layers the mask omits are
    dense. The model's current mode is used; ``.grad`` and buffers (BatchNorm running
    statistics) are left as they were. With ``batch_size`` the gradient of the mean loss over all
    of ``x`` is accumulated batch by batch (``loss_fn`` must average over the batch).
    """
    params = prunable_parameters(model)
    if mask is not None:
        mask.check_fits(model)
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"x and y must hold the same number (>= 1) of examples, got {x.shape[0]} and {y.shape[0]}")
    names = list(params)
    weights = [params[k] for k in names]
    device = weights[0].device
    buffers = {k: b.detach().clone() for k, b in model.named_buffers()}
    n, step = x.shape[0], batch_size or x.shape[0]
    total = [torch.zeros_like(w) for w in weights]
    try:
        with torch.enable_grad():
            for i in range(0, n, step):
                xb, yb = x[i:i + step].to(device), y[i:i + step].to(device)
                loss = loss_fn(model(xb), yb) * (xb.shape[0] / n)
                for t, g in zip(total, torch.autograd.grad(loss, weights, allow_unused=True)):
                    if g is not None:
                        t.add_(g)
    finally:
        with torch.no_grad():
            for k, b in model.named_buffers():
                b.copy_(buffers[k])
    sq = 0.0
    for k, g in zip(names, total):
        if mask is not None and k in mask.masks:
            g = g * mask.masks[k].to(g.device)
        sq += float(g.double().pow(2).sum())
    return math.sqrt(sq)


# --------------------------------------------------------------------------- everything a run asks for


def _first(bundle: Any, n: int, batch_size: int) -> tuple[Tensor, Tensor]:
    """The first ``n`` test examples (fewer if the test split is smaller)."""
    xs, ys, got = [], [], 0
    for xb, yb in bundle.batches("test", min(batch_size, n)):
        xs.append(xb[:n - got])
        ys.append(yb[:n - got])
        got += xs[-1].shape[0]
        if got >= n:
            break
    return torch.cat(xs), torch.cat(ys)


@torch.no_grad()
def _logits(model: nn.Module, inputs: Iterable[Tensor]) -> Tensor:
    """Logits of every input batch, concatenated on the CPU."""
    device = next(model.parameters()).device
    return torch.cat([model(xb.to(device)).float().cpu() for xb in inputs])


def _test_logits(model: nn.Module, bundle: Any, batch_size: int) -> tuple[Tensor, Tensor]:
    labels: list[Tensor] = []

    def inputs() -> Iterator[Tensor]:
        for xb, yb in bundle.batches("test", batch_size):
            labels.append(yb.cpu())
            yield xb

    logits = _logits(model, inputs())
    return logits, torch.cat(labels)


def evaluate(model: nn.Module, bundle: Any, data_cfg: Any, cfg: EvalConfig, seed: int = 0,
             batch_size: int = 1000) -> dict[str, Any]:
    """Run what ``cfg`` asks on ``bundle``'s test split and return JSON-able metrics.

    Keys (only those asked for): ``ood`` {set: {auroc, aupr, fpr95}} from the scores of the whole
    test split against as many examples of ``rplib.data.load_ood(set, bundle, data_cfg, n, seed)``;
    ``calibration`` (:func:`calibration_metrics`); ``robustness`` {attack: {str(eps): accuracy}} on
    the first ``cfg.attack_examples`` test examples, PGD noise from a generator seeded with ``seed``.
    ``cfg.grad_flow`` is a training-time measurement (:func:`grad_flow` per epoch) and adds
    nothing here. The model runs in eval mode; its mode is restored afterwards.
    """
    if not isinstance(cfg, EvalConfig):
        raise ValueError(f"cfg must be an EvalConfig, got {type(cfg).__name__}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    cfg.check_data(bundle.name)
    in_shape = tuple(bundle.in_shape)
    ood_x = {}
    if cfg.ood:
        n_test = bundle.num_examples("test")
        for name in cfg.ood:
            xo = data.load_ood(name, bundle, data_cfg, n=n_test, seed=seed)
            if tuple(xo.shape[1:]) != in_shape:
                raise ValueError(f"OoD set {name!r} has input shape {tuple(xo.shape[1:])}, "
                                 f"the in-distribution data {bundle.name!r} has {in_shape}")
            ood_x[name] = xo

    was_training = model.training
    model.eval()
    out: dict[str, Any] = {}
    try:
        if cfg.ood or cfg.calibration:
            logits, labels = _test_logits(model, bundle, batch_size)
        if cfg.ood:
            s_in = ood_scores(logits, cfg.ood_score)
            out["ood"] = {name: ood_metrics(s_in, ood_scores(_logits(model, xo.split(batch_size)), cfg.ood_score))
                          for name, xo in ood_x.items()}
        if cfg.calibration:
            out["calibration"] = calibration_metrics(logits, labels)
        if cfg.attacks:
            xa, ya = _first(bundle, cfg.attack_examples, batch_size)
            common = {"mean": bundle.mean, "std": bundle.std, "bounds": bundle.bounds, "batch_size": batch_size}
            out["robustness"] = {}
            for attack in cfg.attacks:
                kw = dict(common)
                if attack == "pgd":
                    kw.update(steps=cfg.pgd_steps, step_size=cfg.pgd_step_size, random_start=cfg.pgd_random_start,
                              generator=torch.Generator().manual_seed(int(seed)))
                acc = robust_accuracy(model, xa, ya, attack, cfg.epsilons, **kw)
                out["robustness"][attack] = {str(e): a for e, a in acc.items()}
    finally:
        model.train(was_training)
    return out
