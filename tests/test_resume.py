"""A run killed mid-way (SIGINT, SIGKILL) and resumed writes the results of an uninterrupted run; ``--dry-run``."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from robench3d.cli import main
from robench3d.evaluation.results import KEY, read_table
from robench3d.progress import Progress

VOLATILE = ["latency_ms", "latency_ratio", "attack_seconds", "train_seconds", "defense_train_seconds"]
#: 2 backbones x 3 defenses (none, sor, srs) x 3 attacks = 18 cells.
MATRIX = ["run", "--dataset", "shapes:tiny", "--backbone", "pointnet:test,example_tinynet:test", "--num-points", "128",
          "--n", "16", "--opt", "train.epochs=3", "--defense", "sor,srs", "--attacks", "fgsm,pgd_linf,noise",
          "--setting", "oblivious"]
CELLS = 18


def _start(out: Path, cache: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "ROBENCH3D_CACHE": str(cache), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-m", "robench3d", *MATRIX, "--output", str(out)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)


def _finish(out: Path, cache: Path) -> str:
    proc = _start(out, cache)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return err


def _rows_done(out: Path) -> int:
    try:
        return len(pd.read_csv(out / "results.csv"))
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return 0


def _table(out: Path) -> pd.DataFrame:
    return read_table(out / "results.csv").drop(columns=VOLATILE).reset_index(drop=True)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("uninterrupted")
    _finish(root / "out", root / "cache")
    return root / "out"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_killed_and_resumed_equals_uninterrupted(sig: signal.Signals, uninterrupted: Path, tmp_path: Path) -> None:
    out, cache = tmp_path / "out", tmp_path / "cache"  # a cache of its own: the killed run really computes
    proc = _start(out, cache)
    deadline = time.monotonic() + 300
    while _rows_done(out) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    done = _rows_done(out)
    assert 2 <= done < CELLS, f"the kill landed with {done} of {CELLS} cells done"
    if sig is signal.SIGINT:
        assert proc.returncode == 130
        assert "Traceback" not in err and "re-run the same command to resume" in err
    else:
        assert proc.returncode == -signal.SIGKILL
    before = read_table(out / "results.csv")  # readable: every write is atomic (temp file + rename)
    assert not list(out.glob(".results.csv.*")) or sig is signal.SIGKILL
    resumed = _finish(out, cache)
    assert resumed.count("reusing finished cell") >= done  # nothing that was finished is computed again
    final = _table(out)
    assert len(final) == CELLS and not final.duplicated(subset=list(KEY)).any()
    pd.testing.assert_frame_equal(final, _table(uninterrupted))
    assert sorted(p.name for p in (out / "samples").glob("*.csv")) == sorted(
        p.name for p in (uninterrupted / "samples").glob("*.csv"))
    kept = before.drop(columns=VOLATILE).merge(final, how="left", indicator=True)
    assert (kept["_merge"] == "both").all()  # rows finished before the kill are unchanged


def test_dry_run_lists_done_and_to_do_with_an_estimate(uninterrupted: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    fresh, cache = tmp_path / "fresh", tmp_path / "cache"
    monkeypatch.setenv("ROBENCH3D_CACHE", str(cache))
    assert main([*MATRIX, "--attacks", "fgsm,pgd_linf,noise,knn", "--output", str(uninterrupted), "--dry-run",
                 "-q"]) == 0
    text = capsys.readouterr().out
    assert text.count("| done") == CELLS and text.count("| to do") == 6  # knn is new: 2 backbones x 3 defenses
    assert "estimated attack time" in text
    assert main([*MATRIX, "--attacks", "fgsm", "--output", str(fresh), "--dry-run", "-q"]) == 0
    text = capsys.readouterr().out
    assert text.count("| to do") == 6 and "this results folder" not in text
    assert not (cache / "backbones").exists()  # nothing was trained
    assert not (fresh / "results.csv").exists()


def test_progress_bars_on_a_terminal_plain_lines_otherwise() -> None:
    plain = io.StringIO()
    Progress(plain)("train pointnet:test on shapes: epoch 1/3 loss 1.2 ETA 4s")
    Progress(plain).on_cell(1, 4, "fgsm [oblivious] on none (pointnet:test)")
    assert plain.getvalue() == "train pointnet:test on shapes: epoch 1/3 loss 1.2 ETA 4s\n"  # unchanged, no bar
    tty = io.StringIO()
    bars = Progress(tty, bars=True)
    for e in (1, 2, 3):
        bars(f"train pointnet:test on shapes: epoch {e}/3 loss 1.{e} ETA 4s")
    bars("  fgsm: batch 1/2 (0s)")
    bars("building defense sor on pointnet:test")
    bars.on_cell(1, 4, "fgsm [oblivious] on none (pointnet:test)")
    bars.close()
    shown = tty.getvalue()
    assert "train pointnet:test on shapes" in shown and "3/3" in shown and "cells" in shown and "1/4" in shown
    assert "building defense sor on pointnet:test\n" in shown
    assert shown.count("epoch 3/3 loss 1.3") == 1  # the completed bar's message is kept as a line, once
