"""The evaluation matrix: dataset x backbone x defense x attack x threat setting -> result rows.

For every defense the loop builds the defended model once; for every (attack, setting) cell it builds the victim
of that setting (:mod:`robench3d.evaluation.victims`), generates adversarial clouds (cached: an oblivious attack
runs once per dataset/backbone/attack/preset/seed and is replayed on every defense), classifies them with the
defended model and writes a row plus per-example outcomes. Cells already present in the results folder with the
same configuration are reused, so an interrupted run resumes where it stopped and loses nothing.

Every name and option is resolved, and the output folder checked, before anything is trained. A component that
raises while the matrix runs (a backbone or defense that fails to build, an attack that fails to prepare or exceeds
its budget) fails its own cells only: they are written as ``error`` rows naming the component and its plugin, the
remaining cells run, and a re-run retries them. ``robench3d_run_finished`` fires at the end, also when the matrix is
run from Python with registries from :func:`robench3d.plugins.build_registries`.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import tempfile
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from robench3d.attacks.base import Attack, AttackContext
from robench3d.config import RunConfig, parse_ref
from robench3d.datasets.base import PreparedDataset
from robench3d.defenses.base import Defense, DefenseContext
from robench3d.errors import ConfigError, Robench3DError
from robench3d.evaluation import cells
from robench3d.evaluation.components import (
    WeightsResolver,
    backbone_label,
    build_backbone,
    check_backbone,
    make_attack,
    prepare_dataset,
    select_attacks,
    training_data,
)
from robench3d.evaluation.masking import SANITY_PARAMS, flag_unreliable
from robench3d.evaluation.results import ResultsStore
from robench3d.norms import Setting, Split
from robench3d.registry import Registries, article
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


def scoped_overrides(opts: Mapping[str, Any], components: Mapping[str, Collection[str]],
                     scope: str) -> dict[str, dict[str, Any]]:
    """Split ``--opt SCOPE.KEY=V`` / ``SCOPE.NAME.KEY=V`` values among the named components of a run.

    ``KEY`` applies to every component whose parameters include KEY; ``NAME.KEY`` to component NAME only.
    ``components`` maps each name to its parameter names. A value that applies to no component is an error (a
    typo must not silently leave the default in place).
    """
    out: dict[str, dict[str, Any]] = {name: {} for name in components}
    for key, value in opts.items():
        target, dot, param = key.rpartition(".")
        if dot:
            if target not in components:
                raise ConfigError(f"--opt {scope}.{key}: {target!r} is not {article(scope)} {scope} of this run "
                                  f"(this run has: {', '.join(components) or 'none'})")
            if param not in components[target]:
                raise ConfigError(f"--opt {scope}.{key}: {scope} {target!r} has no parameter {param!r}; valid: "
                                  f"{', '.join(sorted(components[target])) or 'none'}")
            out[target][param] = value
            continue
        hits = [name for name, params in components.items() if key in params]
        if not hits:
            raise ConfigError(f"--opt {scope}.{key}: no {scope} of this run has a parameter {key!r} "
                              f"({scope}s: {', '.join(components) or 'none'}); use {scope}.NAME.KEY to target one")
        for name in hits:
            out[name][key] = value
    return out


def _preset_params(attack_cls: type[Attack], preset: str) -> Collection[str]:
    return attack_cls.presets.get(preset if preset != "custom" else "standard", {}).keys()


def check_writable(folder: Path) -> None:
    """Fail early (before any training) when the results folder cannot be created or written."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"--output {folder}: cannot write results there ({exc.strerror or exc}); choose a "
                          "folder you can write to, e.g. --output robench3d-results") from None


def _owner_of(registries: Registries) -> Callable[[str, str], str]:
    def owner(kind: str, name: str) -> str:
        try:
            return registries[kind].owner(name)
        except (KeyError, AttributeError):
            return ""
    return owner


