"""Built-in plugin: resolve pretrained weights from local files only (robench3d never downloads).

Looked up, in order: ``$ROBENCH3D_WEIGHTS/<filename>`` (a folder of weight files the user placed there) and
``<cache_dir>/weights/<filename>``. A file whose sha256 differs from the spec's is rejected.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from robench3d.cache import file_sha256
from robench3d.errors import ConfigError
from robench3d.hookspecs import hookimpl

ENV_WEIGHTS = "ROBENCH3D_WEIGHTS"


@hookimpl(trylast=True)
def robench3d_resolve_weights(spec: Any, cache_dir: Path) -> Path | None:
    """Find ``spec.filename`` in the user's weights folder or the cache; verify its sha256 when known."""
    folders = [Path(p).expanduser() for p in os.environ.get(ENV_WEIGHTS, "").split(os.pathsep) if p]
    folders.append(Path(cache_dir) / "weights")
    for folder in folders:
        path = folder / spec.filename
        if path.is_file():
            if spec.sha256 and file_sha256(path) != spec.sha256:
                raise ConfigError(f"weights file {path} does not match the expected sha256 {spec.sha256}; "
                                  "it is corrupt or a different release: replace it")
            return path
    return None
