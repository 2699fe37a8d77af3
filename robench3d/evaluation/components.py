"""Building the components of a run from the registries: datasets, backbones (trained or pretrained), attacks."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from robench3d.attacks.base import Attack
from robench3d.backbones.base import BackboneSpec
from robench3d.config import ComponentRef, RunConfig, parse_ref
from robench3d.datasets.base import DatasetOptions, PreparedDataset
from robench3d.errors import ConfigError, UnknownComponentError
from robench3d.norms import Split
from robench3d.registry import Registries, split_patterns
from robench3d.training.backbone import (
    BackboneRequest,
    TrainedBackbone,
    check_trainable,
    load_weights_file,
    train_backbone,
)

__all__ = ["WeightsResolver", "backbone_label", "build_backbone", "check_backbone", "prepare_dataset",
           "select_attacks", "training_data"]

logger = logging.getLogger(__name__)

#: ``resolver(weights_spec) -> Path | None``; the CLI passes the plugin hook ``robench3d_resolve_weights``.
WeightsResolver = Callable[[Any], Any]


def prepare_dataset(registries: Registries, ref: str, *, cache_dir: Path, root: Path | None = None,
                    fmt: str | None = None, num_points: int | None = None, seed: int = 0,
                    extra: Mapping[str, Any] | None = None) -> PreparedDataset:
    """Instantiate a dataset plugin from ``name[:variant]`` and prepare it."""
    r = parse_ref(ref)
    cls = registries.datasets.get(r.name)
    options = DatasetOptions(cache_dir=cache_dir, root=root, variant=r.variant, num_points=num_points, seed=seed,
                             format=fmt, extra=dict(extra or {}))
    return cls(options).prepare()


def training_data(registries: Registries, config: RunConfig, data: PreparedDataset) -> PreparedDataset | None:
    """The data models are trained on: the dataset itself, ``--train-dataset``, or its declared ``trained_on``."""
    if config.train_dataset:
        return prepare_dataset(registries, config.train_dataset, cache_dir=config.cache_dir,
                               root=config.train_data_root, num_points=config.num_points, seed=config.seed)
    if data.has(Split.TRAIN):
        return data
    if data.trained_on and config.train_data_root is not None:
        return prepare_dataset(registries, data.trained_on, cache_dir=config.cache_dir,
                               root=config.train_data_root, num_points=config.num_points, seed=config.seed)
    return None


def _head(overrides: dict[str, Any], class_names: Sequence[str] | None, default: str = "linear"
          ) -> tuple[str, Any, str]:
    """Pop ``head`` from the backbone options (else the spec's ``default_head``): (kind, class embeddings or None,
    their provenance)."""
    asked = "head" in overrides
    head = str(overrides.pop("head", default))
    if head != "cosine":
        return head, None, ""
    if not class_names and not asked:
        return "linear", None, ""  # e.g. pretrained weights evaluated without the dataset's class names
    if not class_names:
        raise ConfigError("--opt backbone.head=cosine needs the dataset's class names, and none were available; "
                          "train on a dataset with a train split or use head=linear")
    from robench3d.text import class_name_embeddings

    emb, source = class_name_embeddings(class_names)
    return head, emb, source


def backbone_label(registries: Registries, ref: str) -> str:
    """The name rows give a backbone reference: ``arch:config`` (trained here) or ``arch.tag[:config]`` (a file)."""
    r = parse_ref(ref, tags=True)
    spec: BackboneSpec = registries.backbones.get(r.name)
    return str(r) if r.tag is not None else f"{r.name}:{r.variant or spec.default_config}"


def check_backbone(registries: Registries, ref: str, train_data: PreparedDataset | None, *, config: RunConfig,
                   resolver: WeightsResolver | None, scope: str = "backbone") -> None:
    """Raise :class:`ConfigError` now, before any training, if ``ref`` can be neither loaded nor trained, or if
    a ``--opt backbone.*`` / ``--opt train.*`` value is invalid for it."""
    r = parse_ref(ref, tags=True)
    spec: BackboneSpec = registries.backbones.get(r.name)
    if r.variant is not None and r.variant not in spec.configs:
        raise ConfigError(f"backbone {r.name!r} has no configuration {r.variant!r}; valid: {', '.join(spec.configs)}")
    overrides = config.opt(scope)
    head = str(overrides.pop("head", spec.default_head))
    if head not in ("linear", "cosine"):
        raise ConfigError(f"--opt {scope}.head={head!r} is not a head; valid: linear, cosine")
    spec.config(r.variant or (spec.weights[r.tag].config if r.tag in spec.weights else None), overrides)
    if r.tag is not None:
        _weights_path(spec, r, resolver, config.cache_dir)
        return
    spec.recipe(r.variant).with_overrides(**config.opt("train"))
    if train_data is None:
        raise ConfigError(
            f"backbone {r.name!r} must be trained but the dataset has no train split; pass pretrained weights "
            f"({r.name}.TAG) or --train-dataset/--train-data-root")
    check_trainable(train_data, f"backbone {r.name}")


def _weights_path(spec: BackboneSpec, r: ComponentRef, resolver: WeightsResolver | None, cache_dir: Path) -> Path:
    """The local file of a weights tag, through the ``robench3d_resolve_weights`` hook (never a download)."""
    if r.tag not in spec.weights:
        raise UnknownComponentError(
            f"backbone {r.name!r} has no weights tag {r.tag!r}; tags: {', '.join(spec.weights) or '(none)'}")
    wspec = spec.weights[r.tag]
    path = resolver(wspec) if resolver is not None else None
    if path is None:
        raise ConfigError(
            f"weights for {r.name}.{r.tag} ({wspec.filename}) are not available locally and robench3d never "
            f"downloads them: place the file in $ROBENCH3D_WEIGHTS or {cache_dir / 'weights'}"
            + (f" (origin: {wspec.origin_url})" if wspec.origin_url else ""))
    return Path(path)  # plugins may return a str


def build_backbone(registries: Registries, ref: str, *, config: RunConfig, train_data: PreparedDataset | None,
                   num_classes: int, resolver: WeightsResolver | None, scope: str = "backbone",
                   progress: Callable[[str], None] | None = None,
                   class_names: Sequence[str] | None = None) -> TrainedBackbone:
    """A ready backbone: pretrained weights for ``arch.tag`` (local files only), else trained on ``train_data``.

    ``--opt backbone.head=cosine`` selects a cosine head on MiniLM embeddings of the class names (``class_names``,
    else those of ``train_data``); the embeddings' provenance enters the training cache key.
    """
    r = parse_ref(ref, tags=True)
    spec: BackboneSpec = registries.backbones.get(r.name)
    overrides = config.opt(scope)
    names = class_names if class_names is not None else (train_data.class_names if train_data else None)
    head, class_emb, class_source = _head(overrides, names, spec.default_head)
    if r.tag is not None:
        from robench3d.cache import file_sha256

        path = _weights_path(spec, r, resolver, config.cache_dir)
        wspec = spec.weights[r.tag]
        model = spec.build(num_classes, r.variant or wspec.config, overrides, head=head, class_embeddings=class_emb)
        # Backbones whose released checkpoints use foreign key names (uni3d) bring their own strict loader.
        loader = getattr(model, "load_pretrained", None)
        note = ""
        if loader is not None:
            note = loader(path)
        else:
            load_weights_file(model, path)
        provenance = f"file {path.name} sha256:{file_sha256(path)[:12]}" + (f"; {note}" if note else "")
        return TrainedBackbone(model.eval(), str(r), provenance, path, fresh=lambda: spec.build(
            num_classes, r.variant or wspec.config, overrides, head=head, class_embeddings=class_emb))
    if train_data is None:
        raise ConfigError(
            f"backbone {r.name!r} must be trained but the dataset has no train split; pass pretrained weights "
            f"({r.name}.TAG) or --train-dataset/--train-data-root"
        )
    request = BackboneRequest(spec, r.variant, overrides, config.opt("train"), head, class_emb, class_source)
    return train_backbone(request, train_data, config, progress=progress)


def select_attacks(registries: Registries, patterns: str, exclude: str | None = None) -> list[str]:
    """Attack names for ``all``, suite names (``paper8``), globs and comma lists."""
    reg = registries.attacks
    suites: dict[str, list[str]] = {}
    for name in reg.names():
        for suite in getattr(reg.get(name), "suites", ()):
            suites.setdefault(suite, []).append(name)
    expanded: list[str] = []
    for pat in split_patterns(patterns):
        expanded.extend(suites.get(pat, [pat]))
    return reg.select(expanded, exclude)


def make_attack(registries: Registries, name: str, preset: str, overrides: Mapping[str, Any] | None,
                seed: int) -> Attack:
    """Instantiate a registered attack (the ``attack_factory`` handed to defenses)."""
    cls = registries.attacks.get(name)
    return cls(preset, overrides, seed=seed)
