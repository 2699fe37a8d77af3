"""Everything a run checks before anything is trained: names, ``--opt`` values, weights files, train splits, output.

:func:`plan_run` prepares the dataset and instantiates every attack and defense of the run (which checks their typed
parameters), checks every backbone, surrogate and teacher option, and that the output folder is writable. A typo or a
bad value therefore fails in seconds with exit code 2, never after minutes of training and never as error rows.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robench3d.attacks.base import Attack
from robench3d.config import RunConfig, parse_ref
from robench3d.datasets.base import PreparedDataset
from robench3d.defenses.base import Defense
from robench3d.errors import ConfigError, Robench3DError
from robench3d.evaluation.components import (
    WeightsResolver,
    backbone_label,
    check_backbone,
    prepare_dataset,
    select_attacks,
    training_data,
)
from robench3d.norms import Setting, Split
from robench3d.registry import Registries, article

__all__ = ["UNDEFENDED", "RunPlan", "check_writable", "plan_run", "scoped_overrides", "surrogate_name"]

#: The registered defense that is the undefended base model (the reference every run reports).
UNDEFENDED = "none"


def scoped_overrides(opts: Mapping[str, Any], components: Mapping[str, Collection[str]],
                     scope: str, *, where: str = "of this run") -> dict[str, dict[str, Any]]:
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
                raise ConfigError(f"--opt {scope}.{key}: {target!r} is not {article(scope)} {scope} {where} "
                                  f"({where.removeprefix('of ')} has: {', '.join(components) or 'none'})")
            if param not in components[target]:
                raise ConfigError(f"--opt {scope}.{key}: {scope} {target!r} has no parameter {param!r}; valid: "
                                  f"{', '.join(sorted(components[target])) or 'none'}")
            out[target][param] = value
            continue
        hits = [name for name, params in components.items() if key in params]
        if not hits:
            raise ConfigError(f"--opt {scope}.{key}: no {scope} {where} has a parameter {key!r} "
                              f"({scope}s: {', '.join(components) or 'none'}); use {scope}.NAME.KEY to target one")
        for name in hits:
            out[name][key] = value
    return out


def _preset_params(attack_cls: type[Attack], preset: str) -> Collection[str]:
    return attack_cls.presets.get(preset if preset != "custom" else "standard", {}).keys()


def _variant_params(cls: Any) -> set[str]:
    return {key for params in cls.variants.values() for key in params}


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


def surrogate_name(config: RunConfig, victim_ref: str) -> str:
    """The transfer surrogate of a victim: ``--surrogate``, else PointNet++ SSG (DGCNN for a PointNet++ victim)."""
    victim_arch = parse_ref(victim_ref, tags=True).name
    return config.surrogate or ("dgcnn" if victim_arch.startswith("pointnet2") else "pointnet2_ssg")


def surrogate_label(registries: Registries, config: RunConfig, victim_ref: str) -> str:
    """The row label of the transfer surrogate of a victim ("" when transfer is not run)."""
    if Setting.TRANSFER not in config.settings:
        return ""
    name = surrogate_name(config, victim_ref)
    try:
        return backbone_label(registries, name)
    except Robench3DError:
        return name


@dataclass
class RunPlan:
    """The resolved components of a run, ready to execute.

    Attributes:
        data: the evaluated dataset; ``train_data``: what models are trained on (``None`` for test-only data).
        n: test clouds evaluated; ``attacks``/``defenses``: instances, in the run's order.
        labels: row label of every backbone reference; ``surrogates``: the row label of each one's surrogate.
        teacher_opts: ``--opt teacher.*`` values split by teacher name (every registered teacher).
    """

    data: PreparedDataset
    train_data: PreparedDataset | None
    n: int
    attacks: dict[str, Attack]
    defenses: list[Defense]
    labels: dict[str, str]
    surrogates: dict[str, str]
    teacher_opts: dict[str, dict[str, Any]]


def plan_run(config: RunConfig, registries: Registries, resolver: WeightsResolver | None) -> RunPlan:
    """Resolve and check everything of a run (see the module docstring); raise :class:`ConfigError` on a problem."""
    data = prepare_dataset(registries, config.dataset, cache_dir=config.cache_dir, root=config.data_root,
                           fmt=config.data_format, num_points=config.num_points, seed=config.seed,
                           extra=config.opt("dataset"))
    test = data.split(Split.TEST)
    n = len(test) if config.n_examples is None else min(config.n_examples, len(test))
    train_data = training_data(registries, config, data)
    attack_names = select_attacks(registries, config.attacks, config.exclude)
    defense_refs = [parse_ref(d) for d in config.defenses]
    if config.reference and UNDEFENDED in registries.defenses and not any(r.name == UNDEFENDED for r in defense_refs):
        # The undefended base model is always reported beside the defenses (its oblivious clouds are generated
        # anyway): a defense's numbers mean something only next to the model it defends.
        defense_refs.insert(0, parse_ref(UNDEFENDED))
    attack_classes = {name: registries.attacks.get(name) for name in attack_names}
    attack_opts = scoped_overrides(config.opt("attack"), {name: _preset_params(cls, config.preset)
                                                          for name, cls in attack_classes.items()}, "attack")
    defense_classes = {ref.name: registries.defenses.get(ref.name) for ref in defense_refs}
    defense_opts = scoped_overrides(config.opt("defense"), {name: _variant_params(cls)
                                                            for name, cls in defense_classes.items()}, "defense")
    teachers = registries["teachers"] if "teachers" in registries.kinds() else None
    teacher_opts = scoped_overrides(config.opt("teacher"), {
        name: _variant_params(teachers.get(name)) for name in (teachers.names() if teachers else [])},
        "teacher", where="registered")
    attacks = {name: cls(config.preset, attack_opts[name], seed=config.seed) for name, cls in attack_classes.items()}
    defenses: list[Defense] = [defense_classes[r.name](r.variant, defense_opts[r.name]) for r in defense_refs]
    for name, opts in teacher_opts.items():
        if opts:
            assert teachers is not None
            teachers.get(name)(None, opts)  # checks the values' types and ranges now
    for bref in config.backbones:
        check_backbone(registries, bref, train_data, config=config, resolver=resolver)
        sur = surrogate_name(config, bref)
        if Setting.TRANSFER in config.settings and parse_ref(sur, tags=True).name in registries.backbones:
            check_backbone(registries, sur, train_data, config=config, resolver=resolver, scope="surrogate")
    for d in defenses:
        if d.trains and train_data is None:
            raise ConfigError(f"defense {d.label!r} trains, but dataset {data.name!r} has no train split; pass "
                              "--train-dataset/--train-data-root with the data it should train on")
    check_writable(config.output_dir)
    return RunPlan(data=data, train_data=train_data, n=n, attacks=attacks, defenses=defenses,
                   labels={b: backbone_label(registries, b) for b in config.backbones},
                   surrogates={b: surrogate_label(registries, config, b) for b in config.backbones},
                   teacher_opts=teacher_opts)
