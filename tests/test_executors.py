"""Grids through real executors (a local process pool, a one-node Slurm cluster, a Dask cluster) equal serial runs.

Slurm tests need the cluster of ``scripts/slurm-up.sh``; they are skipped when ``sinfo`` cannot
reach it, except under CI (``CI`` set), where that is a failure.
"""

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml

from rplib import grid, train
from rplib.config import ModelConfig, OptimConfig, RunConfig
from rplib.data import DataConfig
from rplib.executors import Executor, GridError, from_settings
from rplib.store import RunDir

ROOT = Path(__file__).resolve().parents[1]


def tiny(**changes) -> RunConfig:
    """About a second of training: MNIST-1D (1000 samples), cnn1d, 2 epochs."""
    cfg = RunConfig(data=DataConfig(name="mnist1d", num_samples=1000), model=ModelConfig(name="cnn1d"),
                    optim=OptimConfig(epochs=2, batch_size=64, lr=0.05, milestones=(0.75,)), device="cpu")
    return cfg.with_(changes)


GRID = [tiny(seed=s) for s in (0, 1)] + [tiny(**{"sparsity.method": "random", "sparsity.density": d}) for d in (0.1, 0.3)]


def broken(tmp: Path) -> RunConfig:
    """A run that fails when it loads its data: CIFAR-10 files that are not there."""
    return tiny(**{"data.name": "cifar10", "data.root": str(tmp / "no-cifar"), "model.name": "resnet20"})


def comparable(res: train.Result) -> tuple[dict, list]:
    """Metrics and history without the wall-clock timings."""
    return ({k: v for k, v in res.metrics.items() if k != "wall_time"},
            [{k: v for k, v in row.items() if k != "time"} for row in res.history])


@pytest.fixture(autouse=True)
def worker_env(monkeypatch):
    """Workers in other processes import this checkout's rplib and use one intra-op thread, as serial runs here."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("RPLIB_THREADS", "1")
    for var in ("RPLIB_EXECUTOR", "RPLIB_WORKERS", "RPLIB_SLURM_CONFIG", "RPLIB_DASK_SCHEDULER"):
        monkeypatch.delenv(var, raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def serial(tmp_path_factory) -> dict[str, train.Result]:
    """The grid run serially in this process: the reference of every executor."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    results = grid.run_grid(GRID, root=tmp_path_factory.mktemp("serial"), executor="serial")
    torch.set_num_threads(threads)
    return {r.path.name: r for r in results}


def assert_same_as_serial(results: list[train.Result], serial: dict[str, train.Result]) -> None:
    assert [r.path.name for r in results] == [c.hash for c in GRID]
    assert set(serial) == {c.hash for c in GRID}
    for r in results:
        assert comparable(r) == comparable(serial[r.path.name]), r.path.name


def assert_failure_named(err: GridError, bad: RunConfig, root: Path) -> None:
    assert [f.hash for f in err.failures] == [bad.hash]
    text = str(err)
    assert f"{bad.hash} (cifar10, resnet20, dense" in text and "no-cifar" in text, text
    assert "1 of 5 runs failed (4 finished" in text.splitlines()[0], text
    assert all(RunDir(root, c.hash).finished() for c in GRID)
    assert not RunDir(root, bad.hash).finished()


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize("env, message", [
    ({"RPLIB_EXECUTOR": "cluster"}, "RPLIB_EXECUTOR='cluster' is not an executor; valid choices: auto, serial, local"),
    ({"RPLIB_EXECUTOR": "local", "RPLIB_WORKERS": "0"}, "RPLIB_WORKERS='0' is not valid; valid values: integers >= 1"),
    ({"RPLIB_EXECUTOR": "local", "RPLIB_WORKERS_PER_GPU": "two"}, "RPLIB_WORKERS_PER_GPU='two' is not valid"),
    ({"RPLIB_EXECUTOR": "dask"}, "RPLIB_DASK_SCHEDULER='' is not valid; valid values: the address"),
    ({"RPLIB_EXECUTOR": "slurm", "RPLIB_SLURM_CPUS_PER_TASK": "1.5"},
     "Slurm setting RPLIB_SLURM_CPUS_PER_TASK='1.5' is not valid; valid values: integers >= 1"),
    ({"RPLIB_EXECUTOR": "slurm", "RPLIB_SLURM_TIMEOUT_MIN": "1"}, "timeout_min=1 is not valid; valid values: minutes > 2"),
    ({"RPLIB_EXECUTOR": "slurm", "RPLIB_SLURM_CONFIG": "/nonexistent.yaml"}, "RPLIB_SLURM_CONFIG='/nonexistent.yaml' is not a file"),
])
def test_bad_settings_fail_before_anything_runs(tmp_path, monkeypatch, env, message):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ValueError) as info:
        grid.run_grid(GRID, root=tmp_path / "runs")
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "runs").exists()


