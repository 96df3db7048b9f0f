"""GraSP scoring: the sanity-checking paper's variant (default) and rplib's earlier one, and how a run selects them."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rplib import scores as rscores, train
from rplib.config import RunConfig
from rplib.masks import mask_from_scores
from rplib.scores import GRASP_VARIANTS, grasp_scores
from rplib.sparsity import layerwise_densities


class Net(nn.Module):
    """Conv -> (BN) -> ReLU -> conv -> (Linear classifier, or a spatial mean as the logits)."""

    def __init__(self, linear: bool = True, bn: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4) if bn else nn.Identity()
        self.conv2 = nn.Conv2d(4, 4 if linear else 3, 3, padding=1)
        self.fc = nn.Linear(4 * 6 * 6, 3) if linear else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(torch.relu(self.bn(self.conv1(x))))
        return self.fc(h.flatten(1)) if self.fc is not None else h.mean((2, 3))


def net(seed: int = 0, **kw) -> Net:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Net(**kw)


def batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """12 examples of 3 classes, ordered by class (as the pruning batches of a run)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(12, 1, 6, 6, generator=g), torch.arange(12) // 4


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_default_is_the_sanity_checking_variant_and_differs_from_rplib_v1():
    model, data = net(), batch()
    default = grasp_scores(model, data)
    assert same(default, grasp_scores(model, data, variant="sanity_checking"))
    old = grasp_scores(model, data, variant="rplib_v1")
    assert not any(torch.allclose(default[k], old[k]) for k in default)
    assert mask_from_scores(default, 0.2) != mask_from_scores(old, 0.2)


@pytest.mark.parametrize("variant", GRASP_VARIANTS)
def test_each_variant_is_deterministic_and_gives_exact_top_k(variant):
    model, data = net(), batch()
    scores = grasp_scores(model, data, variant=variant)
    assert same(scores, grasp_scores(model, data, variant=variant))
    n = sum(s.numel() for s in scores.values())
    for d in (0.05, 0.2, 0.5, 1.0):
        assert mask_from_scores(scores, d).kept() == round(d * n)
    per_layer = {k: 0.25 for k in scores}
    mask = mask_from_scores(scores, 0.25, per_layer=per_layer)
    assert all(r.kept == round(0.25 * r.n) for r in mask.report())


@pytest.mark.parametrize("variant", GRASP_VARIANTS)
def test_scoring_leaves_the_caller_untouched(variant):
    model, data = net(), batch()
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(123)
    rng = torch.get_rng_state()
    grasp_scores(model, data, variant=variant)
    assert torch.equal(torch.get_rng_state(), rng)  # the re-initialisation draws from a private generator
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # weights and BN statistics
    assert not model.training
    assert all(p.grad is None for p in model.parameters())


def test_sanity_checking_reinitialises_the_linear_layers_from_its_seed():
    model, data = net(), batch()
    other = net()
    with torch.no_grad():
        other.fc.weight.mul_(-3.0)  # only the Linear layer differs
    sc, sc_other = grasp_scores(model, data), grasp_scores(other, data)
    assert same(sc, sc_other)  # the Linear weights are replaced before scoring
    assert not torch.allclose(grasp_scores(model, data, variant="rplib_v1")["fc.weight"],
                              grasp_scores(other, data, variant="rplib_v1")["fc.weight"])
    assert not torch.equal(sc["fc.weight"], grasp_scores(model, data, seed=1)["fc.weight"])


