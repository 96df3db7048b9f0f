import math

import pytest
import torch
from torch import nn

from rplib import models, sparsity
from rplib.models import classifier_name, first_layer_name, prunable_parameters
from rplib.sparsity import Mask, layerwise_densities, random_mask

DENSITIES = [0.01, 0.05, 0.1, 0.2, 0.5, 0.9]
DATA_FREE = ["uniform", "uniform_plus", "er", "erk", "erk_plus", "smart_ratio"]


@pytest.fixture(scope="module")
def nets():
    return {
        "resnet20": models.build("resnet20", 10),
        "resnet56": models.build("resnet56", 10),
        "vgg19": models.build("vgg19", 100),
        "mlp": models.build("mlp", 10, hidden=(1024, 512)),  # the CIFAR-10 MLP of Fantastic Weights
    }


def _numels(model):
    return {k: p.numel() for k, p in prunable_parameters(model).items()}


@pytest.mark.parametrize("scheme", DATA_FREE)
@pytest.mark.parametrize("name", ["resnet20", "resnet56", "vgg19", "mlp"])
def test_exact_totals(nets, name, scheme):
    model = nets[name]
    n = _numels(model)
    N = sum(n.values())
    for d in DENSITIES:
        dens = layerwise_densities(model, d, scheme)
        assert set(dens) == set(n)
        assert all(0.0 <= v <= 1.0 for v in dens.values()), (scheme, d)
        counts = {k: dens[k] * n[k] for k in n}
        assert all(abs(c - round(c)) < 1e-6 for c in counts.values())
        assert sum(round(c) for c in counts.values()) == round(d * N), (scheme, d)
        if name == "vgg19" and d != DENSITIES[0]:
            continue  # drawing 20M-weight masks at every density adds seconds, not checks: the counts above are exact
        mask = random_mask(model, dens, seed=0)
        assert mask.kept() == round(d * N)
        for r in mask.report():
            assert r.kept == round(dens[r.name] * r.n)


def test_data_schemes_exact_totals(nets):
    model = nets["resnet20"]
    g = torch.Generator().manual_seed(0)
    batch = (torch.randn(20, 3, 32, 32, generator=g), torch.arange(20) % 10)
    N = sum(_numels(model).values())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for scheme in ["snip", "grasp", "synflow"]:
        for d in [0.05, 0.2]:
            opts = {"iterations": 5} if scheme == "synflow" else {}
            dens = layerwise_densities(model, d, scheme, data=batch, **opts)
            mask = random_mask(model, dens, seed=1)
            assert mask.kept() == round(d * N)
            assert all(0 <= v <= 1 for v in dens.values())
            # a saliency scheme is not uniform
            assert max(dens.values()) - min(dens.values()) > 0.01
    # scoring leaves the model (weights and BN statistics) untouched
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_erk_reference_point_resnet20(nets):
    """REFERENCE.md: ResNet-20, d=0.05: eps ~ 8.20, first conv ~ 0.475, classifier ~ 0.949, smallest ~ 0.030."""
    model = nets["resnet20"]
    shapes = {k: tuple(p.shape) for k, p in prunable_parameters(model).items()}
    N = sum(math.prod(s) for s in shapes.values())
    raw, eps = sparsity._solve_erk(shapes, 0.05 * N, True, 1.0)
    assert eps == pytest.approx(8.20, abs=0.01)
    dens = layerwise_densities(model, 0.05, "erk")
    assert dens[first_layer_name(model)] == pytest.approx(0.475, abs=0.005)
    assert dens[classifier_name(model)] == pytest.approx(0.949, abs=0.005)
    assert min(dens.values()) == pytest.approx(0.030, abs=0.002)


