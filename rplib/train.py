"""One run: data + model + sparsity (+ DST) -> trained network and metrics, cached in the run store.

:func:`run` trains only when the store has no finished result for the config's hash; an
unfinished run directory is resumed from its last epoch checkpoint and ends with exactly the
metrics of an uninterrupted run on CPU (every epoch's randomness derives from ``(seed, epoch)``).
The test set is evaluated once, after the final epoch; nothing is selected on it.

Reproducibility: every run trains with a fixed number of intra-op threads (``RPLIB_THREADS``,
default 1), whatever machine or executor it runs on, and records it in its metrics. On CPU the
same config, seed, torch version and thread count give bit-identical masks and metrics; the
parallelism of a grid comes from running several runs at once (:mod:`rplib.executors`), not from
threads inside one run. On GPU, masks are identical and metrics agree up to the non-determinism
of CUDA kernels and of bf16 autocast (:class:`FastPath`).

Training health: a config that cannot train is refused with one line (:class:`TrainingError`) before
anything is written: a batch larger than the training split (no optimizer step), a network with fewer
than :data:`MIN_PRUNABLE_WEIGHTS` prunable weights, a network that cannot take the dataset's inputs.
A run whose training or test loss becomes non-finite (diverged) ends with a :class:`TrainingError` too:
no ``metrics.json`` is written, so no reader of the store (:meth:`Result.load`, :func:`run_grid` and the
chapters' frames, the plan's epoch times) ever sees it as a result; the last finite epoch's checkpoint
stays, and a rerun diverges again; so does a run whose validation loss or any other metric becomes non-finite.
A checkpoint, like a dense run's rewind weights, records its run's hash, epoch and parameter shapes; it is resumed
only by that run, and a lottery or hybrid ticket takes its dense pre-training only from files of that dense run
(:func:`_dense_pretraining`). Ctrl-C ends a run with :class:`RunInterrupted`, keeping the last checkpoint.

A grid of runs is :func:`rplib.grid.run_grid`, one layer above.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import dataclasses
import functools
import os
import pickle
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm  # bars only on a terminal; tqdm.auto warns inside kernels without ipywidgets

from . import data as rdata
from . import distributed as rdist
from . import evaluate as revaluate
from . import pruning
from .config import RunConfig
from .dst import DynamicSparsity
from .masks import Mask, random_mask
from .models import build, prunable_parameters
from .sparsity import layerwise_densities
from .store import RunDir, StoreError, _non_finite, atomic_torch_save, atomic_write_json, default_root, read_json

__all__ = ["run", "Result", "FastPath", "resolve_device", "count_flops", "run_threads", "show_progress", "time_epoch",
           "TrainingError", "RunInterrupted", "MIN_PRUNABLE_WEIGHTS", "trained_network"]

_REQUIRED_METRICS = ("test_accuracy", "test_loss", "density", "epochs", "hash")
_CHECKPOINT_KEYS = ("model", "optimizer", "mask", "initial_mask", "dst", "history", "epoch", "step", "hash", "shapes")
_REWIND_KEYS = ("model", "epoch", "step", "hash", "shapes")
#: how a diverged run's message names its losses (any other metric by its key)
_LOSS_NAMES = {"train_loss": "training loss", "val_loss": "validation loss", "test_loss": "test loss"}

#: the fewest prunable (Conv/Linear) weights a trained network may have: below it (e.g. ``model.width=1e-9``,
#: a network of a few dozen weights) a network is too small to be pruned meaningfully at any density
MIN_PRUNABLE_WEIGHTS = 100


class TrainingError(ValueError):
    """A config that cannot train (refused before anything is written) or a run that diverged."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run: the last epoch checkpoint is kept and a rerun resumes from it."""


@dataclass
class Result:
    """A finished run: its config, final metrics, per-epoch history and directory."""

    config: RunConfig
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    path: Path

    @classmethod
    def load(cls, rd: RunDir) -> Result:
        """The finished run in ``rd``, refusing a config that does not hash to the directory or incomplete metrics."""
        recover = f"delete {rd.path} (rm -r) to train the run again"
        rd.check()
        try:
            config = RunConfig.from_dict(read_json(rd.config))
        except ValueError as e:
            raise StoreError(f"{rd.config}: not a valid config ({e}); {recover}") from None
        if config.hash != rd.hash:
            raise StoreError(f"{rd.config} hashes to {config.hash}, not to its directory {rd.hash}: the file was "
                             f"edited or belongs to another run; {recover}")
        metrics = read_json(rd.metrics)
        missing = [k for k in _REQUIRED_METRICS if not isinstance(metrics, dict) or k not in metrics]
        if missing:
            raise StoreError(f"{rd.metrics} lacks {', '.join(missing)}: delete that file to re-run the evaluation "
                             f"from the last checkpoint, or {recover}")
        if metrics["hash"] != rd.hash:
            raise StoreError(f"{rd.metrics} belongs to run {metrics['hash']}, not {rd.hash}; {recover}")
        return cls(config, metrics, read_json(rd.history), rd.path)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' asked for but no CUDA GPU is available; use device 'cpu' or 'auto'")
    return torch.device(name)


