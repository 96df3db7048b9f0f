"""The run store: one directory per configuration hash, written atomically.

``runs/<hash>/`` holds ``config.json``, ``history.json`` (per epoch), ``mask_report.json``,
``checkpoint.pt`` and, once the run has finished, ``metrics.json``. A directory without
``metrics.json`` is unfinished and is resumed, never read as a result.

Files are written atomically (temporary file + rename) with the permissions the process umask
allows, so a store can be shared by a group. A file that cannot be read raises :class:`StoreError`:
one line naming the file and how to recover.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["canonical_json", "config_hash", "atomic_write_text", "atomic_write_json", "atomic_torch_save",
           "read_json", "default_root", "RunDir", "RunLock", "StoreError"]


class StoreError(Exception):
    """A file of the run store is missing, unreadable or inconsistent; the message says how to recover."""


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
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp creates 0600; a store shared by a group needs the umask
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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_json(path: Path) -> Any:
    """The JSON document at ``path``; a missing or malformed file raises :class:`StoreError` naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise StoreError(f"{path}: file missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise StoreError(f"{path}: not valid JSON ({e})") from None


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

    def lock(self) -> RunLock:
        """An inter-process lock: concurrent requests for the same run wait instead of corrupting it."""
        return RunLock(self.path)

    def remove_temporary_files(self) -> None:
        """Delete the temporary files a killed writer left behind (call with the lock held)."""
        for tmp in self.path.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)


class RunLock:
    """An exclusive lock on a run directory, held while one process trains the run.

    The lock is ``flock`` on the directory itself, so deleting or replacing files inside it (the
    ``.lock`` file of earlier versions included) cannot let a second process in. Where the file
    system refuses ``flock`` on a directory (Linux NFS emulates ``flock`` with POSIX locks, which
    need a file open for writing), the lock falls back to ``flock`` on ``.lock`` and, once held,
    checks that ``.lock`` is still the file it locked, retrying otherwise.
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EBADF, errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                raise
            fd = self._lock_file()
        self._fd = fd
        return self

    def _lock_file(self) -> int:
        lock = self.path / ".lock"
        while True:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if os.fstat(fd).st_ino == os.stat(lock).st_ino:
                    return fd
            except FileNotFoundError:
                pass
            os.close(fd)  # the file was deleted or replaced while we waited: lock the new one

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None
