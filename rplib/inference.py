"""What an unstructured random mask buys at inference: measured size and latency on CPU.

* :func:`export` -- a deep copy of a masked network in which every masked ``Linear``,
  ``Conv1d`` and ``Conv2d`` is replaced by a module holding its kept weights as a
  ``torch.sparse_csr`` matrix (:class:`SparseLinear`, :class:`SparseConv`); convolutions are
  lowered to ``unfold`` (im2col) followed by a CSR x dense product. Everything else (batch norm,
  activations, pooling, residual additions) is left as it is, so the forward semantics are the
  dense masked network's.
* :func:`byte_counts` -- per-layer and total storage of the masked weights: dense fp32, CSR,
  bitmask + values, and zlib-compressed (measured).
* :func:`time_interleaved`, :func:`latency`, :func:`layer_latency`, :func:`layer_sweep` --
  wall-clock times per repeat, dense and sparse interleaved so that machine drift hits both.

Backend. ``torch.sparse`` CSR products on CPU call MKL's sparse BLAS in the standard PyTorch
wheels; the CSR here uses **int32** indices (MKL's native index type; with int64 the same
product was measurably slower). Alternatives checked on PyPI: ``torchao`` (0.18) ships 2:4
semi-structured and Triton block-sparse kernels, both for CUDA, nothing for unstructured CPU
inference; ``sparse_dot_mkl`` wraps the same MKL routines for scipy matrices; ``scipy.sparse``
is single-threaded. None would measure something different enough to justify a dependency.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
import zlib
from collections.abc import Callable, Sequence
from contextlib import contextmanager

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from . import models
from .models import prunable_parameters
from .masks import Mask, random_mask
from .sparsity import layerwise_densities

__all__ = ["INDEX_DTYPE", "SUPPORTED_TYPES", "NETWORKS", "REFERENCE_LAYERS", "CLAIM_SETTING", "build_masked",
           "claim_effects", "SparseLinear", "SparseConv", "export",
           "byte_counts", "num_threads", "time_interleaved", "latency", "layer_latency", "layer_sweep",
           "crossover_density"]

INDEX_DTYPE = torch.int32
SUPPORTED_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d)
_SUPPORTED_NAMES = ", ".join(t.__name__ for t in SUPPORTED_TYPES)


def _csr(weight: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """CSR matrix (rows = output units) of exactly the kept entries of ``weight``, whatever their values."""
    w = weight.detach().reshape(weight.shape[0], -1).to(torch.float32)
    k = keep.reshape(weight.shape[0], -1).to(device=w.device, dtype=torch.bool)
    crow = torch.zeros(w.shape[0] + 1, dtype=torch.int64, device=w.device)
    crow[1:] = torch.cumsum(k.sum(1), 0)
    col = k.nonzero()[:, 1]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow.to(INDEX_DTYPE), col.to(INDEX_DTYPE), w[k].contiguous(), tuple(w.shape),
                                       check_invariants=True)


class SparseLinear(nn.Module):
    """``y = x W^T + b`` with ``W`` a CSR matrix of shape (out_features, in_features)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.register_buffer("weight", weight)
        self.register_buffer("bias", None if bias is None else bias.detach().clone())
        self.out_features, self.in_features = weight.shape

    @classmethod
    def from_dense(cls, layer: nn.Linear, keep: torch.Tensor) -> SparseLinear:
        return cls(_csr(layer.weight, keep), layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        y = (self.weight @ x.reshape(-1, self.in_features).T).T
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, nnz={self.weight._nnz()}"


class SparseConv(nn.Module):
    """A 1-D or 2-D convolution (groups=1, zero padding) as ``unfold`` then CSR x columns.

    ``weight`` is the CSR matrix of shape (out_channels, in_channels * prod(kernel_size)); 1-D
    convolutions run as 2-D ones of height 1.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, dims: int, kernel_size: tuple[int, ...],
                 stride: tuple[int, ...], padding: tuple[int, ...], dilation: tuple[int, ...]):
        super().__init__()
        self.register_buffer("weight", weight)
        self.register_buffer("bias", None if bias is None else bias.detach().clone())
        self.dims = dims
        pad2 = (lambda t, one: (one, *t) if dims == 1 else tuple(t))
        self.kernel_size, self.stride = pad2(kernel_size, 1), pad2(stride, 1)
        self.padding, self.dilation = pad2(padding, 0), pad2(dilation, 1)
        self.out_channels = weight.shape[0]

    @classmethod
    def from_dense(cls, name: str, layer: nn.Conv1d | nn.Conv2d, keep: torch.Tensor) -> SparseConv:
        _check_conv(name, layer)
        padding = (0,) * len(layer.kernel_size) if layer.padding == "valid" else layer.padding
        return cls(_csr(layer.weight, keep), layer.bias, len(layer.kernel_size), layer.kernel_size, layer.stride,
                   padding, layer.dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dims == 1:
            x = x.unsqueeze(2)
        n, _, h, w = x.shape
        cols = F.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)  # (N, C*kh*kw, L)
        size = [(s + 2 * p - d * (k - 1) - 1) // st + 1 for s, p, d, k, st in
                zip((h, w), self.padding, self.dilation, self.kernel_size, self.stride)]
        y = self.weight @ cols.transpose(0, 1).reshape(cols.shape[1], -1)  # (out, N*L)
        y = y.reshape(self.out_channels, n, -1).transpose(0, 1)
        if self.bias is not None:
            y = y + self.bias[:, None]
        return y.reshape(n, self.out_channels, *size[2 - self.dims:])

    def extra_repr(self) -> str:
        k = self.kernel_size[2 - self.dims:]
        return f"{self.out_channels}, kernel_size={k}, stride={self.stride}, nnz={self.weight._nnz()}"


def _check_conv(name: str, layer: nn.Module) -> None:
    if layer.groups != 1:
        raise ValueError(f"layer {name!r} ({type(layer).__name__}) has groups={layer.groups}; only groups=1 "
                         "convolutions can be exported")
    if layer.padding_mode != "zeros":
        raise ValueError(f"layer {name!r} ({type(layer).__name__}) has padding_mode={layer.padding_mode!r}; "
                         "only 'zeros' can be exported")
    if layer.padding == "same":
        raise ValueError(f"layer {name!r} ({type(layer).__name__}) has padding='same'; give integer padding to export")


def _masked_modules(model: nn.Module, mask: Mask) -> dict[str, nn.Module]:
    """The module owning each masked weight, checked for export before anything is copied."""
    if not isinstance(mask, Mask):
        raise TypeError(f"mask must be an rplib.sparsity.Mask, got {type(mask).__name__}")
    if not prunable_parameters(model):
        raise ValueError(f"{type(model).__name__} has no prunable layer (no {_SUPPORTED_NAMES} weight); "
                         "nothing to export")
    mask.check_fits(model)
    modules = dict(model.named_modules())
    out = {}
    for pname in mask.masks:
        name = pname.removesuffix("weight").removesuffix(".")
        layer = modules[name]
        if type(layer) not in SUPPORTED_TYPES:
            raise ValueError(f"layer {name or '<root>'!r} is a {type(layer).__name__} holding a masked weight; "
                             f"supported types: {_SUPPORTED_NAMES}")
        if not isinstance(layer, nn.Linear):
            _check_conv(name or "<root>", layer)
        out[name] = layer
    return out


def export(model: nn.Module, mask: Mask) -> nn.Module:
    """A sparse inference copy of ``model`` (in eval mode): each masked Conv/Linear replaced by its CSR twin.

    Exactly the weights kept by ``mask`` are stored, whatever their values (pruned weights are
    dropped even if the model holds nonzero values there). Raises ``ValueError`` for a model with
    no prunable layer, a mask that does not fit, or a masked layer that cannot be exported.
    """
    layers = _masked_modules(model, mask)
    sparse = {name: (SparseLinear.from_dense(layer, mask.masks[_pname(name)]) if isinstance(layer, nn.Linear)
                     else SparseConv.from_dense(name, layer, mask.masks[_pname(name)]))
              for name, layer in layers.items()}
    if "" in sparse:  # the model is itself one masked layer
        return sparse[""].eval()
    out = copy.deepcopy(model).eval()
    for name, module in sparse.items():
        parent, _, child = name.rpartition(".")
        setattr(out.get_submodule(parent), child, module)
    return out


def _pname(module_name: str) -> str:
    return f"{module_name}.weight" if module_name else "weight"


# --------------------------------------------------------------------------- sizes


def byte_counts(model: nn.Module, mask: Mask, level: int = 6) -> pd.DataFrame:
    """Bytes needed to store the masked weights, one row per masked layer and a ``total`` row.

    Columns: ``n`` (weights), ``kept``, ``density``, and bytes for

    * ``dense``: ``4 n`` (fp32);
    * ``csr``: ``4 kept`` values + ``4 kept`` column indices + ``4 (rows + 1)`` row pointers
      (int32 indices, :data:`INDEX_DTYPE`; rows = output units/channels);
    * ``bitmask``: ``ceil(n / 8)`` (one bit per weight) + ``4 kept`` values;
    * ``dense_zlib`` / ``csr_zlib``: measured length of ``zlib.compress(..., level)`` of the dense
      masked fp32 weight (zeros included) and of the CSR arrays (values, column indices, row
      pointers, raw little-endian bytes). The default ``level`` 6 is zlib's and gzip's default;
      level 9 took about 7x longer on a masked dense 1024x3072 weight for a file about 10% smaller.

    Biases and batch-norm parameters are not counted (they are never pruned).
    """
    if level not in range(10):
        raise ValueError(f"zlib level must be an integer 0..9, got {level!r}")
    layers = _masked_modules(model, mask)
    rows = []
    for name, layer in layers.items():
        keep = mask.masks[_pname(name)].cpu()
        w = layer.weight.detach().cpu().to(torch.float32) * keep
        csr = _csr(w, keep)
        n, kept = keep.numel(), int(keep.sum())
        arrays = [csr.values(), csr.col_indices(), csr.crow_indices()]
        rows.append({
            "layer": name or "<root>", "type": type(layer).__name__, "n": n, "kept": kept, "density": kept / n,
            "dense": 4 * n,
            "csr": sum(a.numel() * a.element_size() for a in arrays),
            "bitmask": math.ceil(n / 8) + 4 * kept,
            "dense_zlib": len(zlib.compress(w.numpy().tobytes(), level)),
            "csr_zlib": len(zlib.compress(b"".join(a.numpy().tobytes() for a in arrays), level)),
        })
    df = pd.DataFrame(rows).set_index("layer")
    total = df.drop(columns=["type", "density"]).sum()
    df.loc["total"] = {**total.to_dict(), "type": "", "density": total["kept"] / total["n"]}
    return df.astype({c: "int64" for c in ["n", "kept", "dense", "csr", "bitmask", "dense_zlib", "csr_zlib"]})


# --------------------------------------------------------------------------- latency


@contextmanager
def num_threads(n: int):
    """Run the block with ``torch.set_num_threads(n)``, restoring the previous setting afterwards."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"threads must be an integer >= 1, got {n!r}")
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def time_interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 3,
                     min_time: float = 2e-3) -> dict[str, list[float]]:
    """Seconds per call of each function, one value per repeat, with the functions interleaved.

    After ``warmup`` untimed calls of each, every repeat times ``calls`` back-to-back calls of
    each function in turn (the order rotates from one repeat to the next), where ``calls`` is the
    same for all functions and chosen so that the fastest one runs for at least ``min_time``
    seconds per repeat (``time.perf_counter``).
    """
    if not fns:
        raise ValueError("time_interleaved needs at least one function to time")
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an integer >= 1, got {repeats!r}")
    names = list(fns)
    single = {}
    for k in names:
        for _ in range(warmup):
            fns[k]()
        t = time.perf_counter()
        fns[k]()
        single[k] = time.perf_counter() - t
    calls = max(1, math.ceil(min_time / max(min(single.values()), 1e-9)))
    out: dict[str, list[float]] = {k: [] for k in names}
    for r in range(repeats):
        for k in names[r % len(names):] + names[:r % len(names)]:
            f = fns[k]
            t = time.perf_counter()
            for _ in range(calls):
                f()
            out[k].append((time.perf_counter() - t) / calls)
    return out


