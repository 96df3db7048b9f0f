"""One rank of a data-parallel test run, started by ``torchrun`` from tests/test_ddp.py.

Runs :func:`rplib.train.run` on the config in ``argv[1]`` (JSON) with the run store ``argv[2]``, and
records into ``argv[3]/rank<R>.pt`` what this rank saw: its mask when attached and after every DST
update, the number of examples it trained on in each epoch, the files it wrote, and the result's
metrics. Optional flags:

* ``--skew-seed``: ranks other than 0 draw their random mask from a different seed (as data-parallel
  code that seeds each rank differently would), so only sharing rank 0's mask keeps them identical;
* ``--no-broadcast``: rank 0's mask is not broadcast (the assertion must then stop the run);
* ``--keep-epoch E``: copy the checkpoint written after epoch ``E`` to ``argv[3]/epoch<E>.pt``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import torch

from rplib import distributed, pruning, store, train
from rplib.config import RunConfig
from rplib.dst import DynamicSparsity
from rplib.sparsity import Mask


def main(argv: list[str]) -> None:
    cfg = RunConfig.from_dict(json.loads(argv[1]))
    root, out = argv[2], Path(argv[3])
    rank = int(os.environ["RANK"])
    seen: dict = {"masks": [], "writes": []}

    attach = Mask.attach

    def recording_attach(self, model, optimizer, zero_state=True):
        seen["masks"].append(self.state_dict())
        return attach(self, model, optimizer, zero_state)

    Mask.attach = recording_attach

    update = DynamicSparsity.update

    def recording_update(self, step):
        record = update(self, step)
        if record is not None:
            seen["masks"].append(self.mask.state_dict())
        return record

    DynamicSparsity.update = recording_update

    seen["examples"] = []  # examples this rank trained on, per epoch (pre-training epochs included)
    epoch = train._Trainer.epoch

    def counting_epoch(self, model, opt, e, step, dyn, batches, ranks=distributed.SINGLE):
        seen["examples"].append(0)

        def counted():
            for x, y in batches:
                seen["examples"][-1] += len(y)
                yield x, y

        return epoch(self, model, opt, e, step, dyn, counted(), ranks)

    train._Trainer.epoch = counting_epoch

    atomic = store._atomic

    def recording_atomic(path, write):
        seen["writes"].append(Path(path).name)
        return atomic(path, write)

    store._atomic = recording_atomic

    if "--skew-seed" in argv and rank:
        random_mask = pruning.random_mask
        pruning.random_mask = lambda model, dens, seed: random_mask(model, dens, seed + 1000 * rank)
    if "--no-broadcast" in argv:
        distributed.Ranks.broadcast_ = lambda self, tensors: None
    if "--keep-epoch" in argv:
        keep = int(argv[argv.index("--keep-epoch") + 1])
        save = train.atomic_torch_save

        def keeping_save(obj, path):
            save(obj, path)
            if obj.get("epoch") == keep:
                shutil.copy(path, out / f"epoch{keep}.pt")

        train.atomic_torch_save = keeping_save

    try:
        result = train.run(cfg, root=root, progress=False)
    finally:
        distributed.teardown()
    torch.save(seen | {"metrics": result.metrics, "history": result.history}, out / f"rank{rank}.pt")


if __name__ == "__main__":
    main(sys.argv)