@dataclass(frozen=True)
class FastPath:
    """The trainer's speed choices for accelerators; none is part of a run's config or hash.

    ``channels_last``: networks of image data (inputs of shape (C, H, W)) train in the channels_last
    memory format and each 4-D batch is converted as it comes; ``bf16``: the forward passes of
    training and of the accuracy evaluation run under bfloat16 autocast (weights, gradients and the
    optimizer stay float32). :meth:`resolve` switches both on for a CUDA device and off otherwise,
    unless ``RPLIB_FAST_PATH`` says otherwise: ``auto`` (the default), ``on``, ``off``, or a comma list
    of ``channels_last`` and ``bf16`` (tests switch them on on the CPU). A run that trains with either
    on records it in its metrics (``fast_path``); on the CPU its metrics then differ from those of the
    default path under the same hash, as a GPU run's do.

    Masks do not depend on it: a run draws its mask (scores, tickets' magnitudes, sanity checks) before
    converting the network, and scores are computed in float32 on a contiguous copy
    (:mod:`rplib.scores`); the dense trainings of lottery and hybrid tickets are training, and use it.
    The data follows the device, not these settings: bundles are resident on the run's device, and
    streamed ImageNet batches are pinned and copied without blocking on CUDA only (no-ops on the CPU).
    """

    channels_last: bool = False
    bf16: bool = False

    @classmethod
    def resolve(cls, device: torch.device, setting: str | None = None) -> FastPath:
        """The fast path for ``device`` under ``setting`` (default: ``$RPLIB_FAST_PATH``, else ``auto``)."""
        text = os.environ.get("RPLIB_FAST_PATH", "auto") if setting is None else setting
        words = [w.strip() for w in text.split(",")]
        if words in (["auto"], ["on"], ["off"]):
            on = {"auto": device.type == "cuda", "on": True, "off": False}[words[0]]
            return cls(channels_last=on, bf16=on)
        if not set(words) <= {"channels_last", "bf16"}:
            raise ValueError(f"RPLIB_FAST_PATH must be one of auto, on, off or a comma list of channels_last, bf16; "
                             f"got {text!r}")
        return cls(channels_last="channels_last" in words, bf16="bf16" in words)

    @property
    def names(self) -> list[str]:
        """The choices switched on, e.g. ``["channels_last", "bf16"]``."""
        return [name for name in ("channels_last", "bf16") if getattr(self, name)]

    def prepare(self, model: nn.Module, in_shape: Sequence[int]) -> nn.Module:
        """``model`` (in place) in the channels_last memory format when it is on and the inputs are images."""
        if self.channels_last and len(in_shape) == 3:
            model.to(memory_format=torch.channels_last)
        return model

    def batch(self, x: torch.Tensor) -> torch.Tensor:
        """A batch of inputs in the memory format the network trains in."""
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def autocast(self, device: torch.device) -> torch.autocast:
        """The autocast region of forward passes on ``device``: bf16 when on, disabled otherwise."""
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16)


def run_threads() -> int:
    """The intra-op thread count every run trains with: ``RPLIB_THREADS`` (default 1)."""
    text = os.environ.get("RPLIB_THREADS", "1")
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"RPLIB_THREADS must be an integer >= 1, got {text!r}")
    cores = os.cpu_count() or 1
    if int(text) > cores:
        raise ValueError(f"RPLIB_THREADS={text} is more than the {cores} CPU cores of this machine, which would "
                         f"only slow the run down; use at most {cores} (default 1)")
    return int(text)


@contextlib.contextmanager
def _intra_op_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _shapes(model: nn.Module) -> dict[str, list[int]]:
    """The shape of every parameter and buffer of ``model``, as a checkpoint records them."""
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def _load_checkpoint(rd: RunDir, device: torch.device, model: nn.Module, epochs: int,
                     steps_per_epoch: int) -> dict[str, Any] | None:
    """The last epoch checkpoint of an unfinished run (tensors and plain data only: ``weights_only``).

    It is used only if it is this run's: its hash is the run directory's, its epoch lies in
    ``1..epochs`` with ``steps_per_epoch`` steps each, and its parameter shapes are ``model``'s.
    """
    if not rd.checkpoint.is_file():
        return None
    return _load_verified(rd.checkpoint, _CHECKPOINT_KEYS, device, rd.hash, model, epochs, steps_per_epoch,
                          f"delete it to restart this unfinished run from scratch (rm {rd.checkpoint})")


def _load_verified(path: Path, keys: Sequence[str], device: torch.device, run_hash: str, model: nn.Module, epochs: int,
                   steps_per_epoch: int | None, remedy: str, exact: bool = False) -> dict[str, Any]:
    """The checkpoint or rewind weights at ``path`` (tensors and plain data only: ``weights_only``), holding ``keys``,
    if :func:`_checkpoint_mismatch` finds it to be run ``run_hash``'s; else a one-line :class:`StoreError` naming the
    file, what is wrong and ``remedy``."""
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except (EOFError, RuntimeError, pickle.UnpicklingError, OSError, ValueError) as e:
        problem = str(e).splitlines()[0] if str(e) else type(e).__name__
    else:
        missing = [k for k in keys if not isinstance(ckpt, dict) or k not in ckpt]
        problem = f"lacks {', '.join(missing)}" if missing else _checkpoint_mismatch(ckpt, run_hash, model, epochs,
                                                                                    steps_per_epoch, exact)
        if problem is None:
            return ckpt
    raise StoreError(f"{path} cannot be used ({problem}): {remedy}")


