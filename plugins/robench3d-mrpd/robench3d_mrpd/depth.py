"""Depth images of point clouds for MRPD's image teacher, in the manner of PointCLIP V2's realistic projection.

The image teacher never sees a cloud directly: each cloud becomes one or more grey depth images that an image
encoder can read. :class:`DepthProjection` does it in six batched steps (our own implementation of the steps
PointCLIP V2 describes; no gradient flows through the scatter, which a frozen teacher does not need):

1. **Normalise.** Centre each cloud on its bounding-box centre and scale it into the unit ball, so the object has
   the same size in every view and a rotation never pushes it out of the frame.
2. **Rotate to the view.** View k looks from azimuth ``360 * k / views`` degrees around the up axis (y in
   robench3d), tilted down by ``elevation`` degrees so that horizontal surfaces (seats, table tops) show.
3. **Scatter depth into a small voxel grid.** Image coordinates come from (x, y) (``fill`` of the frame is used,
   the rest is margin for the blur); depth z picks one of ``depth_bins`` slices. Each voxel keeps the largest
   *nearness* value of its points: ``depth_bias`` for the farthest point up to 1 for the nearest, so far parts
   stay visible but lighter.
4. **Densify.** A ``pool`` x ``pool`` max-pool in each depth slice closes the gaps between sparse points, then a
   Gaussian blur of ``sigma`` voxels smooths the silhouette (both only within a slice, as in PointCLIP V2).
5. **Max over depth.** The nearest surface wins in each pixel.
6. **Invert, resize, normalise.** ``1 - nearness`` makes the background white and near parts dark; the
   ``grid`` x ``grid`` image is resized to ``image_size`` pixels, copied to three channels and normalised with
   the image encoder's mean and std (ImageNet's by default).

Ours (PointCLIP V2 leaves them to its code, or fixes them differently): the ``grid`` of 64 voxels resized to the
image size, 8 depth bins, the 3-voxel max-pool, sigma 1 voxel, ``fill`` 0.85, ``depth_bias`` 0.3, the 20 degree
elevation, and bounding-box centring with unit-ball scaling. The images are deterministic: no randomness anywhere.

Shape:
    points (B, N, 3) -> images (B * views, 3, S, S), sample-major (all views of cloud 0, then cloud 1, ...).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from robench3d.errors import ConfigError

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "DepthProjection"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DepthProjection:
    """Batched PointCLIP-V2-style depth images (see the module docstring for every step and parameter).

    Attributes:
        image_size: side S of the output images, in pixels.
        views: number of views around the up axis (1: the front view only, as MRPD's released code).
        grid: side of the voxel grid the points are scattered into (resized to ``image_size`` afterwards).
        depth_bins, pool, sigma, fill, depth_bias, elevation: steps 2-4 of the module docstring.
        mean, std: the image encoder's per-channel normalisation.
    """

    image_size: int = 112
    views: int = 1
    grid: int = 64
    depth_bins: int = 8
    pool: int = 3
    sigma: float = 1.0
    fill: float = 0.85
    depth_bias: float = 0.3
    elevation: float = 20.0
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        checks = {"image_size": self.image_size >= 8, "views": self.views >= 1, "grid": self.grid >= 8,
                  "depth_bins": self.depth_bins >= 1, "pool": self.pool >= 1 and self.pool % 2 == 1,
                  "sigma": self.sigma >= 0, "fill": 0 < self.fill <= 1, "depth_bias": 0 <= self.depth_bias < 1}
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            values = ", ".join(f"{k}={getattr(self, k)!r}" for k in bad)
            raise ConfigError(f"depth projection: invalid {values}; need image_size >= 8, views >= 1, grid >= 8, "
                              "depth_bins >= 1, an odd pool >= 1, sigma >= 0, 0 < fill <= 1, 0 <= depth_bias < 1")

    def rotations(self) -> torch.Tensor:
        """The view rotations: azimuth about y, then the downward tilt about x. Shape: (views, 3, 3)."""
        out = []
        tilt = math.radians(self.elevation)
        ct, st = math.cos(tilt), math.sin(tilt)
        rx = torch.tensor([[1.0, 0.0, 0.0], [0.0, ct, -st], [0.0, st, ct]])  # raises the top towards the camera
        for k in range(self.views):
            a = 2 * math.pi * k / self.views
            ca, sa = math.cos(a), math.sin(a)
            ry = torch.tensor([[ca, 0.0, sa], [0.0, 1.0, 0.0], [-sa, 0.0, ca]])
            out.append(rx @ ry)
        return torch.stack(out)

    def _kernel(self, device: torch.device) -> torch.Tensor | None:
        if self.sigma <= 0:
            return None
        radius = max(1, math.ceil(2 * self.sigma))
        x = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
        k = torch.exp(-0.5 * (x / self.sigma) ** 2)
        return k / k.sum()

    @torch.no_grad()
    def render(self, points: torch.Tensor) -> torch.Tensor:
        """Grey depth images in [0, 1], background 1 (white), before resizing and normalisation.

        Shape:
            points (B, N, 3) -> (B, views, grid, grid).
        """
        if points.dim() != 3 or points.shape[-1] != 3:
            raise ConfigError(f"depth projection takes clouds of shape (B, N, 3); got {tuple(points.shape)}")
        pts = points.detach().float()
        b, n, _ = pts.shape
        g, d = self.grid, self.depth_bins
        # 1. normalise: bounding-box centre, unit ball
        centre = (pts.amax(dim=1, keepdim=True) + pts.amin(dim=1, keepdim=True)) / 2
        pts = pts - centre
        pts = pts / pts.norm(dim=-1).amax(dim=1).clamp_min(1e-8).view(b, 1, 1)
        # 2. rotate: (B, V, N, 3)
        view = torch.einsum("vij,bnj->bvni", self.rotations().to(pts.device), pts)
        x, y, z = view.unbind(-1)
        # 3. scatter nearness (camera on +z) into the (depth, row, col) voxels
        col = ((x * self.fill + 1) / 2 * (g - 1)).round().long().clamp(0, g - 1)
        row = ((1 - y * self.fill) / 2 * (g - 1)).round().long().clamp(0, g - 1)
        near = ((z + 1) / 2).clamp(0, 1)
        slab = (near * (d - 1)).round().long()
        value = self.depth_bias + (1 - self.depth_bias) * near
        index = ((slab * g + row) * g + col).reshape(b * self.views, n)
        vox = pts.new_zeros(b * self.views, d * g * g)
        vox.scatter_reduce_(1, index, value.reshape(b * self.views, n), reduce="amax", include_self=True)
        vox = vox.view(b * self.views, d, g, g)
        # 4. densify within each depth slice: max-pool, then a separable Gaussian blur
        if self.pool > 1:
            vox = F.max_pool2d(vox, self.pool, stride=1, padding=self.pool // 2)
        kernel = self._kernel(vox.device)
        if kernel is not None:
            r = kernel.numel() // 2
            vox = F.conv2d(vox, kernel.view(1, 1, 1, -1).expand(d, 1, 1, -1), padding=(0, r), groups=d)
            vox = F.conv2d(vox, kernel.view(1, 1, -1, 1).expand(d, 1, -1, 1), padding=(r, 0), groups=d)
        # 5-6. nearest surface per pixel, then invert: white background, dark near parts
        return (1 - vox.amax(dim=1).clamp(0, 1)).view(b, self.views, g, g)

    @torch.no_grad()
    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        """Normalised 3-channel images for the image encoder.

        Shape:
            points (B, N, 3) -> (B * views, 3, image_size, image_size), sample-major.
        """
        grey = self.render(points).flatten(0, 1).unsqueeze(1)
        if self.image_size != self.grid:
            grey = F.interpolate(grey, size=(self.image_size, self.image_size), mode="bilinear",
                                 align_corners=False, antialias=self.image_size < self.grid).clamp(0, 1)
        mean = torch.tensor(self.mean, device=grey.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=grey.device).view(1, 3, 1, 1)
        return (grey.expand(-1, 3, -1, -1) - mean) / std
