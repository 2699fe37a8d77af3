"""An open_clip text tower from a local file (a tiny random model here): CLIP's pooling with context inserted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from robench3d.cache import file_sha256
from robench3d.errors import ConfigError
from robench3d.text import OpenCLIPTextEncoder, build_text_encoder

NAMES = ["chair", "night_stand", "airplane"]
SENTENCES = ["a point cloud of a chair.", "a point cloud of a night stand.", "a point cloud of a airplane."]
NOTE = "random init, written by the test"
#: A tiny CLIP: 2 text layers of width 32 and a one-layer ViT on 32 px images (open_clip builds both towers).
TINY_CLIP: dict[str, Any] = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    """A randomly initialised tiny open_clip CLIP and its state dict written with torch.save."""
    import open_clip

    torch.manual_seed(0)
    model = open_clip.CLIP(**TINY_CLIP).eval()
    path = tmp_path_factory.mktemp("clip") / "tiny_clip.pt"
    torch.save(model.state_dict(), path)
    return model, path


@pytest.fixture(scope="module")
def encoder(tiny_clip: tuple[torch.nn.Module, Path]) -> OpenCLIPTextEncoder:
    _, path = tiny_clip
    enc = build_text_encoder("open_clip", model=TINY_CLIP, weights=path, provenance_note=NOTE)
    assert isinstance(enc, OpenCLIPTextEncoder)
    return enc


def _clip_text(model: torch.nn.Module, sentences: list[str]) -> torch.Tensor:
    """open_clip's own encode_text on the plain sentences (the reference)."""
    import open_clip

    with torch.no_grad():
        return F.normalize(model.encode_text(open_clip.SimpleTokenizer(context_length=16)(sentences)), dim=-1)


def test_provenance_says_random_init_and_names_the_file_hash(
    encoder: OpenCLIPTextEncoder, tiny_clip: tuple[torch.nn.Module, Path]
) -> None:
    _, path = tiny_clip
    assert f"from file tiny_clip.pt sha256:{file_sha256(path)[:12]} ({NOTE})" in encoder.provenance
    assert encoder.provenance.startswith("open_clip custom config ") and "pretrained" not in encoder.provenance
    assert (encoder.width, encoder.embed_dim, encoder.max_context) == (32, 16, 14)


def test_no_context_matches_open_clip_encode_text(
    encoder: OpenCLIPTextEncoder, tiny_clip: tuple[torch.nn.Module, Path]
) -> None:
    model, _ = tiny_clip
    emb = encoder.encode(NAMES)
    assert emb.shape == (3, 16) and torch.allclose(emb.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose(emb, _clip_text(model, SENTENCES), atol=1e-6)


def test_end_of_text_pooling_follows_the_inserted_context(
    encoder: OpenCLIPTextEncoder, tiny_clip: tuple[torch.nn.Module, Path]
) -> None:
    """Context equal to the token embedding of "x" gives open_clip's embedding of "x x x <sentence>"."""
    model, _ = tiny_clip
    eot = encoder.tokenizer.eot_token_id
    plain, shifted = encoder.token_ids(SENTENCES), encoder.token_ids(SENTENCES, k=3)
    assert torch.equal((shifted == eot).int().argmax(-1), (plain == eot).int().argmax(-1) + 3)
    context = encoder.tower.token_embedding.weight[encoder.placeholder_id].expand(3, -1)
    with torch.no_grad():
        emb = encoder.encode(NAMES, context=context)
    reference = _clip_text(model, ["x x x " + s for s in SENTENCES])
    assert torch.allclose(emb, reference, atol=1e-6)
    assert not torch.allclose(emb, _clip_text(model, SENTENCES), atol=1e-3)


def test_gradients_reach_the_context_and_never_the_tower(encoder: OpenCLIPTextEncoder) -> None:
    context = encoder.init_context(3, generator=torch.Generator().manual_seed(0))
    emb = encoder.encode(NAMES, context=context)
    target = F.normalize(torch.randn(3, 16, generator=torch.Generator().manual_seed(1)), dim=-1)
    (emb * target).sum().backward()
    assert context.grad is not None and context.grad.abs().sum() > 0
    params = list(encoder.parameters())
    assert params and all(p.grad is None and not p.requires_grad for p in params)
    encoder.train()
    assert not any(m.training for m in encoder.modules())


def test_context_size_limits(encoder: OpenCLIPTextEncoder) -> None:
    with pytest.raises(ConfigError, match="at most 14 context vectors; got k=15"):
        encoder.init_context(15)
    with pytest.raises(ConfigError, match=r"do not fit beside the sentence 'a point cloud of a night stand\.'"):
        encoder.encode(NAMES, context=torch.zeros(10, 32))


def test_custom_text_layout_safetensors_json_config_and_sidecar_note(tmp_path: Path) -> None:
    import open_clip
    from safetensors.torch import save_file

    torch.manual_seed(1)
    model = open_clip.CustomTextCLIP(**TINY_CLIP).eval()  # keys under "text."
    weights = tmp_path / "tiny_custom.safetensors"
    save_file(model.state_dict(), str(weights))
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"model_cfg": TINY_CLIP}))
    plain = build_text_encoder("open_clip", model=str(config), weights=weights)
    assert plain.provenance.endswith(f"sha256:{file_sha256(weights)[:12]}")  # no note: no claim either way
    (tmp_path / "tiny_custom.safetensors.json").write_text(json.dumps({"note": "random init (sidecar)"}))
    enc = build_text_encoder("open_clip", model=str(config), weights=weights)
    assert enc.provenance.startswith("open_clip tiny.json config ") and "(random init (sidecar))" in enc.provenance
    with torch.no_grad():
        reference = F.normalize(model.encode_text(enc.token_ids(SENTENCES)), dim=-1)
    assert torch.allclose(enc.encode(NAMES), reference, atol=1e-6)


class _Opaque:
    """A pickled object that weights_only loading must refuse."""


def test_loading_never_unpickles_code_or_downloads(tmp_path: Path, tiny_clip: tuple[torch.nn.Module, Path]) -> None:
    pickled = tmp_path / "pickled.pt"
    torch.save({"token_embedding.weight": torch.zeros(1), "extra": _Opaque()}, pickled)
    with pytest.raises(ConfigError, match="without executing pickled code"):
        build_text_encoder("open_clip", model=TINY_CLIP, weights=pickled)
    with pytest.raises(ConfigError, match="does not exist"):
        build_text_encoder("open_clip", model=TINY_CLIP, weights=tmp_path / "missing.pt")
    with pytest.raises(ConfigError, match="no model config 'hf-hub:timm/x'"):
        build_text_encoder("open_clip", model="hf-hub:timm/x", weights=tiny_clip[1])
    with pytest.raises(ConfigError, match="needs weights"):
        build_text_encoder("open_clip", model="ViT-B-32")


def test_mismatched_or_unsupported_configs_are_config_errors(tiny_clip: tuple[torch.nn.Module, Path]) -> None:
    wider = {**TINY_CLIP, "text_cfg": {**TINY_CLIP["text_cfg"], "width": 64}}
    with pytest.raises(ConfigError, match="does not fit the text tower"):
        build_text_encoder("open_clip", model=wider, weights=tiny_clip[1])
    hf = {**TINY_CLIP, "text_cfg": {**TINY_CLIP["text_cfg"], "hf_tokenizer_name": "bert-base-uncased"}}
    with pytest.raises(ConfigError, match="does not support"):
        build_text_encoder("open_clip", model=hf, weights=tiny_clip[1])
