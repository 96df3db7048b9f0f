"""rplib.data: offline sets, torchvision formats on tiny files in their real on-disk layout, splits,
batching, augmentation, corruptions and OoD inputs."""

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rplib import RunConfig, data
from rplib.data import CORRUPTIONS, DATASETS, OOD_SETS, DataConfig, corrupt, load, load_ood

from fakedata import alter_digits, write_cifar10, write_cifar100, write_svhn, write_svhn_mat

N_MNIST1D = 300  # small generated MNIST-1D: 240 train, 60 test


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    files = {"cifar10": write_cifar10(root), "cifar100": write_cifar100(root), "svhn": write_svhn(root)}
    return root, files


@pytest.fixture(scope="module")
def mnist1d():
    return load(DataConfig("mnist1d", num_samples=N_MNIST1D))


@pytest.fixture(scope="module")
def digits():
    return load(DataConfig("digits"))


def _raw(bundle, x):
    return x * bundle.std + bundle.mean


def _keys(x: torch.Tensor) -> torch.Tensor:
    """A scalar per example that differs between distinct examples (continuous inputs)."""
    w = torch.linspace(1.0, 2.0, x[0].numel(), dtype=torch.float64)
    return torch.sort(x.flatten(1).double() @ w).values


# --------------------------------------------------------------------------- config validation


def test_config_validation_lists_choices():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'.*" + ", ".join(DATASETS)):
        DataConfig("mnist")
    for bad in (1.0, -0.1, True, "0.1"):
        with pytest.raises(ValueError, match="val_fraction"):
            DataConfig(val_fraction=bad)
    with pytest.raises(ValueError, match="num_samples"):
        DataConfig(num_samples=5)
    with pytest.raises(ValueError, match="split_seed"):
        DataConfig(split_seed=-1)
    with pytest.raises(ValueError, match="download"):
        DataConfig(download="yes")
    with pytest.raises(ValueError, match="imagenet cannot be downloaded"):
        DataConfig("imagenet", download=True)
    with pytest.raises(ValueError, match="root"):
        DataConfig(root="")


# --------------------------------------------------------------------------- offline sets


def test_mnist1d_shapes_standardised_and_deterministic(mnist1d):
    b = mnist1d
    assert b.in_shape == (1, 40) and b.num_classes == 10 and b.bounds is None
    (x, y), (x_te, y_te) = b.train, b.test
    assert x.shape == (240, 1, 40) and x_te.shape == (60, 1, 40) and b.val is None
    assert y.dtype == torch.int64 and set(y.tolist()) == set(range(10))
    assert abs(x.mean().item()) < 1e-5 and abs(x.std(correction=0).item() - 1) < 1e-4
    assert b.mean.shape == b.std.shape == (1, 1, 1)
    again = load(DataConfig("mnist1d", num_samples=N_MNIST1D))
    assert torch.equal(again.train[0], x) and torch.equal(again.test[1], y_te)


def test_mnist1d_generation_leaves_global_rngs_alone(tmp_path):
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    load(DataConfig("mnist1d", num_samples=100, root=str(tmp_path)))  # an empty root: generated here
    assert np.random.rand() == expected


def _cached_file(root):
    (path,) = (Path(root) / "mnist1d").iterdir()
    return path


def test_mnist1d_is_kept_under_root_and_read_back_without_generating(tmp_path, monkeypatch):
    cfg = DataConfig("mnist1d", num_samples=100, root=str(tmp_path))
    generated = load(cfg)
    path = _cached_file(tmp_path)
    assert re.fullmatch(r"mnist1d-.+-100\.npz", path.name)
    data._mnist1d_arrays.cache_clear()  # as in a fresh process
    data._generated_mnist1d.cache_clear()

    def no_generator(num_samples):
        raise AssertionError("generated again although the file is there")

    monkeypatch.setattr(data, "_generate_mnist1d", no_generator)
    read = load(cfg)
    for split in ("train", "test"):
        assert torch.equal(getattr(read, split)[0], getattr(generated, split)[0])
        assert torch.equal(getattr(read, split)[1], getattr(generated, split)[1])
    with pytest.raises(AssertionError, match="generated again"):
        load(DataConfig("mnist1d", num_samples=110, root=str(tmp_path)))  # another size is another file


