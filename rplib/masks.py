"""Keep-masks: per-layer boolean masks of the prunable weights, drawn at random or from scores.

Which weights inside each layer survive (REFERENCE.md section 1), once a layer-wise density
budget is known (:func:`rplib.sparsity.layerwise_densities`): :func:`random_mask` draws them
uniformly at random, :func:`mask_from_scores` keeps the top-scored ones (magnitude and saliency
masks, :mod:`rplib.scores`). :class:`Mask` applies a mask during training and holds the
layer-wise sanity checks of Su et al. 2020 (rearrange, weight shuffling).

Every operation here reads and writes weights in their logical (row-major) order, whatever their
memory format: a network converted to ``channels_last`` gets the same masks and the same shuffled
weights as a contiguous one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .models import prunable_parameters

__all__ = ["Mask", "LayerReport", "random_mask", "mask_from_scores", "check_density"]


def check_density(density: float, what: str = "density") -> float:
    """Validate a kept fraction: a number in (0, 1]."""
    if isinstance(density, bool) or not isinstance(density, (int, float)) or not (0.0 < density <= 1.0):
        raise ValueError(f"{what} must be in (0, 1] (the kept fraction; sparsity = 1 - density), got {density!r}")
    return float(density)



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
            out[k] = flat[torch.randperm(flat.numel(), generator=g)].reshape(m.shape).to(m.device)
        return Mask(out)

    @torch.no_grad()
    def shuffle_weights_(self, model: nn.Module, seed: int) -> nn.Module:
        """Layer-wise weight shuffling: keep the mask, permute the surviving weight values within each layer.

        The values are permuted in the weights' logical order and written back in place, so a weight in
        any memory format (``channels_last`` included) keeps its format and gets the same values.
        """
        self.check_fits(model)
        g = torch.Generator().manual_seed(seed)
        params = prunable_parameters(model)
        for k, m in self.masks.items():
            p = params[k]
            idx = m.flatten().nonzero().squeeze(1).to(p.device)
            flat = p.detach().flatten().clone()
            perm = torch.randperm(idx.numel(), generator=g).to(p.device)
            flat[idx] = flat[idx][perm]
            p.copy_(flat.reshape(p.shape))
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
        masks[k] = flat.reshape(p.shape).to(p.device)
    return Mask(masks)


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
            masks[k] = flat.reshape(s.shape)
        return Mask(masks)
    names = list(scores)
    flat = torch.cat([scores[k].flatten().float().cpu() for k in names])
    keep = int(round(density * flat.numel()))
    chosen = torch.zeros(flat.numel(), dtype=torch.bool)
    chosen[torch.topk(flat, keep, sorted=False).indices] = True
    masks, i = {}, 0
    for k in names:
        n = scores[k].numel()
        masks[k] = chosen[i:i + n].reshape(scores[k].shape).to(scores[k].device)
        i += n
    return Mask(masks)
