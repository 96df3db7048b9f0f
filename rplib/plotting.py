"""One plotting style for every chapter of the book, and the provenance table that closes each chapter.

* :func:`use_style` -- inline retina PNG figures, text at least :data:`MIN_TEXT_RATIO` of the page's body
  size, light grid.
* :data:`COLORS` / :func:`color` / :func:`linestyle` -- one colour (and line style) per scheme or
  criterion, the same in every chapter; :func:`category_colors` / :func:`level_colors` -- one colour per
  category or per ordered level (sparsities, densities) of a figure that has no names in :data:`COLORS`.
* :func:`figure_legend` -- one legend per figure, below its panels.
* :func:`mean_ci` / :func:`mean_ci_table` -- "mean [95% CI]" over seeds, one string per table cell.
* :func:`errorbar_plot` -- mean +- std (or a 95% t-interval) over seeds, one line per ``hue`` value.
* :func:`heatmap` -- an annotated 2-D table (e.g. drop criterion x growth criterion).
* :func:`provenance` -- package versions, device, threads, profile and run hashes.
"""

from __future__ import annotations

import os
import platform
import zlib
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .claims import mean_interval
from .numbers import cell, fixed, interval

__all__ = ["COLORS", "FIGURE_GROUPS", "QUALITATIVE", "STYLE", "BODY_PX", "MIN_TEXT_RATIO", "use_style", "color",
           "linestyle", "category_colors", "level_colors", "text_px", "figure_legend",
           "mean_ci", "ci95_halfwidth", "mean_ci_table", "errorbar_plot", "heatmap", "provenance"]

# Layer-wise schemes, pruning scores, DST drop/growth criteria and baselines: names as in rplib.
# Colour-blind-safe colours (Okabe & Ito 2008; Tol's "muted" set for the rest). A colour is reused
# only by names that never share a figure (the layer-wise schemes of chapters 2-4 and 7, the drop
# criteria of chapter 5); variants of one method share its colour and differ by :func:`linestyle`.
COLORS: dict[str, str] = {
    "dense": "#000000",
    "uniform": "#0072B2",
    "uniform_plus": "#332288",
    "er": "#56B4E9",
    "erk": "#D55E00",
    "erk_plus": "#E69F00",
    "smart_ratio": "#009E73",
    "snip": "#CC79A7",
    "grasp": "#882255",
    "synflow": "#999933",
    "lottery": "#44AA99",
    "magnitude": "#E69F00",
    "set": "#56B4E9",
    "set_as_released": "#332288",
    "mest": "#009E73",
    "sensitivity": "#882255",
    "rsensitivity": "#999933",
    "random": "#777777",
    "taylor": "#44AA99",
    "taylor_fo": "#44AA99",
    "gradient": "#DDCC77",
}

#: Names that share figures (the layer-wise schemes and baselines; the DST criteria): distinct colours within each.
FIGURE_GROUPS: tuple[tuple[str, ...], ...] = (
    ("dense", "uniform", "uniform_plus", "er", "erk", "erk_plus", "smart_ratio", "snip", "grasp", "synflow",
     "lottery"),
    ("dense", "magnitude", "set", "set_as_released", "mest", "snip", "sensitivity", "rsensitivity", "random",
     "taylor", "taylor_fo", "gradient"),
)
#: Colour-blind-safe colours for anything without a name in :data:`COLORS` (Okabe & Ito, then Tol's muted).
QUALITATIVE: tuple[str, ...] = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#882255",
                                 "#999933", "#332288", "#44AA99", "#777777", "#DDCC77")

#: The page's body text in CSS pixels (the book theme's 1rem) and the smallest ratio of figure text to it.
BODY_PX = 16.0
MIN_TEXT_RATIO = 0.8

# A figure is shown at 80 CSS px per inch (retina PNG at twice that), so 1 pt of figure text is 80/72 px on the
# page: 12 pt is 13.3 px, 0.83 of the body size. Figures are at most 9 inches wide, so they are never shrunk.
STYLE: dict[str, object] = {
    "figure.figsize": (6.4, 4.0),
    "figure.dpi": 80,
    "savefig.dpi": 80,
    "font.size": 13,
    "axes.titlesize": 13,
    "axes.labelsize": 13,
    "legend.fontsize": 12,
    "legend.title_fontsize": 12,
    "xtick.labelsize": 12,
    "ytick.labelsize": 12,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.6,
    "lines.markersize": 4,
    "errorbar.capsize": 2,
    "figure.constrained_layout.use": True,
}


