"""Implementations of the ``robench3d`` subcommands (part of the CLI layer: it prints).

:mod:`robench3d.cli` parses the arguments and imports this module when a command runs; this module never imports
:mod:`robench3d.cli` (the layering test checks it).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tabulate import tabulate

from robench3d.config import RunConfig, parse_opts, parse_ref
from robench3d.errors import ConfigError
from robench3d.norms import Setting
from robench3d.plugins import PluginManager, build_plugin_manager, build_registries, describe_plugins
from robench3d.registry import Registries

__all__ = ["cmd_data", "cmd_leaderboard", "cmd_list", "cmd_plugins", "cmd_report", "cmd_run", "cmd_train"]


def _progress(args: argparse.Namespace) -> Any:
    """Progress on stderr: plain lines, or bars with an ETA on a terminal (:mod:`robench3d.progress`)."""
    from robench3d.progress import Progress

    quiet = getattr(args, "quiet", False)
    return (lambda msg: None) if quiet else Progress()


PluginOpts = tuple[list[str], list[str]]


def env_cache_dir(args: Any) -> Path:
    """``--cache-dir`` or the default cache directory (``$ROBENCH3D_CACHE``, else ``~/.cache/robench3d``)."""
    from robench3d.cache import default_cache_dir

    return Path(args.cache_dir) if args.cache_dir else default_cache_dir()


def _load(plugins: PluginOpts, *, strict: bool) -> tuple[PluginManager, Registries]:
    blocked, load = plugins
    pm = build_plugin_manager(blocked=blocked, load=load)
    if strict:
        pm.raise_if_broken()
    registries = build_registries(pm, strict=strict)
    if strict:
        pm.raise_if_broken()
    return pm, registries


def _report_broken(pm: PluginManager) -> None:
    for b in pm.broken:
        print(f"warning: {b.message()} (block it with -p no:{b.name})", file=sys.stderr)


def _resolver(pm: PluginManager, cache_dir: Path) -> Any:
    return lambda spec: pm.hook.robench3d_resolve_weights(spec=spec, cache_dir=cache_dir)


def cmd_list(args: argparse.Namespace, plugins: PluginOpts) -> int:
    """``robench3d list [KIND] [PATTERN]``."""
    pm, registries = _load(plugins, strict=False)
    kinds = [args.kind] if args.kind else registries.kinds()
    for kind in kinds:
        reg = registries[kind]
        names = reg.select(args.pattern) if args.pattern else reg.names()
        rows = [[n, _describe(reg.get(n)), reg.owner(n)] for n in names]
        print(f"{kind} ({len(rows)})")
        print(tabulate(rows, headers=["name", "description", "plugin"], tablefmt="simple"))
        print()
    _report_broken(pm)
    return 1 if pm.broken else 0


def _describe(obj: Any) -> str:
    desc = str(getattr(obj, "description", "") or "")
    extra = []
    if hasattr(obj, "configs"):
        extra.append("configs: " + ", ".join(obj.configs))
    if getattr(obj, "variants", None) and not isinstance(obj.variants, str):
        variants = list(obj.variants)
        if len(variants) > 1:
            shown = ", ".join(map(str, variants[:6])) + (f", ... ({len(variants)} in all)" if len(variants) > 6 else "")
            extra.append("variants: " + shown)
    if hasattr(obj, "supported_settings"):
        extra.append("settings: " + ",".join(sorted(str(s) for s in obj.supported_settings)))
    return desc + (f" [{'; '.join(extra)}]" if extra else "")


def cmd_plugins(args: argparse.Namespace, plugins: PluginOpts) -> int:
    """``robench3d plugins``: every plugin with distribution, version, hooks and status."""
    pm, _ = _load(plugins, strict=False)
    rows = describe_plugins(pm)
    print(tabulate([[r["plugin"], r["distribution"], r["version"], r["hooks"], r["status"]] for r in rows],
                   headers=["plugin", "distribution", "version", "hooks", "status"], tablefmt="simple"))
    return 1 if pm.broken else 0


def _settings(text: str) -> tuple[Setting, ...]:
    out = []
    for part in text.split(","):
        if part.strip():
            s = Setting.coerce(part.strip())
            if s not in out:
                out.append(s)
    return tuple(out)  # type: ignore[arg-type]


def cmd_run(args: argparse.Namespace, plugins: PluginOpts) -> int:
    """``robench3d run``: the evaluation matrix."""
    import pandas as pd

    from robench3d.evaluation import sweeps as sw
    from robench3d.evaluation.results import aggregate

    pm, registries = _load(plugins, strict=True)
    cache_dir = env_cache_dir(args)
    preset, n_examples = _cpu_defaults(args)
    seeds, sweeps = _seeds(args), sw.parse_sweeps(args.sweep)
    config = RunConfig(
        cache_dir=cache_dir, output_dir=args.output, dataset=args.dataset, data_root=args.data_root,
        data_format=args.data_format, num_points=args.num_points, train_dataset=args.train_dataset,
        train_data_root=args.train_data_root, backbones=_csv(args.backbone), defenses=_csv(args.defense),
        attacks=args.attacks, exclude=args.exclude, settings=_settings(args.setting), preset=preset,
        surrogate=args.surrogate, n_examples=n_examples, batch_size=args.batch_size, eot_samples=args.eot_samples,
        seed=seeds[0], device=args.device, retrain=args.retrain, force=args.force, opts=parse_opts(args.opt),
        reference=args.reference,
    ).validate()
    for ref in config.defenses:
        registries.defenses.get(parse_ref(ref).name)
    for ref in config.backbones:
        registries.backbones.get(parse_ref(ref, tags=True).name)
    _seed_everything(config.seed)
    sweeps = sw.check_sweeps(config, registries, _resolver(pm, cache_dir), sweeps)  # every value, before any work
    if args.dry_run:
        return _dry_run(config, registries, _resolver(pm, cache_dir), sweeps, seeds)
    with _executor(args, plugins, cache_dir) as run:
        result = sw.run_sweeps(config, registries, sweeps=sweeps, seeds=seeds, resolve_weights=_resolver(pm, cache_dir),
                               progress=_progress(args), before_each=lambda cfg: _seed_everything(cfg.seed), run=run)
    _print_results(result.rows)
    assert result.store is not None
    summary = aggregate(result.store, result.rows)
    if not summary.empty:
        print("\nAggregates (controls and skipped cells excluded; worst case = robust to every attack):")
        shown = summary if (summary["sweep"] != "").any() else summary.drop(columns="sweep")
        print(tabulate(shown.assign(**{c: (shown[c] * 100).round(2) for c in
                                       ("clean_acc", "mean_robust_acc", "worst_case_acc")}),
                       headers="keys", tablefmt="github", showindex=False))
        seeded = sw.over_seeds(result.rows)
        _print_over_seeds(seeded)
        # The over-seeds rows follow the per-seed aggregates; they are the rows with a ``seeds`` value.
        table = summary if seeded.empty else pd.concat([summary, seeded], ignore_index=True).convert_dtypes()
        table.to_csv(config.output_dir / "summary.csv", index=False)
    print(f"\nresults: {config.output_dir / 'results.csv'} (per-sample outcomes in {config.output_dir / 'samples'}/)")
    failed = result.failed
    if failed:
        print(f"\n{len(failed)} cell(s) failed (their rows have status 'error'; re-run the same command to retry "
              "them once fixed):", file=sys.stderr)
        for r in failed:
            print(f"  {r['backbone']} / {r['defense']} / {r['attack']} [{r['setting']}]: {r['reason']}",
                  file=sys.stderr)
        return 1
    return 0


def _seeds(args: argparse.Namespace) -> tuple[int, ...]:
    """``--seed S`` (default 0) or ``--seeds S1,S2,...``, never both."""
    from robench3d.evaluation.sweeps import parse_seeds

    if args.seeds is None:
        return (0 if args.seed is None else args.seed,)
    if args.seed is not None:
        raise ConfigError(f"--seed {args.seed} and --seeds {args.seeds} both choose the seeds; give one of them")
    return parse_seeds(args.seeds)


def _print_over_seeds(table: Any) -> None:
    """Mean +- sample std over seeds per cell, beside each seed's Wilson interval (nothing with one seed)."""
    if table.empty:
        return
    print("\nOver seeds (mean +- sample std of clean and robust accuracy, %; each seed's 95% Wilson interval):")
    rows = [[r["backbone"], r["defense"], r["attack"], r["setting"], r["preset"], r["n_examples"], r["sweep"],
             r["seeds"], f"{100 * r['clean_acc_mean']:.2f} +- {100 * r['clean_acc_std']:.2f}",
             f"{100 * r['robust_acc_mean']:.2f} +- {100 * r['robust_acc_std']:.2f}", r["robust_acc_ci"]]
            for _, r in table.iterrows()]
    print(tabulate(rows, headers=["backbone", "defense", "attack", "setting", "preset", "n", "sweep", "seeds",
                                  "clean %", "robust %", "95% CI per seed"], tablefmt="github"))