def _paired(times: dict[str, list[float]], **key) -> list[dict]:
    """Rows (one per repeat and sparse variant): dense and sparse seconds and ln(t_dense / t_sparse)."""
    rows = []
    for variant, ts in times.items():
        if variant == "dense":
            continue
        for r, (td, ts_) in enumerate(zip(times["dense"], ts)):
            rows.append(key | {"variant": variant, "repeat": r, "dense_s": td, "sparse_s": ts_,
                               "log_speedup": math.log(td / ts_)})
    return rows


def _input(in_shape: Sequence[int], batch: int, seed: int = 0) -> torch.Tensor:
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be an integer >= 1, got {batch!r}")
    return torch.randn(batch, *in_shape, generator=torch.Generator().manual_seed(seed))


def latency(model: nn.Module, masks: dict[str, Mask], in_shape: Sequence[int], batch: int, threads: int,
            repeats: int, min_time: float = 2e-3) -> pd.DataFrame:
    """End-to-end forward time of the dense ``model`` and of its sparse export under each mask, interleaved.

    ``masks`` maps a label (e.g. the density) to a mask; the dense model is timed once, alongside
    all of them. One row per label and repeat: ``dense_s``, ``sparse_s``, ``log_speedup``
    (``ln(dense_s / sparse_s)``, > 0 when sparse is faster), with ``batch`` and ``threads``.
    """
    if "dense" in masks:
        raise ValueError("'dense' is reserved for the dense model; label the masks otherwise (e.g. by density)")
    dense = copy.deepcopy(model).eval()
    sparse = {k: export(model, m) for k, m in masks.items()}
    x = _input(in_shape, batch)
    with num_threads(threads), torch.inference_mode():
        fns = {"dense": lambda: dense(x)} | {k: (lambda s=s: s(x)) for k, s in sparse.items()}
        times = time_interleaved(fns, repeats, min_time=min_time)
    return pd.DataFrame(_paired(times, batch=batch, threads=threads))


