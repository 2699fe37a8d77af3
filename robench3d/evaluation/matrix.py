"""The evaluation matrix: dataset x backbone x defense x attack x threat setting -> result rows.

For every defense the loop builds the defended model once; for every (attack, setting) cell it builds the victim
of that setting (:mod:`robench3d.evaluation.victims`), generates adversarial clouds (cached: an oblivious attack
runs once per dataset/backbone/attack/preset/seed and is replayed on every defense), classifies them with the
defended model and writes a row plus per-example outcomes. Cells already present in the results folder with the
same configuration are reused, so an interrupted run resumes where it stopped and loses nothing.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from robench3d.attacks.base import Attack, AttackContext
from robench3d.config import RunConfig, parse_ref
from robench3d.datasets.base import PreparedDataset
from robench3d.defenses.base import Defense, DefenseContext
from robench3d.errors import ConfigError
from robench3d.evaluation import cells
from robench3d.evaluation.components import (
    WeightsResolver,
    build_backbone,
    make_attack,
    prepare_dataset,
    select_attacks,
    training_data,
)
from robench3d.evaluation.masking import SANITY_PARAMS, flag_unreliable
from robench3d.evaluation.results import ResultsStore
from robench3d.norms import Setting, Split
from robench3d.registry import Registries
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
    """Rows written by a run (including skipped cells) and the store they live in."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    store: ResultsStore | None = None


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
                raise ConfigError(f"--opt {scope}.{key}: {target!r} is not a {scope} of this run "
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


def run_matrix(
    config: RunConfig,
    registries: Registries,
    *,
    resolve_weights: WeightsResolver | None = None,
    progress: Callable[[str], None] | None = None,
    plugin_versions: Mapping[str, str] | None = None,
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
    # Resolve every name and --opt value before any training starts, so a typo fails in seconds.
    attack_classes = {name: registries.attacks.get(name) for name in attack_names}
    attack_opts = scoped_overrides(config.opt("attack"), {name: _preset_params(cls, config.preset)
                                                          for name, cls in attack_classes.items()}, "attack")
    defense_classes = {ref.name: registries.defenses.get(ref.name) for ref in defense_refs}
    defense_opts = scoped_overrides(config.opt("defense"), {
        name: {key for params in cls.variants.values() for key in params}
        for name, cls in defense_classes.items()}, "defense")
    versions = dict(plugin_versions or {})
    say(f"dataset {data.name} ({data.version}): {n} test clouds, {data.num_classes} classes; "
        f"attacks: {', '.join(attack_names)}; settings: {', '.join(map(str, config.settings))}")

    attacks: dict[str, Attack] = {}
    actx = AttackContext(dataset=train_data or data, cache_dir=config.cache_dir, seed=config.seed,
                         device=config.device, progress=say)
    for name, cls in attack_classes.items():
        attacks[name] = cls(config.preset, attack_opts[name], seed=config.seed)
        attacks[name].prepare(actx)

    for bref in config.backbones:
        trained = build_backbone(registries, bref, config=config, train_data=train_data,
                                 num_classes=data.num_classes, resolver=resolve_weights, progress=say)
        surrogate = _surrogate(registries, config, bref, train_data, data, resolve_weights, say)
        for dref in defense_refs:
            defense: Defense = defense_classes[dref.name](dref.variant, defense_opts[dref.name])
            ctx = DefenseContext(
                dataset=train_data or data, backbone=trained.model, backbone_name=trained.name,
                attack_factory=lambda name, preset="standard", overrides=None: make_attack(
                    registries, name, preset, overrides, config.seed),
                cache_dir=config.cache_dir, seed=config.seed, device=config.device, registries=registries,
                progress=say, backbone_provenance=trained.provenance)
            say(f"building defense {defense.label} on {trained.name}")
            defended = defense.build(ctx)
            base = cells.CellBase(
                config=config, data=data, test_n=n, trained=trained, defense=defense, defended=defended,
                surrogate=surrogate, store=store, version=_version(),
                plugins=_plugins(registries, versions, data.name, parse_ref(bref, tags=True).name, dref.name),
                progress=say,
            )
            base.measure()
            defense_rows = []
            for aname in attack_names:
                for setting in config.settings:
                    row = cells.run_cell(base, attacks[aname], setting)
                    result.rows.append(row)
                    defense_rows.append(row)
            _flag(base, registries, config, defense_rows, attacks, say)
    return result


def _flag(base: cells.CellBase, registries: Registries, config: RunConfig, rows: list[dict[str, Any]],
          attacks: dict[str, Attack], say: Callable[[str], None]) -> None:
    """Gradient-masking flags for one defended model (adaptive rows), rewritten into the store."""
    sanity = None
    gradient_attacks = [a for a in attacks.values() if Setting.ADAPTIVE in a.supported_settings and not a.is_control]
    if Setting.ADAPTIVE in config.settings and gradient_attacks and "pgd_linf" in registries.attacks:
        probe = make_attack(registries, "pgd_linf", "standard", SANITY_PARAMS, config.seed)
        sanity = cells.sanity_accuracy(base, probe)
        say(f"sanity check on {base.defense.label}: PGD at linf eps 1.0 leaves {100 * sanity:.1f}% accuracy")
    for row in flag_unreliable(rows, sanity):
        base.store.put(row)


def _surrogate(registries: Registries, config: RunConfig, victim_ref: str, train_data: PreparedDataset | None,
               data: PreparedDataset, resolver: WeightsResolver | None,
               say: Callable[[str], None]) -> TrainedBackbone | str | None:
    """The transfer surrogate, or a string saying why there is none (transfer cells are then skipped)."""
    if Setting.TRANSFER not in config.settings:
        return None
    victim_arch = parse_ref(victim_ref, tags=True).name
    name = config.surrogate or ("dgcnn" if victim_arch.startswith("pointnet2") else "pointnet2_ssg")
    if parse_ref(name, tags=True).name not in registries.backbones:
        return f"surrogate backbone {name!r} is not registered (choose one with --surrogate)"
    say(f"preparing transfer surrogate {name}")
    return build_backbone(registries, name, config=config, train_data=train_data, num_classes=data.num_classes,
                          resolver=resolver, scope="surrogate", progress=say)


def _plugins(registries: Registries, versions: Mapping[str, str], dataset: str, backbone: str, defense: str) -> str:
    owners = {registries.datasets.owner(dataset), registries.backbones.owner(backbone),
              registries.defenses.owner(defense)}
    owners |= {registries.attacks.owner(a) for a in registries.attacks.names()}
    return "; ".join(sorted(versions.get(o, o) for o in owners))
