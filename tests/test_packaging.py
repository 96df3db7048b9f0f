"""The set-up files agree: environment.yml mirrors pyproject's dependencies; README keeps its two commands."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _norm(req: str) -> str:
    return re.sub(r"\s+", "", req).lower()


def test_environment_yml_mirrors_pyproject():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    pip = [p for p in pip if not p.startswith("-e")]
    assert sorted(map(_norm, pip)) == sorted(map(_norm, deps))
    assert any(str(d).startswith("python=3.11") for d in env["dependencies"])


def test_torch_has_lower_bounds_only():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for name in ("torch", "torchvision"):
        spec = next(d for d in deps if re.match(rf"{name}\s*[<>=!~]", d))
        assert "<" not in spec and "==" not in spec, spec
    jb = next(d for d in deps if d.startswith("jupyter-book"))
    assert "<2" in jb


def test_readme_has_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    assert "make book" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_a_notebooks_cells_run_in_order_on_one_worker(tmp_path):
    """The suite runs under pytest-xdist: nbval's cells of one notebook share a kernel, so the root conftest.py
    groups them (``--dist loadgroup``). If grouping silently stopped working (as it does with pytest 9.2 and
    pytest-xdist 3.8), cells would land on both workers and fail with NameErrors."""
    import subprocess
    import sys

    import nbformat

    cells = [nbformat.v4.new_code_cell("x = 1", execution_count=1)]
    cells += [nbformat.v4.new_code_cell(f"x += {i}\nprint(x)", execution_count=i + 1, outputs=[nbformat.v4.new_output(
        "stream", name="stdout", text=f"{1 + sum(range(1, i + 1))}\n")]) for i in range(1, 8)]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), tmp_path / "chain.ipynb")
    (tmp_path / "conftest.py").write_text((ROOT / "conftest.py").read_text())
    res = subprocess.run([sys.executable, "-m", "pytest", "-c", str(tmp_path / "conftest.py"), "--rootdir",
                          str(tmp_path), "-p", "no:cacheprovider", "-n", "2", "--dist", "loadgroup", "--nbval",
                          "-v", str(tmp_path / "chain.ipynb")], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stdout[-3000:]
    workers = {line.split("]")[0] for line in res.stdout.splitlines() if line.startswith("[gw") and "PASSED" in line}
    assert len(workers) == 1, res.stdout[-3000:]
