"""The Backbone contract, for every registered backbone, on its ``test`` configuration.

Shapes and dtypes, seeded determinism, train/eval modes, gradients w.r.t. the input points (what every attack
needs), prompts (MRPD) and the cosine head. Tensors are tiny, so torch runs single-threaded here: with two
threads on a busy 2-core machine the fork/join of every small op costs more than the op.
"""

from __future__ import annotations

import pytest
import torch

from robench3d.backbones.base import Backbone, BackboneSpec, CosineHead
from robench3d.plugins import build_plugin_manager, build_registries

REGISTRIES = build_registries(build_plugin_manager(autoload=False))
NAMES = REGISTRIES.backbones.names()
B, N, C = 4, 128, 5


def _spec(name: str) -> BackboneSpec:
    return REGISTRIES.backbones.get(name)


def _build(name: str, seed: int = 0, overrides: dict | None = None, **kw: object) -> Backbone:
    torch.manual_seed(seed)
    return _spec(name).build(C, "test", overrides, **kw)  # type: ignore[arg-type]


def _points(seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, N, 3, generator=g)
    return x / x.norm(dim=-1).amax(dim=1, keepdim=True)[..., None]  # inside the unit sphere, like real data


def test_every_builtin_backbone_is_registered() -> None:
    assert {"pointnet", "pointnet2_ssg", "pointnet2_msg", "dgcnn", "uni3d"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_configurations_and_recipes(name: str) -> None:
    spec = _spec(name)
    assert {"cpu", "paper", "test"} <= set(spec.configs)
    for variant in ("cpu", "paper", "test"):
        recipe = spec.recipe(variant)
        assert recipe.epochs > 0 and recipe.batch_size > 0 and recipe.lr > 0
    assert spec.recipe("cpu").epochs <= 50, "the cpu recipe must train in minutes on 2 cores"


@pytest.mark.parametrize("name", NAMES)
def test_shapes_and_dtypes(name: str) -> None:
    model = _build(name).eval()
    x = _points()
    with torch.no_grad():
        logits, emb, feats = model(x), model.embed(x), model.forward_features(x)
    assert logits.shape == (B, C) and logits.dtype == torch.float32
    assert emb.shape == (B, model.embed_dim) and emb.dtype == torch.float32
    assert feats.dim() == 3 and feats.shape[0] == B and feats.dtype == torch.float32
    assert torch.isfinite(logits).all() and torch.isfinite(emb).all()


@pytest.mark.parametrize("name", NAMES)
def test_seed_determines_init_and_outputs(name: str) -> None:
    a, b, c = _build(name, seed=3), _build(name, seed=3), _build(name, seed=4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa if sa[k].is_floating_point())
    x = _points()
    with torch.no_grad():
        assert torch.equal(a.eval()(x), b.eval()(x))


@pytest.mark.parametrize("name", NAMES)
def test_eval_is_deterministic_and_train_moves_batchnorm(name: str) -> None:
    model = _build(name)
    x = _points()
    model.eval()
    assert not any(m.training for m in model.modules())
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    stats = {k: v.clone() for k, v in model.state_dict().items() if "running_mean" in k}
    assert stats, "every built-in backbone has BatchNorm layers"
    model.train()
    assert all(m.training for m in model.modules())
    with torch.no_grad():
        model(x)
    assert any(not torch.equal(stats[k], model.state_dict()[k]) for k in stats)


@pytest.mark.parametrize("name", NAMES)
def test_input_gradient_is_finite_and_nonzero(name: str) -> None:
    model = _build(name).eval()
    x = _points().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(model(x), torch.arange(B) % C)
    (grad,) = torch.autograd.grad(loss, x)
    assert grad.shape == x.shape and torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize("name", [n for n in NAMES if _spec(n).build(C, "test").supports_prompts])
def test_prompts_change_the_embedding_and_get_gradients(name: str) -> None:
    model = _build(name).eval()
    x = _points()
    prompts = torch.randn(1, 3, model.prompt_dim, requires_grad=True)  # type: ignore[arg-type]
    plain, prompted = model.embed(x), model.embed(x, prompts)
    assert prompted.shape == plain.shape
    assert not torch.allclose(plain, prompted)
    (grad,) = torch.autograd.grad(prompted.square().sum(), prompts)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    per_sample = model.embed(x, prompts.detach().expand(B, -1, -1))  # (B, P, D) prompts are accepted too
    assert torch.allclose(per_sample, prompted.detach(), atol=1e-5)
    with pytest.raises(Exception, match="prompts must have shape"):
        model.embed(x, torch.randn(1, 3, model.prompt_dim + 1))  # type: ignore[operator]


@pytest.mark.parametrize("name", NAMES)
def test_cosine_head(name: str) -> None:
    class_emb = torch.randn(C, 384)
    model = _build(name, head="cosine", class_embeddings=class_emb).eval()
    assert isinstance(model.head, CosineHead)
    x = _points().requires_grad_(True)
    logits = model(x)
    assert logits.shape == (B, C)
    assert logits.abs().max() <= model.head.scale + 1e-4  # scaled cosine similarities
    (grad,) = torch.autograd.grad(logits.sum(), x)
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("name", NAMES)
def test_one_training_step_changes_parameters(name: str) -> None:
    model = _build(name).train()
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss = torch.nn.functional.cross_entropy(model(_points()), torch.arange(B) % C)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    changed = sum(not torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))
    assert changed >= 0.9 * len(before)