def test_sanity_checking_is_rplib_v1_on_xavier_linear_weights_and_half_batches():
    """The whole definition: Linear weights drawn Xavier-normal from a generator seeded with ``seed``,
    then each batch scored as its two halves (BN statistics per half)."""
    model, (x, y) = net(), batch()
    reinit = net()
    fresh = torch.empty(3, 144)
    torch.nn.init.xavier_normal_(fresh, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        reinit.fc.weight.copy_(fresh)
    expected = grasp_scores(reinit, [(x[:6], y[:6]), (x[6:], y[6:])], variant="rplib_v1")
    assert same(grasp_scores(model, (x, y), seed=5), expected)


def test_sanity_checking_sums_g_and_hg_over_the_two_halves():
    """Without Linear or BN layers only the split differs: g and Hg summed over two half-batch means are
    2x and 2x larger than over the whole-batch mean, so the scores are exactly 4x rplib_v1's."""
    model, (x, y) = net(linear=False, bn=False), batch()
    sc = grasp_scores(model, (x, y))
    v1 = grasp_scores(model, (x, y), variant="rplib_v1")
    halves = grasp_scores(model, [(x[:6], y[:6]), (x[6:], y[6:])], variant="rplib_v1")
    for k in sc:
        torch.testing.assert_close(sc[k], 4 * v1[k], rtol=1e-4, atol=1e-12)
        torch.testing.assert_close(sc[k], halves[k], rtol=1e-5, atol=1e-12)


def test_sanity_checking_needs_two_examples_per_batch():
    with pytest.raises(ValueError, match="halves; got a batch of 1 example"):
        grasp_scores(net(), (torch.randn(1, 1, 6, 6), torch.tensor([0])))


def test_bad_variant_names_the_option_and_the_choices():
    for call in (lambda: grasp_scores(net(), batch(), variant="paper"),
                 lambda: layerwise_densities(net(), 0.2, "grasp", data=batch(), variant="paper")):
        with pytest.raises(ValueError) as e:
            call()
        assert str(e.value) == "variant: unknown GraSP variant 'paper'; valid choices: sanity_checking, rplib_v1"
    with pytest.raises(ValueError) as e:
        RunConfig().with_({"sparsity.method": "grasp", "sparsity.density": 0.1,
                           "sparsity.scheme_options": {"grasp_variant": "paper"}})
    assert str(e.value) == ("sparsity.scheme_options.grasp_variant: unknown GraSP variant 'paper'; "
                            "valid choices: sanity_checking, rplib_v1")
    assert "\n" not in str(e.value)


def test_the_ratio_scheme_uses_the_variant():
    model, data = net(), batch()
    dens = {v: layerwise_densities(model, 0.2, "grasp", data=data, variant=v) for v in GRASP_VARIANTS}
    assert dens["sanity_checking"] == layerwise_densities(model, 0.2, "grasp", data=data)
    assert dens["sanity_checking"] != dens["rplib_v1"]


def grasp_config(**changes) -> RunConfig:
    return RunConfig().with_({"sparsity.method": "grasp", "sparsity.density": 0.1, **changes})


def test_config_names_the_variant_of_grasp_masks_only():
    cfg = grasp_config()
    assert dict(cfg.sparsity.scheme_options) == {"grasp_variant": "sanity_checking"}
    explicit = grasp_config(**{"sparsity.scheme_options": {"grasp_variant": "sanity_checking"}})
    assert explicit == cfg and explicit.hash == cfg.hash
    v1 = grasp_config(**{"sparsity.scheme_options": {"grasp_variant": "rplib_v1"}})
    assert v1.hash != cfg.hash
    ratio = RunConfig().with_({"sparsity.method": "random", "sparsity.density": 0.1, "sparsity.scheme": "grasp"})
    assert dict(ratio.sparsity.scheme_options) == {"grasp_variant": "sanity_checking"}
    # configs that do not use GraSP carry no variant: their dicts, and so their hashes, are as before
    for changes in ({}, {"sparsity.method": "random", "sparsity.density": 0.1},
                    {"sparsity.method": "random", "sparsity.density": 0.1, "sparsity.scheme": "snip"},
                    {"sparsity.method": "lottery", "sparsity.density": 0.1, "sparsity.scheme": "grasp"}):
        plain = RunConfig().with_(changes)
        assert plain.sparsity.scheme_options == ()
        assert plain.to_dict()["sparsity"]["scheme_options"] == ()
    # switching a GraSP config to another method drops the variant instead of failing
    snip = cfg.with_({"sparsity.method": "snip"})
    assert snip == RunConfig().with_({"sparsity.method": "snip", "sparsity.density": 0.1})


@pytest.mark.parametrize("changes", [
    {"sparsity.method": "grasp"},
    {"sparsity.method": "random", "sparsity.scheme": "grasp"},
    {"sparsity.method": "grasp", "sparsity.scheme_options": {"grasp_variant": "rplib_v1"}},
])
def test_a_run_passes_its_variant_and_seed_to_the_scorer(monkeypatch, changes):
    from rplib import data as rdata

    calls: list[dict] = []

    def recording(model, **kw):
        calls.append({k: kw[k] for k in ("variant", "seed")})
        return grasp_scores(model, **kw)

    monkeypatch.setitem(rscores.SCORES, "grasp", recording)
    cfg = RunConfig().with_({"data.name": "mnist1d", "data.num_samples": 200, "model.name": "cnn1d",
                             "sparsity.density": 0.2, "seed": 3, "device": "cpu", **changes})
    bundle = rdata.load(cfg.data, torch.device("cpu"))
    model = train.build(cfg.model.name, bundle.num_classes, in_shape=bundle.in_shape, **cfg.model.options())
    mask, _ = train._make_mask(cfg, model, None, bundle)
    assert calls == [{"variant": dict(cfg.sparsity.scheme_options)["grasp_variant"], "seed": 3}]
    assert mask.kept() == round(0.2 * mask.numel())
