"""The paper profile's code path is live: every training chapter executes with its paper-profile
parameters on tiny CIFAR-10/100 and SVHN files written in their real on-disk formats.

Only the sizes shrink (1 epoch, 1 seed, small batches, CPU, and the per-chapter subsets of the
grids below); datasets, models, schemes and recipes are the paper profile's own.
"""

from __future__ import annotations

from pathlib import Path

import papermill
import pytest

from fakedata import write_all
from rplib import book

ROOT = Path(__file__).resolve().parents[1]
SHRINK = {"epochs": 1, "seeds": 1, "batch_size": 16, "device": "cpu", "download": False}
GRIDS = {  # a subset of each chapter's paper grid, every value taken from that grid: each code path once, on the
    # smallest networks of the grid (a width or a network that only changes shapes adds time, not a path)
    "02_scaling": {"depths": [20, 32], "widths": [0.5, 1.0], "sparsities": [0.9], "schemes": ["erk"]},
    "03_schemes": {"sparsities": [0.9], "schemes": ["uniform", "erk", "snip"]},
    "04_sanity_checks": {"networks": ["resnet32"], "widths": [1.0], "densities": [0.1], "lottery_rounds": 1,
                         "rewind_epoch": 0},
    "05_dst_criteria": {"densities": [0.05], "criteria": ["magnitude", "set"], "period_sweep": [800],
                        "sweep_density": 0.05},
    "06_ood_calibration_robustness": {"models": ["resnet20"], "sparsities": [0.9], "attack_examples": 16},
    "07_gradient_flow": {"models": ["resnet20"]},
}


def _paper_chapters() -> list[str]:
    profiles = book.load_profiles(ROOT)
    return [name for name in book.chapters(ROOT)
            if "epochs" in book.notebook_parameters(ROOT / "notebooks" / f"{name}.ipynb")
            and "paper" in (profiles.get(name) or {})]


@pytest.fixture(scope="module")
def fake_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("paper_data")
    write_all(root, cifar10={"per_batch": 16, "n_test": 40}, cifar100={"n_train": 80, "n_test": 40},
              svhn={"n_train": 40, "n_test": 40})
    return root


def test_some_chapters_have_a_paper_profile():
    assert len(_paper_chapters()) >= 4


@pytest.mark.slow
@pytest.mark.parametrize("name", _paper_chapters())
def test_chapter_runs_paper_profile_on_real_format_files(name, fake_data, tmp_path):
    params = dict(book.load_profiles(ROOT)[name]["paper"])
    declared = book.notebook_parameters(ROOT / "notebooks" / f"{name}.ipynb")
    assert params.get("dataset", "cifar10") in ("cifar10", "cifar100", "svhn"), params
    grid = GRIDS.get(name, {})
    for k, v in grid.items():  # the subset really is a subset of the paper grid
        assert k in params and (set(v) <= set(params[k]) if isinstance(v, list) else True), (k, v)
    shrunk = params | grid | {k: v for k, v in SHRINK.items() if k in declared}
    shrunk |= {"data_root": str(fake_data), "runs": str(tmp_path / "runs")}
    out = tmp_path / f"{name}.ipynb"
    papermill.execute_notebook(str(ROOT / "notebooks" / f"{name}.ipynb"), str(out), parameters=shrunk,
                               kernel_name=book.KERNEL, cwd=str(ROOT / "notebooks"), progress_bar=False)
    assert any((tmp_path / "runs").iterdir()), "the paper profile trained nothing"
