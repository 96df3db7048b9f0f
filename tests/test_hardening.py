"""The store executes nothing, refuses inconsistent results, and every bad input is a one-line error."""

import contextlib
import io
import json
import multiprocessing as mp
import os
import subprocess
import time
import traceback
from pathlib import Path

import pytest
import torch
import yaml

from rplib import train
from rplib.config import RunConfig, describe_fields
from rplib.fields import load_yaml
from rplib.store import RunDir, RunLock, StoreError


def tiny(**changes) -> RunConfig:
    """A run of about a second: MNIST-1D (600 samples), cnn1d, 2 epochs."""
    base = RunConfig().with_({"data.num_samples": 600, "optim.epochs": 2, "optim.batch_size": 64, "device": "cpu"})
    return base.with_(changes)


def cli(*args: str, root: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m rplib.cli *args`` with ``RPLIB_RUNS=root`` (and ``env``), run in this process (the command's
    ``main``, without a new interpreter importing torch): its exit status and what it printed. An exception
    that escapes ``main`` is exit 1 with its traceback on stderr, as the interpreter would end a process."""
    from rplib import cli as command

    out, err = io.StringIO(), io.StringIO()
    saved, threads = dict(os.environ), torch.get_num_threads()
    os.environ.update({"RPLIB_RUNS": str(root), **(env or {})})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = command.main(list(args))
            except SystemExit as e:  # argparse's usage errors
                code = e.code if isinstance(e.code, int) else 1
            except Exception:  # noqa: BLE001 - shown as the interpreter would show it
                traceback.print_exc()
                code = 1
    finally:
        os.environ.clear()
        os.environ.update(saved)
        torch.set_num_threads(threads)
    return subprocess.CompletedProcess(["rplib", *args], code, out.getvalue(), err.getvalue())


def one_line_error(out: subprocess.CompletedProcess) -> str:
    """The CLI failed with exit 2 and exactly one stderr line ``rplib: error: ...`` (no traceback)."""
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2, out.stderr
    assert len(lines) == 1 and lines[0].startswith("rplib: error: "), out.stderr
    return lines[0]


# --------------------------------------------------------------------------- 1. no code runs from a store


class _Planted:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_planted_checkpoint_does_not_execute(tmp_path):
    cfg = tiny()
    rd = RunDir(tmp_path, cfg.hash)
    rd.path.mkdir(parents=True)
    marker = tmp_path / "pwned"
    torch.save({"model": _Planted(str(marker))}, rd.checkpoint)
    with pytest.raises(StoreError, match="cannot be used .*rm .*checkpoint.pt"):
        train.run(cfg, root=tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize("changes", [
    {},
    {"sparsity.method": "random", "sparsity.density": 0.2},
    {"sparsity.method": "random", "sparsity.density": 0.2, "dst.drop": "magnitude", "dst.grow": "gradient",
     "dst.update_period": 5},
])
def test_every_checkpoint_kind_resumes_weights_only(tmp_path, changes):
    """Dense, sparse and DST checkpoints load with weights_only=True and resume to the same metrics."""
    cfg = tiny(**changes)
    ref = train.run(cfg, root=tmp_path)
    rd = RunDir(tmp_path, cfg.hash)
    assert isinstance(torch.load(rd.checkpoint, weights_only=True), dict)
    rd.metrics.unlink()  # unfinished again: the last checkpoint holds every epoch
    again = train.run(cfg, root=tmp_path)
    assert again.metrics["test_accuracy"] == ref.metrics["test_accuracy"]
    assert again.metrics["test_loss"] == ref.metrics["test_loss"]


# --------------------------------------------------------------------------- 2. a result cannot carry the wrong config


def test_edited_config_is_refused(tmp_path):
    cfg = tiny()
    train.run(cfg, root=tmp_path)
    rd = RunDir(tmp_path, cfg.hash)
    data = json.loads(rd.config.read_text())
    data["optim"]["lr"] = 0.5
    rd.config.write_text(json.dumps(data))
    with pytest.raises(StoreError, match=f"hashes to .*not to its directory {cfg.hash}"):
        train.run(cfg, root=tmp_path)
    rd.config.write_text(json.dumps({"optim": {"lr": "fast"}}))
    with pytest.raises(StoreError, match="not a valid config"):
        train.run(cfg, root=tmp_path)


def test_metrics_of_another_run_are_refused(tmp_path):
    a, b = tiny(), tiny(seed=1)
    train.run(a, root=tmp_path)
    train.run(b, root=tmp_path)
    ra, rb = RunDir(tmp_path, a.hash), RunDir(tmp_path, b.hash)
    ra.metrics.write_text(rb.metrics.read_text())
    with pytest.raises(StoreError, match=f"belongs to run {b.hash}"):
        train.run(a, root=tmp_path)


# --------------------------------------------------------------------------- 3. results do not depend on threads


def test_results_independent_of_caller_threads(tmp_path):
    cfg = tiny(**{"optim.epochs": 4, "sparsity.method": "random", "sparsity.density": 0.3})
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        two = train.run(cfg, root=tmp_path / "a")
        assert torch.get_num_threads() == 2  # restored after the run
        torch.set_num_threads(1)
        one = train.run(cfg, root=tmp_path / "b")
    finally:
        torch.set_num_threads(before)
    assert one.metrics["threads"] == two.metrics["threads"] == 1
    assert [h["train_loss"] for h in one.history] == [h["train_loss"] for h in two.history]
    assert one.metrics["test_accuracy"] == two.metrics["test_accuracy"]


def test_threads_setting_is_validated_and_recorded(tmp_path):
    out = cli("train", "--set", "data.num_samples=600", "--set", "optim.epochs=1", "--quiet", "--json",
              root=tmp_path, env={"RPLIB_THREADS": "2"})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout[out.stdout.index("{"):])["threads"] == 2
    bad = cli("train", "--set", "optim.epochs=1", root=tmp_path / "bad", env={"RPLIB_THREADS": "many"})
    assert "RPLIB_THREADS" in one_line_error(bad) and not (tmp_path / "bad").exists()


# --------------------------------------------------------------------------- 4. strict, named config errors


BAD_SETS = [
    ("optim.epochs=2.5", "optim.epochs must be an integer, got 2.5"),
    ("optim.epochs='2'", "optim.epochs must be an integer, got '2'"),
    ("optim.epochs=abc", "optim.epochs must be an integer, got 'abc'"),
    ("model=cnn1d", "model must be a section"),
    ("optim=5", "optim must be a section"),
    ("optim.batch_size=true", "optim.batch_size must be an integer, got True"),
    ("optim.nesterov=maybe", "optim.nesterov must be true or false, got 'maybe'"),
    ("model.width=true", "model.width must be a number, got True"),
    ("optim.lr=.inf", "optim.lr must be a finite number"),
    ("optim.lr=-1", "lr must be > 0"),
    ("sparsity.method=rand", "sparsity.method: unknown sparse method 'rand'; valid choices: dense, random"),
    ("model.hidden=[0]", "model.hidden"),
    ("data.name=mnist", "data.name: unknown dataset 'mnist'; valid datasets: mnist1d"),
    ("dst.alpha=2", "dst.alpha"),
    ("eval.attacks=[cw]", "eval.attacks: unknown attack"),
    ("optim.epoch=3", "unknown config path 'optim.epoch'"),
    ("device=cuda" if not torch.cuda.is_available() else "device=tpu", "device"),
]


@pytest.mark.parametrize("setting,message", BAD_SETS)
def test_bad_values_are_named_and_nothing_is_written(tmp_path, setting, message):
    out = cli("train", "--set", setting, root=tmp_path / "runs")
    assert message in one_line_error(out)
    assert not (tmp_path / "runs").exists()


def test_yaml_scientific_notation_and_equal_values_hash_equally(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("optim:\n  lr: 1e-3\n  weight_decay: 5E-4\n  milestones: [80, 120]\n  epochs: 160\nmodel: {width: 1}\n")
    cfg = RunConfig.from_dict(load_yaml(f.read_text()))
    assert cfg.optim.lr == 0.001 and cfg.optim.weight_decay == 0.0005 and cfg.optim.milestones == (80.0, 120.0)
    assert cfg.hash == RunConfig().with_({"optim.lr": 0.001, "optim.weight_decay": 5e-4, "optim.epochs": 160,
                                          "optim.milestones": [80.0, 120.0], "model.width": 1.0}).hash
    assert RunConfig().with_({"optim.lr": 1}).hash == RunConfig().with_({"optim.lr": 1.0}).hash
    out = cli("config", "--config", str(f), "--set", "optim.lr=1e-3", root=tmp_path)
    assert out.returncode == 0 and f"# run {cfg.hash}" in out.stdout


# --------------------------------------------------------------------------- 5. messages, not tracebacks


def test_unreadable_inputs_give_one_line_errors(tmp_path):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("optim: {lr: [\n")
    assert str(bad_yaml) in one_line_error(cli("train", "--config", str(bad_yaml), root=tmp_path))
    assert "cannot read" in one_line_error(cli("train", "--config", str(tmp_path / "none.yaml"), root=tmp_path))
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("5\n")
    assert "a YAML mapping" in one_line_error(cli("train", "--config", str(scalar), root=tmp_path))


@pytest.mark.parametrize("damage,expect", [
    (lambda rd: rd.metrics.write_text("{}"), "metrics.json lacks test_accuracy"),
    (lambda rd: rd.metrics.write_text("{trunc"), "metrics.json: not valid JSON"),
    (lambda rd: rd.history.unlink(), "history.json: file missing"),
    (lambda rd: (rd.metrics.unlink(), rd.checkpoint.write_bytes(rd.checkpoint.read_bytes()[:100])),
     "checkpoint.pt cannot be used .* delete it to restart"),
    (lambda rd: (rd.metrics.unlink(), rd.checkpoint.write_bytes(b"")), "checkpoint.pt cannot be used"),
])
def test_damaged_store_files_are_named(tmp_path, damage, expect):
    args = ("train", "--set", "data.num_samples=600", "--set", "optim.epochs=1", "--quiet")
    assert cli(*args, root=tmp_path).returncode == 0
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir() and not p.name.startswith(".")]  # .locks aside
    damage(RunDir(tmp_path, run_dir.name))
    line = one_line_error(cli(*args, root=tmp_path))
    assert run_dir.name in line
    assert __import__("re").search(expect, line), line


def test_temporary_files_of_killed_runs_are_removed(tmp_path):
    cfg = tiny()
    rd = RunDir(tmp_path, cfg.hash)
    rd.path.mkdir(parents=True)
    leftovers = [rd.path / ".checkpoint.pt.x1.tmp", rd.path / ".history.json.x2.tmp"]
    for f in leftovers:
        f.write_text("partial")
    train.run(cfg, root=tmp_path)
    assert not any(f.exists() for f in leftovers)


# --------------------------------------------------------------------------- 6. the lock and file modes


def _hold_lock(path: str, seconds: float, released: str) -> None:
    with RunLock(Path(path)):
        Path(path, "held").write_text("1")
        time.sleep(seconds)
        Path(released).write_text(repr(time.time()))


def test_deleting_lock_file_does_not_break_the_lock(tmp_path):
    run_dir = tmp_path / "run"
    released = tmp_path / "released"
    p = mp.get_context("spawn").Process(target=_hold_lock, args=(str(run_dir), 2.0, str(released)))
    p.start()
    deadline = time.time() + 60
    while not (run_dir / "held").exists() and time.time() < deadline:
        time.sleep(0.02)
    for f in run_dir.glob(".lock*"):
        f.unlink()
    with RunLock(run_dir):
        acquired = time.time()
    p.join(60)
    assert p.exitcode == 0
    assert acquired >= float(released.read_text())


def test_store_files_follow_the_umask(tmp_path):
    old = os.umask(0o002)
    try:
        train.run(tiny(), root=tmp_path)
    finally:
        os.umask(old)
    (run_dir,) = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]  # .locks aside
    for name in ("config.json", "metrics.json", "history.json", "checkpoint.pt"):
        assert (run_dir / name).stat().st_mode & 0o777 == 0o664, name


# --------------------------------------------------------------------------- 7. discoverability


def test_config_command_lists_every_field(tmp_path):
    out = cli("config", root=tmp_path)
    assert out.returncode == 0
    rows = describe_fields()
    assert len(rows) > 40
    for r in rows:
        assert r["field"] in out.stdout
    assert "model.name" in out.stdout and "resnet20" in out.stdout and "erk_plus" in out.stdout
    assert json.loads(cli("config", "--json", root=tmp_path).stdout) == json.loads(json.dumps(rows))


def test_densities_help_lists_models_and_schemes(tmp_path):
    out = cli("densities", "--help", root=tmp_path).stdout
    for name in ("resnet20", "vgg19", "mlp", "erk", "erk_plus", "smart_ratio", "uniform_plus"):
        assert name in out


def test_missing_data_message_names_a_flag_that_exists(tmp_path):
    out = cli("train", "--set", "data.name=cifar10", "--set", f"data.root={tmp_path / 'data'}",
              "--set", "optim.epochs=1", root=tmp_path / "runs")
    line = one_line_error(out)
    flag = "--set data.download=true"
    assert flag in line
    assert RunConfig().with_({"data.download": True}).data.download  # the named setting is valid


# --------------------------------------------------------------------------- 8. the locked environment


def test_lock_file_pins_every_dependency_with_hashes():
    import tomllib
    from importlib.metadata import version

    root = Path(__file__).parent.parent
    lock = (root / "requirements.lock").read_text()
    pins = {}
    for block in lock.replace("\\\n", " ").splitlines():
        if block and not block.startswith((" ", "#")) and "==" in block:
            name, rest = block.split("==", 1)
            pins[name.strip().lower().replace("_", "-")] = rest.split()[0].split(";")[0]
            assert "--hash=sha256:" in rest, f"{name} has no hash"
    deps = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in deps:
        name = dep.split(">")[0].split("<")[0].split("=")[0].split("[")[0].strip().lower().replace("_", "-")
        assert name in pins, f"{name} is not pinned in requirements.lock"
    for name in ("torch", "torchvision"):
        assert version(name).split("+")[0] == pins[name].split("+")[0], f"installed {name} differs from the lock"
    assert "requirements.lock" in (root / "Makefile").read_text()
