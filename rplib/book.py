"""Execute the book's notebooks under a profile and check that the book's files agree.

``python -m rplib.book execute --profile {smoke,cpu,images,paper} [--only NAME ...]``
    papermill-executes ``notebooks/<name>.ipynb`` for every chapter in ``_toc.yml`` order, with the
    parameters of ``notebooks/profiles.yml[name][profile]`` (``smoke``: the notebook's own defaults),
    kernel ``python3``, working directory ``notebooks/`` (as under nbval) and ``RPLIB_PROFILE`` set
    to the profile. Every profile and parameter name is checked against the notebooks before
    anything runs. Only the published profiles write the book: ``cpu`` into ``book/``, ``images``
    (the Fashion-MNIST regime) into ``book/images/``, a part of the same book that ``_toc.yml``
    takes in with a glob (its page ``book/images/00_regime.md`` is always there, so the part builds
    before any image chapter has run). The others write ``_build/profiles/<profile>/book/`` beside
    copies of ``_config.yml``, ``_toc.yml`` and the book's other pages, a book of their own. A
    chapter replaces its executed copy only once its execution finished (temp file, then atomic
    rename); a failed execution is kept in ``_build/failed/<profile>/<name>.ipynb``, an interrupted
    one (Ctrl-C) is not kept and ends with one line ``rplib.book: error: interrupted``. A finished
    chapter shows the parameters it ran with as a table under the profile's name (papermill's
    parameter cells stay in the notebook, off the page) and carries no machine paths or timestamps.
``python -m rplib.book root --profile PROFILE``
    prints the folder to render with ``jupyter-book build`` for that profile.
``python -m rplib.book refresh [--only NAME ...]``
    re-executes the notebook sources in place with their smoke defaults: the outputs that are
    committed and that nbval compares.
``python -m rplib.book findings --profile PROFILE``
    rewrites ``book/findings.md`` of the profile's book from the verdicts its executed chapters
    glued (``execute`` does this after the chapters ran).
``python -m rplib.book rules`` / ``python -m rplib.book sizes``
    rewrite the generated claims table of ``book/verdicts.md`` from ``rplib.claims.CLAIMS`` / the
    runs-per-profile table of ``book/reproduce.md`` from the chapters' grids.
``python -m rplib.book check``
    lists disagreements between ``_toc.yml``, ``notebooks/`` and ``notebooks/profiles.yml``.

Adding a chapter ``NN_name``:

1. write ``notebooks/NN_name.ipynb`` with one cell tagged ``parameters`` (typed defaults with a
   ``# help`` comment each; the defaults are the smoke profile), then a cell
   ``params = chapter.Params.from_namespace(globals())`` where ``chapter`` is the chapter's module in
   ``rplib.chapters`` (its ``Params`` and ``grid``), and a last cell calling
   ``rplib.plotting.provenance``, tagged ``nbval-ignore-output``; plumbing cells are tagged
   ``hide-input`` so that at most 80 code lines show;
2. add one line ``- file: book/NN_name`` to ``_toc.yml`` under the caption ``Chapters``;
3. add an entry ``NN_name: {cpu: {...}, paper: {...}}`` to ``notebooks/profiles.yml``;
4. run ``python -m rplib.book refresh --only NN_name`` and ``python -m rplib.book check``.
"""

from __future__ import annotations

import argparse
import ast
import logging
import os
import re
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from .profiles import (OVERRIDABLE, PROFILES, PUBLISHED_PARTS, chapters, check_profile, load_profiles,
                       notebook_parameters, plan, toc_files)

__all__ = ["PROFILES", "PUBLISHED", "PUBLISHED_PARTS", "KERNEL", "chapters_dir", "into_part", "toc_files", "chapters",
           "load_profiles", "notebook_parameters", "plan", "check", "button_problems", "book_root",
           "prepare_book_root", "findings_markdown", "write_findings", "write_rules", "write_sizes", "execute",
           "refresh", "main", "strip_machine_details", "parameters_markdown", "executed_parameters"]