def layer_latency(model: nn.Module, mask: Mask, in_shape: Sequence[int], batch: int, threads: int, repeats: int,
                  min_time: float = 2e-3) -> pd.DataFrame:
    """Per masked layer: the dense layer and its sparse twin timed, interleaved, on the input it sees in ``model``.

    One row per layer and repeat with ``layer``, ``type``, ``density``, ``dense_s``, ``sparse_s``,
    ``log_speedup``, ``batch`` and ``threads``.
    """
    layers = _masked_modules(model, mask)
    sparse = export(model, mask)
    inputs: dict[str, torch.Tensor] = {}
    hooks = [layer.register_forward_pre_hook(lambda m, a, name=name: inputs.__setitem__(name, a[0].detach()))
             for name, layer in layers.items()]
    try:
        was = model.training
        with torch.inference_mode():
            model.eval()
            model(_input(in_shape, batch))
    finally:
        model.train(was)
        for h in hooks:
            h.remove()
    rows = []
    with num_threads(threads), torch.inference_mode():
        for name, layer in layers.items():
            twin = sparse if name == "" else sparse.get_submodule(name)
            x = inputs[name]
            times = time_interleaved({"dense": lambda: layer(x), "sparse": lambda: twin(x)}, repeats, min_time=min_time)
            d = mask.layer_densities()[_pname(name)]
            rows += _paired(times, layer=name, type=type(layer).__name__, density=d, batch=batch, threads=threads)
    return pd.DataFrame(rows).drop(columns="variant")