def use_style() -> None:
    """Apply :data:`STYLE`, the book's float format in tables (:func:`rplib.numbers.cell`: ``0.01``, not
    ``0.0100``) and whole cells (no text cut to ``...``); inside IPython also select the inline backend with
    retina PNG output.

    The inline backend is selected explicitly so that figures show even when ``MPLBACKEND=Agg``
    is set in the environment (as ``make`` does).
    """
    mpl.rcParams.update(STYLE)
    pd.set_option("display.float_format", cell)
    pd.set_option("display.max_colwidth", None)  # a table shows a statement whole, never cut to "..."
    try:
        from IPython import get_ipython
    except ImportError:
        return
    ip = get_ipython()
    if ip is not None:
        ip.run_line_magic("matplotlib", "inline")
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        set_matplotlib_formats("retina")
        mpl.rcParams.update(STYLE)  # the inline backend resets some rcParams


def color(name: str) -> str:
    """The colour of a scheme or criterion: :data:`COLORS`, else a fixed colour derived from the name."""
    if name in COLORS:
        return COLORS[name]
    return QUALITATIVE[zlib.crc32(name.encode()) % len(QUALITATIVE)]


def category_colors(names: Iterable[object]) -> dict[object, str]:
    """One colour per category, in order of first appearance: :func:`color` for names in :data:`COLORS`, else the
    next unused colour of :data:`QUALITATIVE` (colour-blind safe); more than 12 categories is an error."""
    names = list(dict.fromkeys(names))
    out = {n: COLORS[str(n)] for n in names if str(n) in COLORS}
    free = iter(c for c in QUALITATIVE if c not in out.values())
    for n in names:
        if n not in out:
            out[n] = next(free, None)
            if out[n] is None:
                raise ValueError(f"category_colors: {len(names)} categories, at most {len(QUALITATIVE)} colours: "
                                 f"{names}")
    return {n: out[n] for n in names}


def level_colors(levels: Iterable[float], cmap: str = "viridis") -> dict[float, str]:
    """One colour per ordered level (a sparsity, a density): evenly spaced along ``cmap`` (viridis: colour-blind
    safe and ordered from dark to light), low levels dark; its palest sixth is left out, too faint on white."""
    levels = sorted(set(levels))
    colormap = mpl.colormaps[cmap]
    spots = np.linspace(0.0, 0.85, len(levels)) if len(levels) > 1 else [0.0]
    return {lv: mpl.colors.to_hex(colormap(x)) for lv, x in zip(levels, spots)}


def text_px(size: object) -> float:
    """A matplotlib font size (points or a name such as ``"small"``) in CSS pixels on the page."""
    points = mpl.font_manager.FontProperties(size=size).get_size_in_points()
    return points * float(STYLE["figure.dpi"]) / 72.0


def linestyle(name: str) -> str:
    """Dashed for variants (``uniform_plus``, ``erk_plus``, ``set_as_released``), solid otherwise."""
    return "--" if name.endswith(("_plus", "_as_released")) else "-"


def figure_legend(fig: plt.Figure, title: str | None = None, ncols: int | None = None) -> None:
    """One legend for the whole figure, below the axes: the distinct labels of all its axes, in order.

    The axes' own legends are removed, so a multi-panel figure shows its legend once and never over data.
    """
    handles: dict[str, object] = {}
    for ax in fig.axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            if not label.startswith("_"):
                handles.setdefault(label, h)
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    if handles:
        fig.legend(list(handles.values()), list(handles), title=title, loc="outside lower center",
                   ncols=ncols or min(len(handles), 5), frameon=False)


