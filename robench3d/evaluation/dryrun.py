"""``robench3d run --dry-run``: the cells a run would compute, which of them are done, and what the rest would cost.

Nothing is trained or attacked: the plan is the run's preflight (:func:`~robench3d.evaluation.preflight.plan_run`,
which prepares the dataset and checks every name and option). A cell is *done* when the results folder holds an
``ok`` row with its key and its per-sample file (the run itself also compares the configuration hash, which needs the
trained weights, so a cell whose model changed is recomputed although listed as done); *skipped* when its attack does
not support its setting. The cost of a cell to do is its number of test clouds times the measured seconds per
cloud of the same attack (``attack_seconds / n_examples`` of finished rows), taken from the most specific match (same
attack, preset, backbone, defense and setting; then fewer of them) in this results folder, else in the committed
leaderboards; "unknown" when no finished row of that attack exists. Clouds shared by every defense (oblivious,
transfer) are counted once per backbone and attack. Training is not estimated.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from robench3d.config import RunConfig
from robench3d.evaluation import cells, matrix
from robench3d.evaluation.components import WeightsResolver
from robench3d.evaluation.preflight import plan_run
from robench3d.norms import Setting
from robench3d.registry import Registries
from robench3d.schema import key_strings, normalize

__all__ = ["PlannedCell", "default_leaderboards", "plan_cells"]

logger = logging.getLogger(__name__)

#: Match levels for per-sample times, most specific first.
_LEVELS = (("attack", "preset", "backbone", "defense", "setting"), ("attack", "preset", "backbone", "setting"),
           ("attack", "preset", "backbone"), ("attack", "preset"), ("attack",))


@dataclass
class PlannedCell:
    """One cell of a dry run: its key fields, ``done`` / ``to do`` / ``skipped``, and its estimated seconds."""

    backbone: str
    defense: str
    attack: str
    setting: str
    seed: int
    sweep: str
    status: str
    seconds: float | None = None
    source: str = ""

    def table_row(self) -> list[Any]:
        est = "" if self.status != "to do" else ("unknown" if self.seconds is None else f"{self.seconds:.1f}")
        return [self.backbone, self.defense, self.attack, self.setting, self.seed, self.sweep, self.status, est,
                self.source]


def default_leaderboards() -> Path | None:
    """``leaderboards/`` in the working directory, else beside the package's source checkout."""
    for folder in (Path("leaderboards"), Path(__file__).resolve().parents[2] / "leaderboards"):
        if folder.is_dir():
            return folder
    return None


def _timings(frame: pd.DataFrame) -> pd.DataFrame:
    """Measured per-sample seconds of the finished rows of a results table."""
    need = {"status", "attack_seconds", "n_examples", *_LEVELS[0]}
    if frame.empty or not need <= set(frame.columns):
        return pd.DataFrame(columns=[*_LEVELS[0], "per_sample"])
    ok = frame[(frame["status"] == "ok") & (frame.get("source", "measured") == "measured")].copy()
    ok["attack_seconds"] = pd.to_numeric(ok["attack_seconds"], errors="coerce")
    ok["n_examples"] = pd.to_numeric(ok["n_examples"], errors="coerce")
    ok = ok[(ok["attack_seconds"] > 0) & (ok["n_examples"] > 0)]
    ok["per_sample"] = ok["attack_seconds"] / ok["n_examples"]
    return ok[[*_LEVELS[0], "per_sample"]]


def _leaderboard_timings(folder: Path | None) -> pd.DataFrame:
    frames = []
    for path in sorted(folder.rglob("*.csv")) if folder is not None else []:
        try:
            frames.append(_timings(pd.read_csv(path, dtype=str, keep_default_na=False)))
        except (OSError, ValueError, pd.errors.ParserError) as exc:  # an unrelated CSV: ignored
            logger.debug("dry run: %s not read (%s)", path, exc)
    return pd.concat(frames, ignore_index=True) if frames else _timings(pd.DataFrame())


def _per_sample(sources: list[tuple[str, pd.DataFrame]], key: dict[str, Any]) -> tuple[float | None, str]:
    for level in _LEVELS:
        for name, table in sources:
            hit = table
            for col in level:
                hit = hit[hit[col].astype(str) == str(key[col])]
            if not hit.empty:
                return float(hit["per_sample"].median()), f"{name} ({', '.join(level)})"
    return None, ""


def plan_cells(config: RunConfig, registries: Registries, resolver: WeightsResolver | None, *,
               leaderboards: Path | None = None) -> list[PlannedCell]:
    """Every cell of ``config``'s matrix with its status and estimated cost (see the module docstring)."""
    plan = plan_run(config, registries, resolver)
    run = matrix._Run(config, registries, plan, resolver, lambda msg: None)
    stored = run.store.load()
    ok = stored[stored["status"] == "ok"]
    done = {k for k, (_, r) in zip(key_strings(ok), ok.iterrows(), strict=True)
            if run.store.sample_path(r.to_dict()).exists()} if not ok.empty else set()
    sources = [("this results folder", _timings(stored)),
               ("leaderboards", _leaderboard_timings(leaderboards or default_leaderboards()))]
    out: list[PlannedCell] = []
    replayed: set[tuple[str, str, Setting]] = set()
    for bref in config.backbones:
        label = plan.labels[bref]
        for defense in plan.defenses:
            cplan = run._cell_plan(defense, label, bref, defense.randomized)
            for attack in plan.attacks.values():
                for setting in config.settings:
                    key = cells.key_row(cplan, attack, setting)
                    cell = PlannedCell(backbone=label, defense=key["defense"], attack=attack.name,
                                       setting=setting.value, seed=config.seed, sweep=key["sweep"], status="to do")
                    if setting not in attack.supported_settings:
                        cell.status = "skipped"
                    elif key_strings(normalize(pd.DataFrame([key]))).iloc[0] in done:
                        cell.status = "done"
                    elif setting in (Setting.OBLIVIOUS, Setting.TRANSFER) and (bref, attack.name, setting) in replayed:
                        cell.seconds, cell.source = 0.0, "replays the clouds of the first defense"
                    else:
                        per, cell.source = _per_sample(sources, key)
                        cell.seconds = None if per is None else per * plan.n
                    if setting in (Setting.OBLIVIOUS, Setting.TRANSFER) and cell.status != "skipped":
                        replayed.add((bref, attack.name, setting))
                    out.append(cell)
    return out