def test_a_damaged_mnist1d_file_is_generated_again_and_replaced(tmp_path):
    cfg = DataConfig("mnist1d", num_samples=100, root=str(tmp_path))
    expected = load(cfg)
    path = _cached_file(tmp_path)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])  # an interrupted copy, say
    data._mnist1d_arrays.cache_clear()
    again = load(cfg)
    assert torch.equal(again.train[0], expected.train[0]) and torch.equal(again.test[1], expected.test[1])
    assert path.read_bytes() == whole and [p.name for p in path.parent.iterdir()] == [path.name]


def test_mnist1d_loads_when_its_root_cannot_be_written(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    expected = load(DataConfig("mnist1d", num_samples=100, root=str(tmp_path / "writable")))
    got = load(DataConfig("mnist1d", num_samples=100, root=str(blocker)))  # root/mnist1d cannot be made
    assert torch.equal(got.train[0], expected.train[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "writable"]


def test_mnist1d_file_is_verified_against_the_configs_fingerprint(tmp_path):
    genuine = DataConfig("mnist1d", num_samples=100, root=str(tmp_path / "genuine"))
    assert genuine.fingerprint == data._arrays_sha256(data._generated_mnist1d(100))
    path = _cached_file(tmp_path / "genuine")
    with np.load(path) as f:
        arrays = {k: f[k].copy() for k in data._MNIST1D_KEYS}
    arrays["y"][0] = (arrays["y"][0] + 1) % 10  # one label edited, the recorded digest recomputed
    edited = tmp_path / "edited" / "mnist1d" / path.name
    edited.parent.mkdir(parents=True)
    np.savez(edited, **arrays, sha256=np.array(data._arrays_sha256(tuple(arrays.values()))))
    written = edited.read_bytes()
    other = DataConfig("mnist1d", num_samples=100, root=str(tmp_path / "edited"))
    assert other.fingerprint == data._arrays_sha256(tuple(arrays.values())) != genuine.fingerprint
    assert load(other).train is not None  # a run on the edited file is another run: it loads
    with pytest.raises(ValueError) as e:
        load(dataclasses.replace(genuine, root=str(tmp_path / "edited")))
    for part in (str(edited), other.fingerprint[:12], genuine.fingerprint[:12]):
        assert part in str(e.value), part
    assert "\n" not in str(e.value)
    assert edited.read_bytes() == written  # the edited file is used as it is, never regenerated


def test_a_copy_for_other_data_fills_its_fingerprint_in_again(tmp_path):
    a = DataConfig("mnist1d", num_samples=100, root=str(tmp_path))
    b = dataclasses.replace(a, num_samples=110)
    assert b.fingerprint == DataConfig("mnist1d", num_samples=110, root=str(tmp_path)).fingerprint != a.fingerprint
    assert load(b).num_examples("train") == 88
    assert dataclasses.replace(a, name="digits").fingerprint == DataConfig("digits").fingerprint
    assert dataclasses.replace(a, name="cifar10").fingerprint == ""
    assert dataclasses.replace(a, root=str(tmp_path / "elsewhere")).fingerprint == a.fingerprint  # the same claim
    assert RunConfig().with_({"data.num_samples": 100, "data.root": str(tmp_path)}).data == a


def test_fingerprint_is_only_for_datasets_that_take_one():
    with pytest.raises(ValueError, match="fingerprint is for mnist1d, digits, fashion_mnist only; .*cifar10"):
        DataConfig("cifar10", fingerprint="0" * 64)
    with pytest.raises(ValueError, match="fingerprint must be a SHA-256"):
        DataConfig("digits", fingerprint="0" * 63 + "A")


def test_digits_fingerprint_is_the_arrays_content(monkeypatch):
    genuine = RunConfig().with_({"data.name": "digits"})
    assert genuine.data.fingerprint == data._arrays_sha256(data._digits_arrays())
    alter_digits(monkeypatch)
    other = RunConfig().with_({"data.name": "digits"})
    assert other.data.fingerprint != genuine.data.fingerprint and other.hash != genuine.hash
    with pytest.raises(ValueError, match=f"digits arrays of scikit-learn .* {other.data.fingerprint[:12]}.*"
                                         f"{genuine.data.fingerprint[:12]}") as e:
        load(genuine.data)
    assert "\n" not in str(e.value)


def test_digits(digits):
    b = digits
    assert b.in_shape == (1, 8, 8) and b.num_classes == 10 and b.bounds == (0.0, 16.0)
    assert b.num_examples("train") + b.num_examples("test") == 1797 and b.num_examples("test") == 450
    assert b.mean.shape == (1, 1, 1, 1)
    raw = _raw(b, b.test[0])
    assert torch.allclose(raw, raw.round(), atol=1e-4) and raw.min() >= -1e-4 and raw.max() <= 16 + 1e-4
    x = b.train[0]
    assert abs(x.mean().item()) < 1e-5 and abs(x.std(correction=0).item() - 1) < 1e-4
    counts = torch.bincount(b.test[1], minlength=10)
    assert counts.min() >= 43 and counts.max() <= 47  # stratified


# --------------------------------------------------------------------------- torchvision formats on tiny files


@pytest.mark.parametrize("name,num_classes", [("cifar10", 10), ("cifar100", 100), ("svhn", 10)])
def test_torchvision_sets_round_trip(fake_root, name, num_classes):
    root, files = fake_root
    b = load(DataConfig(name, root=str(root)))
    assert b.in_shape == (3, 32, 32) and b.num_classes == num_classes and b.bounds == (0.0, 1.0)
    assert b.mean.shape == b.std.shape == (1, 3, 1, 1)
    for split in ("train", "test"):
        x_file, y_file = files[name][split]
        x, y = getattr(b, split)
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert torch.equal(y, torch.from_numpy(y_file).long())
        assert torch.allclose(_raw(b, x) * 255, torch.from_numpy(x_file).float(), atol=1e-3)
    x = b.train[0]
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(x.std(dim=(0, 2, 3), correction=0), torch.ones(3), atol=1e-4)
    if name == "svhn":
        assert b.test[1][0] == 0  # label 10 in the .mat file is the digit 0


def _match_crop(padded: torch.Tensor, out: torch.Tensor, flips: tuple[bool, ...]) -> bool:
    """Whether ``out`` is a 32x32 window of ``padded`` (optionally flipped)."""
    for flip in flips:
        src = padded.flip(2) if flip else padded
        for dy in range(9):
            for dx in range(9):
                if torch.equal(src[:, dy:dy + 32, dx:dx + 32], out):
                    return True
    return False


@pytest.mark.parametrize("name", ["cifar10", "svhn"])
def test_batched_augmentation_is_crop_and_flip(fake_root, name):
    root, _ = fake_root
    b = load(DataConfig(name, root=str(root)))
    x = b.train[0]
    n = x.shape[0]
    (xa, ya), = b.batches("train", n, augment=True, generator=torch.Generator().manual_seed(0))
    (xb, _), = b.batches("train", n, augment=True, generator=torch.Generator().manual_seed(0))
    assert xa.shape == x.shape and torch.equal(ya, b.train[1]) and torch.equal(xa, xb)
    changed = [not torch.equal(xa[i], x[i]) for i in range(n)]
    assert sum(changed) >= n // 2
    fill = (-b.mean / b.std).view(3, 1, 1)
    pads = fill.expand(n, 3, 40, 40).clone()
    pads[:, :, 4:36, 4:36] = x
    # every output is a padded crop; SVHN (digits are not mirror-symmetric) is never flipped
    for i in range(n):
        assert _match_crop(pads[i], xa[i], (False, True) if name == "cifar10" else (False,))
    if name == "cifar10":
        assert any(not _match_crop(pads[i], xa[i], (False,)) for i in range(n))  # some were flipped


def test_augment_off_in_config_and_for_offline_sets(fake_root, digits):
    root, _ = fake_root
    b = load(DataConfig("cifar10", root=str(root), augment=False))
    (xa, _), = b.batches("train", 100, augment=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(xa, b.train[0])
    (xd, _), = digits.batches("train", 5000, augment=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(xd, digits.train[0])


@pytest.mark.parametrize("name,folder", [("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python"),
                                         ("svhn", "svhn")])
def test_missing_files_error_names_folder_and_download(tmp_path, name, folder):
    with pytest.raises(ValueError) as e:
        load(DataConfig(name, root=str(tmp_path)))
    msg = str(e.value)
    assert str(tmp_path / folder) in msg and "download=True" in msg and "--set data.download=true" in msg


def test_download_flag_calls_torchvision_with_its_checksums(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar
    import torchvision.datasets.svhn as tv_svhn

    calls = []

    def fake_archive(url, root, filename=None, md5=None):
        calls.append((url, md5))
        write_cifar10(Path(root))

    def fake_url(url, root, filename=None, md5=None):
        calls.append((url, md5))
        Path(root).mkdir(parents=True, exist_ok=True)
        write_svhn_mat(Path(root) / filename, 5, np.random.default_rng(0))

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", fake_archive)
    monkeypatch.setattr(tv_svhn, "download_url", fake_url)
    b = load(DataConfig("cifar10", root=str(tmp_path), download=True))
    assert b.num_examples("train") == 20 and calls == [(tv_cifar.CIFAR10.url, tv_cifar.CIFAR10.tgz_md5)]
    load(DataConfig("cifar10", root=str(tmp_path), download=True))  # files present: nothing fetched
    assert len(calls) == 1
    b = load(DataConfig("svhn", root=str(tmp_path), download=True))
    assert b.num_examples("test") == 5 and calls[1:] == [tuple(tv_svhn.SVHN.split_list[s][::2]) for s in ("train", "test")]
    assert (tmp_path / "svhn" / "train_32x32.mat").is_file()


def test_incomplete_cifar_folder_is_missing(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(ValueError, match="missing: data_batch_3"):
        load(DataConfig("cifar10", root=str(tmp_path)))


# --------------------------------------------------------------------------- imagenet (ImageFolder)


def test_imagenet_folder_batches(tmp_path):
    rng = np.random.default_rng(0)
    for split, per_class in (("train", 3), ("val", 2)):
        for c in ("n01", "n02", "n03"):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(per_class):
                arr = rng.integers(0, 256, size=(24 + 4 * i, 30, 3), dtype=np.uint8)
                Image.fromarray(arr).save(tmp_path / split / c / f"{i}.{'png' if i % 2 else 'jpg'}")
    b = load(DataConfig("imagenet", root=str(tmp_path), val_fraction=0.25))
    assert b.num_classes == 3 and b.in_shape == (3, 224, 224) and b.train is None and b.test is None
    assert (b.num_examples("train"), b.num_examples("val"), b.num_examples("test")) == (7, 2, 6)
    runs = [list(b.batches("train", 4, shuffle=True, augment=True, generator=torch.Generator().manual_seed(3)))
            for _ in range(2)]
    assert [x.shape for x, _ in runs[0]] == [(4, 3, 224, 224), (3, 3, 224, 224)]
    for (xa, ya), (xb, yb) in zip(*runs):
        assert torch.equal(xa, xb) and torch.equal(ya, yb) and ya.dtype == torch.int64
    (x, y), = b.batches("test", 6)
    assert x.shape == (6, 3, 224, 224) and y.tolist() == [0, 0, 1, 1, 2, 2]
    raw = _raw(b, x)
    assert raw.min() >= -1e-4 and raw.max() <= 1 + 1e-4
    assert load_ood("gaussian", b, DataConfig("imagenet", root=str(tmp_path)), n=2).shape == (2, 3, 224, 224)


def test_imagenet_identity_is_its_file_listing(tmp_path, monkeypatch):
    root = tmp_path / "imagenet"
    for path in ("train/n01/a.JPEG", "train/n02/b.JPEG", "val/n01/c.JPEG", "val/n02/d.JPEG"):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(b"x" * 10)
    monkeypatch.chdir(tmp_path)

    def content(spelling: str) -> str:
        data._imagenet_fingerprint.cache_clear()  # computed once per process and root: as in a new process
        return DataConfig("imagenet", root=spelling).identity()["content"]

    base = content(str(root))
    for spelling in ("imagenet", "./imagenet/", "imagenet/../imagenet"):
        assert content(spelling) == base, spelling
    (root / "val" / "n02" / "d.JPEG").write_bytes(b"x" * 11)  # one file changes size
    resized = content(str(root))
    (root / "train" / "n01" / "e.JPEG").write_bytes(b"x" * 10)  # one file added
    added = content(str(root))
    (root / "train" / "n01" / "e.JPEG").rename(root / "train" / "n02" / "e.JPEG")  # moved to another class
    moved = content(str(root))
    assert len({base, resized, added, moved}) == 4


def test_imagenet_missing_folders(tmp_path):
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "train"))):
        load(DataConfig("imagenet", root=str(tmp_path)))


# --------------------------------------------------------------------------- validation split and batches


def test_val_split_sizes_disjoint_deterministic():
    cfg = DataConfig("mnist1d", num_samples=N_MNIST1D, val_fraction=0.2, split_seed=1)
    a, b = load(cfg), load(cfg)
    assert (a.num_examples("train"), a.num_examples("val"), a.num_examples("test")) == (192, 48, 60)
    assert torch.equal(a.val[0], b.val[0]) and torch.equal(a.train[1], b.train[1])
    raw = lambda x: _raw(a, x)  # noqa: E731  (undo the normalisation, which differs between splits)
    full = torch.tensor(data._mnist1d_arrays(N_MNIST1D, cfg.root)[0])
    both = torch.cat([raw(a.train[0]), raw(a.val[0])])
    assert torch.allclose(_keys(both), _keys(full), rtol=0, atol=1e-3)  # a partition of the training set
    assert torch.unique(_keys(both)).numel() == 240
    other = load(DataConfig("mnist1d", num_samples=N_MNIST1D, val_fraction=0.2, split_seed=2))
    assert not torch.equal(other.val[1], a.val[1]) or not torch.equal(other.val[0], a.val[0])
    assert torch.equal(other.test[1], a.test[1])  # the test set is never touched


def test_batches_cover_every_example_once_and_are_deterministic(mnist1d):
    b = mnist1d
    x, y = b.train

    def epoch(seed, **kw):
        return list(b.batches("train", 64, shuffle=True, generator=torch.Generator().manual_seed(seed), **kw))

    e1, e2, e3 = epoch(0), epoch(0), epoch(1)
    assert [len(yb) for _, yb in e1] == [64, 64, 64, 48]
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(e1, e2))
    assert not torch.equal(e1[0][1], e3[0][1])
    xs = torch.cat([xb for xb, _ in e1])
    assert torch.equal(_keys(xs), _keys(x)) and not torch.equal(xs, x)
    assert torch.equal(torch.cat([yb for _, yb in e1]).bincount(), y.bincount())
    assert [len(yb) for _, yb in epoch(0, drop_last=True)] == [64, 64, 64]
    # a generator's state carries over: the second epoch differs from the first, and resumes exactly
    g = torch.Generator().manual_seed(5)
    next(iter(b.batches("train", 64, shuffle=True, generator=g)))
    state = g.get_state()
    first = next(iter(b.batches("train", 64, shuffle=True, generator=g)))[1]
    g.set_state(state)
    assert torch.equal(next(iter(b.batches("train", 64, shuffle=True, generator=g)))[1], first)
    (xt, yt), = b.batches("test", 1000)
    assert torch.equal(xt, b.test[0]) and torch.equal(yt, b.test[1])


def test_batches_bad_arguments(mnist1d):
    b = mnist1d
    with pytest.raises(ValueError, match="valid splits: train, val, test"):
        b.batches("valid", 8)
    with pytest.raises(ValueError, match="val_fraction"):
        b.batches("val", 8)
    with pytest.raises(ValueError, match="generator"):
        b.batches("train", 8, shuffle=True)
    with pytest.raises(ValueError, match="training split only"):
        b.batches("test", 8, augment=True, generator=torch.Generator())
    with pytest.raises(ValueError, match="batch_size"):
        b.batches("train", 0)


# --------------------------------------------------------------------------- corruptions


def test_corrupt_semantics_and_determinism():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(200, 3, 4, 4, generator=g), torch.randint(0, 10, (200,), generator=g)
    x0, y0 = x.clone(), y.clone()
    xn, yn = corrupt(x, y, "none", 10, seed=0)
    assert torch.equal(xn, x) and torch.equal(yn, y)

    xl, yl = corrupt(x, y, "random_labels", 10, seed=0)
    assert torch.equal(xl, x) and (yl != y).float().mean() > 0.7 and set(yl.tolist()) == set(range(10))

    xp, yp = corrupt(x, y, "random_pixels", 10, seed=0)
    assert xp.shape == x.shape and yp.dtype == y.dtype and (yp != y).float().mean() > 0.7
    assert torch.equal(xp.flatten(1).sort(dim=1).values, x.flatten(1).sort(dim=1).values)
    assert (xp != x).flatten(1).any(dim=1).all()
    same = torch.arange(48.0).expand(5, 48).reshape(5, 3, 4, 4)
    shuffled = corrupt(same, y[:5], "random_pixels", 10, seed=0)[0]
    assert all(not torch.equal(shuffled[0], shuffled[i]) for i in range(1, 5))  # independent per example

    xh, yh = corrupt(x, y, "half", 10, seed=0)
    assert xh.shape == (100, 3, 4, 4) and len(yh) == 100
    idx = [int(torch.nonzero((x == xh[i]).flatten(1).all(dim=1))[0]) for i in range(100)]
    assert idx == sorted(set(idx)) and torch.equal(y[idx], yh)
    assert corrupt(x[:7], y[:7], "half", 10, seed=0)[0].shape[0] == 4

    for kind in CORRUPTIONS:
        a, b, c = corrupt(x, y, kind, 10, seed=3), corrupt(x, y, kind, 10, seed=3), corrupt(x, y, kind, 10, seed=4)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        if kind != "none":
            assert not (torch.equal(a[0], c[0]) and torch.equal(a[1], c[1]))
    assert torch.equal(x, x0) and torch.equal(y, y0)  # inputs untouched


def test_corrupt_bad_arguments():
    x, y = torch.zeros(4, 2), torch.zeros(4, dtype=torch.int64)
    with pytest.raises(ValueError, match="valid corruptions: " + ", ".join(CORRUPTIONS)):
        corrupt(x, y, "noise", 10, seed=0)
    with pytest.raises(ValueError, match="num_classes"):
        corrupt(x, y, "random_labels", 1, seed=0)
    with pytest.raises(ValueError, match="same"):
        corrupt(x, y[:3], "half", 10, seed=0)


# --------------------------------------------------------------------------- out-of-distribution inputs


def test_ood_mnist1d(mnist1d):
    b = mnist1d
    cfg = DataConfig("mnist1d", num_samples=N_MNIST1D)
    for name in OOD_SETS["mnist1d"]:
        assert load_ood(name, b, cfg).shape == (60, 1, 40)
    xs = load_ood("mnist1d_shuffled", b, cfg, n=60, seed=1)
    x = b.test[0]
    assert torch.equal(xs.flatten(1).sort(dim=1).values, x.flatten(1).sort(dim=1).values)
    assert not torch.equal(xs, x)
    assert torch.equal(xs, load_ood("mnist1d_shuffled", b, cfg, n=60, seed=1))
    z = load_ood("gaussian", b, cfg, n=20000)
    assert z.shape == (20000, 1, 40)
    assert abs(z.mean().item()) < 0.01 and abs(z.std().item() - 1) < 0.01


def test_ood_digits(digits):
    b = digits
    cfg = DataConfig("digits")
    for name in OOD_SETS["digits"]:
        assert load_ood(name, b, cfg).shape == (450, 1, 8, 8)
    letters = _raw(b, load_ood("letters", b, cfg, n=1000))
    assert letters.shape == (702, 1, 8, 8)  # 26 letters x 3 sizes x 9 shifts, no more
    assert torch.allclose(letters, letters.round(), atol=1e-4) and letters.min() > -1e-4 and letters.max() < 16 + 1e-4
    assert torch.unique(letters.flatten(1), dim=0).shape[0] > 600
    gauss = _raw(b, load_ood("gaussian", b, cfg, n=2000))
    assert gauss.min() >= -1e-4 and gauss.max() <= 16 + 1e-4 and abs(gauss.mean().item() - 8) < 0.05


def test_ood_sets_enter_the_identity_by_content(monkeypatch):
    cfg = DataConfig("digits")
    sets = ("letters", "gaussian")
    base = cfg.identity(sets)
    assert set(base["ood_content"]) == set(sets) and "ood_content" not in cfg.identity()
    assert base["ood_content"]["letters"] == "letters sha256 " + data._arrays_sha256((data._letters(),))
    letters = data._letters().copy()
    letters[0, 0, 0, 0] += 1  # one pixel of another font, say
    monkeypatch.setattr(data, "_letters", lambda: letters)
    assert cfg.identity(sets)["ood_content"]["letters"] != base["ood_content"]["letters"]
    assert cfg.identity(sets)["ood_content"]["gaussian"] == base["ood_content"]["gaussian"]
    monkeypatch.setattr(data, "_GAUSSIAN_STD", 0.3)  # the noise sets enter by their parameters
    assert cfg.identity(sets)["ood_content"]["gaussian"] != base["ood_content"]["gaussian"]


def test_ood_cifar10(fake_root):
    root, files = fake_root
    cfg = DataConfig("cifar10", root=str(root))
    b = load(cfg)
    sizes = {"svhn": 6, "cifar100": 5, "gaussian": 6}  # as many as the 6 test images, capped at the 5 of CIFAR-100
    for name in OOD_SETS["cifar10"]:
        assert load_ood(name, b, cfg).shape == (sizes[name], 3, 32, 32)
    svhn = load_ood("svhn", b, cfg, n=100)
    x_file = torch.from_numpy(files["svhn"]["test"][0]).float()
    assert torch.allclose(_raw(b, svhn) * 255, x_file, atol=1e-3)  # all 7, normalised with CIFAR-10's stats
    sub = load_ood("cifar100", b, cfg, n=3, seed=1)
    assert sub.shape == (3, 3, 32, 32) and torch.equal(sub, load_ood("cifar100", b, cfg, n=3, seed=1))
    gauss = _raw(b, load_ood("gaussian", b, cfg, n=500))
    assert gauss.min() >= -1e-5 and gauss.max() <= 1 + 1e-5 and abs(gauss.mean().item() - 0.5) < 0.01
    assert 0.01 < (gauss <= 1e-5).float().mean() < 0.04  # about 2.3% clipped at 0


def test_ood_svhn_for_cifar_needs_files(tmp_path, fake_root):
    root, _ = fake_root
    b = load(DataConfig("cifar10", root=str(root)))
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "svhn")) + ".*download=True"):
        load_ood("svhn", b, DataConfig("cifar10", root=str(tmp_path)))


