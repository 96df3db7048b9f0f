"""rplib plan: runs, epochs and finished runs per chapter, without training."""

from __future__ import annotations

import json
import shutil
import types
from pathlib import Path

import pytest
import torch

from rplib import book, chapters, cli, regime, train
from rplib.config import ModelConfig, OptimConfig, RunConfig
from rplib.data import DataConfig, split_sizes
from rplib.plan import (ChapterPlan, EpochTime, EpochTimer, format_plan, forward_macs, longest_first, plan, run_cost,
                        run_epochs, seconds_per_epoch, with_pretrainings)
from rplib.train import run, time_epoch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", list(chapters.CHAPTERS))
def test_counts_are_the_distinct_configs_of_the_grid(name: str, tmp_path: Path):
    """The chapter's grid and the longer runs of its training-length check, each distinct config once."""
    module = chapters.CHAPTERS[name]
    p = module.Params()
    checks = module.length_configs(p) if hasattr(module, "length_configs") else {}
    longer = [regime.longer(c) for cfgs in checks.values() for c in cfgs]
    configs = list({c.hash: c for c in [*module.grid(p), *longer]}.values())
    (row,) = plan("smoke", [name], ROOT, tmp_path)
    assert (row.chapter, row.runs, row.finished) == (name, len(configs), 0)
    assert row.epochs == sum(run_epochs(c) for c in configs)


def test_lottery_and_hybrid_count_their_dense_trainings():
    grid = chapters.sanity.labelled_grid(chapters.sanity.Params(lottery_rounds=2))
    by_method = {labels["method"]: run_epochs(cfg) for labels, cfg in grid}
    # the first dense training of a ticket is the store's dense run of its network and seed, counted once
    assert by_method["dense"] == 3 and by_method["lottery"] == 6 and by_method["hybrid"] == 3
    far = grid[0][1].with_(**{"sparsity.method": "hybrid", "sparsity.density": 0.1, "sparsity.rewind_epoch": 3})
    assert run_epochs(far) == 6  # a rewind point the dense run does not keep: the ticket pre-trains itself
    tickets = [cfg for labels, cfg in grid if labels["method"] in ("lottery", "hybrid")]
    added = with_pretrainings(tickets)[len(tickets):]
    assert len(added) == len({c.seed for c in tickets}) and all(not c.sparsity.sparse for c in added)
    assert with_pretrainings([cfg for _, cfg in grid]) == [cfg for _, cfg in grid]  # the grid holds its dense runs


def test_finished_count_and_estimate_follow_the_store(tmp_path: Path):
    name = "07_gradient_flow"
    (before,) = plan("smoke", [name], ROOT, tmp_path)
    first = chapters.grid(name)[0]
    run(first, root=tmp_path, progress=False)
    (after,) = plan("smoke", [name], ROOT, tmp_path)
    assert after.finished == before.finished + 1 == 1
    assert after.runs == before.runs
    wall = json.loads((tmp_path / first.hash / "metrics.json").read_text())["wall_time"]
    measured = seconds_per_epoch([first], tmp_path)
    assert measured == {("mlp", "digits"): pytest.approx(wall / run_epochs(first))}
    left = sum(run_epochs(c) for c in chapters.grid(name)[1:]) * measured["mlp", "digits"] / 3600
    assert after.hours == pytest.approx(left)  # the store's epoch time replaces the table's


def test_longest_first_orders_by_compute_and_keeps_ties_in_order():
    grid = [cfg for _, cfg in chapters.sanity.labelled_grid(chapters.sanity.Params(lottery_rounds=2))]
    ordered = longest_first(grid)
    assert sorted(c.hash for c in ordered) == sorted(c.hash for c in grid)
    epochs = [run_epochs(c) for c in ordered]  # one network: lottery (9 epochs), hybrid (6), the rest (3)
    assert epochs == sorted(epochs, reverse=True) and epochs[0] > epochs[-1]
    for n in set(epochs):  # equal costs keep the grid's order
        assert [c for c in ordered if run_epochs(c) == n] == [c for c in grid if run_epochs(c) == n]
    cifar = RunConfig(data=DataConfig(name="cifar10", root="absent"), model=ModelConfig(name="resnet", depth=20))
    deep, wide = cifar.with_(**{"model.depth": 110}), cifar.with_(**{"model.width": 2.0})
    assert longest_first([cifar, wide, deep]) == [deep, wide, cifar]  # 253M, 4 x 41M and 41M MACs per image
    assert run_cost(deep) == run_epochs(deep) * 50_000 * forward_macs(deep.model, deep.data)
    assert forward_macs(deep.model, deep.data) == 253_149_824


def test_time_epoch_scales_timed_steps_to_the_real_splits_without_data_files(tmp_path: Path, monkeypatch):
    cfg = RunConfig(data=DataConfig(name="cifar10", root=str(tmp_path / "absent"), val_fraction=0.1),
                    model=ModelConfig(name="resnet20", width=0.25), device="cpu",
                    optim=OptimConfig(epochs=160, batch_size=128)).with_(**{"sparsity.method": "random",
                                                                             "sparsity.density": 0.1})
    assert split_sizes(cfg.data) == {"train": 45_000, "val": 5_000, "test": 10_000}
    assert 0 < time_epoch(cfg, steps=1, warmup=1) < float("inf")
    assert not (tmp_path / "absent").exists()
    clock = iter(range(100))  # each timed stretch lasts one tick of this clock
    monkeypatch.setattr(train, "time", types.SimpleNamespace(perf_counter=lambda: float(next(clock))))
    # 45000 // 128 = 351 steps per epoch at 1/2 tick per step, and 5000 validation examples timed on
    # max(128 * (2 + 1), 1000) = 1000 synthetic ones
    assert time_epoch(cfg, steps=2, warmup=1) == 351 / 2 + 5_000 / 1_000


