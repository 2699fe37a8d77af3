"""A Uni3D-style point transformer (registered as ``uni3d``): group tokens, a CLS token and EVA-02 blocks from timm.

References:
    Uni3D: Exploring Unified 3D Representation at Scale, Zhou et al., ICLR 2024, arXiv:2310.06773.
    EVA-02: A Visual Representation for Neon Genesis, Fang et al., arXiv:2303.11331 (the transformer blocks).
    Point-BERT, Yu et al., CVPR 2022, arXiv:2111.14819 (the group tokenizer).

Pipeline (the MRPD student, mrpd.md section 2):

1. FPS picks ``num_groups`` centres; each takes its ``group_size`` nearest neighbours (kNN), expressed relative to
   the centre, plus a constant colour channel triple when ``colour`` is set (Uni3D feeds xyz + rgb; MRPD uses 0.5).
2. A mini-PointNet turns each group into a token: per-point MLP (C_in -> t0 -> t1), max pool, concatenate the
   pooled feature to every point, MLP (2 t1 -> t2 -> encoder_dim), max pool; then a linear map to ``width``.
3. Positional embedding of each centre: MLP 3 -> 128 -> width (GELU). A learned CLS token with its own learned
   position leads the sequence.
4. ``depth`` EVA-02 blocks (timm ``EvaBlock``: q/v biases, SwiGLU MLP, pre-LayerNorm; no rotary embedding, as
   Uni3D calls the blocks directly; EVA02-Tiny fuses q, k and v into one ``qkv`` projection, EVA02-Base keeps
   ``q_proj``/``k_proj``/``v_proj`` and LayerNorms the SwiGLU hidden layer: ``qkv_fused``, ``scale_mlp``), then
   LayerNorm of the CLS output and a linear projection to ``embed_dim``, L2-normalised when ``normalize`` (Uni3D's
   CLIP space). ``pool="cls+max"`` (our ``cpu`` configuration, trained from scratch) projects the CLS output
   concatenated with the max over the group tokens, the classification input of Point-BERT; ``pool="cls"`` is
   Uni3D's and the paper and base configurations'.

Prompts (MRPD's point prompts): tokens of width ``width`` inserted right after CLS with a zero positional
embedding. ``prompt_mode="shallow"``: (1 or B, P, width), inserted at the input only and attended to by every
block. ``prompt_mode="deep"`` (VPT-deep): (1 or B, P * depth, width), split into ``depth`` consecutive chunks of P;
chunk i replaces the prompt slots at the input of block i, so every block gets its own prompts.

Like the original mini-PointNet, the tokenizer's second MLP sees ``[pooled, point]``; its first layer is applied
to the pooled half once per group instead of once per point (same function and parameters, half the work).
Official Uni3D checkpoints load through :func:`robench3d.backbones.uni3d_weights.load_uni3d_checkpoint`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from robench3d.backbones.base import Backbone, BackboneSpec, TrainRecipe
from robench3d.backbones.uni3d_weights import UNI3D_WEIGHTS, load_uni3d_checkpoint
from robench3d.errors import ConfigError
from robench3d.pointops import farthest_point_sample, gather_points, knn

__all__ = ["GroupTokenizer", "Uni3DTransformer", "UNI3D"]


class GroupTokenizer(nn.Module):
    """Mini-PointNet over each group (Point-BERT / Uni3D encoder), as rows with channels last.

    Args:
        in_ch: channels per grouped point (3, or 6 with colour).
        widths: (t0, t1, t2) hidden widths; Uni3D uses (128, 256, 512).
        out_ch: encoder_dim, the token size before the linear map to the transformer width.

    Shape:
        groups (B, G, K, in_ch) -> tokens (B, G, out_ch).
    """

    def __init__(self, in_ch: int, widths: Sequence[int], out_ch: int) -> None:
        super().__init__()
        t0, t1, t2 = widths
        self.fc1, self.bn1, self.fc2 = nn.Linear(in_ch, t0), nn.BatchNorm1d(t0), nn.Linear(t0, t1)
        self.fc3, self.bn3, self.fc4 = nn.Linear(2 * t1, t2), nn.BatchNorm1d(t2), nn.Linear(t2, out_ch)
        self.t1 = t1

    def forward(self, groups: torch.Tensor) -> torch.Tensor:
        b, g, k, c = groups.shape
        h = self.fc2(F.relu(self.bn1(self.fc1(groups.reshape(-1, c)))))  # (B*G*K, t1)
        h = h.view(b * g, k, -1)
        pooled = h.amax(dim=1)  # (B*G, t1)
        # fc3 acts on [pooled, point] (pooled first, as in Uni3D): split it into a per-group and a per-point part.
        w_pool, w_point = self.fc3.weight[:, : self.t1], self.fc3.weight[:, self.t1 :]
        h = h @ w_point.t() + (pooled @ w_pool.t() + self.fc3.bias).unsqueeze(1)
        h = F.relu(self.bn3(h.reshape(b * g * k, -1)))
        return self.fc4(h).view(b * g, k, -1).amax(dim=1).view(b, g, -1)


class Uni3DTransformer(Backbone):
    """Uni3D-style promptable point transformer.

    Args:
        num_classes: C.
        num_groups: G, FPS centres (tokens).
        group_size: K, neighbours per group.
        width: transformer width (and ``prompt_dim``).
        depth: number of EVA-02 blocks.
        heads: attention heads.
        mlp_ratio: SwiGLU hidden size / width (EVA-02: 8/3).
        qkv_fused: one fused qkv projection (EVA02-Tiny/Small) or separate q/k/v projections (EVA02-Base/Large).
        scale_mlp: a LayerNorm on the SwiGLU hidden layer (EVA02-Base/Large, timm ``scale_mlp``).
        tokenizer_widths, encoder_dim: the group tokenizer (Uni3D: (128, 256, 512), 512).
        embed_dim: D, the embedding size (Uni3D: 1024, the CLIP space of EVA02-E-14-plus).
        colour: constant colour appended to every point (6 input channels), or None for xyz only.
        normalize: L2-normalise the embedding.
        drop_path: stochastic depth rate, linearly increasing over the blocks (training only).
        prompt_mode: ``shallow`` or ``deep`` (see the module docstring).

    Shape:
        points (B, N, 3) -> logits (B, C); forward_features -> (B, width, G) (final LayerNorm-ed group tokens);
        embed -> (B, D); prompts (1 or B, P, width) shallow or (1 or B, P * depth, width) deep.
    """

    arch = "uni3d"

    def __init__(self, num_classes: int, num_groups: int = 512, group_size: int = 64, width: int = 192,
                 depth: int = 12, heads: int = 3, mlp_ratio: float = 8 / 3, qkv_fused: bool = True,
                 scale_mlp: bool = False, tokenizer_widths: Sequence[int] = (128, 256, 512), encoder_dim: int = 512,
                 embed_dim: int = 1024, colour: float | None = 0.5, normalize: bool = True, drop_path: float = 0.0,
                 prompt_mode: str = "shallow", pool: str = "cls") -> None:
        super().__init__(num_classes, embed_dim=embed_dim, prompt_dim=width)
        if prompt_mode not in ("shallow", "deep"):
            raise ConfigError(f"unknown prompt_mode {prompt_mode!r}; valid: shallow, deep")
        if pool not in ("cls", "cls+max"):
            raise ConfigError(f"unknown uni3d pool {pool!r}; valid: cls (Uni3D), cls+max (Point-BERT's head input)")
        if width % heads:
            raise ConfigError(f"uni3d width {width} must be divisible by heads {heads}; change one of them")
        from functools import partial

        from timm.models.eva import EvaBlock  # lazy: timm is heavy to import

        self.num_groups, self.group_size, self.depth = int(num_groups), int(group_size), int(depth)
        self.colour, self.normalize, self.prompt_mode, self.pool = colour, bool(normalize), prompt_mode, pool
        self.tokenizer = GroupTokenizer(3 if colour is None else 6, tokenizer_widths, encoder_dim)
        self.token_proj = nn.Linear(encoder_dim, width)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.cls_pos = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, width))
        norm = partial(nn.LayerNorm, eps=1e-6)
        rates = torch.linspace(0, drop_path, depth).tolist() if depth > 1 else [drop_path]
        self.blocks = nn.ModuleList(
            EvaBlock(width, heads, qkv_bias=True, qkv_fused=bool(qkv_fused), mlp_ratio=mlp_ratio, swiglu_mlp=True,
                     scale_mlp=bool(scale_mlp), drop_path=rate, norm_layer=norm)
            for rate in rates
        )
        self.norm = norm(width)
        self.proj = nn.Linear(width * (2 if pool == "cls+max" else 1), embed_dim)
        self._init_weights()

    def _init_weights(self) -> None:
        # ViT practice (timm's Eva init): truncated normal 0.02 for linear layers and the CLS token/position.
        for m in [*self.blocks.modules(), self.token_proj, self.proj]:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.cls_pos, std=0.02)

    def _tokens(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Group tokens (B, G, width) and their positional embeddings (B, G, width)."""
        b, n, _ = points.shape
        if n < max(self.num_groups, self.group_size):
            raise ConfigError(
                f"uni3d with {self.num_groups} groups of {self.group_size} points needs at least "
                f"{max(self.num_groups, self.group_size)} points per cloud; got {n} (use a smaller configuration)"
            )
        centres = gather_points(points, farthest_point_sample(points, self.num_groups))  # (B, G, 3)
        groups = gather_points(points, knn(centres, points, self.group_size)) - centres.unsqueeze(2)
        if self.colour is not None:
            groups = torch.cat([groups, torch.full_like(groups, self.colour)], dim=-1)
        return self.token_proj(self.tokenizer(groups)), self.pos_embed(centres)

    def _prompt_chunks(self, prompts: torch.Tensor | None, batch: int) -> list[torch.Tensor]:
        p = self.check_prompts(prompts, batch)
        if p is None:
            return []
        if self.prompt_mode == "shallow":
            return [p]
        if p.shape[1] % self.depth:
            raise ConfigError(
                f"deep prompts need P * depth tokens (depth {self.depth}); got {p.shape[1]} tokens: pass "
                f"(1 or B, P * {self.depth}, {self.prompt_dim})"
            )
        return list(p.split(p.shape[1] // self.depth, dim=1))

    def _encode(self, points: torch.Tensor, prompts: torch.Tensor | None) -> torch.Tensor:
        """All final tokens (B, 1 + P + G, width), LayerNorm-ed."""
        b = points.shape[0]
        tokens, pos = self._tokens(points)
        chunks = self._prompt_chunks(prompts, b)
        cls = (self.cls_token + self.cls_pos).expand(b, -1, -1)
        first = [chunks[0].to(tokens.dtype)] if chunks else []  # prompts carry a zero positional embedding
        x = torch.cat([cls, *first, tokens + pos], dim=1)
        n_prompt = first[0].shape[1] if first else 0
        for i, block in enumerate(self.blocks):
            if i > 0 and len(chunks) > 1:
                x = torch.cat([x[:, :1], chunks[i].to(x.dtype), x[:, 1 + n_prompt :]], dim=1)
            x = block(x)
        return self.norm(x)

    def load_pretrained(self, path: Path) -> str:
        """Load an official Uni3D checkpoint (strict key mapping); returns a note for the weights provenance."""
        return load_uni3d_checkpoint(self, path)

    def forward_features(self, points: torch.Tensor) -> torch.Tensor:
        return self._encode(points, None)[:, 1:].transpose(1, 2)

    def embed(self, points: torch.Tensor, prompts: torch.Tensor | None = None) -> torch.Tensor:
        x = self._encode(points, prompts)
        # cls: the CLS token (Uni3D). cls+max: CLS next to the max over the group tokens, the last num_groups
        # tokens whatever the prompts (Point-BERT's classification input).
        feat = x[:, 0] if self.pool == "cls" else torch.cat([x[:, 0], x[:, -self.num_groups :].amax(dim=1)], dim=-1)
        emb = self.proj(feat)
        return F.normalize(emb, dim=-1) if self.normalize else emb


UNI3D = BackboneSpec(
    name="uni3d",
    factory=Uni3DTransformer,
    configs={
        # cpu: 32 groups of 16 points, a quarter-width tokenizer (one row per grouped point), 4 blocks of width 96.
        # Measured on shapes (cosine text head, 40 epochs, one thread): 64 groups reach val 95.33% in 1060 s, 32 groups
        # the same 95.33% in 733 s, so the cheaper one is the default; a narrower model (width 64, depth 3) trailed.
        "cpu": {"num_groups": 32, "group_size": 16, "width": 96, "depth": 4, "heads": 3,
                "tokenizer_widths": (32, 64, 128), "encoder_dim": 128, "embed_dim": 256, "colour": None,
                "normalize": False, "drop_path": 0.1, "pool": "cls+max"},
        # paper: Uni3D-Ti (timm eva02_tiny_patch14_224 blocks), as the MRPD student; loads official weights.
        "paper": {"num_groups": 512, "group_size": 64, "width": 192, "depth": 12, "heads": 3,
                  "tokenizer_widths": (128, 256, 512), "encoder_dim": 512, "embed_dim": 1024, "colour": 0.5,
                  "normalize": True},
        # base: Uni3D-B, the MRPD paper code's 3D teacher; loads the official uni3d-b checkpoint (tag ``b``). Sources:
        # the blocks are timm's eva02_base_patch14_448 (the pc_model of Uni3D's scripts/inference.sh for "base"):
        # width 768 (also that script's pc_feat_dim=768), depth 12, heads 12, mlp_ratio 8/3, separate q/k/v and
        # the SwiGLU LayerNorm (timm's model args qkv_fused=False, scale_mlp=True; EVA-02 paper, arXiv:2303.11331,
        # Base = 768 x 12 layers x 12 heads); embed 1024 (--embed-dim 1024, EVA02-E-14-plus's CLIP space), 512
        # groups x 64 points and the 512-d tokenizer (--num-group 512 --group-size 64 --pc-encoder-dim 512 in the
        # same script; tokenizer widths 128/256/512 from its models/point_encoder.py). 86.95M parameters here; the
        # released model also holds the timm ViT's unused image parts (~2M), near the ~88M the Uni3D paper
        # (arXiv:2310.06773) gives Uni3D-B (that figure not re-checked offline).
        "base": {"num_groups": 512, "group_size": 64, "width": 768, "depth": 12, "heads": 12, "qkv_fused": False,
                 "scale_mlp": True, "tokenizer_widths": (128, 256, 512), "encoder_dim": 512, "embed_dim": 1024,
                 "colour": 0.5, "normalize": True},
        "test": {"num_groups": 16, "group_size": 8, "width": 16, "depth": 2, "heads": 2,
                 "tokenizer_widths": (8, 16, 16), "encoder_dim": 16, "embed_dim": 16, "colour": 0.5,
                 "normalize": False},
    },
    recipes={
        # Full clouds: kNN groups shrink with density (as DGCNN's graphs do), and the cost hardly depends on N
        # (the tokenizer runs on num_groups x group_size points whatever N is).
        # 30 epochs at lr 2e-3 without label smoothing: 20 epochs at 1e-3 with smoothing 0.1 underfit (val 85.7% vs
        # 88.0% on shapes v2).
        "cpu": TrainRecipe(epochs=40, batch_size=32, lr=2e-3, optimizer="adamw", weight_decay=0.05, grad_clip=5.0),
        "paper": TrainRecipe(epochs=300, batch_size=32, lr=5e-4, optimizer="adamw", weight_decay=0.05,
                             grad_clip=10.0),
        "base": TrainRecipe(epochs=300, batch_size=32, lr=5e-4, optimizer="adamw", weight_decay=0.05,
                            grad_clip=10.0),  # as paper; base exists to load Uni3D-B, not to be trained here
        "test": TrainRecipe(epochs=3, batch_size=16, lr=3e-3, optimizer="adamw", weight_decay=0.05),
    },
    weights=UNI3D_WEIGHTS,
    # The MRPD paper's student classifies by cosine similarity to class-name text embeddings (MiniLM by default;
    # EVA02-E-14-plus's text tower, Uni3D's zero-shot classifier, with --opt backbone.text_encoder=open_clip).
    default_head="cosine",
    description="Uni3D-style point transformer (group tokens + timm EVA-02 blocks); promptable (MRPD student)",
    paper="arXiv:2310.06773",
)