def test_slurm_yaml_settings_are_checked_and_env_wins(tmp_path):
    path = tmp_path / "slurm.yaml"
    path.write_text(yaml.safe_dump({"partition": "gpu", "gpus_per_node": 1, "mem_gb": 16, "timeout_min": 60}))
    ex = from_settings("slurm", {"RPLIB_SLURM_CONFIG": str(path), "RPLIB_SLURM_TIMEOUT_MIN": "30"})
    assert ex.settings | {"folder": None} == {"partition": "gpu", "account": None, "qos": None, "gpus_per_node": 1,
                                              "cpus_per_task": 1, "mem_gb": 16.0, "timeout_min": 30,
                                              "array_parallelism": 64, "folder": None}
    path.write_text(yaml.safe_dump({"partition": "gpu", "gpu": 1}))
    with pytest.raises(ValueError, match=r"unknown Slurm setting 'gpu'; valid settings: partition, account"):
        from_settings("slurm", {"RPLIB_SLURM_CONFIG": str(path)})


# --------------------------------------------------------------------------- local process pool


def test_local_pool_equals_serial_reruns_only_unfinished_and_names_failures(tmp_path, monkeypatch, serial):
    monkeypatch.setenv("RPLIB_EXECUTOR", "local")
    monkeypatch.setenv("RPLIB_WORKERS", "2")
    root = tmp_path / "runs"
    bad = broken(tmp_path)
    with pytest.raises(GridError) as info:
        grid.run_grid([*GRID, GRID[0], bad], root=root)  # a duplicate runs once
    assert_failure_named(info.value, bad, root)
    assert "ValueError" in str(info.value)
    mtimes = {c.hash: RunDir(root, c.hash).metrics.stat().st_mtime_ns for c in GRID}
    results = grid.run_grid([*GRID, GRID[1]], root=root)  # all finished: nothing is submitted
    assert_same_as_serial(results[:-1], serial)
    assert results[-1].path == results[1].path
    assert {c.hash: RunDir(root, c.hash).metrics.stat().st_mtime_ns for c in GRID} == mtimes


def test_local_workers_get_the_callers_environment_of_now(monkeypatch):
    """The fork server starts once per process and keeps its environment; pool workers still see the caller's."""
    import concurrent.futures as cf

    from rplib.executors import _init_local_worker, _pool_context

    ctx = _pool_context()
    for value in ("first", "second"):
        monkeypatch.setenv("RPLIB_TEST_MARK", value)
        slots = ctx.Queue()
        slots.put("")
        with cf.ProcessPoolExecutor(1, mp_context=ctx, initializer=_init_local_worker,
                                    initargs=(slots, dict(os.environ))) as pool:
            assert pool.submit(os.getenv, "RPLIB_TEST_MARK").result() == value


def test_unfinished_runs_are_submitted_longest_first(tmp_path):
    """A lottery ticket (a dense training, then the ticket's) is handed to the executor before the one-training runs."""
    lottery = tiny(**{"sparsity.method": "lottery", "sparsity.density": 0.2, "sparsity.lottery_rounds": 2})
    submitted: list[RunConfig] = []

    class Record(Executor):
        def execute(self, configs, root, done, progress):
            submitted.extend(configs)
            for cfg in configs:
                done(cfg, RuntimeError("not run"))

    with pytest.raises(GridError):
        grid.run_grid([*GRID, lottery], root=tmp_path, executor=Record())
    assert submitted == [lottery, *GRID]


def test_default_is_serial_and_auto_is_local_for_more_than_one_unfinished_run():
    assert from_settings(None, {}).name == "serial"
    auto = from_settings("auto", {"RPLIB_WORKERS": "2"})
    assert auto.choose(GRID[:1]).name == "serial"
    assert auto.choose(GRID).name == "local"
    assert from_settings("auto", {"RPLIB_WORKERS": "1"}).choose(GRID).name == "serial"


# --------------------------------------------------------------------------- Slurm


def _slurm_up() -> bool:
    if not shutil.which("sinfo"):
        return False
    out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=30)
    return out.returncode == 0 and any(s.strip() in ("idle", "mix", "alloc") for s in out.stdout.split())


_LISTENER = """
import socket, sys
s = socket.socket()
s.bind(("0.0.0.0", int(sys.argv[1])))  # every interface, as the Slurm daemons do
s.listen()
socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10).close()  # reachable inside
print(s.getsockname()[1], flush=True)
while True:
    s.accept()
"""


