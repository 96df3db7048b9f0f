"""The book: profile/parameter validation, the plotting helpers, and an end-to-end smoke build opened in Chromium."""

from __future__ import annotations

import ast
import html
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402
from scipy.stats import t as student_t  # noqa: E402

from rplib import book, plotting  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_INSTALL = "apt-get update && apt-get install -y --no-install-recommends chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


# --------------------------------------------------------------------------- validation before execution


def _mini_book(root: Path, profiles: str) -> None:
    """Two chapters whose notebooks would fail if executed: validation must stop before that."""
    (root / "notebooks").mkdir()
    (root / "book").mkdir()
    (root / "book" / "intro.md").write_text("# Intro\n")
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n- file: book/a\n- file: book/b\n")
    kernelspec = {"name": book.KERNEL, "display_name": "Python 3", "language": "python"}
    for name in "ab":
        cells = [nbformat.v4.new_code_cell("x: int = 1  # an x", metadata={"tags": ["parameters"]}),
                 nbformat.v4.new_code_cell("raise RuntimeError('executed')\nprovenance()")]
        nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": kernelspec}),
                       root / "notebooks" / f"{name}.ipynb")
    (root / "notebooks" / "profiles.yml").write_text(profiles)


def test_plan_uses_profile_parameters_and_smoke_defaults(tmp_path: Path):
    _mini_book(tmp_path, "a:\n  cpu: {x: 3}\n  paper: {x: 5}\nb: {}\n")
    assert book.chapters(tmp_path) == ["a", "b"]
    assert book.plan("cpu", root=tmp_path) == {"a": {"x": 3}, "b": {}}
    assert book.plan("paper", ["a"], tmp_path) == {"a": {"x": 5}}
    assert book.plan("smoke", root=tmp_path) == {"a": {}, "b": {}}


@pytest.mark.parametrize("profile, only, profiles, message", [
    ("gpu", None, "a: {}\nb: {}\n", "unknown profile 'gpu'; valid profiles: smoke, cpu, images, paper"),
    ("cpu", ["c"], "a: {}\nb: {}\n", "unknown chapter(s) ['c']; valid chapters: a, b"),
    ("cpu", None, "a: {}\nb:\n  cpu: {y: 1}\n", "sets unknown parameter(s) ['y']"),
    ("cpu", None, "a: {}\nb:\n  gpu: {x: 1}\n", "unknown profile(s) ['gpu']"),
    ("cpu", None, "a: {}\n", "chapter 'b' has no entry in notebooks/profiles.yml"),
])
def test_execute_rejects_bad_input_before_running(tmp_path: Path, profile, only, profiles, message):
    _mini_book(tmp_path, profiles)
    with pytest.raises(ValueError) as err:
        book.execute(profile, only, tmp_path)
    assert message in str(err.value)
    assert not list((tmp_path / "book").glob("*.ipynb")), "a notebook was executed before validation finished"


def test_plan_rejects_bad_values_of_typed_chapters(tmp_path: Path):
    root = tmp_path / "repo"
    root.mkdir()
    for name in ("_toc.yml", "_config.yml"):
        shutil.copy(ROOT / name, root / name)
    shutil.copytree(ROOT / "notebooks", root / "notebooks", ignore=shutil.ignore_patterns("runs", "*.yml"))
    profiles = book.load_profiles(ROOT)
    profiles["02_scaling"]["cpu"] = dict(profiles["02_scaling"]["cpu"], sparsities=0.9)
    (root / "notebooks" / "profiles.yml").write_text(yaml.safe_dump(profiles))
    with pytest.raises(ValueError, match="parameter 'sparsities' of 02_scaling must be a non-empty list of floats"):
        book.plan("cpu", ["02_scaling"], root)
    assert book.plan("cpu", ["03_schemes"], root)["03_schemes"] == profiles["03_schemes"]["cpu"]


def test_cli_reports_errors_and_checks(tmp_path: Path, capsys):
    _mini_book(tmp_path, "a: {}\nb:\n  cpu: {y: 1}\n")
    assert book.main(["--root", str(tmp_path), "execute", "--profile", "cpu"]) == 2
    assert "sets unknown parameter(s) ['y']" in capsys.readouterr().err
    assert book.main(["--root", str(tmp_path), "check"]) == 1
    assert "sets unknown parameter(s) ['y']" in capsys.readouterr().err
    (tmp_path / "notebooks" / "profiles.yml").write_text("a: {}\nb:\n  cpu: {x: 2}\n")
    assert book.main(["--root", str(tmp_path), "check"]) == 0
    assert "book OK: chapters a, b" in capsys.readouterr().out


