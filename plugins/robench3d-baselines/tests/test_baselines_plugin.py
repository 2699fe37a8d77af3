"""The plugin registers through its entry point, and every defense declares its flags and variants."""

from __future__ import annotations

import importlib.metadata

import pytest

from robench3d import ConfigError, Registries
from robench3d.plugins import build_plugin_manager, build_registries, describe_plugins

NAMES = ("srs", "sor", "dupnet", "adv_train", "adv_train.head")

#: (differentiable, randomized, trains) of each defense: what the adaptive setting relies on.
FLAGS = {"srs": (False, True, False), "sor": (False, False, False), "dupnet": (False, False, True),
         "adv_train": (True, False, True), "adv_train.head": (True, False, True)}


def test_registered_through_the_entry_point() -> None:
    eps = [ep for ep in importlib.metadata.entry_points(group="robench3d") if ep.name == "baselines"]
    assert [ep.value for ep in eps] == ["robench3d_baselines.plugin"]
    pm = build_plugin_manager()
    regs = build_registries(pm)
    for name in NAMES:
        assert regs.defenses.owner(name) == "baselines (robench3d-baselines==0.1.0)"
    row = next(r for r in describe_plugins(pm) if r["plugin"] == "baselines")
    assert row["status"] == "ok" and row["hooks"] == "register_defenses"


def test_not_loaded_when_blocked() -> None:
    regs = build_registries(build_plugin_manager(blocked=["baselines"]))
    assert not any(name in regs.defenses for name in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_flags_variants_and_docs(registries: Registries, name: str) -> None:
    cls = registries.defenses.get(name)
    assert (cls.differentiable, cls.randomized, cls.trains) == FLAGS[name]
    assert cls.description and cls.references and cls.__doc__
    assert "Shape:" in (__import__(cls.__module__, fromlist=["_"]).__doc__ or "")
    default = cls()
    assert default.label == name
    for variant in cls.variants:
        assert set(cls.variants[variant]) == set(next(iter(cls.variants.values())))  # same keys everywhere


def test_named_variants_and_overrides(registries: Registries) -> None:
    sor = registries.defenses.get("sor")
    assert sor().params == {"k": 2, "alpha": 1.1, "squared": True}  # IF-Defense's code: squared distances
    assert sor("mrpd").params == {"k": 16, "alpha": 1.0, "squared": True}
    assert sor("euclidean").params == {"k": 2, "alpha": 1.1, "squared": False}
    assert sor("mrpd").label == "sor:mrpd" and sor("euclidean").label == "sor:euclidean"
    assert registries.defenses.get("dupnet")().params["sor_squared"] is True
    assert registries.defenses.get("dupnet")("cpu", {"epochs": 2}).label == "dupnet+custom"
    with pytest.raises(ConfigError, match="no parameter"):
        registries.defenses.get("adv_train")(None, {"epsilon": 0.1})
    assert "our reading" in registries.defenses.get("adv_train.head").description
