"""An open_clip text tower with learnable context, loaded from a local weights file (never downloaded).

Nothing here is bundled: robench3d ships no CLIP weights and cannot download them. The tower is whatever the
file holds, and its provenance says so: the architecture, the open_clip version, the file name and its sha256,
plus a note on where the weights come from (``provenance_note=``, or the ``note`` of a JSON sidecar
``<weights file>.json``). A file written from a randomly initialised model must carry a note such as
``random init``; robench3d cannot tell random weights from pretrained ones, so it never calls them pretrained.

Supported: open_clip's own text transformer (CLIP and CustomTextCLIP layouts) with the bundled CLIP BPE
tokenizer, as in ViT-B-32, ViT-L-14 or EVA02-E-14-plus. Hugging Face text towers and tokenizers (SigLIP, XLM-R,
mT5...) and CoCa's appended class token are refused with a :class:`~robench3d.errors.ConfigError`.

Weights are read without executing pickled code: ``.safetensors`` with safetensors, anything else with
``torch.load(..., weights_only=True)``. Only the text tower's tensors are kept; the vision tower is never built.

Context: with k context vectors the token sequence becomes ``<start_of_text> v_1..v_k <sentence> <end_of_text>``
(the sentence shifted right by k, the padding shortened by k), and the pooled token is found from the token ids
of that sequence as built (placeholder ids ``x`` at the context positions, as CoOp's ``X X X``), so CLIP's
end-of-text pooling reads the right position.

:func:`open_clip_class_embeddings` gives fixed class embeddings (no context) for a cosine head, as
:func:`~robench3d.text.minilm.class_name_embeddings` does with MiniLM: Uni3D's zero-shot classifier when the tower
is EVA02-E-14-plus's.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from copy import deepcopy
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from robench3d.errors import ConfigError
from robench3d.text.base import DEFAULT_TEMPLATE, TextEncoder, class_sentences
from robench3d.text.openclip_weights import read_note, read_text_state_dict

__all__ = ["OpenCLIPTextEncoder", "open_clip_class_embeddings", "resolve_config"]

_POOLS = ("argmax", "eos", "first", "last")


def resolve_config(model: str | Path | Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(label, open_clip model config) for a built-in/registered name, a ``.json`` file or a config dict.

    Raises:
        ConfigError: an unknown name, a schema name (``hf-hub:``, ``local-dir:``), a missing or malformed file,
            or a text tower this encoder does not support.
    """
    import open_clip

    from robench3d.cache import stable_hash

    if isinstance(model, Mapping):
        cfg = deepcopy(dict(model))
        label = f"custom config {stable_hash(cfg, 8)}"
    elif str(model).endswith(".json"):
        path = Path(model)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the open_clip model config {str(path)!r}: {exc}") from exc
        cfg = data.get("model_cfg", data) if isinstance(data, dict) else data
        label = f"{path.name} config {stable_hash(cfg, 8)}"
    else:
        name = str(model)
        if name not in open_clip.list_models():
            raise ConfigError(
                f"open_clip has no model config {name!r} (schemas such as hf-hub: are refused: robench3d never "
                f"downloads); pass a name from open_clip.list_models() such as 'ViT-B-32', a .json config file, "
                f"or a config dict"
            )
        cfg = open_clip.get_model_config(name)
        label = name
    if not isinstance(cfg, dict) or not isinstance(cfg.get("text_cfg"), dict) or "embed_dim" not in cfg:
        raise ConfigError(f"open_clip model config {label!r} needs 'embed_dim' and a 'text_cfg' mapping")
    text = cfg["text_cfg"]
    unsupported = [key for key in ("hf_model_name", "hf_tokenizer_name", "embed_cls") if text.get(key)]
    if unsupported or text.get("pool_type", "argmax") not in _POOLS or "multimodal_cfg" in cfg:
        raise ConfigError(
            f"open_clip model {label!r} has a text tower this encoder does not support "
            f"({', '.join(unsupported) or 'pool_type ' + repr(text.get('pool_type'))}); supported: open_clip's "
            f"own text transformer with the CLIP tokenizer (e.g. ViT-B-32); use text encoder 'minilm' otherwise"
        )
    return label, cfg