def _runnable(root: Path, name: str, source: str) -> None:
    kernelspec = {"name": book.KERNEL, "display_name": "Python 3", "language": "python"}
    cells = [nbformat.v4.new_code_cell("x: int = 1  # an x", metadata={"tags": ["parameters"]}),
             nbformat.v4.new_code_cell(source)]
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": kernelspec}),
                   root / "notebooks" / f"{name}.ipynb")


@pytest.mark.slow
def test_only_the_published_profile_writes_book_and_only_finished_chapters(tmp_path: Path):
    _mini_book(tmp_path, "a: {}\nb: {}\n")
    (tmp_path / "_config.yml").write_text("title: mini\n")
    (tmp_path / "book" / "references.bib").write_text("")
    _runnable(tmp_path, "a", "print(x)")
    assert book.book_root("cpu", tmp_path) == tmp_path
    written = book.execute("smoke", ["a"], tmp_path)
    profile_root = tmp_path / "_build" / "profiles" / "smoke"
    assert written == [profile_root / "book" / "a.ipynb"]
    assert not list((tmp_path / "book").glob("*.ipynb")), "a smoke execution wrote into book/"
    for f in ("_config.yml", "_toc.yml", "book/intro.md", "book/references.bib"):
        assert (profile_root / f).is_file(), f
    (tmp_path / "book" / "b.ipynb").write_text("the last finished execution")
    with pytest.raises(Exception, match="executed"):
        book.execute("cpu", ["b"], tmp_path)
    assert (tmp_path / "book" / "b.ipynb").read_text() == "the last finished execution"
    assert (tmp_path / "_build" / "failed" / "cpu" / "b.ipynb").is_file()
    assert not list((tmp_path / "book").glob(".*"))


#: Every published chapter: (profile, path) for the book's chapters and for each part's (book/images/).
PUBLISHED_CHAPTERS = [(book.PUBLISHED, Path("book") / f"{n}.ipynb") for n in book.chapters(ROOT)] + [
    (profile, folder / f"{n}.ipynb") for profile, folder in book.PUBLISHED_PARTS.items() for n in book.chapters(ROOT)
    if profile in (book.load_profiles(ROOT).get(n) or {})]


@pytest.mark.parametrize("profile, path", PUBLISHED_CHAPTERS, ids=[str(p) for _, p in PUBLISHED_CHAPTERS])
def test_committed_chapters_are_complete_published_executions(profile: str, path: Path):
    assert (ROOT / path).is_file(), f"{path} is missing: run `make book PROFILE={profile}`"
    nb = nbformat.read(ROOT / path, as_version=4)
    expected = book.load_profiles(ROOT)[path.stem].get(profile) or {}
    assert nb.metadata.papermill.parameters == expected, f"{path} was not executed with the {profile} profile"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), f"{path}: a cell was not executed"
    assert not [o for c in code for o in c.outputs if o.output_type == "error"], f"{path}: error output"
    assert nb.metadata.papermill.exception in (None, False)
    if profile in book.PUBLISHED_PARTS:  # a page of its part (book.into_part): labels of its own
        labels = [c.metadata.get("mystnb", {}).get("figure", {}).get("name") for c in code]
        prefix = f"{book.PUBLISHED_PARTS[profile].name}-"
        assert all(n.startswith(prefix) for n in labels if n), f"{path}: figure labels {labels} lack {prefix!r}"


ABSOLUTE_PATH = re.compile(r"(?<![\w.~])/(?:work|root|tmp|home|Users|usr|opt|var|mnt|private)/")
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def _published_text(nb: nbformat.NotebookNode) -> str:
    """Everything of a notebook but its images: metadata, sources and text outputs."""
    nb = json.loads(json.dumps(nb))
    for c in nb["cells"]:
        for o in c.get("outputs", []):
            o["data"] = {k: v for k, v in o.get("data", {}).items() if not k.startswith("image/")}
    return json.dumps(nb)


@pytest.mark.parametrize("profile, path", PUBLISHED_CHAPTERS, ids=[str(p) for _, p in PUBLISHED_CHAPTERS])
def test_published_chapters_carry_no_machine_path_and_no_timestamp(profile: str, path: Path):
    text = _published_text(nbformat.read(ROOT / path, as_version=4))
    assert not ABSOLUTE_PATH.search(text), f"{path}: {ABSOLUTE_PATH.search(text).group(0)!r}..."
    assert not TIMESTAMP.search(text), f"{path}: timestamp {TIMESTAMP.search(text).group(0)!r}"


