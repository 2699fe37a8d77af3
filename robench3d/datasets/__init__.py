"""Datasets: the :class:`~robench3d.datasets.base.Dataset` API, the embedded default and real-format loaders."""