def test_measure_times_the_pairs_without_finished_runs(tmp_path: Path):
    (table,) = plan("cpu", ["07_gradient_flow"], ROOT, tmp_path)
    timer = EpochTimer(steps=1)
    (timed,) = plan("cpu", ["07_gradient_flow"], ROOT, tmp_path, timer)
    configs = chapters.grid("07_gradient_flow", book.plan("cpu", ["07_gradient_flow"], ROOT)["07_gradient_flow"])
    assert len(timer.seconds) == len({EpochTimer.key(c) for c in configs}) > 1
    assert timed.hours == pytest.approx(sum(run_epochs(c) * timer(c) for c in configs) / 3600)
    assert timed.hours != table.hours and (timed.runs, timed.epochs) == (table.runs, table.epochs)


def test_measure_on_a_machine_without_the_runs_device_fails_clearly(tmp_path: Path):
    if torch.cuda.is_available():
        (row,) = plan("paper", ["07_gradient_flow"], ROOT, tmp_path, EpochTimer(steps=1))
        assert row.hours is not None and not row.unknown
    else:
        with pytest.raises(ValueError, match="device 'cuda' asked for but no CUDA GPU is available"):
            plan("paper", ["07_gradient_flow"], ROOT, tmp_path, EpochTimer(steps=1))


def test_paper_models_without_an_epoch_time_have_no_estimate(tmp_path: Path):
    (row,) = plan("paper", ["02_scaling"], ROOT, tmp_path)
    assert row.hours is None and "resnet/cifar10" in row.unknown and row.runs > 0


def test_cli_prints_a_table_and_rejects_bad_input(tmp_path: Path, capsys):
    assert cli.main(["plan", "--profile", "smoke", "--only", "02_scaling", "--root", str(tmp_path),
                     "--book-root", str(ROOT)]) == 0
    out = capsys.readouterr().out
    assert "02_scaling" in out and "CPU-hours left" in out and "total" in out
    assert cli.main(["plan", "--profile", "gpu", "--book-root", str(ROOT)]) == 2
    assert "unknown profile 'gpu'; valid profiles: smoke, cpu, images, paper" in capsys.readouterr().err
    assert cli.main(["plan", "--profile", "cpu", "--only", "2_scaling", "--book-root", str(ROOT)]) == 2
    assert "unknown chapter(s) ['2_scaling']" in capsys.readouterr().err
    assert cli.main(["plan", "--profile", "smoke", "--measure", "0", "--book-root", str(ROOT)]) == 2
    assert "--measure takes a number of steps >= 1, got 0" in capsys.readouterr().err
    assert cli.main(["plan", "--profile", "smoke", "--only", "07_gradient_flow", "--measure", "1", "--root",
                     str(tmp_path), "--book-root", str(ROOT)]) == 0
    assert "timed here over 1 training steps each" in capsys.readouterr().out


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
    gpu = EpochTime(2.0, "measured", "cuda", "NVIDIA H200, 20 steps timed")
    rows = [ChapterPlan("a", 2, 10, 1, 0.5, (), (("resnet/cifar10", gpu),)),
            ChapterPlan("b", 1, 3, 0, None, ("resnet20/cifar10",))]
    text = format_plan(rows, "paper")
    assert "GPU-hours left" in text and "unknown" in text and "resnet20/cifar10" in text
    assert "resnet/cifar10: 2 s/epoch, measured on cuda, NVIDIA H200" in text
    (total,) = [line for line in text.splitlines() if line.startswith("total")]
    assert total.split()[:5] == ["total", "3", "13", "1", "unknown"]


def test_hours_measured_on_a_cpu_are_never_labelled_gpu_hours(tmp_path: Path):
    """The paper profile's chapter 5 runs on ``device: auto``: timed on a machine without a GPU, its hours are
    CPU-hours, and each network says where its epoch time came from."""
    timer = EpochTimer(steps=1)
    rows = plan("paper", ["05_dst_criteria"], ROOT, tmp_path, timer)
    text = format_plan(rows, "paper")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    assert {t.device for r in rows for _, t in r.sources} == {device}
    assert ("GPU-hours left" in text) == (device == "cuda") and ("CPU-hours left" in text) == (device == "cpu")
    assert "mlp/cifar10: " in text and f"measured on {device}" in text
    table = plan("cpu", ["07_gradient_flow"], ROOT, tmp_path)
    assert {t.source for r in table for _, t in r.sources} == {"table"}
    assert "CPU-hours left" in format_plan(table, "cpu")
    mixed = [ChapterPlan("a", 1, 1, 0, 0.1, (), (("x/y", EpochTime(1.0, "store", "cpu")),)),
             ChapterPlan("b", 1, 1, 0, 0.1, (), (("z/y", EpochTime(1.0, "store", "cuda")),))]
    assert "  hours left" in format_plan(mixed, "paper") and "different kinds of device" in format_plan(mixed, "x")


def test_reproduce_page_lists_what_each_profile_trains():
    """book/reproduce.md holds sizes_markdown() verbatim, so the published run counts follow the grids."""
    from rplib.plan import sizes_markdown

    lines = (ROOT / "book" / "reproduce.md").read_text().splitlines()
    start = lines.index("% generated by rplib.plan.sizes_markdown(); do not edit by hand")
    end = lines.index("% end of generated table", start)
    assert "\n".join(lines[start + 1:end]) == sizes_markdown(ROOT), (
        "regenerate: python -m rplib.book sizes")
