import copy
import json
import math

import pytest
import torch
from torch import nn

from rplib import models
from rplib.dst import (DROP_CRITERIA, GROWTH, PRESETS, SCHEDULES, DSTConfig, DynamicSparsity, compare_criteria,
                       drop_fraction, drop_set, grow_set, jaccard)
from rplib.models import prunable_parameters
from rplib.sparsity import Mask, layerwise_densities, random_mask

IN, CLASSES = 12, 3


def _mlp(seed=0):
    torch.manual_seed(seed)  # the models registry initialises with the global RNG
    return models.build("mlp", CLASSES, in_shape=(IN,), hidden=(24, 16))


def _cnn(seed=0):
    torch.manual_seed(seed)
    return models.build("cnn1d", CLASSES, in_shape=(1, 16), depth=2, width=0.25)


def _batch(step, in_shape=(IN,), n=16):
    """A deterministic batch per step: three Gaussian blobs, learnable."""
    g = torch.Generator().manual_seed(1000 + step)
    y = torch.randint(0, CLASSES, (n,), generator=g)
    centres = torch.linspace(-1.5, 1.5, CLASSES)
    x = centres[y].view(n, *([1] * len(in_shape))) + 0.5 * torch.randn(n, *in_shape, generator=g)
    return x, y


class Run:
    """A minimal training loop: SGD with momentum, a mask attached, the DST hooks around each step."""

    def __init__(self, cfg, model_fn=_mlp, density=0.3, total=30, seed=0, in_shape=(IN,), lr=0.05):
        self.model = model_fn()
        self.in_shape = in_shape
        self.mask = random_mask(self.model, layerwise_densities(self.model, density, "erk"), seed=seed)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=lr, momentum=0.9)
        self.handle = self.mask.attach(self.model, self.opt, zero_state=cfg.reset_momentum)
        self.dst = DynamicSparsity(cfg, self.mask, self.model, self.opt, total_steps=total, seed=seed)
        self.step = 0

    def train(self, n, check=None):
        for _ in range(n):
            self.step += 1
            x, y = _batch(self.step, self.in_shape)
            self.opt.zero_grad()
            loss = nn.functional.cross_entropy(self.model(x), y)
            loss.backward()
            self.dst.before_step(self.step)
            self.opt.step()
            self.dst.after_step(self.step)
            if check:
                check(self)
        return float(loss.detach())


def _counts(mask):
    return {k: int(m.sum()) for k, m in mask.masks.items()}


def _assert_pruned_zero(run):
    params = prunable_parameters(run.model)
    for k, m in run.mask.masks.items():
        assert torch.all(params[k][~m] == 0), k


# --------------------------------------------------------------------------- criteria on hand-made tensors


W = torch.tensor([-0.9, -0.5, -0.1, -0.05, 0.02, 0.3, 0.6, 0.8, 0.01])
G = torch.tensor([0.1, 2.0, 0.3, 0.01, 1.0, 0.2, 0.06, 0.4, 5.0])
M = torch.tensor([True] * 8 + [False])  # the last weight is inactive and must never be dropped


def _dropped(criterion, k, **opts):
    return set(drop_set(criterion, W, G, M, k, **opts).nonzero().flatten().tolist())


@pytest.mark.parametrize("criterion, formula", [
    ("magnitude", lambda w, g: w.abs()),
    ("mest", lambda w, g: w.abs() + g.abs()),
    ("snip", lambda w, g: (w * g).abs()),
    ("sensitivity", lambda w, g: g.abs() / (w.abs() + 1e-8)),
    ("rsensitivity", lambda w, g: w.abs() / (g.abs() + 1e-8)),
    ("taylor_fo", lambda w, g: (w * g) ** 2),
])
def test_score_criteria_drop_lowest_active(criterion, formula):
    score = DROP_CRITERIA[criterion](W, G, M)
    assert torch.allclose(score, formula(W, G))
    for k in range(9):
        expect = set(torch.argsort(formula(W, G)[:8])[:k].tolist())
        assert _dropped(criterion, k) == expect


