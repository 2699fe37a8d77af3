"""Frozen text encoders with learnable CoOp-style context: class-name embeddings for cosine heads and MRPD.

* :class:`TextEncoder` (:mod:`robench3d.text.base`): the API, ``encode(class_names, template, context)``.
* :class:`MiniLMTextEncoder`: the bundled ``all-MiniLM-L6-v2``, real pretrained weights, offline (the default).
* :class:`OpenCLIPTextEncoder`: an open_clip text tower from a local weights file; nothing is bundled, and its
  provenance records the file, its hash and a note (``random init`` for test weights).
* :func:`build_text_encoder`: either, by name.
* :func:`open_clip_class_embeddings`: fixed class embeddings of an open_clip tower from a local file (the cosine
  head of ``--opt backbone.text_encoder=open_clip``); :func:`locate_weights` finds such a file (a path, or a file
  name under ``$ROBENCH3D_WEIGHTS``).
* :func:`class_name_embeddings` / :func:`encode_sentences`: fixed MiniLM embeddings (no context), as the cosine
  heads use them; formerly in ``robench3d.backbones.text``.
"""

from __future__ import annotations

from robench3d.text.base import DEFAULT_TEMPLATE, TextEncoder, class_sentences
from robench3d.text.factory import build_text_encoder
from robench3d.text.minilm import MiniLMTextEncoder, class_name_embeddings, encode_sentences
from robench3d.text.openclip import OpenCLIPTextEncoder, open_clip_class_embeddings
from robench3d.text.openclip_weights import locate_weights

__all__ = [
    "DEFAULT_TEMPLATE",
    "MiniLMTextEncoder",
    "OpenCLIPTextEncoder",
    "TextEncoder",
    "build_text_encoder",
    "class_name_embeddings",
    "class_sentences",
    "encode_sentences",
    "locate_weights",
    "open_clip_class_embeddings",
]
