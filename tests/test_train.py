import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from rplib import train
from rplib.config import ModelConfig, OptimConfig, RunConfig
from rplib.data import DataConfig
from rplib.dst import DSTConfig
from rplib.models import prunable_parameters
from rplib.store import RunDir


def small(**changes) -> RunConfig:
    """A run of a few seconds: MNIST-1D (2000 samples), cnn1d, 4 epochs."""
    cfg = RunConfig(
        data=DataConfig(name="mnist1d", num_samples=2000),
        model=ModelConfig(name="cnn1d"),
        optim=OptimConfig(epochs=4, batch_size=64, lr=0.05, milestones=(0.75,)),
        device="cpu",
    )
    return cfg.with_(changes)


def test_dense_cnn1d_learns(tmp_path):
    res = train.run(small(), root=tmp_path)
    assert res.metrics["test_accuracy"] > 0.4  # chance is 0.1
    assert len(res.history) == 4
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    assert res.metrics["density"] == 1.0
    assert res.metrics["params_sparse"] == res.metrics["params_dense"]
    rd = RunDir(tmp_path, small().hash)
    for f in (rd.config, rd.metrics, rd.history, rd.checkpoint):
        assert f.is_file()
    assert RunConfig.from_dict(json.loads(rd.config.read_text())) == small()


def test_static_sparse_keeps_pruned_weights_zero(tmp_path):
    cfg = small(**{"sparsity.method": "random", "sparsity.density": 0.2, "sparsity.scheme": "erk"})
    res = train.run(cfg, root=tmp_path)
    state = torch.load(res.path / "checkpoint.pt", weights_only=True)
    mask = state["mask"]
    assert all(torch.equal(mask[k], state["initial_mask"][k]) for k in mask)
    n_kept = sum(int(m.sum()) for m in mask.values())
    n_total = sum(m.numel() for m in mask.values())
    assert res.metrics["density"] == pytest.approx(n_kept / n_total)
    assert abs(n_kept - round(0.2 * n_total)) == 0
    for k, m in mask.items():
        w = state["model"][k]
        assert (w[~m] == 0).all()
        buf = [v for v in state["optimizer"]["state"].values() if v["momentum_buffer"].shape == w.shape]
        assert buf
    assert res.metrics["params_sparse"] < res.metrics["params_dense"]
    assert res.metrics["flops_sparse"] < res.metrics["flops_dense"]
    assert res.metrics["test_accuracy"] > 0.3


def test_deterministic_and_store_does_not_retrain(tmp_path):
    cfg = small(**{"sparsity.method": "random", "sparsity.density": 0.3})
    a = train.run(cfg, root=tmp_path / "a")
    b = train.run(cfg, root=tmp_path / "b")
    assert a.metrics["test_accuracy"] == b.metrics["test_accuracy"]
    assert a.metrics["test_loss"] == b.metrics["test_loss"]
    mtime = (a.path / "metrics.json").stat().st_mtime_ns
    again = train.run(cfg, root=tmp_path / "a")
    assert (a.path / "metrics.json").stat().st_mtime_ns == mtime
    assert again.metrics == a.metrics
    other = train.run(cfg.with_(seed=1), root=tmp_path / "a")
    assert other.path != a.path


def _kill_after_first_checkpoint(cfg_json: str, root: str) -> None:
    cfg = RunConfig.from_dict(json.loads(cfg_json))
    train.run(cfg, root=root)


def test_resume_after_kill_gives_identical_metrics(tmp_path):
    cfg = small(**{"sparsity.method": "random", "sparsity.density": 0.3, "optim.epochs": 6})
    ref = train.run(cfg, root=tmp_path / "ref")
    root = tmp_path / "killed"
    rd = RunDir(root, cfg.hash)
    code = ("import json,sys; from rplib.config import RunConfig; from rplib import train;"
            "train.run(RunConfig.from_dict(json.loads(sys.argv[1])), root=sys.argv[2])")
    proc = subprocess.Popen([sys.executable, "-c", code, json.dumps(cfg.to_dict()), str(root)])
    deadline = time.time() + 120
    while time.time() < deadline:
        if rd.checkpoint.is_file() and torch.load(rd.checkpoint, weights_only=True)["epoch"] >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not rd.finished(), "the run finished before it could be killed"
    resumed = train.run(cfg, root=root)
    assert resumed.metrics["test_accuracy"] == ref.metrics["test_accuracy"]
    assert resumed.metrics["test_loss"] == ref.metrics["test_loss"]
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in ref.history]