def test_mest_gamma_and_hand_values():
    assert _dropped("magnitude", 3) == {3, 4, 2}  # |w| = 0.05, 0.02, 0.1
    assert _dropped("mest", 1, gamma=0.0) == {4}
    assert _dropped("mest", 2, gamma=10.0) == {3, 6}  # 0.05 + 0.1 and 0.6 + 0.6 are the smallest
    assert _dropped("snip", 2) == {3, 4}  # |w g| = 0.0005, 0.02
    assert _dropped("sensitivity", 2) == {0, 6}  # |g|/|w| = 0.11, 0.1
    assert _dropped("rsensitivity", 2) == {4, 1}  # |w|/|g| = 0.02, 0.25


def test_set_drops_smallest_positives_and_negatives_closest_to_zero():
    # positives ascending: 0.02 (4), 0.3 (5), 0.6 (6), 0.8 (7); negatives closest to zero: -0.05 (3), -0.1 (2), ...
    assert _dropped("set", 1) == {4}
    assert _dropped("set", 2) == {4, 3}
    assert _dropped("set", 3) == {4, 3, 5}
    assert _dropped("set", 4) == {4, 3, 5, 2}
    # when one sign runs out the other fills in, so exactly k always go
    w = torch.tensor([-0.2, 0.1, 0.2, 0.3, 0.4, 0.5])
    drop = drop_set("set", w, None, torch.ones(6, dtype=torch.bool), 4)
    assert set(drop.nonzero().flatten().tolist()) == {0, 1, 2, 3}


def test_set_as_released_rewires_about_half_whatever_k():
    # h = ceil(k/2) smallest positives go; of the negatives only those below the h-th most negative stay
    assert _dropped("set_as_released", 1) == {4, 0, 1, 2, 3}  # h = 1: every negative goes
    assert _dropped("set_as_released", 2) == {4, 0, 1, 2, 3}
    assert _dropped("set_as_released", 4) == {4, 5, 1, 2, 3}  # h = 2: -0.9 stays
    assert _dropped("set_as_released", 8) == {4, 5, 6, 7, 3}  # h = 4: three most negative stay
    # the score ranks negatives most negative first (the released sort), positives ascending
    score = DROP_CRITERIA["set_as_released"](W, None, M)
    assert score[0] < score[1] < score[2] < score[3] and score[4] < score[5] < score[6] < score[7]
    assert math.isinf(score[8])
    # on a layer of symmetric weights about half the active weights go, for any k
    g = torch.Generator().manual_seed(0)
    w = torch.randn(2000, generator=g)
    mask = torch.rand(2000, generator=g) < 0.5
    nnz = int(mask.sum())
    for alpha in (0.05, 0.3, 0.9):
        n = int(drop_set("set_as_released", w, None, mask, math.ceil(alpha * nnz)).sum())
        assert 0.4 < n / nnz < 0.6, (alpha, n / nnz)
        assert int(drop_set("set", w, None, mask, math.ceil(alpha * nnz)).sum()) == math.ceil(alpha * nnz)
    # active weights at exactly zero are always dropped by the released rule
    z = torch.tensor([0.0, 0.5, -0.5, 0.7])
    assert set(drop_set("set_as_released", z, None, torch.ones(4, dtype=torch.bool), 1).nonzero().flatten().tolist()) \
        == {0, 1, 2}


