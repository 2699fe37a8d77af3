"""Deprecated: the MiniLM class-name embeddings moved to :mod:`robench3d.text`; this module re-exports them."""

from robench3d.text import DEFAULT_TEMPLATE as DEFAULT_TEMPLATE
from robench3d.text import class_name_embeddings as class_name_embeddings
from robench3d.text import encode_sentences as encode_sentences

__all__ = ["DEFAULT_TEMPLATE", "class_name_embeddings", "encode_sentences"]
