"""The ``robench3d`` command line. The only module that prints or exits.

Exit codes: 0 success; 1 a broken plugin reported by ``list``/``plugins``, cells that failed in ``run`` (their rows
say why; a re-run retries them) or problems found by ``data verify``; 2 usage and configuration errors (a bad
option value, an unknown name, a missing or corrupt file: :class:`~robench3d.errors.Robench3DError`, printed as one
paragraph without a traceback); 130 interrupted (finished cells are kept). Progress goes to stderr; tables go to
stdout.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from robench3d.errors import Robench3DError

__all__ = ["main"]

logger = logging.getLogger("robench3d")

KINDS_HELP = "attacks, defenses, backbones, datasets, teachers (or a kind added by a plugin)"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}; omit it to use the default")
    return value


_PLUGIN_HELP = "-p no:NAME blocks a plugin, -p NAME loads one when autoloading is disabled (repeatable)"


def _add_common(p: argparse.ArgumentParser) -> None:
    # The same option on the main parser goes to another dest, so `robench3d -p no:x run` and `robench3d run -p
    # no:x` both work (a subparser's default would overwrite the main parser's value).
    p.add_argument("-p", dest="plugin_opts", action="append", default=[], metavar="[no:]NAME", help=_PLUGIN_HELP)
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="cache directory (default: $ROBENCH3D_CACHE or ~/.cache/robench3d)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress messages")


def _add_data(p: argparse.ArgumentParser, default: str | None = "shapes") -> None:
    p.add_argument("--dataset", default=default, help="dataset NAME[:VARIANT] (default: the embedded 'shapes')")
    p.add_argument("--data-root", type=Path, default=None, help="where your copy of the dataset lives")
    p.add_argument("--format", dest="data_format", default=None, help="force an on-disk format")
    p.add_argument("--num-points", type=_positive_int, default=None, help="points per cloud (default: the dataset's)")
    p.add_argument("--seed", type=int, default=0, help="seed (recorded in every row; default 0)")
    p.add_argument("--opt", action="append", default=[], metavar="SCOPE.KEY=VALUE",
                   help="component option, scopes: dataset, backbone, train, defense, attack, surrogate, teacher")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="robench3d", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("-p", dest="plugin_opts_main", action="append", default=[], metavar="[no:]NAME",
                        help=_PLUGIN_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run the evaluation matrix and print a results table")
    _add_common(run)
    _add_data(run)
    run.add_argument("--backbone", default="uni3d",
                     help="ARCH[.TAG][:CONFIG], comma list (default: uni3d, the MRPD paper's student family)")
    run.add_argument("--defense", default="none", help="defense NAME[:VARIANT], comma list (default: none)")
    run.add_argument("--attacks", default="all", help="all, a suite (paper8), globs, comma lists (default: all)")
    run.add_argument("--exclude", default=None, help="attack globs to leave out")
    run.add_argument("--setting", default="oblivious,adaptive",
                     help="oblivious, adaptive, transfer, query; comma list (default: oblivious,adaptive)")
    run.add_argument("--preset", default="auto",
                     help="standard, if-defense, mrpd-paper, quick; auto (default): standard on a GPU, quick on CPU")
    run.add_argument("--surrogate", default=None, help="transfer surrogate backbone (default: pointnet2_ssg)")
    from robench3d.config import CPU_DEFAULT_N

    run.add_argument("--n", default="auto",
                     help=f"evaluate the first N test clouds; 'all'; auto (default): all on a GPU, "
                          f"{CPU_DEFAULT_N} on CPU")
    run.add_argument("--batch-size", type=_positive_int, default=32)
    run.add_argument("--eot-samples", type=_positive_int, default=10,
                     help="EOT samples for random defenses (default 10)")
    run.add_argument("--device", default="cpu")
    run.add_argument("--output", type=Path, default=Path("robench3d-results"), help="results folder")
    run.add_argument("--train-dataset", default=None, help="dataset to train on when --dataset is test-only")
    run.add_argument("--train-data-root", type=Path, default=None)
    run.add_argument("--retrain", action="store_true", help="ignore cached weights")
    run.add_argument("--force", action="store_true", help="recompute cells already in the results folder")
    run.add_argument("--no-reference", dest="reference", action="store_false",
                     help="do not add the undefended base model ('none') beside the requested defenses")
    run.add_argument("--sweep", action="append", default=[], metavar="SCOPE.KEY=V1,V2",
                     help="run once per value of an --opt option (values ';'-separated for list options); several "
                          "--sweep flags form a grid; rows record the values in their sweep column")
    run.add_argument("--seeds", default=None, metavar="S1,S2,...",
                     help="run the whole matrix once per seed (instead of --seed); aggregates add mean +- std")
    run.set_defaults(seed=None)  # so --seed and --seeds can be told apart; no --seed means seed 0
    run.add_argument("--executor", choices=["local", "ray"], default="local",
                     help="local (default): the cells one after the other in this process; ray: as Ray tasks "
                          "(needs the ray extra; the cache dir must be shared by every machine)")
    run.add_argument("--address", default=None,
                     help="ray: the cluster to join (what `ray start --head` printed); default: a local instance")
    run.add_argument("--cpus-per-task", type=float, default=1.0, help="ray: CPUs of each task (torch threads)")
    run.add_argument("--gpus-per-task", type=float, default=None,
                     help="ray: GPUs of each task (default: 1 with --device cuda, else 0)")
    run.add_argument("--dry-run", action="store_true",
                     help="print the planned cells (done / to do) and an estimated cost, build nothing, exit 0")

    train = sub.add_parser("train", help="train a backbone (weights are cached by full configuration)")
    _add_common(train)
    _add_data(train)
    train.add_argument("--backbone", default="uni3d", help="ARCH[:CONFIG] (default: uni3d)")
    train.add_argument("--device", default="cpu")
    train.add_argument("--retrain", action="store_true", help="train even if cached weights exist")

    data = sub.add_parser("data", help="prepare, describe or verify a dataset")
    data.add_argument("action", choices=["prepare", "info", "verify"])
    _add_common(data)
    _add_data(data)
    data.add_argument("--backbone", default="pointnet",
                      help="model whose confusion-prone class pairs 'info' prints (trained or taken from the cache)")
    data.add_argument("--confusion", action=argparse.BooleanOptionalAction, default=None,
                      help="print confusion-prone pairs (default: on for the embedded 'shapes' dataset)")

    lst = sub.add_parser("list", help="list registered components")
    lst.add_argument("kind", nargs="?", default=None, help=KINDS_HELP)
    lst.add_argument("pattern", nargs="?", default=None, help="glob, e.g. 'pgd*'")
    _add_common(lst)

    plugins = sub.add_parser("plugins", help="list plugins with their versions and hooks")
    _add_common(plugins)

    lb = sub.add_parser("leaderboard", help="update, show, validate, migrate, compare with or render the committed "
                                            "leaderboards")
    lb.add_argument("action", choices=["update", "show", "validate", "migrate", "compare", "render"])
    lb.add_argument("--results", type=Path, default=Path("robench3d-results"), help="a run's --output folder")
    lb.add_argument("--reported", type=Path, default=None, metavar="DIR",
                    help="update: write the reported rows of the papers' transcriptions in DIR (e.g. "
                         "leaderboards/reported) instead of a run's results")
    lb.add_argument("--leaderboards", type=Path, default=Path("leaderboards"), help="leaderboards folder")
    lb.add_argument("--dataset", default=None)
    lb.add_argument("--preset", default=None)
    lb.add_argument("--setting", default=None)
    lb.add_argument("--dry-run", action="store_true", help="migrate: report what would change, write nothing")
    lb.add_argument("--strict", action="store_true",
                    help="compare: exit 1 when a delta lies outside the combined 95%% interval")
    lb.add_argument("--readme", type=Path, default=Path("README.md"), help="render: the README with the blocks")
    lb.add_argument("--check", action="store_true", help="render: write nothing, exit 1 if the README is stale")
    _add_common(lb)

    rep = sub.add_parser("report", help="plots and a summary (markdown or one HTML page) of results or leaderboards")
    src = rep.add_mutually_exclusive_group(required=True)
    src.add_argument("--results", type=Path, default=None, metavar="DIR", help="a run's --output folder")
    src.add_argument("--leaderboard", type=Path, default=None, metavar="FILE_OR_DIR",
                     help="a leaderboard file or folder, e.g. leaderboards/shapes/quick")
    rep.add_argument("--out", type=Path, default=None, metavar="DIR",
                     help="where to write (default: report/ inside the --results or --leaderboard folder)")
    rep.add_argument("--format", dest="report_format", choices=["markdown", "html", "all"], default="markdown",
                     help="markdown: PNG files and report.md (default); html: one self-contained report.html; all")
    _add_common(rep)
    return parser


def plugin_options(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """``-p`` values given before or after the subcommand: (plugins to block, plugins to load)."""
    from robench3d.errors import ConfigError

    blocked, load = [], []
    for opt in [*getattr(args, "plugin_opts_main", []), *getattr(args, "plugin_opts", [])]:
        name = opt[3:] if opt.startswith("no:") else opt
        if not name or name.startswith("-") or ":" in name:
            raise ConfigError(f"invalid -p {opt!r}; use -p no:NAME to block a plugin or -p NAME to load one")
        (blocked if opt.startswith("no:") else load).append(name)
    return blocked, load


def _setup_logging(quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.handlers[:] = [handler]
    logger.setLevel(logging.WARNING if quiet else logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``robench3d`` and ``python -m robench3d``; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse printed the usage error (or --help); return its code to in-process callers
        return int(exc.code) if isinstance(exc.code, int) else 2
    if args.version:
        from robench3d import __version__

        print(f"robench3d {__version__}")
        return 0
    if not args.command:
        parser.print_help()
        return 2
    _setup_logging(getattr(args, "quiet", False))
    from robench3d import cli_commands as commands

    try:
        return int(getattr(commands, f"cmd_{args.command}")(args, plugin_options(args)) or 0)
    except Robench3DError as exc:
        print(f"robench3d {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        out = getattr(args, "output", None)
        where = f" Finished cells are saved in {out}/;" if out else ""
        print(f"\ninterrupted.{where} re-run the same command to resume.", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
