"""Attacks: the :class:`~robench3d.attacks.base.Attack` API and the built-in attack suite."""
