"""The build context: what a defense or a teacher may use while it is built (and trained).

The evaluation layer makes one :class:`BuildContext` per (backbone, defense) of a run. It hands a component the
training data (train/val only: a component never sees the test split), the base backbone and its provenance, and
factories that go through the same paths ``robench3d run`` uses, so a distillation or prompt-tuning defense needs no
private import:

* :meth:`BuildContext.build_backbone` trains (cached) or loads any registered backbone;
* :meth:`BuildContext.build_teacher` builds, prepares and freezes a registered teacher (``--opt teacher.NAME.KEY``
  values applied), once per run;
* :meth:`BuildContext.resolve_weights` finds a local weights file through the ``robench3d_resolve_weights`` hook;
* :meth:`BuildContext.attack` instantiates a registered attack (adversarial training, static adversarial sets);
* :meth:`BuildContext.artifact` names a cached :class:`~robench3d.artifacts.Artifact` keyed by the component's
  configuration plus the data version and seed.

``DefenseContext`` (:mod:`robench3d.defenses.base`) is this class.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robench3d.artifacts import Artifact
from robench3d.errors import ConfigError

if TYPE_CHECKING:
    from robench3d.datasets.base import PreparedDataset

__all__ = ["BuildContext"]

#: Bump when a shared training path changes the tensors it produces for an unchanged configuration.
ARTIFACT_CODE_VERSION = 1


def _missing(what: str) -> Callable[..., Any]:
    def fail(*_args: Any, **_kwargs: Any) -> Any:
        raise ConfigError(f"this build context cannot {what} (it was made without a run's registries); build it "
                          "with robench3d.run_matrix or pass the factory explicitly")
    return fail


@dataclass
class BuildContext:
    """What a component may use while it is built.

    Attributes:
        train_data: the training data (train and val splits only), or ``None`` for test-only data; read it
            through :attr:`dataset`, which raises a clear error when there is none.
        backbone: the trained, undefended base backbone (an ``nn.Module``; copy it before training it).
        backbone_name: its row label, e.g. ``pointnet:cpu``.
        backbone_provenance: where its weights came from.
        base: the base backbone as a :class:`~robench3d.training.backbone.TrainedBackbone` (model, name,
            provenance, training info), when the context was made by a run.
        cache_dir, seed, device: the run's.
        registries: all registries of the run.
        progress: one-line progress messages (the CLI prints them).
        options: the run's ``--opt`` values per scope (``teacher``, ...), for components built through it.
        surrogate: the row label of the transfer surrogate that attacks this backbone in the run's ``transfer``
            setting ("" when the run has none): a distillation defense must not use it as a teacher.
    """

    train_data: PreparedDataset | None
    backbone: Any
    backbone_name: str
    cache_dir: Path
    seed: int = 0
    device: str = "cpu"
    registries: Any = None
    progress: Callable[[str], None] | None = None
    backbone_provenance: str = ""
    base: Any = None
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    surrogate: str = ""
    attack_factory: Callable[..., Any] = field(default_factory=lambda: _missing("make attacks"))
    backbone_factory: Callable[..., Any] = field(default_factory=lambda: _missing("build backbones"))
    teacher_factory: Callable[..., Any] = field(default_factory=lambda: _missing("build teachers"))
    weights_resolver: Callable[[Any], Any] | None = None

    @property
    def dataset(self) -> PreparedDataset:
        """The training data (train/val splits); a clear error when the run's data has no train split."""
        if self.train_data is None:
            raise ConfigError("this component trains, but the dataset has no train split; pass --train-dataset/"
                              "--train-data-root with the data it should train on")
        return self.train_data

    def build_backbone(self, ref: str, *, scope: str = "backbone") -> Any:
        """Train (cached by its full configuration) or load (``arch.tag``) a registered backbone, as ``run``
        does; returns a :class:`~robench3d.training.backbone.TrainedBackbone`. ``scope`` names the ``--opt``
        scope whose backbone options apply (``""``: none; ``--opt train.*`` recipe values always apply)."""
        return self.backbone_factory(ref, scope=scope)

    def build_teacher(self, ref: str, overrides: Mapping[str, Any] | None = None) -> Any:
        """A registered teacher (``name[:variant]``), prepared on the training data and frozen; built once per
        run and shared by every defense that asks for it. ``overrides`` come on top of ``--opt teacher.*``."""
        return self.teacher_factory(ref, overrides)

    def attack(self, name: str, preset: str = "standard", overrides: Mapping[str, Any] | None = None) -> Any:
        """A registered attack, configured from ``preset`` plus ``overrides``."""
        return self.attack_factory(name, preset, overrides)

    def resolve_weights(self, spec: Any) -> Path | None:
        """A local file for a :class:`~robench3d.backbones.base.WeightsSpec` (or any spec a plugin resolves),
        through the ``robench3d_resolve_weights`` hook; ``None`` when no plugin has it (robench3d never
        downloads)."""
        if self.weights_resolver is None:
            return None
        found = self.weights_resolver(spec)
        return None if found is None else Path(found)

    def artifact(self, name: str, key_source: Mapping[str, Any], *, kind: str = "defenses") -> Artifact:
        """The cached artifact of ``key_source`` plus the training data's name and version and the seed, under
        ``<cache>/<kind>/<name>/`` (``kind``: ``defenses``, ``teachers``, ``teacher_outputs``, ...)."""
        data = self.dataset
        src = {**key_source, "dataset": data.name, "dataset_version": data.version, "seed": self.seed,
               "code": ARTIFACT_CODE_VERSION}
        return Artifact.at(self.cache_dir, kind, name, src)

    def say(self, message: str) -> None:
        """Report one line of progress."""
        if self.progress is not None:
            self.progress(message)
