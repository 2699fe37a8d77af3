"""Sweeps and seeds: ``robench3d run --sweep SCOPE.KEY=V1,V2 [--sweep ...] --seeds 0,1,2``.

A sweep runs the matrix once per value of an option that ``--opt`` accepts (several sweeps: once per point of their
grid, the cartesian product), and ``--seeds`` runs all of it once per seed. Each run is an ordinary
:func:`~robench3d.evaluation.matrix.run_matrix` call whose configuration has the point's values merged into its
options, so everything that caches by configuration (trained models, defenses, oblivious adversarial clouds, whose
key holds the attack's parameters) is shared where it may be and separate where it must be, and finished cells are
reused on a re-run like any other cell (a row's key holds its ``seed`` and ``sweep``).

Rows of a sweep record the point in their ``sweep`` column, e.g. ``{"attack.pgd_linf.eps": 0.02}`` (JSON, sorted
keys, values as the parameter parses them), on every row of that run. They keep the run's preset and the defense's
plain label, and their ``overrides`` column leaves the swept keys out: the ``sweep`` column says what differs, so
the rows of one sweep differ only there (and an unswept run's rows, ``sweep`` empty, stay apart). Values are checked
by the same typed parameters as ``--opt``, all of them before any work: a bad one stops the run with exit code 2.

:func:`over_seeds` summarises the rows of several seeds: mean and sample standard deviation over seeds of clean and
robust accuracy per cell (every key column but the seed), beside each seed's 95% Wilson interval.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from robench3d.config import parse_opts, parse_ref
from robench3d.errors import ConfigError, Robench3DError
from robench3d.evaluation.components import WeightsResolver
from robench3d.evaluation.matrix import MatrixResult, run_matrix
from robench3d.evaluation.preflight import RunPlan, plan_run, surrogate_name
from robench3d.evaluation.results import ResultsStore
from robench3d.registry import Registries
from robench3d.schema import KEY, is_reported

__all__ = ["SWEEP_SCOPES", "Sweep", "check_sweeps", "grid", "over_seeds", "parse_seeds", "parse_sweeps", "run_sweeps",
           "with_point"]

logger = logging.getLogger(__name__)

#: Scopes a sweep may vary. ``dataset`` is not one: its options change the test set (or its version), and rows of
#: different test sets are different leaderboards, not points of one curve; run them separately.
SWEEP_SCOPES = ("attack", "defense", "backbone", "train", "surrogate", "teacher")


@dataclass(frozen=True)
class Sweep:
    """One ``--sweep SCOPE.[NAME.]KEY=V1,V2,...``: the option and its values (typed once checked)."""

    key: str
    values: tuple[Any, ...]

    @property
    def scope(self) -> str:
        return self.key.partition(".")[0]

    @property
    def target(self) -> str:
        """The component named in the key (``pgd_linf`` of ``attack.pgd_linf.eps``), or ``""``."""
        return self.key.partition(".")[2].rpartition(".")[0]

    @property
    def param(self) -> str:
        return self.key.rpartition(".")[2]


def parse_sweeps(items: Iterable[str]) -> list[Sweep]:
    """Parse ``--sweep`` items; values are comma-separated, or ``;``-separated when they are comma lists."""
    out: list[Sweep] = []
    for item in items:
        key, eq, text = item.partition("=")
        key = key.strip()
        scope, dot, name = key.partition(".")
        if not eq or not dot or not name or name.endswith("."):
            raise ConfigError(f"invalid --sweep {item!r}; expected SCOPE.KEY=V1,V2,..., e.g. "
                              "attack.pgd_linf.eps=0.01,0.02,0.05")
        if scope not in SWEEP_SCOPES:
            why = (" (a dataset option changes the test set: run each value separately)" if scope == "dataset"
                   else "")
            raise ConfigError(f"invalid --sweep scope {scope!r} in {item!r}{why}; valid scopes: "
                              f"{', '.join(SWEEP_SCOPES)}")
        parts = [p.strip() for p in text.split(";" if ";" in text else ",")]
        if not any(parts) or not all(parts):
            raise ConfigError(f"--sweep {item!r}: give at least one value and no empty ones, e.g. {key}=0.01,0.02 "
                              f"(list-valued options: {key}='1,2;3,4')")
        if len(set(parts)) != len(parts):
            raise ConfigError(f"--sweep {item!r} repeats a value; give each value once")
        if any(s.key == key for s in out):
            raise ConfigError(f"--sweep {key} is given twice; put all its values in one --sweep")
        # coerced exactly as --opt coerces a value; the component's typed parameter decides in check_sweeps
        out.append(Sweep(key, tuple(parse_opts([f"{key}={p}"])[scope][name] for p in parts)))
    return out


def parse_seeds(text: str) -> tuple[int, ...]:
    """Parse ``--seeds 0,1,2`` (distinct integers)."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    try:
        seeds = tuple(int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"invalid --seeds {text!r}; give distinct integers, e.g. --seeds 0,1,2") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"invalid --seeds {text!r}; give distinct integers, e.g. --seeds 0,1,2")
    return seeds