def _checkpoint_mismatch(ckpt: dict[str, Any], run_hash: str, model: nn.Module, epochs: int,
                         steps_per_epoch: int | None, exact: bool = False) -> str | None:
    """Why ``ckpt`` is not a checkpoint of this run after one of its epochs ``1..epochs`` (``exact``: after epoch
    ``epochs`` itself, a finished run's last or a rewind point) of ``steps_per_epoch`` steps each (None: its step
    is not checked), or None."""
    if ckpt["hash"] != run_hash:
        return f"it belongs to run {ckpt['hash']}, not {run_hash}"
    epoch, step = ckpt["epoch"], ckpt["step"]
    if not isinstance(epoch, int) or not (epoch == epochs if exact else 1 <= epoch <= epochs):
        return f"its epoch {epoch!r} is not {epochs}" if exact else f"its epoch {epoch!r} is not in 1..{epochs}"
    if steps_per_epoch is not None and step != epoch * steps_per_epoch:
        return f"its step {step!r} is not {epoch} epochs of {steps_per_epoch} steps"
    expected = _shapes(model)
    found = {k: list(v.shape) for k, v in ckpt["model"].items()} if isinstance(ckpt["model"], dict) else {}
    for recorded in (ckpt["shapes"], found):
        if recorded != expected:
            diff = sorted(k for k in expected.keys() | recorded.keys() if expected.get(k) != recorded.get(k))
            return (f"its parameter shapes differ from this run's network ({diff[0]}: {recorded.get(diff[0])} "
                    f"instead of {expected.get(diff[0])})")
    return None


def trained_network(result: Result) -> nn.Module:
    """The finished run's network with its final weights, on the CPU in eval mode, from the last epoch checkpoint
    in ``result``'s run directory; a checkpoint of another run, of an earlier epoch or of other shapes is refused
    with a one-line :class:`StoreError`."""
    cfg = result.config
    in_shape, num_classes = rdata.input_spec(cfg.data)
    model = build(cfg.model.name, num_classes, in_shape=in_shape, **cfg.model.options())
    path = Path(result.path) / "checkpoint.pt"
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        if ckpt["hash"] != cfg.hash or ckpt["epoch"] != cfg.optim.epochs:
            raise ValueError(f"it holds epoch {ckpt['epoch']!r} of run {ckpt['hash']}, not epoch {cfg.optim.epochs} "
                             f"of run {cfg.hash}")
        model.load_state_dict(ckpt["model"])
    except (OSError, EOFError, RuntimeError, pickle.UnpicklingError, ValueError, KeyError, TypeError) as e:
        problem = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise StoreError(f"{path} holds no final network of this run ({problem})") from None
    return model.eval()


def _preflight(cfg: RunConfig) -> None:
    """Refuse, with one :class:`TrainingError` line and before anything is written, a config that cannot train:
    a batch larger than the training split, a network below :data:`MIN_PRUNABLE_WEIGHTS` prunable weights, or
    one that cannot take the dataset's inputs (built and run on the ``meta`` device: no memory, no compute)."""
    d, m = cfg.data, cfg.model
    rdata.require_files(d)
    n_train = rdata.split_sizes(d)["train"]
    if cfg.optim.batch_size > n_train:
        raise TrainingError(f"optim.batch_size={cfg.optim.batch_size} is larger than the {n_train} training examples "
                            f"of {d.name}: every epoch would take no optimizer step; use optim.batch_size <= {n_train}")
    in_shape, num_classes = rdata.input_spec(d)
    try:
        with torch.random.fork_rng(devices=[]), torch.device("meta"):
            model = build(m.name, num_classes, in_shape=in_shape, **m.options())
            model.eval()(torch.empty(2, *in_shape))
    except (RuntimeError, ValueError) as e:
        raise TrainingError(f"model.name={m.name!r} cannot take the {d.name} inputs of shape {tuple(in_shape)} "
                            f"({str(e).splitlines()[0]}); choose a network made for them") from None
    weights = sum(p.numel() for p in prunable_parameters(model).values())
    if weights < MIN_PRUNABLE_WEIGHTS:
        raise TrainingError(f"model {m.name} with width {m.width:g} has {weights} prunable weights, fewer than the "
                            f"floor of {MIN_PRUNABLE_WEIGHTS}; increase model.width (or model.hidden)")


def show_progress(progress: bool | None) -> bool:
    """``progress`` if given, else whether to draw progress bars: on a terminal, outside CI."""
    if progress is not None:
        return progress
    return sys.stderr.isatty() and not os.environ.get("CI")


def _rng(seed: int, *salt: int) -> torch.Generator:
    """A private generator for one purpose of one run: ``seed`` mixed with ``salt`` (epoch, purpose...)."""
    digest = hashlib.sha256(repr((seed, *salt)).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF)


# --------------------------------------------------------------------------- FLOPs and parameters