def test_random_drop_needs_generator_and_is_seeded():
    with pytest.raises(ValueError, match="generator"):
        drop_set("random", W, G, M, 2)
    with pytest.raises(ValueError, match="generator"):
        DROP_CRITERIA["random"](W, G, M)
    s1, s2 = (DROP_CRITERIA["random"](W, G, M, generator=torch.Generator().manual_seed(3)) for _ in range(2))
    assert torch.equal(s1, s2) and s1.shape == W.shape and bool(((s1 >= 0) & (s1 < 1)).all())
    a = drop_set("random", W, G, M, 3, generator=torch.Generator().manual_seed(1))
    b = drop_set("random", W, G, M, 3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and int(a.sum()) == 3 and not a[8]


def test_drop_set_bad_input():
    with pytest.raises(ValueError, match="unknown drop criterion 'foo'.*magnitude"):
        drop_set("foo", W, G, M, 1)
    with pytest.raises(ValueError, match=r"k must be an integer in \[0, 8\]"):
        drop_set("magnitude", W, G, M, 9)
    with pytest.raises(ValueError, match="needs the gradient"):
        drop_set("snip", W, None, M, 1)
    with pytest.raises(ValueError, match="shape"):
        drop_set("magnitude", W, G, M[:4], 1)


# --------------------------------------------------------------------------- growth


def test_gradient_growth_picks_largest_grad_among_inactive():
    grad = torch.tensor([[9.0, -0.1, 0.5], [-3.0, 8.0, 0.2]])
    mask = torch.tensor([[True, False, False], [False, True, False]])  # active weights have the largest |g|
    grown = grow_set("gradient", grad, mask, 2)
    assert torch.equal(grown, torch.tensor([[False, False, True], [True, False, False]]))
    assert not (grown & mask).any()
    with pytest.raises(ValueError, match="needs the gradient"):
        grow_set("gradient", None, mask, 1)
    with pytest.raises(ValueError, match="unknown growth 'momentum'; valid growth criteria: gradient, random"):
        grow_set("momentum", grad, mask, 1)


def test_random_growth_exact_count():
    g = torch.Generator().manual_seed(0)
    mask = torch.rand(50, 40, generator=g) < 0.1
    free = int((~mask).sum())
    sets = []
    for seed in range(3):
        grown = grow_set("random", None, mask, 77, generator=torch.Generator().manual_seed(seed))
        assert int(grown.sum()) == 77 and not (grown & mask).any()
        sets.append(grown)
    assert not torch.equal(sets[0], sets[1])
    assert torch.equal(sets[0], grow_set("random", None, mask, 77, generator=torch.Generator().manual_seed(0)))
    assert int(grow_set("random", None, mask, free, generator=g).sum()) == free
    with pytest.raises(ValueError, match=r"k must be an integer in \[0, "):
        grow_set("random", None, mask, free + 1, generator=g)


def test_random_growth_and_drop_are_uniform():
    mask = torch.tensor([True, False] * 10)  # 10 active, 10 inactive
    for k in (3, 8):  # 8 > 10 / 2 samples the complement
        grown = torch.zeros(20)
        dropped = torch.zeros(20)
        for seed in range(1500):
            g = torch.Generator().manual_seed(seed)
            grown += grow_set("random", None, mask, k, generator=g).float()
            dropped += drop_set("random", torch.ones(20), None, mask, k, generator=g).float()
        assert torch.all(grown[mask] == 0) and torch.all(dropped[~mask] == 0)
        assert torch.allclose(grown[~mask] / 1500, torch.full((10,), k / 10), atol=0.05), grown
        assert torch.allclose(dropped[mask] / 1500, torch.full((10,), k / 10), atol=0.05), dropped


# --------------------------------------------------------------------------- schedules


def test_schedules():
    assert drop_fraction("cosine", 0.5, 0, 100) == pytest.approx(0.5)
    assert drop_fraction("cosine", 0.5, 50, 100) == pytest.approx(0.25)
    assert drop_fraction("cosine", 0.5, 100, 100) == 0.0
    assert drop_fraction("cosine", 0.5, 25, 100) == pytest.approx(0.25 * (1 + math.cos(math.pi / 4)))
    assert drop_fraction("linear", 0.4, 25, 100) == pytest.approx(0.3)
    assert drop_fraction("constant", 0.3, 99, 100) == 0.3
    for s in SCHEDULES:
        assert drop_fraction(s, 0.3, 100, 100) == 0.0 and drop_fraction(s, 0.3, 150, 100) == 0.0
    with pytest.raises(ValueError, match="valid schedules: cosine, constant, linear"):
        drop_fraction("step", 0.3, 1, 10)


def test_no_update_from_t_end_on():
    cfg = DSTConfig(drop="magnitude", grow="random", alpha=0.3, update_period=5, end_fraction=0.5, schedule="constant")
    run = Run(cfg, total=40)
    run.train(40)
    assert [r["step"] for r in run.dst.log] == [5, 10, 15]  # T_end = 20: step 20 and later never update
    assert run.dst.alpha(20) == 0.0


# --------------------------------------------------------------------------- training with updates


@pytest.mark.parametrize("cfg, model_fn, in_shape", [
    (DSTConfig.preset("rigl", update_period=3, end_fraction=1.0), _mlp, (IN,)),
    (DSTConfig.preset("set", update_period=3), _cnn, (1, 16)),
    (DSTConfig.preset("fantastic_weights", drop="snip", grow="gradient", update_period=3), _cnn, (1, 16)),
    (DSTConfig(drop="mest", grow="random", update_period=2, update_when="before_step", scope="global"), _mlp, (IN,)),
    (DSTConfig(drop="set_as_released", grow="gradient", update_period=4, reset_momentum=False), _mlp, (IN,)),
])
def test_counts_preserved_and_pruned_weights_zero(cfg, model_fn, in_shape):
    run = Run(cfg, model_fn=model_fn, total=24, in_shape=in_shape)
    before = {k: m.clone() for k, m in run.mask.masks.items()}
    counts = _counts(run.mask)
    run.train(24, check=lambda r: (_counts(r.mask) == counts) or pytest.fail("per-layer count changed"))
    _assert_pruned_zero(run)
    assert len(run.dst.log) >= 4
    assert any(not torch.equal(before[k], run.mask.masks[k]) for k in before)  # the topology moved
    assert run.dst.itop_rate() > run.mask.density()
    s = run.dst.summary()
    assert s["n_updates"] == len(run.dst.log) and 0 < s["mean_changed"] <= 1
    json.dumps(s), json.dumps(run.dst.log)


@pytest.mark.parametrize("criterion", list(DROP_CRITERIA))
@pytest.mark.parametrize("grow", GROWTH)
def test_every_criterion_keeps_counts(criterion, grow):
    cfg = DSTConfig(drop=criterion, grow=grow, alpha=0.3, update_period=2, schedule="constant", end_fraction=1.0)
    run = Run(cfg, total=6)
    counts = _counts(run.mask)
    run.train(6)
    assert _counts(run.mask) == counts and len(run.dst.log) == 2
    _assert_pruned_zero(run)


def test_set_rewires_alpha_and_set_as_released_about_half():
    for alpha in (0.1, 0.3):
        fractions = {}
        for drop in ("set", "set_as_released"):
            cfg = DSTConfig(drop=drop, grow="random", alpha=alpha, schedule="constant", update_period=5,
                            end_fraction=1.0)
            run = Run(cfg, density=0.2, total=15)
            run.train(15)
            fractions[drop] = [r["changed_total"] for r in run.dst.log]
        # random growth can pick a just-dropped weight again, so SET replaces slightly less than alpha
        assert all(alpha - 0.08 < f <= alpha + 0.02 for f in fractions["set"]), fractions
        assert all(0.35 < f < 0.65 for f in fractions["set_as_released"]), fractions


def test_regrown_weights_zero_with_and_without_momentum_reset():
    for reset in (True, False):
        cfg = DSTConfig(drop="magnitude", grow="gradient", alpha=0.3, update_period=10**6, reset_momentum=reset)
        run = Run(cfg, total=100)
        run.train(4)  # momentum builds up; with reset_momentum=False also on pruned weights (zero_state off)
        old = {k: m.clone() for k, m in run.mask.masks.items()}
        record = run.dst.update(run.step)
        assert record is not None and record["step"] == 4
        params = prunable_parameters(run.model)
        some_momentum = False
        for k, p in params.items():
            new = run.mask.masks[k]
            grown = new & ~old[k]
            assert torch.all(p[grown] == 0) and torch.all(p[~new] == 0)
            buf = run.opt.state[p]["momentum_buffer"]
            if reset:
                assert torch.all(buf[grown] == 0)
            some_momentum |= bool((buf[grown] != 0).any())
        assert some_momentum == (not reset)


def test_global_scope_ranks_all_layers_together():
    cfg = DSTConfig(drop="magnitude", grow="random", alpha=0.2, scope="global")
    run = Run(cfg, total=100)
    params = prunable_parameters(run.model)
    names = list(params)
    with torch.no_grad():  # the first layer's weights are tiny: a global ranking drops only there
        params[names[0]].mul_(1e-3)
        for k in names[1:]:
            params[k].add_(torch.sign(params[k]) * 10.0)
        run.mask.apply_(run.model)
    counts = _counts(run.mask)
    record = run.dst.update(1)
    assert record["changed"][names[0]] > 0 and all(record["changed"][k] == 0 for k in names[1:])
    dropped = sum(counts.values()) * 0.2
    assert record["changed"][names[0]] * counts[names[0]] <= math.ceil(dropped)
    assert _counts(run.mask) == counts


def test_determinism_and_exact_resume():
    cfg = DSTConfig(drop="random", grow="random", alpha=0.3, update_period=3, schedule="cosine", end_fraction=1.0)
    a = Run(cfg, total=20)
    a.train(20)
    b = Run(cfg, total=20)
    b.train(20)
    assert a.mask == b.mask and a.dst.log == b.dst.log

    c = Run(cfg, total=20)
    c.train(10)
    saved = copy.deepcopy({"model": c.model.state_dict(), "opt": c.opt.state_dict(), "dst": c.dst.state_dict()})
    d = Run(cfg, total=20)  # a fresh process: initial mask, initial weights
    d.model.load_state_dict(saved["model"])
    d.opt.load_state_dict(saved["opt"])
    d.dst.load_state_dict(saved["dst"])
    d.step = 10
    d.train(10)
    assert d.mask == a.mask and d.dst.log == a.dst.log
    assert d.dst.itop_rate() == a.dst.itop_rate()
    for (k, p), q in zip(a.model.state_dict().items(), d.model.state_dict().values()):
        assert torch.equal(p, q), k
    other = Run(cfg, total=20, seed=1)
    other.train(20)
    assert other.dst.log != a.dst.log
    with pytest.raises(ValueError, match="lacks 'log'"):
        d.dst.load_state_dict({"ever_active": {}, "masks": {}})


def test_static_sparse_training_is_untouched():
    run = Run(DSTConfig(), total=10)
    before = {k: m.clone() for k, m in run.mask.masks.items()}
    run.train(10)
    assert not run.dst.cfg.enabled and run.dst.log == [] and run.mask == Mask(before)
    assert run.dst.summary() == {"n_updates": 0, "itop_rate": pytest.approx(run.mask.density()), "mean_changed": 0.0}


def test_short_dst_run_changes_topology_and_learns():
    torch.manual_seed(0)
    model = models.build("mlp", CLASSES, in_shape=(IN,), hidden=(64, 64))
    mask = random_mask(model, layerwise_densities(model, 0.1, "erk"), seed=0)
    init = {k: m.clone() for k, m in mask.masks.items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    cfg = DSTConfig.preset("rigl", update_period=10)
    mask.attach(model, opt, zero_state=cfg.reset_momentum)
    dst = DynamicSparsity(cfg, mask, model, opt, total_steps=120, seed=0)
    x_test, y_test = _batch(-1, n=300)
    for step in range(1, 121):
        x, y = _batch(step, n=32)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        dst.before_step(step)
        opt.step()
        dst.after_step(step)
    acc = (model(x_test).argmax(1) == y_test).float().mean().item()
    assert acc > 0.8, acc
    assert dst.summary()["n_updates"] == 8  # steps 10..80, T_end = 90
    assert sum(int((init[k] & ~mask.masks[k]).sum()) for k in init) > 0


# --------------------------------------------------------------------------- comparing drop sets


def test_jaccard():
    a = torch.tensor([True, True, False, False])
    b = torch.tensor([True, False, True, False])
    assert jaccard(a, b) == pytest.approx(1 / 3)
    assert jaccard(a, a) == 1.0
    assert jaccard(torch.zeros(3, dtype=torch.bool), torch.zeros(3, dtype=torch.bool)) == 1.0
    assert jaccard(a, ~a) == 0.0
    with pytest.raises(ValueError, match="shapes"):
        jaccard(a, a[:2])


def test_compare_criteria_hand_made():
    model = nn.Sequential(nn.Linear(4, 2, bias=False), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.1, -0.2, 0.3, -0.4], [0.5, 0.6, 0.7, 0.8]]))
        model[1].weight.copy_(torch.tensor([[1.0, -2.0], [3.0, 4.0]]))
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.5)  # a constant gradient: snip and taylor_fo rank like magnitude
    mask = Mask({"0.weight": torch.tensor([[True, True, True, True], [False, False, False, False]]),
                 "1.weight": torch.tensor([[True, True], [True, False]])})
    sim = compare_criteria(model, mask, ["magnitude", "snip", "taylor_fo", "sensitivity"], alpha=0.5)
    assert set(sim) == {("magnitude", "snip"), ("magnitude", "taylor_fo"), ("magnitude", "sensitivity"),
                        ("snip", "taylor_fo"), ("snip", "sensitivity"), ("taylor_fo", "sensitivity")}
    assert sim[("magnitude", "snip")] == 1.0 and sim[("snip", "taylor_fo")] == 1.0
    # sensitivity 0.5 / |w| drops the largest weights: layer 0 (k=2) {0.1,-0.2} vs {0.3,-0.4}: 0;
    # layer 1 (k=2) {1,-2} vs {-2,3}: 1/3
    assert sim[("magnitude", "sensitivity")] == pytest.approx((0 + 1 / 3) / 2)
    with pytest.raises(ValueError, match="distinct"):
        compare_criteria(model, mask, ["magnitude"], alpha=0.5)
    with pytest.raises(ValueError, match="unknown drop criterion 'l2'"):
        compare_criteria(model, mask, ["magnitude", "l2"], alpha=0.5)
    with pytest.raises(ValueError, match="alpha"):
        compare_criteria(model, mask, ["magnitude", "snip"], alpha=0.0)


