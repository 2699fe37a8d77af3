"""The MRPD defense on the tiny data: only prompts/context/weights train, caching is exact, seeds reproduce."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import FAST

from robench3d import ConfigError
from robench3d_mrpd.model import PromptedStudent
from robench3d_mrpd.mrpd import MRPD

NO_IMAGE = {**FAST, "teachers": "3d,text"}


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_only_the_learnable_parts_train_and_the_cache_is_exact(make_ctx: Any, student: Any, tiny_data: Any) -> None:
    student.model.zero_grad(set_to_none=True)
    before = _snapshot(student.model)
    ctx = make_ctx()
    defended = MRPD(None, NO_IMAGE).build(ctx)
    # nothing of the student changed, and it holds no gradient
    after = _snapshot(student.model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in student.model.parameters())
    # nothing of the teachers either (frozen, never trained by MRPD)
    teacher_3d = ctx.build_teacher("backbone", {"backbone": "pointnet:test"})
    assert not teacher_3d.training and not any(p.requires_grad for p in teacher_3d.parameters())
    text = ctx.build_teacher("mrpd_text")
    assert not any(p.requires_grad or p.grad is not None for p in text.parameters())
    classify = defended.classify
    assert isinstance(classify, PromptedStudent) and classify.prompts.shape == (1, 4, student.model.prompt_dim)
    assert defended.extra_params == 4 * student.model.prompt_dim
    assert defended.trainable_params > defended.extra_params and defended.differentiable
    assert defended.train_seconds and defended.train_seconds > 0
    assert "3d:backbone" in defended.provenance["teachers"] and "text:mrpd_text" in defended.provenance["teachers"]
    # prompts (and the prompted class embeddings) change the predictions of the frozen student
    x = torch.from_numpy(tiny_data.split("test").points[:16])
    with torch.no_grad():
        prompted, bare = defended(x), student.model(x)
    assert not torch.allclose(prompted, bare)
    # a second build loads the artifact: bit-identical predictions, no retraining
    again = MRPD(None, NO_IMAGE).build(make_ctx())
    with torch.no_grad():
        assert torch.equal(again(x), prompted)
    assert again.train_seconds == defended.train_seconds


def test_history_logs_losses_gates_weights_and_val(make_ctx: Any) -> None:
    from robench3d_mrpd.training import CODE_VERSION  # noqa: F401 - the module the history comes from

    ctx = make_ctx()
    MRPD(None, NO_IMAGE).build(ctx)
    art_dirs = list((Path(ctx.cache_dir) / "defenses" / "mrpd").glob("*/model.json"))
    import json

    infos = [json.loads(p.read_text()) for p in art_dirs]
    history = next(i["history"] for i in infos if i["key"]["params"]["teachers"] == ["3d", "text"])
    assert len(history) == 2 and [h["adv_phase"] for h in history] == [0.0, 1.0]
    for h in history:
        assert {"L_3d", "L_text", "kept_3d", "w_3d", "w_text", "val_clean", "val_pgd", "val_select"} <= set(h)
        assert 0.0 <= h["kept_3d"] <= 1.0


def test_same_seed_same_prompts(make_ctx: Any, tmp_path: Path) -> None:
    a = MRPD(None, {**NO_IMAGE, "teachers": "text"}).build(make_ctx(cache_dir=tmp_path / "a"))
    b = MRPD(None, {**NO_IMAGE, "teachers": "text"}).build(make_ctx(cache_dir=tmp_path / "b"))
    assert torch.equal(a.classify.prompts, b.classify.prompts)
    assert torch.equal(a.classify.class_embeddings, b.classify.class_embeddings)


@pytest.mark.parametrize(("opts", "needle"), [
    ({"teachers": "text", "teacher_3d": "pointnet2_ssg"}, None),
    ({"teachers": "3d", "teacher_3d": "pointnet2_ssg"}, "is the transfer surrogate"),
])
def test_the_3d_teacher_is_never_the_transfer_surrogate(make_ctx: Any, opts: dict[str, Any],
                                                        needle: str | None) -> None:
    ctx = make_ctx(surrogate="pointnet2_ssg:cpu")
    if needle is None:
        return  # without a 3D teacher there is nothing to check
    with pytest.raises(ConfigError, match=needle):
        MRPD(None, {**FAST, **opts}).build(ctx)


def test_bad_options_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="'teachers'.*'depth' is not valid"):
        MRPD(None, {"teachers": "image,depth"})
    with pytest.raises(ConfigError, match="'point_prompts': -1 is out of range"):
        MRPD(None, {"point_prompts": -1})
    with pytest.raises(ConfigError, match="'adv': 'sometimes' is not valid"):
        MRPD(None, {"adv": "sometimes"})