PUBLISHED = "cpu"  # the profile whose executed chapters are committed in book/ and published
KERNEL = "python3"


_BUTTONS = (("html", "use_repository_button"), ("html", "use_issues_button"), ("html", "use_edit_page_button"),
            ("launch_buttons", "binderhub_url"), ("launch_buttons", "colab_url"), ("launch_buttons", "jupyterhub_url"))


def button_problems(config: dict[str, Any]) -> list[str]:
    """Repository and launch buttons switched on in a ``_config.yml`` without a ``repository.url`` to point at."""
    if str((config.get("repository") or {}).get("url") or "").strip():
        return []
    on = [f"{section}.{key}" for section, key in _BUTTONS if (config.get(section) or {}).get(key)]
    return [f"_config.yml turns on {', '.join(on)} but repository.url is empty; set the book's repository url "
            "or turn them off"] if on else []


def check(root: Path | str = ".") -> list[str]:
    """Problems with the book's layout (empty when all is well).

    Every toc entry must be a notebook chapter or a Markdown page; every notebook must be in the
    toc, have exactly one ``parameters`` cell, an entry in ``profiles.yml`` naming only known
    profiles and parameters, and end with a provenance cell; repository and launch buttons need a
    repository url.
    """
    import nbformat

    root = Path(root)
    problems: list[str] = []
    if (root / "_config.yml").is_file():
        problems += button_problems(yaml.safe_load((root / "_config.yml").read_text()) or {})
    names = chapters(root)
    for f in toc_files(root):
        stem = Path(f).name
        if stem not in names and not (root / f"{f}.md").is_file():
            problems.append(f"_toc.yml entry {f!r} is neither notebooks/{stem}.ipynb nor {f}.md")
    for nb_path in sorted((root / "notebooks").glob("*.ipynb")):
        if nb_path.stem not in names:
            problems.append(f"notebooks/{nb_path.name} is not listed in _toc.yml as book/{nb_path.stem}")
            continue
        nb = nbformat.read(nb_path, as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        if len(tagged) != 1:
            problems.append(f"notebooks/{nb_path.name} has {len(tagged)} cells tagged 'parameters', needs exactly 1")
        code = [c for c in nb.cells if c.cell_type == "code"]
        if not code or "provenance(" not in code[-1].source:
            problems.append(f"notebooks/{nb_path.name} does not end with a provenance cell")
    for name in names:
        for profile in OVERRIDABLE:
            if profile in PUBLISHED_PARTS and profile not in (load_profiles(root).get(name) or {}):
                continue  # a part of the book holds only the chapters its profile has parameters for
            try:
                plan(profile, [name], root)
            except ValueError as e:
                problems.append(str(e))
    extra = sorted(set(load_profiles(root)) - set(names))
    if extra:
        problems.append(f"notebooks/profiles.yml has entries for chapters not in the book: {extra}")
    return list(dict.fromkeys(problems))


def book_root(profile: str, root: Path | str = ".") -> Path:
    """The folder ``jupyter-book build`` renders for ``profile``: the repository for the published profile,
    ``_build/profiles/<profile>`` for the others."""
    check_profile(profile)
    root = Path(root)
    return root if profile == PUBLISHED or profile in PUBLISHED_PARTS else root / "_build" / "profiles" / profile


def chapters_dir(profile: str, root: Path | str = ".") -> Path:
    """The folder the profile's executed chapters go to: ``book/`` of :func:`book_root`, or the profile's
    own part of the book (:data:`PUBLISHED_PARTS`)."""
    check_profile(profile)
    return Path(root) / PUBLISHED_PARTS[profile] if profile in PUBLISHED_PARTS else book_root(profile, root) / "book"


def prepare_book_root(profile: str, root: Path | str = ".") -> Path:
    """Create the profile's book folder: copies of ``_config.yml``, ``_toc.yml``, ``_static/`` and the
    book's pages (everything in ``book/`` but the executed chapters). Returns the folder."""
    root = Path(root)
    target = book_root(profile, root)
    if target == root:
        return target
    (target / "book").mkdir(parents=True, exist_ok=True)
    for name in ("_config.yml", "_toc.yml"):
        if (root / name).is_file():
            shutil.copy2(root / name, target / name)
    if (root / "_static").is_dir():
        shutil.copytree(root / "_static", target / "_static", dirs_exist_ok=True)
    for f in (root / "book").rglob("*"):
        if f.is_file() and f.suffix != ".ipynb":
            (target / f.relative_to(root)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, target / f.relative_to(root))
    return target


_FINDINGS_HEAD = """\
# Findings

Every claim the book tests, with the verdict its chapter reached in each of the book's regimes, beside the
paper's own setting and effect. The first table puts the regimes side by side; the tables after it give, per
regime, this book's setting (dataset, networks, epochs, densities, the dense networks' test accuracy, from the
chapter's runs), the effect and the caveat. The effect is the mean over seeds (over repeats for the timing
claim) of the claim's paired effect, with its 95% confidence interval (a table claim gives its counts);
{doc}`verdicts` states the rules and their version. Each verdict is given as its rule reached it (*raw*) and
after Holm's adjustment across the claims that ran in that regime (*Holm*): a verdict that does not survive the
adjustment is inconclusive there. Where the claim's cases (networks, densities, checks, rivals) reach
different verdicts, the verdict cell says so. The caveat names what of the regime the claim depends on, with
what the chapter measured (a dense network near chance level).

% written from the executed chapters by `python -m rplib.book findings`; do not edit by hand
"""

_DETAIL_HEAD = """\
| claim | chapter | paper: setting; effect | this book: setting; dense accuracy | verdict (rule): raw; Holm | \
effect, mean [95% CI] | n | caveat |
|---|---|---|---|---|---|---|---|
"""

#: The data each profile's regime trains on, as the findings page names it.
REGIME_NAMES = {"smoke": "MNIST-1D and digits, smoke sizes", "cpu": "MNIST-1D and digits", "images": "Fashion-MNIST",
                "paper": "CIFAR-10/100 and SVHN"}


def _regime_verdicts(chapter_dir: Path, root: Path | str) -> tuple[dict, dict, dict, dict, dict]:
    """What a regime's executed chapters in ``chapter_dir`` glued: verdicts, held-out verdicts and regime records
    by claim or chapter, the rules they were decided under and the Holm adjustment over the verdicts found."""
    import json

    from .claims import CLAIMS, CLAIMS_V1, family_adjusted, read_held_out, read_published
    from .regime import read_regime

    found, held_out, regimes = {}, {}, {}
    for name in chapters(root):
        path = chapter_dir / f"{name}.ipynb"
        if path.is_file():
            nb = json.loads(path.read_text())
            found |= {v.claim: v for v in read_published(nb) if v.claim in CLAIMS}
            held_out |= read_held_out(nb)
            r = read_regime(nb)
            if r is not None:
                regimes[name] = r
    declared = {k: CLAIMS_V1[k] if v.version == 1 and k in CLAIMS_V1 else CLAIMS[k] for k, v in found.items()}
    return found, held_out, regimes, declared, family_adjusted(found.values(), declared)


def _detail_rows(claims: list, verdicts: tuple[dict, dict, dict, dict, dict], link: str) -> list[str]:
    """The rows of one regime's table for ``claims`` (see :data:`_DETAIL_HEAD`)."""
    from .claims import cases_note, interval_text
    from .regime import caveat, dense_text, regime_notes, setting_text

    found, held_out, regimes, declared, adjusted = verdicts
    rows = []
    for c in claims:
        where = f"{{doc}}`{link}{c.chapter}`"
        paper = _cell(f"{c.paper}: {c.paper_setting}; {c.paper_effect}")
        r = regimes.get(c.chapter)
        book_cell = f"{setting_text(r)}; dense: {dense_text(r)}" if r else "regime not recorded"
        caution = _cell("; ".join(x for x in [caveat(c, r), *(regime_notes(r) if r else [])] if x))
        v = found.get(c.id)
        if v is None:
            rows.append(f"| {_cell(c.statement)} | {where} | {paper} | {_cell(book_cell)} | not run | | | {caution} |")
            continue
        other = held_out.get(c.id, v.verdict)
        note = f" ({other} with the choice held out)" if other != v.verdict else ""
        a = adjusted[c.id]
        differ = cases_note(v)
        verdict = (f"**{v.verdict}**{note} (v{v.version}); Holm: **{a['verdict']}** (p = {a['p_adjusted']:.2g})"
                   + (f"; {differ}" if differ else ""))
        effect = v.detail or f"{interval_text(v)} {declared[c.id].unit}"
        rows.append(f"| {_cell(c.statement)} | {where} | {paper} | {_cell(book_cell)} | {_cell(verdict)} | "
                    f"{_cell(effect)} | {v.n} | {caution} |")
    return rows


def _glance_cell(c: Any, verdicts: tuple[dict, dict, dict, dict, dict], in_regime: bool) -> str:
    """A claim's verdict in one regime for the side-by-side table: ``**agrees** (Holm: inconclusive)``."""
    found, _, _, _, adjusted = verdicts
    if not in_regime:
        return "not in this regime"
    v = found.get(c.id)
    if v is None:
        return "not run"
    return f"**{v.verdict}** (Holm: {adjusted[c.id]['verdict']})"


def findings_markdown(book_dir: Path | str, root: Path | str = ".", profile: str = PUBLISHED) -> str:
    """The findings page: a side-by-side table of every declared claim's verdict in each
    regime (``profile``'s chapters in ``book_dir``, each part of :data:`PUBLISHED_PARTS` in its folder there) and the
    paper's own effect, then one table per regime with a row per claim, from the verdicts and the regime records
    glued in the regime's executed chapters
    (:func:`rplib.claims.publish`, :func:`rplib.regime.publish_regime`). The paper columns come from the claims
    (:data:`rplib.claims.CLAIMS`), the Holm column from :func:`rplib.claims.family_adjusted` over each regime's
    verdicts. A regime none of whose chapters ran is named with the command that runs it."""
    from .claims import CLAIMS
    from .regime import missing_paper_fields

    missing = missing_paper_fields()
    if missing:
        raise ValueError(f"findings: claims lack paper fields {missing}; write 'not reported' where the paper "
                         "gives none")
    book_dir, root = Path(book_dir), Path(root)
    profiles = load_profiles(root)
    regimes = []
    parts_dirs = [(q, book_dir / d.relative_to("book")) for q, d in PUBLISHED_PARTS.items()]
    for p, folder in [(profile, book_dir), *parts_dirs]:
        title = f"{REGIME_NAMES[p]} ({p} profile)"
        link = "" if p == profile else f"{folder.relative_to(book_dir).as_posix()}/"
        covered = {n for n, entry in profiles.items() if p in (entry or {})} if p in PUBLISHED_PARTS else None
        claims = [c for c in CLAIMS.values() if covered is None or c.chapter in covered]
        regimes.append((p, title, link, claims, _regime_verdicts(folder, root)))
    head = "| claim | paper: effect | " + " | ".join(f"{title}: raw (Holm)" for _, title, *_ in regimes) + " |"
    glance = [head, "|---|---|" + "---|" * len(regimes)]
    for c in CLAIMS.values():
        cells = [_glance_cell(c, v, c in claims) for _, _, _, claims, v in regimes]
        glance.append(f"| {_cell(c.statement)} | {_cell(c.paper_effect)} | " + " | ".join(cells) + " |")
    parts = [_FINDINGS_HEAD, "## The regimes side by side\n", "\n".join(glance) + "\n"]
    for p, title, link, claims, verdicts in regimes:
        parts.append(f"## {title}\n")
        if p in PUBLISHED_PARTS and not verdicts[0]:
            parts.append(f"No chapter of this regime has run yet: `make book PROFILE={p}`.\n")
            continue
        parts.append(_DETAIL_HEAD + "\n".join(_detail_rows(claims, verdicts, link)) + "\n")
        if p in PUBLISHED_PARTS:
            parts.append(_power_of_run(claims, verdicts[0]))
    return "\n".join(parts)


def _power_of_run(claims: list, found: dict) -> str:
    """What a regime whose seeds no pilot planned can show, with its own per-seed spread as the pilot of a next
    run (:mod:`rplib.power`): per claim with an interval, the power its seeds had at the declared margin (or
    design effect), the smallest margin they support with 80% power, and the seeds 80% power needs."""
    import math

    from .power import TARGET_POWER, pilot_spread, power, seeds_needed, smallest_margin

    rows = []
    for c in claims:
        v = found.get(c.id)
        if v is None or v.n < 2 or not (math.isfinite(v.low) and math.isfinite(v.high)) or v.high <= v.low:
            continue
        sd = pilot_spread(v)
        declared = c.margin if c.kind in ("equivalence", "most_equivalent") else c.design_effect
        try:
            needed = str(seeds_needed(c, sd))
        except ValueError:
            needed = "more than 1000"
        rows.append(f"| `{c.id}` | {sd:.3g} {c.unit} | {v.n} | {power(c, v.n, sd):.2f} | ±{declared:g} | "
                    f"±{smallest_margin(c, v.n, sd):.3g} | {needed} |")
    if not rows:
        return ""
    return (f"The seeds of this regime were set by its budget, not planned from a pilot spread. With the spread "
            f"each claim showed here as the pilot of a next run ({{doc}}`verdicts` describes the calculation): the "
            f"power its seeds had, the smallest margin (or effect) they support with {TARGET_POWER:.0%} power, and "
            f"the seeds that power needs.\n\n"
            "| claim | spread (per seed) | seeds | power | declared margin or effect | smallest supported | "
            "seeds for 80% power |\n|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")


def _cell(text: str) -> str:
    """``text`` safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def write_findings(profile: str, root: Path | str = ".") -> Path:
    """Rewrite the profile's ``book/findings.md`` from its executed chapters; returns the page's path.

    The findings page holds the verdicts of every regime of a book: a published part of the book
    (:data:`PUBLISHED_PARTS`) rewrites the published book's page, where its regime has a column."""
    profile = PUBLISHED if profile in PUBLISHED_PARTS else profile
    book_dir = prepare_book_root(profile, root) / "book"
    path = book_dir / "findings.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(findings_markdown(book_dir, root, profile))
    os.replace(tmp, path)
    return path


_GENERATED_END = "% end of generated table"


def _rewrite_generated(path: Path, source: str, text: str) -> Path:
    """Replace the lines between ``% generated by <source>; do not edit by hand`` and the end marker."""
    lines = path.read_text().splitlines()
    start = lines.index(f"% generated by {source}; do not edit by hand")
    end = lines.index(_GENERATED_END, start)
    path.write_text("\n".join(lines[:start + 1] + text.splitlines() + lines[end:]) + "\n")
    return path


def write_rules(root: Path | str = ".") -> Path:
    """Rewrite the generated tables of ``book/verdicts.md``: the claims (:data:`rplib.claims.CLAIMS`), the power
    table (:func:`rplib.power.power_markdown`) and the version-1 claims."""
    from .claims import CLAIMS_V1, rules_markdown
    from .power import power_markdown

    path = Path(root) / "book" / "verdicts.md"
    _rewrite_generated(path, "rplib.power.power_markdown()", power_markdown())
    _rewrite_generated(path, "rplib.claims.rules_markdown(CLAIMS_V1)", rules_markdown(CLAIMS_V1))
    return _rewrite_generated(path, "rplib.claims.rules_markdown()", rules_markdown())


def write_sizes(root: Path | str = ".") -> Path:
    """Rewrite the runs-per-profile table of ``book/reproduce.md`` from the chapters' grids."""
    from .plan import sizes_markdown

    return _rewrite_generated(Path(root) / "book" / "reproduce.md", "rplib.plan.sizes_markdown()",
                              sizes_markdown(root))


#: papermill's notebook metadata that names the executing machine's paths or the hour it ran.
_MACHINE_METADATA = ("input_path", "output_path", "start_time", "end_time", "duration", "environment_variables")
#: Cell metadata with the hour a cell ran: papermill's timings and the kernel's ``execution`` timestamps.
_CELL_TIMINGS = ("start_time", "end_time", "duration")
PARAMETERS_CELL_ID = "rplib-parameters"


def strip_machine_details(nb: Any, root: Path | str) -> Any:
    """Remove from an executed notebook what tells the machine and the hour that ran it, in place; returns ``nb``.

    Drops papermill's input/output paths, timings and environment from the notebook's metadata, the
    timing metadata of every cell, and writes paths under ``root`` (the repository that executed it)
    relative to it in text outputs. The parameters, papermill's version and its exception flag stay.
    """
    root_text = str(Path(root).resolve())
    meta = nb.metadata.get("papermill")
    if meta is not None:
        for key in _MACHINE_METADATA:
            meta.pop(key, None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        for key in _CELL_TIMINGS:
            cell.metadata.get("papermill", {}).pop(key, None)
        for out in cell.get("outputs", []):
            if isinstance(out.get("text"), str):
                out["text"] = _relative(out["text"], root_text)
            for mime, value in out.get("data", {}).items():
                if isinstance(value, str) and not mime.startswith("image/"):
                    out["data"][mime] = _relative(value, root_text)
    return nb


def _relative(text: str, root: str) -> str:
    return text.replace(root + os.sep, "").replace(root, ".")


def _table_text(text: str) -> str:
    """``text`` inside a Markdown table cell: its pipes escaped."""
    return text.replace("|", r"\|")


def parameters_markdown(values: dict[str, Any], helps: dict[str, str], profile: str) -> str:
    """The parameters a chapter ran with, as the page shows them: one row per parameter, the value as a Python
    literal (what the ``parameters`` cell would say), and its help text, under the profile's name."""
    rows = "\n".join(f"| `{name}` | `{value!r}` | {_table_text(helps.get(name, ''))} |"
                     for name, value in values.items())
    return (f":::{{admonition}} Parameters of this page: profile `{profile}`\n:class: note\n\n"
            f"The values this chapter was executed with (`python -m rplib.book execute --profile {profile}`); "
            "the notebook's own defaults are the `smoke` profile.\n\n"
            f"| parameter | value | meaning |\n|---|---|---|\n{rows}\n:::\n")


def executed_parameters(nb: Any, source: Path | str) -> dict[str, Any]:
    """Every parameter of the ``parameters`` cell of ``source`` (the executed notebook, or its source) with the
    value the execution ``nb`` used: papermill's injected value, else the cell's default."""
    injected = dict((nb.metadata.get("papermill") or {}).get("parameters") or {})
    return {name: injected[name] if name in injected else ast.literal_eval(p["default"])
            for name, p in notebook_parameters(source).items()}


def _publishable(path: Path, profile: str, root: Path) -> None:
    """Make an executed chapter ready to publish: the parameters it ran with shown as a table under the profile's
    name in place of papermill's two code cells (kept in the notebook, removed from the page), and no machine
    paths or timestamps (:func:`strip_machine_details`)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    helps = {name: p["help"] for name, p in notebook_parameters(path).items()}
    table = nbformat.v4.new_markdown_cell(parameters_markdown(executed_parameters(nb, path), helps, profile))
    table["id"] = PARAMETERS_CELL_ID
    nb.cells = [c for c in nb.cells if c.get("id") != PARAMETERS_CELL_ID]
    last = 0
    for i, cell in enumerate(nb.cells):
        tags = cell.metadata.setdefault("tags", [])
        if {"parameters", "injected-parameters"} & set(tags):
            cell.metadata["tags"] = [t for t in tags if t not in ("hide-input", "remove-cell")] + ["remove-cell"]
            last = i + 1
    nb.cells.insert(last, table)
    if profile in PUBLISHED_PARTS:
        into_part(nb, profile, root)
    nbformat.write(strip_machine_details(nb, root), path)


_DOC = re.compile(r"\{doc\}`([^`<>/]+)`")


def into_part(nb: Any, profile: str, root: Path | str) -> Any:
    """Make a chapter executed under a part's profile (:data:`PUBLISHED_PARTS`) one page of that part, in place;
    returns ``nb``. Its figure labels get the part's folder as prefix (the book's own copy of the chapter holds
    the same labels) and so do its ``{numref}`` references to them; a ``{doc}`` link to a page that is not a
    chapter of the part points to the book's page (``{doc}`/book/verdicts```). Applying it twice changes nothing."""
    prefix = f"{PUBLISHED_PARTS[profile].name}-"
    siblings = {n for n, entry in load_profiles(root).items() if profile in (entry or {})}
    labels = set()
    for cell in nb.cells:
        figure = cell.metadata.get("mystnb", {}).get("figure", {})
        if figure.get("name") and not figure["name"].startswith(prefix):
            labels.add(figure["name"])
            figure["name"] = prefix + figure["name"]

    def rewrite(text: str) -> str:
        for label in labels:
            text = text.replace(f"{{numref}}`{label}`", f"{{numref}}`{prefix}{label}`")
        return _DOC.sub(lambda m: m.group(0) if m.group(1) in siblings else f"{{doc}}`/book/{m.group(1)}`", text)

    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = rewrite(cell.source)
        figure = cell.metadata.get("mystnb", {}).get("figure", {})
        if "caption" in figure:
            figure["caption"] = rewrite(figure["caption"])
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            for key in [k for k in data if k.endswith("text/markdown")]:  # glued Markdown, papermill's records
                data[key] = rewrite("".join(data[key]) if isinstance(data[key], list) else data[key])
    return nb


def execute(profile: str, only: Sequence[str] | None = None, root: Path | str = ".") -> list[Path]:
    """Execute the chapters (all, or ``only``) under ``profile`` into :func:`chapters_dir`.

    Each chapter executes into a temporary file next to its target and replaces it only when the
    execution finished; a failed execution moves to ``_build/failed/<profile>/`` and the error is raised;
    an interrupted one (``KeyboardInterrupt``) is removed and the interrupt raised.
    Returns the written notebooks.
    """
    import papermill as pm

    from .executors import from_settings

    root = Path(root).resolve()
    todo = plan(profile, only, root)
    from_settings()  # the chapters' executor settings (RPLIB_EXECUTOR, ...) are checked before any chapter runs
    prepare_book_root(profile, root)
    out_dir = chapters_dir(profile, root)
    out_dir.mkdir(parents=True, exist_ok=True)
    os.environ["RPLIB_PROFILE"] = profile
    written = []
    for i, (name, params) in enumerate(todo.items(), start=1):
        shown = ", ".join(f"{k}={v!r}" for k, v in params.items()) or "notebook defaults"
        print(f"[{i}/{len(todo)}] {name} (profile {profile}: {shown})", flush=True)
        start = time.perf_counter()
        out = out_dir / f"{name}.ipynb"
        tmp = out_dir / f".{name}.executing.ipynb"
        try:
            pm.execute_notebook(root / "notebooks" / f"{name}.ipynb", tmp, parameters=params, kernel_name=KERNEL,
                                cwd=root / "notebooks", progress_bar=True, shutdown_kernel="immediate")
        except KeyboardInterrupt:
            tmp.unlink(missing_ok=True)
            raise
        except BaseException:
            if tmp.exists():
                failed = root / "_build" / "failed" / profile / f"{name}.ipynb"
                failed.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, failed)
                print(f"[{i}/{len(todo)}] {name} failed; its partial execution: {failed.relative_to(root)}",
                      file=sys.stderr, flush=True)
            raise
        _publishable(tmp, profile, root)
        os.replace(tmp, out)
        print(f"[{i}/{len(todo)}] {name} done in {time.perf_counter() - start:.0f} s -> {out.relative_to(root)}",
              flush=True)
        written.append(out)
    print(f"findings: {write_findings(profile, root).relative_to(root)}", flush=True)
    return written


