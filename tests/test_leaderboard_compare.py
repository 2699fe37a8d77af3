"""``robench3d leaderboard compare``: key matches with deltas and flags, reported rows beside, unmatched rows,
``--strict`` and bad inputs (a tiny results folder against a tiny leaderboards folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from robench3d import schema
from robench3d.cli import main
from robench3d.evaluation.metrics import wilson_interval
from robench3d.leaderboard.compare import compare, wilson_bounds, wilson_half_width


def _row(**kw: Any) -> dict[str, Any]:
    robust = kw.pop("robust_acc", 0.5)
    n = kw.get("n_examples", 20)
    lo, hi = wilson_interval(round(robust * n), n) if robust is not None else (None, None)
    base = {"schema_version": schema.SCHEMA_VERSION, "source": "measured", "status": "ok", "dataset": "shapes",
            "dataset_version": "v1", "backbone": "pointnet:cpu", "defense": "sor", "attack": "fgsm",
            "preset": "quick", "setting": "oblivious", "surrogate": "", "targeted": False, "seed": 0,
            "n_examples": n, "eot_samples": 1, "test_subset": "first", "metric_convention": "robustbench",
            "clean_acc": 0.9, "robust_acc": robust, "robust_acc_ci_low": lo, "robust_acc_ci_high": hi,
            "is_control": False, "unreliable": False}
    base.update(kw)
    return base


def _reported(**kw: Any) -> dict[str, Any]:
    base = {"schema_version": schema.SCHEMA_VERSION, "source": "reported: Paper (arXiv:1), Table 1", "status": "ok",
            "dataset": "shapes", "dataset_version": "shapes (as published)", "backbone": "pointnet (paper)",
            "defense": "sor", "attack": "fgsm", "preset": "quick", "setting": "oblivious", "surrogate": "",
            "targeted": False, "metric_convention": "all-samples", "reported_clean_acc": 0.8,
            "reported_robust_acc": 0.6183, "is_control": False, "unreliable": False}
    base.update(kw)
    return base


def _write(path: Path, *rows: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    schema.write_table(pd.DataFrame(list(rows)), path)


@pytest.fixture
def boards(tmp_path: Path) -> Path:
    root = tmp_path / "boards"
    _write(root / "shapes" / "quick" / "oblivious.csv",
           _row(), _row(attack="knn", robust_acc=0.5), _row(attack="pgd_l2", robust_acc=0.3),
           _row(attack="noise", is_control=True, robust_acc=0.85), _row(attack="drop_100", robust_acc=0.5),
           _row(attack="advpc", status="skipped", reason="no autoencoder", clean_acc=None, robust_acc=None,
                robust_acc_ci_low=None, robust_acc_ci_high=None),
           _reported(), _reported(attack="clean", reported_robust_acc=None, source="reported: Other (arXiv:2), T3"),
           _reported(dataset="modelnet40", reported_robust_acc=0.11))
    return root


@pytest.fixture
def results(tmp_path: Path) -> Path:
    out = tmp_path / "run"
    _write(out / "results.csv",
           _row(),  # identical
           _row(attack="knn", robust_acc=0.55),  # 1 sample more: inside the interval
           _row(attack="pgd_l2", robust_acc=0.9),  # far outside
           _row(attack="noise", is_control=True, robust_acc=0.85),
           _row(attack="drop_100", status="skipped", reason="x", clean_acc=None, robust_acc=None,
                robust_acc_ci_low=None, robust_acc_ci_high=None),  # ok on the board
           _row(attack="advpc", status="skipped", reason="no autoencoder", clean_acc=None, robust_acc=None,
                robust_acc_ci_low=None, robust_acc_ci_high=None),
           _row(attack="fgsm", n_examples=30, robust_acc=0.5),  # another n: not on the leaderboard
           _row(attack="aof"),  # no such cell
           _row(attack="si_adv", status="error", reason="boom", clean_acc=None, robust_acc=None,
                robust_acc_ci_low=None, robust_acc_ci_high=None))
    return out


def test_wilson_matches_the_rows_interval() -> None:
    for k, n in [(0, 20), (7, 20), (20, 20), (417, 450)]:
        assert wilson_bounds(k / n, n) == pytest.approx(wilson_interval(k, n))
    lo, hi = wilson_interval(7, 20)
    assert wilson_half_width(0.35, 20) == pytest.approx((hi - lo) / 2)


def test_matches_deltas_flags_and_reported_rows(results: Path, boards: Path) -> None:
    c = compare(results, boards)
    m = c.matched.set_index("attack")
    assert sorted(m.index) == ["drop_100", "fgsm", "knn", "noise", "pgd_l2"]
    assert m.loc["fgsm", "d_robust"] == 0 and m.loc["fgsm", "flag"] == ""
    assert m.loc["knn", "d_robust"] == pytest.approx(0.05) and m.loc["knn", "flag"] == ""
    tol = (wilson_half_width(0.9, 20) ** 2 + wilson_half_width(0.3, 20) ** 2) ** 0.5
    assert m.loc["pgd_l2", "tol_robust"] == pytest.approx(tol) and m.loc["pgd_l2", "flag"] == "robust"
    assert m.loc["drop_100", "flag"] == "status skipped vs ok"
    assert c.flagged == 2 and c.skipped_both == 1 and c.failed == 1 and c.total == 9
    # Reported rows beside, loosely matched: same dataset name (not version), defense, attack, preset, setting.
    assert m.loc["fgsm", "reported"] == "[1] 61.83"  # the modelnet40 row is another family
    assert m.loc["noise", "reported"] == "[2] clean 80.00"  # a control gets the papers' clean-only rows
    assert m.loc["knn", "reported"] == ""
    assert [k for k, _ in c.sources] == [1, 2] and "Paper (arXiv:1), Table 1" in c.sources[0][1]
    assert "all-samples convention" in c.sources[0][1]
    # Unmatched rows: counted, with what differs from the closest committed cell.
    u = c.unmatched.set_index("attack")
    assert len(u) == 2 and u.loc["fgsm", "differs"] == "n_examples 30 vs 20" and u.loc["aof", "differs"] == \
        "no such cell"


def test_cli_output_and_strict_exit_code(results: Path, boards: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["leaderboard", "compare", "--results", str(results), "--leaderboards", str(boards)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "shapes/quick/oblivious.csv: 5 matching row(s)" in out
    assert "| pointnet:cpu | sor       | pgd_l2   | 20  | 90.00" in out and "+60.00" in out
    assert "not on the leaderboard: 2 row(s)" in out and "[1] Paper (arXiv:1), Table 1" in out
    assert "5 row(s) compared; 2 outside the combined 95% interval; 1 matched row(s) skipped on both sides" in out
    assert main([*args, "--strict"]) == 1
    _write(results / "results.csv", _row(), _row(attack="knn", robust_acc=0.55))
    assert main([*args, "--strict"]) == 0
    assert "0 outside the combined 95% interval; 0 not on the leaderboard" in capsys.readouterr().out


def test_bad_inputs_exit_2_without_traceback(tmp_path: Path, boards: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    def run(results: Path, lb: Path = boards) -> str:
        assert main(["leaderboard", "compare", "--results", str(results), "--leaderboards", str(lb)]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and "robench3d leaderboard: error:" in err
        return err

    assert "no results folder" in run(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    assert "no results.csv in" in run(tmp_path / "empty")
    old = tmp_path / "old"
    old.mkdir()
    pd.DataFrame([{"schema_version": 1, "source": "measured", "clean_acc": 0.8, "robust_acc": 0.83}]).to_csv(
        old / "results.csv", index=False)
    assert "schema version(s) [1]" in run(old)
    bad = tmp_path / "bad"
    bad.mkdir()
    _write(bad / "results.csv", _row(), _row(attack="knn"))
    with (bad / "results.csv").open("a") as f:
        f.write("2,measured" + ",x" * 200 + "\n")  # a damaged line: more fields than the header
    assert "is not a readable CSV (ParserError" in run(bad)
    (bad / "results.csv").write_bytes(b"\xff\xfe\x00garbage")
    assert "is not a readable CSV" in run(bad)
    good = tmp_path / "good"
    _write(good / "results.csv", _row())
    assert "no leaderboard files under" in run(good, tmp_path / "noboards")