def test_uni3d_deep_prompts_one_chunk_per_block() -> None:
    model = _build("uni3d", overrides={"prompt_mode": "deep"}).eval()
    depth, width = len(model.blocks), model.prompt_dim  # type: ignore[attr-defined]
    x = _points()
    prompts = torch.randn(1, 2 * depth, width, requires_grad=True)  # type: ignore[arg-type]
    emb = model.embed(x, prompts)
    (grad,) = torch.autograd.grad(emb.square().sum(), prompts)
    # every block's chunk reaches the output (the last one only through the last block)
    for chunk in grad.split(2, dim=1):
        assert chunk.abs().sum() > 0
    with pytest.raises(Exception, match="deep prompts need"):
        model.embed(x, torch.randn(1, 2 * depth + 1, width))  # type: ignore[operator]


def test_uni3d_shallow_prompts_use_zero_position() -> None:
    """Shallow prompts enter the first block right after CLS exactly as given (zero positional embedding)."""
    model = _build("uni3d").eval()
    x = _points()
    captured: list[torch.Tensor] = []
    hook = model.blocks[0].register_forward_pre_hook(lambda _m, args: captured.append(args[0]))  # type: ignore
    prompts = torch.randn(1, 2, model.prompt_dim)  # type: ignore[arg-type]
    with torch.no_grad():
        model.embed(x, prompts)
    hook.remove()
    assert torch.equal(captured[0][:, 1:3], prompts.expand(B, -1, -1))


def test_pointnet2_factored_first_layer_matches_grouping_first() -> None:
    """The per-point/per-centre split of the first group layer equals running it on grouped [p_j - c, f_j]."""
    from robench3d.backbones.pointnet2 import _Scale
    from robench3d.pointops import ball_query, gather_points

    torch.manual_seed(0)
    scale = _Scale(0.5, 6, (8, 12), in_ch=4).eval()
    xyz, feats = _points(), torch.randn(B, N, 4)
    centres = xyz[:, :10]
    idx = ball_query(centres, xyz, 0.5, 6)
    grouped = torch.cat([gather_points(xyz, idx) - centres.unsqueeze(2), gather_points(feats, idx)], dim=-1)
    h = torch.relu(scale.first_bn(scale.first(grouped).reshape(-1, 8)))
    ref = scale.rest(h).view(B, 10, 6, -1).amax(dim=2)
    assert torch.allclose(scale(xyz, feats, centres), ref, atol=1e-5)


def test_dgcnn_k_follows_the_cloud_size_when_configured() -> None:
    fixed = _build("dgcnn")
    assert fixed.neighbours(128) == fixed.neighbours(1024) == fixed.k  # type: ignore[operator]
    scaled = _build("dgcnn", overrides={"k": 4, "k_reference_points": 64})
    assert [scaled.neighbours(n) for n in (8, 64, 128, 1024)] == [1, 4, 8, 64]  # type: ignore[operator]
    with torch.no_grad():
        assert scaled.eval()(_points()).shape == (B, C)


def test_dgcnn_eval_shortcut_matches_edge_tensor() -> None:
    """DGCNN's eval path (max before BN) equals BN + LeakyReLU on every edge, then max."""
    from robench3d.backbones.dgcnn import EdgeConv
    from robench3d.pointops import gather_points, knn

    torch.manual_seed(0)
    conv = EdgeConv(6, 8)
    with torch.no_grad():
        conv.bn.weight.uniform_(-1, 1)  # negative scales take the min branch
        conv.bn.running_mean.normal_()
        conv.bn.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 40, 6)
    idx = knn(x, x, 5)
    xj = gather_points(x, idx)
    edges = torch.cat([xj - x.unsqueeze(2), x.unsqueeze(2).expand_as(xj)], dim=-1)
    conv.eval()
    ref = torch.nn.functional.leaky_relu(conv.bn(conv.linear(edges).reshape(-1, 8)), 0.2).view(2, 40, 5, 8)
    assert torch.allclose(conv(x, idx), ref.amax(dim=2), atol=1e-5)


@pytest.mark.parametrize("mode", ["shallow", "deep"])
def test_uni3d_cls_max_pool_uses_the_group_tokens_and_takes_prompts(mode: str) -> None:
    """``pool="cls+max"`` (the cpu configuration) adds the max over group tokens to CLS; prompts still act."""
    model = _build("uni3d", overrides={"pool": "cls+max", "prompt_mode": mode}).eval()
    assert _spec("uni3d").configs["cpu"]["pool"] == "cls+max"
    x = _points()
    depth = model.depth if mode == "deep" else 1  # type: ignore[attr-defined]
    prompts = torch.randn(1, 2 * depth, model.prompt_dim, requires_grad=True)  # type: ignore[arg-type]
    plain, prompted = model.embed(x), model.embed(x, prompts)
    assert plain.shape == (B, model.embed_dim) and not torch.allclose(plain, prompted)
    (grad,) = torch.autograd.grad(prompted.square().sum(), prompts)
    assert grad.abs().sum() > 0
    with pytest.raises(Exception, match="unknown uni3d pool"):
        _build("uni3d", overrides={"pool": "mean"})