def run_matrix(
    config: RunConfig,
    registries: Registries,
    *,
    resolve_weights: WeightsResolver | None = None,
    progress: Callable[[str], None] | None = None,
) -> MatrixResult:
    """Run every cell of the configured matrix, writing rows into ``config.output_dir`` as they finish."""
    config.validate()
    say = progress or (lambda msg: logger.info("%s", msg))
    store = ResultsStore(config.output_dir)
    result = MatrixResult(store=store)
    data = prepare_dataset(registries, config.dataset, cache_dir=config.cache_dir, root=config.data_root,
                           fmt=config.data_format, num_points=config.num_points, seed=config.seed,
                           extra=config.opt("dataset"))
    test = data.split(Split.TEST)
    n = len(test) if config.n_examples is None else min(config.n_examples, len(test))
    train_data = training_data(registries, config, data)
    attack_names = select_attacks(registries, config.attacks, config.exclude)
    defense_refs = [parse_ref(d) for d in config.defenses]
    # Resolve every name and --opt value before any training starts, so a typo or a bad value fails in seconds.
    attack_classes = {name: registries.attacks.get(name) for name in attack_names}
    attack_opts = scoped_overrides(config.opt("attack"), {name: _preset_params(cls, config.preset)
                                                          for name, cls in attack_classes.items()}, "attack")
    defense_classes = {ref.name: registries.defenses.get(ref.name) for ref in defense_refs}
    defense_opts = scoped_overrides(config.opt("defense"), {
        name: {key for params in cls.variants.values() for key in params}
        for name, cls in defense_classes.items()}, "defense")
    attacks = {name: cls(config.preset, attack_opts[name], seed=config.seed) for name, cls in attack_classes.items()}
    defenses: list[Defense] = [defense_classes[r.name](r.variant, defense_opts[r.name]) for r in defense_refs]
    for bref in config.backbones:
        check_backbone(registries, bref, train_data, config=config, resolver=resolve_weights)
        sur = _surrogate_name(config, bref)
        if Setting.TRANSFER in config.settings and parse_ref(sur, tags=True).name in registries.backbones:
            check_backbone(registries, sur, train_data, config=config, resolver=resolve_weights, scope="surrogate")
    for d in defenses:
        if d.trains and train_data is None:
            raise ConfigError(f"defense {d.label!r} trains, but dataset {data.name!r} has no train split; pass "
                              "--train-dataset/--train-data-root with the data it should train on")
    labels = {bref: backbone_label(registries, bref) for bref in config.backbones}
    owner = _owner_of(registries)
    check_writable(config.output_dir)
    say(f"dataset {data.name} ({data.version}): {n} test clouds, {data.num_classes} classes; "
        f"attacks: {', '.join(attack_names)}; settings: {', '.join(map(str, config.settings))}")

    failed_attacks: dict[str, str] = {}
    actx = AttackContext(dataset=train_data or data, cache_dir=config.cache_dir, seed=config.seed,
                         device=config.device, progress=say)
    for name, attack in attacks.items():
        try:
            attack.prepare(actx)
        except Exception as exc:  # third-party preparation code may fail in any way: its cells fail, not the run
            failed_attacks[name] = cells.describe_failure(exc, f"attack {name!r} (plugin {owner('attacks', name)})",
                                                          "preparing")
            say(f"error: {failed_attacks[name]}")

    def fail_all(plan: cells.CellPlan, message: str) -> None:
        for attack in attacks.values():
            for setting in config.settings:
                row = cells.error_row(plan, attack, setting, message)
                store.put(row)
                result.rows.append(row)

    def plan_for(defense: Defense, backbone: str, surrogate: str, randomized: bool) -> cells.CellPlan:
        return cells.CellPlan(config=config, data=data, test_n=n, backbone=backbone, defense=defense,
                              surrogate=surrogate, version=_version(), owner=owner, randomized=randomized)

    for bref in config.backbones:
        sur_label = _surrogate_label(registries, config, bref)

        try:
            trained = build_backbone(registries, bref, config=config, train_data=train_data,
                                     num_classes=data.num_classes, resolver=resolve_weights, progress=say)
        except Exception as exc:  # a failing backbone fails its own cells only
            arch = parse_ref(bref, tags=True).name
            message = cells.describe_failure(exc, f"backbone {labels[bref]!r} (plugin {owner('backbones', arch)})",
                                             "building it")
            say(f"error: {message}")
            for defense in defenses:
                fail_all(plan_for(defense, labels[bref], sur_label, defense.randomized), message)
            continue
        surrogate, surrogate_error = None, ""
        try:
            surrogate = _surrogate(registries, config, bref, train_data, data, resolve_weights, say)
        except Exception as exc:  # the transfer cells fail; the other settings still run
            surrogate_error = cells.describe_failure(exc, f"transfer surrogate {sur_label!r}", "building it")
            say(f"error: {surrogate_error}")
        for defense in defenses:
            ctx = DefenseContext(
                dataset=train_data or data, backbone=trained.model, backbone_name=trained.name,
                attack_factory=lambda name, preset="standard", overrides=None: make_attack(
                    registries, name, preset, overrides, config.seed),
                cache_dir=config.cache_dir, seed=config.seed, device=config.device, registries=registries,
                progress=say, backbone_provenance=trained.provenance)
            who = f"defense {defense.label!r} (plugin {owner('defenses', defense.name)})"
            say(f"building defense {defense.label} on {trained.name}")
            try:
                defended = defense.build(ctx)
                plan = plan_for(defense, trained.name, sur_label, defended.randomized)
                base = cells.CellBase(plan=plan, trained=trained, defended=defended, surrogate=surrogate,
                                      store=store, progress=say, surrogate_error=surrogate_error)
                base.measure()
            except Exception as exc:  # a defense that cannot be built or run on clean clouds fails its cells
                message = cells.describe_failure(exc, who, f"building it on {trained.name}")
                say(f"error: {message}")
                fail_all(plan_for(defense, trained.name, sur_label, defense.randomized), message)
                continue
            defense_rows = []
            for aname, attack in attacks.items():
                for setting in config.settings:
                    if aname in failed_attacks:
                        row = cells.error_row(base.plan, attack, setting, failed_attacks[aname])
                        store.put(row)
                    else:
                        row = cells.run_cell(base, attack, setting)
                    result.rows.append(row)
                    defense_rows.append(row)
            _flag(base, registries, config, defense_rows, say)
    _run_finished(registries, result, config)
    return result


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
    for row in flag_unreliable(rows, sanity):
        base.store.put(row)


