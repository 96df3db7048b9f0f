"""Sparse inference export: same outputs as the dense masked network, exact byte counts, clear errors.

Tolerance: fp32 with atol 1e-5 and rtol 1e-4. The CSR product sums the kept terms in another
order (and blocking) than the dense kernels, so results differ by rounding, not by more.
"""

from __future__ import annotations

import math
import zlib

import pytest
import torch
from torch import nn

from rplib import models
from rplib.inference import (INDEX_DTYPE, SparseConv, SparseLinear, byte_counts, crossover_density, export, latency,
                             layer_latency, layer_sweep, num_threads, time_interleaved)
from rplib.models import BasicBlock
from rplib.sparsity import Mask, layerwise_densities, random_mask

TOL = {"atol": 1e-5, "rtol": 1e-4}


def masked(model: nn.Module, density: float = 0.1, scheme: str = "erk", seed: int = 0) -> tuple[nn.Module, Mask]:
    mask = random_mask(model, layerwise_densities(model, density, scheme), seed=seed)
    mask.apply_(model)
    return model.eval(), mask


def same_outputs(model: nn.Module, mask: Mask, x: torch.Tensor) -> None:
    sparse = export(model, mask)
    with torch.no_grad():
        torch.testing.assert_close(sparse(x), model(x), **TOL)


@pytest.mark.parametrize("layer, shape", [
    (nn.Linear(20, 7), (20,)),
    (nn.Linear(20, 7, bias=False), (3, 20)),  # extra leading dimension
    (nn.Conv1d(3, 5, 3), (3, 17)),
    (nn.Conv1d(3, 5, 4, stride=2, padding=3, dilation=2), (3, 17)),
    (nn.Conv2d(3, 6, 3, padding=1), (3, 9, 9)),
    (nn.Conv2d(3, 6, (3, 2), stride=(2, 1), padding=(2, 0), dilation=(1, 2), bias=False), (3, 11, 10)),
    (nn.Conv2d(4, 6, 1, stride=2), (4, 7, 7)),
    (nn.Conv2d(3, 6, 3, padding="valid"), (3, 8, 8)),
])
def test_every_layer_type_matches_the_dense_masked_layer(layer, shape):
    torch.manual_seed(0)
    mask = random_mask(layer, {"weight": 0.3}, seed=1)
    mask.apply_(layer)
    sparse = export(layer, mask)
    assert isinstance(sparse, SparseLinear if isinstance(layer, nn.Linear) else SparseConv)
    same_outputs(layer, mask, torch.randn(5, *shape))


def test_resnet_block_with_batchnorm_in_eval_mode():
    torch.manual_seed(0)
    block = BasicBlock(4, 8, stride=2)
    for bn in (block.bn1, block.bn2, block.shortcut[1]):  # non-trivial running statistics
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
    block, mask = masked(block, 0.2, "uniform")
    same_outputs(block, mask, torch.randn(3, 4, 10, 10))


@pytest.mark.parametrize("name, in_shape", [("mlp", (3, 32, 32)), ("cnn1d", (1, 40)), ("resnet20", (3, 32, 32)),
                                            ("resnet56", (3, 32, 32)), ("vgg19", (3, 32, 32))])
def test_book_networks_match(name, in_shape):
    torch.manual_seed(0)
    model, mask = masked(models.build(name, 10, in_shape=in_shape), 0.05)
    sparse = export(model, mask)
    kept = sum(int(m.weight._nnz()) for m in sparse.modules() if isinstance(m, (SparseLinear, SparseConv)))
    assert kept == mask.kept()
    assert not any(type(m) in (nn.Linear, nn.Conv1d, nn.Conv2d) for m in sparse.modules())
    same_outputs(model, mask, torch.randn(2, *in_shape))
    assert len(models.prunable_parameters(model)) == len(mask.masks)  # the exported copy left the model intact