#: Single layers of the book's networks, with the input shape they see (one example): name -> (build, shape).
REFERENCE_LAYERS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "Linear 3072->1024 (MLP)": (lambda: nn.Linear(3072, 1024), (3072,)),
    "Conv1d 32->32 k3 s2, L=20 (cnn1d)": (lambda: nn.Conv1d(32, 32, 3, 2, 1, bias=False), (32, 20)),
    "Conv2d 16->16 3x3, 32x32 (ResNet stage 1)": (lambda: nn.Conv2d(16, 16, 3, 1, 1, bias=False), (16, 32, 32)),
    "Conv2d 64->64 3x3, 8x8 (ResNet stage 3)": (lambda: nn.Conv2d(64, 64, 3, 1, 1, bias=False), (64, 8, 8)),
    "Conv2d 512->512 3x3, 2x2 (VGG block 5)": (lambda: nn.Conv2d(512, 512, 3, 1, 1, bias=False), (512, 2, 2)),
}


def layer_sweep(layers: Sequence[str], densities: Sequence[float], batches: Sequence[int], threads: int,
                repeats: int, seed: int = 0, min_time: float = 2e-3) -> pd.DataFrame:
    """Time each :data:`REFERENCE_LAYERS` layer dense and at each density (random mask, exact count), per batch.

    One row per layer, batch, density and repeat, as :func:`latency` (``variant`` = the density).
    """
    bad = [name for name in layers if name not in REFERENCE_LAYERS]
    if bad:
        raise ValueError(f"unknown layer(s) {bad}; valid layers: {', '.join(REFERENCE_LAYERS)}")
    rows = []
    for name in layers:
        build, shape = REFERENCE_LAYERS[name]
        torch.manual_seed(seed)
        layer = build()
        masks = {d: random_mask(layer, {"weight": d}, seed=seed) for d in densities}
        for batch in batches:
            df = latency(layer, masks, shape, batch, threads, repeats, min_time=min_time)
            rows.append(df.rename(columns={"variant": "density"}).assign(layer=name))
    return pd.concat(rows, ignore_index=True)


