"""The package's layers, declared as import-linter contracts in pyproject.toml, hold, and catch an upward import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
        "sys.argv[0] = 'lint-imports'; lint_imports_command()", "--no-cache"]


def lint(root: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` on the ``rplib`` package under ``root`` with ``root/pyproject.toml``'s contracts."""
    env = os.environ | {"PYTHONPATH": str(root)}
    return subprocess.run(LINT, cwd=root, env=env, capture_output=True, text=True, timeout=120)


def copy_of_the_package(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "rplib", tmp_path / "rplib", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_import_contracts_hold():
    result = lint(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(("module", "line", "broken"), [
    ("sparsity", "from . import book", "rplib.sparsity -> rplib.book"),  # the sparsity core reaching up to the book
    ("train", "from .grid import run_grid", "rplib.train -> rplib.grid"),  # one run reaching up to the grids
    ("dst", "from . import evaluate", "rplib.dst -> rplib.evaluate"),  # siblings of one layer are independent
])
def test_an_upward_import_breaks_the_layers(tmp_path, module, line, broken):
    root = copy_of_the_package(tmp_path)
    path = root / "rplib" / f"{module}.py"
    source = path.read_text()
    head, sep, rest = source.partition("\nfrom __future__ import annotations\n")
    assert sep, f"rplib/{module}.py has no 'from __future__ import annotations' line to add the import after"
    path.write_text(f"{head}{sep}\n{line}\n{rest}")
    result = lint(root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "rplib layers" in result.stdout and "BROKEN" in result.stdout
    assert broken in result.stdout
