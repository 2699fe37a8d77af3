"""Sanity of the committed leaderboards: every file validates (robust <= clean in every measured row), and an
adaptive attack never does worse than its oblivious counterpart beyond sampling noise on a deterministic defense."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from robench3d.leaderboard import board
from robench3d.schema import read_table

BOARDS = Path(__file__).parents[1] / "leaderboards"
#: Defenses whose prediction on a given cloud is deterministic (random ones are compared with EOT noise).
RANDOMIZED = {"srs"}


def test_every_committed_leaderboard_validates() -> None:
    paths = board.validate_all(BOARDS)
    assert paths, "no committed leaderboard files"


def test_adaptive_is_not_weaker_than_oblivious_beyond_noise() -> None:
    frames = [read_table(p) for p in BOARDS.glob("*/*/*.csv")]
    rows = pd.concat(frames, ignore_index=True)
    rows = rows[(rows["status"] == "ok") & (rows["source"] == "measured") & ~rows["is_control"].astype(bool)]
    key = ["dataset", "dataset_version", "backbone", "defense", "attack", "preset", "seed", "n_examples", "overrides",
           "sweep"]
    obl = rows[rows["setting"] == "oblivious"].set_index(key)
    ada = rows[rows["setting"] == "adaptive"].set_index(key)
    both = obl.join(ada, suffixes=("_obl", "_ada"), how="inner")
    assert len(both) > 0
    for idx, r in both.iterrows():
        if idx[3].split(":")[0].split("+")[0] in RANDOMIZED:
            continue
        half = (r["robust_acc_ci_high_obl"] - r["robust_acc_ci_low_obl"]) / 2
        assert r["robust_acc_ada"] <= r["robust_acc_obl"] + half + 1e-9, idx
