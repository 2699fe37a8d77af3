"""The PointCLIP-V2-style depth projection: shapes, range, white background, determinism, distinct views."""

from __future__ import annotations

import pytest
import torch

from robench3d.errors import ConfigError
from robench3d_mrpd.depth import IMAGENET_MEAN, IMAGENET_STD, DepthProjection


def _clouds(b: int = 3, n: int = 256) -> torch.Tensor:
    """Asymmetric clouds: a box plus an arm sticking out along +x near the top, so views differ."""
    g = torch.Generator().manual_seed(0)
    box = torch.rand(b, n - n // 4, 3, generator=g) * torch.tensor([0.6, 1.0, 0.4]) - 0.3
    arm = torch.rand(b, n // 4, 3, generator=g) * torch.tensor([0.8, 0.1, 0.1]) + torch.tensor([0.3, 0.5, 0.0])
    return torch.cat([box, arm], dim=1)


def test_shape_range_and_white_background() -> None:
    proj = DepthProjection(image_size=40)
    grey = proj.render(_clouds())
    assert grey.shape == (3, 1, proj.grid, proj.grid)
    assert grey.min() >= 0 and grey.max() <= 1
    assert torch.all(grey[..., 0, :] == 1) and torch.all(grey[..., :, 0] == 1)  # the margin is background
    assert (grey < 0.5).float().mean() > 0.05  # and the object is drawn in dark
    images = proj(_clouds())
    assert images.shape == (3, 3, 40, 40) and images.dtype == torch.float32
    white = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(images[0, :, 0, 0], white)  # background is white after normalisation too


def test_deterministic_and_independent_of_point_order_position_and_scale() -> None:
    proj = DepthProjection(image_size=32)
    pts = _clouds()
    first = proj(pts)
    assert torch.equal(first, proj(pts))
    assert torch.equal(first, proj(pts[:, torch.randperm(pts.shape[1])]))  # a max-scatter ignores order
    moved = proj(pts * 3 + torch.tensor([0.5, -2.0, 1.0]))  # step 1 normalises position and size away
    assert (moved - first).abs().mean() < 0.02


def test_views_differ_and_view_zero_is_the_single_view() -> None:
    pts = _clouds(2)
    one, four = DepthProjection(image_size=32), DepthProjection(image_size=32, views=4)
    images = four(pts)
    assert images.shape == (2 * 4, 3, 32, 32)
    single = one(pts)  # view 0 is the single view (up to float rounding of the batched rotation); sample-major
    assert (images[0] - single[0]).abs().mean() < 1e-3 and (images[4] - single[1]).abs().mean() < 1e-3
    for a in range(4):
        for b in range(a + 1, 4):
            assert (images[a] - images[b]).abs().mean() > 0.01
    rot = four.rotations()
    assert torch.allclose(rot @ rot.transpose(1, 2), torch.eye(3).expand(4, 3, 3), atol=1e-6)


def test_batched_projection_is_quick_on_cpu() -> None:
    import time

    proj, pts = DepthProjection(), torch.randn(32, 1024, 3)
    proj(pts)  # warm-up
    t0 = time.perf_counter()
    proj(pts)
    assert time.perf_counter() - t0 < 2.0  # ~0.06 s on the shared 2-core machine


@pytest.mark.parametrize(("kw", "needle"), [({"views": 0}, "views=0"), ({"pool": 2}, "pool=2"),
                                           ({"fill": 1.5}, "fill=1.5"), ({"image_size": 4}, "image_size=4")])
def test_bad_settings_are_config_errors_naming_the_value(kw: dict[str, float], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        DepthProjection(**kw)  # type: ignore[arg-type]


def test_wrong_shape_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"\(B, N, 3\); got \(4, 3\)"):
        DepthProjection().render(torch.zeros(4, 3))
