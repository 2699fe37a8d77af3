"""The evaluation matrix: dataset x backbone x defense x attack x threat setting -> result rows.

For every defense the loop builds the defended model once; for every (attack, setting) cell it builds the victim
of that setting (:mod:`robench3d.evaluation.victims`), generates adversarial clouds (cached: an oblivious attack
runs once per dataset/backbone/attack/preset/seed and is replayed on every defense), classifies them with the
defended model and writes a row plus per-example outcomes. Cells already present in the results folder with the
same configuration are reused, so an interrupted run resumes where it stopped and loses nothing.

Every name and option is resolved, and the output folder checked, before anything is trained
(:mod:`robench3d.evaluation.preflight`). A component that raises while the matrix runs (a backbone or defense that
fails to build, an attack that fails to prepare or exceeds its budget) fails its own cells only: they are written as
``error`` rows naming the component and its plugin, the remaining cells run, and a re-run retries them.
``robench3d_run_finished`` fires at the end, also when the matrix is run from Python with registries from
:func:`robench3d.plugins.build_registries`.

Defenses are built with a :class:`~robench3d.context.BuildContext` that gives them the training data (never the test
split), the base backbone, and factories for backbones (cached, shared with the run), teachers (built once per run),
attacks and weights files.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pandas as pd

from robench3d.attacks.base import AttackContext
from robench3d.config import RunConfig, parse_ref
from robench3d.context import BuildContext
from robench3d.datasets.base import PreparedDataset
from robench3d.defenses.base import Defense
from robench3d.evaluation import cells
from robench3d.evaluation.components import WeightsResolver, build_backbone, make_attack
from robench3d.evaluation.masking import SANITY_PARAMS, flag_unreliable
from robench3d.evaluation.preflight import RunPlan, plan_run, scoped_overrides, surrogate_name
from robench3d.evaluation.results import ResultsStore
from robench3d.norms import Setting, Split
from robench3d.progress import report_cell
from robench3d.registry import Registries
from robench3d.schema import normalize
from robench3d.training.backbone import TrainedBackbone

__all__ = ["MatrixResult", "run_matrix", "scoped_overrides"]

logger = logging.getLogger(__name__)


def _version() -> str:
    try:
        return importlib.metadata.version("robench3d")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


@dataclass
class MatrixResult:
    """Rows written by a run (including skipped and failed cells) and the store they live in."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    store: ResultsStore | None = None

    @property
    def failed(self) -> list[dict[str, Any]]:
        """The rows of cells that failed (status ``error``); a re-run retries them."""
        return [r for r in self.rows if r.get("status") == "error"]

    def frame(self) -> pd.DataFrame:
        """The rows as a schema-normalised :class:`pandas.DataFrame`."""
        return normalize(pd.DataFrame(self.rows)) if self.rows else normalize(pd.DataFrame())


def _owner_of(registries: Registries) -> Callable[[str, str], str]:
    def owner(kind: str, name: str) -> str:
        try:
            return registries[kind].owner(name)
        except (KeyError, AttributeError):
            return ""
    return owner


def _without_test(data: PreparedDataset | None) -> PreparedDataset | None:
    """The training data a component may see: its train and val splits only."""
    if data is None:
        return None
    return dataclasses.replace(data, splits={k: v for k, v in data.splits.items() if k is not Split.TEST})


def run_matrix(
    config: RunConfig,
    registries: Registries,
    *,
    resolve_weights: WeightsResolver | None = None,
    progress: Callable[[str], None] | None = None,
    executor: Any = None,
) -> MatrixResult:
    """Run every cell of the configured matrix, writing rows into ``config.output_dir`` as they finish.

    ``executor``: ``None`` runs the cells here, one after the other; an object with ``execute(run)`` (e.g.
    :class:`robench3d.evaluation.executors.RayExecutor`) runs them elsewhere and writes them into the same store.
    """
    config.validate()
    say = progress or (lambda msg: logger.info("%s", msg))
    plan = plan_run(config, registries, resolve_weights)
    run = _Run(config, registries, plan, resolve_weights, say)
    if executor is None:
        run.execute()
    else:
        executor.execute(run)
    _run_finished(registries, run.result, config)
    return run.result


class BackboneSetup(NamedTuple):
    """What the defenses of one base backbone share: the trained model, its surrogate and their build context."""

    bref: str
    trained: TrainedBackbone
    surrogate: TrainedBackbone | str | None
    surrogate_error: str
    ctx: BuildContext


