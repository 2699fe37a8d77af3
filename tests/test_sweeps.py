"""``run --sweep`` and ``--seeds`` end to end on the tiny embedded data, and the eps-monotonicity check of swept rows
(on rows made here and on every committed leaderboard that has swept rows)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from helpers import TINY_RUN

from robench3d.cli import main
from robench3d.errors import ConfigError
from robench3d.evaluation.sweeps import grid, over_seeds, parse_sweeps
from robench3d.schema import KEY, read_table

BOARDS = Path(__file__).parents[1] / "leaderboards"
EPS_SWEEP = ["--sweep", "attack.pgd_linf.eps=0.01,0.05,0.3", "--sweep", "attack.pgd_linf.steps=2,4"]


def _run(out: Path, *extra: str) -> int:
    return main(["run", *TINY_RUN, "--attacks", "pgd_linf", "--setting", "oblivious", "--preset", "quick",
                 "--output", str(out), *extra])


def eps_violations(rows: pd.DataFrame) -> list[str]:
    """Cells where robust accuracy rises with a swept eps beyond the smaller eps's 95% interval half-width.

    Rows are compared only when they differ in one swept ``*.eps`` value and in nothing else (every other key
    column and every other swept value equal).
    """
    rows = rows[(rows["status"] == "ok") & (rows["source"] == "measured") & (rows["sweep"] != "")]
    others = [c for c in KEY if c != "sweep"]
    groups: dict[tuple[str, ...], list[tuple[float, pd.Series]]] = {}
    for _, r in rows.iterrows():
        point = json.loads(r["sweep"])
        for key in (k for k in point if k.startswith("attack.") and k.endswith(".eps")):
            rest = json.dumps({k: v for k, v in point.items() if k != key}, sort_keys=True)
            group = (key, rest, *(str(r[c]) for c in others))
            groups.setdefault(group, []).append((float(point[key]), r))
    problems = []
    for group, members in groups.items():
        members.sort(key=lambda m: m[0])
        for i, (small, lo) in enumerate(members):
            half = (float(lo["robust_acc_ci_high"]) - float(lo["robust_acc_ci_low"])) / 2
            for large, hi in members[i + 1:]:
                if large > small and float(hi["robust_acc"]) > float(lo["robust_acc"]) + half + 1e-9:
                    problems.append(f"{group}: robust {hi['robust_acc']} at eps {large} > {lo['robust_acc']} at "
                                    f"eps {small} + {half:.3f}")
    return problems


def test_sweep_grid_writes_one_row_per_point_with_typed_values(tmp_path: Path, cache: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert _run(out, *EPS_SWEEP) == 0
    rows = read_table(out / "results.csv")
    assert len(rows) == 3 * 2  # the grid: 3 eps x 2 steps, one defense (none), one attack, one setting
    points = [json.loads(s) for s in rows["sweep"]]
    assert sorted((p["attack.pgd_linf.eps"], p["attack.pgd_linf.steps"]) for p in points) == [
        (0.01, 2), (0.01, 4), (0.05, 2), (0.05, 4), (0.3, 2), (0.3, 4)]
    assert all(isinstance(p["attack.pgd_linf.eps"], float) and isinstance(p["attack.pgd_linf.steps"], int)
               for p in points)
    assert list(rows["sweep"]) == [json.dumps(p, sort_keys=True) for p in points]  # sorted keys
    # the swept values are the sweep column's, not overrides/custom: preset and defense label stay as they are
    assert (rows["preset"] == "quick").all() and (rows["defense"] == "none").all()
    assert (rows["overrides"] == '{"train.epochs": 4}').all()
    assert [float(e) for e in rows["eps"]] == [p["attack.pgd_linf.eps"] for p in points]
    assert not rows.duplicated(subset=list(KEY)).any()
    assert eps_violations(rows) == []
    assert "sweep" in capsys.readouterr().out
    # an unswept run of the same cell writes a row of its own (sweep "") and overwrites none of the sweep's
    assert _run(out) == 0
    both = read_table(out / "results.csv")
    assert len(both) == 7 and (both["sweep"] == "").sum() == 1
    pd.testing.assert_frame_equal(both[both["sweep"] != ""].reset_index(drop=True), rows.reset_index(drop=True))


def test_resume_reuses_finished_swept_cells(tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert _run(out, "--sweep", "attack.pgd_linf.eps=0.02,0.1") == 0
    first = read_table(out / "results.csv")
    capsys.readouterr()
    loud = [a for a in TINY_RUN if a != "-q"]
    assert main(["run", *loud, "--attacks", "pgd_linf", "--setting", "oblivious", "--preset", "quick", "--output",
                 str(out), "--sweep", "attack.pgd_linf.eps=0.02,0.1,0.2"]) == 0
    err = capsys.readouterr().err
    assert err.count("reusing finished cell") == 2  # 0.02 and 0.1 were done; only 0.2 is computed
    again = read_table(out / "results.csv")
    assert len(again) == 3
    cols = ["sweep", "robust_acc", "config_hash"]
    pd.testing.assert_frame_equal(again[again["sweep"].isin(first["sweep"])][cols].reset_index(drop=True),
                                  first[cols].reset_index(drop=True))


@pytest.mark.parametrize(("extra", "needle"), [
    (["--sweep", "attack.pgd_linf.eps=0.01,-1"], "--sweep attack.pgd_linf.eps=-1: attack 'pgd_linf' parameter 'eps'"),
    (["--sweep", "attack.pgd_linf.eps=0.01,abc"], "'abc' is not a number"),
    (["--sweep", "attack.pgd_linf.steps=2,2.5"], "--sweep attack.pgd_linf.steps=2.5"),
    (["--sweep", "attack.pgd_linf.epz=0.1"], "has no parameter 'epz'"),
    (["--sweep", "attack.eps=0.1", "--opt", "attack.pgd_linf.eps=0.2"], "set the same option"),
    (["--sweep", "attack.pgd_linf.eps=0.1", "--sweep", "attack.pgd_linf.eps=0.2"], "given twice"),
    (["--sweep", "attack.pgd_linf.eps=0.1,0.10"], "repeats one"),
    (["--sweep", "dataset.data_seed=1,2"], "invalid --sweep scope 'dataset'"),
    (["--sweep", "attack.pgd_linf.eps"], "invalid --sweep"),
    (["--seed", "1", "--seeds", "0,1"], "give one of them"),
    (["--seeds", "0,0"], "invalid --seeds"),
])
def test_bad_sweeps_and_seeds_exit_2_before_any_work(extra: list[str], needle: str, tmp_path: Path, cache: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert _run(out, *extra) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not (out / "results.csv").exists()


def test_seeds_give_per_seed_rows_and_mean_std(tmp_path: Path, cache: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert _run(out, "--seeds", "0,1", "--attacks", "fgsm,pgd_linf") == 0
    rows = read_table(out / "results.csv")
    assert sorted(rows["seed"].tolist()) == [0, 0, 1, 1]
    # a seed changes the trained model: that run-to-run variance is what --seeds measures
    assert rows.loc[rows["seed"] == 1, "weights_provenance"].str.contains("seed 1").all()
    assert "Over seeds" in capsys.readouterr().out
    summary = pd.read_csv(out / "summary.csv", keep_default_na=False)
    seeded = summary[summary["seeds"] != ""]
    assert len(seeded) == 2 and (seeded["seeds"] == "0,1").all()
    for _, s in seeded.iterrows():
        mine = rows[rows["attack"] == s["attack"]]["robust_acc"].astype(float)
        assert float(s["robust_acc_mean"]) == pytest.approx(mine.mean())
        assert float(s["robust_acc_std"]) == pytest.approx(mine.std(ddof=1))
        assert str(s["robust_acc_ci"]).startswith("0: [") and "; 1: [" in str(s["robust_acc_ci"])
    # the per-seed aggregates are there too, one per seed
    assert sorted(summary.loc[summary["seeds"] == "", "seed"].astype(float).astype(int)) == [0, 1]
    # same seed -> same numbers: a --seed 1 run reproduces the seed-1 rows
    single = tmp_path / "single"
    assert _run(single, "--seed", "1", "--attacks", "fgsm,pgd_linf", "--force") == 0
    again = read_table(single / "results.csv")
    cols = ["attack", "clean_acc", "robust_acc", "weights_provenance"]
    pd.testing.assert_frame_equal(again[cols].reset_index(drop=True),
                                  rows[rows["seed"] == 1][cols].reset_index(drop=True))


def test_parse_sweeps_grid_and_list_values() -> None:
    sweeps = parse_sweeps(["attack.eps=0.1,0.2", "backbone.widths=64,128;32"])
    assert [s.values for s in sweeps] == [(0.1, 0.2), ("64,128", 32)]  # coerced as --opt coerces
    assert grid(sweeps) == [{"attack.eps": 0.1, "backbone.widths": "64,128"}, {"attack.eps": 0.1,
                            "backbone.widths": 32}, {"attack.eps": 0.2, "backbone.widths": "64,128"},
                            {"attack.eps": 0.2, "backbone.widths": 32}]
    assert grid([]) == [{}]
    with pytest.raises(ConfigError, match="no empty ones"):
        parse_sweeps(["attack.eps=0.1,"])


def test_over_seeds_skips_single_seed_cells() -> None:
    base = {"status": "ok", "is_control": False, "source": "measured", "clean_acc": 0.9, "robust_acc_ci_low": 0.1,
            "robust_acc_ci_high": 0.6, **{k: "" for k in KEY if k not in ("seed",)}, "attack": "fgsm"}
    rows = [{**base, "seed": 0, "robust_acc": 0.2}, {**base, "seed": 1, "robust_acc": 0.4},
            {**base, "attack": "knn", "seed": 0, "robust_acc": 0.5}]
    table = over_seeds(rows)
    assert len(table) == 1 and table.iloc[0]["attack"] == "fgsm" and table.iloc[0]["n_seeds"] == 2
    assert table.iloc[0]["robust_acc_mean"] == pytest.approx(0.3)
    assert table.iloc[0]["robust_acc_std"] == pytest.approx(0.1414213, rel=1e-5)


def test_committed_swept_rows_do_not_gain_accuracy_with_eps() -> None:
    frames = [read_table(p) for p in sorted(BOARDS.glob("*/*/*.csv"))]
    rows = pd.concat(frames, ignore_index=True)
    assert eps_violations(rows) == []  # trivially true for boards without swept rows
