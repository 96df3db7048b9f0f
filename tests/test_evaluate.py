import copy
import json
import math
import types

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import rplib.evaluate
from rplib.evaluate import (
    EvalConfig, calibration_metrics, ece, evaluate, fgsm, grad_flow, ood_metrics, ood_scores, pgd, reliability,
    robust_accuracy,
)
from rplib.sparsity import Mask, random_mask

MEAN, STD, BOUNDS = 0.5, 0.25, (0.0, 1.0)


# --------------------------------------------------------------------------- fixtures


def _seeded(build, seed: int = 0) -> nn.Module:
    """Build a module with its default initialisation drawn from ``seed``, leaving the global RNG as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def _blobs(n: int, seed: int):
    """Two classes in [0, 1]^10 around 0.35 and 0.65 per coordinate."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    raw = (0.35 + 0.3 * y[:, None] + 0.1 * torch.randn(n, 10, generator=g)).clamp(0, 1)
    return (raw - MEAN) / STD, y


@pytest.fixture(scope="module")
def trained():
    model = _seeded(lambda: nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 2)))
    x, y = _blobs(400, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-2)
    for _ in range(50):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    for p in model.parameters():
        p.grad = None
    xt, yt = _blobs(200, seed=1)
    return model, xt, yt


def _accuracy(model, x, y):
    with torch.no_grad():
        return int((model(x).argmax(1) == y).sum()) / len(y)


@pytest.fixture
def fake_data(monkeypatch):
    def load_ood(name, bundle, data_cfg, n=None, seed=0):
        g = torch.Generator().manual_seed(seed)
        shape = (n, 10) if name == "uniform_noise" else (n, 3, 4)
        return (torch.rand(shape, generator=g) - MEAN) / STD

    fake = types.SimpleNamespace(OOD_SETS={"blobs": ("uniform_noise", "wrong_shape")}, load_ood=load_ood)
    monkeypatch.setattr(rplib.evaluate, "data", fake)
    return fake


def _bundle(x, y):
    def batches(split, batch_size):
        assert split == "test"
        return ((x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(x), batch_size))

    return types.SimpleNamespace(name="blobs", in_shape=tuple(x.shape[1:]), test=(x, y), mean=MEAN, std=STD,
                                 bounds=BOUNDS, batches=batches, num_examples=lambda split: len(x))


# --------------------------------------------------------------------------- OoD detection


def test_ood_scores_hand_values():
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    z = math.e + math.e**2 + math.e**3
    assert torch.allclose(ood_scores(logits, "msp"), torch.tensor([math.e**3 / z, 1 / 3]))
    assert torch.allclose(ood_scores(logits, "max_logit"), torch.tensor([3.0, 0.0]))
    assert torch.allclose(ood_scores(logits, "energy"), torch.tensor([math.log(z), math.log(3)]))
    shifted = ood_scores(logits + 5.0, "energy") - ood_scores(logits, "energy")
    assert torch.allclose(shifted, torch.full((2,), 5.0))
    assert torch.allclose(ood_scores(logits + 5.0, "msp"), ood_scores(logits, "msp"))


def test_ood_metrics_separable_and_identical():
    m = ood_metrics(torch.tensor([2.0, 3.0, 4.0]), torch.tensor([0.0, 1.0]))
    assert m == {"auroc": 1.0, "aupr": 1.0, "fpr95": 0.0}
    g = torch.Generator().manual_seed(0)
    m = ood_metrics(torch.randn(20000, generator=g), torch.randn(20000, generator=g))
    assert abs(m["auroc"] - 0.5) < 0.01
    assert abs(m["fpr95"] - 0.95) < 0.01
    assert abs(m["aupr"] - 0.5) < 0.01


