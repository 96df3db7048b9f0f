"""rplib plan: runs, epochs and finished runs per chapter, without training."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rplib import chapters, cli
from rplib.plan import ChapterPlan, format_plan, plan, run_epochs, seconds_per_epoch
from rplib.train import run

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", list(chapters.CHAPTERS))
def test_counts_are_the_distinct_configs_of_the_grid(name: str, tmp_path: Path):
    module = chapters.CHAPTERS[name]
    configs = list({c.hash: c for c in module.grid(module.Params())}.values())
    (row,) = plan("smoke", [name], ROOT, tmp_path)
    assert (row.chapter, row.runs, row.finished) == (name, len(configs), 0)
    assert row.epochs == sum(run_epochs(c) for c in configs)


def test_lottery_and_hybrid_count_their_dense_trainings():
    grid = chapters.sanity.labelled_grid(chapters.sanity.Params(lottery_rounds=2))
    by_method = {labels["method"]: run_epochs(cfg) for labels, cfg in grid}
    assert by_method["dense"] == 3 and by_method["lottery"] == 9 and by_method["hybrid"] == 6


def test_finished_count_and_estimate_follow_the_store(tmp_path: Path):
    name = "07_gradient_flow"
    (before,) = plan("smoke", [name], ROOT, tmp_path)
    first = chapters.grid(name)[0]
    run(first, root=tmp_path, progress=False)
    (after,) = plan("smoke", [name], ROOT, tmp_path)
    assert after.finished == before.finished + 1 == 1
    assert after.runs == before.runs
    times = [h["time"] for h in json.loads((tmp_path / first.hash / "history.json").read_text()) if "time" in h]
    measured = seconds_per_epoch([first], tmp_path)
    assert len(times) == first.optim.epochs and measured == {("mlp", "digits"): pytest.approx(sum(times) / len(times))}
    left = sum(run_epochs(c) for c in chapters.grid(name)[1:]) * measured["mlp", "digits"] / 3600
    assert after.hours == pytest.approx(left)  # the store's epoch time replaces the table's


def test_paper_models_without_an_epoch_time_have_no_estimate(tmp_path: Path):
    (row,) = plan("paper", ["02_scaling"], ROOT, tmp_path)
    assert row.hours is None and "resnet/cifar10" in row.unknown and row.runs > 0


def test_cli_prints_a_table_and_rejects_bad_input(tmp_path: Path, capsys):
    assert cli.main(["plan", "--profile", "smoke", "--only", "02_scaling", "--root", str(tmp_path),
                     "--book-root", str(ROOT)]) == 0
    out = capsys.readouterr().out
    assert "02_scaling" in out and "CPU-hours left" in out and "total" in out
    assert cli.main(["plan", "--profile", "gpu", "--book-root", str(ROOT)]) == 2
    assert "unknown profile 'gpu'; valid profiles: smoke, cpu, paper" in capsys.readouterr().err
    assert cli.main(["plan", "--profile", "cpu", "--only", "2_scaling", "--book-root", str(ROOT)]) == 2
    assert "unknown chapter(s) ['2_scaling']" in capsys.readouterr().err


def test_chapter_without_a_grid_module_is_listed_as_unknown(tmp_path: Path):
    root = tmp_path / "repo"
    shutil.copytree(ROOT / "notebooks", root / "notebooks", ignore=shutil.ignore_patterns("runs"))
    shutil.copy(ROOT / "notebooks" / "07_gradient_flow.ipynb", root / "notebooks" / "99_new.ipynb")
    (root / "_toc.yml").write_text((ROOT / "_toc.yml").read_text().replace(
        "      - file: book/07_gradient_flow\n", "      - file: book/07_gradient_flow\n      - file: book/99_new\n"))
    with (root / "notebooks" / "profiles.yml").open("a") as f:
        f.write("\n99_new: {}\n")
    rows = {r.chapter: r for r in plan("smoke", ["07_gradient_flow", "99_new"], root, tmp_path)}
    assert rows["99_new"].runs == 0 and rows["99_new"].hours is None and rows["07_gradient_flow"].runs > 0


def test_format_plan_marks_unknown_estimates():
    rows = [ChapterPlan("a", 2, 10, 1, 0.5, ()), ChapterPlan("b", 1, 3, 0, None, ("resnet20/cifar10",))]
    text = format_plan(rows, "paper")
    assert "GPU-hours left" in text and "unknown" in text and "resnet20/cifar10" in text
    assert text.splitlines()[-2].split()[:5] == ["total", "3", "13", "1", "unknown"]
