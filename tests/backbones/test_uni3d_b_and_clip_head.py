"""Uni3D-B (``uni3d.b``, configuration ``base``) and cosine heads over an open_clip text tower in a local file.

``--opt backbone.text_encoder=open_clip --opt backbone.text_model=NAME --opt backbone.text_weights=FILE`` gives a
cosine head over that tower's class-name embeddings; with Uni3D's 1024-d embedding and EVA02-E-14-plus's 1024-d
text space it has no projection: Uni3D's zero-shot classifier, the MRPD paper's student classifier. Paper-size
weights cannot be had here, so tiny random stand-ins in the official layouts (``stand_ins.py``) take their place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from stand_ins import CLIP_DIM, NOTE, TINY, TINY_CLIP_NAME, OfficialUni3D, tiny_clip

from robench3d.backbones.base import CosineHead
from robench3d.backbones.uni3d import UNI3D
from robench3d.backbones.uni3d_weights import UNI3D_WEIGHTS, load_uni3d_checkpoint
from robench3d.builtin.weights import robench3d_resolve_weights
from robench3d.cache import file_sha256
from robench3d.cli import main
from robench3d.config import RunConfig
from robench3d.errors import ConfigError
from robench3d.evaluation.components import build_backbone, check_backbone
from robench3d.plugins import build_plugin_manager, build_registries
from robench3d.registry import Registries
from robench3d.text import OpenCLIPTextEncoder

NAMES = ["chair", "night_stand", "airplane"]
CLIP_FILE = "clip/tiny-clip.bin"
#: The tiny sizes as ``--opt backbone.*`` values, with the tiny CLIP's embedding size.
STUDENT = {**TINY, "tokenizer_widths": "8,16,16", "embed_dim": CLIP_DIM}


@pytest.fixture(scope="module")
def registries() -> Registries:
    return build_registries(build_plugin_manager(autoload=False))


@pytest.fixture()
def models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$ROBENCH3D_WEIGHTS with uni3d-ti/model.pt, uni3d-b/model.pt (tiny, official layouts) and a tiny CLIP."""
    folder = tmp_path / "models"
    OfficialUni3D("eva02_tiny_patch14_224", embed_dim=CLIP_DIM, **TINY).save(folder / "uni3d-ti" / "model.pt")
    OfficialUni3D("eva02_base_patch14_448", embed_dim=CLIP_DIM, seed=1, **TINY).save(folder / "uni3d-b" / "model.pt")
    tiny_clip(folder / CLIP_FILE, monkeypatch)
    monkeypatch.setenv("ROBENCH3D_WEIGHTS", str(folder))
    # uni3d.b's own configuration is paper-size: the stand-in loads into the base layout at the tiny sizes.
    monkeypatch.setitem(UNI3D.configs, "tiny_base", {**UNI3D.configs["base"], **TINY, "embed_dim": CLIP_DIM})
    return folder


def _resolver(cache: Path) -> Any:
    return lambda spec: robench3d_resolve_weights(spec, cache)


def _clip_opts(weights: str = CLIP_FILE, **extra: Any) -> dict[str, Any]:
    return {"text_encoder": "open_clip", "text_model": TINY_CLIP_NAME, "text_weights": weights, **extra}


def test_base_configuration_has_uni3d_b_sizes_and_the_b_tag_its_file() -> None:
    cfg = UNI3D.configs["base"]
    assert (cfg["width"], cfg["depth"], cfg["heads"], cfg["embed_dim"]) == (768, 12, 12, 1024)
    assert (cfg["num_groups"], cfg["group_size"], cfg["encoder_dim"]) == (512, 64, 512)
    assert cfg["qkv_fused"] is False and cfg["scale_mlp"] is True and cfg["colour"] == 0.5 and cfg["normalize"]
    spec = UNI3D_WEIGHTS["b"]
    assert (spec.filename, spec.config) == ("uni3d-b/model.pt", "base")
    assert spec.origin_url == "https://huggingface.co/BAAI/Uni3D/blob/main/modelzoo/uni3d-b/model.pt"
    model = UNI3D.build(15, "base", head="linear")
    encoder = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("head."))
    assert 86.9e6 < encoder < 87.0e6  # EVA02-Base blocks + tokenizer + projections (Uni3D-B: ~88M with timm's extras)