@pytest.mark.parametrize("profile, path", PUBLISHED_CHAPTERS, ids=[str(p) for _, p in PUBLISHED_CHAPTERS])
def test_published_tables_show_whole_cells_and_no_interval_of_no_width(profile: str, path: Path):
    """No table cell of a published chapter is cut to '...' (pandas' default column width cut the verdict tables'
    statements), and no interval is written as ``[x, x]``."""
    nb = nbformat.read(ROOT / path, as_version=4)
    html = "\n".join(o["data"]["text/html"] for c in nb.cells if c.cell_type == "code" for o in c.outputs
                     if "text/html" in o.get("data", {}))
    cut = re.findall(r"<td>([^<]*\.\.\.)</td>", html)
    assert not cut, f"{path}: cells cut to '...': {cut[:3]}"
    same = re.findall(r"(-?[\d.]+) \[\1, \1\]", _published_text(nb))
    assert not same, f"{path}: intervals of no width written as [x, x]: {same[:3]}"


@pytest.mark.parametrize("name", book.chapters(ROOT))
def test_published_chapters_open_with_what_they_need_and_close_with_a_summary_and_the_next_page(name: str):
    """Each chapter, in notebooks/ and as published in book/, says in its opening cell what it needs and ends with a
    summary and a link to the next chapter (the last chapter to the findings page), in the same words in both."""
    order = book.chapters(ROOT)
    following = order[order.index(name) + 1] if name != order[-1] else "findings"
    opening, closing = [], []
    for path in (ROOT / "notebooks" / f"{name}.ipynb", ROOT / "book" / f"{name}.ipynb"):
        cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown"]
        first = cells[0]
        assert first.source.startswith("# ") and "**What this chapter needs.**" in first.source, f"{path}: opening"
        ends = [c for c in cells if "## Where next" in c.source]
        assert len(ends) == 1, f"{path}: one 'Where next' section"
        where_next = ends[0].source.split("## Where next", 1)[1].split("\n## ", 1)[0]
        assert f"{{doc}}`{following}`" in where_next, f"{path}: 'Where next' does not lead to {following}"
        summary = [c for c in cells if c.source.startswith("## Summary\n")]
        assert len(summary) == 1 and cells.index(summary[0]) >= cells.index(ends[0]) - 1, f"{path}: no closing summary"
        opening.append(first.source)
        closing.append(summary[0].source + ends[0].source)
    assert opening[0] == opening[1] and closing[0] == closing[1], f"{name}: notebooks/ and book/ differ"


def test_strip_machine_details_removes_paths_and_timings(tmp_path: Path):
    cell = nbformat.v4.new_code_cell("print(1)", metadata={
        "execution": {"iopub.status.busy": "2026-01-01T00:00:00Z"},
        "papermill": {"start_time": "2026-01-01T00:00:00", "end_time": "x", "duration": 1.0, "status": "completed"}})
    cell.outputs = [nbformat.v4.new_output("stream", text=f"read {tmp_path}/runs/abc\n"),
                    nbformat.v4.new_output("display_data", data={"text/plain": f"{tmp_path}"})]
    nb = nbformat.v4.new_notebook(cells=[cell], metadata={"papermill": {
        "input_path": f"{tmp_path}/notebooks/a.ipynb", "output_path": "/x/y", "start_time": "t", "end_time": "t",
        "duration": 3.0, "environment_variables": {}, "parameters": {"x": 2}, "exception": None}})
    book.strip_machine_details(nb, tmp_path)
    assert nb.metadata.papermill == {"parameters": {"x": 2}, "exception": None}
    assert "execution" not in cell.metadata and cell.metadata.papermill == {"status": "completed"}
    assert cell.outputs[0].text == "read runs/abc\n" and cell.outputs[1].data["text/plain"] == "."


def _shown_parameters(nb: nbformat.NotebookNode) -> dict:
    """The parameters table a reader sees on a chapter's page: name -> the value, read back as a Python literal."""
    shown = [c for c in nb.cells if c.get("id") == book.PARAMETERS_CELL_ID]
    assert len(shown) == 1, "no parameters table on the page"
    rows = re.findall(r"^\| `(\w+)` \| `(.*?)` \|", shown[0].source, flags=re.M)
    return {name: ast.literal_eval(value) for name, value in rows}


