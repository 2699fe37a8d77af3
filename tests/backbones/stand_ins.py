"""Stand-ins for the weights of the MRPD paper configuration, random and tiny, in the official file layouts.

Not a ``conftest.py`` (a second conftest module would shadow ``tests/conftest.py`` for ``from conftest import``);
the MRPD plugin's tests load this file too (``plugins/robench3d-mrpd/tests/test_paper_variant.py``).

* :class:`OfficialUni3D` generalises the Uni3D-Ti stand-in of ``test_uni3d_weights.py``: the official point encoder
(the mini-PointNet with Conv1d layers, ``encoder2trans``, ``cls_token``/``cls_pos``, ``pos_embed``, a timm ViT under
``visual``, ``trans2embed``, under ``point_encoder``, plus ``logit_scale``) built around the *real* timm model the
release uses (``eva02_tiny_patch14_224`` for Uni3D-Ti, ``eva02_base_patch14_448`` for Uni3D-B), shrunk through
timm's own size arguments, so the blocks keep that model's layout (fused or separate q/k/v, SwiGLU LayerNorm).
* :func:`tiny_clip` registers a tiny open_clip config standing in for EVA02-E-14-plus (a CustomTextCLIP: its text
  tower under ``text.*``, width 32, one layer, the CLIP tokenizer and 77 positions) and writes a random model of it
  with ``torch.save``, with a ``random init`` sidecar.

Every file gets a sidecar ``<file>.json`` ``{"note": "random init, test stand-in"}``: the provenance must say so.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from robench3d.pointops import farthest_point_sample, gather_points

NOTE = "random init, test stand-in"
#: The open_clip config name of the tiny CLIP (registered by :func:`tiny_clip` for one test).
TINY_CLIP_NAME = "r3-tiny-clip"
#: Its embedding size: the tiny Uni3D stand-ins embed into it, so their cosine heads need no projection.
CLIP_DIM = 32
TINY_CLIP_CFG: dict[str, Any] = {
    "embed_dim": CLIP_DIM, "custom_text": True,
    "vision_cfg": {"image_size": 224, "layers": 1, "width": 32, "head_width": 16, "patch_size": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
#: Tiny sizes shared by the stand-ins and the uni3d configurations they are loaded into (``--opt backbone.*``).
TINY = {"num_groups": 16, "group_size": 8, "width": 16, "depth": 2, "heads": 2, "tokenizer_widths": (8, 16, 16),
        "encoder_dim": 16}


class _OfficialEncoder(nn.Module):
    def __init__(self, pc_model: str, *, width: int, depth: int, heads: int, tokenizer_widths: Sequence[int],
                 encoder_dim: int, embed_dim: int, num_groups: int, group_size: int) -> None:
        import timm

        super().__init__()
        t0, t1, t2 = tokenizer_widths
        self.num_groups, self.group_size = num_groups, group_size
        self.encoder = nn.Module()
        self.encoder.first_conv = nn.Sequential(nn.Conv1d(6, t0, 1), nn.BatchNorm1d(t0), nn.ReLU(),
                                                nn.Conv1d(t0, t1, 1))
        self.encoder.second_conv = nn.Sequential(nn.Conv1d(2 * t1, t2, 1), nn.BatchNorm1d(t2), nn.ReLU(),
                                                 nn.Conv1d(t2, encoder_dim, 1))
        self.encoder2trans = nn.Linear(encoder_dim, width)
        self.trans2embed = nn.Linear(width, embed_dim)
        self.cls_token = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        self.cls_pos = nn.Parameter(torch.randn(1, 1, width))
        self.pos_embed = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, width))
        # The release keeps timm's ImageNet head and patch embedding (unused by the point encoder): so do we.
        self.visual = timm.create_model(pc_model, pretrained=False, embed_dim=width, depth=depth, num_heads=heads,
                                        img_size=28, num_classes=10)

    def forward(self, xyz: torch.Tensor) -> torch.Tensor:
        b, g, k = xyz.shape[0], self.num_groups, self.group_size
        centre = gather_points(xyz, farthest_point_sample(xyz, g))
        idx = torch.cdist(centre, xyz).topk(k, dim=-1, largest=False).indices
        groups = gather_points(xyz, idx) - centre.unsqueeze(2)
        feats = torch.cat([groups, torch.full_like(groups, 0.5)], dim=-1).reshape(b * g, k, 6).transpose(1, 2)
        f = self.encoder.first_conv(feats)
        f = torch.cat([f.amax(dim=2, keepdim=True).expand(-1, -1, k), f], dim=1)
        tokens = self.encoder2trans(self.encoder.second_conv(f).amax(dim=2).reshape(b, g, -1))
        x = torch.cat([self.cls_token.expand(b, -1, -1), tokens], dim=1)
        x = x + torch.cat([self.cls_pos.expand(b, -1, -1), self.pos_embed(centre)], dim=1)
        for blk in self.visual.blocks:
            x = blk(x)
        return self.trans2embed(self.visual.fc_norm(self.visual.norm(x[:, 0])))


class OfficialUni3D(nn.Module):
    """``Uni3D(point_encoder=PointcloudEncoder(timm model))`` of the release, with random weights.

    Args:
        pc_model: the timm model of the release (``eva02_tiny_patch14_224``, ``eva02_base_patch14_448``).
        sizes: width, depth, heads, tokenizer_widths, encoder_dim, num_groups, group_size (see :data:`TINY`).
        embed_dim: the CLIP embedding size.
    """

    def __init__(self, pc_model: str, *, embed_dim: int, seed: int = 0, **sizes: object) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.logit_scale = nn.Parameter(torch.ones([]) * 2.659)
        self.point_encoder = _OfficialEncoder(pc_model, embed_dim=embed_dim, **sizes)  # type: ignore[arg-type]
        for m in self.modules():  # non-trivial BatchNorm statistics, so a mapping mix-up would show
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
        self.eval()

    def save(self, path: Path) -> Path:
        """Write a DeepSpeed-style ``{"module": state_dict}`` file and its provenance sidecar ``<file>.json``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"module": {f"module.{k}": v for k, v in self.state_dict().items()}, "epoch": 1}, path)
        return _note(path)


def _note(path: Path) -> Path:
    path.with_name(path.name + ".json").write_text(json.dumps({"note": NOTE}))
    return path


def tiny_clip(path: Path, monkeypatch: pytest.MonkeyPatch, seed: int = 0) -> tuple[nn.Module, Path]:
    """Register :data:`TINY_CLIP_CFG` as open_clip model :data:`TINY_CLIP_NAME` (until the test ends) and write a
    random model of it to ``path`` (whole-model state dict, as open_clip's hub files): (model, path)."""
    import open_clip
    from open_clip import factory

    monkeypatch.setitem(factory._MODEL_CONFIGS, TINY_CLIP_NAME, TINY_CLIP_CFG)  # open_clip's config registry
    torch.manual_seed(seed)
    model = open_clip.create_model(TINY_CLIP_NAME, pretrained=None).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return model, _note(path)
