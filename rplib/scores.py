"""Pruning-at-initialisation saliency scores and the magnitude score.

Each score function returns ``{param_name: score tensor}`` over the prunable weights of the
model it is given (layers matched by name, never by order); higher means "keep". Scoring
runs on a deep copy, so the model's weights and batch-norm statistics are left untouched.
Scores are float32 and layout-free whatever the caller's fast path: the copy is scored in the
contiguous memory format with autocast off, so a network trained in ``channels_last`` under
bf16 autocast gets the masks of the plain float32 path (:func:`rplib.masks.mask_from_scores`).

* SNIP (Lee et al. 2019): |w * dL/dw|, summed over the given batches.
* GraSP (Wang et al. 2020): the paper removes the weights with the largest -w * (H g) (its
  score S(-theta) = -theta ⊙ Hg, Section 4); we return w * (H g), so keeping the largest returned
  scores is the paper's rule. Logits are divided by a temperature (200). Two variants
  (:data:`GRASP_VARIANTS`): ``sanity_checking`` (the default) scores as the sanity-checking
  paper's released code (Su et al. 2020), whose GraSP masks that paper's checks are about;
  ``rplib_v1`` is rplib's earlier scoring. See :func:`grasp_scores`.
* SynFlow (Tanaka et al. 2020): |w * dR/dw| with R the sum of the output of the network with
  absolute weights on an all-ones input, pruned iteratively over ``iterations`` rounds with an
  exponential density schedule.
* magnitude: |w| (lottery tickets, hybrid tickets).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Iterable

import torch
from torch import nn

from .masks import mask_from_scores
from .models import prunable_parameters

__all__ = ["score", "snip_scores", "grasp_scores", "synflow_scores", "magnitude_scores", "SCORES", "GRASP_VARIANTS",
           "check_grasp_variant"]

#: GraSP scorings: the first is the default (see :func:`grasp_scores`).
GRASP_VARIANTS = ("sanity_checking", "rplib_v1")

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


def _float32(fn: Callable[..., dict[str, torch.Tensor]]) -> Callable[..., dict[str, torch.Tensor]]:
    """``fn`` run with autocast off on the model's device: its scores are float32 inside a bf16 region too."""

    @functools.wraps(fn)
    def scored(model: nn.Module, *args, **kwargs) -> dict[str, torch.Tensor]:
        with torch.autocast(_device(model).type, enabled=False):
            return fn(model, *args, **kwargs)

    return scored


def _scoring_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` in the contiguous memory format (a no-op for a network that already is)."""
    return copy.deepcopy(model).to(memory_format=torch.contiguous_format)


def magnitude_scores(model: nn.Module, **_) -> dict[str, torch.Tensor]:
    """|w| per prunable weight."""
    return {k: p.detach().abs().clone() for k, p in prunable_parameters(model).items()}


@_float32
def snip_scores(model: nn.Module, data: Batches, loss_fn: Callable = nn.functional.cross_entropy) -> dict[str, torch.Tensor]:
    """SNIP connection sensitivity |w * g|, g accumulated over the batches (model in train mode)."""
    net = _scoring_copy(model).train()
    params = prunable_parameters(net)
    net.zero_grad(set_to_none=True)
    dev = _device(net)
    for x, y in _batches(data):
        loss_fn(net(x.to(dev)), y.to(dev)).backward()
    return {k: (p.grad * p).detach().abs() for k, p in params.items()}


def check_grasp_variant(variant: str, what: str = "variant") -> str:
    """``variant`` if it is one of :data:`GRASP_VARIANTS`; otherwise a one-line ``ValueError`` naming ``what``."""
    if variant not in GRASP_VARIANTS:
        raise ValueError(f"{what}: unknown GraSP variant {variant!r}; valid choices: {', '.join(GRASP_VARIANTS)}")
    return variant


@torch.no_grad()
def _reinit_linear(net: nn.Module, seed: int) -> None:
    """Xavier-normal (gain 1) weights for every Linear layer of ``net``, drawn on the CPU from a private generator."""
    g = torch.Generator().manual_seed(seed)
    for mod in net.modules():
        if isinstance(mod, nn.Linear):
            fresh = torch.empty(mod.weight.shape, dtype=mod.weight.dtype)
            nn.init.xavier_normal_(fresh, generator=g)
            mod.weight.copy_(fresh)


def _halves(batches: list[tuple[torch.Tensor, torch.Tensor]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each batch split at n // 2 into its first and second half, in order."""
    out = []
    for x, y in batches:
        n = len(y)
        if n < 2:
            raise ValueError(f"GraSP variant 'sanity_checking' splits every batch into two halves; got a batch of {n} "
                             "example(s): give batches of at least 2 (or use variant 'rplib_v1')")
        out += [(x[: n // 2], y[: n // 2]), (x[n // 2:], y[n // 2:])]
    return out


@_float32
def grasp_scores(model: nn.Module, data: Batches, loss_fn: Callable = nn.functional.cross_entropy,
                 temperature: float = 200.0, variant: str = GRASP_VARIANTS[0],
                 seed: int = 0) -> dict[str, torch.Tensor]:
    """GraSP keep-score w * (H g): the negation of the removal score S(-theta) = -theta ⊙ Hg of
    Wang et al. 2020 (Section 4), who remove the weights with the largest S.

    g is the gradient of the loss of the logits divided by ``temperature``, accumulated (summed) over
    the scored batches without a graph; H g is the gradient of g^T (dL/dw) with g held fixed, again
    summed over the batches; both on a deep copy of ``model`` in train mode, so the caller's
    parameters, buffers and random number generators are left as they were. ``variant``:

    ``sanity_checking`` (default)
        as the released code of Su et al. 2020 scores GraSP: the weights of every Linear layer of the
        copy are first re-initialised (Xavier normal, gain 1, drawn from a private generator seeded
        with ``seed``, so the scores depend only on the model, the data and ``seed``) and the w in
        w * (H g) is the re-initialised weight; each batch is split at n // 2 into its first and
        second half, scored as two batches (batch-norm statistics are then those of each half; with
        the class-ordered batches rplib's runs score on, each half holds half of the classes). It is
        the default because the sanity-checking paper's findings are about the masks this scoring gives.
    ``rplib_v1``
        rplib's earlier scoring: the weights as given, each batch scored whole.
    """
    check_grasp_variant(variant)
    net = _scoring_copy(model).train()
    batches = _batches(data)
    if variant == "sanity_checking":
        _reinit_linear(net, seed)
        batches = _halves(batches)
    params = prunable_parameters(net)
    plist = list(params.values())
    dev = _device(net)
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


@_float32
def synflow_scores(model: nn.Module, density: float = 0.1, iterations: int = 100, data: Batches | None = None,
                   **_) -> dict[str, torch.Tensor]:
    """SynFlow scores after iterative pruning to ``density`` over ``iterations`` rounds (data-free).

    ``data`` is only used for the input shape when given; otherwise the model must expose ``in_shape``.
    """
    if iterations < 1:
        raise ValueError(f"synflow iterations must be >= 1, got {iterations}")
    net = _scoring_copy(model).double().eval()
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