def test_export_keeps_exactly_the_kept_weights_whatever_their_values():
    torch.manual_seed(0)
    layer = nn.Linear(30, 10)
    mask = random_mask(layer, {"weight": 0.2}, seed=0)
    with torch.no_grad():
        layer.weight[mask.masks["weight"]] = 0.0  # kept but zero
    sparse = export(layer, mask)  # pruned weights left nonzero in `layer` are dropped
    assert sparse.weight._nnz() == mask.kept() == 60
    assert sparse.weight.crow_indices().dtype == sparse.weight.col_indices().dtype == INDEX_DTYPE
    x = torch.randn(4, 30)
    torch.testing.assert_close(sparse(x), layer.bias.expand(4, 10), **TOL)


def test_byte_counts_follow_the_formulas():
    torch.manual_seed(0)
    model, mask = masked(models.build("resnet20", 10), 0.05)
    bc = byte_counts(model, mask)
    layers = bc.drop(index="total")
    assert list(layers.index) == [k.removesuffix(".weight") for k in mask.masks]
    idx = torch.tensor([], dtype=INDEX_DTYPE).element_size()
    for (name, row), (k, m) in zip(layers.iterrows(), mask.masks.items()):
        n, kept, out = m.numel(), int(m.sum()), m.shape[0]
        assert (row.n, row.kept) == (n, kept)
        assert row.dense == 4 * n
        assert row.csr == 4 * kept + idx * kept + idx * (out + 1)
        assert row.bitmask == math.ceil(n / 8) + 4 * kept
        w = (model.get_submodule(name).weight.detach() * m).numpy()
        assert row.dense_zlib == len(zlib.compress(w.tobytes(), 6))
    total = bc.loc["total"]
    assert total.kept == mask.kept() and total.n == mask.numel()
    assert total.density == pytest.approx(mask.density())
    assert total.csr == 8 * mask.kept() + 4 * sum(m.shape[0] + 1 for m in mask.masks.values())
    assert total.csr_zlib < total.csr < total.dense


def test_bad_inputs_give_clear_errors():
    with pytest.raises(ValueError, match="Sequential has no prunable layer"):
        export(nn.Sequential(nn.ReLU()), Mask({}))
    conv3d = nn.Sequential(nn.Conv3d(2, 3, 3))
    with pytest.raises(ValueError, match=r"layer '0' is a Conv3d holding a masked weight; supported types: "
                                         r"Linear, Conv1d, Conv2d"):
        export(conv3d, random_mask(conv3d, {"0.weight": 0.5}, seed=0))
    grouped = nn.Sequential(nn.Linear(4, 4), nn.Conv2d(4, 4, 3, groups=2))
    with pytest.raises(ValueError, match=r"layer '1' \(Conv2d\) has groups=2; only groups=1"):
        byte_counts(grouped, random_mask(grouped, {"1.weight": 0.5}, seed=0))
    same = nn.Conv1d(2, 2, 3, padding="same")
    with pytest.raises(ValueError, match="padding='same'"):
        export(same, random_mask(same, {"weight": 0.5}, seed=0))
    with pytest.raises(ValueError, match="mask has layers the model lacks"):
        export(nn.Linear(3, 3), Mask({"fc.weight": torch.ones(3, 3)}))
    with pytest.raises(TypeError, match="mask must be an rplib.sparsity.Mask"):
        export(nn.Linear(3, 3), {"weight": torch.ones(3, 3)})
    with pytest.raises(ValueError, match="zlib level must be an integer 0..9, got 10"):
        byte_counts(same, random_mask(same, {"weight": 0.5}, seed=0), level=10)
    with pytest.raises(ValueError, match="threads must be an integer >= 1, got 0"):
        with num_threads(0):
            pass
    with pytest.raises(ValueError, match="repeats must be an integer >= 1, got 0"):
        time_interleaved({"a": lambda: None}, 0)
    with pytest.raises(ValueError, match=r"unknown layer\(s\) \['Conv9d'\]; valid layers: Linear"):
        layer_sweep(["Conv9d"], [0.1], [1], 1, 1)
    layer = nn.Linear(4, 4)
    with pytest.raises(ValueError, match="'dense' is reserved"):
        latency(layer, {"dense": random_mask(layer, {"weight": 0.5}, seed=0)}, (4,), 1, 1, 1)


