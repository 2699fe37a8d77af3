"""Typed component parameters: one specification shared by attacks, defenses, backbones and training recipes.

A component's parameters are its defaults (an attack's preset, a defense's variant, a backbone configuration, a
:class:`~robench3d.backbones.base.TrainRecipe`) plus optional :class:`Param` declarations that add what a default
value cannot say: a range, a set of choices, whether ``none`` is allowed. :func:`resolve` checks every override
against that specification before any work starts, so ``--opt attack.pgd_linf.eps=abc``, ``eps=-1``,
``epochs=2.5`` or ``--opt defense.X=image`` against a tuple default fail in seconds with a message that names the
component, the value and what is valid, instead of a traceback or a silent wrong value after training.

Values arrive either from the command line (text, possibly already coerced to a number or bool by
:func:`robench3d.config.parse_opts`) or from Python (typed values). Parsing is strict: ``"1_0"`` is not an
integer, ``2.5`` is not an integer, ``"0.1O"`` is not a number, and a tuple option parses a comma list
(``a,b`` -> ``("a", "b")``; a single ``image`` -> ``("image",)``).
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

from robench3d.errors import ConfigError

__all__ = ["Param", "dataclass_specs", "infer", "resolve", "signature_defaults", "spec_for"]

_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")
_TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string", tuple: "a comma list"}
_PLURAL = {int: "integers", float: "numbers", bool: "true/false values", str: "words"}
_EXAMPLES = {int: "5", float: "0.05", bool: "true", str: "a word", tuple: "a,b"}


@dataclass(frozen=True)
class Param:
    """The declaration of one parameter.

    Attributes:
        type: ``int``, ``float``, ``bool``, ``str`` or ``tuple``; ``None`` means "infer from the default".
        minimum, maximum: inclusive bounds for numbers (``exclusive_minimum`` makes the lower one strict).
        choices: the allowed values (strings or numbers).
        item: the element type of a ``tuple`` parameter (default ``str``).
        nullable: ``none`` / ``None`` is a valid value.
        help: one line for listings and docs.
    """

    type: type | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    choices: tuple[Any, ...] | None = None
    item: type | None = None
    nullable: bool = False
    help: str = ""

    def merged(self, other: Param) -> Param:
        """``other``'s declared fields over this one's (a declaration refines an inferred type)."""
        return Param(type=other.type or self.type,
                     minimum=other.minimum if other.minimum is not None else self.minimum,
                     maximum=other.maximum if other.maximum is not None else self.maximum,
                     exclusive_minimum=other.exclusive_minimum or self.exclusive_minimum,
                     choices=other.choices if other.choices is not None else self.choices,
                     item=other.item or self.item, nullable=other.nullable or self.nullable,
                     help=other.help or self.help)

    def describe(self) -> str:
        """What a valid value is, in words (used in error messages)."""
        kind = self.type or str
        text = _TYPE_WORDS.get(kind, kind.__name__)
        if kind is tuple:
            text += " of " + _PLURAL.get(self.item or str, "values")
        if self.choices is not None:
            text = "one of " + ", ".join(map(str, self.choices))
        bounds = []
        if self.minimum is not None:
            bounds.append(f"{'>' if self.exclusive_minimum else '>='} {self.minimum:g}")
        if self.maximum is not None:
            bounds.append(f"<= {self.maximum:g}")
        if bounds:
            text += " " + " and ".join(bounds)
        return text + (" (or none)" if self.nullable else "")

    def parse(self, value: Any, *, where: str) -> Any:
        """Check and convert ``value``; raise :class:`ConfigError` naming ``where`` (e.g. ``attack 'fgsm' eps``)."""
        if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null")):
            if self.nullable:
                return None
            raise ConfigError(f"{where}: none is not allowed; give {self.describe()}")
        kind = self.type or type(value)
        if kind is tuple:
            out = tuple(_scalar(v, self.item or str, where=where, spec=self) for v in _items(value))
            if not out:
                raise ConfigError(f"{where}: empty list; give {self.describe()}, e.g. {_EXAMPLES[tuple]}")
            for v in out:
                self._check_choice(v, where)
            return out
        parsed = _scalar(value, kind, where=where, spec=self)
        self._check_choice(parsed, where)
        if isinstance(parsed, (int, float)) and not isinstance(parsed, bool):
            self._check_range(parsed, where, raw=value)
        return parsed

    def _check_choice(self, value: Any, where: str) -> None:
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"{where}: {value!r} is not valid; choose one of {', '.join(map(str, self.choices))}")

    def _check_range(self, value: float, where: str, raw: Any) -> None:
        low_bad = self.minimum is not None and (value <= self.minimum if self.exclusive_minimum
                                                else value < self.minimum)
        high_bad = self.maximum is not None and value > self.maximum
        if low_bad or high_bad:
            shown = raw if isinstance(raw, str) else repr(raw)
            raise ConfigError(f"{where}: {shown} is out of range; give {self.describe()}")


def _items(value: Any) -> list[Any]:
    if isinstance(value, str):
        return [p.strip() for p in value.split(",") if p.strip()]
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _scalar(value: Any, kind: type, *, where: str, spec: Param) -> Any:
    """One value of type ``kind`` from text or a Python value, strictly."""
    wanted = f"give {spec.describe()}, e.g. {_EXAMPLES.get(kind, '...')}"
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ConfigError(f"{where}: {value!r} is not true or false; {wanted}")
    if kind is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: {value!r} is not an integer; {wanted}")
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            if value.is_integer():
                return int(value)
            raise ConfigError(f"{where}: {value!r} is not an integer; {wanted}")
        text = str(value).strip()
        if _INT.fullmatch(text):
            return int(text)
        raise ConfigError(f"{where}: {value!r} is not an integer; {wanted}")
    if kind is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: {value!r} is not a number; {wanted}")
        if isinstance(value, (int, float)):
            out = float(value)
        else:
            text = str(value).strip()
            if not _FLOAT.fullmatch(text):
                raise ConfigError(f"{where}: {value!r} is not a number; {wanted}")
            out = float(text)
        if not math.isfinite(out):
            raise ConfigError(f"{where}: {value!r} is not a finite number; {wanted}")
        return out
    if kind is str:
        if isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: {value!r} is a list but one value is expected; {wanted}")
        return str(value)
    if isinstance(value, kind):
        return value
    raise ConfigError(f"{where}: {value!r} is not {_TYPE_WORDS.get(kind, kind.__name__)}; {wanted}")


def infer(default: Any) -> Param:
    """The parameter a default value implies (``None`` defaults accept anything and ``none``)."""
    if isinstance(default, bool):
        return Param(bool)
    if isinstance(default, int):
        return Param(int)
    if isinstance(default, float):
        return Param(float)
    if isinstance(default, str):
        return Param(str)
    if isinstance(default, (tuple, list)):
        first = default[0] if default else ""
        return Param(tuple, item=infer(first).type or str)
    return Param(None, nullable=True)


def spec_for(defaults: Mapping[str, Any], declared: Mapping[str, Param] | None = None) -> dict[str, Param]:
    """Specifications of every default, refined by the declared ones (declarations for unknown keys are ignored)."""
    declared = declared or {}
    out = {}
    for key, default in defaults.items():
        base = infer(default)
        out[key] = base.merged(declared[key]) if key in declared else base
    return out


def signature_defaults(fn: Callable[..., Any]) -> dict[str, Any]:
    """A factory's keyword parameters with their defaults (``self`` and ``num_classes`` excluded)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return {}
    return {name: p.default for name, p in sig.parameters.items()
            if name not in ("self", "num_classes") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            and p.default is not inspect.Parameter.empty}


