"""Typed component parameters (robench3d.params): strict parsing, declared ranges, lists, and their messages."""

from __future__ import annotations

import pytest

from robench3d.attacks.pgd import PGDLinf
from robench3d.backbones.base import TrainRecipe
from robench3d.config import parse_opts
from robench3d.defenses.base import Defense
from robench3d.errors import ConfigError
from robench3d.params import Param, infer, resolve


@pytest.mark.parametrize(("spec", "raw", "value"), [
    (Param(int), "10", 10), (Param(int), 7, 7), (Param(int), 3.0, 3), (Param(int), "-2", -2),
    (Param(float), "1e-3", 1e-3), (Param(float), ".5", 0.5), (Param(float), 2, 2.0),
    (Param(bool), "yes", True), (Param(bool), "0", False), (Param(bool), False, False),
    (Param(str), "cw", "cw"), (Param(str, nullable=True), "none", None),
    (Param(tuple, item=str), "image", ("image",)), (Param(tuple, item=str), "image,3d,text", ("image", "3d", "text")),
    (Param(tuple, item=int), "16,32", (16, 32)), (Param(tuple, item=int), (1, 2), (1, 2)),
])
def test_valid_values_parse(spec: Param, raw: object, value: object) -> None:
    assert spec.parse(raw, where="x") == value


@pytest.mark.parametrize(("spec", "raw", "needle"), [
    (Param(int), "1_0", "'1_0' is not an integer"), (Param(int), 2.5, "2.5 is not an integer"),
    (Param(int), "2.5", "'2.5' is not an integer"), (Param(int), True, "True is not an integer"),
    (Param(float), "abc", "'abc' is not a number"), (Param(float), "0.1O", "'0.1O' is not a number"),
    (Param(float), "1_0", "'1_0' is not a number"), (Param(float), "inf", "is not a number"),
    (Param(float), float("nan"), "not a finite number"), (Param(bool), "maybe", "not true or false"),
    (Param(float, minimum=0), "-1", "out of range; give a number >= 0"),
    (Param(int, minimum=1), 0, "out of range; give an integer >= 1"),
    (Param(float, minimum=0, exclusive_minimum=True), 0, "> 0"),
    (Param(float, maximum=1), 1.5, "<= 1"),
    (Param(str, choices=("cw", "ce")), "mse", "'mse' is not valid; choose one of cw, ce"),
    (Param(tuple, item=str, choices=("image", "3d")), "image,rgb", "'rgb' is not valid"),
    (Param(tuple, item=int), "16,x", "'x' is not an integer"), (Param(tuple), "", "empty list"),
    (Param(str), ("a", "b"), "is a list but one value is expected"),
    (Param(int), None, "none is not allowed"),
])
def test_invalid_values_name_the_value_and_what_is_valid(spec: Param, raw: object, needle: str) -> None:
    with pytest.raises(ConfigError, match="^where: ") as info:
        spec.parse(raw, where="where")
    assert needle in str(info.value)


def test_inference_from_defaults() -> None:
    assert infer(3).type is int and infer(0.5).type is float and infer(True).type is bool
    assert infer(("image", "3d")) == Param(tuple, item=str) and infer(None).nullable


def test_resolve_reports_unknown_keys_with_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"attack 'x' has no parameter 'epz'; valid: eps, steps"):
        resolve({"eps": 0.1, "steps": 3}, {"epz": 1}, owner="attack 'x'")


def test_tuple_default_takes_a_comma_list_not_characters() -> None:
    """--opt defense.X=image against a tuple default gave ('i','m','a','g','e') before typed parameters."""

    class Teachers(Defense):
        name = "teachers_demo"
        variants = {"default": {"teachers": ("image", "3d", "text"), "epochs": 3}}

        def build(self, ctx: object) -> object:
            raise NotImplementedError

    opts = parse_opts(["defense.teachers=image", "defense.epochs=4"])["defense"]
    d = Teachers(None, opts)
    assert d.params == {"teachers": ("image",), "epochs": 4} and d.label == "teachers_demo+custom"
    assert Teachers(None, {"teachers": "image,text"}).params["teachers"] == ("image", "text")
    with pytest.raises(ConfigError, match="defense 'teachers_demo' parameter 'epochs': 2.5 is not an integer"):
        Teachers(None, parse_opts(["defense.epochs=2.5"])["defense"])
    assert Teachers(None, {"epochs": 3}).label == "teachers_demo"  # the default value is not an override


def test_attack_ranges_are_checked_at_construction() -> None:
    with pytest.raises(ConfigError, match="attack 'pgd_linf' parameter 'eps': -1 is out of range"):
        PGDLinf("quick", {"eps": -1})
    with pytest.raises(ConfigError, match="parameter 'steps': 0 is out of range"):
        PGDLinf("quick", {"steps": 0})
    a = PGDLinf("quick", {"steps": "3"})
    assert a.params["steps"] == 3 and a.preset == "custom" and a.changed_params() == {"steps": 3}
    assert PGDLinf("quick", {"steps": 10}).preset == "quick"  # same as the preset: not custom


def test_every_registered_attack_preset_satisfies_its_declared_ranges() -> None:
    from robench3d.plugins import build_plugin_manager, build_registries

    regs = build_registries(build_plugin_manager())
    for name in regs.attacks.names():
        cls = regs.attacks.get(name)
        for preset, values in cls.presets.items():
            resolve(values, None, owner=f"attack {name!r} preset {preset!r}", declared=cls.specs(),
                    check_defaults=True)


def test_training_recipe_options_are_typed() -> None:
    recipe = TrainRecipe()
    assert recipe.with_overrides(epochs="5", grad_clip="none").epochs == 5
    assert recipe.with_overrides(grad_clip="2.5").grad_clip == 2.5
    with pytest.raises(ConfigError, match="'epochs': 2.5 is not an integer"):
        recipe.with_overrides(epochs=2.5)
    with pytest.raises(ConfigError, match="'num_points': 0 is out of range"):
        recipe.with_overrides(num_points=0)


def test_cli_guess_is_loss_free() -> None:
    opts = parse_opts(["attack.a=1_0", "attack.b=0.1O", "attack.c=1e-3", "attack.d=True", "attack.e=x,y"])
    assert opts["attack"] == {"a": "1_0", "b": "0.1O", "c": 1e-3, "d": True, "e": "x,y"}
