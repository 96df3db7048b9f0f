"""The run store: one directory per configuration hash, written atomically.

``runs/<hash>/`` holds ``config.json``, ``history.json`` (per epoch), ``mask_report.json``,
``checkpoint.pt`` and, once the run has finished, ``metrics.json``. A directory without
``metrics.json`` is unfinished and is resumed, never read as a result.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock

__all__ = ["canonical_json", "config_hash", "atomic_write_text", "atomic_write_json", "atomic_torch_save",
           "read_json", "default_root", "RunDir"]


def canonical_json(obj: Any) -> str:
    """Sorted keys, no whitespace: the same config always gives the same bytes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def config_hash(obj: Any, length: int = 12) -> str:
    """SHA-256 of the canonical JSON, first ``length`` hex digits."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:length]


def _atomic(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    _atomic(path, lambda f: f.write(text.encode()))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True) + "\n")


def atomic_torch_save(obj: Any, path: Path) -> None:
    _atomic(path, lambda f: torch.save(obj, f))


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def default_root() -> Path:
    """``$RPLIB_RUNS`` if set, else ``runs/`` in the working directory."""
    return Path(os.environ.get("RPLIB_RUNS", "runs"))


class RunDir:
    """The files of one run."""

    def __init__(self, root: Path | str, run_hash: str):
        self.hash = run_hash
        self.path = Path(root) / run_hash

    config = property(lambda self: self.path / "config.json")
    metrics = property(lambda self: self.path / "metrics.json")
    history = property(lambda self: self.path / "history.json")
    checkpoint = property(lambda self: self.path / "checkpoint.pt")
    mask_report = property(lambda self: self.path / "mask_report.json")

    def finished(self) -> bool:
        return self.metrics.is_file()

    def lock(self) -> FileLock:
        """An inter-process lock: concurrent requests for the same run wait instead of corrupting it."""
        self.path.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.path / ".lock"))