def test_servers_in_the_isolated_namespace_cannot_be_reached_from_outside():
    """scripts/isolated.sh, where .ci/run starts Slurm: a server listening on every interface inside
    accepts a connection inside and refuses one from outside (this process, same port)."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("scripts/isolated.sh needs root (a network namespace)")
        pytest.skip("scripts/isolated.sh needs root (a network namespace)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = ROOT / "scripts" / "isolated.sh"
    inside = subprocess.Popen([script, sys.executable, "-c", _LISTENER, str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert inside.stdout.readline().strip() == str(port)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=10).close()
    finally:
        inside.kill()
        inside.wait()


@pytest.fixture(scope="module")
def slurm_folder(tmp_path_factory) -> Path:
    """A submitit folder for this session (a restarted cluster reuses job ids) and the Slurm settings file."""
    if not _slurm_up():
        if os.environ.get("CI"):
            pytest.fail("Slurm is not reachable (sinfo); start it with scripts/slurm-up.sh")
        pytest.skip("Slurm is not reachable (sinfo); start it with scripts/slurm-up.sh")
    folder = tmp_path_factory.mktemp("submitit")
    (folder / "slurm.yaml").write_text(yaml.safe_dump({"cpus_per_task": 1, "mem_gb": 1, "timeout_min": 20,
                                                       "array_parallelism": 2, "folder": str(folder / "jobs")}))
    return folder


@pytest.fixture
def slurm_env(monkeypatch, slurm_folder):
    monkeypatch.setenv("RPLIB_EXECUTOR", "slurm")
    monkeypatch.setenv("RPLIB_SLURM_CONFIG", str(slurm_folder / "slurm.yaml"))


@pytest.mark.slow
@pytest.mark.xdist_group("slurm")  # one worker runs the Slurm tests in turn: each finds only its own jobs queued
def test_slurm_array_equals_serial_and_names_failures(tmp_path, slurm_env, serial):
    root = tmp_path / "runs"
    bad = broken(tmp_path)
    with pytest.raises(GridError) as info:
        grid.run_grid([*GRID, bad], root=root)
    assert_failure_named(info.value, bad, root)
    assert "Slurm job" in str(info.value)
    assert_same_as_serial(grid.run_grid(GRID, root=root), serial)


@pytest.mark.slow
@pytest.mark.xdist_group("slurm")
def test_slurm_cancelled_job_resumes_from_its_checkpoint(tmp_path, slurm_env):
    # about 6 s of training after the first checkpoint: longer than squeue, scancel and Slurm's KillWait
    # of 2 s (submitit jobs ignore SIGTERM, so a cancelled job runs on until SIGKILL)
    cfg = tiny(**{"optim.epochs": 100, "data.num_samples": 2000, "sparsity.method": "random",
                  "sparsity.density": 0.3})
    root = tmp_path / "runs"
    rd = RunDir(root, cfg.hash)
    outcome: dict[str, BaseException] = {}

    def first_attempt() -> None:
        try:
            grid.run_grid([cfg], root=root)
        except BaseException as e:  # noqa: BLE001 - examined below
            outcome["error"] = e

    thread = threading.Thread(target=first_attempt)
    thread.start()
    deadline = time.time() + 300
    while not rd.checkpoint.is_file() and time.time() < deadline:
        time.sleep(0.2)
    assert rd.checkpoint.is_file(), "no checkpoint within 300 s"
    jobs = subprocess.run(["squeue", "-h", "-n", "rplib", "-o", "%i"], capture_output=True, text=True,
                          check=True).stdout.split()
    assert len(jobs) == 1, jobs
    subprocess.run(["scancel", jobs[0]], check=True)
    thread.join(timeout=300)
    assert not thread.is_alive()
    assert isinstance(outcome.get("error"), GridError), outcome
    assert cfg.hash in str(outcome["error"]) and "CANCELLED" in str(outcome["error"])
    assert not rd.finished()
    before = torch.load(rd.checkpoint, weights_only=False)
    assert 1 <= before["epoch"] < cfg.optim.epochs

    resumed = grid.run_grid([cfg], root=root)[0]
    # the epochs before the cancellation are kept as they were (timings included): resumed, not restarted
    assert resumed.history[: before["epoch"]] == before["history"]
    reference = train.run(cfg, root=tmp_path / "uninterrupted")
    assert comparable(resumed) == comparable(reference)


# --------------------------------------------------------------------------- Dask


def test_dask_cluster_equals_serial_and_names_failures(tmp_path, monkeypatch, serial):
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        monkeypatch.setenv("RPLIB_EXECUTOR", "dask")
        monkeypatch.setenv("RPLIB_DASK_SCHEDULER", cluster.scheduler_address)
        root = tmp_path / "runs"
        bad = broken(tmp_path)
        with pytest.raises(GridError) as info:
            grid.run_grid([*GRID, bad], root=root)
        assert_failure_named(info.value, bad, root)
        assert_same_as_serial(grid.run_grid(GRID, root=root), serial)


def test_book_checks_the_executor_before_any_chapter(monkeypatch):
    import papermill

    from rplib import book

    def must_not_run(*args, **kwargs):
        raise AssertionError("a chapter was executed despite a bad executor setting")

    monkeypatch.setattr(papermill, "execute_notebook", must_not_run)
    monkeypatch.setenv("RPLIB_EXECUTOR", "slurm")
    monkeypatch.setenv("RPLIB_SLURM_ARRAY_PARALLELISM", "0")
    with pytest.raises(ValueError, match=r"RPLIB_SLURM_ARRAY_PARALLELISM='0' is not valid; valid values: integers >= 1"):
        book.execute("smoke", root=ROOT)
