"""The attack contract, for every registered attack (quick preset, tiny trained PointNet, 12 clouds of 128 points):
complete presets, budget respected, shape and dtype, determinism under a seed, victim state restored."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from attack_setup import ITERATION_KEYS, SEED, TinySetting, make_attack, run, tiny_setting, victim_for

from robench3d.errors import ConfigError
from robench3d.norms import PRESETS, Norm
from robench3d.plugins import build_plugin_manager, build_registries
from robench3d.pointops import single_thread

NAMES = build_registries(build_plugin_manager(autoload=False)).attacks.names()


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    with single_thread():
        yield


@pytest.fixture(scope="module")
def setting() -> TinySetting:
    return tiny_setting()


def test_protocol_suite_is_registered() -> None:
    expected = {"pgd_l2", "pgd_linf", "fgsm", "cw_perturb", "knn", "add_cd", "add_hd", "drop_100", "drop_200", "aof",
                "advpc", "si_adv", "simba", "noise"}
    assert expected <= set(NAMES)
    regs = build_registries(build_plugin_manager(autoload=False))
    paper8 = {n for n in NAMES if "paper8" in regs.attacks.get(n).suites}
    assert paper8 == {"pgd_l2", "cw_perturb", "knn", "add_cd", "add_hd", "aof", "drop_200", "advpc"}


@pytest.mark.parametrize("name", NAMES)
def test_presets_complete_and_quick_only_caps_iterations(setting: TinySetting, name: str) -> None:
    cls = setting.registries.attacks.get(name)
    cls.check_presets()
    standard, quick = cls.presets["standard"], cls.presets["quick"]
    assert set(quick) == set(standard)
    changed = {k for k in standard if quick[k] != standard[k]}
    assert changed <= ITERATION_KEYS, f"quick changes more than iteration counts: {changed}"
    assert all(quick[k] <= standard[k] for k in changed)
    for preset in PRESETS:
        attack = cls(preset)
        if preset in ("standard", "quick"):
            assert not attack.targeted, "standard (and quick) are untargeted: robust accuracy is a worst case"
        assert attack.budget(1024).norm == cls.norm
    assert cls("quick").budget(1024) == cls("standard").budget(1024)


@pytest.mark.parametrize("name", NAMES)
def test_budget_shape_and_dtype(setting: TinySetting, name: str) -> None:
    attack = make_attack(setting, name)
    result = run(setting, name)  # __call__ raises BudgetViolationError on any overstep
    adv, b, n = result.adv_points, *setting.points.shape[:2]
    assert adv.dtype == torch.float32 and adv.shape[0] == b and adv.shape[2] == 3
    assert adv.shape[1] == n or attack.changes_n
    attack.budget(n).check(setting.points, adv, attack=name)
    for key, value in result.info.items():
        assert value.shape == (b,), f"info[{key!r}] must be per sample"
    if attack.norm is Norm.POINTS_ADDED:
        assert torch.equal(adv[:, :n], setting.points), "original points must stay unchanged"
    if attack.norm is Norm.POINTS_DROPPED:
        # Kept points are inputs, in their original order.
        idx = torch.cdist(adv, setting.points).argmin(dim=2)
        assert (idx.diff(dim=1) > 0).all()


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_under_seed(setting: TinySetting, name: str) -> None:
    first = run(setting, name, seed=1)
    attack = make_attack(setting, name)
    again = attack(victim_for(attack, setting.model), setting.points, setting.labels,
                   setting.targets if attack.targeted else None, seed=1)
    assert torch.equal(first.adv_points, again.adv_points)
    for key in first.info:
        assert torch.equal(first.info[key], again.info[key])


def _cheap(attack_cls: type, preset: str = "quick") -> dict[str, int]:
    """Iteration counts cut to 2 (the state checks below do not need a strong attack)."""
    return {k: 2 for k in attack_cls.presets[preset] if k in ITERATION_KEYS}


@pytest.mark.parametrize("name", NAMES)
def test_victim_state_restored(setting: TinySetting, name: str) -> None:
    model = setting.model
    cls = setting.registries.attacks.get(name)
    attack = make_attack(setting, name, overrides=_cheap(cls))
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    model.zero_grad(set_to_none=True)  # training left gradients behind; the attack must not add any
    model.train()
    try:
        attack(victim_for(attack, model), setting.points[:3], setting.labels[:3], setting.targets[:3], seed=SEED)
        assert model.training and all(m.training for m in model.modules()), "train mode must be restored"
        assert all(p.requires_grad for p in model.parameters()), "requires_grad must be restored"
        assert all(p.grad is None for p in model.parameters()), "no gradients may be left on parameters"
        for k, v in model.state_dict().items():
            assert torch.equal(v, buffers[k]), f"{k} changed: the attack must run the victim in eval mode"
    finally:
        model.eval()


def test_simba_counts_queries(setting: TinySetting) -> None:
    from robench3d.evaluation.victims import ScoreOracle

    attack = make_attack(setting, "simba")
    oracle = ScoreOracle(setting.model)
    result = attack(oracle, setting.points, setting.labels, seed=1)
    queries = result.info["queries"]
    assert (queries >= 1).all() and (queries <= attack.params["queries"]).all()
    assert int(queries.sum()) == oracle.queries


def test_advpc_autoencoder_is_cached_by_configuration(setting: TinySetting) -> None:
    make_attack(setting, "advpc")
    folder = setting.cache_dir / "attacks" / "advpc"
    before = sorted(p.name for p in folder.iterdir())
    assert all((folder / k / "autoencoder.safetensors").exists() and (folder / k / "autoencoder.json").exists()
               for k in before)
    make_attack(setting, "advpc")  # same configuration: loaded, nothing new
    assert sorted(p.name for p in folder.iterdir()) == before
    make_attack(setting, "advpc", overrides={"ae_epochs": 1})  # another configuration: another entry
    assert len(list(folder.iterdir())) == len(before) + 1


# protocol.md section 4, preset by preset (a regression guard: the presets are the benchmark's definition).
PROTOCOL: dict[str, dict[str, dict[str, object]]] = {
    "pgd_l2": {"if-defense": {"eps": 0.08, "scale_by_sqrt_3n": True, "steps": 50, "loss": "cw", "targeted": True,
                              "random_start": True},
               "mrpd-paper": {"eps": 0.08, "scale_by_sqrt_3n": False, "steps": 20, "step": 0.004, "loss": "ce",
                              "targeted": True},
               "quick": {"steps": 10}},
    "pgd_linf": {"standard": {"eps": 0.05, "step": 0.01, "steps": 50, "random_start": True}, "quick": {"steps": 10}},
    "cw_perturb": {"if-defense": {"lr": 0.01, "binary_steps": 10, "iterations": 500, "kappa": 0.0, "c_init": 10.0,
                                  "c_max": 80.0, "targeted": True},
                   "mrpd-paper": {"binary_steps": 10, "iterations": 50, "loss": "ce", "targeted": True},
                   "quick": {"binary_steps": 2, "iterations": 50}},
    "knn": {"if-defense": {"chamfer_weight": 5.0, "knn_weight": 3.0, "k": 5, "alpha": 1.05, "eps": 0.1, "lr": 0.001,
                           "iterations": 2500, "kappa": 15.0, "targeted": True},
            "mrpd-paper": {"loss": "ce", "targeted": True}, "quick": {"iterations": 200}},
    "add_cd": {"if-defense": {"num_add": 512, "c_init": 5e3, "c_max": 4e4, "binary_steps": 10, "iterations": 500,
                              "lr": 0.01, "targeted": True},
               "mrpd-paper": {"loss": "ce", "targeted": True}, "quick": {"binary_steps": 2, "iterations": 50}},
    "add_hd": {"if-defense": {"num_add": 512, "c_init": 200.0, "c_max": 900.0, "binary_steps": 10,
                              "iterations": 500, "lr": 0.01, "targeted": True},
               "quick": {"binary_steps": 2, "iterations": 50}},
    "drop_100": {p: {"num_drop": 100, "per_round": 5, "alpha": 1.0, "targeted": False} for p in PRESETS},
    "drop_200": {p: {"num_drop": 200, "per_round": 5, "alpha": 1.0, "targeted": False} for p in PRESETS},
    "aof": {"if-defense": {"eps": 0.18, "kappa": 30.0, "binary_steps": 2, "iterations": 200, "lr": 0.01,
                           "low_pass": 100, "gamma": 0.25, "targeted": False},
            "mrpd-paper": {"targeted": False}, "quick": {"binary_steps": 2, "iterations": 50}},
    "advpc": {"if-defense": {"eps": 0.18, "kappa": 30.0, "binary_steps": 2, "iterations": 200, "lr": 0.01,
                             "gamma": 0.25, "targeted": False},
              "mrpd-paper": {"loss": "ce", "targeted": True}, "quick": {"binary_steps": 2, "iterations": 50}},
    "si_adv": {"standard": {"eps": 0.16, "step": 0.07, "steps": 50}, "quick": {"steps": 10}},
    "simba": {"standard": {"queries": 2000, "targeted": False}, "quick": {"queries": 500}},
    "noise": {p: {"eps": 0.05} for p in PRESETS},
}


@pytest.mark.parametrize("name", sorted(PROTOCOL))
def test_presets_match_the_protocol(setting: TinySetting, name: str) -> None:
    cls = setting.registries.attacks.get(name)
    for preset, expected in PROTOCOL[name].items():
        actual = {k: cls.presets[preset][k] for k in expected}
        assert actual == pytest.approx(expected), f"{name} [{preset}]"
    if name == "pgd_l2":
        assert cls("standard").budget(1024).eps == pytest.approx(4.4347, abs=1e-3)
        assert cls("if-defense").params["step"] == pytest.approx(0.08 / 50)
        assert cls("mrpd-paper").budget(1024).eps == pytest.approx(0.08)


TARGETED = [(n, p) for n in NAMES for p in PRESETS
            if build_registries(build_plugin_manager(autoload=False)).attacks.get(n).presets[p].get("targeted")]


@pytest.mark.parametrize(("name", "preset"), TARGETED)
def test_targeted_presets_run_within_budget(setting: TinySetting, name: str, preset: str) -> None:
    cls = setting.registries.attacks.get(name)
    params = cls.presets[preset]
    cheap = {k: min(int(v), 30) for k, v in params.items() if k in ("steps", "iterations")}
    cheap |= {"binary_steps": 2} if "binary_steps" in params else {}
    attack = make_attack(setting, name, preset, cheap)
    assert attack.targeted and attack.target_policy == "stored-random"
    with pytest.raises(ConfigError, match="no target labels"):
        attack(setting.model, setting.points, setting.labels)
    adv = attack(setting.model, setting.points, setting.labels, setting.targets, seed=1).adv_points
    assert adv.shape[0] == len(setting.labels)
    if (name, preset) == ("pgd_l2", "if-defense"):  # 30 steps at IF-Defense's budget reach the target
        with torch.no_grad():
            assert int((setting.model(adv).argmax(1) == setting.targets).sum()) >= 3
