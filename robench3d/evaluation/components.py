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

__all__ = ["TEXT_OPTIONS", "WeightsResolver", "backbone_label", "build_backbone", "check_backbone", "prepare_dataset",
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
        return data.for_training()  # test_duplicates=drop trains the same models as keep
    if data.trained_on and config.train_data_root is not None:
        return prepare_dataset(registries, data.trained_on, cache_dir=config.cache_dir,
                               root=config.train_data_root, num_points=config.num_points, seed=config.seed)
    return None


#: The text-space options of a cosine head among the ``--opt backbone.*`` values (``_head`` pops them, with ``head``).
TEXT_OPTIONS = ("text_encoder", "text_model", "text_weights")
TEXT_ENCODERS = ("minilm", "open_clip")


def _text_options(overrides: dict[str, Any], scope: str) -> dict[str, str]:
    """Pop and check the text-space options of a cosine head: ``text_encoder`` (``minilm``, the default, or
    ``open_clip``), and for open_clip ``text_model`` (a config name or ``.json``) and ``text_weights`` (a path, or
    a file name looked up like a weights tag: ``$ROBENCH3D_WEIGHTS/<name>``, ``<cache>/weights/<name>``)."""
    raw = {k: overrides.pop(k) for k in TEXT_OPTIONS if k in overrides}
    text = {k: "" if raw.get(k) is None else str(raw[k]) for k in TEXT_OPTIONS}
    text["text_encoder"] = text["text_encoder"] or "minilm"
    if text["text_encoder"] not in TEXT_ENCODERS:
        raise ConfigError(f"--opt {scope}.text_encoder={text['text_encoder']!r} is not a text encoder; valid: "
                          f"{', '.join(TEXT_ENCODERS)} (minilm: bundled, the default; open_clip: a local file)")
    if text["text_encoder"] == "open_clip":
        missing = [k for k in ("text_model", "text_weights") if not text[k]]
        if missing:
            raise ConfigError(f"--opt {scope}.text_encoder=open_clip needs " + " and ".join(
                f"--opt {scope}.{k}=" + ("<config name, e.g. EVA02-E-14-plus>" if k == "text_model" else
                                         "<a path, or a file name in $ROBENCH3D_WEIGHTS>") for k in missing))
    else:
        given = [k for k in ("text_model", "text_weights") if text[k]]
        if given:
            raise ConfigError(f"--opt {scope}.{given[0]} applies to --opt {scope}.text_encoder=open_clip only; the "
                              "bundled MiniLM takes no model or weights")
    return text


def _text_weights(text: Mapping[str, str], resolver: WeightsResolver | None, cache_dir: Path | None,
                  scope: str) -> Path:
    """The local file of ``text_weights``: an existing path, else a file name found by the weights resolver."""
    from robench3d.backbones.base import WeightsSpec
    from robench3d.text import locate_weights

    def find(name: str) -> Any:
        spec = WeightsSpec(tag="text_weights", filename=name, config="",
                           description=f"open_clip {text['text_model']} text tower")
        return resolver(spec) if resolver is not None else None

    return locate_weights(text["text_weights"], find, what=f"--opt {scope}.text_weights", cache_dir=cache_dir)


def _head(overrides: dict[str, Any], class_names: Sequence[str] | None, default: str = "linear", *,
          resolver: WeightsResolver | None = None, cache_dir: Path | None = None, scope: str = "backbone"
          ) -> tuple[str, Any, str]:
    """Pop the head options from the backbone options: (kind, class embeddings or None, their provenance).

    ``head`` (else the spec's ``default_head``) is ``linear`` or ``cosine``. A cosine head classifies by cosine
    similarity to text embeddings of the class names, from ``text_encoder``: the bundled MiniLM (default) or an
    open_clip text tower in a local file (``text_model``, ``text_weights``; see :func:`_text_options`). When the
    text space has the backbone's embedding size the head has no projection: Uni3D's zero-shot classifier.
    Non-cosine heads ignore the text options (one ``--opt backbone.*`` set serves several backbones).
    """
    asked = "head" in overrides or any(k in overrides for k in TEXT_OPTIONS)
    head = str(overrides.pop("head", default))
    text = _text_options(overrides, scope)
    if head != "cosine":
        return head, None, ""
    if not class_names and not asked:
        return "linear", None, ""  # e.g. pretrained weights evaluated without the dataset's class names
    if not class_names:
        raise ConfigError(f"--opt {scope}.head=cosine needs the dataset's class names, and none were available; "
                          f"train on a dataset with a train split or use --opt {scope}.head=linear")
    if text["text_encoder"] == "open_clip":
        from robench3d.text import open_clip_class_embeddings

        emb, source = open_clip_class_embeddings(class_names, text["text_model"],
                                                 _text_weights(text, resolver, cache_dir, scope))
    else:
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
    explicit = overrides.get("head")
    head = str(overrides.pop("head", spec.default_head))
    if head not in ("linear", "cosine"):
        raise ConfigError(f"--opt {scope}.head={head!r} is not a head; valid: linear, cosine")
    given = [k for k in TEXT_OPTIONS if k in overrides]
    text = _text_options(overrides, scope)  # the options _head reads, checked the same way
    if given and explicit is not None and head != "cosine":
        raise ConfigError(f"--opt {scope}.{given[0]} chooses the text space of a cosine head, but --opt "
                          f"{scope}.head={head}; drop one of them")
    if head == "cosine" and text["text_encoder"] == "open_clip":
        from robench3d.text.openclip import resolve_config

        resolve_config(text["text_model"])  # a known config with a supported text tower
        _text_weights(text, resolver, config.cache_dir, scope)  # the file exists (it is read when built)
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

    ``--opt backbone.head=cosine`` selects a cosine head on text embeddings of the class names (``class_names``,
    else those of ``train_data``): MiniLM's, or an open_clip tower's with ``--opt backbone.text_encoder=open_clip``
    (see :func:`_head`); the embeddings' provenance enters the training cache key and, for loaded weights, the
    provenance. ``scope=""`` (a teacher's backbone) takes none of the ``--opt backbone.*`` options except the text
    space (``text_*``): a teacher with a cosine head classifies against the same class embeddings as the student.
    """
    r = parse_ref(ref, tags=True)
    spec: BackboneSpec = registries.backbones.get(r.name)
    if scope:
        overrides = config.opt(scope)
    else:
        overrides = {k: v for k, v in config.opt("backbone").items() if k in TEXT_OPTIONS}
    names = class_names if class_names is not None else (train_data.class_names if train_data else None)
    head, class_emb, class_source = _head(overrides, names, spec.default_head, resolver=resolver,
                                          cache_dir=config.cache_dir, scope=scope or "backbone")
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
        if class_source:
            from torch import nn

            proj = "no projection" if isinstance(getattr(model.head, "proj", None), nn.Identity) else \
                "a projection initialised here, untrained"
            provenance += f"; cosine head on {class_source} ({proj})"
        return TrainedBackbone(model.to(config.device).eval(), str(r), provenance, path, fresh=lambda: spec.build(
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
