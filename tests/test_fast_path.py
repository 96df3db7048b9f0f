"""The GPU fast path (channels_last, bf16 autocast) switched on on the CPU: the same masks as the plain float32
path for every pruning method and sanity check, and a short run with DST, evaluation and export."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from rplib import data as rdata, inference, pruning, train
from rplib.config import ModelConfig, OptimConfig, RunConfig, SparsityConfig
from rplib.data import DataConfig
from rplib.dst import DSTConfig
from rplib.evaluate import EvalConfig
from rplib.masks import Mask
from rplib.models import build, prunable_parameters
from rplib.scores import score
from rplib.sparsity import layerwise_densities
from fakedata import write_cifar10

PLAIN = train.FastPath()
FAST = train.FastPath(channels_last=True, bf16=True)
CPU = torch.device("cpu")
MODEL = ModelConfig("resnet", width=0.25, depth=8)  # 7 convolutions (one a 1x1 projection) and a classifier


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread, as every run trains with (``RPLIB_THREADS``)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def bundle() -> rdata.DataBundle:
    """CIFAR-10-shaped random data cut to 8x8 images: 40 examples per split."""
    full = rdata.synthetic(DataConfig(name="cifar10"), 40)
    crop = (lambda split: (split[0][:, :, :8, :8].contiguous(), split[1]))
    return dataclasses.replace(full, in_shape=(3, 8, 8), train=crop(full.train), test=crop(full.test))


def config(**sparsity) -> RunConfig:
    return RunConfig(model=MODEL, data=DataConfig(name="cifar10"), optim=OptimConfig(epochs=1, batch_size=10),
                     sparsity=SparsityConfig(density=0.2, prune_samples_per_class=2, **sparsity), seed=5, device="cpu")


def initial(cfg: RunConfig, bundle: rdata.DataBundle, fast: train.FastPath) -> tuple[torch.nn.Module, Mask]:
    """What a run trains from: the network and mask of the trainer's own path under ``fast``."""
    return train._initial_network(cfg, train._build_model(cfg, bundle, cfg.seed), bundle,
                                  train._Trainer(cfg, bundle, CPU, fast))


def context(cfg: RunConfig, bundle: rdata.DataBundle) -> pruning.PruneContext:
    """A pruning context without dense training (for the methods and checks that need none)."""
    return pruning.PruneContext(seed=cfg.seed, pruning_batches=lambda: train._pruning_batches(cfg, bundle),
                                train_dense=None, fresh_model=lambda seed: train._build_model(cfg, bundle, seed))