@pytest.mark.parametrize("profile, path", PUBLISHED_CHAPTERS, ids=[str(p) for _, p in PUBLISHED_CHAPTERS])
def test_each_chapter_shows_the_parameters_it_ran_with(profile: str, path: Path):
    nb = nbformat.read(ROOT / path, as_version=4)
    executed: dict = {}
    (defaults,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    exec(defaults.source, {}, executed)  # the cell's defaults, as the kernel saw them ...
    executed.pop("__annotations__", None)
    executed |= dict(nb.metadata.papermill.parameters)  # ... overridden by the profile's injected values
    assert _shown_parameters(nb) == executed
    table = next(c for c in nb.cells if c.get("id") == book.PARAMETERS_CELL_ID)
    assert f"profile `{profile}`" in table.source
    hidden = [c for c in nb.cells if {"parameters", "injected-parameters"} & set(c.metadata.get("tags", []))]
    assert hidden and all("remove-cell" in c.metadata.tags for c in hidden), "papermill's cells are still shown"


def test_root_command_prints_the_folder_to_render(tmp_path: Path, capsys):
    _mini_book(tmp_path, "a: {}\nb: {}\n")
    assert book.main(["--root", str(tmp_path), "root", "--profile", "cpu"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path)
    assert book.main(["--root", str(tmp_path), "root", "--profile", "paper"]) == 0
    folder = Path(capsys.readouterr().out.strip())
    assert folder == tmp_path / "_build" / "profiles" / "paper" and (folder / "book" / "intro.md").is_file()
    assert book.main(["--root", str(tmp_path), "root", "--profile", "gpu"]) == 2
    assert "unknown profile 'gpu'" in capsys.readouterr().err


def test_buttons_need_a_repository_url():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert book.button_problems(config) == []
    assert "mathjax" in config["sphinx"]["config"]["mathjax_path"]
    assert (ROOT / "_static" / config["sphinx"]["config"]["mathjax_path"]).is_file(), "MathJax is not vendored"
    on = config | {"html": {"use_repository_button": True}, "repository": {"url": ""}}
    assert "html.use_repository_button" in book.button_problems(on)[0]
    on["repository"] = {"url": "https://example.org/book"}
    assert book.button_problems(on) == []


# --------------------------------------------------------------------------- plotting


def _seeds_frame() -> pd.DataFrame:
    rows = [("erk", 1, [0.5, 0.7, 0.9]), ("erk", 2, [0.2, 0.2, 0.2]), ("uniform", 1, [0.1, 0.3, 0.2])]
    return pd.DataFrame([{"scheme": s, "width": w, "acc": a, "seed": i}
                         for s, w, accs in rows for i, a in enumerate(accs)])


def test_errorbar_plot_aggregates_seeds():
    fig, ax = plt.subplots()
    plotting.errorbar_plot(_seeds_frame(), x="width", y="acc", hue="scheme", ax=ax)
    erk, uniform = ax.containers
    line, _, (bars,) = erk.lines
    np.testing.assert_allclose(line.get_ydata(), [0.7, 0.2])
    np.testing.assert_allclose([seg[:, 1] for seg in bars.get_segments()], [[0.5, 0.9], [0.2, 0.2]], atol=1e-12)
    assert line.get_color() == plotting.COLORS["erk"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["erk", "uniform"]
    plt.close(fig)


def test_errorbar_plot_ci95_and_bad_input():
    fig, ax = plt.subplots()
    plotting.errorbar_plot(_seeds_frame(), x="width", y="acc", hue="scheme", ax=ax, err="ci95")
    (bars,) = ax.containers[1].lines[2]
    half = student_t.ppf(0.975, 2) * 0.1 / np.sqrt(3)
    np.testing.assert_allclose(bars.get_segments()[0][:, 1], [0.2 - half, 0.2 + half])
    with pytest.raises(ValueError, match="unknown err 'sem'"):
        plotting.errorbar_plot(_seeds_frame(), x="width", y="acc", err="sem", ax=ax)
    with pytest.raises(ValueError, match=r"column\(s\) \['loss'\]"):
        plotting.errorbar_plot(_seeds_frame(), x="width", y="loss", ax=ax)
    plt.close(fig)


def test_colors_and_linestyles_are_stable():
    assert plotting.color("erk") == plotting.COLORS["erk"]
    assert plotting.color("some_new_criterion") == plotting.color("some_new_criterion")
    assert plotting.color("some_new_criterion").startswith("#")
    assert plotting.linestyle("erk_plus") == "--" and plotting.linestyle("erk") == "-"
    for group in plotting.FIGURE_GROUPS:  # names that share a figure never share a colour and line style
        styles = {(plotting.color(n), plotting.linestyle(n)) for n in group if n not in ("taylor", "taylor_fo")}
        assert len(styles) == len([n for n in group if n not in ("taylor", "taylor_fo")]), group
    assert plotting.linestyle("set_as_released") == "--"


def test_figure_legend_is_one_legend_below_all_panels():
    fig, axes = plt.subplots(1, 2)
    for ax in axes:
        ax.plot([0, 1], label="erk")
        ax.plot([1, 0], label="uniform")
        ax.legend()
    axes[1].plot([0, 0], label="dense")
    plotting.figure_legend(fig, title="scheme")
    assert all(ax.get_legend() is None for ax in axes)
    assert len(fig.legends) == 1
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["erk", "uniform", "dense"]
    plt.close(fig)


def test_mean_ci_is_a_scipy_t_interval_in_one_string():
    from scipy import stats

    x = [80.0, 82.0, 81.0, 85.0, 79.0]
    ci = stats.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=stats.sem(x))
    assert plotting.mean_ci(x) == f"{np.mean(x):.1f} [{ci[0]:.1f}, {ci[1]:.1f}]"
    assert plotting.mean_ci([3.0]) == "3.0" and plotting.mean_ci([]) == ""
    frame = pd.DataFrame({"scheme": ["erk"] * 5 + ["uniform"] * 5, "acc": x + [70.0] * 5})
    table = plotting.mean_ci_table(frame, "scheme", "acc")
    assert table.loc["erk"].iloc[0] == plotting.mean_ci(x) and table.loc["uniform"].iloc[0] == "70.0 (no spread)"
    with pytest.raises(ValueError, match="not in the frame"):
        plotting.mean_ci_table(frame, "scheme", "accuracy")


def test_heatmap_draws_values():
    table = pd.DataFrame([[0.1, 0.2], [0.3, 0.4]], index=pd.Index(["a", "b"], name="drop"),
                         columns=pd.Index(["random", "gradient"], name="grow"))
    fig, ax = plt.subplots()
    plotting.heatmap(table, ax=ax, fmt="{:.1f}")
    np.testing.assert_allclose(ax.images[0].get_array(), table.to_numpy())
    assert sorted(t.get_text() for t in ax.texts) == ["0.1", "0.2", "0.3", "0.4"]
    assert ax.get_xlabel() == "grow" and ax.get_ylabel() == "drop"
    plt.close(fig)


def test_provenance(monkeypatch):
    import torch

    monkeypatch.setenv("RPLIB_PROFILE", "cpu")
    prov = plotting.provenance(run_hashes=["bbb", "aaa", "bbb"])
    assert {"python", "torch", "torchvision", "numpy", "rplib", "device", "threads"} <= set(prov.index)
    assert prov.loc["profile", "value"] == "cpu"
    assert prov.loc["torch", "value"] == torch.__version__
    threads = str(min(2, os.cpu_count() or 1))  # more threads than cores is refused
    monkeypatch.setenv("RPLIB_THREADS", threads)
    assert plotting.provenance().loc["threads", "value"] == f"{threads} per run (RPLIB_THREADS)"
    assert prov.loc["runs", "value"] == "2: aaa, bbb"
    assert plotting.provenance(profile="paper").loc["profile", "value"] == "paper"
    monkeypatch.delenv("RPLIB_PROFILE")
    assert plotting.provenance().loc["profile", "value"] == "smoke"


def test_use_style_sets_readable_fonts():
    plotting.use_style()
    assert matplotlib.rcParams["font.size"] == plotting.STYLE["font.size"]
    smallest = plotting.MIN_TEXT_RATIO * plotting.BODY_PX
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.0))
    for ax in axes:
        plotting.errorbar_plot(_seeds_frame(), x="width", y="acc", hue="scheme", ax=ax)
        ax.set_title("a panel")
    plotting.figure_legend(fig, title="layer-wise scheme")
    plotting.heatmap(pd.DataFrame([[0.1, 0.2]], index=["a"], columns=["b", "c"]), ax=fig.add_subplot(2, 2, 4))
    fig.canvas.draw()
    texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_text().strip() and t.get_visible()]
    small = sorted({(t.get_text(), round(plotting.text_px(t.get_fontsize()), 1)) for t in texts
                    if plotting.text_px(t.get_fontsize()) < smallest})
    assert texts and not small, f"figure text below {smallest:.1f} px (0.8 of the body size): {small}"
    plt.close(fig)