def mean_ci(values: Iterable[float], digits: int = 1, bounds: tuple[float, float] | None = None) -> str:
    """``"mean [low, high]"``: the mean and its 95% Student-t interval (scipy), kept inside ``bounds`` (e.g. 0-100
    for an accuracy in %), in :func:`rplib.numbers.interval`'s format with ``digits`` decimals for all three; the
    mean alone for n < 2, ``mean (no spread)`` when every value is the same."""
    x = np.asarray(list(values), dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return ""
    mean, low, high = mean_interval(x, bounds)
    if x.size < 2:
        return fixed(mean, digits)
    return interval(mean, low, high, decimals=digits)


def ci95_halfwidth(values: Iterable[float]) -> float:
    """Half-width of the 95% Student-t interval of the mean (:func:`rplib.claims.mean_interval`); 0 for n < 2."""
    _, low, high = mean_interval(values)
    return 0.0 if np.isnan(low) else (high - low) / 2


def mean_ci_table(frame: pd.DataFrame, index: str | list[str], value: str, columns: str | list[str] | None = None,
                  digits: int = 1, bounds: tuple[float, float] | None = None) -> pd.DataFrame:
    """Rows (and columns) of ``frame`` grouped over seeds: one ``"mean [95% CI]"`` string per cell (:func:`mean_ci`,
    intervals inside ``bounds``)."""
    keys = ([index] if isinstance(index, str) else list(index))
    cols = [] if columns is None else ([columns] if isinstance(columns, str) else list(columns))
    missing = [c for c in [*keys, *cols, value] if c not in frame.columns]
    if missing:
        raise ValueError(f"mean_ci_table: column(s) {missing} not in the frame; columns: {list(frame.columns)}")
    cells = frame.groupby(keys + cols, sort=False)[value].agg(lambda v: mean_ci(v, digits, bounds))
    table = cells.unstack(cols) if cols else cells.to_frame(f"{value}, mean [95% CI]")
    return table


def _aggregate(df: pd.DataFrame, x: str, y: str, hue: str | None, err: str) -> pd.DataFrame:
    if err not in ("std", "ci95"):
        raise ValueError(f"unknown err {err!r}; valid choices: 'std', 'ci95'")
    missing = [c for c in (x, y, hue) if c is not None and c not in df.columns]
    if missing:
        raise ValueError(f"column(s) {missing} not in the DataFrame; columns: {list(df.columns)}")
    keys = [hue, x] if hue is not None else [x]
    agg = df.groupby(keys, sort=False)[y].agg(["mean", "std", ci95_halfwidth]).reset_index()
    agg["std"] = agg["std"].fillna(0.0)
    agg["err"] = agg["ci95_halfwidth"] if err == "ci95" else agg["std"]
    return agg


def errorbar_plot(df: pd.DataFrame, x: str, y: str, hue: str | None = None, ax: plt.Axes | None = None,
                  err: str = "std", marker: str = "o", label_fmt: str = "{}", **kwargs) -> plt.Axes:
    """Aggregate rows with equal (``hue``, ``x``) -- typically seeds -- and draw mean +- error bars.

    ``err="std"`` draws one sample standard deviation, ``err="ci95"`` the half-width of a 95%
    Student-t interval of the mean; a single row gives no error bar. Each ``hue`` value gets its
    :func:`color` and one line, in order of first appearance; ``x`` is sorted within a line.
    """
    agg = _aggregate(df, x, y, hue, err)
    ax = ax if ax is not None else plt.gca()
    groups = agg.groupby(hue, sort=False) if hue is not None else [(None, agg)]
    for name, g in groups:
        g = g.sort_values(x)
        style = {"color": color(str(name)), "linestyle": linestyle(str(name))} if name is not None else {}
        yerr = g["err"].to_numpy(dtype=float)
        ax.errorbar(g[x].to_numpy(), g["mean"].to_numpy(dtype=float), yerr=yerr if (yerr > 0).any() else None,
                    marker=marker, label=label_fmt.format(name) if name is not None else None, **(style | kwargs))
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    if hue is not None:
        ax.legend(title=hue)
    return ax


def heatmap(table: pd.DataFrame, ax: plt.Axes | None = None, fmt: str = "{:.2f}", cmap: str = "viridis",
            cbar_label: str | None = None, vmin: float | None = None, vmax: float | None = None) -> plt.Axes:
    """Draw a numeric 2-D table (index = rows, columns = columns) as an annotated heat map."""
    values = table.to_numpy(dtype=float)
    ax = ax if ax is not None else plt.gca()
    im = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(table.shape[1]), [str(c) for c in table.columns], rotation=30, ha="right")
    ax.set_yticks(range(table.shape[0]), [str(i) for i in table.index])
    ax.set_xlabel(str(table.columns.name or ""))
    ax.set_ylabel(str(table.index.name or ""))
    ax.grid(False)
    lo, hi = np.nanmin(values), np.nanmax(values)
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            dark = (v - lo) < 0.5 * (hi - lo) if hi > lo else True
            ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=STYLE["legend.fontsize"],
                    color="white" if dark else "black")
    ax.figure.colorbar(im, ax=ax, label=cbar_label)
    return ax


def _version(pkg: str) -> str:
    try:
        return version(pkg)
    except PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(profile: str | None = None, run_hashes: Iterable[str] = ()) -> pd.DataFrame:
    """What produced a chapter's numbers: versions, device, threads, profile and the runs it read.

    ``profile`` defaults to ``$RPLIB_PROFILE`` (set by ``python -m rplib.book execute``), else ``smoke``.
    """
    import torch

    from .train import run_threads

    hashes = sorted(set(run_hashes))
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU: {_cpu_model()}"
    rows = {
        "profile": profile or os.environ.get("RPLIB_PROFILE", "smoke"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "numpy": np.__version__,
        "rplib": _version("rplib"),
        "device": device,
        "threads": f"{run_threads()} per run (RPLIB_THREADS)",
        "platform": f"{platform.system()} {platform.machine()}",
        "runs": f"{len(hashes)}: {', '.join(hashes)}" if hashes else "0",
    }
    return pd.DataFrame({"value": list(rows.values())}, index=pd.Index(list(rows), name="item"))