@torch.no_grad()
def count_flops(model: nn.Module, in_shape: Sequence[int], mask: Mask | None, device: torch.device) -> dict[str, int]:
    """Multiply-accumulates of one forward pass through Conv/Linear layers, dense and with ``mask``.

    A layer's MACs are (weights) x (output positions); the sparse count uses the kept weights.
    """
    macs: dict[str, int] = {}
    names = {mod: f"{n}.weight" for n, mod in model.named_modules()}
    prunable = prunable_parameters(model)

    def hook(mod, inp, out):
        positions = out[0].numel() // out.shape[1] if out.dim() > 2 else 1
        macs[names[mod]] = positions

    handles = [mod.register_forward_hook(hook) for mod in model.modules() if names.get(mod) in prunable]
    was_training = model.training
    model.eval()
    model(torch.zeros(1, *in_shape, device=device))
    model.train(was_training)
    for h in handles:
        h.remove()
    dense = sum(prunable[k].numel() * p for k, p in macs.items())
    sparse = sum((int(mask.masks[k].sum()) if mask and k in mask.masks else prunable[k].numel()) * p
                 for k, p in macs.items())
    return {"flops_dense": int(dense), "flops_sparse": int(sparse)}


def _param_counts(model: nn.Module, mask: Mask | None) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    pruned = mask.numel() - mask.kept() if mask else 0
    return {"params_dense": int(total), "params_sparse": int(total - pruned)}


# --------------------------------------------------------------------------- the training loop


class _Trainer:
    def __init__(self, cfg: RunConfig, bundle: rdata.DataBundle, device: torch.device, fast: FastPath | None = None):
        self.cfg, self.bundle, self.device = cfg, bundle, device
        self.fast = fast if fast is not None else FastPath.resolve(device)
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.optim.label_smoothing)
        self.steps_per_epoch = self.steps(bundle.num_examples("train"), cfg.optim.batch_size)

    @staticmethod
    def steps(examples: int, batch_size: int) -> int:
        """Optimizer steps per epoch: with drop_last every step sees a full batch."""
        return max(1, examples // batch_size)

    def optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        o = self.cfg.optim
        return torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum, nesterov=o.nesterov,
                               weight_decay=o.weight_decay)

    def train_batches(self, *salt: int) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        """One shuffled, augmented pass over the training split, its randomness from ``(seed, *salt)``."""
        return self.bundle.batches("train", self.cfg.optim.batch_size, shuffle=True, augment=self.cfg.data.augment,
                                   generator=_rng(self.cfg.seed, *salt), drop_last=True)

    def epoch(self, model, opt, epoch: int, step: int, dyn: DynamicSparsity | None,
              batches: Iterable[tuple[torch.Tensor, torch.Tensor]], ranks: rdist.Ranks = rdist.SINGLE):
        """One epoch over ``batches``; returns (train loss, train accuracy, last step).

        With several ``ranks``, ``batches`` are this rank's shards: loss and accuracy are summed over
        ranks, and the masks are checked to be identical on every rank after each DST update.
        """
        o = self.cfg.optim
        model.train()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device)
        seen = 0
        for i, (x, y) in enumerate(batches):
            step += 1
            for group in opt.param_groups:
                group["lr"] = o.lr_at(epoch + i / self.steps_per_epoch)
            x = self.fast.batch(x)
            with self.fast.autocast(self.device):
                out = model(x)
                loss = self.loss_fn(out, y)
            opt.zero_grad(set_to_none=False)
            loss.backward()  # under DDP, .grad holds the gradient averaged over ranks once this returns
            if dyn is not None:
                updates = len(dyn.log)
                dyn.before_step(step)
            opt.step()
            if dyn is not None:
                dyn.after_step(step)
                if len(dyn.log) != updates:
                    ranks.assert_identical(dyn.mask.masks, f"the masks after the DST update at step {step}")
            loss_sum += loss.detach() * len(y)
            correct += (out.detach().argmax(1) == y).sum()
            seen += len(y)
        if ranks.distributed:
            loss_sum, correct, seen = ranks.all_reduce_sum(
                torch.stack([loss_sum.double(), correct.double(), torch.tensor(seen, dtype=torch.float64,
                                                                               device=self.device)]))
        return float(loss_sum) / max(float(seen), 1), float(correct) / max(float(seen), 1), step

    @torch.no_grad()
    def accuracy(self, model, split: str) -> tuple[float, float]:
        """(accuracy, mean loss) on a split, model in eval mode."""
        model.eval()
        loss_sum, correct, n = 0.0, 0, 0
        for x, y in self.bundle.batches(split, 1000):
            with self.fast.autocast(self.device):
                out = model(self.fast.batch(x)).float()
            loss_sum += float(nn.functional.cross_entropy(out, y, reduction="sum"))
            correct += int((out.argmax(1) == y).sum())
            n += len(y)
        return correct / n, loss_sum / n

    def train_dense_copy(self, model: nn.Module, mask: Mask | None, epochs: int, rewind_epoch: int, salt: int,
                         ranks: rdist.Ranks = rdist.SINGLE) -> tuple[nn.Module, dict[str, torch.Tensor]]:
        """Train a copy of ``model`` (with ``mask`` if given) for ``epochs``; return it and its state at ``rewind_epoch``.

        Without a mask the copy trains exactly as the dense run of the same config does (same batches,
        ``salt`` unused), so :func:`_dense_pretraining` may take it from the store instead.

        With several ``ranks`` the copy trains data-parallel like the run itself (each rank its shard of
        every global batch), so its weights, and the mask drawn from them, are the same on every rank.
        """
        net = self.fast.prepare(copy.deepcopy(model), self.bundle.in_shape)
        opt = self.optimizer(net)
        handle = mask.attach(net, opt) if mask is not None else None
        parallel = _data_parallel(net, ranks, self.device)
        rewind = copy.deepcopy(net.state_dict())
        step = 0
        for e in range(epochs):
            if e == rewind_epoch:
                rewind = copy.deepcopy(net.state_dict())
            # without a mask this is the dense run of the same config (its batches, epoch by epoch): the
            # pre-training a run store can hold once for every ticket of a network and seed
            batches = ranks.shard(self.train_batches(1, e) if mask is None else self.train_batches(2, salt, e))
            _, _, step = self.epoch(parallel, opt, e, step, None, batches, ranks)
        if handle is not None:
            handle.remove()
        return net, rewind