def _overlaps(a: str, b: str) -> bool:
    """Whether two option keys of one scope can set the same parameter of one component."""
    sa, sb = Sweep(a, ()), Sweep(b, ())
    return (sa.scope == sb.scope and sa.param == sb.param
            and (sa.target == sb.target or not sa.target or not sb.target))


def _conflicts(sweeps: Sequence[Sweep], opts: Mapping[str, Mapping[str, Any]]) -> None:
    given = [f"{scope}.{name}" for scope, values in opts.items() for name in values]
    for i, s in enumerate(sweeps):
        for key in given:
            if _overlaps(s.key, key):
                raise ConfigError(f"--sweep {s.key} and --opt {key} set the same option; drop the --opt (or put "
                                  "its value among the swept ones)")
        for other in sweeps[i + 1:]:
            if _overlaps(s.key, other.key):
                raise ConfigError(f"--sweep {s.key} and --sweep {other.key} set the same option; sweep it once")


def grid(sweeps: Sequence[Sweep]) -> list[dict[str, Any]]:
    """Every point of the sweeps' cartesian product, in the order given (``[{}]`` without sweeps)."""
    return [dict(zip([s.key for s in sweeps], values, strict=True))
            for values in itertools.product(*(s.values for s in sweeps))]


def with_point(config: Any, point: Mapping[str, Any], seed: int | None = None) -> Any:
    """``config`` (a :class:`~robench3d.config.RunConfig`) with a grid point merged into its options."""
    opts = {scope: dict(values) for scope, values in config.opts.items()}
    for key, value in point.items():
        scope, _, name = key.partition(".")
        opts.setdefault(scope, {})[name] = value
    return replace(config, opts=opts, sweep=dict(point), seed=config.seed if seed is None else seed)


