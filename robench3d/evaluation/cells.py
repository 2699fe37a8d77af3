"""One cell of the matrix: (defended model, attack, threat setting) -> a result row and per-example outcomes.

Metrics follow the RobustBench/AutoAttack convention (``leaderboards/README.md``): a sample is *robust* only if the
defended model classifies it correctly on the clean input AND after the attack, so ``robust_acc <= clean_acc`` by
construction; the attack success rate is taken over the clean-correct samples (untargeted: the fraction broken;
targeted: the fraction classified as the target). A cell whose attack or defense raises is written as an ``error``
row naming the component and its plugin, with the traceback in ``errors/<cell>.log``; the other cells still run.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from robench3d.attacks.base import Attack
from robench3d.cache import atomic_path, stable_hash
from robench3d.config import RunConfig
from robench3d.datasets.base import PreparedDataset
from robench3d.defenses.base import DefendedModel, Defense
from robench3d.errors import BudgetViolationError
from robench3d.evaluation.metrics import chamfer, hausdorff, wilson_interval
from robench3d.evaluation.results import SCHEMA_VERSION, ResultsStore, data_fields_json
from robench3d.evaluation.victims import ScoreOracle, adaptive_victim, victim_label
from robench3d.norms import Setting, Split
from robench3d.training.backbone import TrainedBackbone

__all__ = ["CellBase", "CellPlan", "error_row", "key_row", "latency_pair", "run_cell", "sanity_accuracy"]

logger = logging.getLogger(__name__)


def latency_pair(model: Callable[[torch.Tensor], torch.Tensor],
                 reference: Callable[[torch.Tensor], torch.Tensor] | None, points: torch.Tensor,
                 repeats: int = 5) -> tuple[float, float]:
    """Milliseconds per sample of ``model`` and of ``reference`` (nan if None), timed alternately.

    Each is warmed up once, then the two are timed in turns and the minimum of each is kept, so a burst of load
    on a shared machine hits both and their ratio stays meaningful.
    """
    models = [model] if reference is None else [model, reference]
    best = [float("inf")] * len(models)
    with torch.no_grad():
        for m in models:
            m(points)
        for _ in range(repeats):
            for i, m in enumerate(models):
                t0 = time.perf_counter()
                m(points)
                best[i] = min(best[i], time.perf_counter() - t0)
    ms = [1000 * b / points.shape[0] for b in best]
    return ms[0], (ms[1] if reference is not None else float("nan"))


def _batch_seed(seed: int, name: str, index: int) -> int:
    # Independent of the setting and the defense: an oblivious attack and an adaptive attack on an identical
    # victim draw the same random starts, so their cached clouds are interchangeable.
    return (seed * 1_000_003 + zlib.crc32(name.encode()) + index) % (2**63)


@dataclass
class CellPlan:
    """What identifies the cells of one (backbone, defense) pair before anything is built (error rows use it)."""

    config: RunConfig
    data: PreparedDataset
    test_n: int
    backbone: str
    defense: Defense
    surrogate: str
    version: str
    owner: Callable[[str, str], str]  # (kind, name) -> "plugin (distribution==version)"
    randomized: bool = False

    def plugins(self, attack: Attack, setting: Setting) -> str:
        """The plugins whose components this cell uses (dataset, backbone, defense, attack; surrogate if any)."""
        parts = {self.owner("datasets", self.data.name), self.owner("backbones", _arch(self.backbone)),
                 self.owner("defenses", self.defense.name), self.owner("attacks", attack.name)}
        if setting is Setting.TRANSFER and self.surrogate:
            parts.add(self.owner("backbones", _arch(self.surrogate)))
        return "; ".join(sorted(p for p in parts if p))


def _arch(backbone_label: str) -> str:
    return backbone_label.split(":", 1)[0].split(".", 1)[0]


def _overrides_json(config: RunConfig, attack: Attack, defense: Defense) -> str:
    """The options that make this cell differ from the presets: attack and defense parameters that differ from
    their preset/variant, and every ``--opt backbone.*`` / ``--opt train.*`` value (they change the model).

    Swept values are left out: the ``sweep`` column records them (a sweep's rows keep their preset and defense
    label, so the rows of one sweep differ only in that column)."""
    changed = {f"attack.{k}": v for k, v in _unswept(attack.changed_params(), config.swept("attack", attack.name))}
    changed |= {f"defense.{k}": v
                for k, v in _unswept(defense.changed_params(), config.swept("defense", defense.name))}
    changed |= {f"{scope}.{k}": v for scope in ("backbone", "train")
                for k, v in _unswept(config.opt(scope), config.swept(scope))}
    return json.dumps(changed, sort_keys=True, default=str) if changed else ""


def _unswept(params: dict[str, Any], swept: set[str]) -> list[tuple[str, Any]]:
    return [(k, v) for k, v in params.items() if k not in swept]


def _preset(config: RunConfig, attack: Attack) -> str:
    """The row's preset: ``custom`` only when a value the run does not sweep differs from the preset."""
    if attack.preset == "custom" and not _unswept(attack.changed_params(), config.swept("attack", attack.name)):
        return config.preset
    return attack.preset


