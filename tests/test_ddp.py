"""Data-parallel training on CPU: 2 Gloo ranks started by torchrun, bound to 127.0.0.1.

One launch of a sparse run with dynamic sparse training serves several tests (shared masks, DST
updates, files written, agreement with a single process); two more launches check that unshared
masks stop a run and that an interrupted run resumes to the same result.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from rplib import distributed, train
from rplib.config import ModelConfig, OptimConfig, RunConfig, SparsityConfig
from rplib.data import DataConfig
from rplib.dst import DSTConfig
from rplib.store import RunDir

TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]  # the torchrun command
WORKER = Path(__file__).with_name("ddp_worker.py")
REPO = Path(__file__).resolve().parents[1]

# Single process vs 2 ranks, same global batch: the gradients agree up to float rounding (a mean over
# 64 examples vs the average of two means over 32, summed in another order with another intra-op
# thread count), and the MLP has no BatchNorm, so per-rank batch statistics play no part. Measured:
# identical test metrics and a first-epoch train loss 2e-7 apart. Rounding differences can grow over
# the 75 SGD steps and flip a near-tie in the DST drop ranking, hence a tolerance above zero.
# (With BatchNorm, e.g. cnn1d, each rank normalises by its own 32 examples: the runs then differ by
# about 0.01-0.06 in these metrics, a different training run rather than rounding.)
TOLERANCE = 1e-3


def _cfg() -> RunConfig:
    """MLP on MNIST-1D (1200 samples), density 0.2, SNIP-drop / random-growth DST every 5 steps, 3 epochs."""
    return RunConfig(
        data=DataConfig(name="mnist1d", num_samples=1200),
        model=ModelConfig(name="mlp"),
        sparsity=SparsityConfig(method="random", density=0.2, scheme="erk"),
        dst=DSTConfig(drop="snip", grow="random", alpha=0.3, schedule="cosine", end_fraction=1.0, update_period=5),
        optim=OptimConfig(epochs=3, batch_size=64, lr=0.05, milestones=(0.75,)),
        device="cpu",
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(cfg: RunConfig, root: Path, out: Path, *flags: str) -> subprocess.CompletedProcess:
    out.mkdir(parents=True, exist_ok=True)
    # Gloo on loopback: its default, the address of the host name, may be another interface
    env = os.environ | {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    cmd = [*TORCHRUN, "--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
           str(WORKER), json.dumps(cfg.to_dict()), str(root), str(out), *flags]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)


@pytest.fixture(scope="module")
def ddp(tmp_path_factory):
    """The run of :func:`_cfg` on 2 ranks; ranks other than 0 draw their mask from another seed."""
    tmp = tmp_path_factory.mktemp("ddp")
    proc = _torchrun(_cfg(), tmp / "runs", tmp / "out", "--skew-seed", "--keep-epoch", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [torch.load(tmp / "out" / f"rank{r}.pt", weights_only=True) for r in range(2)]
    return tmp, ranks


def test_shard_size_and_shards_cover_the_global_batch():
    assert distributed.shard_size(64, 2) == 32
    with pytest.raises(ValueError, match="optim.batch_size 63 .* 2 ranks; choose a multiple of 2"):
        distributed.shard_size(63, 2)
    x, y = torch.arange(24.0).view(12, 2), torch.arange(12)
    parts = [list(distributed.Ranks(rank=r, world_size=3).shard([(x, y), (x + 1, y + 1)])) for r in range(3)]
    for b, (xb, yb) in enumerate([(x, y), (x + 1, y + 1)]):
        assert torch.equal(torch.cat([p[b][0] for p in parts]), xb)
        assert torch.equal(torch.cat([p[b][1] for p in parts]), yb)
    assert [len(p[0][1]) for p in parts] == [4, 4, 4]


def test_checksum_sees_every_value_name_and_dtype():
    a = {"w": torch.tensor([True, False, True]), "v": torch.zeros(2, 2)}
    base = distributed.checksum(a)
    assert base == distributed.checksum({k: t.clone() for k, t in a.items()})
    assert base != distributed.checksum(a | {"w": torch.tensor([True, True, False])})
    assert base != distributed.checksum(a | {"v": torch.zeros(2, 2, dtype=torch.float64)})
    assert base != distributed.checksum({"u": a["w"], "v": a["v"]})


@pytest.mark.slow
def test_masks_identical_on_both_ranks_at_start_and_after_every_dst_update(ddp):
    _, (r0, r1) = ddp
    assert len(r0["masks"]) == len(r1["masks"]) >= 5  # the initial mask and at least 4 DST updates
    for m0, m1 in zip(r0["masks"], r1["masks"]):
        assert m0.keys() == m1.keys()
        assert all(torch.equal(m0[k], m1[k]) for k in m0)
    first, last = r0["masks"][0], r0["masks"][-1]
    assert any(not torch.equal(first[k], last[k]) for k in first), "DST never changed the mask"
    assert r0["metrics"]["dst"]["n_updates"] == len(r0["masks"]) - 1


def test_rank0_mask_is_the_single_process_mask_and_only_rank0_writes(ddp):
    tmp, (r0, r1) = ddp
    assert r1["writes"] == []
    for name in ("config.json", "checkpoint.pt", "history.json", "metrics.json", "mask_report.json"):
        assert name in r0["writes"]
    rd = RunDir(tmp / "runs", _cfg().hash)
    ckpt = torch.load(rd.checkpoint, weights_only=True)
    assert all(torch.equal(ckpt["initial_mask"][k], r0["masks"][0][k]) for k in ckpt["initial_mask"])
    assert all(torch.equal(ckpt["mask"][k], r0["masks"][-1][k]) for k in ckpt["mask"])
    assert r0["metrics"] == r1["metrics"] == json.loads(rd.metrics.read_text())
    assert r0["metrics"]["world_size"] == 2 and r0["metrics"]["process_group"] == "gloo"


def test_ddp_metrics_close_to_single_process(ddp, tmp_path):
    _, (r0, _) = ddp
    single = train.run(_cfg(), root=tmp_path)
    assert single.metrics["world_size"] == 1 and single.metrics["process_group"] is None
    assert single.metrics["steps"] == r0["metrics"]["steps"]
    for key in ("test_accuracy", "test_loss", "final_train_loss"):
        assert r0["metrics"][key] == pytest.approx(single.metrics[key], abs=TOLERANCE), key
    # the first epoch, before rounding differences have grown, agrees more closely still
    assert r0["history"][0]["train_loss"] == pytest.approx(single.history[0]["train_loss"], abs=1e-5)


@pytest.mark.slow
def test_unshared_masks_stop_the_run(tmp_path):
    proc = _torchrun(_cfg(), tmp_path / "runs", tmp_path / "out", "--skew-seed", "--no-broadcast")
    assert proc.returncode != 0
    assert "the initial masks differ across ranks" in proc.stderr
    assert not RunDir(tmp_path / "runs", _cfg().hash).finished()


def test_resume_from_a_checkpoint_gives_the_same_result(ddp, tmp_path):
    src, (r0, _) = ddp
    cfg = _cfg()
    rd = RunDir(tmp_path / "runs", cfg.hash)
    rd.path.mkdir(parents=True)
    shutil.copy(RunDir(src / "runs", cfg.hash).config, rd.config)
    shutil.copy(src / "out" / "epoch1.pt", rd.checkpoint)  # interrupted after the first epoch
    ckpt = torch.load(rd.checkpoint, weights_only=True)
    assert ckpt["epoch"] == 1
    updates_before = len(ckpt["dst"]["log"])
    proc = _torchrun(cfg, tmp_path / "runs", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr[-3000:]
    resumed = torch.load(tmp_path / "out" / "rank0.pt", weights_only=True)
    assert len(resumed["masks"]) == 1 + r0["metrics"]["dst"]["n_updates"] - updates_before
    for key in ("test_accuracy", "test_loss", "final_train_loss"):
        assert resumed["metrics"][key] == r0["metrics"][key], key
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in r0["history"]]
    assert all(torch.equal(resumed["masks"][-1][k], r0["masks"][-1][k]) for k in r0["masks"][-1])


@pytest.mark.slow
def test_lottery_pretraining_is_data_parallel_and_draws_the_single_process_mask(tmp_path):
    """Lottery pre-training splits every global batch over the ranks like the run itself, instead of
    repeating the whole pre-training on each rank; its ticket equals the single-process one."""
    cfg = replace(_cfg(), dst=DSTConfig(),
                  sparsity=SparsityConfig(method="lottery", density=0.2, lottery_rounds=2, rewind_epoch=1))
    proc = _torchrun(cfg, tmp_path / "runs", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / "out" / f"rank{r}.pt", weights_only=True) for r in range(2))
    epochs = cfg.optim.epochs
    shard = r0["metrics"]["steps"] // epochs * cfg.optim.batch_size // 2
    # 2 rounds x 3 pre-training epochs, then the ticket's 3 epochs: each rank trains on half of every batch
    assert r0["examples"] == r1["examples"] == [shard] * (cfg.sparsity.lottery_rounds + 1) * epochs
    single = train.run(cfg, root=tmp_path / "single")
    ticket = torch.load(RunDir(tmp_path / "single", cfg.hash).checkpoint, weights_only=True)["initial_mask"]
    # the last attached mask is the ticket (the first is round 1's, attached for round 2's pre-training);
    # rounding differences could flip a near-tie in the magnitude ranking (measured: none)
    kept = r0["masks"][-1]
    assert all(torch.equal(kept[k], r1["masks"][-1][k]) for k in kept)
    agree = sum(int((kept[k] == ticket[k]).sum()) for k in kept) / sum(t.numel() for t in kept.values())
    assert agree > 0.999
    for key in ("test_accuracy", "test_loss", "final_train_loss"):
        assert r0["metrics"][key] == pytest.approx(single.metrics[key], abs=TOLERANCE), key


@pytest.mark.slow
def test_the_package_launches_with_python_m_and_torchrun_m(tmp_path):
    """``python -m rplib`` is the CLI; ``torchrun ... -m rplib train`` trains one run on 2 ranks and rank 0 alone
    reports (the form the README and the reproduce page give)."""
    env = os.environ | {"OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    shown = subprocess.run([sys.executable, "-m", "rplib", "config", "--set", "seed=3"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert shown.stdout.startswith(f"# run {RunConfig().with_({'seed': 3}).hash}")
    changes = {"data.num_samples": 300, "model.name": "mlp", "sparsity.method": "random", "sparsity.density": 0.2,
               "sparsity.scheme": "erk", "optim.epochs": 1, "optim.batch_size": 64, "device": "cpu"}
    sets = [a for k, v in changes.items() for a in ("--set", f"{k}={v}")]
    proc = subprocess.run([*TORCHRUN, "--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port",
                           str(_free_port()), "-m", "rplib", "train", "--root", str(tmp_path / "runs"), "--quiet",
                           *sets], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("test accuracy") == 1, proc.stdout  # rank 0 alone reports
    metrics = json.loads((RunDir(tmp_path / "runs", RunConfig().with_(changes).hash).metrics).read_text())
    assert metrics["world_size"] == 2 and metrics["process_group"] == "gloo"
