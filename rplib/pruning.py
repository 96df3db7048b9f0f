"""Pruning methods and sanity checks, each a small function behind one signature.

A pruning method turns a network holding its initial weights into a :class:`~rplib.masks.Mask`:
``method(model, sparsity, context) -> Mask`` (:data:`METHODS`, keyed by ``SparsityConfig.method``).
``sparsity`` is the run's :class:`rplib.config.SparsityConfig`; ``context`` (:class:`PruneContext`)
is what a method may ask of the run: its seed, its pruning batches, a dense training for tickets,
a fresh initialisation. Tickets rewind ``model`` in place to the weights they were drawn for.

* ``random``: a random mask with the layer-wise densities of ``sparsity.scheme``
  (:func:`rplib.sparsity.layerwise_densities`): ERK, smart ratio (Su et al. 2020) and the other
  data-free schemes, or the layer-wise ratios of SNIP, GraSP and SynFlow (Liu et al. 2022);
* ``snip``, ``grasp``, ``synflow``: the global top-k of the method's saliency scores
  (:mod:`rplib.scores`; Lee et al. 2019, Wang et al. 2020, Tanaka et al. 2020);
* ``lottery``: iterative magnitude pruning over ``lottery_rounds`` dense trainings, rewound to
  epoch ``rewind_epoch`` (Frankle et al. 2020);
* ``hybrid``: the layer-wise budgets of ``scheme`` with magnitude selection inside each layer after
  one dense training, then rewinding (the hybrid tickets of Su et al. 2020).

A sanity check of Su et al. 2020 transforms the drawn mask or the network it will train:
``check(mask, model, context) -> Mask`` (:data:`SANITY_CHECKS`, keyed by ``SparsityConfig.sanity``):
``rearrange`` permutes each layer's mask, ``shuffle`` permutes the surviving initial weights within
each layer, ``reinit`` keeps the mask and draws new initial weights. Corrupting the data a mask is
scored on (``prune_data``) happens before, in the batches ``context`` gives.

The score functions (:mod:`rplib.scores`) and :func:`rplib.masks.mask_from_scores` can be imported
from here too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .masks import Mask, mask_from_scores, random_mask
from .scores import (GRASP_VARIANTS, SCORES, check_grasp_variant, grasp_scores, magnitude_scores, score, snip_scores,
                     synflow_scores)
from .sparsity import DATA_SCHEMES, layerwise_densities

if TYPE_CHECKING:
    from .config import SparsityConfig

__all__ = ["PruneContext", "METHODS", "SANITY_CHECKS", "prune", "random_pruning", "saliency_pruning",
           "lottery_ticket", "hybrid_ticket", "rearrange", "shuffle", "reinit",
           # the scores, importable from here as before they had a module of their own
           "score", "mask_from_scores", "snip_scores", "grasp_scores", "synflow_scores", "magnitude_scores",
           "SCORES", "GRASP_VARIANTS", "check_grasp_variant"]

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class PruneContext:
    """What a pruning method or sanity check may ask of the run, beyond the network and its sparsity config.

    ``seed``: the run's seed. ``pruning_batches()``: the class-balanced (and, with ``prune_data``,
    corrupted) batches that data-dependent methods score on. ``train_dense(model, mask, rewind_epoch,
    salt)``: a trained copy of ``model`` (with ``mask`` if not None) and the copy's state at epoch
    ``rewind_epoch``, its batches' randomness salted with ``salt``. ``fresh_model(seed)``: the run's
    network newly initialised from ``seed``.
    """

    seed: int
    pruning_batches: Callable[[], list[Batch]]
    train_dense: Callable[[nn.Module, Mask | None, int, int], tuple[nn.Module, dict[str, torch.Tensor]]]
    fresh_model: Callable[[int], nn.Module]


def _scheme_options(sparsity: SparsityConfig, context: PruneContext) -> dict[str, Any]:
    """The keyword options of ``layerwise_densities`` for the config's scheme: its ``scheme_options``,
    GraSP's variant and seed when GraSP scores, and the pruning batches for a data-dependent scheme."""
    options = dict(sparsity.scheme_options)
    variant = options.pop("grasp_variant", None)
    if sparsity.scheme in DATA_SCHEMES:
        options.setdefault("data", context.pruning_batches())
    if sparsity.uses_grasp:
        options |= {"variant": variant, "seed": context.seed}
    return options


