"""Cached artifacts: a set of tensors plus a JSON sidecar, keyed by a hash of everything that determines them.

Everything robench3d trains or computes once and reuses (backbone weights, a defense's trained parts, a teacher's
fine-tuned tower, a teacher's outputs on a fixed set of clouds, MRPD's prompts) is an :class:`Artifact`::

    <cache>/<kind>/<name>/<key>/model.safetensors   tensors (safetensors: loading executes no code)
    <cache>/<kind>/<name>/<key>/model.json          configuration, provenance, training time, sha256
    <cache>/<kind>/<name>/<key>/checkpoint.pt       resume point while training (loaded with weights_only=True)

``key`` is :func:`robench3d.cache.stable_hash` of the key source, so any change of configuration, data version,
seed or code version gives a new artifact and a stale one is never loaded. The sidecar records the training wall
time measured when the artifact was made, so a run that loads it reports the same number.

Example:
    >>> art = Artifact.at(cache_dir, "defenses", "my_defense", {"params": {...}, "dataset_version": "..."})
    >>> info = art.load_into(model)  # None when absent
    >>> if info is None:
    ...     train(model)
    ...     info = art.save(model, {"config": ...}, "my_defense trained here", train_seconds=12.3)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robench3d.cache import file_sha256, read_json, stable_hash, write_json
from robench3d.errors import ConfigError

__all__ = ["Artifact"]


@dataclass(frozen=True)
class Artifact:
    """Where one cached set of tensors lives, and how to load or store it.

    Attributes:
        directory: ``<cache>/<kind>/<name>/<key>``.
        key: the hash of ``key_source``.
        key_source: everything that determines the tensors (recorded in the sidecar).
    """

    directory: Path
    key: str
    key_source: Mapping[str, Any]

    @classmethod
    def at(cls, cache_dir: Path, kind: str, name: str, key_source: Mapping[str, Any]) -> Artifact:
        """The artifact of ``key_source`` under ``<cache_dir>/<kind>/<name>/``."""
        src = dict(key_source)
        key = stable_hash(src)
        return cls(Path(cache_dir) / kind / name / key, key, src)

    @property
    def weights(self) -> Path:
        return self.directory / "model.safetensors"

    @property
    def sidecar(self) -> Path:
        return self.directory / "model.json"

    @property
    def checkpoint(self) -> Path:
        """The resume point a :class:`~robench3d.training.trainer.Trainer` may keep while training."""
        return self.directory / "checkpoint.pt"

    def exists(self) -> bool:
        """Whether tensors and sidecar are both present (a half-written artifact does not count)."""
        return self.weights.exists() and self.sidecar.exists()

    def info(self) -> dict[str, Any]:
        """The sidecar (configuration, ``provenance``, ``train_seconds``, ``sha256``, ``key``)."""
        data: dict[str, Any] = read_json(self.sidecar)
        return data

    def load_tensors(self) -> dict[str, torch.Tensor] | None:
        """The stored tensors, or ``None`` when the artifact is absent."""
        if not self.exists():
            return None
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(self.weights))
        except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
            raise ConfigError(f"cached artifact {self.weights} is unreadable ({exc}); delete {self.directory} to "
                              "rebuild it") from exc

    def load_into(self, module: nn.Module, *, strict: bool = True) -> dict[str, Any] | None:
        """Load the tensors into ``module`` as a state dict and return the sidecar, or ``None`` when absent.

        With ``strict=False`` the artifact may hold a subset of the module's state (the parts training changed);
        every stored key must still exist in the module.
        """
        tensors = self.load_tensors()
        if tensors is None:
            return None
        try:
            missing, unexpected = module.load_state_dict(tensors, strict=strict)
        except RuntimeError as exc:
            raise ConfigError(f"cached artifact {self.weights} does not fit this configuration ({exc}); delete "
                              f"{self.directory} to rebuild it") from exc
        if unexpected:
            raise ConfigError(f"cached artifact {self.weights} holds tensors the model lacks ({unexpected[:3]}); "
                              f"delete {self.directory} to rebuild it")
        return self.info()

    def save(self, tensors: nn.Module | Mapping[str, torch.Tensor], info: Mapping[str, Any], summary: str, *,
             train_seconds: float | None = None) -> dict[str, Any]:
        """Store tensors (a module's state dict, or a mapping) with ``info``; return the sidecar written.

        Args:
            summary: the start of the one-line ``provenance`` string (the file hash is appended).
            train_seconds: wall time of the work that produced the tensors (kept for cached loads).
        """
        from safetensors.torch import save_file

        state = tensors.state_dict() if isinstance(tensors, nn.Module) else dict(tensors)
        self.directory.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(self.weights))
        digest = file_sha256(self.weights)
        out = {**info, "key": dict(self.key_source), "cache_key": self.key, "sha256": digest,
               "provenance": f"{summary}, sha256:{digest[:12]}"}
        if train_seconds is not None:
            out["train_seconds"] = round(float(train_seconds), 2)
        write_json(self.sidecar, out)
        if self.checkpoint.exists():
            self.checkpoint.unlink()  # the final tensors supersede the resume point
        return out
