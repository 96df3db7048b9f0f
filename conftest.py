"""Test-session settings for every test path (tests/ and the notebooks nbval re-executes)."""

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """The cells of one notebook share its kernel: under ``--dist loadgroup`` (pyproject's addopts) they run
    in order on one worker, while every other test is handed to whichever worker is free."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.xdist_group(f"notebook-{item.path.stem}"))