def time_epoch(cfg: RunConfig, steps: int = 20, warmup: int = 3) -> float:
    """Seconds of one epoch of ``cfg`` on this machine, from ``steps`` timed steps of its training loop.

    The config's network, batch size, device and thread count (``RPLIB_THREADS``) run
    :meth:`_Trainer.epoch` on :func:`rplib.data.synthetic` inputs of the dataset's shape and
    augmentation (no data files needed), with a random mask of the config's density when it is
    sparse; ``warmup`` untimed steps come first. The time per step is scaled to the training split's
    steps per epoch, and the validation pass is timed on the synthetic split and scaled to the real one.
    Not counted: loading the data, drawing the mask (a lottery ticket's dense trainings count as
    epochs, see :func:`rplib.cost.run_epochs`), DST updates and the final evaluation.
    """
    if steps < 1 or warmup < 0:
        raise ValueError(f"time_epoch needs steps >= 1 and warmup >= 0, got steps={steps}, warmup={warmup}")
    device = resolve_device(cfg.device)
    sizes = rdata.split_sizes(cfg.data)
    bs = cfg.optim.batch_size
    bundle = rdata.synthetic(cfg.data, max(bs * (steps + warmup), 1000), device)
    with _intra_op_threads(run_threads()), torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = build(cfg.model.name, bundle.num_classes, in_shape=bundle.in_shape, **cfg.model.options()).to(device)
        trainer = _Trainer(cfg, bundle, device)
        trainer.fast.prepare(model, bundle.in_shape)
        opt = trainer.optimizer(model)
        if cfg.sparsity.sparse:
            dens = layerwise_densities(model, cfg.sparsity.density, "uniform")
            random_mask(model, dens, seed=cfg.seed).to(device).attach(model, opt)
        batches = iter(trainer.train_batches(0))
        trainer.epoch(model, opt, 0, 0, None, (next(batches) for _ in range(warmup)))
        t0 = time.perf_counter()
        trainer.epoch(model, opt, 0, 0, None, (next(batches) for _ in range(steps)))
        seconds = (time.perf_counter() - t0) / steps * trainer.steps(sizes["train"], bs)
        if sizes["val"]:
            t0 = time.perf_counter()
            trainer.accuracy(model, "val")
            seconds += (time.perf_counter() - t0) * sizes["val"] / bundle.num_examples("val")
    return seconds


def _data_parallel(model: nn.Module, ranks: rdist.Ranks, device: torch.device) -> nn.Module:
    """``model`` wrapped in DistributedDataParallel when this process is one of several ranks, else ``model``.

    DDP broadcasts rank 0's weights and buffers now and (BatchNorm running statistics) at every forward;
    batch statistics stay per rank (no SyncBatchNorm), as with the per-GPU batches of the papers' code.
    """
    if not ranks.distributed:
        return model
    return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


def _pruning_batches(cfg: RunConfig, bundle: rdata.DataBundle) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Class-balanced batches from the training split (``prune_samples_per_class`` per class), corrupted if asked."""
    sp = cfg.sparsity
    x, y = bundle.train
    g = _rng(cfg.seed, 3)
    out = []
    for b in range(sp.prune_batches):
        idx = []
        perm = torch.randperm(len(y), generator=g).to(y.device)
        for c in range(bundle.num_classes):
            idx.append(perm[y[perm] == c][: sp.prune_samples_per_class])
        idx = torch.cat(idx)
        xb, yb = rdata.corrupt(x[idx], y[idx], sp.prune_data, bundle.num_classes, seed=cfg.seed * 1000 + b)
        out.append((xb, yb))
    return out


def _build_model(cfg: RunConfig, bundle: rdata.DataBundle, seed: int) -> nn.Module:
    """The config's network on the CPU, initialised from ``seed`` (the global random state is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build(cfg.model.name, bundle.num_classes, in_shape=bundle.in_shape, **cfg.model.options())


#: A dense run keeps its weights after each of its first REWIND_EPOCHS_KEPT epochs (``weights_epoch<k>.pt``) for
#: the tickets that rewind to them (:func:`_dense_pretraining`); a ticket rewinding later trains its own copy.
REWIND_EPOCHS_KEPT = 2


def pretraining_config(cfg: RunConfig) -> RunConfig:
    """The dense run a lottery or hybrid ticket ``cfg`` is drawn from: the same network, data, recipe and seed
    without a mask (Frankle et al. 2020; Su et al. 2020 train the dense network first, then prune and rewind)."""
    return dataclasses.replace(cfg, sparsity=type(cfg.sparsity)(), dst=type(cfg.dst)())


