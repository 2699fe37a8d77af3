"""The robench3d cache directory, stable configuration keys and atomic writes.

Everything robench3d generates or trains (the embedded dataset, prepared datasets, trained weights, oblivious
adversarial clouds) lives under one cache directory: ``--cache-dir``, else ``ROBENCH3D_CACHE``, else
``$XDG_CACHE_HOME/robench3d`` (``~/.cache/robench3d``). Entries are keyed by a hash of their full configuration,
so a changed option never reuses a stale artifact.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["ENV_CACHE", "atomic_path", "default_cache_dir", "file_sha256", "read_json", "stable_hash", "write_json"]

ENV_CACHE = "ROBENCH3D_CACHE"


def default_cache_dir() -> Path:
    """The cache directory from ``ROBENCH3D_CACHE`` or the XDG default."""
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "robench3d"


def _canonical(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float):
        return repr(obj)  # exact, and 1.0 != 1 in keys
    if hasattr(obj, "value") and not isinstance(obj, (str, int, bool)):
        return _canonical(obj.value)  # enums
    return obj


def stable_hash(obj: Any, length: int = 16) -> str:
    """A short hex digest of a JSON-able configuration, independent of dict order."""
    payload = json.dumps(_canonical(obj), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:length]


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` and move it into place only if the block succeeds.

    An interrupted write therefore never leaves a truncated file that a later run would trust.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix or ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_json(path: Path, data: Any) -> None:
    """Atomically write ``data`` as indented, key-sorted JSON."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text())
