"""Tiny dataset files in the real on-disk formats of CIFAR-10, CIFAR-100, SVHN and Fashion-MNIST, and altered
scikit-learn digits (shared by the tests)."""

import gzip
import pickle
from pathlib import Path

import numpy as np
import scipy.io

def _images(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)


def _pickle(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def write_cifar10(root: Path, per_batch: int = 4, n_test: int = 6, seed: int = 0) -> dict:
    """``cifar-10-batches-py``: five training batches, a test batch and ``batches.meta`` (python pickles)."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    xs, ys = [], []
    for i in range(1, 6):
        x, y = _images(rng, per_batch), rng.integers(0, 10, per_batch).tolist()
        _pickle(folder / f"data_batch_{i}", {"data": x.reshape(per_batch, -1), "labels": y})
        xs.append(x)
        ys += y
    x_te, y_te = _images(rng, n_test), rng.integers(0, 10, n_test).tolist()
    _pickle(folder / "test_batch", {"data": x_te.reshape(n_test, -1), "labels": y_te})
    _pickle(folder / "batches.meta", {"label_names": [f"class{i}" for i in range(10)]})
    return {"train": (np.concatenate(xs), np.array(ys)), "test": (x_te, np.array(y_te))}


def write_cifar100(root: Path, n_train: int = 12, n_test: int = 5, seed: int = 1) -> dict:
    """``cifar-100-python``: ``train``, ``test`` and ``meta`` pickles with fine and coarse labels."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x, y = _images(rng, n), rng.integers(0, 100, n).tolist()
        _pickle(folder / split, {"data": x.reshape(n, -1), "fine_labels": y, "coarse_labels": [v // 5 for v in y]})
        out[split] = (x, np.array(y))
    _pickle(folder / "meta", {"fine_label_names": [f"f{i}" for i in range(100)],
                              "coarse_label_names": [f"c{i}" for i in range(20)]})
    return out


def write_svhn(root: Path, n_train: int = 10, n_test: int = 7, seed: int = 2) -> dict:
    """``svhn/{train,test}_32x32.mat``: X of shape (32, 32, 3, N), y of shape (N, 1) with 10 meaning digit 0."""
    rng = np.random.default_rng(seed)
    folder = root / "svhn"
    folder.mkdir(parents=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        out[split] = write_svhn_mat(folder / f"{split}_32x32.mat", n, rng)
    return out


def write_svhn_mat(path: Path, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x, y = _images(rng, n), rng.integers(0, 10, n)
    y[0] = 0
    scipy.io.savemat(path, {"X": x.transpose(2, 3, 1, 0), "y": np.where(y == 0, 10, y).reshape(n, 1).astype(np.uint8)})
    return x, y


def write_all(root: Path, **sizes) -> dict:
    """CIFAR-10, CIFAR-100 and SVHN under ``root``."""
    return {"cifar10": write_cifar10(root, **sizes.get("cifar10", {})), "cifar100": write_cifar100(root, **sizes.get("cifar100", {})),
            "svhn": write_svhn(root, **sizes.get("svhn", {}))}


def write_idx(path: Path, array: np.ndarray) -> None:
    """A gzipped idx file of unsigned bytes: magic 0x0000 08 <ndim>, big-endian int32 sizes, then the data."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_fashion_mnist(folder: Path, n_train: int = 40, n_test: int = 20, seed: int = 3) -> dict:
    """The four original Fashion-MNIST files (``train-images-idx3-ubyte.gz`` ...) in ``folder``: 28x28 images
    whose mean brightness follows the label (so a network can learn them) and labels 0..9."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        y = np.arange(n) % 10
        rng.shuffle(y)
        x = np.clip(rng.normal(20 * y[:, None, None] + 30, 25, size=(n, 28, 28)), 0, 255).astype(np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", x)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", y.astype(np.uint8))
        out[split] = (x, y)
    return out


def alter_digits(monkeypatch) -> None:
    """Make scikit-learn's ``load_digits`` return the digits with one pixel changed: other data of the same shape."""
    from sklearn import datasets

    real = datasets.load_digits

    def altered():
        d = real()
        d.data[0, 0] += 1
        return d

    monkeypatch.setattr(datasets, "load_digits", altered)
