"""The plugin registers through its entry point, and every defense declares its flags and variants."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from robench3d import ConfigError, Registries
from robench3d.params import resolve
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


@pytest.mark.parametrize("name", NAMES)
def test_declared_ranges_fit_every_variant(registries: Registries, name: str) -> None:
    cls = registries.defenses.get(name)
    keys = set(next(iter(cls.variants.values())))
    assert cls.param_specs and set(cls.param_specs) <= keys  # a misspelled declaration would be ignored silently
    for variant, defaults in cls.variants.items():
        resolve(defaults, None, owner=f"defense {name!r} variant {variant!r}", declared=cls.param_specs,
                check_defaults=True)


#: (defense, parameter, bad value): out of range, not a number, not an integer, not a choice.
BAD_VALUES = [
    ("sor", "k", 0), ("sor", "k", "abc"), ("sor", "k", 2.5), ("sor", "alpha", -0.1), ("sor", "squared", "maybe"),
    ("srs", "drop", -1), ("srs", "drop", "many"),
    ("dupnet", "sor_k", 0), ("dupnet", "up_ratio", 0), ("dupnet", "lr", 0), ("dupnet", "epochs", 2.5),
    ("dupnet", "in_fraction", 1.5), ("dupnet", "in_fraction", 0), ("dupnet", "arch", "huge"),
    ("dupnet", "repulsion_weight", -1),
    ("adv_train", "epochs", 2.5), ("adv_train", "epochs", 0), ("adv_train", "eps", -0.01), ("adv_train", "lr", 0),
    ("adv_train", "steps", 0), ("adv_train", "init", "pretrained"), ("adv_train", "select", "clean"),
    ("adv_train", "num_points", -1), ("adv_train.head", "init", "scratch"), ("adv_train.head", "head_init", "zero"),
]


@pytest.mark.parametrize(("name", "key", "value"), BAD_VALUES)
def test_a_bad_value_is_a_config_error_naming_the_defense_and_the_parameter(registries: Registries, name: str,
                                                                           key: str, value: object) -> None:
    with pytest.raises(ConfigError) as info:
        registries.defenses.get(name)(None, {key: value})
    assert f"defense {name!r}" in str(info.value) and repr(key) in str(info.value)


@pytest.mark.parametrize(("opt", "words"), [("defense.sor.k=0", ["'sor'", "'k'", ">= 1"]),
                                            ("defense.sor.k=abc", ["'sor'", "'k'", "not an integer"]),
                                            ("defense.adv_train.epochs=2.5", ["'adv_train'", "'epochs'"])])
def test_a_bad_value_through_the_cli_exits_2_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             opt: str, words: list[str]) -> None:
    from robench3d.cli import main

    defense = opt.split(".")[1]
    rc = main(["run", "--dataset", "shapes:tiny", "--backbone", "pointnet:test", "--num-points", "128", "--n", "8",
               "--defense", defense, "--opt", opt, "--attacks", "fgsm", "-q", "--output", str(tmp_path / "out"),
               "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert all(w in err for w in words), err
    # Nothing trained or written (the synthetic dataset may have been prepared: that takes milliseconds).
    written = [f.relative_to(tmp_path).parts[:2] for f in tmp_path.rglob("*") if f.is_file()]
    assert all(parts == ("cache", "datasets") for parts in written), written