def test_erk_dense_layers_leave_the_solve(nets):
    model = nets["resnet20"]
    dens = layerwise_densities(model, 0.5, "erk")
    # small layers (first conv, classifier, 1x1 shortcuts) would exceed 1 and become dense
    assert dens[first_layer_name(model)] == 1.0
    assert dens[classifier_name(model)] == 1.0
    assert all(v <= 1.0 for v in dens.values())
    shapes = {k: tuple(p.shape) for k, p in prunable_parameters(model).items()}
    sparse = [k for k, v in dens.items() if v < 1.0]
    # the others keep ERK's proportions: d_l / s_l is one constant
    ratios = [dens[k] / sparsity._erk_score(shapes[k], True, 1.0) for k in sparse]
    assert max(ratios) / min(ratios) < 1.01


def test_er_vs_erk_differ_only_by_kernel(nets):
    model = nets["mlp"]  # no kernel dims: ER and ERK coincide
    assert layerwise_densities(model, 0.1, "er") == layerwise_densities(model, 0.1, "erk")
    conv = nets["resnet20"]
    er, erk = layerwise_densities(conv, 0.1, "er"), layerwise_densities(conv, 0.1, "erk")
    assert er != erk
    shapes = {k: tuple(p.shape) for k, p in prunable_parameters(conv).items()}
    for k in er:
        if 0 < er[k] < 1:
            assert sparsity._erk_score(shapes[k], False, 1.0) == pytest.approx(
                (shapes[k][0] + shapes[k][1]) / (shapes[k][0] * shapes[k][1]))


def test_erk_plus_classifier_dense(nets):
    for name in ["resnet20", "vgg19", "mlp"]:
        model = nets[name]
        N = sum(_numels(model).values())
        dens = layerwise_densities(model, 0.05, "erk_plus")
        assert dens[classifier_name(model)] == 1.0
        assert sum(round(dens[k] * n) for k, n in _numels(model).items()) == round(0.05 * N)
    dens = layerwise_densities(nets["resnet20"], 0.05, "erk_plus", classifier_density=0.5)
    assert dens[classifier_name(nets["resnet20"])] == pytest.approx(0.5, abs=1e-3)


def test_uniform_plus(nets):
    model = nets["resnet20"]
    dens = layerwise_densities(model, 0.05, "uniform_plus")
    assert dens[first_layer_name(model)] == 1.0
    assert dens[classifier_name(model)] == pytest.approx(0.2, abs=2e-3)
    mids = [v for k, v in dens.items() if k not in (first_layer_name(model), classifier_name(model))]
    assert max(mids) - min(mids) < 1e-3
    # at high density the classifier is not held at the floor but shares the uniform density
    dens = layerwise_densities(model, 0.5, "uniform_plus")
    assert dens[classifier_name(model)] == pytest.approx(dens["layer2.0.conv1.weight"], abs=2e-3)


def test_smart_ratio(nets):
    model = nets["resnet56"]
    dens = layerwise_densities(model, 0.05, "smart_ratio")
    names = list(dens)
    cls = classifier_name(model)
    assert dens[cls] == pytest.approx(0.3, abs=2e-3)
    body = [dens[k] for k in names if k != cls]
    # keep ratio decreases with depth (allow the integer rounding of tiny layers)
    assert all(a >= b - 1e-3 for a, b in zip(body, body[1:]))
    assert body[0] > 3 * body[-1]
    # high density: the first layers hit 1 and their excess is carried to later layers
    hi = layerwise_densities(model, 0.9, "smart_ratio")
    dense = [k for k in names if hi[k] == 1.0]
    assert names[0] in dense and len(dense) > 1
    N = sum(_numels(model).values())
    assert sum(round(hi[k] * n) for k, n in _numels(model).items()) == round(0.9 * N)
    # ablations run and are ordered as their formulas say
    asc = layerwise_densities(model, 0.05, "smart_ratio", order="ascending")
    assert asc[names[-2]] > asc[names[1]]
    with pytest.raises(ValueError, match="valid orders"):
        layerwise_densities(model, 0.05, "smart_ratio", order="wiggly")


