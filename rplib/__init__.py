"""rplib: sparse training from scratch (random pruning, sanity checks of pruning at init, DST).

``rplib.run(config)`` (:mod:`rplib.train`), ``rplib.run_grid(configs)`` and ``rplib.to_frame(results)``
(:mod:`rplib.grid`) are loaded lazily so that importing the sparsity core stays light.
"""

__version__ = "0.1.0"
__all__ = ["run", "run_grid", "RunConfig", "to_frame"]


def __getattr__(name: str):
    if name == "run":
        from .train import run

        return run
    if name in ("run_grid", "to_frame"):
        from . import grid

        return getattr(grid, name)
    if name == "RunConfig":
        from .config import RunConfig

        return RunConfig
    raise AttributeError(f"module 'rplib' has no attribute {name!r}")
