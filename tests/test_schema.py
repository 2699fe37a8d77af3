"""The result schema: per-row validation (robust <= clean, reported vs measured), the key, and migrations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from robench3d import schema
from robench3d.cli import main
from robench3d.errors import LeaderboardSchemaError
from robench3d.leaderboard import board


def _row(**kw: Any) -> dict[str, Any]:
    base = {"schema_version": schema.SCHEMA_VERSION, "source": "measured", "status": "ok", "dataset": "shapes",
            "dataset_version": "v", "backbone": "pointnet:cpu", "defense": "sor", "attack": "noise",
            "preset": "quick", "setting": "oblivious", "surrogate": "", "targeted": False, "seed": 0,
            "n_examples": 20, "eot_samples": 1, "test_subset": "first", "metric_convention": "robustbench",
            "clean_acc": 0.8, "robust_acc": 0.75, "robust_acc_ci_low": 0.5, "robust_acc_ci_high": 0.9}
    base.update(kw)
    return base


def _frame(*rows: dict[str, Any]) -> pd.DataFrame:
    return schema.normalize(pd.DataFrame(list(rows)))


def test_a_valid_table_passes() -> None:
    schema.validate(_frame(_row(), _row(attack="fgsm")))


@pytest.mark.parametrize(("row", "needle"), [
    (_row(robust_acc=0.8333, robust_acc_ci_high=0.95), "robust_acc 0.8333 exceeds clean_acc 0.8"),
    (_row(robust_acc=0.95, robust_acc_ci_high=0.99, clean_acc=1.2), "must be a fraction in [0, 1]"),
    (_row(robust_acc_ci_low=0.8), "outside its interval"),
    (_row(status="done"), "status 'done' is not one of ok, skipped, error"),
    (_row(status="skipped"), "the skipped row carries numbers"),
    (_row(status="error", robust_acc=None, robust_acc_ci_low=None, robust_acc_ci_high=None), "carries numbers"),
    (_row(robust_acc=None), "needs clean_acc and robust_acc"),
    (_row(source="paper"), "must be 'measured' or 'reported: <paper, table>'"),
    (_row(metric_convention="all-samples"), "a measured row must use metric_convention 'robustbench'"),
    (_row(reported_robust_acc=0.5), "a measured row carries reported_* numbers"),
    (_row(source="reported: MRPD, Table 1"), "a reported row carries measured column(s)"),
    (_row(source="reported: X, Table 1", clean_acc=None, robust_acc=None, robust_acc_ci_low=None,
          robust_acc_ci_high=None, reported_clean_acc=0.5575, reported_robust_acc=0.6183),
     "reported robust accuracy 0.6183 exceeds clean 0.5575 under the robustbench convention"),
])
def test_bad_rows_are_rejected_with_their_row(row: dict[str, Any], needle: str) -> None:
    with pytest.raises(LeaderboardSchemaError) as info:
        schema.validate(_frame(_row(attack="fgsm"), row), where="f.csv")
    assert needle in str(info.value) and "f.csv: row 3 (line 3 of the CSV)" in str(info.value)


def test_reported_rows_follow_their_own_convention() -> None:
    """MRPD's tables count correct-after-attack over all samples: SRS 61.83 under ADD-CD against 55.75 clean."""
    reported = _row(source="reported: MRPD arXiv:2511.21574, Table 1", metric_convention="all-samples",
                    clean_acc=None, robust_acc=None, robust_acc_ci_low=None, robust_acc_ci_high=None,
                    reported_clean_acc=0.5575, reported_robust_acc=0.6183, defense="srs", attack="add_cd")
    schema.validate(_frame(_row(), reported))


def test_n_examples_and_eot_are_part_of_the_key() -> None:
    """A run at --n 30 no longer overwrites the n=20 rows of the same cell."""
    merged = schema.upsert(_frame(_row(n_examples=20)), _frame(_row(n_examples=30)))
    assert sorted(merged["n_examples"].tolist()) == [20, 30]
    merged = schema.upsert(merged, _frame(_row(n_examples=30, robust_acc=0.7)))
    assert len(merged) == 2 and merged.set_index("n_examples").loc[30, "robust_acc"] == 0.7
    assert len(schema.upsert(merged, _frame(_row(eot_samples=5)))) == 3
    assert len(schema.upsert(merged, _frame(_row(overrides='{"attack.eps": 0.02}')))) == 3


def test_schema_1_files_must_be_regenerated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "boards" / "shapes" / "quick" / "oblivious.csv"
    path.parent.mkdir(parents=True)
    pd.DataFrame([{"schema_version": 1, "source": "measured", "clean_acc": 0.8, "robust_acc": 0.83}]).to_csv(
        path, index=False)
    assert main(["leaderboard", "validate", "--leaderboards", str(tmp_path / "boards")]) == 2
    err = capsys.readouterr().err
    assert "schema version(s) [1]" in err and "regenerate" in err and "Reproduce" in err
    assert main(["leaderboard", "migrate", "--leaderboards", str(tmp_path / "boards")]) == 2
    assert "cannot migrate schema 1 to 2" in capsys.readouterr().err


def test_additive_migration_fills_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A future additive column: bump the version, register a Migration, and `leaderboard migrate` upgrades the
    committed files without re-running anything (here a hypothetical schema 3 adding `gpu_hours`)."""
    path = tmp_path / "boards" / "shapes" / "quick" / "oblivious.csv"
    path.parent.mkdir(parents=True)
    schema.write_table(_frame(_row(), _row(attack="fgsm")), path)
    before = schema.read_raw(path)
    monkeypatch.setattr(schema, "SCHEMA_VERSION", 3)
    monkeypatch.setattr(schema, "COLUMNS", {**schema.COLUMNS, "gpu_hours": "f"})
    monkeypatch.setitem(schema.MIGRATIONS, 2, schema.Migration(2, {"gpu_hours": 0.0}))
    with pytest.raises(LeaderboardSchemaError, match="leaderboard migrate"):
        schema.validate(schema.read_raw(path), where=str(path))
    assert main(["leaderboard", "migrate", "--leaderboards", str(tmp_path / "boards"), "--dry-run"]) == 0
    assert schema.read_raw(path).equals(before)
    assert main(["leaderboard", "migrate", "--leaderboards", str(tmp_path / "boards")]) == 0
    assert "schema 2 -> 3: added gpu_hours (2 rows)" in capsys.readouterr().out
    after = schema.read_raw(path)
    assert (after["schema_version"] == "3").all() and (after["gpu_hours"].astype(float) == 0.0).all()
    assert after["robust_acc"].tolist() == before["robust_acc"].tolist()
    schema.validate(after, where=str(path))
    assert main(["leaderboard", "migrate", "--leaderboards", str(tmp_path / "boards")]) == 0
    assert "already current" in capsys.readouterr().out


def test_update_never_publishes_failed_cells(tmp_path: Path) -> None:
    results = tmp_path / "run"
    results.mkdir()
    failed = _row(attack="rogue", status="error", reason="attack 'rogue' exceeded its budget", clean_acc=None,
                  robust_acc=None, robust_acc_ci_low=None, robust_acc_ci_high=None)
    schema.write_table(_frame(_row(), failed), results / "results.csv")
    written, n_failed = board.update(results, tmp_path / "boards")
    assert n_failed == 1 and [n for _, n in written] == [1]
    assert schema.read_table(written[0][0])["attack"].tolist() == ["noise"]