def _dense_pretraining(cfg: RunConfig, model: nn.Module, trainer: _Trainer, rewind_epoch: int, root: Path,
                       ranks: rdist.Ranks) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """The trained dense network a ticket of ``cfg`` is drawn from, and its weights at ``rewind_epoch``.

    Both come from the run store's dense run :func:`pretraining_config` (trained there first if it is not
    finished, so every ticket, density and sanity check of one network and seed shares one pre-training).
    The same training inline (:meth:`_Trainer.train_dense_copy`, the dense run's own batches) gives the same
    weights on CPU; it is used for data-parallel runs and rewind epochs past :data:`REWIND_EPOCHS_KEPT`.
    """
    if ranks.distributed or rewind_epoch > REWIND_EPOCHS_KEPT:
        return trainer.train_dense_copy(model, None, cfg.optim.epochs, rewind_epoch, 0, ranks)
    dense = pretraining_config(cfg)
    run(dense, root, progress=False)
    stored = _stored_pretraining(dense, root, model, trainer.steps_per_epoch, rewind_epoch, trainer.device)
    if stored is None:  # a store written without its rewind points
        return trainer.train_dense_copy(model, None, cfg.optim.epochs, rewind_epoch, 0, ranks)
    trained = copy.deepcopy(model)
    trained.load_state_dict(stored[0])
    return trained, stored[1] if rewind_epoch else copy.deepcopy(model.state_dict())


def _stored_pretraining(dense: RunConfig, root: Path, model: nn.Module, steps_per_epoch: int | None, rewind_epoch: int,
                        device: torch.device) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None] | None:
    """The final weights of the store's finished dense run ``dense`` and its weights after ``rewind_epoch`` (None for
    epoch 0), or None when the store lacks that rewind point. Each file is used only if it records run ``dense``'s
    hash, the final epoch (the rewind epoch) of ``steps_per_epoch`` steps each (None: steps not checked) and
    ``model``'s parameter shapes; any other file (another run's, one of another epoch, rewind weights written before
    they recorded their run) is refused with a one-line :class:`StoreError` naming it."""
    rd = RunDir(root, dense.hash)
    if rewind_epoch and not rd.rewind_weights(rewind_epoch).is_file():
        return None
    load = functools.partial(_load_verified, device=device, run_hash=rd.hash, model=model,
                             steps_per_epoch=steps_per_epoch, exact=True,
                             remedy=f"it is not the dense pre-training this lottery or hybrid ticket is drawn from; "
                                    f"remove the dense run's directory (rm -r {rd.path}) to train it again")
    final = load(rd.checkpoint, _CHECKPOINT_KEYS, epochs=dense.optim.epochs)["model"]
    if not rewind_epoch:
        return final, None
    return final, load(rd.rewind_weights(rewind_epoch), _REWIND_KEYS, epochs=rewind_epoch)["model"]


def _check_stored_pretraining(cfg: RunConfig, root: Path) -> None:
    """Refuse, before anything of the ticket is written, a lottery or hybrid ticket ``cfg`` whose finished dense
    pre-training in the store is not that run's (:func:`_stored_pretraining`, on a network on the ``meta`` device).
    The steps are checked only once the data are loaded (:func:`_dense_pretraining`): a dataset's files may hold
    another number of examples than :func:`rplib.data.split_sizes` knows before."""
    dense = pretraining_config(cfg)
    sp = cfg.sparsity
    if sp.method not in ("lottery", "hybrid") or sp.rewind_epoch > REWIND_EPOCHS_KEPT \
            or not RunDir(root, dense.hash).finished():
        return
    in_shape, num_classes = rdata.input_spec(cfg.data)
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        model = build(cfg.model.name, num_classes, in_shape=in_shape, **cfg.model.options())
    _stored_pretraining(dense, root, model, None, sp.rewind_epoch, torch.device("cpu"))


def _make_mask(cfg: RunConfig, model: nn.Module, trainer: _Trainer, bundle: rdata.DataBundle,
               ranks: rdist.Ranks = rdist.SINGLE, root: Path | None = None) -> tuple[Mask | None, nn.Module]:
    """The mask of ``cfg.sparsity`` on ``model`` (which holds the initial weights); returns (mask, model to train).

    The method and sanity check are :func:`rplib.pruning.prune`'s; lottery and hybrid tickets take their
    dense pre-training from the run store under ``root`` (:func:`_dense_pretraining`; trained inline without
    a ``root``) and pre-train data-parallel over ``ranks``.
    """
    if not cfg.sparsity.sparse:
        return None, model

    def train_dense(net: nn.Module, mask: Mask | None, rewind_epoch: int, salt: int):
        if mask is None and root is not None:
            return _dense_pretraining(cfg, net, trainer, rewind_epoch, root, ranks)
        return trainer.train_dense_copy(net, mask, cfg.optim.epochs, rewind_epoch, salt, ranks)

    context = pruning.PruneContext(
        seed=cfg.seed,
        pruning_batches=lambda: _pruning_batches(cfg, bundle),
        train_dense=train_dense,
        fresh_model=lambda seed: _build_model(cfg, bundle, seed))
    mask = pruning.prune(model, cfg.sparsity, context)
    return mask.to(next(model.parameters()).device), model