def test_half_written_run_dir_is_recovered(tmp_path):
    cfg = small()
    rd = RunDir(tmp_path, cfg.hash)
    rd.path.mkdir(parents=True)
    rd.config.write_text("{garbage")  # an interrupted write left junk; no metrics.json
    (rd.path / ".metrics.json.123.tmp").write_text("partial")
    res = train.run(cfg, root=tmp_path)
    assert rd.finished() and res.metrics["test_accuracy"] > 0.4
    assert RunConfig.from_dict(json.loads(rd.config.read_text())) == cfg


def test_concurrent_requests_train_once(tmp_path):
    cfg = small(**{"optim.epochs": 2})
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_kill_after_first_checkpoint, args=(json.dumps(cfg.to_dict()), str(tmp_path)))
             for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(180)
        assert p.exitcode == 0
    res = train.run(cfg, root=tmp_path)
    assert len(res.history) == 2 and res.metrics["test_accuracy"] > 0.2


@pytest.mark.parametrize("method,extra", [
    ("snip", {}), ("grasp", {}), ("synflow", {}),
    ("random", {"sparsity.scheme": "snip", "sparsity.prune_data": "random_labels"}),
    ("random", {"sparsity.sanity": "rearrange"}), ("random", {"sparsity.sanity": "shuffle"}),
    ("random", {"sparsity.sanity": "reinit"}),
    ("lottery", {"sparsity.lottery_rounds": 2, "optim.epochs": 2}),
    ("hybrid", {"sparsity.scheme": "smart_ratio", "optim.epochs": 2}),
])
def test_sparse_modes_hit_density(tmp_path, method, extra):
    cfg = small(**{"sparsity.method": method, "sparsity.density": 0.25, "optim.epochs": 2, **extra})
    res = train.run(cfg, root=tmp_path)
    report = json.loads((res.path / "mask_report.json").read_text())
    kept = sum(r["kept"] for r in report)
    total = sum(r["n"] for r in report)
    assert kept == round(0.25 * total)
    assert res.metrics["test_accuracy"] > 0.15


def test_dst_run_changes_topology_and_learns(tmp_path):
    cfg = small(**{"sparsity.method": "random", "sparsity.density": 0.2, "optim.epochs": 4})
    cfg = cfg.with_({"dst": DSTConfig(drop="magnitude", grow="gradient", alpha=0.3, update_period=10)})
    res = train.run(cfg, root=tmp_path)
    state = torch.load(res.path / "checkpoint.pt", weights_only=True)
    changed = sum(int((state["mask"][k] != state["initial_mask"][k]).sum()) for k in state["mask"])
    assert changed > 0
    for k in state["mask"]:
        assert int(state["mask"][k].sum()) == int(state["initial_mask"][k].sum())
    assert res.metrics["dst"]["n_updates"] > 0
    assert res.metrics["test_accuracy"] > 0.3
    assert (res.path / "dst_log.json").is_file()


def test_lr_schedules():
    o = OptimConfig(epochs=10, lr=0.1, milestones=(0.5, 0.75))
    assert o.lr_at(0) == 0.1 and o.lr_at(5) == pytest.approx(0.01) and o.lr_at(8) == pytest.approx(0.001)
    o = OptimConfig(epochs=160, milestones=(80, 120))
    assert o.lr_at(79.9) == 0.1 and o.lr_at(80) == pytest.approx(0.01)
    c = OptimConfig(epochs=10, schedule="cosine", warmup_epochs=2)
    assert c.lr_at(1) == pytest.approx(0.05) and c.lr_at(2) == pytest.approx(0.1) and c.lr_at(10) == pytest.approx(0)
    assert OptimConfig.preset("random_pruning_cifar").nesterov
    assert OptimConfig.preset("sanity_checking").batch_size == 64


def test_config_hash_and_roundtrip():
    cfg = small(**{"sparsity.method": "random", "sparsity.density": 0.1})
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.hash == RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))).hash
    assert cfg.hash != cfg.with_(seed=1).hash
    assert cfg.hash == cfg.with_(device="auto").hash  # where it runs is not what it is


@pytest.mark.parametrize("changes,match", [
    ({"sparsity.density": 1.5}, r"\(0, 1\]"),
    ({"sparsity.method": "magic"}, "valid choices: dense, random"),
    ({"sparsity.method": "random", "sparsity.scheme": "erkk"}, "valid choices: .*erk"),
    ({"model.name": "resnet21"}, "valid choices: .*resnet20"),
    ({"data.name": "mnist2d"}, "mnist1d"),
    ({"optim.epochs": 0}, "epochs"),
    ({"optim.schedule": "step"}, "multistep"),
    ({"optim.milestones": (0.5, 3)}, "milestones"),
    ({"sparsity.density": 0.5}, "method 'dense' needs density 1.0"),
    ({"sparsity.prune_data": "random_labels", "sparsity.method": "random"}, "data-dependent"),
    ({"device": "tpu"}, "valid choices: auto, cpu, cuda"),
    ({"seed": -1}, "seed"),
])
def test_bad_config(changes, match):
    with pytest.raises(ValueError, match=match):
        small(**changes)


