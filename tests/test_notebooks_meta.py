"""Every notebook in notebooks/ is a well-formed chapter: parameters, toc entry, profiles, provenance, smoke outputs."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
import yaml

from rplib import book

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
ids = [p.stem for p in NOTEBOOKS]


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def test_there_are_chapters():
    assert NOTEBOOKS, "notebooks/ holds no notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_one_inspectable_parameters_cell(path: Path):
    tagged = [c for c in _read(path).cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged 'parameters'"
    assert tagged[0].cell_type == "code"
    params = book.notebook_parameters(path)
    assert params, f"{path.name}: papermill infers no parameters"
    lines = [ln for ln in tagged[0].source.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    unparsed = [ln for ln in lines if ln.split(":")[0].split("=")[0].strip() not in params]
    assert not unparsed and len(lines) == len(params), (
        f"{path.name}: papermill cannot read these parameter lines (one `name: type = value  # help` per line, "
        f"no '=' inside the help comment): {unparsed}")
    for name, p in params.items():
        assert p["inferred_type_name"] not in ("None", ""), f"{path.name}: parameter {name!r} has no type annotation"
        assert p["help"].strip(), f"{path.name}: parameter {name!r} has no '# help' comment"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_listed_in_toc(path: Path):
    assert f"book/{path.stem}" in book.toc_files(ROOT), f"add '- file: book/{path.stem}' to _toc.yml"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_profiles_entry_names_existing_parameters(path: Path):
    profiles = book.load_profiles(ROOT)
    assert path.stem in profiles, f"notebooks/profiles.yml has no entry {path.stem!r}"
    known = set(book.notebook_parameters(path))
    for profile, values in profiles[path.stem].items():
        assert profile in book.PROFILES and profile != "smoke", f"{path.stem}: profile {profile!r}"
        unknown = set(values or {}) - known
        assert not unknown, f"profiles.yml[{path.stem}][{profile}] sets unknown parameters {sorted(unknown)}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_ends_with_provenance(path: Path):
    code = [c for c in _read(path).cells if c.cell_type == "code"]
    assert "provenance(" in code[-1].source, f"{path.name}: the last code cell must call provenance()"
    assert "nbval-ignore-output" in code[-1].metadata.get("tags", []), (
        f"{path.name}: provenance varies by machine; tag its cell nbval-ignore-output")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_no_nbval_markers_in_sources(path: Path):
    marked = [c.source.splitlines()[0] for c in _read(path).cells if "NBVAL_" in c.source]
    assert not marked, f"{path.name}: use cell tags (nbval-ignore-output, ...) instead of NBVAL_ comments: {marked}"


HIDDEN_INPUT = {"hide-input", "remove-input", "hide-cell", "remove-cell"}
MAX_VISIBLE_LINES = 80


def visible_code_lines(nb: nbformat.NotebookNode) -> int:
    """Non-blank code lines a reader sees without opening a toggle: cells not tagged hide/remove-input/cell."""
    return sum(len([ln for ln in c.source.splitlines() if ln.strip()]) for c in nb.cells
               if c.cell_type == "code" and not HIDDEN_INPUT & set(c.metadata.get("tags", [])))


def test_visible_code_lines_counts_only_shown_cells():
    cells = [nbformat.v4.new_code_cell("a = 1\n\nb = 2"), nbformat.v4.new_markdown_cell("text"),
             nbformat.v4.new_code_cell("import x\nimport y", metadata={"tags": ["hide-input"]})]
    assert visible_code_lines(nbformat.v4.new_notebook(cells=cells)) == 2


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_chapter_shows_at_most_80_code_lines(path: Path):
    n = visible_code_lines(_read(path))
    assert n <= MAX_VISIBLE_LINES, (f"{path.name}: {n} visible code lines; move plumbing into rplib or tag "
                                    "its cell hide-input")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_committed_with_clean_smoke_outputs(path: Path):
    nb = _read(path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), f"{path.name}: run `python -m rplib.book refresh`"
    counts = [c.execution_count for c in code]
    assert counts == sorted(counts), f"{path.name}: cells were executed out of order"
    for c in code:
        for out in c.outputs:
            assert out.output_type != "error", f"{path.name}: error output {out.get('ename')}"
            assert not (out.output_type == "stream" and out.name == "stderr"), f"{path.name}: stderr: {out.text[:200]}"
    assert nb.metadata.kernelspec.name == book.KERNEL


def test_profiles_name_only_known_profiles_and_chapters():
    data = yaml.safe_load((ROOT / "notebooks" / "profiles.yml").read_text())
    assert set(data) == set(book.chapters(ROOT))
    for name, entry in data.items():
        assert set(entry or {}) <= {"cpu", "images", "paper"}, f"{name}: {sorted(entry)}"


def test_book_layout_is_consistent():
    assert book.check(ROOT) == []


def _notebook(path: Path, params: str, last: str = "from rplib.plotting import provenance\nprovenance()",
              n_param_cells: int = 1) -> None:
    cells = [nbformat.v4.new_code_cell(params, metadata={"tags": ["parameters"]}) for _ in range(n_param_cells)]
    cells.append(nbformat.v4.new_code_cell(last))
    kernelspec = {"name": book.KERNEL, "display_name": "Python 3", "language": "python"}
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": kernelspec}), path)


def test_check_reports_each_kind_of_problem(tmp_path: Path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "intro.md").write_text("# Intro\n")
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n"
                                       "- file: book/a\n- file: book/ghost\n")
    _notebook(tmp_path / "notebooks" / "a.ipynb", "x: int = 1  # an x")
    _notebook(tmp_path / "notebooks" / "b.ipynb", "y: int = 2  # a y", last="print(1)", n_param_cells=2)
    (tmp_path / "notebooks" / "profiles.yml").write_text("a:\n  cpu: {x: 3, z: 4}\n  gpu: {x: 1}\nc:\n  cpu: {}\n")
    problems = "\n".join(book.check(tmp_path))
    assert "book/ghost" in problems
    assert "b.ipynb is not listed in _toc.yml" in problems
    assert "unknown profile(s) ['gpu']" in problems
    assert "chapters not in the book: ['c']" in problems
    (tmp_path / "notebooks" / "profiles.yml").write_text("a:\n  cpu: {x: 3, z: 4}\n")
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n- file: book/a\n- file: book/b\n")
    problems = "\n".join(book.check(tmp_path))
    assert "unknown parameter(s) ['z']" in problems
    assert "b.ipynb has 2 cells tagged 'parameters'" in problems
    assert "b.ipynb does not end with a provenance cell" in problems
    assert "chapter 'b' has no entry in notebooks/profiles.yml" in problems


VERDICT_WORDS = ("agrees", "disagrees", "inconclusive")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_no_chapter_computes_a_verdict_outside_the_claims_module(path: Path):
    """Verdict words come from rplib.claims.decide only; a chapter owning claims publishes them."""
    from rplib.claims import CLAIMS

    code = "\n".join(c.source for c in _read(path).cells if c.cell_type == "code")
    words = [w for w in VERDICT_WORDS if w in code]
    assert not words, f"{path.name}: code writes verdict words {words}; decide claims with rplib.claims.decide"
    if any(c.chapter == path.stem for c in CLAIMS.values()):
        decides = "decide(" in code or "claim_verdicts(" in code  # a chapter module's claim_verdicts calls decide
        assert decides and "publish(" in code, f"{path.name}: owns claims but does not decide and publish"


def test_no_library_module_but_claims_writes_a_verdict():
    quoted = [f'"{w}"' for w in VERDICT_WORDS] + [f"'{w}'" for w in VERDICT_WORDS]
    offenders = [p.relative_to(ROOT) for p in (ROOT / "rplib").rglob("*.py")
                 if p.name != "claims.py" and any(q in p.read_text() for q in quoted)]
    assert not offenders, f"verdict words written outside rplib/claims.py: {offenders}"


MAX_FIGURE_PX = int(2 * 9.5 * 80)  # retina PNG, 9-inch figure plus the tight bounding box at 80 dpi: unscaled


def png_widths(nb: nbformat.NotebookNode) -> list[int]:
    import base64
    import struct

    return [struct.unpack(">I", base64.b64decode(out.data["image/png"])[16:20])[0]
            for c in nb.cells if c.cell_type == "code" for out in c.outputs if "image/png" in out.get("data", {})]


@pytest.mark.parametrize("path", NOTEBOOKS + sorted((ROOT / "book").glob("*.ipynb")),
                         ids=ids + [f"book/{p.stem}" for p in sorted((ROOT / "book").glob("*.ipynb"))])
def test_figures_fit_the_column_unscaled(path: Path):
    """A figure wider than the column is shrunk with its text; at most 9 inches keeps 9-pt text at 9 pt."""
    wide = [w for w in png_widths(_read(path)) if w > MAX_FIGURE_PX]
    assert not wide, f"{path.name}: figures {wide} px wide (max {MAX_FIGURE_PX}); use a figsize at most 9 inches wide"


def test_findings_page_is_written_from_the_executed_chapters():
    page = (ROOT / "book" / "findings.md").read_text()
    assert page == book.findings_markdown(ROOT / "book", ROOT), "run `python -m rplib.book findings --profile cpu`"
    files = book.toc_files(ROOT)
    assert files.index("book/findings") < min(files.index(f"book/{n}") for n in book.chapters(ROOT))