def same_values(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def in_channels_last(model: torch.nn.Module) -> bool:
    """Every conv weight in channels_last (1x1 kernels are in both formats), some not in the contiguous one."""
    convs = [p for p in prunable_parameters(model).values() if p.dim() == 4]
    return (all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
            and any(not p.is_contiguous() for p in convs))


SCORED = [dict(method="random", scheme=s) for s in ("erk", "smart_ratio", "snip", "grasp")]
SCORED += [dict(method="random", scheme="synflow", scheme_options=(("iterations", 5),))]
SCORED += [dict(method=m) for m in ("snip", "grasp", "synflow")]
SCORED += [dict(method="grasp", scheme_options=(("grasp_variant", "rplib_v1"),))]
SCORED += [dict(method="snip", prune_data=c) for c in ("random_labels", "random_pixels", "half")]
SCORED += [dict(method=m, sanity=s) for m, s in (("random", "rearrange"), ("snip", "shuffle"), ("random", "reinit"))]


@pytest.mark.parametrize("sparsity", SCORED, ids=lambda s: "-".join(str(v) for v in s.values()))
def test_masks_and_initial_weights_do_not_depend_on_the_fast_path(bundle, sparsity):
    cfg = config(**sparsity)
    plain_model, plain_mask = initial(cfg, bundle, PLAIN)
    fast_model, fast_mask = initial(cfg, bundle, FAST)
    assert fast_mask == plain_mask
    assert fast_mask.kept() == round(0.2 * fast_mask.numel())
    assert same_values(fast_model, plain_model)
    assert in_channels_last(fast_model) and not in_channels_last(plain_model)


@pytest.mark.parametrize("criterion", ["snip", "grasp", "synflow"])
def test_scores_are_float32_on_a_channels_last_network_under_autocast(bundle, criterion):
    torch.manual_seed(0)
    plain = build(MODEL.name, 10, in_shape=(3, 8, 8), **MODEL.options())
    fast = FAST.prepare(build(MODEL.name, 10, in_shape=(3, 8, 8), **MODEL.options()), (3, 8, 8))
    fast.load_state_dict(plain.state_dict())
    x, y = bundle.train
    options = {"data": (x[:16], y[:16])} | ({"density": 0.2, "iterations": 5} if criterion == "synflow" else {})
    without_density = {k: v for k, v in options.items() if k != "density"}
    expected = score(plain, criterion, **options)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = score(fast, criterion, **options)
        densities = layerwise_densities(fast, 0.2, criterion, **without_density)
    assert all(got[k].dtype == torch.float32 and torch.equal(got[k], expected[k]) for k in expected)
    assert densities == layerwise_densities(plain, 0.2, criterion, **without_density)


@pytest.mark.parametrize("check", ["rearrange", "shuffle", "reinit"])
def test_sanity_checks_transform_a_channels_last_network_as_a_contiguous_one(bundle, check):
    cfg = config(method="random", scheme="erk", sanity=check)
    plain = train._build_model(cfg, bundle, 1)
    fast = FAST.prepare(train._build_model(cfg, bundle, 1), bundle.in_shape)
    mask = pruning.random_pruning(plain, cfg.sparsity, context(cfg, bundle))
    plain_mask = pruning.SANITY_CHECKS[check](Mask(mask.masks), plain, context(cfg, bundle))
    fast_mask = pruning.SANITY_CHECKS[check](Mask(mask.masks), fast, context(cfg, bundle))
    assert fast_mask == plain_mask
    assert same_values(fast, plain) and in_channels_last(fast)


@pytest.mark.parametrize("sparsity", [dict(method="lottery", lottery_rounds=2), dict(method="hybrid"),
                                      dict(method="hybrid", scheme="snip", sanity="shuffle"),
                                      dict(method="lottery", sanity="rearrange")],
                         ids=["lottery", "hybrid", "hybrid-snip-shuffle", "lottery-rearrange"])
def test_tickets_draw_the_float32_mask_from_the_same_dense_training(bundle, monkeypatch, sparsity):
    """A ticket's dense training is training and runs on the fast path; given the same trained weights,
    in channels_last, its mask and rewound weights are those of the plain path."""
    trained_on_fast_path = []
    dense_training = train._Trainer.train_dense_copy

    def plain_training_in_fast_layout(self, model, mask, *args, **kwargs):
        trained_on_fast_path.append(self.fast)
        plain = train._Trainer(self.cfg, self.bundle, self.device, PLAIN)
        net, rewind = dense_training(plain, model, mask, *args, **kwargs)
        return self.fast.prepare(net, self.bundle.in_shape), rewind

    monkeypatch.setattr(train._Trainer, "train_dense_copy", plain_training_in_fast_layout)
    cfg = config(**sparsity)
    plain_model, plain_mask = initial(cfg, bundle, PLAIN)
    fast_model, fast_mask = initial(cfg, bundle, FAST)
    assert trained_on_fast_path[-1] == FAST
    assert fast_mask == plain_mask and same_values(fast_model, plain_model)


def test_a_ticket_trains_its_dense_copy_on_the_fast_path(bundle, monkeypatch):
    formats = []
    epoch = train._Trainer.epoch

    def recording(self, model, *args, **kwargs):
        formats.append((self.fast, in_channels_last(model)))
        return epoch(self, model, *args, **kwargs)

    monkeypatch.setattr(train._Trainer, "epoch", recording)
    model, mask = initial(config(method="lottery"), bundle, FAST)
    assert formats == [(FAST, True)]  # one round of one epoch, in channels_last under bf16 autocast
    assert mask.kept() == round(0.2 * mask.numel()) and in_channels_last(model)


def test_a_run_with_dst_and_evaluation_on_the_fast_path(tmp_path, monkeypatch):
    write_cifar10(tmp_path / "data", per_batch=4, n_test=8)
    cfg = RunConfig(model=MODEL, data=DataConfig(name="cifar10", root=str(tmp_path / "data")),
                    optim=OptimConfig(epochs=2, batch_size=4),
                    sparsity=SparsityConfig(method="snip", density=0.3, sanity="shuffle", prune_samples_per_class=1),
                    dst=DSTConfig(drop="magnitude", grow="gradient", update_period=2),
                    eval=EvalConfig(ood=("gaussian",), calibration=True, attacks=("fgsm", "pgd"),
                                    epsilons=(0.0, 2 / 255), pgd_steps=2, attack_examples=8, grad_flow=True),
                    seed=2, device="cpu")
    monkeypatch.setenv("RPLIB_FAST_PATH", "on")
    fast = train.run(cfg, root=tmp_path / "fast", progress=False)
    monkeypatch.setenv("RPLIB_FAST_PATH", "off")
    plain = train.run(cfg, root=tmp_path / "plain", progress=False)
    assert fast.metrics["fast_path"] == ["channels_last", "bf16"] and "fast_path" not in plain.metrics
    assert fast.metrics["dst"]["n_updates"] == plain.metrics["dst"]["n_updates"] > 0
    assert fast.metrics["density"] == plain.metrics["density"]
    finite = [fast.metrics["test_loss"], fast.metrics["calibration"]["ece"], fast.metrics["ood"]["gaussian"]["auroc"],
              *fast.metrics["robustness"]["pgd"].values(), *(h["grad_flow"] for h in fast.history)]
    assert all(torch.isfinite(torch.tensor(v)) for v in finite)
    reports = [json.loads((r.path / "initial_mask_report.json").read_text()) for r in (fast, plain)]
    assert reports[0] == reports[1]


def test_export_of_a_channels_last_network(bundle):
    cfg = config(method="random", scheme="erk")
    plain = train._build_model(cfg, bundle, 3).eval()
    fast = FAST.prepare(train._build_model(cfg, bundle, 3), bundle.in_shape).eval()
    mask = pruning.random_pruning(plain, cfg.sparsity, context(cfg, bundle))
    x = bundle.test[0][:4]
    with torch.no_grad():
        want = inference.export(mask.apply_(plain), mask)(x)
        got = inference.export(mask.apply_(fast), mask)(FAST.batch(x))
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("setting", "device", "expected"), [
    (None, "cpu", PLAIN), (None, "cuda", FAST), ("auto", "cpu", PLAIN), ("on", "cpu", FAST), ("off", "cuda", PLAIN),
    ("bf16", "cpu", train.FastPath(bf16=True)), ("channels_last", "cuda", train.FastPath(channels_last=True)),
    ("channels_last, bf16", "cpu", FAST)])
def test_the_fast_path_follows_the_device_unless_set(monkeypatch, setting, device, expected):
    monkeypatch.delenv("RPLIB_FAST_PATH", raising=False)
    if setting is not None:
        monkeypatch.setenv("RPLIB_FAST_PATH", setting)
    assert train.FastPath.resolve(torch.device(device)) == expected


@pytest.mark.parametrize("setting", ["fast", "on,bf16", "", "channels_last,auto"])
def test_a_bad_fast_path_setting_is_refused_before_a_run_writes_anything(tmp_path, monkeypatch, setting):
    monkeypatch.setenv("RPLIB_FAST_PATH", setting)
    with pytest.raises(ValueError, match=r"RPLIB_FAST_PATH must be one of auto, on, off .* got "):
        train.run(config(method="random"), root=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()
