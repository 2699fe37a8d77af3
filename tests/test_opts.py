"""``--opt attack.*`` / ``--opt defense.*``: unscoped keys, per-component scoping, and typos that must not pass."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import TINY_RUN

from robench3d.cli import main
from robench3d.errors import ConfigError
from robench3d.evaluation.matrix import scoped_overrides

COMPONENTS = {"sor": {"k", "alpha"}, "adv_train": {"epochs", "epsilon"}, "knnish": {"k"}}


def test_unscoped_key_goes_to_every_component_that_has_it() -> None:
    out = scoped_overrides({"k": 16}, COMPONENTS, "defense")
    assert out == {"sor": {"k": 16}, "adv_train": {}, "knnish": {"k": 16}}


def test_scoped_key_goes_to_one_component_only() -> None:
    out = scoped_overrides({"adv_train.epochs": 1, "sor.k": 3}, COMPONENTS, "defense")
    assert out == {"sor": {"k": 3}, "adv_train": {"epochs": 1}, "knnish": {}}


@pytest.mark.parametrize(
    ("opts", "needle"),
    [({"epochz": 1}, "no defense of this run has a parameter 'epochz'"),
     ({"srs.drop": 1}, "'srs' is not a defense of this run"),
     ({"sor.epochs": 1}, "defense 'sor' has no parameter 'epochs'; valid: alpha, k")],
)
def test_keys_that_apply_to_nothing_are_errors(opts: dict[str, int], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        scoped_overrides(opts, COMPONENTS, "defense")


def test_cli_rejects_an_attack_option_no_attack_has(tmp_path: Path, cache: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", *TINY_RUN, "--attacks", "fgsm", "--opt", "attack.stepz=3", "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "no attack of this run has a parameter 'stepz'" in err
    assert not (tmp_path / "o" / "results.csv").exists()


def test_cli_scoped_attack_option_labels_only_that_attack_custom(tmp_path: Path, cache: Path) -> None:
    from robench3d.evaluation.results import read_table

    out = tmp_path / "o"
    assert main(["run", *TINY_RUN, "--attacks", "fgsm,pgd_linf", "--setting", "oblivious",
                 "--opt", "attack.pgd_linf.steps=2", "--output", str(out)]) == 0
    rows = read_table(out / "results.csv").set_index("attack")
    assert rows.loc["pgd_linf", "preset"] == "custom" and rows.loc["fgsm", "preset"] != "custom"
