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