def random_pruning(model: nn.Module, sparsity: SparsityConfig, context: PruneContext) -> Mask:
    """Random pruning: ``round(d_l n_l)`` weights of each layer kept uniformly at random, ``d_l`` from the scheme."""
    densities = layerwise_densities(model, sparsity.density, sparsity.scheme, **_scheme_options(sparsity, context))
    return random_mask(model, densities, seed=context.seed)


def saliency_pruning(model: nn.Module, sparsity: SparsityConfig, context: PruneContext) -> Mask:
    """SNIP, GraSP or SynFlow (``sparsity.method``): the globally top-scored weights at initialisation."""
    options: dict[str, Any] = {"data": context.pruning_batches()}
    if sparsity.method == "grasp":
        options |= {"variant": dict(sparsity.scheme_options)["grasp_variant"], "seed": context.seed}
    if sparsity.method == "synflow":
        options["density"] = sparsity.density
    return mask_from_scores(score(model, sparsity.method, **options), sparsity.density)


def lottery_ticket(model: nn.Module, sparsity: SparsityConfig, context: PruneContext) -> Mask:
    """Iterative magnitude pruning: round r trains from the rewind point with the previous mask and keeps
    the largest weights at density ``d^(r/R)``; ``model`` is rewound to the first round's epoch ``rewind_epoch``."""
    mask = None
    rounds = sparsity.lottery_rounds
    for r in range(1, rounds + 1):
        trained, rewind = context.train_dense(model, mask, sparsity.rewind_epoch, r)
        if r == 1:
            model.load_state_dict(rewind)
        scores = magnitude_scores(trained)
        if mask is not None:
            scores = {k: s * mask.masks[k] for k, s in scores.items()}
        mask = mask_from_scores(scores, sparsity.density ** (r / rounds))
    return mask


def hybrid_ticket(model: nn.Module, sparsity: SparsityConfig, context: PruneContext) -> Mask:
    """The scheme's budget per layer, the largest trained weights inside each layer; ``model`` rewound."""
    trained, rewind = context.train_dense(model, None, sparsity.rewind_epoch, 0)
    densities = layerwise_densities(model, sparsity.density, sparsity.scheme, **_scheme_options(sparsity, context))
    mask = mask_from_scores(magnitude_scores(trained), sparsity.density, per_layer=densities)
    model.load_state_dict(rewind)
    return mask


#: Pruning methods by ``SparsityConfig.method`` (all but ``dense``), one signature: (model, sparsity, context) -> Mask.
METHODS: dict[str, Callable[[nn.Module, SparsityConfig, PruneContext], Mask]] = {
    "random": random_pruning,
    "snip": saliency_pruning,
    "grasp": saliency_pruning,
    "synflow": saliency_pruning,
    "lottery": lottery_ticket,
    "hybrid": hybrid_ticket,
}


def rearrange(mask: Mask, model: nn.Module, context: PruneContext) -> Mask:
    """Layer-wise rearrange: each layer's mask permuted at random, its count kept."""
    return mask.rearranged(seed=context.seed + 1)


def shuffle(mask: Mask, model: nn.Module, context: PruneContext) -> Mask:
    """Layer-wise weight shuffling: the mask kept, the surviving initial weights of ``model`` permuted in place."""
    mask.shuffle_weights_(model, seed=context.seed + 1)
    return mask


def reinit(mask: Mask, model: nn.Module, context: PruneContext) -> Mask:
    """Layer-wise reinitialisation: the mask kept, ``model`` given the weights of a fresh initialisation."""
    model.load_state_dict(context.fresh_model(context.seed + 10_000).state_dict())
    return mask


#: Sanity checks by ``SparsityConfig.sanity``, one signature: (mask, model, context) -> Mask.
SANITY_CHECKS: dict[str, Callable[[Mask, nn.Module, PruneContext], Mask]] = {
    "none": lambda mask, model, context: mask,
    "rearrange": rearrange,
    "shuffle": shuffle,
    "reinit": reinit,
}


def prune(model: nn.Module, sparsity: SparsityConfig, context: PruneContext) -> Mask:
    """The mask of ``sparsity`` (a sparse method) for ``model``, its sanity check applied."""
    if sparsity.method not in METHODS:
        raise ValueError(f"method: no mask for {sparsity.method!r}; valid methods: {', '.join(METHODS)}")
    mask = METHODS[sparsity.method](model, sparsity, context)
    return SANITY_CHECKS[sparsity.sanity](mask, model, context)