def _initial_network(cfg: RunConfig, model: nn.Module, bundle: rdata.DataBundle, trainer: _Trainer,
                     ranks: rdist.Ranks = rdist.SINGLE, ckpt: dict[str, Any] | None = None,
                     root: Path | None = None) -> tuple[nn.Module, Mask | None]:
    """The network a run trains and its mask (None when dense): ``model`` (freshly initialised, float32, on the
    trainer's device) and the mask drawn on it (or read from ``ckpt``), before the trainer's fast path converts
    the network."""
    if ckpt is None:
        mask, model = _make_mask(cfg, model, trainer, bundle, ranks, root)
    else:
        mask = Mask(ckpt["mask"]).to(trainer.device) if ckpt["mask"] is not None else None
    return trainer.fast.prepare(model, bundle.in_shape), mask


def _train(cfg: RunConfig, rd: RunDir, device: torch.device, progress: bool,
           fast: FastPath | None = None) -> Result | None:
    """Train ``cfg`` into ``rd``; under torchrun this is one rank of a data-parallel run, and only rank 0
    evaluates, writes files and returns the result (the other ranks return None). The mask is drawn
    before ``fast`` (default: :meth:`FastPath.resolve`) converts the network."""
    ranks, device = rdist.setup(device)
    rdist.shard_size(cfg.optim.batch_size, ranks.world_size)
    t0 = time.perf_counter()
    if not ranks.is_main:
        ranks.barrier()  # rank 0 loads (and, if asked to, downloads) the data first
    bundle = rdata.load(cfg.data, device)
    if ranks.is_main:
        ranks.barrier()
    trainer = _Trainer(cfg, bundle, device, fast)
    o = cfg.optim

    model = _build_model(cfg, bundle, cfg.seed).to(device)
    ckpt = _load_checkpoint(rd, device, model, o.epochs, trainer.steps_per_epoch)
    model, mask = _initial_network(cfg, model, bundle, trainer, ranks, ckpt, rd.root)
    opt = trainer.optimizer(model)
    if mask is not None:
        mask.check_fits(model)
        ranks.broadcast_(mask.masks)  # drawn once: every rank trains with rank 0's mask
        ranks.assert_identical(mask.masks, "the initial masks")
        mask.attach(model, opt, zero_state=cfg.dst.reset_momentum if cfg.dst.enabled else True)
        if ckpt is None and ranks.is_main:
            atomic_write_json(rd.path / "initial_mask_report.json", [dataclasses.asdict(r) for r in mask.report()])
        if ckpt is None:
            initial_mask = mask.state_dict()
    total_steps = o.epochs * trainer.steps_per_epoch
    dyn = DynamicSparsity(cfg.dst, mask, model, opt, total_steps, cfg.seed) if cfg.dst.enabled else None

    flow_batch = None
    if cfg.eval.grad_flow and ranks.is_main:
        flow_batch = next(bundle.batches("train", min(o.batch_size, bundle.num_examples("train"))))
    history: list[dict[str, Any]] = []
    start, step = 0, 0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        if dyn is not None:
            dyn.load_state_dict(ckpt["dst"])
        history, start, step = ckpt["history"], ckpt["epoch"], ckpt["step"]
        initial_mask = ckpt["initial_mask"]
    elif flow_batch is not None:
        history.append({"epoch": 0, "grad_flow": revaluate.grad_flow(model, mask, *flow_batch)})

    net = _data_parallel(model, ranks, device)
    bar = tqdm(range(start, o.epochs), desc=f"run {rd.hash}", disable=not progress, leave=False)
    for epoch in bar:
        te = time.perf_counter()
        loss, acc, step = trainer.epoch(net, opt, epoch, step, dyn, ranks.shard(trainer.train_batches(1, epoch)),
                                        ranks)
        row: dict[str, Any] = {"epoch": epoch + 1, "train_loss": loss, "train_accuracy": acc,
                               "lr": opt.param_groups[0]["lr"], "time": time.perf_counter() - te}
        if bundle.val is not None and ranks.is_main:
            row["val_accuracy"], row["val_loss"] = trainer.accuracy(model, "val")
        if flow_batch is not None:
            row["grad_flow"] = revaluate.grad_flow(model, mask, *flow_batch)
        if dyn is not None:
            row["itop_rate"] = dyn.itop_rate()
        _check_finite(rd, row, epoch + 1, o.lr)
        history.append(row)
        bar.set_postfix(loss=f"{loss:.3f}", acc=f"{acc:.3f}")
        if not ranks.is_main:
            continue
        if mask is None and epoch < REWIND_EPOCHS_KEPT:  # a ticket's rewind point (_dense_pretraining)
            atomic_torch_save({"model": model.state_dict(), "epoch": epoch + 1, "step": step, "hash": rd.hash,
                               "shapes": _shapes(model)}, rd.rewind_weights(epoch + 1))
        atomic_torch_save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                           "mask": mask.state_dict() if mask is not None else None,
                           "initial_mask": initial_mask if mask is not None else None,
                           "dst": dyn.state_dict() if dyn is not None else None,
                           "history": history, "epoch": epoch + 1, "step": step, "hash": rd.hash,
                           "shapes": _shapes(model)}, rd.checkpoint)
    if not ranks.is_main:
        return None

    test_acc, test_loss = trainer.accuracy(model, "test")
    _check_finite(rd, {"test_loss": test_loss}, o.epochs, o.lr)
    metrics: dict[str, Any] = {"test_accuracy": test_acc, "test_loss": test_loss,
                               "final_train_loss": history[-1]["train_loss"] if history else None,
                               "density": mask.density() if mask is not None else 1.0,
                               "epochs": o.epochs, "steps": step, "device": str(device),
                               "torch": torch.__version__, "threads": torch.get_num_threads(), "hash": rd.hash,
                               "world_size": ranks.world_size, "process_group": ranks.backend}
    if trainer.fast.names:
        metrics["fast_path"] = trainer.fast.names
    if bundle.val is not None:
        metrics["val_accuracy"] = history[-1]["val_accuracy"]
    metrics |= _param_counts(model, mask)
    metrics |= count_flops(model, bundle.in_shape, mask, device)
    if dyn is not None:
        metrics["dst"] = dyn.summary()
        # every replaced weight differs in two positions (one dropped, one grown)
        changed = sum(int((mask.masks[k].cpu() != initial_mask[k]).sum()) for k in mask.masks) // 2
        metrics["dst"]["final_mask_changed_fraction"] = changed / max(mask.kept(), 1)
        atomic_write_json(rd.path / "dst_log.json", dyn.log)
    metrics |= revaluate.evaluate(model, bundle, cfg.data, cfg.eval, seed=cfg.seed)
    metrics["wall_time"] = time.perf_counter() - t0
    _check_finite(rd, metrics, o.epochs, o.lr)
    if mask is not None:
        atomic_write_json(rd.mask_report, [dataclasses.asdict(r) for r in mask.report()])
    atomic_write_json(rd.history, history)
    if not rd.config.is_file():  # the run directory was removed during the run
        atomic_write_json(rd.config, cfg.to_dict())
    atomic_write_json(rd.metrics, metrics)  # written last: its presence marks the run finished
    return Result(cfg, metrics, history, rd.path)


