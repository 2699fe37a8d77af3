"""Run configuration: a frozen :class:`RunConfig`, component references and ``--opt`` parsing."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robench3d.errors import ConfigError
from robench3d.norms import Setting, check_preset

__all__ = ["ComponentRef", "RunConfig", "check_device", "parse_opts", "parse_ref"]

#: Test clouds evaluated by default on a CPU (the whole suite at the quick preset then takes minutes, not hours).
CPU_DEFAULT_N = 30

OPT_SCOPES = ("dataset", "backbone", "train", "defense", "attack", "surrogate", "teacher")


@dataclass(frozen=True)
class ComponentRef:
    """``name[.tag][:variant]``: e.g. ``pointnet:paper``, ``uni3d_ti.modelnet40``, ``sor:mrpd``, ``shapes:tiny``."""

    name: str
    tag: str | None = None
    variant: str | None = None

    def __str__(self) -> str:
        return self.name + (f".{self.tag}" if self.tag else "") + (f":{self.variant}" if self.variant else "")


def parse_ref(text: str, *, tags: bool = False) -> ComponentRef:
    """Parse a component reference; ``.tag`` is only split off when ``tags`` (backbones)."""
    text = text.strip()
    if not text:
        raise ConfigError("empty component name")
    name, _, variant = text.partition(":")
    tag = None
    if tags and "." in name:
        name, tag = name.split(".", 1)
    return ComponentRef(name, tag or None, variant or None)


_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _coerce(value: str) -> Any:
    """A first, loss-free guess at a value's type; the component's typed parameters decide (robench3d.params).

    Only text that is exactly an integer, a decimal number, true/false or none is converted (``1_0`` and ``0.1O``
    stay text, so the parameter check can name them); comma lists stay text for list-typed parameters to split.
    """
    text = value.strip()
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return value


def parse_opts(items: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Parse ``--opt scope.key=value`` items into ``{scope: {key: value}}`` (values: bool/int/float/None/str)."""
    out: dict[str, dict[str, Any]] = {s: {} for s in OPT_SCOPES}
    for item in items:
        key, eq, value = item.partition("=")
        scope, dot, name = key.partition(".")
        if not eq or not dot or not name:
            raise ConfigError(f"invalid --opt {item!r}; expected SCOPE.KEY=VALUE, e.g. attack.steps=20")
        if scope not in out:
            raise ConfigError(f"invalid --opt scope {scope!r} in {item!r}; valid scopes: {', '.join(OPT_SCOPES)}")
        out[scope][name] = _coerce(value)
    return out


def check_device(device: str) -> str:
    """Validate a ``--device`` value against this machine (a missing GPU is a clear error, not a torch traceback)."""
    if device == "cpu":
        return device
    if not re.fullmatch(r"(cuda(:\d+)?|mps)", device):
        raise ConfigError(f"unknown device {device!r}; use cpu, cuda or cuda:N")
    import torch

    if device == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ConfigError("--device mps: no Apple GPU is available on this machine; use --device cpu")
        return device
    if not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: no CUDA GPU is available on this machine (torch "
                          f"{torch.__version__}); use --device cpu")
    index = int(device.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise ConfigError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                          f"(cuda:0..cuda:{torch.cuda.device_count() - 1})")
    return device


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run of the evaluation matrix (and is recorded with its results).

    Component fields accept ``name[:variant]`` (backbones ``arch[.tag][:config]``); ``attacks`` accepts ``all``,
    suites (``paper8``), globs and comma lists.
    """

    cache_dir: Path
    output_dir: Path = Path("robench3d-results")
    dataset: str = "shapes"
    data_root: Path | None = None
    data_format: str | None = None
    num_points: int | None = None
    train_dataset: str | None = None
    train_data_root: Path | None = None
    backbones: tuple[str, ...] = ("uni3d",)
    defenses: tuple[str, ...] = ("none",)
    attacks: str = "all"
    exclude: str | None = None
    settings: tuple[Setting, ...] = (Setting.OBLIVIOUS, Setting.ADAPTIVE)
    preset: str = "standard"
    surrogate: str | None = None
    n_examples: int | None = None
    batch_size: int = 32
    eot_samples: int = 10
    seed: int = 0
    device: str = "cpu"
    retrain: bool = False
    force: bool = False
    #: report the undefended base model (``none``) beside the requested defenses of every backbone.
    reference: bool = True
    opts: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: the swept values of this run, ``{"attack.pgd_linf.eps": 0.02}`` (already merged into ``opts``; rows record
    #: them in their ``sweep`` column and leave them out of ``overrides``: :mod:`robench3d.evaluation.sweeps`).
    sweep: Mapping[str, Any] = field(default_factory=dict)

    def validate(self) -> RunConfig:
        """Check values that do not need the registries; return self."""
        check_preset(self.preset)
        if self.n_examples is not None and self.n_examples < 1:
            raise ConfigError(f"--n must be >= 1, got {self.n_examples}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.eot_samples < 1:
            raise ConfigError(f"--eot-samples must be >= 1, got {self.eot_samples}")
        if not self.backbones or not self.defenses or not self.settings:
            raise ConfigError("a run needs at least one backbone, one defense and one setting")
        if self.num_points is not None and self.num_points < 1:
            raise ConfigError(f"--num-points must be >= 1, got {self.num_points}; omit it to use the dataset's N")
        check_device(self.device)
        return self

    def opt(self, scope: str) -> dict[str, Any]:
        """The ``--opt`` values of one scope."""
        return dict(self.opts.get(scope, {}))

    def swept(self, scope: str, name: str | None = None) -> set[str]:
        """The parameter names of component ``name`` in ``scope`` that this run sweeps.

        ``attack.eps`` reaches every attack, ``attack.pgd_linf.eps`` only ``pgd_linf``; backbone and train keys
        have no component name.
        """
        out = set()
        for key in self.sweep:
            s, _, rest = key.partition(".")
            target, _, param = rest.rpartition(".")
            if s == scope and (not target or target == name):
                out.add(param)
        return out
