"""Command line: ``rplib densities`` prints a per-layer density table; ``rplib train`` runs one config."""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["main"]


def _densities(args: argparse.Namespace) -> int:
    from . import models, sparsity

    in_shape = tuple(args.in_shape) if args.in_shape else (3, 32, 32)
    model = models.build(args.model, args.num_classes, in_shape=in_shape)
    dens = sparsity.layerwise_densities(model, args.density, args.scheme)
    mask = sparsity.random_mask(model, dens, seed=args.seed)
    if args.json:
        rows = [r.__dict__ | {"shape": list(r.shape)} for r in mask.report()]
        json.dump({"model": args.model, "scheme": args.scheme, "density": mask.density(), "layers": rows},
                  sys.stdout, indent=1)
        print()
    else:
        print(f"{args.model}, scheme {args.scheme}, target density {args.density}")
        print(mask.table())
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .sparsity import DATA_SCHEMES, SCHEMES

    p = argparse.ArgumentParser(prog="rplib", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("densities", help="per-layer densities of a data-free scheme")
    d.add_argument("--model", required=True)
    d.add_argument("--num-classes", type=int, default=10)
    d.add_argument("--in-shape", type=int, nargs="+", help="input shape, e.g. 3 32 32 (default) or 1 40")
    d.add_argument("--density", type=float, required=True, help="kept fraction in (0, 1]")
    d.add_argument("--scheme", required=True, choices=sorted(set(SCHEMES) - set(DATA_SCHEMES)))
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--json", action="store_true", help="machine-readable output")
    d.set_defaults(func=_densities)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as e:
        print(f"rplib: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