def _check_finite(rd: RunDir, values: dict[str, Any], epoch: int, lr: float) -> None:
    """A NaN or infinity among ``values`` (a loss, or any other metric of an epoch or of the run) ends the run as
    diverged, before strict JSON would refuse it: a :class:`TrainingError`, nothing stored as its result."""
    for key, value in values.items():
        bad = _non_finite(value, _LOSS_NAMES.get(key, key))
        if bad is not None:
            shown = value if isinstance(value, float) else "not finite"
            raise TrainingError(f"run {rd.hash} diverged: its {bad} is {shown} after epoch {epoch} (optim.lr="
                                f"{lr:g}); nothing is stored as its result; lower optim.lr")


def run(config: RunConfig, root: str | Path | None = None, progress: bool | None = None) -> Result:
    """The result of ``config``: read from the store if finished, else trained (resuming a checkpoint if any).

    Concurrent processes asking for the same run wait on a file lock instead of corrupting it. A config
    that cannot train raises :class:`TrainingError` before anything is written; Ctrl-C raises
    :class:`RunInterrupted`, the last epoch checkpoint kept for the next call to resume.
    """
    if not isinstance(config, RunConfig):
        raise TypeError(f"run() takes a RunConfig, got {type(config).__name__}")
    rd = RunDir(root if root is not None else default_root(), config.hash)
    device = resolve_device(config.device)  # before anything is written
    fast = FastPath.resolve(device)
    threads = run_threads()
    rd.check()
    ranks, _ = rdist.setup(device)
    if ranks.distributed:
        _preflight(config)
        with _intra_op_threads(threads):
            return _run_ranks(config, rd, device, show_progress(progress), ranks, fast)
    if rd.finished():
        return Result.load(rd)
    _preflight(config)
    _check_stored_pretraining(config, rd.root)
    with rd.lock():
        if rd.finished():
            return Result.load(rd)
        rd.remove_temporary_files()
        atomic_write_json(rd.config, config.to_dict())
        with _intra_op_threads(threads):
            try:
                return _train(config, rd, device, show_progress(progress), fast)
            except KeyboardInterrupt:
                kept = f"its checkpoint {rd.checkpoint} is kept" if rd.checkpoint.is_file() else "no epoch had ended"
                raise RunInterrupted(f"run {rd.hash} interrupted ({kept}), rerun to resume") from None


def _run_ranks(config: RunConfig, rd: RunDir, device: torch.device, progress: bool, ranks: rdist.Ranks,
               fast: FastPath) -> Result:
    """:func:`run` on one rank of a data-parallel run: rank 0 holds the lock and writes every file, the
    other ranks train their shards and wait at barriers; every rank returns rank 0's stored result."""
    with rd.lock() if ranks.is_main else contextlib.nullcontext():
        if not ranks.broadcast_object(rd.finished()):
            if ranks.is_main:
                rd.remove_temporary_files()
                atomic_write_json(rd.config, config.to_dict())
            ranks.barrier()  # no rank reads the run directory before rank 0 has written its config
            _train(config, rd, device, progress and ranks.is_main, fast)
        ranks.barrier()
    return Result.load(rd)
