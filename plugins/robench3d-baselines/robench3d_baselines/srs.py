"""``srs``: simple random sampling, the IF-Defense baseline that drops 500 of 1024 points uniformly at random.

Every cloud loses ``drop`` points chosen uniformly without replacement (independently per cloud and per call), and
is padded back to N by repeating its kept points cyclically (protocol.md section 2), so batches stay (B, N, 3).
With ``scale_with_n`` (the default) ``drop`` is read as "out of 1024" and scaled to the cloud's N (125 of 256
points), so the defense removes the same fraction at every resolution.

The transform is random and non-differentiable: ``randomized = True`` and ``differentiable = False`` make the
adaptive setting attack it with BPDA (identity backward pass through the sampling) and EOT over its draws.
Nothing is added or trained: ``extra_params = trainable_params = 0``, ``train_seconds = None``.

References:
    Yang et al. Adversarial Attack and Defense on Point Sets. arXiv:1902.10899 (simple random sampling).
    Wu et al. IF-Defense: 3D Adversarial Point Cloud Defense via Implicit Function based Restoration.
    arXiv:2010.05272 (the 500-of-1024 setting).

Shape:
    points (B, N, 3) -> (B, N, 3), every output point one of the cloud's input points.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import torch

from robench3d import ConfigError, PreprocessingDefense
from robench3d.params import Param

__all__ = ["SimpleRandomSampling", "random_subset", "random_subset_indices"]

logger = logging.getLogger(__name__)

#: The point count the published ``drop`` refers to (IF-Defense drops 500 of 1024).
REFERENCE_N = 1024


def random_subset(points: torch.Tensor, keep: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Keep ``keep`` points of every cloud, uniformly without replacement, padded back to N by cyclic repetition.

    Kept points stay in their input order (sorting the sampled indices costs nothing and makes outputs easy to
    compare). Randomness comes from ``generator`` (on the points' device), else the global torch RNG (which
    robench3d seeds per cell).

    Shape: points (B, N, 3) -> (B, N, 3).
    """
    idx = random_subset_indices(points, keep, generator)
    return torch.gather(points, 1, idx.unsqueeze(-1).expand(-1, -1, 3))


def random_subset_indices(points: torch.Tensor, keep: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """The indices :func:`random_subset` gathers (same random numbers). Shape: (B, N, 3) -> (B, N) long."""
    b, n, _ = points.shape
    if not 0 < keep <= n:
        raise ConfigError(f"cannot keep {keep!r} of {n} points; keep must be in [1, {n}]")
    # argsort of uniform noise is a uniform random permutation per row, vectorised over the batch.
    noise = torch.rand(b, n, generator=generator, device=points.device)
    kept = noise.argsort(dim=1)[:, :keep].sort(dim=1).values
    cyclic = torch.arange(n, device=points.device) % keep
    return kept[:, cyclic]


class SimpleRandomSampling(PreprocessingDefense):
    """Drop ``drop`` points at random (of 1024, scaled to N when ``scale_with_n``), pad back by duplication.

    Args:
        variant: ``default`` (drop 500, scale_with_n True).
        overrides: ``drop`` (int >= 0, and < N once scaled), ``scale_with_n`` (bool).
    """

    name: ClassVar[str] = "srs"
    variants: ClassVar[dict[str, dict[str, Any]]] = {"default": {"drop": 500, "scale_with_n": True}}
    param_specs: ClassVar[dict[str, Param]] = {
        "drop": Param(int, minimum=0, help=f"points dropped (of {REFERENCE_N} when scale_with_n)"),
        "scale_with_n": Param(bool, help=f"read drop as out of {REFERENCE_N} points and scale it to N"),
    }
    differentiable: ClassVar[bool] = False
    randomized: ClassVar[bool] = True
    description: ClassVar[str] = ("simple random sampling: drop 500 of 1024 points at random (scaled to N), pad by "
                                  "duplication; BPDA + EOT in the adaptive setting")
    references: ClassVar[str] = "Yang et al. 2019, arXiv:1902.10899; IF-Defense, arXiv:2010.05272"

    def num_dropped(self, num_points: int) -> int:
        """How many points are dropped from a cloud of ``num_points``."""
        drop = int(self.params["drop"])
        if self.params["scale_with_n"]:
            drop = round(drop * num_points / REFERENCE_N)
        if not 0 <= drop < num_points:
            raise ConfigError(
                f"srs would drop {drop} of {num_points} points; set --opt defense.drop to a value in "
                f"[0, {num_points - 1}] (it is scaled from {REFERENCE_N} points when scale_with_n is true)"
            )
        return drop

    def transform(self, points: torch.Tensor) -> torch.Tensor:
        """Randomly subsample every cloud and pad it back. Shape: (B, N, 3) -> (B, N, 3)."""
        n = points.shape[1]
        return random_subset(points, n - self.num_dropped(n))

    def select(self, points: torch.Tensor) -> torch.Tensor:
        """The indices :meth:`transform` keeps (same random numbers). Shape: (B, N, 3) -> (B, N) long."""
        n = points.shape[1]
        return random_subset_indices(points, n - self.num_dropped(n))
