"""Built-in plugin: dataset loaders."""

from __future__ import annotations

from typing import TYPE_CHECKING

from robench3d.hookspecs import hookimpl

if TYPE_CHECKING:
    from robench3d.datasets.base import Dataset


@hookimpl
def robench3d_register_datasets() -> list[type[Dataset]]:
    """The embedded default dataset and the loaders for the real formats."""
    from robench3d.datasets.embedded import ShapesDataset
    from robench3d.datasets.folder import FolderDataset
    from robench3d.datasets.modelnet import ModelNet10Dataset, ModelNet40Dataset
    from robench3d.datasets.modelnet40c import ModelNet40CDataset
    from robench3d.datasets.scanobjectnn import ScanObjectNNDataset

    return [ShapesDataset, ModelNet40Dataset, ModelNet10Dataset, ScanObjectNNDataset, ModelNet40CDataset,
            FolderDataset]
