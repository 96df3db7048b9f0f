"""The store stays inside its root, results are tied to their run, data and health, and every fault is one line.

Each test reproduces a probe and checks the message and that nothing outside the expected files changed:
a listing with checksums of the run store and of a sentinel folder outside it, before and after.
"""

import errno
import hashlib
import io
import multiprocessing as mp
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from rplib import chapters, cli, data, executors, grid, plan, store, train
from rplib.config import RunConfig
from rplib.store import RunDir, StoreError, atomic_write_json, read_json

import fakedata  # tests/fakedata.py, on the path through conftest.py

TINY = {"data.num_samples": 600, "optim.epochs": 1, "optim.batch_size": 64, "device": "cpu"}


def tiny(**changes) -> RunConfig:
    """A run of about a second: MNIST-1D (600 samples), cnn1d, 1 epoch."""
    return RunConfig().with_({**TINY, **changes})


def tiny_args(*sets: str) -> list[str]:
    return [a for s in [*(f"{k}={v}" for k, v in TINY.items()), *sets] for a in ("--set", s)]


def snapshot(*folders: Path) -> dict[str, str]:
    """Every entry under ``folders``: a file's SHA-256, a link's target, or 'dir'."""
    out = {}
    for folder in folders:
        if not folder.exists() and not folder.is_symlink():
            out[str(folder)] = "absent"
            continue
        for dirpath, dirnames, filenames in os.walk(folder):
            for name in dirnames + filenames:
                p = Path(dirpath, name)
                out[str(p)] = (f"-> {os.readlink(p)}" if p.is_symlink() else "dir" if p.is_dir()
                               else hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def error_line(capsys, argv: list[str], status: int = 2) -> str:
    """``rplib ARGV`` in this process ends with ``status`` and exactly one stderr line ``rplib: error: ...``."""
    assert cli.main(argv) == status
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rplib: error: "), lines
    return lines[0]


@pytest.fixture
def sentinel(tmp_path) -> Path:
    """A folder outside the store, with files named like a run's."""
    s = tmp_path / "outside"
    s.mkdir()
    for name, text in (("config.json", "{}"), ("history.json", "[]"), (".history.json.x.tmp", "keep")):
        (s / name).write_text(text)
    return s


# --------------------------------------------------------------------------- 1. the store never writes outside its root


def test_symlinked_run_directory_is_refused(tmp_path, sentinel, capsys):
    root = tmp_path / "runs"
    root.mkdir()
    cfg = tiny()
    (root / cfg.hash).symlink_to(sentinel)
    before = snapshot(root, sentinel)
    with pytest.raises(StoreError, match=f"{cfg.hash} is a symbolic link .*follows no link out of"):
        train.run(cfg, root=root)
    line = error_line(capsys, ["train", "--root", str(root), "--quiet", *tiny_args()])
    assert "symbolic link" in line
    assert snapshot(root, sentinel) == before
    (root / cfg.hash).unlink()
    (root / ".locks").symlink_to(sentinel)  # the lock folder may not lead out either
    before_locks = snapshot(root, sentinel)
    assert "symbolic link" in error_line(capsys, ["train", "--root", str(root), "--quiet", *tiny_args()])
    assert snapshot(root, sentinel) == before_locks
    assert before != before_locks  # the listing sees the links (the comparison can fail)


def test_run_names_cannot_leave_the_root(tmp_path):
    for name in ("../outside", "..", "a/b", "/etc", ""):
        with pytest.raises(StoreError, match="is not a run hash"):
            RunDir(tmp_path, name)


# --------------------------------------------------------------------------- 2. checkpoints bound to their run


def _unfinish(rd: RunDir) -> None:
    rd.metrics.unlink()


def test_checkpoint_of_another_run_or_epoch_or_width_is_refused(tmp_path, sentinel):
    a, b, wide = tiny(), tiny(**{"optim.lr": 0.05}), tiny(**{"model.width": 2.0})
    for cfg in (a, b, wide):
        train.run(cfg, root=tmp_path / "runs")
    ra, rb, rw = (RunDir(tmp_path / "runs", c.hash) for c in (a, b, wide))
    for rd in (rb, rw):
        _unfinish(rd)
    shutil.copy(ra.checkpoint, rb.checkpoint)  # copied from another config's directory
    before = snapshot(tmp_path / "runs", sentinel)
    with pytest.raises(StoreError, match=f"checkpoint.pt cannot be used \\(it belongs to run {a.hash}, not {b.hash}\\)"
                                         ".*rm .*checkpoint.pt"):
        train.run(b, root=tmp_path / "runs")
    assert snapshot(tmp_path / "runs", sentinel) == before
    ckpt = torch.load(ra.checkpoint, weights_only=True)
    torch.save({**ckpt, "hash": b.hash, "epoch": -5}, rb.checkpoint)
    before = snapshot(tmp_path / "runs", sentinel)
    with pytest.raises(StoreError, match="its epoch -5 is not in 1..1"):
        train.run(b, root=tmp_path / "runs")
    assert snapshot(tmp_path / "runs", sentinel) == before
    torch.save({**ckpt, "hash": wide.hash}, rw.checkpoint)  # same run hash, another width's tensors
    before = snapshot(tmp_path / "runs", sentinel)
    with pytest.raises(StoreError, match="parameter shapes differ from this run's network"):
        train.run(wide, root=tmp_path / "runs")
    assert snapshot(tmp_path / "runs", sentinel) == before
    assert not rb.finished() and not rw.finished()


def _dense_and_ticket(**ticket) -> tuple[RunConfig, RunConfig]:
    """A small MLP's dense run (optim.lr=0.1) and a lottery ticket whose dense pre-training it is."""
    dense = tiny(**{"model.name": "mlp", "optim.lr": 0.1, "optim.epochs": 2})
    lottery = dense.with_({"sparsity.method": "lottery", "sparsity.density": 0.2, **ticket})
    assert train.pretraining_config(lottery) == dense
    return dense, lottery


def _refused(capsys, runs: Path, sentinel: Path, ticket: RunConfig, message: str) -> None:
    """Training ``ticket`` (in this process and through the CLI) is refused with one line matching ``message`` that
    says to retrain the dense run, and nothing in the store or the sentinel folder changes."""
    before = snapshot(runs, sentinel)
    with pytest.raises(StoreError, match=message) as refused:
        train.run(ticket, root=runs)
    assert len(str(refused.value).splitlines()) == 1
    assert "remove the dense run's directory (rm -r " in str(refused.value)
    sets = [f"{k}={v}" for k, v in (("model.name", "mlp"), ("optim.lr", 0.1), ("optim.epochs", 2),
                                    ("sparsity.method", "lottery"), ("sparsity.density", 0.2),
                                    ("sparsity.rewind_epoch", ticket.sparsity.rewind_epoch))]
    assert re.search(message, error_line(capsys, ["train", "--root", str(runs), "--quiet", *tiny_args(*sets)]))
    assert snapshot(runs, sentinel) == before


def test_a_ticket_refuses_a_dense_pre_training_checkpoint_of_another_run(tmp_path, sentinel, capsys):
    """The audit's reproduction: the lr=0.05 run's checkpoint copied into the lr=0.1 dense run's directory is not
    taken as the dense pre-training of a lottery ticket drawn from the lr=0.1 run."""
    runs = tmp_path / "runs"
    dense, lottery = _dense_and_ticket()
    other = dense.with_({"optim.lr": 0.05})
    for cfg in (dense, other):
        train.run(cfg, root=runs)
    rd = RunDir(runs, dense.hash)
    shutil.copy(RunDir(runs, other.hash).checkpoint, rd.checkpoint)
    _refused(capsys, runs, sentinel, lottery,
             f"{rd.checkpoint} cannot be used \\(it belongs to run {other.hash}, not {dense.hash}\\)")
    ckpt = torch.load(RunDir(runs, other.hash).checkpoint, weights_only=True)
    torch.save({**ckpt, "hash": dense.hash, "epoch": 1, "step": ckpt["step"] // 2}, rd.checkpoint)  # not its last
    _refused(capsys, runs, sentinel, lottery, "checkpoint.pt cannot be used \\(its epoch 1 is not 2\\)")
    assert not RunDir(runs, lottery.hash).path.exists()


def test_a_ticket_refuses_rewind_weights_of_another_run_or_epoch_or_without_their_run(tmp_path, sentinel, capsys):
    runs = tmp_path / "runs"
    dense, lottery = _dense_and_ticket(**{"sparsity.rewind_epoch": 1})
    other = dense.with_({"optim.lr": 0.05})
    for cfg in (dense, other):
        train.run(cfg, root=runs)
    rd = RunDir(runs, dense.hash)
    genuine = torch.load(rd.rewind_weights(1), weights_only=True)
    assert (genuine["hash"], genuine["epoch"]) == (dense.hash, 1) and genuine["shapes"]
    shutil.copy(RunDir(runs, other.hash).rewind_weights(1), rd.rewind_weights(1))
    _refused(capsys, runs, sentinel, lottery,
             f"weights_epoch1.pt cannot be used \\(it belongs to run {other.hash}, not {dense.hash}\\)")
    shutil.copy(rd.rewind_weights(2), rd.rewind_weights(1))
    _refused(capsys, runs, sentinel, lottery, "weights_epoch1.pt cannot be used \\(its epoch 2 is not 1\\)")
    torch.save(genuine["model"], rd.rewind_weights(1))  # as rplib wrote it before rewind weights recorded their run
    _refused(capsys, runs, sentinel, lottery,
             "weights_epoch1.pt cannot be used \\(lacks model, epoch, step, hash, shapes\\)")
    torch.save(genuine, rd.rewind_weights(1))
    assert train.run(lottery, root=runs).metrics["density"] < 1  # the genuine file is taken


# --------------------------------------------------------------------------- 3. safe config parsing


BOMB = "".join(f"{k}: &{k} [{', '.join([f'*{p}'] * 9 if p else ['x'] * 9)}]\n"
               for p, k in zip(["", *"abcdefgh"], "abcdefghi"))


def test_yaml_alias_bomb_and_duplicate_keys_are_refused(tmp_path, capsys):
    assert len(BOMB) < 420  # the 9**9 expansion from a few hundred bytes
    runs = tmp_path / "runs"
    cases = {"bomb.yaml": (BOMB, "more than 100000 nodes, the limit"),
             "dup.yaml": ("optim: {lr: 0.1}\noptim: {epochs: 2}\n", "duplicate key 'optim'"),
             "dup.json": ('{"optim": {"lr": 0.1}, "model": {}, "optim": {"epochs": 2}}', "duplicate key 'optim'"),
             "huge.yaml": ("#" * 1_000_001, "more than the 1000000 a config may have")}
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        t0 = time.perf_counter()
        line = error_line(capsys, ["train", "--root", str(runs), "--config", str(tmp_path / name)])
        assert message in line and name in line
        assert time.perf_counter() - t0 < 30  # refused, not expanded
    assert not runs.exists()


def test_store_json_is_strict(tmp_path):
    with pytest.raises(ValueError, match="test_loss is not a finite number"):
        atomic_write_json(tmp_path / "m.json", {"test_loss": float("nan")})
    assert not list(tmp_path.iterdir())  # nothing written, not even a temporary file
    (tmp_path / "nan.json").write_text('{"a": NaN}')
    (tmp_path / "dup.json").write_text('{"a": 1, "a": 2}')
    with pytest.raises(StoreError, match="NaN is not strict JSON"):
        read_json(tmp_path / "nan.json")
    with pytest.raises(StoreError, match="duplicate key 'a'"):
        read_json(tmp_path / "dup.json")


# --------------------------------------------------------------------------- 4. training health


def test_diverged_run_is_never_a_result(tmp_path, sentinel):
    runs = tmp_path / "runs"
    cfg = tiny(**{"optim.lr": 1e6})
    with pytest.raises(train.TrainingError, match=f"run {cfg.hash} diverged: its training loss is nan after epoch 1 "
                                                  r"\(optim.lr=1e\+06\); nothing is stored"):
        train.run(cfg, root=runs)
    rd = RunDir(runs, cfg.hash)
    assert not rd.finished()
    for f in rd.path.glob("*.json"):
        read_json(f)  # strict: no NaN anywhere
    with pytest.raises(executors.GridError, match="diverged"):  # the chapters' reader
        grid.run_grid([cfg], root=runs, progress=False, executor="serial")
    assert plan.seconds_per_epoch([cfg], runs) == {}  # the plan's epoch times
    assert not rd.finished()


@pytest.mark.parametrize("metric,message", [("val_loss", "its validation loss is nan after epoch 1"),
                                            ("ood", "its ood.gaussian.auroc is not finite after epoch 1")])
def test_a_non_finite_metric_ends_the_run_as_diverged(tmp_path, sentinel, monkeypatch, metric, message):
    """A NaN validation loss (the training loss finite), or a NaN among the final metrics, ends the run with the
    diverged run's one line, not with the JSON writer's refusal; no metrics.json or history.json is written."""
    runs = tmp_path / "runs"
    cfg = tiny(**{"data.val_fraction": 0.2})
    if metric == "val_loss":
        accuracy = train._Trainer.accuracy
        monkeypatch.setattr(train._Trainer, "accuracy", lambda self, model, split: (
            (0.5, float("nan")) if split == "val" else accuracy(self, model, split)))
    else:
        monkeypatch.setattr(train.revaluate, "evaluate", lambda *a, **k: {"ood": {"gaussian": {"auroc": float("nan")}}})
    before = snapshot(sentinel)
    with pytest.raises(train.TrainingError, match=f"run {cfg.hash} diverged: {message} "
                                                  r"\(optim.lr=0.1\); nothing is stored as its result") as diverged:
        train.run(cfg, root=runs)
    assert len(str(diverged.value).splitlines()) == 1
    rd = RunDir(runs, cfg.hash)
    assert not rd.finished() and not rd.metrics.exists() and not rd.history.exists()
    for f in rd.path.glob("*.json"):
        read_json(f)  # strict: no NaN anywhere
    assert snapshot(sentinel) == before


@pytest.mark.parametrize("sets,message", [
    (["optim.gamma=-5"], "optim.gamma must be >= 0"),
    (["optim.batch_size=1000"], "optim.batch_size=1000 is larger than the 480 training examples of mnist1d: "
                                "every epoch would take no optimizer step"),
    (["model.width=1e-9"], "has 61 prunable weights, fewer than the floor of 100"),
    (["data.name=digits", "model.name=vgg19"], "model.name='vgg19' cannot take the digits inputs of shape (1, 8, 8)"),
])
def test_untrainable_configs_are_refused_before_anything_is_written(tmp_path, sentinel, capsys, sets, message):
    runs = tmp_path / "runs"
    before = snapshot(runs, sentinel)
    assert message in error_line(capsys, ["train", "--root", str(runs), "--quiet", *tiny_args(*sets)])
    assert snapshot(runs, sentinel) == before


# --------------------------------------------------------------------------- 5. data identity by content


def test_hash_ignores_how_the_data_root_is_spelled(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    hashes = {tiny(**{"data.root": r}).hash for r in ("data", "./data", "data/", str(tmp_path / "data"))}
    assert len(hashes) == 1
    assert tiny(**{"data.download": True}).hash in hashes
    assert tiny(**{"data.num_samples": 700}).hash not in hashes  # what the data are still counts


def test_edited_mnist1d_cache_is_regenerated_not_trusted(tmp_path):
    root = str(tmp_path / "data")
    data._mnist1d_arrays.cache_clear()
    genuine = data._mnist1d_arrays(600, root)
    (path,) = (tmp_path / "data" / "mnist1d").iterdir()
    with np.load(path) as f:
        stored = {k: f[k] for k in f.files}
    stored["x"] = np.zeros_like(stored["x"])  # edited, its recorded digest left as it was
    np.savez(path, **stored)
    data._mnist1d_arrays.cache_clear()
    again = data._mnist1d_arrays(600, root)
    assert all(np.array_equal(g, a) for g, a in zip(genuine, again))
    with np.load(path) as f:
        assert np.array_equal(f["x"], genuine[0]) and str(f["sha256"]) == data._arrays_sha256(genuine)
    data._mnist1d_arrays.cache_clear()


def test_edited_mnist1d_cache_with_a_recomputed_digest_is_another_run_and_refused(tmp_path, sentinel, capsys):
    genuine = tiny(**{"data.root": str(tmp_path / "genuine")})
    (path,) = (tmp_path / "genuine" / "mnist1d").iterdir()
    with np.load(path) as f:
        arrays = {k: f[k].copy() for k in data._MNIST1D_KEYS}
    arrays["x"][0, 0, 0] += 1.0  # one value edited, the digest recorded in the file recomputed to match
    edited = tmp_path / "edited" / "mnist1d" / path.name
    edited.parent.mkdir(parents=True)
    np.savez(edited, **arrays, sha256=np.array(data._arrays_sha256(tuple(arrays.values()))))
    assert tiny(**{"data.root": str(tmp_path / "edited")}).hash != genuine.hash
    runs = tmp_path / "runs"
    before = snapshot(runs, sentinel, edited.parent)
    line = error_line(capsys, ["train", "--root", str(runs), "--quiet", *tiny_args(
        f"data.root={tmp_path / 'edited'}", f"data.fingerprint={genuine.data.fingerprint}")])
    for part in (str(edited), data._arrays_sha256(tuple(arrays.values()))[:12], genuine.data.fingerprint[:12]):
        assert part in line, part
    assert snapshot(runs, sentinel, edited.parent) == before  # nothing trained, nothing written


def test_file_datasets_hash_by_their_content(tmp_path):
    def cifar(root: Path) -> RunConfig:
        return RunConfig().with_({"data.name": "cifar10", "data.root": str(root), "model.name": "resnet20"})

    official = cifar(tmp_path / "none").hash  # not downloaded yet: the published checksums
    fakedata.write_cifar10(tmp_path / "fake")
    fake = cifar(tmp_path / "fake").hash
    assert fake != official
    assert cifar(f"{os.path.relpath(tmp_path / 'fake')}/").hash == fake
    batch = tmp_path / "fake" / "cifar-10-batches-py" / "data_batch_1"
    batch.write_bytes(batch.read_bytes() + b"\0")
    assert cifar(tmp_path / "fake").hash not in (fake, official)
    with_ood = cifar(tmp_path / "fake").with_({"eval.ood": ["svhn"]}).hash
    fakedata.write_svhn(tmp_path / "fake")  # the OoD set's files count too
    assert cifar(tmp_path / "fake").with_({"eval.ood": ["svhn"]}).hash != with_ood


# --------------------------------------------------------------------------- 6. environment and file-system faults


def test_file_system_faults_are_one_line(tmp_path, sentinel, capsys, monkeypatch):
    runs = tmp_path / "runs"
    args = ["train", "--root", str(runs), "--quiet", *tiny_args()]
    cfg = tiny()
    runs.write_text("not a folder")
    assert "is a file, not a directory" in error_line(capsys, args)
    runs.unlink()
    runs.mkdir()
    (runs / cfg.hash).write_text("not a folder")
    assert "is a file where the run store expects a directory" in error_line(capsys, args)
    (runs / cfg.hash).unlink()
    (runs / cfg.hash / "metrics.json").mkdir(parents=True)
    assert "metrics.json is a directory where a file is expected" in error_line(capsys, args)
    shutil.rmtree(runs / cfg.hash)

    before = snapshot(runs, sentinel)
    real_mkstemp = tempfile.mkstemp

    def fail(code: int):
        def mkstemp(*a, **kw):
            raise OSError(code, os.strerror(code))
        return mkstemp

    monkeypatch.setattr(store.tempfile, "mkstemp", fail(errno.EROFS))
    assert "the file system is read-only; use a writable run store" in error_line(capsys, args)
    monkeypatch.setattr(store.tempfile, "mkstemp", real_mkstemp)
    monkeypatch.setattr(store.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left")))
    line = error_line(capsys, args)
    assert "config.json: cannot write (No space left): the disk is full; free space and rerun" in line
    monkeypatch.undo()
    assert not list(runs.rglob("*.tmp"))
    assert {k: v for k, v in snapshot(runs, sentinel).items() if ".locks" not in k} == before | {
        str(runs / cfg.hash): "dir"}


def test_thread_count_above_the_cores_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RPLIB_THREADS", "5000")
    line = error_line(capsys, ["train", "--root", str(tmp_path / "runs"), *tiny_args()])
    assert f"RPLIB_THREADS=5000 is more than the {os.cpu_count()} CPU cores" in line
    assert not (tmp_path / "runs").exists()


def test_large_grid_announces_itself_and_stops_at_once(tmp_path, capsys, monkeypatch):
    class Interrupted(executors.Executor):
        def execute(self, configs, root, done, progress):
            raise KeyboardInterrupt  # Ctrl-C right after the announcement

    monkeypatch.setattr(executors, "LARGE_GRID", 2)
    configs = [tiny(seed=s) for s in range(3)]
    with pytest.raises(KeyboardInterrupt):
        executors.execute_grid(configs, tmp_path / "runs", False, Interrupted())
    err = capsys.readouterr().err
    hours = plan.grid_hours(configs, tmp_path / "runs")
    assert f"rplib: a grid of 3 runs, 3 to train (about {hours:.1f} hours on one worker" in err
    assert not (tmp_path / "runs").exists()


SEEDED = [name for name, module in chapters.CHAPTERS.items() if "seeds" in module.Params.names()]


def _seeded_grid(name: str, values: dict) -> list[RunConfig]:
    """The chapter's seeded grid, each config once (without the training-length check's few longer runs, which
    do not grow with the seeds)."""
    return list({c.hash: c for c in chapters.CHAPTERS[name].grid(chapters.params(name, values))}.values())


def test_a_huge_chapter_grid_is_announced_before_its_configs_are_built(tmp_path, capsys, monkeypatch):
    """``papermill -p seeds 10000`` on chapter 3 (80,000 runs): the notebook's first cell announces the grid before
    the 100th of its configs exists; Ctrl-C there (here: at the 100th) stops it with nothing written."""
    from rplib.chapters import schemes

    runs = tmp_path / "runs"
    built = []
    post_init = RunConfig.__post_init__

    def counted(self):
        post_init(self)
        built.append(1)
        if len(built) == 100:
            raise KeyboardInterrupt  # Ctrl-C, once the announcement must be out

    monkeypatch.setattr(RunConfig, "__post_init__", counted)
    with pytest.raises(KeyboardInterrupt):
        params = schemes.Params.from_namespace({"seeds": 10000, "runs": str(runs)})  # the notebook's first cell
        schemes.grid(params)  # what the notebook builds next: 80,000 configs
    monkeypatch.undo()
    first = _seeded_grid("03_schemes", {"seeds": 1, "runs": str(runs)})
    hours = plan.grid_hours(first, runs) * 10000
    assert capsys.readouterr().err.splitlines() == [
        f"rplib: 03_schemes: a grid of {len(first) * 10000} runs (about {hours:.1f} hours on one worker if none is "
        "finished, see rplib plan) is about to be built; interrupt now (Ctrl-C) to stop"]
    assert not runs.exists()
    schemes.Params.from_namespace({"seeds": 2, "runs": str(runs)})  # a grid within the threshold: silent
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("name", SEEDED)
def test_a_chapter_grid_is_its_first_seed_repeated(name):
    """The announcement's size and hours from the first seed's runs are the whole grid's."""
    params = chapters.params(name, {"seeds": 3, "seed_offset": 7})
    first, seeds = chapters.seed_grid(params)
    whole = _seeded_grid(name, {"seeds": 3, "seed_offset": 7})
    assert seeds == 3 and len(first) * 3 == len(whole)
    assert {c.seed for c in first} <= {7} and {c.hash for c in first} <= {c.hash for c in whole}
    assert plan.grid_hours(first, Path("no-store")) * 3 == pytest.approx(plan.grid_hours(whole, Path("no-store")))


def test_an_announcement_in_a_kernel_reaches_its_terminal(monkeypatch):
    """In a Jupyter kernel ``sys.stderr`` reaches only the notebook: the line goes to the kernel process's stderr,
    which the terminal that started papermill shows (and ipykernel copies into the notebook)."""
    kernel_stream = type("OutStream", (io.StringIO,), {"__module__": "ipykernel.iostream"})()
    terminal = io.StringIO()
    monkeypatch.setattr(sys, "stderr", kernel_stream)
    monkeypatch.setattr(sys, "__stderr__", terminal)
    executors.announce("rplib: a grid")
    assert terminal.getvalue() == "rplib: a grid\n" and kernel_stream.getvalue() == ""
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # outside a kernel: stderr
    executors.announce("rplib: a grid")
    assert sys.stderr.getvalue() == "rplib: a grid\n" and terminal.getvalue() == "rplib: a grid\n"


@pytest.mark.slow
def test_ctrl_c_after_a_huge_grid_is_announced_ends_the_book_in_one_line(tmp_path):
    """``python -m rplib.book execute`` of a chapter whose 80,000-run grid is announced from inside its kernel: the
    line reaches the terminal, Ctrl-C then ends everything with one line and nothing is written."""
    import nbformat

    from rplib import book

    (tmp_path / "notebooks").mkdir()
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "intro.md").write_text("# Intro\n")
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n- file: book/a\n")
    (tmp_path / "notebooks" / "profiles.yml").write_text("a:\n  paper: {seeds: 10000}\n")
    cells = [nbformat.v4.new_code_cell('seeds: int = 1  # seeds\nruns: str = "../runs"  # the run store',
                                       metadata={"tags": ["parameters"]}),
             nbformat.v4.new_code_cell("from rplib.chapters import schemes\n"
                                       "params = schemes.Params.from_namespace({'seeds': seeds, 'runs': runs})\n"
                                       "configs = schemes.grid(params)\nprovenance()")]
    kernelspec = {"name": book.KERNEL, "display_name": "Python 3", "language": "python"}
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": kernelspec}),
                   tmp_path / "notebooks" / "a.ipynb")
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-m", "rplib.book", "--root", str(tmp_path), "execute", "--profile",
                             "paper"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=_ctrl_c_reaches)
    try:
        seen = ""
        deadline = time.time() + 150
        while "interrupt now (Ctrl-C)" not in seen and time.time() < deadline and proc.poll() is None:
            seen += proc.stderr.readline()
        assert "rplib: 03_schemes: a grid of 80000 runs (about " in seen, seen
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, rest
    assert rest.strip().splitlines()[-1] == "rplib.book: error: interrupted" and "Traceback" not in rest, rest
    assert not (tmp_path / "runs").exists()
    assert not (tmp_path / "_build" / "failed").exists()
    assert not list((tmp_path / "_build" / "profiles" / "paper" / "book").glob("*.ipynb"))


def _cli(args: list[str], root: Path, **kw) -> subprocess.Popen:
    env = dict(os.environ, RPLIB_RUNS=str(root))
    return subprocess.Popen([sys.executable, "-m", "rplib.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kw)


def _ctrl_c_reaches() -> None:
    """In the child before it starts: Ctrl-C (SIGINT) back to its default, as in a terminal. A shell that starts a
    job in the background (CI under ``nohup ... &``) passes SIGINT on ignored, and Python then installs no
    KeyboardInterrupt handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))


def test_file_size_limit_and_ctrl_c_are_one_line(tmp_path):
    data._mnist1d_arrays(600, "data")  # the cache exists before the limit
    limited = _cli(["train", "--quiet", *tiny_args()], tmp_path / "a", preexec_fn=_limit_file_size)
    long = _cli(["train", "--quiet", *tiny_args("optim.epochs=100000")], tmp_path / "b", preexec_fn=_ctrl_c_reaches)
    try:
        _interrupt_and_check(limited, long, tmp_path)
    finally:  # a failed check must not leave a 100000-epoch run behind
        for proc in (limited, long):
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _interrupt_and_check(limited: subprocess.Popen, long: subprocess.Popen, tmp_path: Path) -> None:
    _, err = limited.communicate(timeout=120)
    lines = err.strip().splitlines()
    assert limited.returncode == 2 and len(lines) == 1, err
    # the first file of the run past 20 kB: a dense run's epoch-1 weights (a ticket's rewind point) or its checkpoint
    assert re.search(r"(checkpoint|weights_epoch1)\.pt: cannot write \(File too large\): the file exceeds this "
                     r"process's file-size limit", lines[0]), lines[0]
    rd = RunDir(tmp_path / "b", tiny(**{"optim.epochs": 100000}).hash)
    deadline = time.time() + 120
    while not rd.checkpoint.exists() and time.time() < deadline and long.poll() is None:
        time.sleep(0.05)
    long.send_signal(signal.SIGINT)
    _, err = long.communicate(timeout=60)
    lines = err.strip().splitlines()
    assert long.returncode == 130 and len(lines) == 1, err
    assert lines[0] == (f"rplib: error: run {rd.hash} interrupted (its checkpoint {rd.checkpoint} is kept), "
                        "rerun to resume")
    assert torch.load(rd.checkpoint, weights_only=True)["hash"] == rd.hash
    assert not list(rd.path.glob(".*.tmp"))


# ---------------------------------------------------------------- 7. the lock outlives its run directory or lock folder


def _hold(root: str, run_hash: str, seconds: float, released: str) -> None:
    rd = RunDir(root, run_hash)
    with rd.lock():
        rd.path.mkdir(parents=True, exist_ok=True)
        (rd.path / "held").write_text("1")
        time.sleep(seconds)
        Path(released).write_text(repr(time.time()))


@pytest.mark.parametrize("removed", ["run directory", "lock folder", "all locks"])
def test_removing_the_run_directory_or_its_lock_folder_does_not_release_the_lock(tmp_path, removed):
    rd = RunDir(tmp_path, tiny().hash)
    released = tmp_path / "released"
    p = mp.get_context("fork").Process(target=_hold, args=(str(tmp_path), rd.hash, 2.0, str(released)))
    p.start()
    deadline = time.time() + 60
    while not (rd.path / "held").exists() and time.time() < deadline:
        time.sleep(0.02)
    assert rd.lock_path.is_dir()
    # during the run: what an error message advises (the run directory), or the locks themselves
    shutil.rmtree({"run directory": rd.path, "lock folder": rd.lock_path, "all locks": tmp_path / ".locks"}[removed])
    with rd.lock():
        acquired = time.time()
    p.join(60)
    assert p.exitcode == 0 and acquired >= float(released.read_text())


def test_run_finishes_whole_when_its_directory_is_removed_mid_run(tmp_path, monkeypatch):
    cfg = tiny(**{"optim.epochs": 2})
    rd = RunDir(tmp_path, cfg.hash)
    save = train.atomic_torch_save

    def save_then_remove(obj, path):
        save(obj, path)
        if path == rd.checkpoint and obj["epoch"] == 1:
            shutil.rmtree(rd.path)

    monkeypatch.setattr(train, "atomic_torch_save", save_then_remove)
    res = train.run(cfg, root=tmp_path)
    monkeypatch.undo()
    assert train.Result.load(rd).metrics == res.metrics and len(res.history) == 2