def test_category_and_level_colours_are_distinct_and_colour_blind_safe():
    levels = plotting.level_colors([0.95, 0.5, 0.9, 0.5])
    assert list(levels) == [0.5, 0.9, 0.95] and len(set(levels.values())) == 3
    cats = plotting.category_colors(["cnn1d", "resnet20", "dense", "vgg19", "cnn1d"])
    assert list(cats) == ["cnn1d", "resnet20", "dense", "vgg19"] and len(set(cats.values())) == 4
    assert cats["dense"] == plotting.COLORS["dense"] and set(cats.values()) - {"#000000"} <= set(plotting.QUALITATIVE)
    with pytest.raises(ValueError, match="at most 12 colours"):
        plotting.category_colors(range(13))


def test_robustness_figure_gives_each_sparsity_its_own_colour():
    from rplib.chapters import robustness

    rows = [{"model": "mlp", "attack": "fgsm", "sparsity": s, "eps": e, "seed": k,
             "robust accuracy": 50.0 - 100 * s * e} for s in (0.0, 0.5, 0.9, 0.95) for e in (0.0, 0.1) for k in range(2)]
    params = type("P", (), {"models": ["mlp"], "attacks": ["fgsm"], "epsilons": [0.0, 0.1], "dataset": "digits",
                            "scheme": "erk"})()
    fig = robustness.plot_robustness(pd.DataFrame(rows), params)
    colours = {c.get_label(): c.lines[0].get_color() for ax in fig.axes for c in ax.containers}
    sparse = {k: v for k, v in colours.items() if k != "dense"}
    assert len(sparse) == 3 and len(set(sparse.values())) == 3, colours
    assert fig.legends[0].get_title().get_text() != "network"
    plt.close(fig)


