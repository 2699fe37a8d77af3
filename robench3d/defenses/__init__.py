"""Defenses: the :class:`~robench3d.defenses.base.Defense` API and the built-in ``none``."""