def dataclass_specs(obj: Any) -> dict[str, Param]:
    """Specifications of a dataclass instance's fields, from their values and annotations (``float | None``)."""
    assert is_dataclass(obj)
    out = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        ann = str(f.type)
        spec = infer(value)
        if value is None:
            kind = next((t for name, t in (("int", int), ("float", float), ("bool", bool), ("str", str))
                         if re.search(rf"\b{name}\b", ann)), None)
            spec = Param(kind, nullable=True)
        elif "None" in ann:
            spec = spec.merged(Param(nullable=True))
        out[f.name] = spec
    return out


def resolve(defaults: Mapping[str, Any], overrides: Mapping[str, Any] | None, *, owner: str,
            declared: Mapping[str, Param] | None = None, check_defaults: bool = False) -> dict[str, Any]:
    """Defaults with overrides applied, every override parsed and checked against its specification.

    Args:
        owner: names the component in messages, e.g. ``attack 'pgd_linf'``.
        declared: ranges/choices beyond what the defaults imply.
        check_defaults: also check the defaults against the declarations (contract tests use this).

    Raises:
        ConfigError: an unknown key (listing the valid ones) or an invalid value.
    """
    specs = spec_for(defaults, declared)
    params = dict(defaults)
    for key, value in (overrides or {}).items():
        if key not in specs:
            raise ConfigError(f"{owner} has no parameter {key!r}; valid: {', '.join(sorted(specs)) or 'none'}")
        params[key] = specs[key].parse(value, where=f"{owner} parameter {key!r}")
    if check_defaults:
        for key, value in defaults.items():
            if value is not None:
                specs[key].parse(value, where=f"{owner} default {key!r}")
    return params