def test_bibliography_is_author_year_with_a_link_for_every_entry():
    from pybtex.database import parse_file

    from rplib import bibstyle

    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert "rplib.bibstyle" in config["sphinx"]["extra_extensions"]
    assert config["sphinx"]["config"]["bibtex_default_style"] == bibstyle.STYLE_NAME
    assert config["sphinx"]["config"]["bibtex_reference_style"] == "author_year"
    entries = parse_file(ROOT / "book" / "references.bib").entries
    unlinked = [key for key, e in entries.items() if not {"doi", "url"} & {f.lower() for f in e.fields}]
    assert not unlinked, f"entries without a DOI or URL: {unlinked}"
    formatted = {e.key: e for e in bibstyle.AuthorYearStyle().format_entries(entries.values())}
    assert formatted["liu2022unreasonable"].label == "Liu et al. 2022"
    assert formatted["frankle2019lottery"].label == "Frankle and Carbin 2019"
    assert formatted["torchao2024sparsity"].label == "PyTorch Team 2024"
    text = formatted["mocanu2018scalable"].text.render_as("text")
    assert "10.1038/s41467-018-04316-3" in text


# --------------------------------------------------------------------------- end to end


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs: list[str] = []
        self.classes: list[str] = []
        self.h1 = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a.get("src") or "")
        if tag == "h1":
            self.h1 += 1
        self.classes.extend((a.get("class") or "").split())


def _env() -> dict[str, str]:
    """The environment of the book's subprocesses: this checkout's rplib first (kernels, Sphinx extensions)."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return os.environ | {"MPLBACKEND": "Agg", "PYTHONPATH": path}


def _book_copy(tmp_path: Path, *ignore: str) -> Path:
    """A copy of the book's sources (config, toc, stylesheet, ``book/`` without ``ignore``) under ``tmp_path``."""
    src = tmp_path / "repo"
    src.mkdir()
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "_static", src / "_static")
    shutil.copytree(ROOT / "book", src / "book", ignore=shutil.ignore_patterns(*ignore))
    return src


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail(f"chromium is needed to check the rendered book; install it with: {CHROMIUM_INSTALL}")
    return exe