def test_uni3d_b_layout_loads_strictly_and_matches_the_official_forward(tmp_path: Path) -> None:
    official = OfficialUni3D("eva02_base_patch14_448", embed_dim=CLIP_DIM, **TINY)
    path = official.save(tmp_path / "model.pt")
    ours = UNI3D.build(5, "base", {**TINY, "embed_dim": CLIP_DIM}).eval()
    note = load_uni3d_checkpoint(ours, path)
    assert note.startswith(f"point encoder in the official Uni3D layout from model.pt ({NOTE})")
    assert torch.equal(ours.blocks[1].mlp.norm.weight, official.point_encoder.visual.blocks[1].mlp.norm.weight)
    xyz = torch.rand(2, 128, 3, generator=torch.Generator().manual_seed(3)) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(ours.embed(xyz), F.normalize(official.point_encoder(xyz), dim=-1), atol=1e-5)
    # the Uni3D-Ti layout (fused qkv, no SwiGLU norm) is not Uni3D-B's, and the error names the configurations
    ti = OfficialUni3D("eva02_tiny_patch14_224", embed_dim=CLIP_DIM, **TINY).save(tmp_path / "ti.pt")
    with pytest.raises(ConfigError, match="uni3d:base for Uni3D-B"):
        load_uni3d_checkpoint(UNI3D.build(5, "base", {**TINY, "embed_dim": CLIP_DIM}), ti)


def test_cosine_head_over_the_open_clip_tower_has_no_projection_when_sizes_match(
        models: Path, registries: Registries, tmp_path: Path) -> None:
    config = RunConfig(cache_dir=tmp_path / "cache", opts={"backbone": {**STUDENT, **_clip_opts()}})
    trained = build_backbone(registries, "uni3d.ti", config=config, train_data=None, num_classes=len(NAMES),
                             resolver=_resolver(config.cache_dir), class_names=NAMES)
    head = trained.model.head
    assert isinstance(head, CosineHead) and isinstance(head.proj, torch.nn.Identity)
    reference = OpenCLIPTextEncoder(TINY_CLIP_NAME, models / CLIP_FILE).encode(NAMES)
    assert torch.allclose(head.class_embeddings, reference, atol=1e-6)
    xyz = torch.rand(2, 128, 3, generator=torch.Generator().manual_seed(4)) * 2 - 1
    with torch.no_grad():  # Uni3D's zero-shot classifier: scaled cosine of the embedding and the text embeddings
        assert torch.allclose(trained.model(xyz), head.scale * trained.model.embed(xyz) @ reference.t(), atol=1e-5)
    prov = trained.provenance
    for name in ("uni3d-ti/model.pt", CLIP_FILE):
        assert f"sha256:{file_sha256(models / name)[:12]}" in prov
    assert prov.count(NOTE) == 2 and "(no projection)" in prov
    assert not any(claim in prov for claim in ("pretrained", "EVA02", "Uni3D-Ti", "Uni3D point encoder"))
    assert f"cosine head on open_clip {TINY_CLIP_NAME} text tower" in prov

    # A teacher's backbone (scope "") takes the run's text space but none of the student's other options.
    teacher = build_backbone(registries, "uni3d.b:tiny_base", config=config, train_data=None,
                             num_classes=len(NAMES), resolver=_resolver(config.cache_dir), class_names=NAMES,
                             scope="")
    assert torch.equal(teacher.model.head.class_embeddings, head.class_embeddings)
    assert isinstance(teacher.model.head.proj, torch.nn.Identity) and len(teacher.model.blocks[0].mlp.norm.weight)
    assert f"sha256:{file_sha256(models / 'uni3d-b/model.pt')[:12]}" in teacher.provenance