class _Run:
    """One execution of a :class:`~robench3d.evaluation.preflight.RunPlan`."""

    def __init__(self, config: RunConfig, registries: Registries, plan: RunPlan,
                 resolver: WeightsResolver | None, say: Callable[[str], None]) -> None:
        self.config, self.registries, self.plan, self.resolver, self.say = config, registries, plan, resolver, say
        self.store = ResultsStore(config.output_dir)
        self.result = MatrixResult(store=self.store)
        self.owner = _owner_of(registries)
        self.failed_attacks: dict[str, str] = {}
        self.train_view = _without_test(plan.train_data)
        self._backbones: dict[tuple[str, str], TrainedBackbone] = {}
        self._teachers: dict[str, Any] = {}
        self.cells_done, self.cells_total = 0, len(config.backbones) * len(plan.defenses) * len(plan.attacks) * len(
            config.settings)

    def tick(self, row: Mapping[str, Any]) -> None:
        """Count a finished cell; a progress sink with ``on_cell(done, total, label)`` (the CLI's bars) sees it."""
        self.cells_done += 1
        report_cell(self.say, self.cells_done, self.cells_total,
                    f"{row.get('attack')} [{row.get('setting')}] on {row.get('defense')} ({row.get('backbone')})")

    # -- factories handed to defenses and teachers ---------------------------------------------------------------
    def backbone(self, ref: str, *, scope: str = "backbone") -> TrainedBackbone:
        """Train (cached on disk) or load a backbone; built once per run and scope."""
        key = (ref, scope)
        if key not in self._backbones:
            self._backbones[key] = build_backbone(
                self.registries, ref, config=self.config, train_data=self.plan.train_data,
                num_classes=self.plan.data.num_classes, resolver=self.resolver, scope=scope, progress=self.say)
        return self._backbones[key]

    def teacher(self, ref: str, overrides: Mapping[str, Any] | None, ctx: BuildContext) -> Any:
        """A registered teacher with the run's ``--opt teacher.*`` values, prepared and frozen once per run."""
        r = parse_ref(ref)
        cls = self.registries["teachers"].get(r.name)
        opts = {**self.plan.teacher_opts.get(r.name, {}), **dict(overrides or {})}
        key = f"{ref}|{sorted(opts.items())!r}"
        if key not in self._teachers:
            self.say(f"preparing teacher {ref}")
            self._teachers[key] = cls(r.variant, opts).build(ctx).to(ctx.device)
        return self._teachers[key]

    def context(self, trained: TrainedBackbone, bref: str) -> BuildContext:
        """The build context of the defenses of one base backbone."""
        cfg = self.config
        ctx = BuildContext(
            train_data=self.train_view, backbone=trained.model, backbone_name=trained.name,
            surrogate=self.plan.surrogates.get(bref, ""),
            backbone_provenance=trained.provenance, base=trained, cache_dir=cfg.cache_dir, seed=cfg.seed,
            device=cfg.device, registries=self.registries, progress=self.say, options=cfg.opts,
            attack_factory=lambda name, preset="standard", overrides=None: make_attack(
                self.registries, name, preset, overrides, cfg.seed),
            backbone_factory=self.backbone, weights_resolver=self.resolver)
        ctx.teacher_factory = lambda ref, overrides=None: self.teacher(ref, overrides, ctx)
        return ctx

    # -- the loop --------------------------------------------------------------------------------------------------
    def execute(self) -> None:
        self.announce()
        self._prepare_attacks()
        for bref in self.config.backbones:
            self._run_backbone(bref)

    def announce(self) -> None:
        plan, say = self.plan, self.say
        say(f"dataset {plan.data.name} ({plan.data.version}): {plan.n} test clouds, {plan.data.num_classes} "
            f"classes; attacks: {', '.join(plan.attacks)}; settings: {', '.join(map(str, self.config.settings))}")

    def _prepare_attacks(self) -> None:
        cfg = self.config
        actx = AttackContext(dataset=self.plan.train_data or self.plan.data, cache_dir=cfg.cache_dir,
                             seed=cfg.seed, device=cfg.device, progress=self.say)
        for name, attack in self.plan.attacks.items():
            try:
                attack.prepare(actx)
            except Exception as exc:  # third-party preparation code may fail in any way: its cells fail
                self.failed_attacks[name] = cells.describe_failure(
                    exc, f"attack {name!r} (plugin {self.owner('attacks', name)})", "preparing")
                self.say(f"error: {self.failed_attacks[name]}")

    def _cell_plan(self, defense: Defense, backbone: str, bref: str, randomized: bool) -> cells.CellPlan:
        return cells.CellPlan(config=self.config, data=self.plan.data, test_n=self.plan.n, backbone=backbone,
                              defense=defense, surrogate=self.plan.surrogates[bref], version=_version(),
                              owner=self.owner, randomized=randomized)

    def _fail_all(self, plan: cells.CellPlan, message: str) -> None:
        rows = [cells.error_row(plan, attack, setting, message)
                for attack in self.plan.attacks.values() for setting in self.config.settings]
        self.store.put_many(rows)
        self.result.rows.extend(rows)
        for row in rows:
            self.tick(row)

    def prepare_backbone(self, bref: str) -> BackboneSetup | str:
        """Train or load a base backbone and its transfer surrogate, or return the message of its failure."""
        label = self.plan.labels[bref]
        try:
            trained = self.backbone(bref)
        except Exception as exc:  # a failing backbone fails its own cells only
            arch = parse_ref(bref, tags=True).name
            message = cells.describe_failure(exc, f"backbone {label!r} (plugin {self.owner('backbones', arch)})",
                                             "building it")
            self.say(f"error: {message}")
            return message
        surrogate, surrogate_error = None, ""
        try:
            surrogate = self._surrogate(bref)
        except Exception as exc:  # the transfer cells fail; the other settings still run
            surrogate_error = cells.describe_failure(exc, f"transfer surrogate {self.plan.surrogates[bref]!r}",
                                                     "building it")
            self.say(f"error: {surrogate_error}")
        return BackboneSetup(bref, trained, surrogate, surrogate_error, self.context(trained, bref))

    def build_defense(self, setup: BackboneSetup, defense: Defense, *, measure: bool = True) -> cells.CellBase | str:
        """Build a defense on a prepared backbone (and measure it on clean clouds), or return why it failed."""
        trained = setup.trained
        who = f"defense {defense.label!r} (plugin {self.owner('defenses', defense.name)})"
        self.say(f"building defense {defense.label} on {trained.name}")
        try:
            defended = defense.build(setup.ctx)
            plan = self._cell_plan(defense, trained.name, setup.bref, defended.randomized)
            base = cells.CellBase(plan=plan, trained=trained, defended=defended, surrogate=setup.surrogate,
                                  store=self.store, progress=self.say, surrogate_error=setup.surrogate_error)
            if measure:
                base.measure()
        except Exception as exc:  # a defense that cannot be built or run on clean clouds fails its cells
            message = cells.describe_failure(exc, who, f"building it on {trained.name}")
            self.say(f"error: {message}")
            return message
        return base

    def _run_backbone(self, bref: str) -> None:
        setup = self.prepare_backbone(bref)
        if isinstance(setup, str):
            for defense in self.plan.defenses:
                self._fail_all(self._cell_plan(defense, self.plan.labels[bref], bref, defense.randomized), setup)
            return
        for defense in self.plan.defenses:
            base = self.build_defense(setup, defense)
            if isinstance(base, str):
                self._fail_all(self._cell_plan(defense, setup.trained.name, bref, defense.randomized), base)
                continue
            self._run_defense(base)

    def _run_defense(self, base: cells.CellBase) -> None:
        rows = []
        for aname, attack in self.plan.attacks.items():
            for setting in self.config.settings:
                if aname in self.failed_attacks:
                    row = cells.error_row(base.plan, attack, setting, self.failed_attacks[aname])
                    self.store.put(row)
                else:
                    row = cells.run_cell(base, attack, setting)
                self.result.rows.append(row)
                rows.append(row)
                self.tick(row)
        _flag(base, self.registries, self.config, rows, self.say)

    def _surrogate(self, bref: str) -> TrainedBackbone | str | None:
        """The transfer surrogate, or a string saying why there is none (transfer cells are then skipped)."""
        if Setting.TRANSFER not in self.config.settings:
            return None
        name = surrogate_name(self.config, bref)
        if parse_ref(name, tags=True).name not in self.registries.backbones:
            return f"surrogate backbone {name!r} is not registered (choose one with --surrogate)"
        self.say(f"preparing transfer surrogate {name}")
        return self.backbone(name, scope="surrogate")


