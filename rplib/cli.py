"""Command line: ``rplib densities`` prints a per-layer density table; ``rplib train`` trains one config;
``rplib plan`` lists what a profile will train."""

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


def _parse_value(text: str):
    import yaml

    return yaml.safe_load(text)


def _train(args: argparse.Namespace) -> int:
    import yaml

    from .config import RunConfig
    from .train import run

    data = {}
    if args.config:
        with open(args.config) as f:
            data = yaml.safe_load(f) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{args.config}: a YAML mapping of config sections was expected")
    cfg = RunConfig.from_dict(data)
    changes = {}
    for item in args.set or []:
        if "=" not in item:
            raise ValueError(f"--set takes PATH=VALUE (e.g. sparsity.density=0.1), got {item!r}")
        path, value = item.split("=", 1)
        changes[path.strip()] = _parse_value(value)
    if changes:
        cfg = cfg.with_(changes)
    result = run(cfg, root=args.root, progress=None if not args.quiet else False)
    m = result.metrics
    print(f"{cfg.model.name} on {cfg.data.name}, {cfg.sparsity.method} density {m['density']:.4f}"
          f"{' + DST ' + cfg.dst.drop + '/' + cfg.dst.grow if cfg.dst.enabled else ''}, seed {cfg.seed}: "
          f"test accuracy {m['test_accuracy']:.4f}, test loss {m['test_loss']:.4f}  ->  {result.path}")
    if args.json:
        json.dump(m, sys.stdout, indent=1)
        print()
    return 0


def _plan(args: argparse.Namespace) -> int:
    from .plan import format_plan, plan

    print(format_plan(plan(args.profile, args.only, args.book_root, args.root), args.profile))
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
    t = sub.add_parser("train", help="train one configuration (cached in the run store)",
                       description="Train one RunConfig. Fields come from --config (YAML with sections data, model, "
                                   "sparsity, dst, optim, eval, seed, device) and --set PATH=VALUE overrides, e.g. "
                                   "--set model.name=cnn1d --set sparsity.method=random --set sparsity.density=0.1")
    t.add_argument("--config", help="YAML file with a (partial) RunConfig")
    t.add_argument("--set", action="append", metavar="PATH=VALUE", help="override a field (repeatable)")
    t.add_argument("--root", default=None, help="run store (default: $RPLIB_RUNS or ./runs)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--json", action="store_true", help="also print the final metrics as JSON")
    t.set_defaults(func=_train)
    pl = sub.add_parser("plan", help="runs, epochs, finished runs and estimated hours of a profile, per chapter")
    pl.add_argument("--profile", required=True, help="smoke, cpu or paper")
    pl.add_argument("--only", nargs="+", metavar="CHAPTER", help="only these chapters (e.g. 02_scaling)")
    pl.add_argument("--root", default=None, help="run store (default: each chapter's runs parameter, ./runs)")
    pl.add_argument("--book-root", default=".", help="repository root holding _toc.yml and notebooks/ (default: .)")
    pl.set_defaults(func=_plan)
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
