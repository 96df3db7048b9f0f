"""Data-parallel training across processes launched by ``torchrun``: ranks, sharding, shared masks.

One run on several devices: ``torchrun --nproc-per-node N -m rplib train ...`` starts N processes;
:func:`setup` joins them into one process group (NCCL on CUDA, each rank on ``cuda:LOCAL_RANK``;
Gloo on CPU) from the environment variables torchrun sets (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``). Without them, :func:`setup` returns
:data:`SINGLE` and nothing changes.

Masks must be drawn once and shared by every rank (REFERENCE.md section 5): :meth:`Ranks.broadcast_`
copies rank 0's tensors to every rank and :meth:`Ranks.assert_identical` compares a SHA-256
checksum of each rank's tensors and raises on every rank at once if any differs.
"""

from __future__ import annotations

import datetime
import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["Ranks", "SINGLE", "setup", "teardown", "shard_size", "checksum"]

TIMEOUT = datetime.timedelta(hours=1)  # rank 0 alone evaluates and writes files while the others wait
_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def shard_size(batch_size: int, world_size: int) -> int:
    """Examples per rank of a global batch of ``batch_size``; it must split evenly over the ranks."""
    if batch_size % world_size:
        raise ValueError(f"optim.batch_size {batch_size} (the global batch) does not split evenly over "
                         f"{world_size} ranks; choose a multiple of {world_size}")
    return batch_size // world_size


def checksum(tensors: Mapping[str, torch.Tensor]) -> int:
    """A 63-bit SHA-256 checksum of named tensors (names, shapes, dtypes and values, in sorted name order)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return int.from_bytes(h.digest()[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


@dataclass(frozen=True)
class Ranks:
    """This process's place in a data-parallel run: ``rank`` of ``world_size`` (``local_rank`` on its node).

    ``backend`` is the process group's (``nccl`` or ``gloo``), ``None`` outside torchrun: then every
    method is a no-op. ``device`` carries the tensors of collective operations (the rank's GPU under
    NCCL, the CPU under Gloo).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """Rank 0: the only rank that writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether this process is part of a process group (under torchrun, even with one process)."""
        return self.backend is not None

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.distributed:
            dist.barrier()

    def broadcast_object(self, obj):
        """Rank 0's ``obj`` (picklable), on every rank."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0, device=self.device)
        return box[0]

    @torch.no_grad()
    def broadcast_(self, tensors: Mapping[str, torch.Tensor]) -> None:
        """Overwrite every rank's ``tensors`` in place with rank 0's (same names and shapes everywhere)."""
        if not self.distributed:
            return
        for name in sorted(tensors):
            t = tensors[name]
            buf = t.to(self.device, torch.uint8 if t.dtype == torch.bool else t.dtype, copy=True)
            dist.broadcast(buf, src=0)
            t.copy_(buf.to(t.device, t.dtype))

    def assert_identical(self, tensors: Mapping[str, torch.Tensor], what: str) -> None:
        """Raise on every rank unless ``tensors`` are bitwise identical on all ranks (one all-gather of checksums)."""
        if not self.distributed:
            return
        mine = torch.tensor([checksum(tensors)], dtype=torch.int64, device=self.device)
        every = [torch.zeros_like(mine) for _ in range(self.world_size)]
        dist.all_gather(every, mine)
        sums = [int(s) for s in every]
        if len(set(sums)) > 1:
            raise RuntimeError(f"{what} differ across ranks (checksums by rank: {sums}); "
                               "every rank must hold rank 0's masks")

    def all_reduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        """The sum over ranks of ``values`` (a new tensor on ``values``' device)."""
        if not self.distributed:
            return values
        buf = values.to(self.device, copy=True)
        dist.all_reduce(buf)
        return buf.to(values.device)

    def shard(self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]
              ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """This rank's contiguous slice of every global batch: every rank sees the same global batch order."""
        for x, y in batches:
            per = shard_size(len(y), self.world_size)
            lo = self.rank * per
            yield x[lo:lo + per], y[lo:lo + per]


SINGLE = Ranks()


def _launched() -> bool:
    return all(k in os.environ for k in _ENV)


def setup(device: torch.device) -> tuple[Ranks, torch.device]:
    """Join the process group torchrun set up (if any) and return (ranks, this rank's training device).

    ``device`` is the resolved run device: ``cuda`` becomes ``cuda:LOCAL_RANK`` with NCCL, ``cpu`` uses
    Gloo. Under torchrun the group is joined even with one process (the data-parallel code path on one
    device); without torchrun's environment returns ``(SINGLE, device)``. Calling it again in the same
    process reuses the group.
    """
    if not _launched():
        return SINGLE, device
    rank, world, local = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK {local} has no GPU: this node has {torch.cuda.device_count()}; "
                             f"start at most that many processes per node")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        backend = "nccl"
    elif device.type == "cpu":
        backend = "gloo"
    else:
        raise ValueError(f"data-parallel training supports devices cuda and cpu, got {device.type!r}")
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=rank, world_size=world, timeout=TIMEOUT,
                                device_id=device if device.type == "cuda" else None)
    elif dist.get_backend() != backend or dist.get_world_size() != world:
        raise ValueError(f"a process group with backend {dist.get_backend()!r} and {dist.get_world_size()} ranks "
                         f"exists; this run needs {backend!r} with {world}")
    return Ranks(rank, world, local, device, backend), device


def teardown() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_initialized():
        dist.destroy_process_group()