def _defense_label(config: RunConfig, defense: Defense) -> str:
    """The row's defense: ``+custom`` only when a parameter the run does not sweep differs from the variant."""
    if defense.overridden and not _unswept(defense.changed_params(), config.swept("defense", defense.name)):
        return defense.label.removesuffix("+custom")
    return defense.label


def _sweep_json(config: RunConfig) -> str:
    return json.dumps(dict(config.sweep), sort_keys=True) if config.sweep else ""


def key_row(plan: CellPlan, attack: Attack, setting: Setting) -> dict[str, Any]:
    """The fields of a cell's row that need no trained model: its key and its description."""
    cfg = plan.config
    budget = attack.budget(plan.data.split(Split.TEST).num_points)
    return {
        "schema_version": SCHEMA_VERSION, "source": "measured", "dataset": plan.data.name,
        "dataset_version": plan.data.version, "backbone": plan.backbone, "defense": _defense_label(cfg, plan.defense),
        "attack": attack.name, "preset": _preset(cfg, attack), "setting": setting.value,
        "surrogate": plan.surrogate if setting is Setting.TRANSFER else "", "targeted": attack.targeted,
        "seed": cfg.seed, "n_examples": plan.test_n, "eot_samples": cfg.eot_samples if plan.randomized else 1,
        "test_subset": "first", "overrides": _overrides_json(cfg, attack, plan.defense),
        "sweep": _sweep_json(cfg),
        "target_policy": attack.target_policy, "suite": cfg.attacks, "norm": budget.norm.value, "eps": budget.eps,
        "metric_convention": "robustbench", "is_control": attack.is_control, "unreliable": False,
        "data_fields": data_fields_json(plan.data.row_fields), "device": cfg.device,
        "plugins": plan.plugins(attack, setting), "robench3d_version": plan.version,
    }


def error_row(plan: CellPlan, attack: Attack, setting: Setting, message: str) -> dict[str, Any]:
    """The row of a cell that failed: its key, status ``error`` and the message, no numbers."""
    return {**key_row(plan, attack, setting), "status": "error", "reason": message, "config_hash": "error"}


def describe_failure(exc: BaseException, who: str, doing: str = "") -> str:
    """One line for a failed cell: the component (with its plugin and distribution) and what went wrong."""
    text = " ".join(str(exc).split()) or "(no message)"
    if isinstance(exc, BudgetViolationError):
        return f"{who} exceeded its budget: {text}"
    return f"{who} raised {type(exc).__name__}" + (f" while {doing}" if doing else "") + f": {text}"


