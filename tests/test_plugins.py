from __future__ import annotations

import types
from pathlib import Path

import pytest
from helpers import TINY_RUN, make_dist

from robench3d import hookimpl
from robench3d.cli import main
from robench3d.errors import DuplicateComponentError, PluginLoadError
from robench3d.plugins import build_plugin_manager, build_registries, describe_plugins

ROGUE_ATTACK = '''
from robench3d import hookimpl
from robench3d.attacks.fgsm import FGSM


class Rogue(FGSM):
    name = "rogue"

    def perturb(self, victim, points, labels, targets):
        res = super().perturb(victim, points, labels, targets)
        res.adv_points = points + 10 * (res.adv_points - points)  # ten times its own budget
        return res


@hookimpl
def robench3d_register_attacks():
    return [Rogue]
'''


def _module(name: str, **hooks: object) -> types.ModuleType:
    mod = types.ModuleType(name)
    for key, fn in hooks.items():
        setattr(mod, key, fn)
    return mod


def test_builtins_register_through_the_same_hooks() -> None:
    pm = build_plugin_manager(autoload=False)
    regs = build_registries(pm)
    assert "shapes" in regs.datasets and "pointnet" in regs.backbones and "none" in regs.defenses
    assert {"fgsm", "pgd_linf"} <= set(regs.attacks.names())
    assert regs.attacks.owner("fgsm") == "robench3d.builtin.attacks"


