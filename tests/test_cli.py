"""The CLI end to end on the tiny embedded dataset, in-process (``main(argv)``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from helpers import TINY_RUN

from robench3d.cli import main
from robench3d.evaluation.results import KEY, read_table


def _run(tmp_path: Path, *extra: str) -> int:
    return main(["run", *TINY_RUN, "--attacks", "fgsm,pgd_linf", "--output", str(tmp_path / "out"), *extra])


def test_run_writes_rows_samples_and_table(tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(tmp_path) == 0
    out = capsys.readouterr().out
    assert "| pointnet:test" in out and "pgd_linf" in out and "fgsm" in out and "worst_case_acc" in out
    rows = read_table(tmp_path / "out" / "results.csv")
    assert set(rows["attack"]) >= {"fgsm", "pgd_linf"}
    assert set(rows["setting"]) == {"oblivious", "adaptive"}
    ok = rows[rows["status"] == "ok"]
    assert (ok["n_examples"] == 16).all() and (ok["seed"] == 0).all()
    assert ok["weights_provenance"].str.startswith("trained here on shapes@").all()
    assert ok["dataset_version"].str.startswith("shapes-").all()
    # robust accuracy is the fraction of all samples still correct after the attack, from per-sample files
    samples = pd.read_csv(next((tmp_path / "out" / "samples").glob("*.csv")))
    assert len(samples) == 16 and {"example_id", "correct", "adv_pred"} <= set(samples.columns)
    for _, r in ok.iterrows():
        assert 0.0 <= r["robust_acc"] <= r["clean_acc"] + 1e-9 or r["attack"] == "noise"


def test_rerun_upserts_and_never_duplicates(tmp_path: Path, cache: Path) -> None:
    assert _run(tmp_path) == 0
    first = read_table(tmp_path / "out" / "results.csv")
    assert _run(tmp_path, "--force") == 0
    second = read_table(tmp_path / "out" / "results.csv")
    assert len(first) == len(second)
    assert not second.duplicated(subset=list(KEY)).any()
    # same seed -> same numbers
    cols = ["attack", "setting", "robust_acc", "clean_acc"]
    pd.testing.assert_frame_equal(first[cols].reset_index(drop=True), second[cols].reset_index(drop=True))


def test_unknown_defense_exit_2_lists_available(tmp_path: Path, cache: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--defense", "mrpdd", "--output", str(tmp_path / "o"), "-q"])
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown defense 'mrpdd'" in err and "none" in err and "robench3d list defenses" in err
    assert "Traceback" not in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("argv", "needle"),
    [(["--attacks", "pgd_lnf"], "did you mean 'pgd_linf'"), (["--backbone", "pointnt"], "did you mean 'pointnet'"),
     (["--dataset", "shapez"], "did you mean 'shapes'"), (["--setting", "whitebox"], "invalid setting"),
     (["--preset", "fast"], "unknown preset 'fast'"), (["--opt", "nonsense"], "invalid --opt")],
)
def test_bad_names_exit_2(argv: list[str], needle: str, tmp_path: Path, cache: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "-q", "--output", str(tmp_path / "o"), *argv]) == 2
    assert needle in capsys.readouterr().err


def test_leaderboard_update_is_idempotent_and_validates(tmp_path: Path, cache: Path) -> None:
    assert _run(tmp_path) == 0
    boards = tmp_path / "boards"
    args = ["leaderboard", "update", "--results", str(tmp_path / "out"), "--leaderboards", str(boards)]
    assert main(args) == 0
    path = boards / "shapes" / "quick" / "oblivious.csv"
    before = path.read_text()
    assert main(args) == 0
    assert path.read_text() == before
    assert main(["leaderboard", "validate", "--leaderboards", str(boards)]) == 0
    assert main(["leaderboard", "show", "--leaderboards", str(boards)]) == 0


def test_list_plugins_data_and_train(tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "attacks", "pgd*"]) == 0
    assert "pgd_linf" in capsys.readouterr().out
    assert main(["plugins"]) == 0
    assert "robench3d.builtin.attacks" in capsys.readouterr().out
    assert main(["data", "info", "--dataset", "shapes:tiny", "--num-points", "128", "--backbone", "pointnet:test",
                 "--opt", "train.epochs=4", "-q"]) == 0
    out = capsys.readouterr().out
    assert "confusion-prone pairs" in out and "mug" in out
    assert main(["train", "--dataset", "shapes:tiny", "--num-points", "128", "--backbone", "pointnet:test",
                 "--opt", "train.epochs=4", "-q"]) == 0
    assert "test accuracy" in capsys.readouterr().out


def test_python_dash_m(tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "robench3d", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("robench3d ")
