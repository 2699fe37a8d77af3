"""Official Uni3D checkpoints: where they come from, and a strict key-mapping loader for the ``uni3d`` backbone.

The official release (github.com/baaivision/Uni3D, weights at huggingface.co/BAAI/Uni3D under
``modelzoo/<variant>/model.pt``) saves a DeepSpeed checkpoint: a dict whose ``module`` entry is the state dict of
``Uni3D(point_encoder=PointcloudEncoder(...))``, keys sometimes prefixed by ``module.``. Its key names, and ours:

======================================================  ==========================================
official                                                robench3d ``uni3d``
======================================================  ==========================================
``point_encoder.encoder.first_conv.{0,1,3}``  (Conv1d)  ``tokenizer.{fc1,bn1,fc2}`` (Linear: k=1 squeezed)
``point_encoder.encoder.second_conv.{0,1,3}``           ``tokenizer.{fc3,bn3,fc4}``
``point_encoder.encoder2trans``                         ``token_proj``
``point_encoder.cls_token`` / ``cls_pos``               ``cls_token`` / ``cls_pos``
``point_encoder.pos_embed.{0,2}``                       ``pos_embed.{0,2}``
``point_encoder.visual.blocks.<i>.*`` (timm EVA)        ``blocks.<i>.*`` (timm ``EvaBlock``, same names)
``point_encoder.visual.fc_norm``                        ``norm``
``point_encoder.trans2embed``                           ``proj``
======================================================  ==========================================

Keys that the point encoder never uses are dropped, by name: ``logit_scale`` (the CLIP loss temperature) and the
image-only parts of the timm ViT (``visual.cls_token``, ``visual.pos_embed``, ``visual.patch_embed.*``,
``visual.head.*``). Anything else that does not map, any shape mismatch and any model parameter the checkpoint
lacks is an error (strict). The classifier head is not part of a Uni3D checkpoint (Uni3D classifies zero-shot
against CLIP text embeddings) and keeps its initialisation; the loader says so in its return value, which goes
into the weights provenance. Uni3D-B (tag ``b``, configuration ``base``) has the same keys except inside the
EVA02-Base blocks (``attn.q_proj``/``k_proj``/``v_proj`` instead of ``attn.qkv`` + ``q_bias``/``v_bias``, plus
``mlp.norm``), which keep timm's names on both sides.

The provenance note states the file's layout, not its origin ("point encoder in the official Uni3D layout": a
random stand-in has the same keys), plus the ``note`` of a JSON sidecar ``<file>.json`` when there is one
(``{"note": "random init"}`` for a test stand-in), as for open_clip weights files.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from robench3d.backbones.base import WeightsSpec
from robench3d.errors import ConfigError
from robench3d.text.openclip_weights import read_note

if TYPE_CHECKING:
    from torch import nn

__all__ = ["UNI3D_WEIGHTS", "load_uni3d_checkpoint", "map_uni3d_state_dict", "read_checkpoint"]

logger = logging.getLogger(__name__)

_HF = "https://huggingface.co/BAAI/Uni3D/blob/main/modelzoo"
_LICENSE = "MIT (licence of the baaivision/Uni3D code release; not re-verified offline for the weight files)"

#: Weight tags of the ``uni3d`` backbone (``--backbone uni3d.ti``). The file is looked up as
#: ``$ROBENCH3D_WEIGHTS/<filename>`` or ``<cache>/weights/<filename>``, mirroring the release layout. No sha256 is
#: pinned: we could not download the files to hash them, and the provenance records the hash of the file used.
UNI3D_WEIGHTS: dict[str, WeightsSpec] = {
    "ti": WeightsSpec(
        tag="ti", filename="uni3d-ti/model.pt", config="paper", license=_LICENSE,
        origin_url=f"{_HF}/uni3d-ti/model.pt",
        description="Uni3D-Ti (EVA02-Tiny blocks, 12.8 MB), pretrained on the ensembled data incl. Objaverse-LVIS",
    ),
    "b": WeightsSpec(
        tag="b", filename="uni3d-b/model.pt", config="base", license=_LICENSE,
        origin_url=f"{_HF}/uni3d-b/model.pt",
        description="Uni3D-B (EVA02-Base blocks), pretrained on the ensembled data incl. Objaverse-LVIS; the MRPD "
                    "paper code's 3D teacher",
    ),
    "ti_no_lvis": WeightsSpec(
        tag="ti_no_lvis", filename="uni3d-ti-no-lvis/model.pt", config="paper", license=_LICENSE,
        origin_url=f"{_HF}/uni3d-ti-no-lvis/model.pt",
        description="Uni3D-Ti pretrained on the ensembled data without Objaverse-LVIS",
    ),
}

_RENAMES: tuple[tuple[str, str], ...] = (
    ("point_encoder.encoder.first_conv.0.", "tokenizer.fc1."),
    ("point_encoder.encoder.first_conv.1.", "tokenizer.bn1."),
    ("point_encoder.encoder.first_conv.3.", "tokenizer.fc2."),
    ("point_encoder.encoder.second_conv.0.", "tokenizer.fc3."),
    ("point_encoder.encoder.second_conv.1.", "tokenizer.bn3."),
    ("point_encoder.encoder.second_conv.3.", "tokenizer.fc4."),
    ("point_encoder.encoder2trans.", "token_proj."),
    ("point_encoder.cls_token", "cls_token"),
    ("point_encoder.cls_pos", "cls_pos"),
    ("point_encoder.pos_embed.", "pos_embed."),
    ("point_encoder.visual.blocks.", "blocks."),
    ("point_encoder.visual.fc_norm.", "norm."),
    ("point_encoder.trans2embed.", "proj."),
)
_DROPPED = re.compile(r"^(logit_scale|point_encoder\.visual\.(cls_token|pos_embed|patch_embed\..*|head\..*))$")


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The raw state dict of a checkpoint file, without executing code.

    ``.safetensors`` files are read with safetensors; anything else with ``torch.load(weights_only=True)``, taking
    the ``module`` (DeepSpeed), ``state_dict`` or ``model`` entry when present.
    """
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return dict(load_file(str(path)))
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types; all mean the same to the user
        raise ConfigError(
            f"cannot read the Uni3D checkpoint {path}: {exc}. If it holds objects that weights-only loading "
            "refuses, extract its 'module' state dict once in a trusted environment and save it as .safetensors"
        ) from exc
    for key in ("module", "state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConfigError(f"{path} does not contain a state dict of tensors (expected a Uni3D model.pt)")
    return dict(obj)


def map_uni3d_state_dict(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename official Uni3D keys to ours.

    Returns:
        (mapped state dict, keys dropped on purpose).

    Raises:
        ConfigError: keys that neither map nor belong to the known unused parts.
    """
    mapped: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    unknown: list[str] = []
    for raw_key, value in state.items():
        key = raw_key[len("module."):] if raw_key.startswith("module.") else raw_key
        if _DROPPED.match(key):
            dropped.append(key)
            continue
        for old, new in _RENAMES:
            if key.startswith(old):
                new_key = new + key[len(old):]
                # The tokenizer's Conv1d(kernel 1) weights are our Linear weights with a trailing axis of 1.
                if new_key.startswith("tokenizer.fc") and new_key.endswith(".weight") and value.dim() == 3:
                    value = value.squeeze(-1)
                mapped[new_key] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise ConfigError(
            f"the checkpoint has {len(unknown)} key(s) that do not map onto the uni3d backbone, e.g. "
            f"{unknown[:5]}; it is not a Uni3D point-encoder checkpoint of a supported layout"
        )
    return mapped, dropped


def load_uni3d_checkpoint(model: nn.Module, path: Path | str) -> str:
    """Load an official Uni3D checkpoint into a ``uni3d`` backbone, strictly.

    Every checkpoint key must map (or be a known unused key) and every model parameter and buffer outside the
    classifier head must be provided, with the same shape. Half-precision checkpoints are cast to the model's
    dtype by ``load_state_dict``.

    Args:
        model: a :class:`~robench3d.backbones.uni3d.Uni3DTransformer` built with the matching configuration
            (``paper`` for Uni3D-Ti).
        path: ``model.pt`` as released, or a ``.safetensors`` with the same keys.

    Returns:
        A note for the weights provenance (what was loaded, what was not).

    Raises:
        ConfigError: unreadable file, unknown keys, missing keys or shape mismatches.
    """
    mapped, dropped = map_uni3d_state_dict(read_checkpoint(Path(path)))
    own = model.state_dict()
    expected = {k for k in own if not k.startswith("head.")}
    missing = sorted(expected - set(mapped))
    extra = sorted(set(mapped) - set(own))
    wrong = sorted(k for k in set(mapped) & set(own) if tuple(mapped[k].shape) != tuple(own[k].shape))
    if missing or extra or wrong:
        detail = "; ".join(
            f"{label}: {keys[:4]}{' ...' if len(keys) > 4 else ''}"
            for label, keys in (("missing", missing), ("unexpected", extra),
                                ("shape mismatch", [f"{k} {tuple(mapped[k].shape)} vs {tuple(own[k].shape)}"
                                                    for k in wrong]))
            if keys
        )
        raise ConfigError(
            f"the Uni3D checkpoint {path} does not fit this uni3d configuration ({detail}); build the backbone "
            "with the configuration of the released model (uni3d:paper for Uni3D-Ti, uni3d:base for Uni3D-B)"
        )
    # strict=False only because the head is not in the checkpoint; everything else was checked above.
    result = model.load_state_dict(mapped, strict=False)
    assert not result.unexpected_keys and all(k.startswith("head.") for k in result.missing_keys)
    logger.info("loaded %d Uni3D tensors from %s (dropped %d unused: %s)", len(mapped), path, len(dropped),
                ", ".join(sorted({d.split(".")[0] if d == "logit_scale" else ".".join(d.split(".")[:3])
                                  for d in dropped})))
    note = read_note(Path(path), None)
    return (f"point encoder in the official Uni3D layout from {Path(path).name}" + (f" ({note})" if note else "")
            + "; classifier head not in the checkpoint (initialised here)")