def _cpu_defaults(args: argparse.Namespace) -> tuple[str, int | None]:
    """Resolve ``--preset auto`` and ``--n auto``: the full protocol on a GPU, a CPU-sized run otherwise."""
    from robench3d.config import CPU_DEFAULT_N

    gpu = str(args.device).startswith("cuda")
    preset = args.preset if args.preset != "auto" else ("standard" if gpu else "quick")
    if str(args.n) == "auto":
        n = None if gpu else CPU_DEFAULT_N
    elif str(args.n) == "all":
        n = None
    else:
        try:
            n = int(args.n)
        except ValueError:
            raise ConfigError(f"invalid --n {args.n!r}; give a number, 'all' or 'auto'") from None
    if not gpu and (args.preset == "auto" or str(args.n) == "auto"):
        _progress(args)(f"CPU defaults: --preset {preset} --n {n if n is not None else 'all'} (rows record both; the "
                        "full protocol is --preset standard --n all)")
    return preset, n


def _csv(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def _seed_everything(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _pct(v: Any) -> str:
    try:
        return f"{100 * float(v):.2f}"
    except (TypeError, ValueError):
        return ""


def _print_results(rows: list[dict[str, Any]]) -> None:
    table = []
    for r in rows:
        ok = r.get("status") == "ok"
        ci = f"[{_pct(r.get('robust_acc_ci_low'))}, {_pct(r.get('robust_acc_ci_high'))}]" if ok else ""
        table.append([r["backbone"], r["defense"], r["attack"] + (" (control)" if r.get("is_control") else ""),
                      r["setting"], r["preset"], _pct(r.get("clean_acc")), _pct(r.get("robust_acc")) if ok else "",
                      ci, _pct(r.get("attack_success_rate")) if ok else "",
                      "ok" if ok else f"{r.get('status')}: {r.get('reason', '')}"])
    headers = ["backbone", "defense", "attack", "setting", "preset", "clean %", "robust %", "95% CI", "ASR %",
               "status"]
    # A sweep's or several seeds' rows differ only there: show those columns when they vary.
    for col in ("sweep", "seed"):
        values = [r.get(col) for r in rows]
        if len({str(v) for v in values}) > 1:
            headers.insert(5, col)
            for line, v in zip(table, values, strict=True):
                line.insert(5, v)
    print(tabulate(table, headers=headers, tablefmt="github"))


def cmd_train(args: argparse.Namespace, plugins: PluginOpts) -> int:
    """``robench3d train``: train (or load from cache) a backbone and report its accuracy."""
    from robench3d.evaluation.components import build_backbone, prepare_dataset
    from robench3d.training.backbone import accuracy

    pm, registries = _load(plugins, strict=True)
    cache_dir = env_cache_dir(args)
    opts = parse_opts(args.opt)
    config = RunConfig(cache_dir=cache_dir, dataset=args.dataset, data_root=args.data_root,
                       num_points=args.num_points, backbones=(args.backbone,), seed=args.seed, device=args.device,
                       retrain=args.retrain, opts=opts).validate()
    data = prepare_dataset(registries, args.dataset, cache_dir=cache_dir, root=args.data_root,
                           fmt=args.data_format, num_points=args.num_points, seed=args.seed, extra=opts["dataset"])
    trained = build_backbone(registries, args.backbone, config=config, train_data=data, num_classes=data.num_classes,
                             resolver=_resolver(pm, cache_dir), progress=_progress(args))
    rows = [["backbone", trained.name], ["weights", trained.provenance], ["file", str(trained.path)]]
    for split in ("val", "test"):
        if data.has(split):
            rows.append([f"{split} accuracy", f"{100 * accuracy(trained.model, data, split):.2f}%"])
    if "train_seconds" in trained.info:
        rows.append(["training time", f"{trained.info['train_seconds']} s"])
    print(tabulate(rows, tablefmt="plain"))
    return 0


def cmd_data(args: argparse.Namespace, plugins: PluginOpts) -> int:
    """``robench3d data prepare|info|verify``."""
    from robench3d.datasets import tools
    from robench3d.datasets.base import DatasetOptions
    from robench3d.evaluation.components import prepare_dataset

    _pm, registries = _load(plugins, strict=True)
    cache_dir = env_cache_dir(args)
    opts = parse_opts(args.opt)
    if args.action == "verify":
        ref = parse_ref(args.dataset)
        dataset = registries.datasets.get(ref.name)(DatasetOptions(
            cache_dir=cache_dir, root=args.data_root, variant=ref.variant, num_points=args.num_points,
            seed=args.seed, format=args.data_format, extra=opts["dataset"]))
        report = tools.verify(dataset)
        print(f"dataset {report.dataset}  root {report.root or '-'}  format {report.format or '-'}")
        if report.files:
            print(tabulate(report.checksum_rows(), headers=["file", "bytes", "sha256"], tablefmt="simple"))
        for note in report.notes:
            print(f"note: {note}")
        _print_duplicates(report.duplicates)
        for problem in report.problems:
            print(f"PROBLEM: {problem}")
        print("ok" if report.ok else f"{len(report.problems)} problem(s) found")
        return 0 if report.ok else 1
    data = prepare_dataset(registries, args.dataset, cache_dir=cache_dir, root=args.data_root, fmt=args.data_format,
                           num_points=args.num_points, seed=args.seed, extra=opts["dataset"])
    info = tools.describe(data)
    print(f"dataset {data.name}  version {data.version}  classes {data.num_classes}"
          + (f"  (models trained on {data.trained_on})" if data.trained_on else ""))
    print(tabulate(info["rows"], headers=info["headers"], tablefmt="simple"))
    print("points per cloud: " + ", ".join(f"{s} {v['points_per_cloud']}" for s, v in info["splits"].items()))
    for note in info.get("notes", []):
        print(f"note: {note}")
    _print_duplicates(info["duplicates"])
    confusion = args.confusion if args.confusion is not None else data.name == "shapes"
    if args.action == "info" and confusion and data.has("train") and data.has("test"):
        _print_confusion(args, registries, data, cache_dir)
    return 0


def _print_duplicates(report: dict[str, Any] | None) -> None:
    """The ``duplicates:`` lines of ``data info``/``verify`` (nothing for data without cloud digests)."""
    from robench3d.datasets.duplicates import DuplicateReport

    if report is not None:
        for line in DuplicateReport(**report).lines():
            print(f"duplicates: {line}")


def _print_confusion(args: argparse.Namespace, registries: Registries, data: Any, cache_dir: Path) -> None:
    import numpy as np
    import torch

    from robench3d.datasets.confusion import confusion_pairs
    from robench3d.evaluation.components import build_backbone

    config = RunConfig(cache_dir=cache_dir, backbones=(args.backbone,), seed=args.seed, opts=parse_opts(args.opt))
    trained = build_backbone(registries, args.backbone, config=config, train_data=data,
                             num_classes=data.num_classes, resolver=None, progress=_progress(args))
    test = data.split("test")
    with torch.no_grad():
        pred = np.concatenate([trained.model(b.points).argmax(1).numpy() for b in data.batches("test", 64)])
    acc = float((pred == test.labels).mean())
    pairs = confusion_pairs(test.labels, pred, data.class_names)
    print(f"\nconfusion-prone pairs ({trained.name}, test accuracy {100 * acc:.1f}%, {trained.provenance}):")
    print(tabulate(pairs, headers=["true class", "predicted as", "count"], tablefmt="simple") if pairs
          else "(no confusions)")


def cmd_leaderboard(args: argparse.Namespace, plugins: PluginOpts) -> int:
    """``robench3d leaderboard update|show|validate|migrate|compare|render``."""
    from robench3d.leaderboard import board

    if args.action in ("compare", "render"):
        return _leaderboard_tools(args)
    if args.action == "update" and args.reported is not None:
        from robench3d.leaderboard.reported import update_reported

        for path, n_reported, n in update_reported(args.reported, args.leaderboards):
            print(f"{path}: {n_reported} reported rows ({n} rows in all)")
        return 0
    if args.action == "update":
        written, failed = board.update(args.results, args.leaderboards)
        for path, n in written:
            print(f"{path}: {n} rows")
        if failed:
            print(f"{failed} failed cell(s) (status 'error') were not published; re-run them first",
                  file=sys.stderr)
        return 0
    if args.action == "validate":
        for path in board.validate_all(args.leaderboards):
            print(f"ok {path}")
        return 0
    if args.action == "migrate":
        for path, notes in board.migrate_all(args.leaderboards, dry_run=args.dry_run):
            print(f"{path}: " + ("; ".join(notes) if notes else "already current"))
        return 0
    frames = board.load(args.leaderboards, dataset=args.dataset, preset=args.preset, setting=args.setting)
    if not frames:
        raise ConfigError(f"no leaderboard files under {args.leaderboards} match the filters")
    for path, frame in frames:
        print(f"\n{path}")
        print(board.render(frame))
    return 0


def _leaderboard_tools(args: argparse.Namespace) -> int:
    """``leaderboard compare`` (exit 1 only with ``--strict`` and a flagged delta) and ``leaderboard render``
    (exit 1 with ``--check`` when the README is stale)."""
    if args.action == "compare":
        from robench3d.leaderboard.compare import compare

        result = compare(args.results, args.leaderboards)
        print(result.render())
        return 1 if args.strict and result.flagged else 0
    from robench3d.leaderboard.render import update_readme

    stale = update_readme(args.readme, args.leaderboards, check=args.check)
    if args.check:
        if stale:
            print(f"{args.readme} is out of date in block(s) {', '.join(stale)}; run `robench3d leaderboard "
                  "render`", file=sys.stderr)
            return 1
        print(f"{args.readme} is up to date")
        return 0
    print(f"{args.readme}: " + (f"re-rendered {', '.join(stale)}" if stale else "already up to date"))
    return 0


def cmd_report(args: argparse.Namespace, plugins: PluginOpts) -> int:
    """``robench3d report --results DIR | --leaderboard FILE_OR_DIR [--out DIR] [--format markdown|html|all]``."""
    from robench3d import report

    source = args.results if args.results is not None else args.leaderboard
    data = report.from_results(source) if args.results is not None else report.from_leaderboard(source)
    out = args.out if args.out is not None else (source if source.is_dir() else source.parent) / "report"
    for path in report.write(data, out, args.report_format):
        print(path)
    return 0


def worker_registries(plugins: PluginOpts, cache_dir: Path) -> tuple[Registries, Any]:
    """The registries and weights resolver of a run, rebuilt in a Ray worker process from the same ``-p`` options."""
    pm, registries = _load(plugins, strict=True)
    return registries, _resolver(pm, cache_dir)


@contextlib.contextmanager
def _executor(args: argparse.Namespace, plugins: PluginOpts, cache_dir: Path) -> Iterator[Any]:
    """The matrix runner of ``--executor``: ``run_matrix`` itself, or bound to a started :class:`RayExecutor`."""
    import functools

    from robench3d.evaluation.matrix import run_matrix

    if args.executor == "local":
        if args.address is not None:
            raise ConfigError(f"--address {args.address!r} needs --executor ray (the local executor uses no cluster)")
        yield run_matrix
        return
    from robench3d.evaluation.executors import RayExecutor

    executor = RayExecutor(setup=functools.partial(worker_registries, plugins, cache_dir), address=args.address,
                           cpus_per_task=args.cpus_per_task, gpus_per_task=args.gpus_per_task,
                           echo=not getattr(args, "quiet", False))
    with executor:
        yield functools.partial(run_matrix, executor=executor)


def _dry_run(config: RunConfig, registries: Registries, resolver: Any, sweeps: Any, seeds: tuple[int, ...]) -> int:
    """``run --dry-run``: the planned cells of every seed and sweep point (done / to do) and their estimated cost."""
    from robench3d.evaluation import sweeps as sw
    from robench3d.evaluation.dryrun import plan_cells

    cells = []
    for seed in seeds:
        for point in sw.grid(sweeps):
            cells.extend(plan_cells(sw.with_point(config, point, seed), registries, resolver))
    print(tabulate([c.table_row() for c in cells], headers=["backbone", "defense", "attack", "setting", "seed",
                                                            "sweep", "status", "est. seconds", "from"],
                   tablefmt="github"))
    todo = [c for c in cells if c.status == "to do"]
    known = [c.seconds for c in todo if c.seconds is not None]
    unknown = len(todo) - len(known)
    done = sum(c.status == "done" for c in cells)
    cost = f"about {_duration(sum(known))}" if known else "unknown"
    if known and unknown:
        cost += f" for {len(known)} of them, unknown for {unknown} (no finished row of the same attack)"
    print(f"\n{len(cells)} cells: {done} done, {len(todo)} to do, {len(cells) - done - len(todo)} skipped; estimated "
          f"attack time of the cells to do: {cost} (measured per-sample times; training models not yet in the cache "
          "is not included). Nothing was built; run without --dry-run to compute them.")
    return 0


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min" if seconds < 7200 else \
        f"{seconds / 3600:.1f} h"
