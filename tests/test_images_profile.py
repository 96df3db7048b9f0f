"""The images profile's code path is live: each of its chapters executes with its images-profile parameters
on tiny Fashion-MNIST files written in the real gzipped idx format, and the profile plans and publishes
into its own part of the book.

Only the sizes shrink (1 epoch, 1 seed, CPU, small grids below, every value taken from the profile's own
grid); dataset, networks and schemes are the profile's.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest
import yaml

from fakedata import write_fashion_mnist
from rplib import book, chapters, plan

ROOT = Path(__file__).resolve().parents[1]
SHRINK = {"epochs": 1, "seeds": 1, "batch_size": 16, "device": "cpu"}
GRIDS = {  # a subset of each chapter's images grid (lists) and smaller sizes (numbers)
    "02_scaling": {"depths": [8], "widths": [0.125, 0.25]},
    "03_schemes": {"sparsities": [0.9], "schemes": ["uniform", "erk", "snip"]},
    "04_sanity_checks": {"densities": [0.1], "methods": ["snip"], "prune_data": ["random_labels"]},
    "05_dst_criteria": {"densities": [0.05], "criteria": ["magnitude", "set"], "growths": ["random"],
                        "period_sweep": [25], "sweep_density": 0.05},
    "06_ood_calibration_robustness": {"models": ["lenet5"], "sparsities": [0.9], "attack_examples": 16},
}


def _images_chapters() -> list[str]:
    return [name for name, entry in book.load_profiles(ROOT).items() if "images" in (entry or {})]


@pytest.fixture(scope="module")
def fake_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("images_data")
    write_fashion_mnist(root / "fashion-mnist", n_train=60, n_test=40)
    return root


def test_images_profile_covers_the_image_chapters_on_fashion_mnist():
    names = _images_chapters()
    assert {"02_scaling", "03_schemes", "04_sanity_checks", "05_dst_criteria"} <= set(names)
    for name in names:
        assert book.load_profiles(ROOT)[name]["images"]["dataset"] == "fashion_mnist", name
    assert list(book.plan("images", root=ROOT)) == [n for n in book.chapters(ROOT) if n in names]


def test_width_sweep_spans_at_least_8x_in_parameters():
    p = chapters.params("02_scaling", book.load_profiles(ROOT)["02_scaling"]["images"])
    n = chapters.scaling.prunable_weights(p)
    widths = [n[p.base_depth, w] for w in p.widths]
    assert max(widths) / min(widths) >= 8, widths


def test_images_profile_plans_within_two_hours_on_two_cores(tmp_path):
    rows = plan.plan("images", root=ROOT, runs=tmp_path / "empty-store")
    assert sorted(r.chapter for r in rows) == sorted(_images_chapters()) and all(r.runs > 0 for r in rows)
    assert all(r.hours is not None for r in rows), [r.unknown for r in rows]
    assert sum(r.hours for r in rows) / 2 <= 2.0, [(r.chapter, r.hours) for r in rows]


def test_images_chapters_go_to_their_own_part_of_the_book(tmp_path):
    assert book.book_root("images", ROOT) == ROOT
    assert book.chapters_dir("images", ROOT) == ROOT / "book" / "images"
    assert book.chapters_dir("cpu", ROOT) == ROOT / "book"
    assert (ROOT / "book" / "images" / "00_regime.md").is_file()  # the part builds before any image chapter ran


@pytest.mark.slow
@pytest.mark.parametrize("name", _images_chapters())
def test_chapter_runs_images_profile_on_real_format_files(name, fake_data, tmp_path):
    params = dict(book.load_profiles(ROOT)[name]["images"])
    declared = book.notebook_parameters(ROOT / "notebooks" / f"{name}.ipynb")
    grid = GRIDS.get(name, {})
    for k, v in grid.items():  # the subset really is a subset of the images grid
        assert k in params and (set(v) <= set(params[k]) if isinstance(v, list) else v <= params[k]), (k, v)
    shrunk = params | grid | {k: v for k, v in SHRINK.items() if k in declared}
    shrunk |= {"data_root": str(fake_data), "runs": str(tmp_path / "runs")}
    out = tmp_path / f"{name}.ipynb"
    papermill.execute_notebook(str(ROOT / "notebooks" / f"{name}.ipynb"), str(out), parameters=shrunk,
                               kernel_name=book.KERNEL, cwd=str(ROOT / "notebooks"), progress_bar=False)
    configs = [f for f in (tmp_path / "runs").glob("*/config.json")]
    assert configs, "the images profile trained nothing"
    assert all('"fashion_mnist"' in f.read_text() for f in configs)


def _mini_book(root: Path) -> None:
    """A book with one cpu chapter and the real toc's Fashion-MNIST part; chapter ``a`` has an images entry."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    part = [p for p in toc["parts"] if p["caption"] == "Fashion-MNIST regime"]
    assert len(part) == 1
    mini = {"format": "jb-book", "root": "book/intro",
            "parts": [{"caption": "Chapters", "chapters": [{"file": "book/a"}, {"file": "book/b"}]}, *part]}
    (root / "_toc.yml").write_text(yaml.safe_dump(mini))
    (root / "_config.yml").write_text("title: mini\nonly_build_toc_files: true\nexecute:\n  execute_notebooks: 'off'\n"
                                      "exclude_patterns: [notebooks, _build]\n")
    (root / "book" / "images").mkdir(parents=True)
    (root / "book" / "intro.md").write_text("# Intro\n")
    shutil.copy2(ROOT / "book" / "images" / "00_regime.md", root / "book" / "images" / "00_regime.md")
    (root / "book" / "images" / "00_regime.md").write_text(
        "\n".join(line for line in (ROOT / "book" / "images" / "00_regime.md").read_text().splitlines()
                  if "{cite:p}" not in line and "{doc}" not in line) + "\n")  # no bibliography, no verdicts page
    (root / "notebooks").mkdir()
    (root / "notebooks" / "profiles.yml").write_text("a: {images: {x: 2}}\nb: {}\n")
    kernelspec = {"name": book.KERNEL, "display_name": "Python 3", "language": "python"}
    figure = {"mystnb": {"figure": {"name": "fig-x", "caption": "The value of x, as in {doc}`b`."},
                         "image": {"alt": "A line plot of the value of x."}}}
    for name in ("a", "b"):
        cells = [nbformat.v4.new_markdown_cell(f"# Chapter {name}\n\n{{numref}}`fig-x` shows x; see {{doc}}`b`."),
                 nbformat.v4.new_code_cell("x: int = 1  # an x", metadata={"tags": ["parameters"]}),
                 nbformat.v4.new_code_cell("print(x)")]
        if name == "a":  # a figure whose label the book's copy and the part's copy of the chapter both hold
            source = ("import matplotlib.pyplot as plt\nfrom rplib.plotting import use_style\n\n"
                      "use_style()  # inline figures, also under MPLBACKEND=Agg\nplt.plot([x, x])\nplt.show()")
            cells.append(nbformat.v4.new_code_cell(source, metadata=figure))
        nb = nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": kernelspec})
        nbformat.write(nb, root / "notebooks" / f"{name}.ipynb")
        nbformat.write(nb, root / "book" / f"{name}.ipynb")