def test_bad_paths_and_dst_without_mask():
    with pytest.raises(ValueError, match="unknown config path"):
        small(**{"sparsity.dens": 0.1})
    with pytest.raises(ValueError, match="unknown field"):
        RunConfig.from_dict({"optim": {"lr": 0.1, "epoch": 3}})
    with pytest.raises(ValueError, match="sparse starting mask"):
        small().with_({"dst": DSTConfig(drop="magnitude")})


def test_cli_train(tmp_path):
    cfgfile = tmp_path / "c.yaml"
    cfgfile.write_text("data: {name: mnist1d, num_samples: 1000}\nmodel: {name: cnn1d}\noptim: {epochs: 1, batch_size: 64}\n"
                       "device: cpu\n")
    env = dict(os.environ, RPLIB_RUNS=str(tmp_path / "runs"))
    out = subprocess.run([sys.executable, "-m", "rplib.cli", "train", "--config", str(cfgfile), "--set",
                          "sparsity.method=random", "--set", "sparsity.density=0.5", "--quiet"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "test accuracy" in out.stdout and str(tmp_path / "runs") in out.stdout
    bad = subprocess.run([sys.executable, "-m", "rplib.cli", "train", "--set", "sparsity.method=foo"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 2 and "valid choices" in bad.stderr


def test_model_pruned_layers_match_report(tmp_path):
    cfg = small(**{"sparsity.method": "random", "sparsity.density": 0.5, "optim.epochs": 1})
    res = train.run(cfg, root=tmp_path)
    from rplib.models import build

    names = [r["name"] for r in json.loads((res.path / "mask_report.json").read_text())]
    assert names == list(prunable_parameters(build("cnn1d", 10, in_shape=(1, 40))))


def test_tickets_share_one_dense_pre_training_from_the_store(tmp_path, monkeypatch):
    """A lottery or hybrid ticket takes its dense pre-training and rewind point from the store's dense run of the
    same network, data, recipe and seed (trained there once, whichever ticket comes first); the masks equal
    those of the same pre-training done inline, and a second ticket trains no dense network again."""
    base = RunConfig(data=DataConfig(name="mnist1d", num_samples=600), model=ModelConfig(name="mlp"),
                     optim=OptimConfig(epochs=3, batch_size=64), device="cpu")
    hybrid = base.with_(**{"sparsity.method": "hybrid", "sparsity.density": 0.2, "sparsity.scheme": "erk",
                           "sparsity.rewind_epoch": 1})
    lottery = hybrid.with_(**{"sparsity.method": "lottery", "sparsity.scheme": "uniform", "sparsity.lottery_rounds": 1,
                              "sparsity.sanity": "rearrange"})
    dense = train.pretraining_config(hybrid)
    assert dense == train.pretraining_config(lottery) and not dense.sparsity.sparse
    copies = []
    original = train._Trainer.train_dense_copy
    monkeypatch.setattr(train._Trainer, "train_dense_copy",
                        lambda self, *a, **k: copies.append(a[1]) or original(self, *a, **k))
    stored = train.run(hybrid, root=tmp_path / "store")
    assert RunDir(tmp_path / "store", dense.hash).finished() and not copies  # pre-trained as the dense run
    assert RunDir(tmp_path / "store", dense.hash).rewind_weights(1).is_file()
    train.run(lottery, root=tmp_path / "store")
    assert not copies  # the second ticket reused it
    monkeypatch.setattr(train, "_dense_pretraining", lambda cfg, net, trainer, rewind_epoch, root, ranks:
                        trainer.train_dense_copy(net, None, cfg.optim.epochs, rewind_epoch, 0, ranks))
    inline = train.run(hybrid, root=tmp_path / "inline")
    assert copies == [None]  # trained inline this time, with the dense run's own batches
    assert not RunDir(tmp_path / "inline", dense.hash).finished()
    masks = [torch.load(RunDir(r, hybrid.hash).checkpoint, weights_only=True)["initial_mask"]
             for r in (tmp_path / "store", tmp_path / "inline")]
    assert all(torch.equal(masks[0][k], masks[1][k]) for k in masks[0])
    assert inline.metrics["test_accuracy"] == stored.metrics["test_accuracy"]
