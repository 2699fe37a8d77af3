"""Train (or load from the cache) a backbone on a prepared dataset, with full provenance.

Weights are cached under ``<cache>/backbones/<arch>/<key>/`` where ``key`` hashes the full configuration
(architecture, configuration, overrides, head, training recipe, dataset name + version, seed): ``model.safetensors``
plus ``model.json`` (configuration, recipe, validation accuracy, training time, weights provenance). An interrupted
training resumes from ``checkpoint.pt`` (loaded with ``weights_only=True``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from robench3d.artifacts import Artifact
from robench3d.backbones.base import Backbone, BackboneSpec, TrainRecipe
from robench3d.datasets.base import PreparedDataset
from robench3d.errors import ConfigError
from robench3d.norms import Split
from robench3d.training.trainer import Trainer, TrainerConfig

__all__ = ["BackboneRequest", "TrainSettings", "TrainedBackbone", "accuracy", "augment", "check_trainable",
           "load_weights_file", "train_backbone"]

logger = logging.getLogger(__name__)

#: Bump when the training loop changes in a way that changes the weights it produces.
TRAIN_CODE_VERSION = 1


@dataclass
class TrainedBackbone:
    """A ready backbone and where its weights came from (recorded in every result row).

    Attributes:
        model: the network (eval mode); copy it before training it.
        name: its row label (``arch:config`` or ``arch.tag``).
        provenance: "trained here on ...", or the weights file and its hash.
        path: the weights file; ``info``: the training sidecar (configuration, recipe, ``train_seconds``, ...).
        fresh: ``fresh()`` builds a newly initialised model of the same architecture, configuration and head
            (for defenses that retrain from scratch), seeded by the caller.
    """

    model: Backbone
    name: str
    provenance: str
    path: Path | None = None
    info: dict[str, Any] = dataclasses.field(default_factory=dict)
    fresh: Callable[[], Backbone] | None = None


def augment(points: torch.Tensor, gen: torch.Generator, recipe: TrainRecipe) -> torch.Tensor:
    """IF-Defense training augmentation: random rotation about the up (y) axis and clipped Gaussian jitter."""
    b = points.shape[0]
    if recipe.num_points is not None and recipe.num_points < points.shape[1]:
        # Train on a random subset of the points: cheaper steps on CPU, and a density augmentation.
        idx = torch.randperm(points.shape[1], generator=gen)[: recipe.num_points]
        points = points[:, idx]
    if recipe.rotate:
        theta = torch.rand(b, generator=gen) * 2 * math.pi
        c, s = torch.cos(theta), torch.sin(theta)
        zero, one = torch.zeros(b), torch.ones(b)
        rot = torch.stack([c, zero, s, zero, one, zero, -s, zero, c], dim=1).view(b, 3, 3)
        points = points @ rot.to(points.dtype)
    if recipe.jitter_sigma > 0:
        noise = torch.randn(points.shape, generator=gen) * recipe.jitter_sigma
        points = points + noise.clamp(-recipe.jitter_clip, recipe.jitter_clip).to(points.dtype)
    return points


@torch.no_grad()
def accuracy(model: torch.nn.Module, data: PreparedDataset, split: Split | str, *, batch_size: int = 64,
             limit: int | None = None, device: str = "cpu") -> float:
    """Top-1 accuracy of ``model`` on a split."""
    model.eval()
    correct = total = 0
    for batch in data.batches(split, batch_size, limit=limit):
        pred = model(batch.points.to(device)).argmax(dim=1).cpu()
        correct += int((pred == batch.labels).sum())
        total += len(batch.labels)
    return correct / max(total, 1)


def load_weights_file(model: torch.nn.Module, path: Path) -> None:
    """Load a ``.safetensors`` (or weights-only ``.pt``) state dict strictly, without executing code."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            state = state.get("state_dict", state.get("model", state)) if isinstance(state, dict) else state
        model.load_state_dict(state, strict=True)
    except (RuntimeError, OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"cannot load weights from {path}: {exc}") from exc


def check_trainable(data: PreparedDataset, what: str) -> None:
    """Raise :class:`ConfigError` unless ``data`` has a train split that a network with BatchNorm can train on."""
    if not data.has(Split.TRAIN):
        raise ConfigError(
            f"dataset {data.name!r} has no train split, so {what!r} cannot be trained on it; use pretrained "
            "weights (--backbone ARCH.TAG) or train on the dataset it belongs to (--train-dataset)")
    ntrain = len(data.split(Split.TRAIN))
    if ntrain < 2:
        raise ConfigError(
            f"dataset {data.name!r} has {ntrain} training cloud(s); training {what!r} needs at least 2 (batch "
            "normalisation cannot train on batches of one cloud): add training data or lower "
            "--opt dataset.val_fraction")