@dataclass
class CellBase:
    """Everything the cells of one (backbone, defense) pair share."""

    plan: CellPlan
    trained: TrainedBackbone
    defended: DefendedModel
    surrogate: TrainedBackbone | str | None
    store: ResultsStore
    progress: Callable[[str], None]
    surrogate_error: str = ""
    clean_pred: np.ndarray | None = None
    latency: float = float("nan")
    latency_ratio: float = float("nan")

    @property
    def config(self) -> RunConfig:
        return self.plan.config

    @property
    def data(self) -> PreparedDataset:
        return self.plan.data

    @property
    def defense(self) -> Defense:
        return self.plan.defense

    @property
    def test_n(self) -> int:
        return self.plan.test_n

    def test_arrays(self) -> tuple[torch.Tensor, np.ndarray, np.ndarray, list[str]]:
        test = self.data.split(Split.TEST)
        n = self.test_n
        return (torch.from_numpy(test.points[:n]), test.labels[:n], test.targets[:n],
                [str(i) for i in test.ids[:n]])

    def predict(self, points: torch.Tensor, seed: int) -> np.ndarray:
        """Predictions of the defended model, batched; random preprocessing is seeded for reproducibility."""
        torch.manual_seed(seed)
        out = []
        self.defended.eval()
        with torch.no_grad():
            for s in range(0, points.shape[0], self.config.batch_size):
                out.append(self.defended(points[s : s + self.config.batch_size].to(self.config.device)).argmax(1))
        return torch.cat(out).cpu().numpy()

    def measure(self) -> None:
        """Clean predictions and latency (defended vs. bare backbone) of this defended model."""
        points, _, _, _ = self.test_arrays()
        self.clean_pred = self.predict(points, self.config.seed)
        sample = points[: min(32, len(points))].to(self.config.device)
        self.trained.model.eval()
        self.latency, bare = latency_pair(self.defended, self.trained.model, sample)
        self.latency_ratio = self.latency / bare

    def defense_fingerprint(self) -> str:
        return stable_hash({"defense": self.defense.label, "params": self.defense.params,
                            "provenance": self.defended.provenance, "eot": self.config.eot_samples})


def _victim(base: CellBase, setting: Setting) -> tuple[nn.Module, str, str]:
    """The victim of a setting, a fingerprint that identifies it (the adversarial-cloud cache key) and its label."""
    bare = f"base|{base.trained.name}|{base.trained.provenance}"
    if setting is Setting.OBLIVIOUS:
        return base.trained.model, bare, "undefended"
    if setting is Setting.TRANSFER:
        assert isinstance(base.surrogate, TrainedBackbone)
        return (base.surrogate.model, f"surrogate|{base.surrogate.name}|{base.surrogate.provenance}",
                f"surrogate:{base.surrogate.name}")
    if setting is Setting.QUERY:
        return ScoreOracle(base.defended), f"query|{bare}|{base.defense_fingerprint()}", "query"
    d = base.defended
    if d.transform is None and d.classify is base.trained.model:
        return d, bare, "plain"  # the undefended model: its adaptive clouds are shared by every undefended cell
    victim = adaptive_victim(d, base.config.eot_samples)
    return victim, f"adaptive|{bare}|{base.defense_fingerprint()}", victim_label(victim)


