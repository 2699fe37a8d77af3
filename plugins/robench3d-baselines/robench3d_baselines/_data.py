"""Training batches for the baselines: a deterministic subset of a split, shuffled per epoch, with augmentation."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

from robench3d import Split

__all__ = ["subset_indices", "epoch_batches"]


def subset_indices(total: int, limit: int, seed: int) -> np.ndarray:
    """``limit`` indices of ``total`` drawn once from ``seed`` (all, in order, when ``limit`` is 0 or too large).

    A random subset rather than the first ``limit`` samples: stored orders can be sorted by class.
    """
    if limit <= 0 or limit >= total:
        return np.arange(total)
    return np.sort(np.random.default_rng([seed, 0xBA5E]).choice(total, size=limit, replace=False))


def epoch_batches(data: object, split: Split | str, batch_size: int, *, epoch: int, seed: int, limit: int = 0,
                  augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
                  ) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """Shuffled batches of a (subset of a) split for one epoch: ``(index, points, labels)``.

    Deterministic given ``(seed, epoch)``, as the shared Trainer requires for resuming; a last partial batch is
    dropped when the subset holds at least one full batch (BatchNorm dislikes tiny batches).

    Shape: points (B, N, 3) float32, labels (B,) int64.
    """
    arrays = data.split(split)  # type: ignore[attr-defined]
    idx = subset_indices(len(arrays), limit, seed)
    order = idx[np.random.default_rng([seed, epoch, 0x0E]).permutation(len(idx))]
    gen = torch.Generator().manual_seed(seed * 10_007 + epoch)
    drop_last = len(order) >= batch_size
    for i, start in enumerate(range(0, len(order), batch_size)):
        sel = order[start : start + batch_size]
        if drop_last and len(sel) < batch_size:
            break
        pts = torch.from_numpy(np.ascontiguousarray(arrays.points[sel]))
        if augment is not None:
            pts = augment(pts, gen)
        yield i, pts, torch.from_numpy(arrays.labels[sel])