def refresh(only: Sequence[str] | None = None, root: Path | str = ".") -> list[Path]:
    """Re-execute the notebook sources in place with their smoke defaults (the outputs nbval compares)."""
    import nbformat
    from nbclient import NotebookClient

    root = Path(root).resolve()
    todo = plan("smoke", only, root)
    os.environ["RPLIB_PROFILE"] = "smoke"
    written = []
    for name in todo:
        path = root / "notebooks" / f"{name}.ipynb"
        print(f"refreshing notebooks/{path.name}", flush=True)
        nb = nbformat.read(path, as_version=4)
        NotebookClient(nb, kernel_name=KERNEL, timeout=600, record_timing=False,
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        nbformat.write(nb, path)
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rplib.book", description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default=".", help="repository root holding _toc.yml and notebooks/ (default: .)")
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("execute", help="execute the chapters under a profile (cpu: into book/)")
    e.add_argument("--profile", required=True, help=f"one of {', '.join(PROFILES)}")
    e.add_argument("--only", nargs="+", metavar="NAME", help="only these chapters (e.g. 01_layerwise_densities)")
    r = sub.add_parser("refresh", help="re-execute notebooks/ in place with the smoke defaults")
    r.add_argument("--only", nargs="+", metavar="NAME", help="only these chapters")
    sub.add_parser("check", help="check _toc.yml, notebooks/ and notebooks/profiles.yml agree")
    f = sub.add_parser("findings", help="rewrite book/findings.md of a profile from its executed chapters")
    f.add_argument("--profile", required=True, help=f"one of {', '.join(PROFILES)}")
    sub.add_parser("rules", help="rewrite the claims table of book/verdicts.md from rplib.claims")
    sub.add_parser("sizes", help="rewrite the runs-per-profile table of book/reproduce.md from the grids")
    b = sub.add_parser("root", help="print the folder jupyter-book renders for a profile")
    b.add_argument("--profile", required=True, help=f"one of {', '.join(PROFILES)}")
    args = p.parse_args(argv)
    try:
        if args.command == "execute":
            execute(args.profile, args.only, args.root)
        elif args.command == "root":
            print(prepare_book_root(args.profile, args.root))
        elif args.command == "refresh":
            refresh(args.only, args.root)
        elif args.command == "rules":
            print(write_rules(args.root))
        elif args.command == "sizes":
            print(write_sizes(args.root))
        elif args.command == "findings":
            print(write_findings(args.profile, args.root))
        else:
            problems = check(args.root)
            for line in problems:
                print(f"rplib.book: {line}", file=sys.stderr)
            if problems:
                return 1
            print(f"book OK: chapters {', '.join(chapters(args.root))}")
    except ValueError as err:
        print(f"rplib.book: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # nbclient's pending cell task may end with the dead kernel's error after the interrupt; asyncio would
        # log it with a traceback when the task is collected at exit, after the one line below
        logging.getLogger("asyncio").disabled = True
        print("rplib.book: error: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