def test_num_threads_is_restored():
    before = torch.get_num_threads()
    with num_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_time_interleaved_rotates_the_order_and_returns_one_time_per_repeat():
    calls: list[str] = []
    times = time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=4, warmup=1,
                             min_time=0.0)
    assert {k: len(v) for k, v in times.items()} == {"a": 4, "b": 4} and all(t >= 0 for v in times.values() for t in v)
    assert calls[4:] == ["a", "b", "b", "a", "a", "b", "b", "a"]  # after warm-up and one calibration call each


def test_latency_tables_pair_dense_and_sparse_repeats():
    torch.manual_seed(0)
    model = models.build("mlp", 10, in_shape=(8,), hidden=(16,))
    mask = random_mask(model, layerwise_densities(model, 0.3, "erk"), seed=0)
    df = latency(model, {0.3: mask}, (8,), batch=2, threads=1, repeats=3, min_time=0.0)
    assert len(df) == 3 and set(df.variant) == {0.3} and (df.batch == 2).all()
    assert df.log_speedup.tolist() == pytest.approx([math.log(a / b) for a, b in zip(df.dense_s, df.sparse_s)])
    per_layer = layer_latency(model, mask, (8,), batch=2, threads=1, repeats=2, min_time=0.0)
    assert sorted(set(per_layer.layer)) == ["fc", "layers.0"] and len(per_layer) == 4
    assert per_layer.groupby("layer").density.first().to_dict() == pytest.approx(
        {k.removesuffix(".weight"): v for k, v in mask.layer_densities().items()})


def test_layer_sweep_and_crossover():
    df = layer_sweep(["Conv1d 32->32 k3 s2, L=20 (cnn1d)"], [0.5, 0.1], [1, 4], threads=1, repeats=2, min_time=0.0)
    assert len(df) == 2 * 2 * 2 and set(df.density) == {0.5, 0.1} and set(df.batch) == {1, 4}
    import pandas as pd

    rows = pd.DataFrame({"density": [0.01, 0.01, 0.1, 0.1, 0.5, 0.5], "log_speedup": [1, 2, 0.5, 0.1, -1, -2]})
    assert crossover_density(rows) == 0.1
    rows.loc[rows.density == 0.01, "log_speedup"] = -1.0  # not faster at the lowest density: no crossover
    assert math.isnan(crossover_density(rows))
    assert crossover_density(rows.assign(log_speedup=1.0)) == 0.5


def test_claim_setting_is_the_declared_claim_and_is_measured_as_declared():
    from rplib.claims import CLAIMS
    from rplib.inference import CLAIM_SETTING, claim_effects

    effect = CLAIMS["sparse_faster_at_005"].effect
    assert "ResNet-20" in effect and f"density {CLAIM_SETTING['density']}" in effect
    assert f"batch {CLAIM_SETTING['batch']}, {CLAIM_SETTING['threads']} thread" in effect
    df = claim_effects(repeats=2, min_time=0.0)
    assert len(df) == 2 and set(df.variant) == {0.05} and set(df.batch) == {1} and set(df.threads) == {1}


def test_build_masked_draws_erk_masks_per_density():
    from rplib.inference import build_masked

    model, masks = build_masked("cnn1d", [0.2, 0.05])
    assert list(masks) == [0.2, 0.05]
    assert masks[0.05].kept() == round(0.05 * masks[0.05].numel())
    with pytest.raises(ValueError, match="unknown network 'lenet'; valid networks: mlp, cnn1d"):
        build_masked("lenet", [0.1])