# Loads every rendered page in turn in one iframe of the reader's width, waits for MathJax, and measures what a
# reader meets: images that did not load, untypeset math, tables wider than their container, words or numbers
# broken across lines inside table cells (a break after the hyphen or slash of a compound or a range is a line
# break, not a broken word or number), a page wider than the window, figures without a numbered caption or a
# describing alt text. The reports, one per page, are written into the probe's own DOM: one Chromium launch.
_READER_PROBE = r"""<!DOCTYPE html><html><body style="margin:0"><pre id="out">pending</pre>
<iframe id="page" style="width:{width}px;height:900px;border:0"></iframe>
<script>
const pages = {pages};
const reports = {{}};
const frame = document.getElementById("page");
function measure() {{
  const doc = frame.contentDocument, win = frame.contentWindow;
  const visible = doc.body.innerText;
  const broken = [];
  for (const cell of doc.querySelectorAll(".bd-article td, .bd-article th")) {{
    const walker = doc.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {{
      for (const m of node.data.matchAll(/\S+/g)) {{
        // a compound or a range may break after its hyphen or slash ("out-of-| distribution", "0.01-| 0.02",
        // "ResNet-20/| 32"), nowhere else: a sign, a number and a word stay whole
        let start = m.index;
        for (const piece of m[0].split(/(?<=[A-Za-z0-9][-\/])(?=[A-Za-z0-9])/)) {{
          const range = doc.createRange();
          range.setStart(node, start);
          range.setEnd(node, start + piece.length);
          start += piece.length;
          const lines = new Set([...range.getClientRects()].filter(b => b.width > 0).map(b => Math.round(b.top)));
          if (lines.size > 1) broken.push(m[0]);
        }}
      }}
    }}
  }}
  return {{
    brokenImages: [...doc.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute("src")),
    rawMath: [...doc.querySelectorAll(".math")].filter(m => !m.querySelector("mjx-container")).map(m => m.textContent),
    rawDelimiters: /\\\(|\\\[/.test(visible),
    wideTables: [...doc.querySelectorAll("table")].filter(t => t.getBoundingClientRect().width >
      t.parentElement.getBoundingClientRect().width + 1).map(t => t.innerText.slice(0, 80)),
    nbval: visible.includes("NBVAL_"),
    pageWidth: doc.documentElement.scrollWidth,
    viewport: win.innerWidth,
    broken: broken,
    figures: [...doc.querySelectorAll(".bd-article figure")].map(f => {{
      const img = f.querySelector("img");
      return {{id: f.id, number: (f.querySelector("figcaption .caption-number") || {{}}).textContent || "",
               caption: (f.querySelector("figcaption") || {{}}).textContent || "",
               alt: img ? img.getAttribute("alt") || "" : "", src: img ? img.getAttribute("src") : ""}};
    }}),
    bareImages: [...doc.querySelectorAll(".bd-article .cell_output img")].filter(i => !i.closest("figure"))
      .map(i => i.getAttribute("src")),
  }};
}}
let next = 0;
frame.onload = () => setTimeout(() => {{
  reports[pages[next]] = measure();
  next += 1;
  if (next < pages.length) frame.src = pages[next];
  else document.getElementById("out").textContent = JSON.stringify(reports);
}}, 4000);
frame.src = pages[0];
</script></body></html>"""


