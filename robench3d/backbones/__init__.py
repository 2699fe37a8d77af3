"""Backbones: the :class:`~robench3d.backbones.base.Backbone` API and the built-in architectures."""
