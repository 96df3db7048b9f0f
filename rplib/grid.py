"""Grids of runs: :func:`run_grid` trains the unfinished runs of many configs on an executor and
returns every result; :func:`to_frame` tabulates results, one row per run.

One run is :func:`rplib.train.run`, one layer below; where the runs of a grid execute is
:mod:`rplib.executors`'s business.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .config import RunConfig
from .executors import Executor, execute_grid
from .store import default_root
from .train import Result, show_progress

__all__ = ["run_grid", "to_frame"]


def run_grid(configs: Iterable[RunConfig], root: str | Path | None = None, progress: bool | None = None,
             executor: Executor | str | None = None) -> list[Result]:
    """Results of ``configs`` in input order; only unfinished runs are trained, each identical config once.

    ``executor`` (default: ``$RPLIB_EXECUTOR``, else ``serial``) is where they run: ``serial``,
    ``local``, ``slurm``, ``dask`` or an :class:`rplib.executors.Executor` (see that module). A
    progress bar counts finished runs; failed runs raise one :class:`rplib.executors.GridError`
    after all the others have finished.
    """
    return execute_grid(configs, root if root is not None else default_root(), show_progress(progress), executor)


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= _flatten(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = list(v) if isinstance(v, tuple) else v
    return out


def to_frame(results: Sequence[Result]):
    """A pandas DataFrame: one row per run, dotted config columns (``sparsity.density``) plus flattened metrics."""
    import pandas as pd

    rows = [_flatten(r.config.to_dict()) | _flatten(r.metrics) for r in results]
    return pd.DataFrame(rows)
