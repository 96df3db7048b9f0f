"""Pruning-at-initialisation saliency scores and score-based masks.

Each score function returns ``{param_name: score tensor}`` over the prunable weights of the
model it is given (layers matched by name, never by order); higher means "keep". Scoring
runs on a deep copy, so the model's weights and batch-norm statistics are left untouched.

* SNIP (Lee et al. 2019): |w * dL/dw|, summed over the given batches.
* GraSP (Wang et al. 2020): the paper removes the weights with the largest -w * (H g); we
  return w * (H g), so keeping the largest returned scores is the paper's rule. Logits are
  divided by a temperature (200).
* SynFlow (Tanaka et al. 2020): |w * dR/dw| with R the sum of the output of the network with
  absolute weights on an all-ones input, pruned iteratively over ``iterations`` rounds with an
  exponential density schedule.
* magnitude: |w| (lottery tickets, hybrid tickets).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable

import torch
from torch import nn

from .models import prunable_parameters
from .sparsity import Mask, check_density

__all__ = ["score", "mask_from_scores", "snip_scores", "grasp_scores", "synflow_scores", "magnitude_scores",
           "SCORES"]

Batches = tuple[torch.Tensor, torch.Tensor] | Iterable[tuple[torch.Tensor, torch.Tensor]]


def _batches(data: Batches) -> list[tuple[torch.Tensor, torch.Tensor]]:
    if isinstance(data, tuple) and len(data) == 2 and torch.is_tensor(data[0]):
        return [data]
    out = list(data)
    if not out:
        raise ValueError("no batches given to score on")
    return out


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def magnitude_scores(model: nn.Module, **_) -> dict[str, torch.Tensor]:
    """|w| per prunable weight."""
    return {k: p.detach().abs().clone() for k, p in prunable_parameters(model).items()}


def snip_scores(model: nn.Module, data: Batches, loss_fn: Callable = nn.functional.cross_entropy) -> dict[str, torch.Tensor]:
    """SNIP connection sensitivity |w * g|, g accumulated over the batches (model in train mode)."""
    net = copy.deepcopy(model).train()
    params = prunable_parameters(net)
    net.zero_grad(set_to_none=True)
    dev = _device(net)
    for x, y in _batches(data):
        loss_fn(net(x.to(dev)), y.to(dev)).backward()
    return {k: (p.grad * p).detach().abs() for k, p in params.items()}


def grasp_scores(model: nn.Module, data: Batches, loss_fn: Callable = nn.functional.cross_entropy,
                 temperature: float = 200.0) -> dict[str, torch.Tensor]:
    """GraSP keep-score w * (H g) (the negation of the paper's removal score -w * (H g))."""
    net = copy.deepcopy(model).train()
    params = prunable_parameters(net)
    plist = list(params.values())
    dev = _device(net)
    batches = _batches(data)
    g = [torch.zeros_like(p) for p in plist]
    for x, y in batches:  # g = dL/dw, no graph kept
        grads = torch.autograd.grad(loss_fn(net(x.to(dev)) / temperature, y.to(dev)), plist)
        g = [a + b for a, b in zip(g, grads)]
    net.zero_grad(set_to_none=True)
    for x, y in batches:  # Hg = d(g^T stopgrad(g))/dw
        grads = torch.autograd.grad(loss_fn(net(x.to(dev)) / temperature, y.to(dev)), plist, create_graph=True)
        z = sum((a * b.detach()).sum() for a, b in zip(grads, g))
        z.backward()
    return {k: (p.detach() * p.grad).detach() for k, p in params.items()}


@torch.no_grad()
def _linearize(net: nn.Module) -> None:
    """Replace every parameter and buffer by its absolute value (SynFlow's linearised network)."""
    for v in net.state_dict().values():
        v.abs_()


def synflow_scores(model: nn.Module, density: float = 0.1, iterations: int = 100, data: Batches | None = None,
                   **_) -> dict[str, torch.Tensor]:
    """SynFlow scores after iterative pruning to ``density`` over ``iterations`` rounds (data-free).

    ``data`` is only used for the input shape when given; otherwise the model must expose ``in_shape``.
    """
    if iterations < 1:
        raise ValueError(f"synflow iterations must be >= 1, got {iterations}")
    net = copy.deepcopy(model).double().eval()
    _linearize(net)
    params = prunable_parameters(net)
    dev = _device(net)
    if data is not None:
        x0 = _batches(data)[0][0]
        shape = tuple(x0.shape[1:])
    else:
        shape = tuple(model.in_shape)
    ones = torch.ones((1, *shape), dtype=torch.float64, device=dev)
    keep = {k: torch.ones_like(p, dtype=torch.bool) for k, p in params.items()}
    scores: dict[str, torch.Tensor] = {}
    for it in range(1, iterations + 1):
        with torch.no_grad():
            for k, p in params.items():
                p.mul_(keep[k])
        net.zero_grad(set_to_none=True)
        net(ones).sum().backward()
        scores = {k: (p.grad * p).detach().abs() for k, p in params.items()}
        target = density ** (it / iterations)
        keep = mask_from_scores(scores, target).masks
    return {k: s.float() * keep[k] for k, s in scores.items()}


SCORES: dict[str, Callable[..., dict[str, torch.Tensor]]] = {
    "snip": snip_scores,
    "grasp": grasp_scores,
    "synflow": synflow_scores,
    "magnitude": magnitude_scores,
}


def score(model: nn.Module, criterion: str, **options) -> dict[str, torch.Tensor]:
    """Scores of ``criterion`` (one of :data:`SCORES`) on ``model``."""
    if criterion not in SCORES:
        raise ValueError(f"unknown pruning score {criterion!r}; valid scores: {', '.join(SCORES)}")
    return SCORES[criterion](model, **options)


def mask_from_scores(scores: dict[str, torch.Tensor], density: float, per_layer: dict[str, float] | None = None) -> Mask:
    """Keep the top-scored weights: exactly ``round(density * N)`` globally, or, with ``per_layer``
    densities, exactly ``round(d_l n_l)`` inside each layer (hybrid tickets).
    """
    check_density(density)
    if per_layer is not None:
        masks = {}
        for k, s in scores.items():
            keep = int(round(per_layer[k] * s.numel()))
            flat = torch.zeros(s.numel(), dtype=torch.bool, device=s.device)
            flat[torch.topk(s.flatten().float(), keep, sorted=False).indices] = True
            masks[k] = flat.view_as(s)
        return Mask(masks)
    names = list(scores)
    flat = torch.cat([scores[k].flatten().float().cpu() for k in names])
    keep = int(round(density * flat.numel()))
    chosen = torch.zeros(flat.numel(), dtype=torch.bool)
    chosen[torch.topk(flat, keep, sorted=False).indices] = True
    masks, i = {}, 0
    for k in names:
        n = scores[k].numel()
        masks[k] = chosen[i:i + n].view_as(scores[k]).to(scores[k].device)
        i += n
    return Mask(masks)
