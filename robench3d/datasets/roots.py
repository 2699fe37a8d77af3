"""Where a user's copy of a dataset lives: one resolution rule shared by every real-data loader.

A dataset root is taken from, in order:

1. ``DatasetOptions.root`` (the CLI's ``--data-root``);
2. the dataset's environment variable (its ``root_env`` class variable, e.g. ``ROBENCH3D_MODELNET40_ROOT``);
3. the ``[datasets]`` table of a TOML config file: ``$ROBENCH3D_CONFIG`` if set, else
   ``$XDG_CONFIG_HOME/robench3d/datasets.toml`` (``~/.config/robench3d/datasets.toml``)::

       [datasets]
       modelnet40 = "/data/modelnet40_ply_hdf5_2048"
       scanobjectnn = "~/data/h5_files"

   Relative paths in the file are relative to the file's own folder.

When none gives a root, :func:`resolve_root` raises a :class:`~robench3d.errors.ConfigError` that names all three.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from robench3d.errors import ConfigError, DataError

try:  # Python >= 3.11; the config file is optional, so an older Python only loses that third way.
    import tomllib as _toml
except ModuleNotFoundError:  # pragma: no cover - depends on the interpreter
    _toml = None  # type: ignore[assignment]

__all__ = ["ENV_CONFIG", "config_path", "configured_roots", "resolve_root"]

logger = logging.getLogger(__name__)

ENV_CONFIG = "ROBENCH3D_CONFIG"


def config_path() -> Path:
    """The dataset config file: ``$ROBENCH3D_CONFIG``, else the XDG default (the file need not exist)."""
    env = os.environ.get(ENV_CONFIG)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".config"
    return base / "robench3d" / "datasets.toml"


def configured_roots(path: Path | None = None) -> dict[str, Path]:
    """The ``[datasets]`` table of the config file as ``{dataset name: root}``; empty if there is no file.

    Raises:
        ConfigError: ``$ROBENCH3D_CONFIG`` names a missing file, the file is not valid TOML, or an entry is not a
            path string.
    """
    explicit = path is not None or bool(os.environ.get(ENV_CONFIG))
    path = path if path is not None else config_path()
    if not path.is_file():
        if explicit:
            raise ConfigError(f"config file {path} (from ${ENV_CONFIG}) does not exist; create it or unset "
                              f"{ENV_CONFIG}")
        return {}
    if _toml is None:  # pragma: no cover - Python 3.10 only
        raise ConfigError(f"reading {path} needs Python >= 3.11 (tomllib); use --data-root or an env var instead")
    try:
        with open(path, "rb") as f:
            doc: dict[str, Any] = _toml.load(f)
    except (_toml.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML ({exc}); fix the syntax, e.g. "
                          f'[datasets]\\nmodelnet40 = "/path/to/data"') from exc
    table = doc.get("datasets", {})
    if not isinstance(table, dict):
        raise ConfigError(f"config file {path}: 'datasets' must be a table ([datasets]), got {type(table).__name__}")
    roots: dict[str, Path] = {}
    for name, value in table.items():
        if not isinstance(value, str) or not value:
            raise ConfigError(f"config file {path}: [datasets] {name} must be a path string, got {value!r}")
        root = Path(value).expanduser()
        # A relative entry means "next to this config file", not "wherever robench3d happens to be started".
        roots[name] = root if root.is_absolute() else (path.parent / root)
    return roots


def resolve_root(name: str, root: Path | None, env_var: str | None) -> Path:
    """The data root of dataset ``name``, from the option, the env var or the config file (in that order).

    Args:
        name: the dataset's registry name (the key in the config file's ``[datasets]`` table).
        root: ``DatasetOptions.root`` (``--data-root``), or ``None``.
        env_var: the dataset's environment variable, or ``None`` if it has none.

    Returns:
        An existing directory.

    Raises:
        ConfigError: no way gives a root (the message lists all three ways).
        DataError: the chosen root does not exist or is not a directory.
    """
    origin = "--data-root"
    if root is None and env_var and os.environ.get(env_var):
        root, origin = Path(os.environ[env_var]).expanduser(), f"${env_var}"
    if root is None:
        cfg = config_path()
        found = configured_roots().get(name)
        if found is not None:
            root, origin = found, f"{cfg} [datasets] {name}"
    if root is None:
        env_hint = f"set {env_var}=/path/to/data, " if env_var else ""
        raise ConfigError(
            f"no data root for dataset {name!r}: pass --data-root /path/to/data (DatasetOptions.root), "
            f"{env_hint}or add `{name} = \"/path/to/data\"` under [datasets] in {config_path()} "
            f"(or the file named by ${ENV_CONFIG})"
        )
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"data root {root} for dataset {name!r} (from {origin}) does not exist; check the path")
    if not root.is_dir():
        raise DataError(f"data root {root} for dataset {name!r} (from {origin}) is a file, not a folder; "
                        f"point it at the folder that holds the dataset")
    logger.debug("dataset %s: root %s (from %s)", name, root, origin)
    return root
