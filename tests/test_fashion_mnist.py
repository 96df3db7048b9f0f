"""Fashion-MNIST from its four original gzipped idx files (Debian's ``dataset-fashion-mnist`` layout), on tiny
files the tests write in the real format: shapes, labels, split, content identity, damaged and missing files."""

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from rplib import RunConfig, data
from rplib.data import DataConfig, load, load_ood

from fakedata import alter_digits, write_fashion_mnist, write_idx

N_TRAIN, N_TEST = 40, 20


@pytest.fixture
def folder(tmp_path) -> tuple[Path, dict]:
    root = tmp_path / "data"
    return root, write_fashion_mnist(root / "fashion-mnist", N_TRAIN, N_TEST)


def _files(root: Path) -> list[Path]:
    return sorted((root / "fashion-mnist").iterdir())


def test_loads_shapes_labels_and_pixels(folder):
    root, files = folder
    b = load(DataConfig("fashion_mnist", root=str(root)))
    assert (b.in_shape, b.num_classes, b.bounds) == ((1, 28, 28), 10, (0.0, 1.0))
    assert b.num_examples("train") == N_TRAIN and b.num_examples("test") == N_TEST and b.val is None
    for split in ("train", "test"):
        x, y = getattr(b, split)
        raw = (x * b.std + b.mean) * 255
        np.testing.assert_allclose(raw[:, 0].numpy(), files[split][0], atol=1e-3)
        assert y.tolist() == files[split][1].tolist()


def test_validation_split_is_held_out_of_training(folder):
    root, files = folder
    cfg = DataConfig("fashion_mnist", root=str(root), val_fraction=0.25, split_seed=1)
    b = load(cfg)
    assert (b.num_examples("train"), b.num_examples("val"), b.num_examples("test")) == (30, 10, N_TEST)
    assert data.split_sizes(cfg) == {"train": 30, "val": 10, "test": N_TEST}
    assert data.input_spec(cfg) == ((1, 28, 28), 10)
    raw = {s: ((getattr(b, s)[0] * b.std + b.mean) * 255).round()[:, 0].flatten(1) for s in ("train", "val")}
    together = torch.cat([raw["train"], raw["val"]])
    original = torch.tensor(files["train"][0]).float().flatten(1)
    assert torch.equal(together.sort(dim=0).values, original.sort(dim=0).values)
    assert not set(map(tuple, raw["train"].tolist())) & set(map(tuple, raw["val"].tolist()))


def test_training_batches_are_not_augmented(folder):
    root, _ = folder
    b = load(DataConfig("fashion_mnist", root=str(root), augment=True))
    x, _ = next(b.batches("train", N_TRAIN, augment=True, generator=torch.Generator().manual_seed(0)))
    assert torch.equal(x, b.train[0])


def test_identity_is_the_content_not_the_folder_spelling(folder, tmp_path, monkeypatch):
    root, _ = folder
    monkeypatch.chdir(tmp_path)
    a = RunConfig().with_({"data.name": "fashion_mnist", "data.root": str(root)})
    assert a.data.fingerprint == data.fashion_mnist_fingerprint(root / "fashion-mnist")
    # the same folder spelt otherwise, and the four files named directly
    for spelling in ("data", "./data/", str(root / "fashion-mnist"), "data/fashion-mnist/../fashion-mnist"):
        assert RunConfig().with_({"data.name": "fashion_mnist", "data.root": spelling}).data.fingerprint == \
            a.data.fingerprint, spelling
    # a config read back from its JSON keeps its identity
    assert RunConfig.from_dict(a.to_dict()).hash == a.hash
    # other bytes: another fingerprint, another run
    other = tmp_path / "other"
    write_fashion_mnist(other / "fashion-mnist", N_TRAIN, N_TEST, seed=4)
    b = RunConfig().with_({"data.name": "fashion_mnist", "data.root": str(other)})
    assert b.data.fingerprint != a.data.fingerprint and b.hash != a.hash
    # a config made for other files refuses to load these
    with pytest.raises(ValueError, match="fingerprint"):
        load(DataConfig("fashion_mnist", root=str(other), fingerprint=a.data.fingerprint))


