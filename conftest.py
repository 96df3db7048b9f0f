"""Test-session settings for every test path (tests/ and the notebooks nbval re-executes)."""

import os

import pytest

# One intra-op thread per test process (and the kernels and subprocesses it starts): the workers below already run
# one test per core, and torch's default of one thread per core in each would oversubscribe the cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one worker per core and two more, which run while others wait on a Slurm job, a
    subprocess's start-up or a browser (on two cores, CI from a fresh clone took 8 min 39 s against 9 min 45 s
    with one worker more than cores, both before make env compiled bytecode at install)."""
    return (os.cpu_count() or 1) + 2


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """The cells of one notebook share its kernel: under ``--dist loadgroup`` (pyproject's addopts) they run
    in order on one worker, while every other test is handed to whichever worker is free.

    Longest first: the end-to-end tests marked ``slow``, then the notebooks, then the rest, so that the many
    short tests fill the workers at the end instead of one long test running alone (a stable sort: a
    notebook's cells keep their order)."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.xdist_group(f"notebook-{item.path.stem}"))
    items.sort(key=lambda item: 0 if item.get_closest_marker("slow") else 1 if item.path.suffix == ".ipynb" else 2)
