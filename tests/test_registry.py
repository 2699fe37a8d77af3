from __future__ import annotations

import pytest

from robench3d.errors import ConfigError, DuplicateComponentError, UnknownComponentError
from robench3d.registry import ComponentKind, Registries, Registry, natural_key


class _C:
    def __init__(self, name: str) -> None:
        self.name = name


def _reg(*names: str) -> Registry:
    reg: Registry = Registry(ComponentKind("attacks", "robench3d_register_attacks"))
    for n in names:
        reg.add(n, _C(n), "plugin-a")
    return reg


def test_select_all_globs_commas_and_exclude() -> None:
    reg = _reg("pgd_linf", "pgd_l2", "knn", "drop_200", "drop_100")
    assert reg.select("all") == ["drop_100", "drop_200", "knn", "pgd_l2", "pgd_linf"]
    assert reg.select("pgd*,knn") == ["pgd_l2", "pgd_linf", "knn"]
    assert reg.select(["drop_*"], exclude="*_200") == ["drop_100"]
    assert reg.select("knn,knn") == ["knn"]


def test_natural_sort() -> None:
    assert sorted(["drop_200", "drop_100", "a10", "a9"], key=natural_key) == ["a9", "a10", "drop_100", "drop_200"]


def test_unknown_name_suggests_nearest() -> None:
    reg = _reg("pgd_linf", "knn")
    with pytest.raises(UnknownComponentError, match=r"did you mean 'pgd_linf'\?.*robench3d list attacks"):
        reg.get("pgd_lnf")
    with pytest.raises(UnknownComponentError, match="did you mean 'knn'"):
        reg.select("knm")
    with pytest.raises(UnknownComponentError, match="no attacks match 'zz\\*'"):
        reg.select("zz*")


def test_duplicate_names_both_plugins() -> None:
    reg = _reg("knn")
    with pytest.raises(DuplicateComponentError, match="'plugin-a' and 'plugin-b'"):
        reg.add("knn", _C("knn"), "plugin-b")


def test_invalid_name_rejected() -> None:
    with pytest.raises(ConfigError, match="invalid name"):
        _reg("Bad Name")


def test_registries_generic_over_kinds() -> None:
    regs = Registries()
    teachers = regs.add_kind(ComponentKind("teachers", "robench3d_register_teachers"))
    teachers.add("clip", _C("clip"), "p")
    assert regs["teachers"].names() == ["clip"]
    assert regs.teachers is teachers
    with pytest.raises(UnknownComponentError, match="unknown component kind 'students'"):
        regs["students"]