def _build(root: Path) -> subprocess.CompletedProcess:
    jb = Path(sys.executable).parent / "jupyter-book"
    return subprocess.run([str(jb), "build", str(root), "--warningiserror", "--keep-going"], cwd=root,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_images_part_builds_before_and_after_the_profile_runs(tmp_path):
    _mini_book(tmp_path)
    book.execute("cpu", None, tmp_path)  # the book's own copies of the chapters, chapter a with its figure
    res = _build(tmp_path)  # no image chapter yet: the part holds its regime page alone
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert (tmp_path / "_build" / "html" / "book" / "images" / "00_regime.html").is_file()
    cpu_chapters = {n: (tmp_path / "book" / f"{n}.ipynb").read_text() for n in ("a", "b")}
    written = book.execute("images", None, tmp_path)
    assert written == [tmp_path / "book" / "images" / "a.ipynb"]  # only the chapters with an images entry
    assert "2" in "".join(o.get("text", "") for c in nbformat.read(written[0], as_version=4).cells
                          for o in c.get("outputs", []))
    assert {n: (tmp_path / "book" / f"{n}.ipynb").read_text() for n in ("a", "b")} == cpu_chapters
    # the part's verdicts go to the published book's findings page, in their own column and table
    assert "## Fashion-MNIST (images profile)" in (tmp_path / "book" / "findings.md").read_text()
    res = _build(tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    page = (tmp_path / "_build" / "html" / "book" / "images" / "a.html").read_text()
    assert "Chapter a" in page and "Fashion-MNIST regime" in page
    # the part's page numbers its own figure and links to the book's page of a chapter the part does not hold
    nb = nbformat.read(written[0], as_version=4)
    assert nb.cells[-1].metadata["mystnb"]["figure"]["name"] == "images-fig-x"
    assert "{numref}`images-fig-x` shows x; see {doc}`/book/b`." in nb.cells[0].source
    assert book.into_part(nb, "images", tmp_path) == nb and "images-images-" not in json.dumps(nb)  # idempotent
    assert 'href="../b.html"' in page
    assert re.search(r"Fig\. 2\.1\b", page), "the part's figure is not numbered in its chapter (2, after the regime " \
                                               "page)"
