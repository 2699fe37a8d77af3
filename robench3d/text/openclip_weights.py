"""Reading an open_clip text tower's tensors from a local file, without executing pickled code.

Accepted files: ``.safetensors`` (read with safetensors), or ``.pt``/``.bin``/``.pth`` state dicts read with
``torch.load(..., weights_only=True)``, which refuses anything but tensors and plain containers (so OpenAI's
TorchScript archives are refused: convert them to a state dict first). Training checkpoints that wrap the
state dict in ``{"state_dict": ...}`` and DistributedDataParallel ``module.`` prefixes are unwrapped.

Both of open_clip's layouts are understood: ``CLIP`` keeps the text tower at the top level
(``token_embedding.weight``, ``transformer.resblocks...``, ``ln_final``, ``text_projection``) beside
``visual.*``, ``CustomTextCLIP`` under ``text.*``. A file holding only the text tower (in either layout) works too.

Finding the file (:func:`locate_weights`): an option's value is either an existing path, used as given, or a file
name looked up like a backbone's weights tag, through the ``robench3d_resolve_weights`` hook (built in:
``$ROBENCH3D_WEIGHTS/<name>``, then ``<cache>/weights/<name>``). Nothing is ever downloaded.

Provenance: ``provenance_note=`` wins; otherwise the ``note`` string of a JSON sidecar ``<weights file>.json``
(``x.pt`` -> ``x.pt.json``, ``{"note": "random init"}``) if present; otherwise there is no note, and the
provenance names only the file and its hash, never claiming the weights are pretrained.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import torch

from robench3d.errors import ConfigError

__all__ = ["locate_weights", "read_note", "read_text_state_dict", "sidecar_path"]

# Top-level names of the text tower in open_clip's CLIP layout (the vision tower lives under "visual.").
_TEXT_ROOTS = ("token_embedding", "positional_embedding", "transformer", "ln_final", "text_projection")


def locate_weights(value: str | Path, find: Callable[[str], Path | str | None] | None, *, what: str,
                   cache_dir: Path | None = None) -> Path:
    """The local file an option names: an existing path as given, else a file name that ``find`` resolves.

    Args:
        value: the option's value, a path (``/models/clip.bin``) or a file name (``eva02/clip.bin``).
        find: ``name -> path or None``, usually the ``robench3d_resolve_weights`` hook on a weights spec named
            ``value`` (``$ROBENCH3D_WEIGHTS/<name>``, then ``<cache>/weights/<name>``); ``None``: paths only.
        what: the option, for the error message (``--opt backbone.text_weights``).
        cache_dir: the cache, named in the error message.

    Raises:
        ConfigError: an empty value, or a file that is neither an existing path nor found; the message names the
            file, ``$ROBENCH3D_WEIGHTS`` and the cache folder it was looked for in.
    """
    text = str(value).strip()
    if not text:
        raise ConfigError(f"{what} is empty; give a local weights file (a path, or a file name under "
                          "$ROBENCH3D_WEIGHTS); robench3d never downloads weights")
    path = Path(text).expanduser()
    if path.is_file():
        return path
    found = find(text) if find is not None and not path.is_absolute() else None
    if found is not None:
        return Path(found)
    if path.is_absolute():
        raise ConfigError(f"{what}: the weights file {text!r} does not exist; robench3d never downloads weights: "
                          "put the file there, or give a file name to look up in $ROBENCH3D_WEIGHTS")
    env = os.environ.get("ROBENCH3D_WEIGHTS", "")
    state = f"ROBENCH3D_WEIGHTS={env}" if env else "ROBENCH3D_WEIGHTS is not set"
    cache = f" or {Path(cache_dir) / 'weights' / text}" if cache_dir is not None else ""
    raise ConfigError(
        f"{what}: the weights file {text!r} is not an existing path and was not found as $ROBENCH3D_WEIGHTS/{text}"
        f"{cache} ({state}); robench3d never downloads weights: put the file in the "
        f"folder $ROBENCH3D_WEIGHTS names (e.g. ROBENCH3D_WEIGHTS=/models with /models/{text}) or pass its path"
    )


def sidecar_path(weights: Path) -> Path:
    """``x.pt`` -> ``x.pt.json``: the optional provenance sidecar of a weights file."""
    return weights.with_name(weights.name + ".json")


def read_note(weights: Path, provenance_note: str | None) -> str | None:
    """The provenance note: the explicit one, else the sidecar's ``note``, else None."""
    if provenance_note is not None:
        return provenance_note
    sidecar = sidecar_path(weights)
    if not sidecar.exists():
        return None
    try:
        data = json.loads(sidecar.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the provenance sidecar {str(sidecar)!r}: {exc}; fix or delete it") from exc
    note = data.get("note") if isinstance(data, dict) else None
    if not isinstance(note, str):
        raise ConfigError(
            f"the provenance sidecar {str(sidecar)!r} must be a JSON object with a string 'note' "
            f"(e.g. {{\"note\": \"random init\"}}); got {data!r}"
        )
    return note


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ConfigError(
            f"the open_clip weights file {str(path)!r} does not exist; pass weights=<a local .safetensors, .pt or "
            f".bin state dict> (robench3d never downloads weights)"
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            data: object = load_file(str(path))
        else:
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling, TorchScript archives and corrupt files all fail differently
        raise ConfigError(
            f"cannot read {str(path)!r} as a plain state dict ({type(exc).__name__}: {exc}); robench3d loads "
            f"weights without executing pickled code: save the model's state_dict() with torch.save or safetensors"
        ) from exc
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ConfigError(f"{str(path)!r} does not hold a state dict (a mapping of names to tensors)")
    return {str(k).removeprefix("module."): v for k, v in data.items()}


def read_text_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """(text-tower state dict with TextTransformer key names, sha256 of the file).

    Raises:
        ConfigError: a missing or unreadable file, or one without text-tower tensors.
    """
    from robench3d.cache import file_sha256

    tensors = _load_tensors(path)
    if any(k.startswith("text.") for k in tensors):
        state = {k.removeprefix("text."): v for k, v in tensors.items() if k.startswith("text.")}
    else:
        state = {k: v for k, v in tensors.items() if k.split(".", 1)[0] in _TEXT_ROOTS}
    if not state:
        raise ConfigError(
            f"{str(path)!r} holds no open_clip text-tower tensors (expected token_embedding.weight, "
            f"transformer.*, ... or text.*); pass the state dict of an open_clip CLIP model"
        )
    return state, file_sha256(path)
