"""Cached trained parts of the baseline defenses, through the core's artifacts (:mod:`robench3d.artifacts`).

Layout: ``<cache>/defenses/<defense>/<key>/model.safetensors`` + ``model.json``, where ``key`` hashes the full
configuration that determines the weights (parameters, base backbone where it matters, this plugin's code version)
plus the training data's name and version and the seed (added by ``ctx.artifact``). An interrupted training resumes
from the artifact's ``checkpoint.pt``. The sidecar keeps ``train_seconds``, the wall time of the defense's own
training as measured when it was trained, so a run that loads the cached weights reports the same number.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from robench3d import DefenseContext
from robench3d.artifacts import Artifact

__all__ = ["CODE_VERSION", "Artifact", "artifact_for", "progress_of", "train_seconds_of"]

logger = logging.getLogger(__name__)

#: Bump when a training loop here changes the weights it produces for an unchanged configuration.
CODE_VERSION = 1


def artifact_for(ctx: DefenseContext, defense: str, key_source: Mapping[str, Any]) -> Artifact:
    """The artifact of one defense configuration (``key_source``) on the context's training data and seed."""
    return ctx.artifact(defense, {**key_source, "defense": defense, "baselines_code": CODE_VERSION})


def progress_of(ctx: DefenseContext, prefix: str) -> Callable[[str], None]:
    """A one-line progress callback: the run's (the CLI prints it), else the log."""
    say = ctx.progress or (lambda msg: logger.info("%s", msg))
    return lambda msg: say(f"{prefix}: {msg}")


def train_seconds_of(info: Mapping[str, Any]) -> float | None:
    """The training wall time a sidecar recorded (``None`` for one written without it)."""
    value = info.get("train_seconds")
    return None if value is None else float(value)