def _generate(base: CellBase, attack: Attack, victim: nn.Module, fingerprint: str, setting: Setting
              ) -> tuple[torch.Tensor, dict[str, np.ndarray], float]:
    cfg = base.config
    # Clouds replayed on other models (oblivious, transfer) run to completion: per-sample early stopping is exact
    # only where the generating model is the evaluated one (protocol.md section 2).
    early = setting in (Setting.ADAPTIVE, Setting.QUERY)
    key = stable_hash({"dataset": base.data.name, "version": base.data.version, "n": base.test_n,
                       "attack": attack.name, "preset": attack.preset, "params": attack.params, "seed": cfg.seed,
                       "batch": cfg.batch_size, "victim": fingerprint, "early_stop": early,
                       # C&W-style attacks abort only samples that already succeed (attacks/_cw.py): clouds made
                       # under the former plateau rule are never reused.
                       **({"abort": "succeeded-only"} if early and "abort_early" in attack.params else {})})
    path = cfg.cache_dir / "adversarial" / f"{attack.name}-{key}.npz"
    if path.exists() and not cfg.force:
        with np.load(path, allow_pickle=False) as z:
            info = {k[5:]: z[k] for k in z.files if k.startswith("info/")}
            return torch.from_numpy(z["adv"]), info, float(z["seconds"])
    points, labels, targets, _ = base.test_arrays()
    advs: list[torch.Tensor] = []
    infos: dict[str, list[np.ndarray]] = {}
    t0 = time.perf_counter()
    nb = (len(points) + cfg.batch_size - 1) // cfg.batch_size
    for b, s in enumerate(range(0, len(points), cfg.batch_size)):
        sl = slice(s, s + cfg.batch_size)
        # The victim's own random draws (a random defense's EOT samples use the global generator) are seeded per
        # batch too, so a cell's clouds never depend on the cells computed before it in this process (a resumed
        # run, or a Ray worker, computes what an uninterrupted local run does).
        torch.manual_seed(_batch_seed(cfg.seed, attack.name, b))
        res = attack(victim, points[sl].to(cfg.device), torch.from_numpy(labels[sl]).to(cfg.device),
                     torch.from_numpy(targets[sl]).to(cfg.device), seed=_batch_seed(cfg.seed, attack.name, b),
                     early_stop=early)
        advs.append(res.adv_points.cpu())
        for k, v in res.info.items():
            infos.setdefault(k, []).append(v.detach().cpu().numpy())
        base.progress(f"  {attack.name}: batch {b + 1}/{nb} ({time.perf_counter() - t0:.0f}s)")
    seconds = time.perf_counter() - t0
    adv = torch.cat(advs)
    info = {k: np.concatenate(v) for k, v in infos.items()}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, adv=adv.numpy(), seconds=np.array(seconds), **{f"info/{k}": v for k, v in info.items()})
    return adv, info, seconds


def _train_seconds(base: CellBase) -> tuple[float | None, float]:
    """(building the evaluated model from scratch, the defense's own part) in seconds, as measured when trained."""
    own = float(base.defended.train_seconds or 0.0)
    backbone = base.trained.info.get("train_seconds")
    return (None if backbone is None else float(backbone) + own), own


def _row(base: CellBase, attack: Attack, setting: Setting) -> dict[str, Any]:
    cfg = base.config
    row = key_row(base.plan, attack, setting)
    surrogate = row["surrogate"]
    total, own = _train_seconds(base)
    row.update({
        "clean_acc": float(np.mean(base.clean_pred == base.test_arrays()[1])) if base.clean_pred is not None else None,
        "selection_split": str(base.trained.info.get("selection_split", "val")),
        "weights_provenance": base.trained.provenance,
        "defense_provenance": json.dumps(base.defended.provenance, sort_keys=True, default=str),
        "surrogate_provenance": base.surrogate.provenance if surrogate and isinstance(base.surrogate,
                                                                                        TrainedBackbone) else "",
        "latency_ms": base.latency, "latency_ratio": base.latency_ratio, "train_seconds": total,
        "defense_train_seconds": own, "extra_params": base.defended.extra_params,
        "trainable_params": base.defended.trainable_params,
        "teachers": str(base.defended.provenance.get("teachers", "")),
    })
    volatile = ("latency_ms", "latency_ratio", "train_seconds", "defense_train_seconds", "plugins", "device")
    row["config_hash"] = stable_hash({k: row[k] for k in sorted(row) if k not in volatile}
                                     | {"params": attack.params, "batch": cfg.batch_size,
                                        "defense_params": base.defense.params})
    return row


def _fail(base: CellBase, row: dict[str, Any], message: str, exc: BaseException) -> dict[str, Any]:
    """Write the error row of a cell (traceback in ``errors/<cell>.log``) and return it."""
    log = base.store.error_log(row)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    out = {k: v for k, v in row.items() if k != "clean_acc"}
    rel = log.relative_to(base.store.root)
    out.update(status="error", reason=f"{message} [traceback: {rel}]", config_hash="error")
    base.store.put(out)
    return out


