"""Cached trained artifacts of the baseline defenses: ``model.safetensors`` + ``model.json`` (provenance).

Layout: ``<cache>/defenses/<defense>/<key>/`` where ``key`` hashes the full configuration that determines the
weights (parameters, dataset name + version, seed, base backbone where it matters, code version). An interrupted
training resumes from ``checkpoint.pt`` in the same folder (the shared Trainer loads it with ``weights_only``).

The sidecar keeps ``train_seconds``, the wall time of the defense's own training as measured when it was trained
(:meth:`Artifact.save` requires it), so a run that loads the cached weights reports the same number
(:func:`train_seconds_of`) instead of zero or the few milliseconds the load took. A training resumed from a
checkpoint records the time of the run that finished it (its sidecar's ``resumed_from_epoch`` says so).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from robench3d import ConfigError, DefenseContext
from robench3d.cache import file_sha256, read_json, stable_hash, write_json

__all__ = ["CODE_VERSION", "Artifact", "progress_of", "train_seconds_of"]

logger = logging.getLogger(__name__)

#: Bump when a training loop here changes the weights it produces for an unchanged configuration.
CODE_VERSION = 1


def progress_of(ctx: DefenseContext, prefix: str) -> Callable[[str], None]:
    """A one-line progress callback: the run's (the CLI prints it), else the log."""
    say = ctx.progress or (lambda msg: logger.info("%s", msg))
    return lambda msg: say(f"{prefix}: {msg}")


def train_seconds_of(info: Mapping[str, Any]) -> float | None:
    """The training wall time a sidecar recorded (``None`` for one written without it)."""
    value = info.get("train_seconds")
    return None if value is None else float(value)


@dataclass
class Artifact:
    """Where one trained configuration lives, and how to load or store it."""

    directory: Path
    key: str
    key_source: dict[str, Any]

    @classmethod
    def for_config(cls, ctx: DefenseContext, defense: str, key_source: Mapping[str, Any]) -> Artifact:
        """The artifact of ``key_source`` plus the data, seed and code version, under ``ctx.cache_dir``."""
        data = ctx.dataset
        src = {**key_source, "defense": defense, "dataset": data.name, "dataset_version": data.version,
               "seed": ctx.seed, "code": CODE_VERSION}
        key = stable_hash(src)
        return cls(Path(ctx.cache_dir) / "defenses" / defense / key, key, src)

    @property
    def weights(self) -> Path:
        return self.directory / "model.safetensors"

    @property
    def sidecar(self) -> Path:
        return self.directory / "model.json"

    @property
    def checkpoint(self) -> Path:
        return self.directory / "checkpoint.pt"

    def load(self, module: nn.Module) -> dict[str, Any] | None:
        """Load cached weights into ``module`` (strictly) and return their provenance, or ``None`` if absent."""
        if not (self.weights.exists() and self.sidecar.exists()):
            return None
        from safetensors.torch import load_file

        try:
            module.load_state_dict(load_file(str(self.weights)), strict=True)
        except (RuntimeError, OSError, ValueError) as exc:
            raise ConfigError(f"cached weights {self.weights} do not fit this configuration ({exc}); "
                              f"delete {self.directory} to retrain") from exc
        info: dict[str, Any] = read_json(self.sidecar)
        return info

    def save(self, module: nn.Module, info: Mapping[str, Any], summary: str, *, train_seconds: float
             ) -> dict[str, Any]:
        """Store ``module``'s weights with ``info``; ``summary`` starts the one-line provenance string.

        ``train_seconds`` (the wall time of the training that produced the weights) goes into the sidecar, where
        cached loads read it back.
        """
        from safetensors.torch import save_file

        self.directory.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}, str(self.weights))
        digest = file_sha256(self.weights)
        out = {**info, "train_seconds": round(float(train_seconds), 2), "key": self.key_source,
               "cache_key": self.key, "sha256": digest,
               "provenance": f"{summary}, sha256:{digest[:12]}"}
        write_json(self.sidecar, out)
        if self.checkpoint.exists():
            self.checkpoint.unlink()  # the final weights supersede the resume point
        return out
