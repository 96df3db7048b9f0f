"""The run store: one directory per configuration hash, written atomically.

``runs/<hash>/`` holds ``config.json``, ``history.json`` (per epoch), ``mask_report.json``,
``checkpoint.pt`` and, once the run has finished, ``metrics.json``. A directory without
``metrics.json`` is unfinished and is resumed, never read as a result.

Files are written atomically (temporary file + rename) with the permissions the process umask
allows, so a store can be shared by a group. A file that cannot be read raises :class:`StoreError`:
one line naming the file and how to recover.

The store never writes outside its root: a run directory is ``<root>/<hash>`` with ``hash`` a
hexadecimal name, and :meth:`RunDir.check` refuses a run directory, lock folder or run file that is
a symbolic link, or that resolves outside the resolved root (the root itself may be a link). A run is
locked on two directories, ``<root>/.locks/<hash>`` and the run directory itself, so removing either of
them during a run cannot let a second process train into it: the other still holds it. A write that
the file system refuses (read-only store, disk full, file-size limit, a file where a directory is
expected) is a :class:`StoreError` naming the file, the cause and what to do. JSON is written and
read strictly: no ``NaN`` or ``Infinity`` (which strict JSON readers reject) and no duplicate keys.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import json
import math
import os
import re
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


def _write_problem(path: Path, e: OSError) -> str:
    """One line: which file could not be written, why, and what to do."""
    where = f"{path}: cannot write"
    advice = {
        errno.ENOSPC: "the disk is full; free space and rerun (an unfinished run resumes from its last checkpoint)",
        errno.EDQUOT: "the disk quota is exceeded; free space and rerun (an unfinished run resumes from its last "
                      "checkpoint)",
        errno.EFBIG: "the file exceeds this process's file-size limit (ulimit -f); raise the limit and rerun",
        errno.EROFS: "the file system is read-only; use a writable run store (--root or RPLIB_RUNS)",
        errno.EACCES: "permission denied; use a run store you may write to (--root or RPLIB_RUNS)",
        errno.EPERM: "permission denied; use a run store you may write to (--root or RPLIB_RUNS)",
        errno.EEXIST: f"{e.filename} is a file where a directory is expected; remove or rename it",
        errno.ENOTDIR: f"a file stands where a directory is expected on the way to {e.filename}; remove or rename it",
        errno.EISDIR: f"{e.filename or path} is a directory where a file is expected; remove it",
    }.get(e.errno)
    return f"{where} ({e.strerror or e}): {advice}" if advice else f"{where} ({e.strerror or e})"


def _atomic(path: Path, data: bytes) -> None:
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.parent.is_symlink():
            raise StoreError(f"{path.parent} is a symbolic link; the run store writes through no links: remove it")
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp creates 0600; a store shared by a group needs the umask
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise StoreError(_write_problem(path, e)) from None
        raise


def atomic_write_text(path: Path, text: str) -> None:
    _atomic(path, text.encode())


def _non_finite(obj: Any, where: str = "") -> str | None:
    """The dotted path of the first NaN or infinity in ``obj``, or None."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return where or "the value"
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    for k, v in items:
        found = _non_finite(v, f"{where}.{k}" if where else str(k))
        if found is not None:
            return found
    return None


def atomic_write_json(path: Path, obj: Any) -> None:
    """``obj`` as strict JSON (no NaN or infinity: a ``ValueError`` naming the entry, nothing written)."""
    bad = _non_finite(obj)
    if bad is not None:
        raise ValueError(f"{path}: {bad} is not a finite number; strict JSON cannot hold it, nothing was written")
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True, allow_nan=False) + "\n")


def atomic_torch_save(obj: Any, path: Path) -> None:
    buffer = io.BytesIO()  # serialised first, so that a failing write is a plain OSError of the file
    torch.save(obj, buffer)
    _atomic(path, buffer.getvalue())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_json(path: Path) -> Any:
    """The JSON document at ``path``; a missing or malformed file raises :class:`StoreError` naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text(), object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except FileNotFoundError:
        raise StoreError(f"{path}: file missing") from None
    except IsADirectoryError:
        raise StoreError(f"{path} is a directory where a file is expected; remove it (rm -r {path})") from None
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as e:
        raise StoreError(f"{path}: not valid JSON ({e})") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are all distinct (``json`` would keep the last of two silently)."""
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not strict JSON")


def default_root() -> Path:
    """``$RPLIB_RUNS`` if set, else ``runs/`` in the working directory."""
    return Path(os.environ.get("RPLIB_RUNS", "runs"))


_RUN_NAME = re.compile(r"[0-9a-f]{1,64}")