class OpenCLIPTextEncoder(TextEncoder):
    """A frozen open_clip text transformer from a local file, with CoOp-style context after the start token.

    Args:
        model: an open_clip config name (``ViT-B-32``), a ``.json`` config file, or a config dict.
        weights: a local ``.safetensors``/``.pt``/``.bin`` state dict of the whole model or of its text tower.
        provenance_note: where the weights come from (``random init``, ``OpenAI ViT-B-32``...); default: the
            ``note`` of the sidecar ``<weights>.json`` if there is one.

    Shape:
        context: (k, width), k <= context_length - 2. :meth:`encode`: C names -> (C, embed_dim) unit rows.
    """

    name: ClassVar[str] = "open_clip"

    def __init__(
        self, model: str | Path | Mapping[str, Any], weights: str | Path, *, provenance_note: str | None = None
    ) -> None:
        super().__init__()
        import open_clip

        # The private builder makes the text tower alone: building the whole CLIP (then dropping the vision
        # tower) would cost billions of randomly initialised parameters for EVA02-E-14.
        from open_clip.model import _build_text_tower

        label, cfg = resolve_config(model)
        text_cfg = cfg["text_cfg"]
        self.tokenizer = open_clip.SimpleTokenizer(
            context_length=int(text_cfg.get("context_length", 77)), **dict(text_cfg.get("tokenizer_kwargs") or {})
        )
        vocab = int(text_cfg.get("vocab_size", 49408))
        if vocab < self.tokenizer.vocab_size:
            raise ConfigError(
                f"open_clip model {label!r} has vocab_size {vocab}, fewer than the CLIP tokenizer's "
                f"{self.tokenizer.vocab_size} tokens; use vocab_size {self.tokenizer.vocab_size}"
            )
        self.tower = _build_text_tower(int(cfg["embed_dim"]), text_cfg, bool(cfg.get("quick_gelu", False)))
        path = Path(weights)
        state, digest = read_text_state_dict(path)
        try:
            missing, unexpected = self.tower.load_state_dict(state, strict=False)
            problem = (f"missing: {', '.join(missing[:5]) or 'none'}; unexpected: "
                       f"{', '.join(unexpected[:5]) or 'none'}") if missing or unexpected else ""
        except RuntimeError as exc:  # shape mismatches raise even when strict=False
            problem = str(exc).splitlines()[-1].strip()
        if problem:
            raise ConfigError(
                f"the weights file {str(path)!r} does not fit the text tower of open_clip model {label!r} "
                f"({problem}); pass the model config the file was saved from"
            )
        note = read_note(path, provenance_note)
        self._provenance = (
            f"open_clip {label} text tower (open_clip {open_clip.__version__}) from file {path.name} "
            f"sha256:{digest[:12]}" + (f" ({note})" if note else "")
        )
        self.label = label
        self.context_length = int(self.tower.context_length)
        self.width = int(self.tower.width)
        self.embed_dim = int(cfg["embed_dim"]) if self.tower.text_projection is not None else self.width
        self.max_context = self.context_length - 2  # <start_of_text> and <end_of_text>
        self.pool_type = str(self.tower.pool_type)
        # CoOp writes "X X X" for its context; these ids are never embedded, they only let pooling find its token.
        self.placeholder_id = int(self.tokenizer.encode("x")[0])
        self._freeze()

    @property
    def provenance(self) -> str:
        return self._provenance

    def _pool_index(self, ids: torch.Tensor) -> torch.Tensor:
        """The position of the pooled token in each row of ``ids``, by the tower's pooling rule."""
        rows = ids.shape[0]
        if self.pool_type == "argmax":  # end-of-text has the highest id of the CLIP vocabulary
            return ids.argmax(dim=-1)
        if self.pool_type == "eos":
            return (ids == int(self.tower.eos_id)).int().argmax(dim=-1)
        return ids.new_full((rows,), 0 if self.pool_type == "first" else ids.shape[1] - 1)

    def token_ids(self, sentences: Sequence[str], k: int = 0) -> torch.Tensor:
        """Token ids as the tower sees them: k placeholder ids after ``<start_of_text>``, the sentence shifted.

        Raises:
            ConfigError: a sentence too long to leave room for k context tokens.

        Shape:
            S sentences -> (S, context_length) int64.
        """
        ids: torch.Tensor = self.tokenizer(list(sentences))
        if k == 0:
            return ids
        end = (ids == self.tokenizer.eot_token_id).int().argmax(dim=-1)  # truncated rows end at the last slot
        if int(end.max()) + k >= self.context_length:
            longest = sentences[int(end.argmax())]
            raise ConfigError(
                f"{k} context vectors do not fit beside the sentence {longest!r} ({int(end.max()) + 1} tokens) in "
                f"the {self.context_length} positions of open_clip {self.label!r}; use fewer context vectors or a "
                f"shorter template"
            )
        fill = ids.new_full((ids.shape[0], k), self.placeholder_id)
        return torch.cat([ids[:, :1], fill, ids[:, 1 : self.context_length - k]], dim=1)

    def _encode_sentences(self, sentences: Sequence[str], context: torch.Tensor | None) -> torch.Tensor:
        tower = self.tower
        device = tower.positional_embedding.device
        k = 0 if context is None else int(context.shape[0])
        ids = self.token_ids(sentences, k).to(device)
        cast = tower.transformer.get_cast_dtype()
        x = tower.token_embedding(ids).to(cast)  # (S, L, W)
        if context is not None:
            ctx = context.to(device=device, dtype=cast).unsqueeze(0).expand(len(sentences), -1, -1)
            x = torch.cat([x[:, :1], ctx, x[:, 1 + k :]], dim=1)
        x = x + tower.positional_embedding.to(cast)
        x = tower.transformer(x, attn_mask=tower.attn_mask)
        x = tower.ln_final(x)
        pooled = x[torch.arange(x.shape[0], device=device), self._pool_index(ids)]
        proj = tower.text_projection
        if proj is not None:
            pooled = proj(pooled) if isinstance(proj, torch.nn.Module) else pooled @ proj
        return F.normalize(pooled.float(), dim=-1)