def run_cell(base: CellBase, attack: Attack, setting: Setting) -> dict[str, Any]:
    """Compute (or reuse) one cell and store it; unsupported cells become ``skipped`` rows, failures ``error`` rows."""
    row = _row(base, attack, setting)
    reason = ""
    if setting not in attack.supported_settings:
        reason = f"{attack.name} does not support the {setting.value} setting"
    elif setting is Setting.TRANSFER and not isinstance(base.surrogate, TrainedBackbone):
        reason = base.surrogate if isinstance(base.surrogate, str) else "no surrogate"
    if setting is Setting.TRANSFER and base.surrogate_error and setting in attack.supported_settings:
        failed = {k: v for k, v in row.items() if k != "clean_acc"}
        failed.update(status="error", reason=base.surrogate_error, config_hash="error")
        base.store.put(failed)
        return failed
    if reason:
        row.update(status="skipped", reason=reason, clean_acc=None)
        base.store.put(row)
        return row
    if not base.config.force:
        hit = base.store.find(row)
        if hit is not None and hit.get("status") == "ok":
            base.progress(f"{attack.name} [{setting.value}] on {base.defense.label}: reusing finished cell")
            return hit
    base.progress(f"{attack.name} [{setting.value}] on {base.defense.label} ({base.trained.name})")
    plan = base.plan
    attack_who = f"attack {attack.name!r} (plugin {plan.owner('attacks', attack.name)})"
    defense_who = f"defense {base.defense.label!r} (plugin {plan.owner('defenses', base.defense.name)})"
    try:
        victim, fingerprint, row["victim"] = _victim(base, setting)
        adv, info, seconds = _generate(base, attack, victim, fingerprint, setting)
    except Exception as exc:  # component code may fail in any way: it fails this cell only
        doing = f"attacking the {row.get('victim') or ''} victim of {defense_who}".replace("the  ", "the ")
        return _fail(base, row, describe_failure(exc, attack_who, doing), exc)
    points, labels, targets, ids = base.test_arrays()
    cell_seed = base.config.seed + zlib.crc32(f"{attack.name}|{setting.value}|{base.defense.label}".encode())
    try:
        adv_pred = base.predict(adv, cell_seed)
    except Exception as exc:  # the defense failed on the adversarial clouds
        return _fail(base, row, describe_failure(exc, defense_who, f"classifying the clouds of {attack_who}"), exc)
    assert base.clean_pred is not None
    clean_correct = base.clean_pred == labels
    adv_correct = adv_pred == labels
    robust = clean_correct & adv_correct
    hit = adv_pred == targets if attack.targeted else ~adv_correct
    success = clean_correct & hit
    n_cc = int(clean_correct.sum())
    lo, hi = wilson_interval(int(robust.sum()), len(robust))
    n_in, n_out = points.shape[1], adv.shape[1]
    row.update(
        status="ok", reason="", robust_acc=float(robust.mean()), robust_acc_ci_low=lo, robust_acc_ci_high=hi,
        attack_success_rate=float(success.sum() / n_cc) if n_cc else None, n_clean_correct=n_cc,
        chamfer=float(chamfer(points, adv).mean()), hausdorff=float(hausdorff(points, adv).mean()),
        points_added=float(max(n_out - n_in, 0)), points_dropped=float(max(n_in - n_out, 0)),
        attack_seconds=seconds,
    )
    samples = pd.DataFrame({"example_id": ids, "label": labels, "target": targets, "clean_pred": base.clean_pred,
                            "adv_pred": adv_pred, "clean_correct": clean_correct, "adv_correct": adv_correct,
                            "correct": robust, "success": success})
    for k, v in info.items():
        if v.shape == (len(ids),) and k not in samples:
            samples[k] = v
    base.store.put(row, samples)
    return row


def sanity_accuracy(base: CellBase, attack: Attack) -> float:
    """Robust accuracy of the defended model under ``attack`` (a huge-budget PGD) in the adaptive setting."""
    victim, fingerprint, _ = _victim(base, Setting.ADAPTIVE)
    adv, _, _ = _generate(base, attack, victim, fingerprint, Setting.ADAPTIVE)
    labels = base.test_arrays()[1]
    assert base.clean_pred is not None
    return float(((base.predict(adv, base.config.seed) == labels) & (base.clean_pred == labels)).mean())