def test_ood_metrics_hand_case():
    # pairs (in > out): 0.9 and 0.8 beat 3, 0.7 and 0.6 beat 2 -> 10 / 12
    # precision at each in-example in score order: 1/1, 2/2, 3/4, 4/5 -> AP = 3.55 / 4
    # 95% TPR needs all four in-examples (threshold 0.6): OoD 0.75 passes -> FPR 1/3
    m = ood_metrics(torch.tensor([0.9, 0.8, 0.7, 0.6]), torch.tensor([0.75, 0.5, 0.4]))
    assert m["auroc"] == pytest.approx(10 / 12)
    assert m["aupr"] == pytest.approx(0.8875)
    assert m["fpr95"] == pytest.approx(1 / 3)
    # exactly 95% TPR: 19 of 20 in-examples (scores >= 2) accepted; OoD 2.5, 10.5, 30 pass
    m = ood_metrics(torch.arange(1.0, 21.0), torch.tensor([1.5, 2.5, 10.5, 30.0]))
    assert m["fpr95"] == pytest.approx(0.75)


# --------------------------------------------------------------------------- calibration


def test_ece_perfectly_calibrated_is_near_zero():
    g = torch.Generator().manual_seed(0)
    logits = 2.0 * torch.randn(100_000, 4, generator=g)
    probs = logits.softmax(1)
    labels = torch.multinomial(probs, 1, generator=g).squeeze(1)
    assert ece(probs, labels) < 0.01
    assert ece((3 * logits).softmax(1), labels) > 0.1  # sharpened: overconfident


def test_ece_overconfident_hand_case():
    # 100 predictions at confidence 0.95 and 100 at 0.65, each half right:
    # ECE = 0.5 * |0.5 - 0.95| + 0.5 * |0.5 - 0.65| = 0.30
    probs = torch.tensor([[0.95, 0.05]] * 100 + [[0.65, 0.35]] * 100)
    labels = torch.tensor(([0, 1] * 50) * 2)
    assert ece(probs, labels) == pytest.approx(0.30)
    r = reliability(probs, labels)
    assert len(r["edges"]) == 16 and r["edges"][0] == 0.0 and r["edges"][-1] == 1.0
    assert r["count"] == [0] * 9 + [100] + [0] * 4 + [100]  # 0.65 in (9/15, 10/15], 0.95 in (14/15, 1]
    assert r["accuracy"][9] == pytest.approx(0.5) and r["accuracy"][14] == pytest.approx(0.5)
    assert r["confidence"][9] == pytest.approx(0.65) and r["confidence"][14] == pytest.approx(0.95)


def test_calibration_metrics_direct_formulas():
    g = torch.Generator().manual_seed(1)
    logits = 3 * torch.randn(50, 5, generator=g)
    labels = torch.randint(0, 5, (50,), generator=g)
    m = calibration_metrics(logits, labels)
    p = np.exp(logits.double().numpy())
    p /= p.sum(1, keepdims=True)
    nll = -np.mean([math.log(p[i, labels[i]]) for i in range(50)])
    brier = np.mean([sum((p[i, k] - (k == int(labels[i]))) ** 2 for k in range(5)) for i in range(50)])
    assert m["nll"] == pytest.approx(nll, rel=1e-9)
    assert m["brier"] == pytest.approx(brier, rel=1e-9)
    assert m["ece"] == pytest.approx(ece(logits.softmax(1), labels), abs=1e-6)
    assert sum(m["reliability"]["count"]) == 50
    json.dumps(m)


# --------------------------------------------------------------------------- attacks


def _raw_grad(model, raw, y, mean, std):
    raw = raw.clone().requires_grad_(True)
    F.cross_entropy(model((raw - mean) / std), y, reduction="sum").backward()
    return raw.grad


def test_fgsm_linear_moves_by_eps_sign_grad():
    model = _seeded(lambda: nn.Linear(5, 3))
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 5, generator=g), torch.randint(0, 3, (8,), generator=g)
    grad = _raw_grad(copy.deepcopy(model), x, y, 0.0, 1.0)
    model.train()
    adv = fgsm(model, x, y, 0.1, mean=0.0, std=1.0, bounds=None)
    assert torch.equal(adv, x + 0.1 * grad.sign())
    assert model.training and all(p.grad is None for p in model.parameters())
    assert torch.equal(fgsm(model, x, y, 0.0, mean=0.0, std=1.0, bounds=None), x)