def _run_finished(registries: Registries, result: MatrixResult, config: RunConfig) -> None:
    """Call every ``robench3d_run_finished`` implementation; one that raises is reported, never fatal."""
    hook = getattr(registries, "hook", None)
    caller = getattr(hook, "robench3d_run_finished", None)
    if caller is None:
        return
    frame = result.frame()
    for impl in caller.get_hookimpls():
        try:
            impl.function(**{k: v for k, v in {"results": frame, "config": config}.items() if k in impl.argnames})
        except Exception as exc:  # an exporter's failure must not lose or hide the results already written
            logger.warning("plugin %r: robench3d_run_finished raised %r; the results in %s are complete",
                           impl.plugin_name, exc, config.output_dir)


def _flag(base: cells.CellBase, registries: Registries, config: RunConfig, rows: list[dict[str, Any]],
          say: Callable[[str], None]) -> None:
    """Gradient-masking flags for one defended model (adaptive rows), rewritten into the store."""
    sanity = None
    ok = [r for r in rows if r.get("status") == "ok"]
    gradient = [r for r in ok if r["setting"] == Setting.ADAPTIVE.value and not r.get("is_control")]
    if gradient and "pgd_linf" in registries.attacks:
        probe = make_attack(registries, "pgd_linf", "standard", SANITY_PARAMS, config.seed)
        try:
            sanity = cells.sanity_accuracy(base, probe)
            say(f"sanity check on {base.defense.label}: PGD at linf eps 1.0 leaves {100 * sanity:.1f}% accuracy")
        except Exception as exc:  # the flag is advisory: a failing probe is reported, the rows stay
            say(f"sanity check on {base.defense.label} failed: {exc!r}")
    # Only rows whose flag changed are rewritten, all in one write.
    base.store.put_many(flag_unreliable(rows, sanity))
