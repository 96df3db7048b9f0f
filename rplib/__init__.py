"""rplib: sparse training from scratch (random pruning, sanity checks of pruning at init, DST).

``rplib.run(config)`` and ``rplib.run_grid(configs)`` are loaded lazily so that importing the
sparsity core stays light.
"""

__version__ = "0.1.0"
__all__ = ["run", "run_grid", "RunConfig", "to_frame"]


def __getattr__(name: str):
    if name in ("run", "run_grid", "to_frame"):
        from . import train

        return getattr(train, name)
    if name == "RunConfig":
        from .config import RunConfig

        return RunConfig
    raise AttributeError(f"module 'rplib' has no attribute {name!r}")