def test_fgsm_normalised_inputs_raw_space_eps_and_bounds():
    model = _seeded(lambda: nn.Sequential(nn.Flatten(), nn.Linear(12, 3)))
    g = torch.Generator().manual_seed(0)
    raw = torch.rand(16, 3, 2, 2, generator=g)
    raw[0], raw[1] = 0.0, 1.0  # on the bounds: half of their steps get clipped
    y = torch.randint(0, 3, (16,), generator=g)
    mean = torch.tensor([0.5, 0.4, 0.3]).view(3, 1, 1)
    std = torch.tensor([0.2, 0.25, 0.3]).view(3, 1, 1)
    eps = 8 / 255
    x = (raw - mean) / std
    adv = fgsm(model, x, y, eps, mean=mean, std=std, bounds=BOUNDS)
    raw_adv = adv * std + mean
    sign = _raw_grad(model, raw, y, mean, std).sign()
    assert torch.allclose(raw_adv, (raw + eps * sign).clamp(0, 1), atol=1e-6)
    assert raw_adv.min() >= -1e-6 and raw_adv.max() <= 1 + 1e-6
    free = ((raw + eps * sign) >= 0) & ((raw + eps * sign) <= 1) & (sign != 0)
    assert free.sum() > 100 and (~free).sum() > 0
    delta = (raw_adv - raw).abs()
    assert delta.max() <= eps + 1e-6
    assert torch.allclose(delta[free], torch.full_like(delta[free], eps), atol=1e-6)
    step = ((adv - x).abs() * std / eps)[free]  # the normalised step is eps / std per channel
    assert torch.allclose(step, torch.ones_like(step), atol=1e-4)


def test_pgd_stays_in_ball_and_is_deterministic(trained):
    model, x, y = trained
    eps = 0.1
    kw = dict(steps=5, step_size=None, random_start=True, mean=MEAN, std=STD, bounds=BOUNDS)
    adv = pgd(model, x, y, eps, generator=torch.Generator().manual_seed(3), **kw)
    raw, raw_adv = x * STD + MEAN, adv * STD + MEAN
    assert (raw_adv - raw).abs().max() <= eps + 1e-6
    assert raw_adv.min() >= -1e-6 and raw_adv.max() <= 1 + 1e-6
    assert torch.equal(adv, pgd(model, x, y, eps, generator=torch.Generator().manual_seed(3), **kw))
    # a short step keeps the random start visible: another seed, another result
    short = dict(kw, steps=1, step_size=eps / 4)
    assert not torch.equal(pgd(model, x, y, eps, generator=torch.Generator().manual_seed(3), **short),
                           pgd(model, x, y, eps, generator=torch.Generator().manual_seed(4), **short))
    assert all(p.grad is None for p in model.parameters())
    # one step of size eps from the clean input is FGSM
    one = pgd(model, x, y, eps, steps=1, step_size=eps, random_start=False, mean=MEAN, std=STD, bounds=BOUNDS)
    assert torch.allclose(one, fgsm(model, x, y, eps, mean=MEAN, std=STD, bounds=BOUNDS), atol=1e-6)


