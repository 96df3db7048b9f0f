"""rplib: sparse training from scratch (random pruning, sanity checks of pruning at init, DST)."""

__version__ = "0.1.0"