def _surrogate_label(registries: Registries, config: RunConfig, victim_ref: str) -> str:
    """The row label of the transfer surrogate of a victim ("" when transfer is not run)."""
    if Setting.TRANSFER not in config.settings:
        return ""
    name = _surrogate_name(config, victim_ref)
    try:
        return backbone_label(registries, name)
    except Robench3DError:
        return name


def _surrogate_name(config: RunConfig, victim_ref: str) -> str:
    victim_arch = parse_ref(victim_ref, tags=True).name
    return config.surrogate or ("dgcnn" if victim_arch.startswith("pointnet2") else "pointnet2_ssg")


def _surrogate(registries: Registries, config: RunConfig, victim_ref: str, train_data: PreparedDataset | None,
               data: PreparedDataset, resolver: WeightsResolver | None,
               say: Callable[[str], None]) -> TrainedBackbone | str | None:
    """The transfer surrogate, or a string saying why there is none (transfer cells are then skipped)."""
    if Setting.TRANSFER not in config.settings:
        return None
    name = _surrogate_name(config, victim_ref)
    if parse_ref(name, tags=True).name not in registries.backbones:
        return f"surrogate backbone {name!r} is not registered (choose one with --surrogate)"
    say(f"preparing transfer surrogate {name}")
    return build_backbone(registries, name, config=config, train_data=train_data, num_classes=data.num_classes,
                          resolver=resolver, scope="surrogate", progress=say)
