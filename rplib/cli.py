"""Command line: ``rplib densities`` prints a per-layer density table; ``rplib train`` trains one config;
``rplib config`` lists every config field with its type, default and valid choices;
``rplib plan`` lists what a profile will train.

Every expected failure (a bad value, a missing or malformed file, an unusable run directory, a
file system that refuses a write, a config that cannot train or diverges) ends with one line
``rplib: error: ...`` naming what is wrong, and exit status 2; Ctrl-C ends with one line and exit
status 130, the last epoch checkpoint kept. A write over the file-size limit (``ulimit -f``) is an
error line too, not a kill by ``SIGXFSZ``.

``python -m rplib ...`` is the same command line. ``torchrun --nproc-per-node N -m rplib train ...`` trains one
config data-parallel over N processes (see :mod:`rplib.distributed`); rank 0 writes the run directory and prints
the result.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
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


def _run_config(config: str | None, sets: list[str] | None):
    """The RunConfig of ``--config FILE`` (YAML) with ``--set PATH=VALUE`` overrides applied."""
    from .config import RunConfig
    from .fields import load_yaml

    data = {}
    if config:
        try:
            text = open(config).read()
        except OSError as e:
            raise ValueError(f"--config {config}: cannot read the file ({e.strerror})") from None
        data = load_yaml(text, config) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{config}: a YAML mapping of config sections was expected, got {type(data).__name__}")
    try:
        cfg = RunConfig.from_dict(data)
    except ValueError as e:
        raise ValueError(f"{config}: {e}" if config else str(e)) from None
    changes = {}
    for item in sets or []:
        if "=" not in item:
            raise ValueError(f"--set takes PATH=VALUE (e.g. sparsity.density=0.1), got {item!r}")
        path, value = item.split("=", 1)
        changes[path.strip()] = load_yaml(value, f"--set {item}")
    return cfg.with_(changes) if changes else cfg


def _train(args: argparse.Namespace) -> int:
    from . import distributed
    from .train import run

    cfg = _run_config(args.config, args.set)
    try:
        result = run(cfg, root=args.root, progress=None if not args.quiet else False)
    finally:
        distributed.teardown()
    if int(os.environ.get("RANK", "0")):
        return 0  # under torchrun, rank 0 alone reports
    m = result.metrics
    print(f"{cfg.model.name} on {cfg.data.name}, {cfg.sparsity.method} density {m['density']:.4f}"
          f"{' + DST ' + cfg.dst.drop + '/' + cfg.dst.grow if cfg.dst.enabled else ''}, seed {cfg.seed}: "
          f"test accuracy {m['test_accuracy']:.4f}, test loss {m['test_loss']:.4f}  ->  {result.path}")
    if args.json:
        json.dump(m, sys.stdout, indent=1)
        print()
    return 0


def _config(args: argparse.Namespace) -> int:
    from .config import describe_fields

    if args.config or args.set:
        from .fields import dump_yaml

        cfg = _run_config(args.config, args.set)
        print(f"# run {cfg.hash}")
        print(dump_yaml(cfg.to_dict()))
        return 0
    rows = describe_fields()
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
        return 0
    width = max(len(r["field"]) for r in rows)
    tw = max(len(r["type"]) for r in rows)
    for r in rows:
        choices = f"  choices: {', '.join(r['choices'])}" if r["choices"] else ""
        print(f"{r['field']:<{width}}  {r['type']:<{tw}}  default {json.dumps(r['default'])}{choices}")
    return 0


def _plan(args: argparse.Namespace) -> int:
    from .plan import EpochTimer, format_plan, plan

    if args.measure is not None and args.measure < 1:
        raise ValueError(f"--measure takes a number of steps >= 1, got {args.measure}")
    timer = EpochTimer(args.measure, progress=True) if args.measure else None
    print(format_plan(plan(args.profile, args.only, args.book_root, args.root, timer), args.profile))
    if timer is not None:
        print(f"epoch times of {len(timer.seconds)} configuration(s) without a finished run timed here "
              f"over {args.measure} training steps each")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .models import available
    from .sparsity import DATA_SCHEMES, SCHEMES

    p = argparse.ArgumentParser(prog="rplib", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("densities", help="per-layer densities of a data-free scheme")
    d.add_argument("--model", required=True, choices=available(), metavar="MODEL",
                   help=f"network: {', '.join(available())}")
    d.add_argument("--num-classes", type=int, default=10)
    d.add_argument("--in-shape", type=int, nargs="+", help="input shape, e.g. 3 32 32 (default) or 1 40")
    d.add_argument("--density", type=float, required=True, help="kept fraction in (0, 1]")
    data_free = [s for s in SCHEMES if s not in DATA_SCHEMES]
    d.add_argument("--scheme", required=True, choices=data_free, metavar="SCHEME",
                   help=f"layer-wise scheme: {', '.join(data_free)}")
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
    c = sub.add_parser("config", help="list every config field (type, default, choices), or resolve a config",
                       description="Without options: every RunConfig field with its type, default and valid "
                                   "choices. With --config/--set: the resolved config and its run hash, "
                                   "without training.")
    c.add_argument("--config", help="YAML file with a (partial) RunConfig")
    c.add_argument("--set", action="append", metavar="PATH=VALUE", help="override a field (repeatable)")
    c.add_argument("--json", action="store_true", help="the field list as JSON")
    c.set_defaults(func=_config)
    pl = sub.add_parser("plan", help="runs, epochs, finished runs and estimated hours of a profile, per chapter")
    pl.add_argument("--profile", required=True, help="smoke, cpu or paper")
    pl.add_argument("--only", nargs="+", metavar="CHAPTER", help="only these chapters (e.g. 02_scaling)")
    pl.add_argument("--root", default=None, help="run store (default: each chapter's runs parameter, ./runs)")
    pl.add_argument("--book-root", default=".", help="repository root holding _toc.yml and notebooks/ (default: .)")
    pl.add_argument("--measure", type=int, nargs="?", const=20, metavar="STEPS",
                    help="time STEPS (default 20) training steps of each network here, on random inputs shaped as "
                         "its data, for the runs whose (model, dataset) has no finished run in the store")
    pl.set_defaults(func=_plan)
    return p


def main(argv: list[str] | None = None) -> int:
    from .store import StoreError

    args = build_parser().parse_args(argv)
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write over the limit then fails with EFBIG, reported
    try:
        return args.func(args)
    except (ValueError, StoreError) as e:
        print(f"rplib: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(f"rplib: error: {e or 'interrupted'}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