def test_robust_accuracy_monotone_and_eps0_is_clean(trained):
    model, x, y = trained
    model.train()
    clean = _accuracy(model, x, y)
    assert clean > 0.95
    epsilons = [0.0, 0.02, 0.05, 0.1, 0.15, 0.3]
    kw = dict(mean=MEAN, std=STD, bounds=BOUNDS)
    acc_pgd = robust_accuracy(model, x, y, "pgd", epsilons, batch_size=64, steps=10, step_size=None,
                              random_start=True, generator=torch.Generator().manual_seed(0), **kw)
    acc_fgsm = robust_accuracy(model, x, y, "fgsm", epsilons, **kw)
    assert list(acc_pgd) == epsilons
    vals = list(acc_pgd.values())
    assert all(a >= b for a, b in zip(vals, vals[1:])), acc_pgd
    assert acc_pgd[0.0] == clean and acc_fgsm[0.0] == clean
    assert acc_pgd[0.3] < clean - 0.5
    assert all(acc_pgd[e] <= acc_fgsm[e] for e in epsilons), (acc_pgd, acc_fgsm)
    assert model.training
    model.eval()


# --------------------------------------------------------------------------- gradient flow


def test_grad_flow_matches_direct_masked_gradient():
    model = _seeded(lambda: nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))).train()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(20, 6, generator=g), torch.randint(0, 3, (20,), generator=g)
    mask = random_mask(model, {"0.weight": 0.3, "3.weight": 0.5}, seed=0)
    sentinel = torch.full_like(model[0].weight, 7.0)
    model[0].weight.grad = sentinel.clone()
    running = model[1].running_mean.clone()

    ref = copy.deepcopy(model)
    ref.zero_grad()
    F.cross_entropy(ref(x), y).backward()
    direct = math.sqrt(sum(float(((ref[i].weight.grad * mask.masks[f"{i}.weight"]) ** 2).sum()) for i in (0, 3)))
    dense = math.sqrt(sum(float((ref[i].weight.grad ** 2).sum()) for i in (0, 3)))

    assert grad_flow(model, mask, x, y) == pytest.approx(direct, rel=1e-5)
    assert grad_flow(model, None, x, y) == pytest.approx(dense, rel=1e-5)
    assert direct < dense
    assert torch.equal(model[0].weight.grad, sentinel) and model[3].weight.grad is None
    assert torch.equal(model[1].running_mean, running) and model.training

    model.eval()  # batch-wise accumulation gives the full-batch gradient (eval mode: no batch statistics)
    assert grad_flow(model, mask, x, y, batch_size=7) == pytest.approx(grad_flow(model, mask, x, y), rel=1e-5)

    with pytest.raises(ValueError, match="lacks"):
        grad_flow(model, Mask({"9.weight": torch.ones(3, 3, dtype=torch.bool)}), x, y)


# --------------------------------------------------------------------------- evaluate


def test_evaluate_matches_direct_computation(trained, fake_data):
    model, x, y = trained
    model.train()
    cfg = EvalConfig(ood=("uniform_noise",), ood_score="energy", calibration=True, attacks=("fgsm", "pgd"),
                     epsilons=(0.0, 0.05), pgd_steps=3, attack_examples=50)
    out = evaluate(model, _bundle(x, y), None, cfg, seed=2, batch_size=32)
    assert set(out) == {"ood", "calibration", "robustness"}
    assert model.training
    json.dumps(out)
    model.eval()
    with torch.no_grad():
        logits = model(x)
        xo = fake_data.load_ood("uniform_noise", None, None, n=len(x), seed=2)
        expected = ood_metrics(ood_scores(logits, "energy"), ood_scores(model(xo), "energy"))
    assert out["ood"] == {"uniform_noise": pytest.approx(expected)}
    assert out["calibration"]["ece"] == pytest.approx(calibration_metrics(logits, y)["ece"])
    pgd_direct = robust_accuracy(model, x[:50], y[:50], "pgd", [0.0, 0.05], steps=3, step_size=None,
                                 random_start=True, mean=MEAN, std=STD, bounds=BOUNDS,
                                 generator=torch.Generator().manual_seed(2))
    assert out["robustness"]["pgd"] == {str(e): a for e, a in pgd_direct.items()}
    assert out["robustness"]["fgsm"]["0.0"] == _accuracy(model, x[:50], y[:50])
    assert evaluate(model, _bundle(x, y), None, EvalConfig()) == {}