def _read_pages(chromium: str, pages: list[Path], width: int, tmp: Path) -> dict[Path, dict]:
    """Every page of ``pages`` read in one Chromium at ``width`` px: ``{page: what the probe measured}``."""
    probe = tmp / f"reader-{width}.html"
    probe.write_text(_READER_PROBE.format(pages=json.dumps([p.as_uri() for p in pages]), width=width))
    res = subprocess.run([chromium, *CHROMIUM_FLAGS, "--allow-file-access-from-files",
                          f"--virtual-time-budget={30000 * len(pages)}", f"--window-size={width + 40},1000",
                          f"--user-data-dir={tmp / 'chromium'}", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=60 + 30 * len(pages))
    assert res.returncode == 0, res.stderr[-2000:]
    out = res.stdout.split('<pre id="out">', 1)[1].split("</pre>", 1)[0]
    assert out != "pending", "the rendered pages did not all finish loading in the probe"
    reports = json.loads(html.unescape(out))
    return {p: reports[p.as_uri()] for p in pages}


def _assert_reads_well(seen: dict, entry: str, notebook: Path | None) -> None:
    """What the probe ``seen`` on ``entry`` at 1400 px, as a reader meets it: images loaded, math typeset, tables
    inside their container, table cells on the verdicts and findings pages that break only between words, no page
    wider than the window, every figure numbered by its chapter, captioned and described (``notebook``: the
    chapter's executed notebook, whose figures the page must all number)."""
    assert not seen["brokenImages"], f"{entry}: images that did not load: {seen['brokenImages']}"
    assert not seen["rawMath"] and not seen["rawDelimiters"], f"{entry}: math not rendered: {seen['rawMath'][:3]}"
    assert not seen["wideTables"], f"{entry}: tables wider than their container: {seen['wideTables']}"
    assert not seen["nbval"], f"{entry}: an NBVAL_ marker is visible"
    assert seen["pageWidth"] <= seen["viewport"], f"{entry}: page {seen['pageWidth']} px wide in a window of " \
                                                  f"{seen['viewport']} px"
    if Path(entry).name in ("verdicts", "findings"):
        assert not seen["broken"], f"{entry}: table cells break inside {seen['broken'][:10]}"
    assert not seen["bareImages"], f"{entry}: figures without a caption: {seen['bareImages']}"
    chapters = book.chapters(ROOT)
    for fig in seen["figures"]:
        assert fig["id"], f"{entry}: a figure without a name to refer to it by"
        if Path(entry).name in chapters:
            chapter = chapters.index(Path(entry).name) + 1
            assert fig["number"].startswith(f"Fig. {chapter}."), f"{entry}: figure {fig['id']} is numbered " \
                                                                f"{fig['number']!r}, not in chapter {chapter}"
        assert len(fig["caption"]) > len(fig["number"]) + 20, f"{entry}: figure {fig['id']} has no caption"
        assert len(fig["alt"]) > 20 and "/" not in fig["alt"], f"{entry}: figure {fig['id']} alt {fig['alt']!r}"
    if notebook is not None:
        nb = nbformat.read(notebook, as_version=4)
        pngs = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
        assert len(seen["figures"]) == pngs, f"{entry}: {len(seen['figures'])} numbered figures of {pngs}"


@pytest.mark.slow
def test_smoke_book_builds_and_renders(tmp_path: Path):
    """The smoke book built with warnings as errors and read in one Chromium at 1400 px as a reader meets it (the
    committed book renders from the same sources): every page rendered without errors, math typeset, images loaded,
    tables that fit, numbered captioned figures (:func:`_assert_reads_well`).

    Its first chapter executes through the book's executor (papermill, the parameters table, no machine paths).
    The other chapters are the committed smoke executions in ``notebooks/``, which nbval re-executes and compares in
    the same test session, made publishable as the executor makes its own."""
    chromium = _chromium()
    src = _book_copy(tmp_path, "*.ipynb", ".ipynb_checkpoints")
    shutil.copytree(ROOT / "notebooks", src / "notebooks", ignore=shutil.ignore_patterns("runs", ".ipynb_checkpoints"))
    # the chapters' run store (their `runs` parameter, ../runs) is the one nbval's executions of notebooks/ use:
    # the smoke runs train once in a test session, whichever of the two asks first (file locks order them)
    (ROOT / "runs").mkdir(exist_ok=True)
    (src / "runs").symlink_to(ROOT / "runs", target_is_directory=True)
    env = _env()
    first, *others = book.chapters(src)

    res = subprocess.run([sys.executable, "-m", "rplib.book", "execute", "--profile", "smoke", "--only", first],
                         cwd=src, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    assert not list((src / "book").glob("*.ipynb")), "the smoke profile wrote into book/"
    executed = book.chapters_dir("smoke", src)
    assert book.PARAMETERS_CELL_ID in (executed / f"{first}.ipynb").read_text(), "no parameters table"
    for name in others:
        shutil.copy(src / "notebooks" / f"{name}.ipynb", executed / f"{name}.ipynb")
        book._publishable(executed / f"{name}.ipynb", "smoke", src)
    book.write_findings("smoke", src)
    jb = Path(sys.executable).parent / "jupyter-book"
    site = book.book_root("smoke", src)
    res = subprocess.run([str(jb), "build", str(site), "--warningiserror", "--keep-going"], cwd=src, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]

    html_dir = site / "_build" / "html"
    entries = book.toc_files(src)
    pages = [html_dir / f"{entry}.html" for entry in entries]
    for entry, page in zip(entries, pages):
        assert page.is_file(), f"{entry} was not rendered"
    seen = _read_pages(chromium, pages, 1400, tmp_path)
    for entry, page in zip(entries, pages):
        dom = page.read_text()  # the built page as served
        parsed = _Page()
        parsed.feed(dom)
        assert parsed.h1 >= 1, f"{entry}: no title in the rendered page"
        assert "NBVAL_" not in dom, f"{entry}: an NBVAL_ marker is visible"
        for bad in ("Traceback", '"ename"', "Kernel died"):
            assert bad not in dom, f"{entry}: {bad!r} in the rendered page"
        assert "stderr" not in parsed.classes and "traceback" not in parsed.classes, f"{entry}: error output"
        figures = [s for s in parsed.imgs if "_images/" in s]
        for s in parsed.imgs:
            assert s, f"{entry}: an <img> without src"
        for s in figures:
            f = (page.parent / s).resolve()
            assert f.is_file() and f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{entry}: figure {s} missing or not PNG"
        name = Path(entry).name
        chapter = name in book.chapters(src)
        _assert_reads_well(seen[page], entry, executed / f"{name}.ipynb" if chapter else None)
        if chapter:
            nb = nbformat.read(executed / f"{name}.ipynb", as_version=4)
            outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
            assert not [o for o in outputs if o.output_type == "error" or o.get("name") == "stderr"]
            pngs = sum("image/png" in o.get("data", {}) for o in outputs)
            assert pngs >= 1 and len(figures) == pngs, f"{entry}: {len(figures)} figures shown of {pngs}"
    bibliography = (html_dir / "book" / "bibliography.html").read_text()
    assert "The Unreasonable Effectiveness of Random Pruning" in bibliography


def test_mean_ci_keeps_an_accuracys_interval_inside_its_range():
    """Two seeds far apart give a t-interval wider than an accuracy's range; the tables cut it at 0 and 100."""
    assert plotting.mean_ci([10.0, 35.8]) == "22.9 [-141.0, 186.8]"
    assert plotting.mean_ci([10.0, 35.8], bounds=(0.0, 100.0)) == "22.9 [0.0, 100.0]"