@dataclass(frozen=True)
class BackboneRequest:
    """Which backbone to train: the architecture, its named configuration, option overrides and the head.

    Attributes:
        spec: the registered :class:`~robench3d.backbones.base.BackboneSpec`.
        variant: configuration name (``cpu``, ``paper``, ``test``; ``None``: the spec's default).
        overrides: ``--opt backbone.*`` values; ``recipe_overrides``: ``--opt train.*`` values.
        head: ``linear`` or ``cosine``; ``class_embeddings`` (C, D) and ``class_embeddings_source`` (their
            provenance, part of the cache key) for a cosine head.
    """

    spec: BackboneSpec
    variant: str | None = None
    overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    recipe_overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    head: str = "linear"
    class_embeddings: torch.Tensor | None = None
    class_embeddings_source: str = ""


@dataclass(frozen=True)
class TrainSettings:
    """Where and how training runs: the cache, seed and device (a run's :class:`~robench3d.config.RunConfig`
    provides them), and whether to ignore cached weights."""

    cache_dir: Path
    seed: int = 0
    device: str = "cpu"
    retrain: bool = False


def train_backbone(
    request: BackboneRequest | BackboneSpec,
    data: PreparedDataset,
    settings: TrainSettings | Any,
    *,
    progress: Callable[[str], None] | None = None,
) -> TrainedBackbone:
    """Return the trained backbone for this configuration, training it only if it is not cached.

    Args:
        request: what to train (a bare spec means its default configuration with a linear head).
        data: the training data (train split; val for selection).
        settings: a :class:`TrainSettings` or anything with ``cache_dir``, ``seed``, ``device`` (and
            optionally ``retrain``), e.g. the run's :class:`~robench3d.config.RunConfig`.

    Selection uses the validation split when the dataset has one (never test); without one the last epoch is kept
    and the provenance says so.
    """
    req = request if isinstance(request, BackboneRequest) else BackboneRequest(request)
    spec, overrides, head, class_embeddings = req.spec, dict(req.overrides), req.head, req.class_embeddings
    cache_dir, seed, device = Path(settings.cache_dir), int(settings.seed), str(settings.device)
    retrain = bool(getattr(settings, "retrain", False))
    variant = req.variant
    variant = variant or spec.default_config
    cfg = spec.config(variant, overrides)
    recipe = spec.recipe(variant).with_overrides(**dict(req.recipe_overrides))
    check_trainable(data, f"backbone {spec.name}")
    key_src = {"arch": spec.name, "variant": variant, "config": cfg, "recipe": dataclasses.asdict(recipe),
               "head": head, "class_embeddings": req.class_embeddings_source, "dataset": data.name,
               "dataset_version": data.version, "seed": seed, "code": TRAIN_CODE_VERSION}
    art = Artifact.at(cache_dir, "backbones", spec.name, key_src)
    name = f"{spec.name}:{variant}"
    torch.manual_seed(seed)  # identical initialisation for identical configurations
    model = spec.build(data.num_classes, variant, overrides, head=head, class_embeddings=class_embeddings).to(device)
    def fresh() -> Backbone:
        return spec.build(data.num_classes, variant, overrides, head=head, class_embeddings=class_embeddings)

    if art.exists() and not retrain:
        info = art.load_into(model)
        assert info is not None
        return TrainedBackbone(model.eval(), name, info["provenance"], art.weights, info, fresh)

    say = progress or (lambda msg: logger.info("%s", msg))
    ntrain = len(data.split(Split.TRAIN))
    steps = max(ntrain // recipe.batch_size, 1)
    trainer = Trainer(
        TrainerConfig(epochs=recipe.epochs, lr=recipe.lr, optimizer=recipe.optimizer,
                      weight_decay=recipe.weight_decay, min_lr=recipe.min_lr, grad_clip=recipe.grad_clip, seed=seed),
        checkpoint=None if retrain else art.checkpoint,
        progress=lambda msg: say(f"train {name} on {data.name}: {msg}"),
    )

    def batches(epoch: int) -> Any:
        return data.batches(Split.TRAIN, recipe.batch_size, shuffle=True, seed=seed * 10_007 + epoch,
                            augment=lambda p, g: augment(p, g, recipe), drop_last=ntrain >= recipe.batch_size)

    def step(m: torch.nn.Module, batch: Any) -> torch.Tensor:
        logits = m(batch.points.to(device))
        loss = F.cross_entropy(logits, batch.labels.to(device), label_smoothing=recipe.label_smoothing)
        reg = getattr(m, "regularizer", None)
        return loss + 1e-3 * reg() if reg is not None else loss

    has_val = data.has(Split.VAL)
    validate = (lambda m: accuracy(m, data, Split.VAL, device=device)) if has_val else None
    result = trainer.fit(model, batches, step, validate, steps_per_epoch=steps)
    selection = f"best val epoch {result.best_epoch}" if has_val else "last epoch (no val split)"
    info = art.save(model, {
        "name": name, "config": cfg, "recipe": dataclasses.asdict(recipe), "head": head, "dataset": data.name,
        "dataset_version": data.version, "seed": seed, "val_accuracy": result.best_score,
        "best_epoch": result.best_epoch, "selection_split": "val" if has_val else "none",
        "history": result.history}, f"trained here on {data.name}@{data.version} seed {seed}, {selection}",
        train_seconds=result.seconds)
    return TrainedBackbone(model.eval(), name, info["provenance"], art.weights, info, fresh)
