import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/fakedata.py


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """The cells of one notebook share its kernel: under ``--dist loadgroup`` (pyproject's addopts) they run
    in order on one worker, while every other test is handed to whichever worker is free."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.xdist_group(f"notebook-{item.path.stem}"))