def test_fingerprint_follows_a_rewritten_file(folder):
    root, _ = folder
    before = data.fashion_mnist_fingerprint(root / "fashion-mnist")
    path = root / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz"
    write_idx(path, np.zeros(N_TEST, dtype=np.uint8))
    os.utime(path, ns=(1, 1))  # size and mtime both differ from the first write
    assert data.fashion_mnist_fingerprint(root / "fashion-mnist") != before


@pytest.mark.parametrize("damage", ["magic", "truncated", "count", "not_gzip", "labels"])
def test_damaged_file_is_a_one_line_error_and_nothing_is_written(folder, damage):
    root, files = folder
    sub = root / "fashion-mnist"
    if damage == "magic":  # a label file where the images belong: magic 2049, not 2051
        write_idx(sub / "train-images-idx3-ubyte.gz", files["train"][1].astype(np.uint8))
    elif damage == "truncated":
        raw = gzip.decompress((sub / "t10k-images-idx3-ubyte.gz").read_bytes())
        (sub / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw[:-100]))
    elif damage == "count":  # 19 labels for 20 images
        write_idx(sub / "t10k-labels-idx1-ubyte.gz", files["test"][1][:-1].astype(np.uint8))
    elif damage == "not_gzip":
        (sub / "train-labels-idx1-ubyte.gz").write_bytes(b"not a gzip file at all")
    else:  # label 12 in a 10-class set
        write_idx(sub / "train-labels-idx1-ubyte.gz", np.full(N_TRAIN, 12, dtype=np.uint8))
    before = sorted(p for p in root.rglob("*"))
    with pytest.raises(ValueError, match="fashion_mnist") as e:
        load(DataConfig("fashion_mnist", root=str(root)))
    assert "\n" not in str(e.value)
    assert sorted(p for p in root.rglob("*")) == before


def test_missing_files_name_the_package_folder_and_command(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "FASHION_MNIST_DEBIAN", str(tmp_path / "not-installed"))
    write_fashion_mnist(tmp_path / "data" / "fashion-mnist")
    (tmp_path / "data" / "fashion-mnist" / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(ValueError) as e:
        DataConfig("fashion_mnist", root=str(tmp_path / "data"))
    msg = str(e.value)
    assert "\n" not in msg
    for part in ("dataset-fashion-mnist", "apt-get install dataset-fashion-mnist", "t10k-images-idx3-ubyte.gz",
                 str(tmp_path / "data" / "fashion-mnist"), str(tmp_path / "not-installed")):
        assert part in msg, part


def test_config_rejects_download_and_foreign_fingerprints(folder):
    root, _ = folder
    with pytest.raises(ValueError, match="download"):
        DataConfig("fashion_mnist", root=str(root), download=True)
    with pytest.raises(ValueError, match="fingerprint is for mnist1d, digits, fashion_mnist only"):
        DataConfig("svhn", fingerprint="0" * 64)
    with pytest.raises(ValueError, match="SHA-256"):
        DataConfig("fashion_mnist", root=str(root), fingerprint="abc")


def test_ood_digits_and_gaussian(folder):
    root, _ = folder
    cfg = DataConfig("fashion_mnist", root=str(root))
    b = load(cfg)
    assert data.OOD_SETS["fashion_mnist"] == ("digits", "gaussian")
    digits = load_ood("digits", b, cfg, n=50)
    raw = digits * b.std + b.mean
    assert digits.shape == (50, 1, 28, 28)
    assert raw.min() >= -1e-5 and raw.max() <= 1 + 1e-5
    assert raw[:, :, :4].abs().max() < 1e-5 and raw[:, :, :, 24:].abs().max() < 1e-5  # the 4-pixel black frame
    assert raw[:, :, 4:24, 4:24].mean() > 0.1
    assert torch.equal(digits, load_ood("digits", b, cfg, n=50))
    assert load_ood("gaussian", b, cfg, n=8).shape == (8, 1, 28, 28)


def test_digits_ood_set_enters_the_identity_by_content(folder, monkeypatch):
    root, _ = folder
    run = RunConfig(data=DataConfig("fashion_mnist", root=str(root))).with_({"eval.ood": ["digits"]})
    without = run.with_({"eval.ood": []})
    before = run.hash, without.hash
    alter_digits(monkeypatch)
    assert run.hash != before[0] and without.hash == before[1]  # the same configs, other digits
