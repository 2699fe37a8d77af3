"""The whole attack suite in all four threat settings on the tiny embedded data (issue 5's end-to-end check)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from robench3d.cli import main
from robench3d.evaluation.results import read_table
from robench3d.plugins import build_plugin_manager, build_registries


def test_all_attacks_every_setting(tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code = main(["run", "--dataset", "shapes:tiny", "--backbone", "pointnet:test", "--num-points", "128", "--n", "8",
                 "--opt", "train.epochs=4", "--surrogate", "pointnet:test", "--defense", "none", "--attacks", "all",
                 "--setting", "oblivious,adaptive,transfer,query", "--preset", "quick", "--output", str(out), "-q"])
    assert code == 0
    rows = read_table(out / "results.csv")
    attacks = build_registries(build_plugin_manager()).attacks
    # one row per (attack, setting) cell; unsupported cells are listed as skipped, never given numbers
    assert len(rows) == 4 * len(attacks)
    for _, r in rows.iterrows():
        supported = r["setting"] in {str(s) for s in attacks.get(r["attack"]).supported_settings}
        assert (r["status"] == "ok") == supported, (r["attack"], r["setting"])
        assert pd.isna(r["robust_acc"]) == (not supported)
    assert set(rows.loc[rows["setting"] == "transfer", "surrogate"]) == {"pointnet:test"}
    assert rows.loc[(rows["attack"] == "simba") & (rows["setting"] == "query"), "status"].item() == "ok"
    assert (rows["preset"] == "quick").all() and (rows["suite"] == "all").all()
    text = capsys.readouterr().out
    assert "worst_case_acc" in text and "skipped: pgd_linf does not support the query setting" in text
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["setting"]) == {"oblivious", "adaptive", "transfer", "query"}
    assert (summary["worst_case_acc"] <= summary["mean_robust_acc"] + 1e-9).all()