def test_evaluate_on_real_digits_bundle():
    from rplib import data, models

    data_cfg = data.DataConfig(name="digits")
    bundle = data.load(data_cfg)
    model = _seeded(lambda: models.build("mlp", bundle.num_classes, in_shape=bundle.in_shape, hidden=(16,)))
    cfg = EvalConfig(ood=data.OOD_SETS["digits"], calibration=True, attacks=("fgsm", "pgd"), epsilons=(0.0, 1.0),
                     pgd_steps=2, attack_examples=100)
    out = evaluate(model, bundle, data_cfg, cfg, batch_size=256)
    assert set(out["ood"]) == set(data.OOD_SETS["digits"])
    assert all(0.0 <= v <= 1.0 for m in out["ood"].values() for v in m.values())
    assert sum(out["calibration"]["reliability"]["count"]) == bundle.num_examples("test")
    x, y = bundle.test
    model.eval()
    assert out["robustness"]["fgsm"]["0.0"] == out["robustness"]["pgd"]["0.0"] == _accuracy(model, x[:100], y[:100])
    json.dumps(out)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("kw, match", [
    ({"ood_score": "odin"}, "valid scores: msp, max_logit, energy"),
    ({"attacks": ("fgsm", "cw")}, "valid attacks: fgsm, pgd"),
    ({"epsilons": (0.0, -0.1)}, "-0.1"),
    ({"epsilons": (float("nan"),)}, "nan"),
    ({"pgd_steps": 0}, "pgd_steps"),
    ({"pgd_step_size": 0.0}, "pgd_step_size"),
    ({"attack_examples": 0}, "attack_examples"),
    ({"ood": "cifar100"}, "ood must be a list of str"),
])
def test_eval_config_rejects_bad_values(kw, match):
    with pytest.raises(ValueError, match=match):
        EvalConfig(**kw)


def test_eval_config_normalises_lists():
    cfg = EvalConfig(ood=["a"], attacks=["pgd"], epsilons=[0, 0.1])
    assert cfg.ood == ("a",) and cfg.attacks == ("pgd",) and cfg.epsilons == (0.0, 0.1)
    assert hash(cfg) == hash(EvalConfig(ood=("a",), attacks=("pgd",), epsilons=(0.0, 0.1)))


def test_unknown_ood_set_and_shape_mismatch(trained, fake_data):
    model, x, y = trained
    with pytest.raises(ValueError, match="valid OoD sets: uniform_noise, wrong_shape"):
        EvalConfig(ood=("svhn",)).check_data("blobs")
    with pytest.raises(ValueError, match="valid OoD sets: none"):
        EvalConfig(ood=("svhn",)).check_data("unknown_data")
    EvalConfig(ood=("uniform_noise",)).check_data("blobs")
    with pytest.raises(ValueError, match=r"input shape \(3, 4\).*\(10,\)"):
        evaluate(model, _bundle(x, y), None, EvalConfig(ood=("wrong_shape",)))


def test_functions_reject_bad_values(trained):
    model, x, y = trained
    with pytest.raises(ValueError, match="valid scores"):
        ood_scores(torch.zeros(2, 3), "entropy")
    with pytest.raises(ValueError, match="-0.5"):
        fgsm(model, x, y, -0.5, mean=MEAN, std=STD, bounds=BOUNDS)
    with pytest.raises(ValueError, match="std"):
        pgd(model, x, y, 0.1, mean=MEAN, std=0.0, bounds=BOUNDS)
    with pytest.raises(ValueError, match="valid attacks"):
        robust_accuracy(model, x, y, "cw", [0.1], mean=MEAN, std=STD, bounds=BOUNDS)
    with pytest.raises(ValueError, match="labels"):
        ece(torch.full((3, 2), 0.5), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="finite"):
        ood_metrics(torch.tensor([1.0, float("nan")]), torch.tensor([0.0]))