def test_a_smaller_embedding_gets_a_projection_and_says_so(models: Path, registries: Registries,
                                                           tmp_path: Path) -> None:
    small = OfficialUni3D("eva02_tiny_patch14_224", embed_dim=16, **TINY).save(tmp_path / "small" / "model.pt")
    cache = tmp_path / "cache"
    config = RunConfig(cache_dir=cache, opts={"backbone": {**STUDENT, "embed_dim": 16, **_clip_opts()}})
    trained = build_backbone(registries, "uni3d.ti", config=config, train_data=None, num_classes=len(NAMES),
                             class_names=NAMES, resolver=lambda spec: small if spec.tag == "ti" else
                             robench3d_resolve_weights(spec, cache))
    proj = trained.model.head.proj
    assert isinstance(proj, torch.nn.Linear) and (proj.in_features, proj.out_features) == (16, CLIP_DIM)
    assert trained.provenance.endswith("(a projection initialised here, untrained)")


def test_the_training_cache_key_follows_the_text_tower(models: Path, registries: Registries, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from robench3d.evaluation.components import prepare_dataset

    other = tmp_path / "other" / "clip.bin"
    tiny_clip(other, monkeypatch, seed=1)
    data = prepare_dataset(registries, "shapes:tiny", cache_dir=tmp_path / "cache", num_points=128)
    dirs = []
    for weights in (CLIP_FILE, str(other)):
        config = RunConfig(cache_dir=tmp_path / "cache", opts={"backbone": _clip_opts(weights),
                                                               "train": {"epochs": 1}})
        trained = build_backbone(registries, "uni3d:test", config=config, train_data=data,
                                 num_classes=data.num_classes, resolver=_resolver(config.cache_dir))
        assert isinstance(trained.model.head, CosineHead) and trained.model.head.class_embeddings.shape[1] == 32
        dirs.append(trained.path.parent)
    assert dirs[0] != dirs[1]


@pytest.mark.parametrize(("opts", "needle"), [
    ({"text_encoder": "bert"}, "--opt backbone.text_encoder='bert' is not a text encoder; valid: minilm, open_clip"),
    ({"text_encoder": "open_clip"}, "needs --opt backbone.text_model=<config name, e.g. EVA02-E-14-plus> and --opt "
                                    "backbone.text_weights="),
    ({"text_weights": "x.bin"}, "--opt backbone.text_weights applies to --opt backbone.text_encoder=open_clip only"),
    ({"head": "linear", **_clip_opts()}, "chooses the text space of a cosine head, but --opt backbone.head=linear"),
    (_clip_opts(text_model="no-such-clip"), "open_clip has no model config 'no-such-clip'"),
    (_clip_opts("nowhere/clip.bin"), "--opt backbone.text_weights: the weights file 'nowhere/clip.bin' is not an "
                                     "existing path and was not found as $ROBENCH3D_WEIGHTS/nowhere/clip.bin"),
])
def test_head_options_are_checked_before_any_training(opts: dict[str, Any], needle: str, models: Path,
                                                      registries: Registries, tmp_path: Path) -> None:
    config = RunConfig(cache_dir=tmp_path / "cache", opts={"backbone": {**STUDENT, **opts}})
    with pytest.raises(ConfigError) as err:
        check_backbone(registries, "uni3d.ti", None, config=config, resolver=_resolver(config.cache_dir))
    assert needle in str(err.value)


@pytest.mark.parametrize("missing", ["uni3d-ti/model.pt", CLIP_FILE])
def test_a_missing_weights_file_is_exit_2_naming_it_and_robench3d_weights(
        missing: str, models: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    (models / missing).unlink()
    monkeypatch.setenv("ROBENCH3D_CACHE", str(tmp_path / "cache"))
    opts = [f"--opt=backbone.{k}={v}" for k, v in {**STUDENT, **_clip_opts()}.items()]
    code = main(["run", "--dataset", "shapes:tiny", "--num-points", "128", "--backbone", "uni3d.ti", *opts,
                 "--n", "4", "--attacks", "fgsm", "--output", str(tmp_path / "out"), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and missing in err and "$ROBENCH3D_WEIGHTS" in err and "Traceback" not in err