def test_autoload_env_var_disables_entry_points(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    make_dist(tmp_path, monkeypatch, "thirdparty-x", "thirdparty_x", ROGUE_ATTACK)
    assert "rogue" in build_registries(build_plugin_manager()).attacks
    monkeypatch.setenv("ROBENCH3D_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert "rogue" not in build_registries(build_plugin_manager()).attacks


def test_block_plugin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    make_dist(tmp_path, monkeypatch, "thirdparty-x", "thirdparty_x", ROGUE_ATTACK)
    assert "rogue" not in build_registries(build_plugin_manager(blocked=["thirdparty_x"])).attacks


def test_duplicate_name_names_both_plugins() -> None:
    from robench3d.attacks.fgsm import FGSM

    dup = _module("dup_plugin", robench3d_register_attacks=hookimpl(lambda: [FGSM]))
    pm = build_plugin_manager(autoload=False, extra=[dup])
    with pytest.raises(DuplicateComponentError, match="both .dup_plugin. and .robench3d.builtin.attacks."):
        build_registries(pm)
    pm = build_plugin_manager(autoload=False, extra=[dup])
    build_registries(pm, strict=False)
    assert pm.broken and "fgsm" in pm.broken[0].error


def test_misspelled_hook_is_caught_at_load() -> None:
    typo = _module("typo_plugin", robench3d_register_atacks=lambda: [])
    pm = build_plugin_manager(autoload=False, extra=[typo])
    assert len(pm.broken) == 1
    assert "robench3d_register_atacks" in pm.broken[0].error
    assert "did you mean 'robench3d_register_attacks'" in pm.broken[0].error
    with pytest.raises(PluginLoadError, match="typo_plugin"):
        pm.raise_if_broken()


def test_plugin_that_raises_on_import(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    make_dist(tmp_path, monkeypatch, "broken-dist", "broken_mod", "raise ImportError('missing dependency foo')\n",
              entry="broken")
    pm = build_plugin_manager()
    assert [b.name for b in pm.broken] == ["broken"]
    assert pm.broken[0].distribution == "broken-dist==0.1"
    rows = {r["plugin"]: r for r in describe_plugins(pm)}
    assert rows["broken"]["status"].startswith("BROKEN") and "missing dependency foo" in rows["broken"]["status"]
    # list and plugins report it (non-zero exit) but still show the healthy components
    assert main(["plugins"]) == 1
    out = capsys.readouterr()
    assert "broken-dist" in out.out and "BROKEN" in out.out
    assert main(["list", "attacks"]) == 1
    out = capsys.readouterr()
    assert "pgd_linf" in out.out and "broken" in out.err
    # run refuses to start until it is blocked
    assert main(["run", "--n", "2"]) == 2
    err = capsys.readouterr().err
    assert "plugin 'broken' (distribution broken-dist==0.1)" in err and "-p no:broken" in err
    assert "Traceback" not in err


def test_hook_that_raises_names_plugin() -> None:
    def boom() -> list[object]:
        raise RuntimeError("kaboom")

    bad = _module("bad_register", robench3d_register_defenses=hookimpl(boom))
    pm = build_plugin_manager(autoload=False, extra=[bad])
    with pytest.raises(PluginLoadError, match="bad_register.*kaboom"):
        build_registries(pm)


def test_plugin_adds_a_kind_with_its_own_hookspec() -> None:
    from robench3d import hookspec
    from robench3d.registry import ComponentKind

    specs = _module("teacher_specs")
    specs.robench3d_register_scorers = hookspec(lambda: None)  # type: ignore[attr-defined]

    class Clip:
        name = "clip_image"

    kinds_plugin = _module(
        "teachers_plugin",
        robench3d_register_kinds=hookimpl(lambda: [ComponentKind("scorers", "robench3d_register_scorers", specs)]),
        robench3d_register_scorers=hookimpl(lambda: [Clip]),
    )
    pm = build_plugin_manager(autoload=False, extra=[kinds_plugin])
    assert not pm.broken
    regs = build_registries(pm)
    assert regs["scorers"].names() == ["clip_image"]


def test_trace_env_var_logs_hook_calls(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("ROBENCH3D_TRACE_PLUGINS", "1")
    with caplog.at_level("INFO", logger="robench3d.plugins.trace"):
        build_registries(build_plugin_manager(autoload=False))
    assert any("robench3d_register_attacks" in r.getMessage() for r in caplog.records)


def test_over_budget_attack_fails_only_its_own_cells(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cache: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A plugin attack that exceeds its budget: its cells become error rows naming the attack, its plugin and
    distribution; the other attack's cells are computed; the run exits 1 listing the failures; a re-run retries
    only the failed cells (the finished ones are reused)."""
    from robench3d.evaluation.results import read_table

    make_dist(tmp_path, monkeypatch, "rogue-dist", "rogue_mod", ROGUE_ATTACK)
    out = tmp_path / "out"
    code = main(["run", *TINY_RUN, "--attacks", "fgsm,rogue", "--output", str(out)])
    err = capsys.readouterr().err
    assert code == 1
    assert "2 cell(s) failed" in err and "Traceback" not in err
    rows = read_table(out / "results.csv")
    rogue, fgsm = rows[rows["attack"] == "rogue"], rows[rows["attack"] == "fgsm"]
    assert len(rogue) == 2 and set(rogue["status"]) == {"error"} and rogue["robust_acc"].isna().all()
    reason = rogue["reason"].iloc[0]
    assert "attack 'rogue'" in reason and "rogue_mod" in reason and "rogue-dist==0.1" in reason
    assert "exceeded its budget" in reason and "linf" in reason
    assert (out / reason.split("[traceback: ")[1].rstrip("]")).read_text().startswith("Traceback")
    assert len(fgsm) == 2 and set(fgsm["status"]) == {"ok"} and fgsm["robust_acc"].notna().all()
    assert main(["run", *TINY_RUN, "--attacks", "fgsm,rogue", "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert "fgsm [oblivious] on none: reusing finished cell" not in err  # -q: nothing printed but the failures
    again = read_table(out / "results.csv")
    assert len(again) == 4 and set(again[again["attack"] == "rogue"]["status"]) == {"error"}


THIRD_PARTY_COMPONENTS = '''
import json, os
from robench3d import hookimpl, BackboneSpec, WeightsSpec
from robench3d.backbones.pointnet import PointNet
from robench3d.datasets.embedded import ShapesDataset


class MyShapes(ShapesDataset):
    name = "my_shapes"


MY_NET = BackboneSpec(name="my_pointnet", factory=PointNet, configs={"test": {"widths": (8, 16), "fc": (16,)}},
                      default_config="test",
                      weights={"local": WeightsSpec("local", "my_pointnet_local.safetensors", config="test")})


@hookimpl
def robench3d_register_datasets():
    return [MyShapes]


@hookimpl
def robench3d_register_backbones():
    return [MY_NET]


@hookimpl
def robench3d_resolve_weights(spec, cache_dir):
    path = os.environ.get("MY_WEIGHTS_FILE")
    return None if path is None or spec.filename != "my_pointnet_local.safetensors" else path


@hookimpl
def robench3d_run_finished(results, config):
    with open(os.environ["MY_RUN_LOG"], "w") as f:
        json.dump({"rows": len(results), "seed": config.seed}, f)
'''


def test_third_party_dataset_backbone_weights_and_run_finished(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """robench3d_register_datasets, robench3d_register_backbones, robench3d_resolve_weights and
    robench3d_run_finished, through an installed third-party distribution."""
    import json

    import torch
    from safetensors.torch import save_file

    from robench3d.backbones.pointnet import PointNet

    make_dist(tmp_path, monkeypatch, "my-components", "my_components", THIRD_PARTY_COMPONENTS)
    regs = build_registries(build_plugin_manager())
    assert "my_shapes" in regs.datasets and "my_pointnet" in regs.backbones
    torch.manual_seed(3)
    weights = tmp_path / "w.safetensors"
    save_file(PointNet(15, widths=(8, 16), fc=(16,)).state_dict(), str(weights))
    monkeypatch.setenv("MY_WEIGHTS_FILE", str(weights))
    monkeypatch.setenv("MY_RUN_LOG", str(tmp_path / "log.json"))
    code = main(["run", "--dataset", "my_shapes:tiny", "--num-points", "64", "--backbone", "my_pointnet.local",
                 "--attacks", "fgsm", "--setting", "oblivious", "--n", "4", "--output", str(tmp_path / "o"), "-q"])
    assert code == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "log.json").read_text()) == {"rows": 1, "seed": 0}
    from robench3d.evaluation.results import read_table

    row = read_table(tmp_path / "o" / "results.csv").iloc[0]
    assert row["weights_provenance"].startswith("file w.safetensors sha256:")
    assert row["backbone"] == "my_pointnet.local"
    assert "my-components==0.1" in row["plugins"]


def test_builtin_weights_resolver_checks_sha256(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from robench3d.backbones.base import WeightsSpec
    from robench3d.cache import file_sha256
    from robench3d.errors import ConfigError

    (tmp_path / "w.bin").write_bytes(b"abc")
    monkeypatch.setenv("ROBENCH3D_WEIGHTS", str(tmp_path))
    pm = build_plugin_manager(autoload=False)
    resolve = pm.hook.robench3d_resolve_weights
    assert resolve(spec=WeightsSpec("t", "w.bin", sha256=file_sha256(tmp_path / "w.bin")), cache_dir=tmp_path) \
        == tmp_path / "w.bin"
    assert resolve(spec=WeightsSpec("t", "missing.bin"), cache_dir=tmp_path) is None
    with pytest.raises(ConfigError, match="does not match the expected sha256"):
        resolve(spec=WeightsSpec("t", "w.bin", sha256="0" * 64), cache_dir=tmp_path)


def test_missing_pretrained_weights_say_where_to_put_them(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    make_dist(tmp_path, monkeypatch, "my-components", "my_components", THIRD_PARTY_COMPONENTS)
    code = main(["run", "--dataset", "shapes:tiny", "--backbone", "my_pointnet.local", "--attacks", "fgsm", "-q",
                 "--output", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert "never downloads" in err and "ROBENCH3D_WEIGHTS" in err