# --------------------------------------------------------------------------- configuration


def test_presets():
    rigl = DSTConfig.preset("rigl")
    assert (rigl.drop, rigl.grow, rigl.alpha, rigl.update_period, rigl.schedule, rigl.end_fraction,
            rigl.reset_momentum) == ("magnitude", "gradient", 0.3, 100, "cosine", 0.75, True)
    fw = DSTConfig.preset("fantastic_weights", drop="snip")
    assert (fw.alpha, fw.update_period, fw.schedule, fw.end_fraction, fw.drop) == (0.5, 800, "cosine", 1.0, "snip")
    assert DSTConfig.preset("set").drop == "set" and DSTConfig.preset("set").grow == "random"
    assert all(DSTConfig.preset(p).enabled for p in PRESETS) and not DSTConfig().enabled
    with pytest.raises(ValueError, match="unknown DST preset 'rigl2'; valid presets: set, rigl, fantastic_weights"):
        DSTConfig.preset("rigl2")
    with pytest.raises(ValueError, match="unknown DSTConfig field"):
        DSTConfig.preset("rigl", zeta=0.3)


@pytest.mark.parametrize("field, value, message", [
    ("drop", "l1", "unknown DST drop 'l1'; valid choices: none, magnitude, set"),
    ("grow", "momentum", "unknown DST grow 'momentum'; valid choices: gradient, random"),
    ("schedule", "step", "valid choices: cosine, constant, linear"),
    ("update_when", "during", "valid choices: after_step, before_step"),
    ("scope", "model", "valid choices: layer, global"),
    ("alpha", 0.0, r"alpha .* must be in \(0, 1\]"),
    ("alpha", 1.5, r"alpha .* must be in \(0, 1\]"),
    ("end_fraction", 0, "end_fraction"),
    ("update_period", 0, "update_period"),
    ("update_period", 2.5, "update_period"),
    ("update_period", True, "update_period"),
    ("reset_momentum", "yes", "reset_momentum"),
    ("gamma", -1.0, "gamma"),
])
def test_bad_config(field, value, message):
    with pytest.raises(ValueError, match=message):
        DSTConfig(**{field: value})


def test_bad_dynamic_sparsity_arguments():
    model = _mlp()
    mask = random_mask(model, layerwise_densities(model, 0.3, "erk"), seed=0)
    with pytest.raises(ValueError, match="total_steps"):
        DynamicSparsity(DSTConfig(), mask, model, None, total_steps=0, seed=0)
    with pytest.raises(ValueError, match="seed"):
        DynamicSparsity(DSTConfig(), mask, model, None, total_steps=10, seed=-1)
    with pytest.raises(ValueError, match="model lacks"):
        DynamicSparsity(DSTConfig(), mask, _cnn(), None, total_steps=10, seed=0)
    run = Run(DSTConfig(drop="snip", update_period=1), total=10)
    run.model.zero_grad(set_to_none=True)
    with pytest.raises(ValueError, match="needs gradients"):
        run.dst.update(1)