def test_ood_bad_names(mnist1d):
    cfg = DataConfig("mnist1d", num_samples=N_MNIST1D)
    with pytest.raises(ValueError, match="valid OoD sets: mnist1d_shuffled, gaussian"):
        load_ood("svhn", mnist1d, cfg)
    with pytest.raises(ValueError, match="n must be"):
        load_ood("gaussian", mnist1d, cfg, n=0)


def test_synthetic_bundles_match_the_real_sets_shapes_sizes_and_augmentation(tmp_path: Path):
    write_cifar10(tmp_path, per_batch=20, n_test=30)
    real = load(DataConfig(name="cifar10", root=str(tmp_path)))
    fake = data.synthetic(DataConfig(name="cifar10", root=str(tmp_path / "absent")), n=40)
    assert (fake.in_shape, fake.num_classes, fake._crop_padding, fake._flip) == \
        (real.in_shape, real.num_classes, real._crop_padding, real._flip)
    assert [fake.num_examples(s) for s in data.SPLITS] == [40, 0, 40]
    svhn = data.synthetic(DataConfig(name="svhn", root="absent", val_fraction=0.1), n=8)
    assert (svhn._flip, svhn._crop_padding, svhn.num_examples("val")) == (False, 4, 8)  # SVHN is not flipped
    assert data.split_sizes(DataConfig(name="svhn", root="absent", val_fraction=0.1)) == \
        {"train": 65_931, "val": 7_326, "test": 26_032}
    digits = DataConfig(name="digits", val_fraction=0.2)
    assert data.split_sizes(digits) == {s: load(digits).num_examples(s) for s in data.SPLITS}
    assert data.synthetic(digits, n=5).in_shape == load(digits).in_shape
    assert not (tmp_path / "absent").exists()