def open_clip_class_embeddings(class_names: Sequence[str], model: str | Path, weights: str | Path,
                               template: str = DEFAULT_TEMPLATE) -> tuple[torch.Tensor, str]:
    """Fixed class embeddings of an open_clip text tower from a local file, for a cosine head (no context).

    Args:
        class_names: the dataset's class names, in label order.
        model: an open_clip config name (``EVA02-E-14-plus``) or a ``.json`` config file.
        weights: the local weights file (the provenance note comes from its ``<file>.json`` sidecar, if any).
        template: a format string with one ``{}`` for the class name.

    Returns:
        (embeddings, provenance): (C, embed_dim) unit rows on the CPU, and a string naming the tower, the file's
        hash, its note and the template (it enters the cache key of any model trained with these embeddings).

    Raises:
        ConfigError: a bad template or model, or a missing or unfitting weights file.

    Shape:
        C names -> (C, embed_dim).
    """
    class_sentences(class_names, template)  # a bad template fails before the tower loads
    path = Path(weights)
    if not path.is_file():
        read_text_state_dict(path)  # raises the reader's ConfigError for a missing file
    stat = path.stat()
    emb, source = _cached_class_embeddings(tuple(map(str, class_names)), str(model), str(path.resolve()),
                                           stat.st_size, stat.st_mtime_ns, template)
    return emb.clone(), source


@functools.lru_cache(maxsize=4)
def _cached_class_embeddings(class_names: tuple[str, ...], model: str, weights: str, _size: int, _mtime: int,
                             template: str) -> tuple[torch.Tensor, str]:
    # A run builds the student's head and its backbone teachers' heads from the same (possibly multi-GB) file:
    # read it once per process. The file's size and mtime are part of the key, so a replaced file is re-read.
    encoder = OpenCLIPTextEncoder(model, weights)
    emb = encoder.encode(list(class_names), template)
    return emb.cpu(), f"{encoder.provenance} template {template!r}"