def test_smart_ratio_vgg_divides_by_depth_squared(nets):
    vgg = nets["vgg19"]
    dens = layerwise_densities(vgg, 0.02, "smart_ratio")
    res = layerwise_densities(vgg, 0.02, "smart_ratio", residual=True)
    assert dens != res


def test_seeded_masks(nets):
    model = nets["resnet20"]
    dens = layerwise_densities(model, 0.1, "erk")
    state = torch.random.get_rng_state()
    a, b, c = random_mask(model, dens, 3), random_mask(model, dens, 3), random_mask(model, dens, 4)
    assert torch.equal(state, torch.random.get_rng_state()), "global RNG must be untouched"
    assert a == b and a != c


def test_training_keeps_pruned_weights_zero():
    torch.manual_seed(0)
    model = models.build("resnet20", 10, width=0.5)
    dens = layerwise_densities(model, 0.1, "erk")
    mask = random_mask(model, dens, seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    mask.attach(model, opt)
    params = prunable_parameters(model)
    for _ in range(3):
        x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        # gradients stay dense (no forward multiply)
        assert (params["layer1.0.conv1.weight"].grad[~mask.masks["layer1.0.conv1.weight"]] != 0).any()
        opt.step()
    for k, p in params.items():
        m = mask.masks[k]
        assert (p[~m] == 0).all()
        assert (opt.state[p]["momentum_buffer"][~m] == 0).all()
        assert (p[m] != 0).any()
    assert mask.density() == pytest.approx(0.1, abs=1e-5)


def test_rearrange_and_shuffle(nets):
    model = models.build("resnet20", 10)
    mask = random_mask(model, layerwise_densities(model, 0.2, "erk"), seed=0)
    re = mask.rearranged(seed=1)
    assert re != mask
    assert [r.kept for r in re.report()] == [r.kept for r in mask.report()]
    mask.apply_(model)
    before = {k: p.detach().clone() for k, p in prunable_parameters(model).items()}
    mask.shuffle_weights_(model, seed=2)
    moved = False
    for k, p in prunable_parameters(model).items():
        m = mask.masks[k]
        assert (p[~m] == 0).all()
        assert torch.equal(torch.sort(p[m]).values, torch.sort(before[k][m]).values)
        moved |= not torch.equal(p[m], before[k][m])
    assert moved


def test_mask_save_load_and_report(tmp_path, nets):
    model = nets["mlp"]
    mask = random_mask(model, layerwise_densities(model, 0.3, "erk"), seed=0)
    mask.save(tmp_path / "m.pt")
    assert Mask.load(tmp_path / "m.pt") == mask
    rows = mask.report()
    assert [r.name for r in rows] == list(prunable_parameters(model))
    assert "total" in mask.table() and rows[0].name in mask.table()


def test_bad_input(nets):
    model = nets["resnet20"]
    for bad in [0, -0.1, 1.5, float("nan"), "0.1"]:
        with pytest.raises(ValueError, match=r"\(0, 1\]"):
            layerwise_densities(model, bad, "erk")
    with pytest.raises(ValueError, match="valid schemes: .*erk"):
        layerwise_densities(model, 0.1, "erkk")
    with pytest.raises(ValueError, match="data-dependent"):
        layerwise_densities(model, 0.1, "snip")
    with pytest.raises(ValueError, match="valid options"):
        layerwise_densities(model, 0.1, "erk", classifier_density=0.5)
    with pytest.raises(ValueError, match="valid models: .*resnet20"):
        models.build("resnet21x", 10)
    other = models.build("resnet32", 10)
    mask = random_mask(other, layerwise_densities(other, 0.1, "erk"), 0)
    with pytest.raises(ValueError, match="model lacks"):
        mask.apply_(model)
    wide = models.build("resnet20", 10, width=2)
    mask = random_mask(wide, layerwise_densities(wide, 0.1, "erk"), 0)
    with pytest.raises(ValueError, match="shape"):
        mask.apply_(model)
