"""Committed leaderboards: ``leaderboards/<dataset>/<preset>/<setting>.csv``, changed only by explicit commands."""
