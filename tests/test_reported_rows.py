"""Reported rows: the papers' transcribed numbers, their conventions, and that they never mix with measured rows."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from robench3d import schema
from robench3d.cli import main
from robench3d.errors import ConfigError, LeaderboardSchemaError
from robench3d.evaluation.results import ResultsStore, aggregate
from robench3d.leaderboard import board
from robench3d.leaderboard.reported import read_transcriptions, to_rows, update_reported
from robench3d.plugins import build_plugin_manager, build_registries

ROOT = Path(__file__).parents[1] / "leaderboards"
TRANSCRIPTIONS = ROOT / "reported"
#: (file, lines): every printed cell of reported-results.md, Avg. R columns left out.
LINES = {"mrpd.csv": 4 * 7 * 8 + 2 * 8, "if-defense.csv": 4 * 8 * 8, "backbones.csv": 6}
#: MRPD's printed "Avg. R" (mean over its 8 attack columns) per (table, dataset, printed row): an independent check of
#: all 224 transcribed robust numbers of Tables 1 and 2.
AVG_R = {
    ("Table 1", "modelnet40"): {"Clean Model": 21.10, "SRS": 40.14, "SOR": 45.76, "DUP": 44.98, "IF-Defense": 59.46,
                                "Adv Training": 65.89, "MRPD": 72.58},
    ("Table 1", "scanobjectnn"): {"Clean Model": 9.99, "SRS": 31.11, "SOR": 32.05, "DUP": 26.92, "IF-Defense": 38.19,
                                  "Adv Training": 64.18, "MRPD": 67.39},
    ("Table 2", "modelnet40"): {"Clean Model": 46.90, "SRS": 37.79, "SOR": 44.92, "DUP": 40.11, "IF-Defense": 53.31,
                                "Adv Training": 62.41, "MRPD": 65.72},
    ("Table 2", "scanobjectnn"): {"Clean Model": 34.61, "SRS": 34.27, "SOR": 34.54, "DUP": 26.85, "IF-Defense": 37.82,
                                  "Adv Training": 65.76, "MRPD": 67.47},
}
NOT_OURS = "(not in robench3d)"


def _committed_rows() -> pd.DataFrame:
    frames = [schema.read_table(p) for p in sorted(ROOT.glob("*/*/*.csv"))]
    rows = pd.concat(frames, ignore_index=True)
    return rows[schema.is_reported(rows)]


def _cell(rows: pd.DataFrame, **match: Any) -> pd.Series:
    hit = rows
    for col, value in match.items():
        hit = hit[hit[col] == value]
    assert len(hit) == 1, (match, len(hit))
    return hit.iloc[0]


def test_transcriptions_have_every_printed_cell() -> None:
    lines = read_transcriptions(TRANSCRIPTIONS)
    assert lines.groupby("file").size().to_dict() == LINES


@pytest.mark.parametrize("table_dataset", list(AVG_R))
def test_mrpd_transcription_reproduces_the_printed_averages(table_dataset: tuple[str, str]) -> None:
    table, dataset = table_dataset
    lines = read_transcriptions(TRANSCRIPTIONS)
    lines = lines[(lines["file"] == "mrpd.csv") & (lines["table"] == table) & (lines["dataset"] == dataset)]
    means = lines.assign(r=lines["robust"].astype(float)).groupby("printed_row")["r"].agg(["mean", "size"])
    assert set(means.index) == set(AVG_R[table_dataset])
    for row, printed in AVG_R[table_dataset].items():
        assert means.loc[row, "size"] == 8
        assert abs(means.loc[row, "mean"] - printed) <= 0.005 + 1e-9, (row, means.loc[row, "mean"], printed)


def test_spot_checked_values() -> None:
    rows = _committed_rows()
    mrpd = "reported: MRPD (arXiv:2511.21574), Table 1"
    r = _cell(rows, source=mrpd, dataset="modelnet40", defense="mrpd", attack="pgd_l2")
    assert (r["reported_clean_acc"], r["reported_robust_acc"], r["reported_extra_params"]) == (0.9052, 0.8914, 0)
    r = _cell(rows, source=mrpd, dataset="modelnet40", defense="srs", attack="add_cd")
    assert (r["reported_clean_acc"], r["reported_robust_acc"]) == (0.5575, 0.6183)
    assert r["metric_convention"] == "all-samples" and r["preset"] == "mrpd-paper" and r["setting"] == "oblivious"
    r = _cell(rows, source=mrpd, dataset="scanobjectnn", defense="adv_train.head", attack="advpc")
    assert (r["reported_clean_acc"], r["reported_robust_acc"], r["reported_extra_params"]) == (0.8348, 0.4039, 15360)
    t2 = "reported: MRPD (arXiv:2511.21574), Table 2"
    r = _cell(rows, source=t2, dataset="modelnet40", defense="mrpd", attack="aof")
    assert r["reported_robust_acc"] == 0.3622 and r["setting"] == "transfer"
    assert r["surrogate"] == "pointnet++ (mrpd paper)" and r["victim"] == "surrogate:pointnet++ (mrpd paper)"
    r = _cell(rows, source=t2, dataset="modelnet40", defense="sor:mrpd", attack="aof")
    assert r["reported_extra_params"] == 814307 and "swapped" in r["data_fields"]  # as printed
    r = _cell(rows, source="reported: MRPD (arXiv:2511.21574), Table 10", dataset="scanobjectnn", attack="knn")
    assert (r["backbone"], r["reported_clean_acc"], r["reported_robust_acc"]) == ("pointnet++ (mrpd paper)", 0.8151, 0)
    ifd = "reported: IF-Defense, Wu et al. 2020 (arXiv:2010.05272), Table 2"
    r = _cell(rows, source=ifd, defense="sor", attack="knn")
    assert (r["reported_clean_acc"], r["reported_robust_acc"], bool(r["targeted"])) == (0.8788, 0.7663, True)
    r = _cell(rows, source=ifd, defense="none", attack="drop_200")
    assert r["reported_robust_acc"] == 0.4024 and not r["targeted"] and r["preset"] == "if-defense"
    r = _cell(rows, source="reported: IF-Defense, Wu et al. 2020 (arXiv:2010.05272), Table 3", defense="none",
              attack="cw_perturb")
    assert r["reported_robust_acc"] == 0.0 and "43.31%" in r["data_fields"]
    r = _cell(rows, backbone="pointnet (paper)", attack="clean")
    assert r["reported_clean_acc"] == 0.892 and pd.isna(r["reported_robust_acc"]) and r["defense"] == "none"
    assert r["source"] == ("reported: PointNet, Qi et al., CVPR 2017 (arXiv:1612.00593), ModelNet40 "
                           "classification results")


def test_rows_are_marked_and_never_share_a_key_with_measured_rows() -> None:
    rows = _committed_rows()
    assert len(rows) == sum(LINES.values())
    assert rows[list(schema.MEASURED)].isna().all().all()
    assert rows["dataset_version"].str.contains("(as published)", regex=False).all()
    assert set(rows["metric_convention"]) == {"all-samples", "robustbench"}
    assert set(rows["dataset"]) == {"modelnet40", "scanobjectnn"}
    with_reported = [p for p in ROOT.glob("*/*/*.csv") if schema.is_reported(schema.read_table(p)).any()]
    assert {p.parts[-3] for p in with_reported} == {"modelnet40", "scanobjectnn"}


def test_names_map_to_registered_components_and_their_preset_targets() -> None:
    regs = build_registries(build_plugin_manager())
    rows = _committed_rows()
    for _, r in rows.drop_duplicates(["defense", "attack", "preset"]).iterrows():
        if not r["defense"].endswith(NOT_OURS):
            name, _, variant = r["defense"].partition(":")
            assert variant in ("", *regs.defenses.get(name).variants), r["defense"]
        if r["attack"] == schema.CLEAN_ATTACK or r["attack"].endswith(NOT_OURS):
            continue
        attack = regs.attacks.get(r["attack"])
        assert bool(attack.presets[r["preset"]].get("targeted", False)) == bool(r["targeted"]), (r["attack"],
                                                                                                   r["preset"])


def test_committed_files_are_in_sync_and_the_update_is_idempotent(tmp_path: Path) -> None:
    boards = tmp_path / "boards"
    shutil.copytree(ROOT, boards, ignore=shutil.ignore_patterns("reported", "*.md"))
    before = {p.relative_to(boards): p.read_bytes() for p in boards.glob("*/*/*.csv")}
    first = update_reported(TRANSCRIPTIONS, boards)
    assert {p.relative_to(boards).parts[0] for p, _, _ in first} == {"modelnet40", "scanobjectnn"}
    assert sum(n for _, n, _ in first) == sum(LINES.values())
    after = {p.relative_to(boards): p.read_bytes() for p in boards.glob("*/*/*.csv")}
    assert after == before, "the committed reported rows differ from the transcriptions: re-run the update"
    update_reported(TRANSCRIPTIONS, boards)
    assert {p.relative_to(boards): p.read_bytes() for p in boards.glob("*/*/*.csv")} == before
    board.validate_all(boards)


def _measured(**kw: Any) -> dict[str, Any]:
    base = {"schema_version": schema.SCHEMA_VERSION, "source": "measured", "status": "ok", "dataset": "modelnet40",
            "dataset_version": "v", "backbone": "pointnet:cpu", "defense": "srs", "attack": "add_cd",
            "preset": "mrpd-paper", "setting": "oblivious", "surrogate": "", "targeted": True, "seed": 0,
            "n_examples": 2, "eot_samples": 1, "test_subset": "first", "metric_convention": "robustbench",
            "clean_acc": 0.5, "robust_acc": 0.5, "robust_acc_ci_low": 0.1, "robust_acc_ci_high": 0.9,
            "is_control": False}
    base.update(kw)
    return base


def _reported(**kw: Any) -> dict[str, Any]:
    """SRS under ADD-CD in MRPD Table 1: 61.83 robust against 55.75 clean, counted over all samples."""
    row = _measured(source="reported: MRPD (arXiv:2511.21574), Table 1", metric_convention="all-samples",
                    dataset_version="modelnet40 (as published)", clean_acc=None, robust_acc=None,
                    robust_acc_ci_low=None, robust_acc_ci_high=None, reported_clean_acc=0.5575,
                    reported_robust_acc=0.6183)
    row.update(kw)
    return row


def _frame(*rows: dict[str, Any]) -> pd.DataFrame:
    return schema.normalize(pd.DataFrame(list(rows)))


def test_validate_applies_the_paper_convention() -> None:
    schema.validate(_frame(_measured(), _reported()))
    with pytest.raises(LeaderboardSchemaError, match="exceeds clean 0.5575 under the robustbench convention"):
        schema.validate(_frame(_reported(metric_convention="robustbench")))
    with pytest.raises(LeaderboardSchemaError, match="a reported row carries measured column"):
        schema.validate(_frame(_reported(clean_acc=0.5575)))
    with pytest.raises(LeaderboardSchemaError, match="needs reported_clean_acc or reported_robust_acc"):
        schema.validate(_frame(_reported(reported_clean_acc=None, reported_robust_acc=None)))
    with pytest.raises(LeaderboardSchemaError, match="quotes a clean accuracy only"):
        schema.validate(_frame(_reported(attack="clean")))
    with pytest.raises(LeaderboardSchemaError, match="robust_acc 0.6183 exceeds clean_acc 0.5575"):
        schema.validate(_frame(_measured(clean_acc=0.5575, robust_acc=0.6183, robust_acc_ci_high=0.9)))


def test_a_reported_row_never_enters_a_mean_or_a_sort_with_measured_rows(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "run")
    measured = _measured()
    store.put(measured, pd.DataFrame({"example_id": ["a", "b"], "correct": [True, False]}))
    # Same group as the measured cell (seed, n_examples included): only the source tells them apart.
    reported = _reported(attack="knn", reported_robust_acc=0.99)
    agg = aggregate(store, [measured, reported])
    assert agg["attacks"].tolist() == [1] and agg["mean_robust_acc"].tolist() == [0.5]
    assert agg["clean_acc"].tolist() == [0.5] and agg["attack_list"].tolist() == ["add_cd"]

    # A reported key that sorts first ("a..." backbone) still comes after every measured row.
    merged = schema.upsert(_frame(_measured(backbone="z")), _frame(_reported(backbone="a (paper)"), _measured()))
    assert merged["source"].tolist() == ["measured", "measured", "reported: MRPD (arXiv:2511.21574), Table 1"]
    measured_part, reported_part = board.split_sources(merged)
    assert len(measured_part) == 2 and len(reported_part) == 1

    text = board.render(merged)
    head, _, tail = text.partition("reported (1 rows, as published")
    assert "reported:" not in head and "61.83" not in head
    assert "61.83" in tail and "all-samples" in tail and "pointnet:cpu" not in tail


def test_results_folders_never_carry_reported_rows(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    schema.write_table(_frame(_measured(), _reported()), run / "results.csv")
    with pytest.raises(ConfigError, match="--reported"):
        board.update(run, tmp_path / "boards")


def _transcription(tmp_path: Path, lines: pd.DataFrame) -> Path:
    folder = tmp_path / "reported"
    folder.mkdir(exist_ok=True)
    lines.drop(columns="file").to_csv(folder / "mrpd.csv", index=False)
    return folder


@pytest.mark.parametrize(("column", "value", "needle"), [
    ("dataset_version", "modelnet40", "must contain '(as published)'"),
    ("robust", "61,83", "is not a number"),
    ("robust", "", "a row has a robust number unless its attack is 'clean'"),
    ("metric_convention", "mrpd", "metric_convention 'mrpd' is not one of"),
    ("surrogate", "pointnet2_ssg", "names its surrogate"),
    ("extra_params", "814,307", "without separators"),
])
def test_bad_transcription_lines_are_rejected_with_their_line(tmp_path: Path, column: str, value: str,
                                                              needle: str) -> None:
    lines = read_transcriptions(TRANSCRIPTIONS)
    lines = lines[lines["file"] == "mrpd.csv"].head(3).copy()
    lines.iloc[1, lines.columns.get_loc(column)] = value
    with pytest.raises(LeaderboardSchemaError, match="line 3 of the transcription") as info:
        read_transcriptions(_transcription(tmp_path, lines))
    assert needle in str(info.value)


def test_a_dropped_line_leaves_no_stale_row_and_measured_rows_stay(tmp_path: Path) -> None:
    lines = read_transcriptions(TRANSCRIPTIONS)
    lines = lines[(lines["file"] == "mrpd.csv") & (lines["table"] == "Table 1") & (lines["dataset"] == "modelnet40")]
    boards = tmp_path / "boards"
    path = boards / "modelnet40" / "mrpd-paper" / "oblivious.csv"
    path.parent.mkdir(parents=True)
    schema.write_table(_frame(_measured()), path)
    update_reported(_transcription(tmp_path, lines), boards)
    assert len(schema.read_table(path)) == 1 + 56
    written = update_reported(_transcription(tmp_path, lines.iloc[1:]), boards)
    assert [(p, n, total) for p, n, total in written] == [(path, 55, 56)]
    table = schema.read_table(path)
    assert table["source"].iloc[0] == "measured" and table["robust_acc"].iloc[0] == 0.5
    assert len(to_rows(lines.iloc[1:])) == 55


def test_cli_update_reported_and_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    boards = tmp_path / "boards"
    assert main(["leaderboard", "update", "--reported", str(TRANSCRIPTIONS), "--leaderboards", str(boards)]) == 0
    out = capsys.readouterr().out
    assert f"{boards / 'modelnet40' / 'if-defense' / 'oblivious.csv'}: 256 reported rows" in out
    assert main(["leaderboard", "validate", "--leaderboards", str(boards)]) == 0
    assert main(["leaderboard", "show", "--leaderboards", str(boards), "--dataset", "modelnet40",
                 "--preset", "standard"]) == 0
    out = capsys.readouterr().out
    assert "reported (6 rows, as published" in out and "89.2" in out
    assert main(["leaderboard", "update", "--reported", str(tmp_path / "none"), "--leaderboards", str(boards)]) == 2
    assert "no transcriptions" in capsys.readouterr().err


def test_a_reported_row_never_replaces_a_measured_one(tmp_path: Path) -> None:
    lines = read_transcriptions(TRANSCRIPTIONS)
    lines = lines[lines["file"] == "mrpd.csv"].head(1)  # MRPD Table 1, ModelNet40, Clean Model, PGD
    path = tmp_path / "boards" / "modelnet40" / "mrpd-paper" / "oblivious.csv"
    path.parent.mkdir(parents=True)
    twin = _measured(dataset_version="modelnet40 (as published)", backbone="uni3d-ti (mrpd paper)", defense="none",
                     attack="pgd_l2", seed=None, n_examples=None, eot_samples=None, test_subset="")
    schema.write_table(_frame(twin), path)
    before = path.read_bytes()
    with pytest.raises(LeaderboardSchemaError, match="would replace the measured row"):
        update_reported(_transcription(tmp_path, lines), tmp_path / "boards")
    assert path.read_bytes() == before
