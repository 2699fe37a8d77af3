"""Loading official Uni3D-Ti checkpoints into the ``uni3d`` backbone, with synthetic weights.

No real checkpoint is available offline, so the test builds a stand-in for the official model from the published
architecture: a module whose ``state_dict()`` has exactly the official key names and shapes (the mini-PointNet
with Conv1d layers, ``encoder2trans``, ``cls_token``/``cls_pos``, ``pos_embed``, the timm
``eva02_tiny_patch14_224`` ViT under ``visual`` and ``trans2embed``, under ``point_encoder``, plus
``logit_scale``). Its forward follows the official pipeline, so loading its weights into our backbone must give
the same embedding.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from robench3d.backbones.uni3d import UNI3D
from robench3d.backbones.uni3d_weights import UNI3D_WEIGHTS, load_uni3d_checkpoint
from robench3d.errors import ConfigError
from robench3d.pointops import farthest_point_sample, gather_points


class _OfficialEncoder(nn.Module):
    """The official point encoder's layout (names, shapes, Conv1d layers) and forward pass."""

    def __init__(self) -> None:
        import timm

        super().__init__()
        self.encoder = nn.Module()
        self.encoder.first_conv = nn.Sequential(nn.Conv1d(6, 128, 1), nn.BatchNorm1d(128), nn.ReLU(),
                                                nn.Conv1d(128, 256, 1))
        self.encoder.second_conv = nn.Sequential(nn.Conv1d(512, 512, 1), nn.BatchNorm1d(512), nn.ReLU(),
                                                 nn.Conv1d(512, 512, 1))
        self.encoder2trans = nn.Linear(512, 192)
        self.trans2embed = nn.Linear(192, 1024)
        self.cls_token = nn.Parameter(torch.randn(1, 1, 192) * 0.02)
        self.cls_pos = nn.Parameter(torch.randn(1, 1, 192))
        self.pos_embed = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, 192))
        self.visual = timm.create_model("eva02_tiny_patch14_224", pretrained=False, num_classes=0)

    def forward(self, xyz: torch.Tensor) -> torch.Tensor:
        b = xyz.shape[0]
        centre = gather_points(xyz, farthest_point_sample(xyz, 512))
        idx = torch.cdist(centre, xyz).topk(64, dim=-1, largest=False).indices
        groups = gather_points(xyz, idx) - centre.unsqueeze(2)
        feats = torch.cat([groups, torch.full_like(groups, 0.5)], dim=-1).reshape(b * 512, 64, 6).transpose(1, 2)
        f = self.encoder.first_conv(feats)
        f = torch.cat([f.amax(dim=2, keepdim=True).expand(-1, -1, 64), f], dim=1)
        tokens = self.encoder2trans(self.encoder.second_conv(f).amax(dim=2).reshape(b, 512, -1))
        x = torch.cat([self.cls_token.expand(b, -1, -1), tokens], dim=1)
        x = x + torch.cat([self.cls_pos.expand(b, -1, -1), self.pos_embed(centre)], dim=1)
        for blk in self.visual.blocks:
            x = blk(x)
        return self.trans2embed(self.visual.fc_norm(self.visual.norm(x[:, 0])))


class _OfficialUni3D(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.logit_scale = nn.Parameter(torch.ones([]) * 2.659)
        self.point_encoder = _OfficialEncoder()


@pytest.fixture(scope="module")
def official() -> _OfficialUni3D:
    torch.manual_seed(0)
    model = _OfficialUni3D()
    for m in model.modules():  # non-trivial BatchNorm statistics, so a mapping mix-up would show
        if isinstance(m, nn.BatchNorm1d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def _paper_model() -> nn.Module:
    torch.manual_seed(1)
    return UNI3D.build(40, "paper").eval()


def test_weights_tags_are_honest() -> None:
    spec = UNI3D_WEIGHTS["ti"]
    assert spec.config == "paper" and spec.filename == "uni3d-ti/model.pt"
    assert spec.origin_url.startswith("https://huggingface.co/BAAI/Uni3D/") and "MIT" in spec.license
    assert UNI3D.weights is UNI3D_WEIGHTS


def test_deepspeed_checkpoint_loads_strictly_and_matches_official_forward(official: _OfficialUni3D,
                                                                          tmp_path: Path) -> None:
    state = {f"module.{k}": v for k, v in official.state_dict().items()}  # DistributedDataParallel prefix
    path = tmp_path / "model.pt"
    torch.save({"module": state, "epoch": 1}, path)
    ours = _paper_model()
    note = load_uni3d_checkpoint(ours, path)
    assert "head not in the checkpoint" in note
    assert torch.equal(ours.tokenizer.fc1.weight, official.point_encoder.encoder.first_conv[0].weight.squeeze(-1))
    assert torch.equal(ours.norm.weight, official.point_encoder.visual.fc_norm.weight)
    xyz = torch.rand(1, 600, 3, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        ref = official.point_encoder(xyz)
        emb = ours.embed(xyz)  # paper config: L2-normalised, as Uni3D normalises before the cosine
    assert torch.allclose(emb, torch.nn.functional.normalize(ref, dim=-1), atol=1e-4)


def test_half_precision_safetensors_checkpoint(official: _OfficialUni3D, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    state = {k: v.half() if v.is_floating_point() else v for k, v in official.state_dict().items()}
    path = tmp_path / "uni3d-ti.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    ours = _paper_model()
    load_uni3d_checkpoint(ours, path)
    assert ours.proj.weight.dtype == torch.float32
    assert torch.equal(ours.proj.weight, state["point_encoder.trans2embed.weight"].float())


@pytest.mark.parametrize("change", ["extra", "missing", "shape"])
def test_strictness(official: _OfficialUni3D, tmp_path: Path, change: str) -> None:
    state = dict(official.state_dict())
    if change == "extra":
        state["point_encoder.visual.blocks.12.norm1.weight"] = torch.ones(192)
    elif change == "missing":
        del state["point_encoder.visual.blocks.3.attn.qkv.weight"]
    else:
        state["point_encoder.trans2embed.weight"] = torch.zeros(512, 192)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(ConfigError, match="uni3d"):
        load_uni3d_checkpoint(_paper_model(), path)


def test_unknown_layout_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"conv1.weight": torch.zeros(3)}, path)
    with pytest.raises(ConfigError, match="do not map onto the uni3d backbone"):
        load_uni3d_checkpoint(_paper_model(), path)


def test_build_backbone_with_the_ti_tag(official: _OfficialUni3D, tmp_path: Path) -> None:
    from robench3d.config import RunConfig
    from robench3d.evaluation.components import build_backbone
    from robench3d.plugins import build_plugin_manager, build_registries

    path = tmp_path / "uni3d-ti" / "model.pt"
    path.parent.mkdir()
    torch.save({"module": official.state_dict()}, path)
    registries = build_registries(build_plugin_manager(autoload=False))
    trained = build_backbone(registries, "uni3d.ti", config=RunConfig(cache_dir=tmp_path), train_data=None,
                             num_classes=15, resolver=lambda spec: path)
    assert trained.provenance.startswith("file model.pt sha256:")
    assert "classifier head not in the checkpoint" in trained.provenance
    assert not trained.model.training