class RunDir:
    """The files of one run: ``<root>/<hash>``, its lock folder ``<root>/.locks/<hash>``."""

    def __init__(self, root: Path | str, run_hash: str):
        if not isinstance(run_hash, str) or not _RUN_NAME.fullmatch(run_hash):
            raise StoreError(f"{run_hash!r} is not a run hash (hexadecimal digits); a run directory is "
                             f"<root>/<hash> and never another path")
        self.hash = run_hash
        self.root = Path(root)
        self.path = self.root / run_hash
        self.lock_path = self.root / ".locks" / run_hash

    config = property(lambda self: self.path / "config.json")
    metrics = property(lambda self: self.path / "metrics.json")
    history = property(lambda self: self.path / "history.json")
    checkpoint = property(lambda self: self.path / "checkpoint.pt")
    mask_report = property(lambda self: self.path / "mask_report.json")

    def rewind_weights(self, epoch: int) -> Path:
        """A dense run's weights after ``epoch`` epochs, kept for the tickets that rewind to them."""
        return self.path / f"weights_epoch{epoch}.pt"

    def check(self) -> None:
        """Refuse (:class:`StoreError`, nothing touched) a store whose run directory, lock folder or run files
        would lead outside the resolved root: a symbolic link, a path resolving elsewhere, or a file where a
        directory is expected (and the reverse)."""
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"the run store {self.root} is a file, not a directory; remove it or choose another "
                             f"store (--root or RPLIB_RUNS)")
        root = self.root.resolve()
        for folder in (self.path, self.root / ".locks", self.lock_path):
            if folder.is_symlink():
                raise StoreError(f"{folder} is a symbolic link (to {os.readlink(folder)}); the run store follows no "
                                 f"link out of {root}: remove the link")
            if folder.exists() and not folder.is_dir():
                raise StoreError(f"{folder} is a file where the run store expects a directory; remove or rename it")
            if folder.exists() and root not in folder.resolve().parents:
                raise StoreError(f"{folder} resolves to {folder.resolve()}, outside the run store {root}; remove it")
        for f in (self.config, self.metrics, self.history, self.checkpoint, self.mask_report):
            if f.is_symlink():
                raise StoreError(f"{f} is a symbolic link (to {os.readlink(f)}); the run store follows no link: "
                                 f"remove it")
            if f.is_dir():
                raise StoreError(f"{f} is a directory where a file is expected; remove it (rm -r {f})")

    def finished(self) -> bool:
        return self.metrics.is_file()

    def lock(self) -> RunLock:
        """An inter-process lock: concurrent requests for the same run wait instead of corrupting it.

        It is held on the lock folder ``<root>/.locks/<hash>`` and on the run directory (created here),
        in that order, so that removing either while a process trains the run does not let a second
        process in: the second one waits on the directory still held. (Removing both during a run is
        not guarded.)"""
        self.check()
        return RunLock(self.lock_path, self.path)

    def remove_temporary_files(self) -> None:
        """Delete the temporary files a killed writer left behind (call with the lock held)."""
        self.check()
        for tmp in self.path.glob(".*.tmp"):
            try:
                tmp.unlink(missing_ok=True)
            except OSError as e:
                raise StoreError(_write_problem(tmp, e)) from None


class RunLock:
    """An exclusive lock on one or more directories (taken in the given order, released together), held
    while one process trains a run.

    Each lock is ``flock`` on the directory itself, so deleting or replacing files inside it (the
    ``.lock`` file of earlier versions included) cannot let a second process in; once held, the
    directory is checked to be still the one at ``path``, retrying otherwise. Where the file
    system refuses ``flock`` on a directory (Linux NFS emulates ``flock`` with POSIX locks, which
    need a file open for writing), the lock falls back to ``flock`` on ``.lock`` and, once held,
    checks that ``.lock`` is still the file it locked, retrying otherwise.
    """

    def __init__(self, *paths: Path | str):
        if not paths:
            raise TypeError("RunLock() takes at least one directory")
        self.paths = [Path(p) for p in paths]
        self._fds: list[int] = []

    def __enter__(self) -> RunLock:
        for path in self.paths:
            try:
                self._fds.append(self._lock(path))
            except OSError as e:
                self.__exit__()
                raise StoreError(_write_problem(path, e)) from None
            except BaseException:
                self.__exit__()
                raise
        return self

    @staticmethod
    def _lock(path: Path) -> int:
        while True:
            path.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as e:
                os.close(fd)
                if e.errno not in (errno.EBADF, errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                    raise
                return RunLock._lock_file(path)
            try:
                if os.fstat(fd).st_ino == os.stat(path).st_ino:
                    return fd
            except FileNotFoundError:
                pass
            os.close(fd)  # the directory was removed or replaced while we waited: lock the new one

    @staticmethod
    def _lock_file(path: Path) -> int:
        lock = path / ".lock"
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
        while self._fds:
            os.close(self._fds.pop())  # closing a descriptor releases its flock