def crossover_density(df: pd.DataFrame) -> float:
    """The highest tested density at which sparse is faster (median ``log_speedup`` > 0) at it and every lower one.

    ``df`` holds rows of one configuration with columns ``density`` and ``log_speedup``; ``nan``
    when sparse is not faster even at the lowest tested density.
    """
    med = df.groupby("density")["log_speedup"].median().sort_index()
    faster = (med > 0).to_numpy()
    n = len(faster) if faster.all() else int(np.argmin(faster))
    return float(med.index[n - 1]) if n else math.nan


#: The book's networks timed end to end, with their input shapes: name -> options of :func:`rplib.models.build`.
#: ``mlp`` is the Fantastic Weights CIFAR-10 MLP 3072-1024-512-10; ``cnn1d`` sees MNIST-1D inputs (1, 40).
NETWORKS: dict[str, dict] = {
    "mlp": {"in_shape": (3, 32, 32), "hidden": (1024, 512)},
    "cnn1d": {"in_shape": (1, 40)},
    "resnet20": {"in_shape": (3, 32, 32)},
    "resnet56": {"in_shape": (3, 32, 32)},
    "vgg19": {"in_shape": (3, 32, 32)},
}

#: The setting of the claim ``sparse_faster_at_005`` (:data:`rplib.claims.CLAIMS`), fixed before measuring.
CLAIM_SETTING = {"network": "resnet20", "density": 0.05, "scheme": "erk", "batch": 1, "threads": 1}


def build_masked(network: str, densities: Sequence[float], seed: int = 0, scheme: str = "erk",
                 num_classes: int = 10) -> tuple[nn.Module, dict[float, Mask]]:
    """A :data:`NETWORKS` network (eval mode, weights seeded by ``seed``) and one random mask per density.

    The masks are drawn with :func:`rplib.masks.random_mask` from ``scheme`` densities; the
    network's weights are left dense (timing does not depend on their values).
    """
    if network not in NETWORKS:
        raise ValueError(f"unknown network {network!r}; valid networks: {', '.join(NETWORKS)}")
    torch.manual_seed(seed)
    model = models.build(network, num_classes, **NETWORKS[network]).eval()
    return model, {d: random_mask(model, layerwise_densities(model, d, scheme), seed=seed) for d in densities}


def claim_effects(repeats: int, seed: int = 0, min_time: float = 2e-3) -> pd.DataFrame:
    """Per-repeat ``log_speedup`` of the :data:`CLAIM_SETTING`, dense and sparse interleaved (see :func:`latency`)."""
    c = CLAIM_SETTING
    model, masks = build_masked(c["network"], [c["density"]], seed, c["scheme"])
    return latency(model, masks, NETWORKS[c["network"]]["in_shape"], c["batch"], c["threads"], repeats, min_time)