def _shown(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


def check_sweeps(config: Any, registries: Registries, resolver: WeightsResolver | None,
                 sweeps: Sequence[Sweep]) -> list[Sweep]:
    """Check every value of every sweep before any work; return the sweeps with their values typed.

    Each value is planned (:func:`~robench3d.evaluation.preflight.plan_run`) exactly as ``--opt`` would be, so
    it meets the same typed, range-checked parameters; values that parse to the same thing (``0.1`` and ``0.10``)
    are one value given twice.

    Raises:
        ConfigError: an option also given with ``--opt`` or swept twice, or a value its parameter rejects (the
            message names the ``--sweep`` option and the value).
    """
    if not sweeps:
        return []
    _conflicts(sweeps, config.opts)
    plan_run(config, registries, resolver)  # the run without the sweeps: its own errors are not the sweep's
    typed: list[Sweep] = []
    for s in sweeps:
        values = []
        for value in s.values:
            cfg = with_point(config, {s.key: value})
            try:
                plan = plan_run(cfg, registries, resolver)
                values.append(_typed(plan, cfg, registries, s, value))
            except Robench3DError as exc:
                raise ConfigError(f"--sweep {s.key}={_shown(value)}: {exc}") from None
        if len({json.dumps(v) for v in values}) != len(values):
            raise ConfigError(f"--sweep {s.key}: the values parse to {', '.join(map(_shown, values))}, which "
                              "repeats one; give each value once")
        typed.append(Sweep(s.key, tuple(list(v) if isinstance(v, tuple) else v for v in values)))
    return typed


def _typed(plan: RunPlan, config: Any, registries: Registries, s: Sweep, raw: Any) -> Any:
    """The value as the (first) component it reaches parses it: ``1`` is ``1.0`` for a float parameter."""
    hits: list[Any] = []
    if s.scope == "attack":
        hits = [a.params[s.param] for n, a in plan.attacks.items() if s.target in ("", n) and s.param in a.params]
    elif s.scope == "defense":
        hits = [d.params[s.param] for d in plan.defenses if s.target in ("", d.name) and s.param in d.params]
    elif s.scope == "teacher":
        teachers = registries["teachers"]
        hits = [teachers.get(n)(None, opts).params[s.param] for n, opts in plan.teacher_opts.items()
                if s.param in opts]
    else:
        refs = config.backbones if s.scope != "surrogate" else [surrogate_name(config, b) for b in config.backbones]
        for ref in refs:
            r = parse_ref(ref, tags=True)
            spec = registries.backbones.get(r.name)
            try:
                if s.scope == "train":
                    hits.append(getattr(spec.recipe(r.variant).with_overrides(**{s.param: raw}), s.param))
                else:
                    variant = r.variant or (spec.weights[r.tag].config if r.tag in spec.weights else None)
                    hits.append(spec.config(variant, {s.param: raw})[s.param])
            except (ConfigError, KeyError, AttributeError):
                continue  # e.g. head and text options, which are not configuration values: kept as given
    return hits[0] if hits else raw


def run_sweeps(config: Any, registries: Registries, *, sweeps: Sequence[Sweep] = (), seeds: Sequence[int] = (),
               resolve_weights: WeightsResolver | None = None, progress: Callable[[str], None] | None = None,
               before_each: Callable[[Any], None] | None = None,
               run: Callable[..., MatrixResult] = run_matrix) -> MatrixResult:
    """Run the matrix once per seed and grid point (checked sweeps, see :func:`check_sweeps`); all the rows.

    ``before_each(config)`` is called before each run (the CLI seeds the global generators there); ``run`` is the
    matrix runner. Without sweeps and with one seed this is one ``run`` call; otherwise every run is complete in
    itself (its own plan, reference rows, masking flags and ``robench3d_run_finished`` call).
    """
    say = progress or (lambda msg: logger.info("%s", msg))
    seeds = tuple(seeds) or (config.seed,)
    points = grid(sweeps)
    result = MatrixResult(store=ResultsStore(config.output_dir))
    for seed in seeds:
        for point in points:
            cfg = with_point(config, point, seed)
            if len(seeds) > 1 or point:
                say(f"== seed {seed}" + (f", sweep {json.dumps(point, sort_keys=True)}" if point else ""))
            if before_each is not None:
                before_each(cfg)
            part = run(cfg, registries, resolve_weights=resolve_weights, progress=progress)
            result.rows.extend(part.rows)
    return result


def over_seeds(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Mean and sample standard deviation over seeds of every cell that ran with several seeds.

    Cells are grouped by every key column but ``seed`` (so only rows that differ in their seed are compared);
    controls, skipped and failed cells and reported rows are left out. ``robust_acc_ci`` lists each seed's 95%
    Wilson interval, in percent.
    """
    frame = pd.DataFrame(list(rows))
    if frame.empty or "seed" not in frame:
        return pd.DataFrame()
    keep = (frame["status"] == "ok") & ~frame["is_control"].astype(bool)
    if "source" in frame:
        keep &= ~is_reported(frame)
    frame = frame[keep]
    group = [c for c in KEY if c != "seed" and c in frame]
    out = []
    for key, grp in frame.fillna({c: "" for c in group}).groupby(group, sort=True):
        grp = grp.sort_values("seed")
        if grp["seed"].nunique() < 2:
            continue
        entry = dict(zip(group, key, strict=True))
        clean, robust = grp["clean_acc"].astype(float), grp["robust_acc"].astype(float)
        entry.update({
            "seeds": ",".join(str(int(s)) for s in grp["seed"]), "n_seeds": len(grp),
            "clean_acc_mean": float(clean.mean()), "clean_acc_std": float(clean.std(ddof=1)),
            "robust_acc_mean": float(robust.mean()), "robust_acc_std": float(robust.std(ddof=1)),
            "robust_acc_ci": "; ".join(
                f"{int(r['seed'])}: [{100 * float(r['robust_acc_ci_low']):.1f}, "
                f"{100 * float(r['robust_acc_ci_high']):.1f}]" for _, r in grp.iterrows()),
        })
        out.append(entry)
    return pd.DataFrame(out)
