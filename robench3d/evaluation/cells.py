"""One cell of the matrix: (defended model, attack, threat setting) -> a result row and per-example outcomes."""

from __future__ import annotations

import json
import logging
import time
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
from robench3d.evaluation.metrics import chamfer, hausdorff, wilson_interval
from robench3d.evaluation.results import SCHEMA_VERSION, ResultsStore, data_fields_json
from robench3d.evaluation.victims import ScoreOracle, adaptive_victim
from robench3d.norms import Setting, Split
from robench3d.training.backbone import TrainedBackbone

__all__ = ["CellBase", "latency_ms", "run_cell", "sanity_accuracy"]

logger = logging.getLogger(__name__)


def latency_ms(model: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor, repeats: int = 3) -> float:
    """Milliseconds per sample of a forward pass (minimum over repeats, after one warm-up)."""
    with torch.no_grad():
        model(points)
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(points)
            best = min(best, time.perf_counter() - t0)
    return 1000 * best / points.shape[0]


def _batch_seed(seed: int, name: str, index: int) -> int:
    # Independent of the setting and the defense: an oblivious attack and an adaptive attack on an identical
    # victim draw the same random starts, so their cached clouds are interchangeable.
    return (seed * 1_000_003 + zlib.crc32(name.encode()) + index) % (2**63)


@dataclass
class CellBase:
    """Everything the cells of one (backbone, defense) pair share."""

    config: RunConfig
    data: PreparedDataset
    test_n: int
    trained: TrainedBackbone
    defense: Defense
    defended: DefendedModel
    surrogate: TrainedBackbone | str | None
    store: ResultsStore
    version: str
    plugins: str
    progress: Callable[[str], None]
    clean_pred: np.ndarray | None = None
    latency: float = float("nan")
    latency_ratio: float = float("nan")

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
        self.latency = latency_ms(self.defended, sample)
        self.latency_ratio = self.latency / latency_ms(self.trained.model, sample)

    def defense_fingerprint(self) -> str:
        return stable_hash({"defense": self.defense.label, "params": self.defense.params,
                            "provenance": self.defended.provenance, "eot": self.config.eot_samples})


def _victim(base: CellBase, setting: Setting) -> tuple[nn.Module, str]:
    """The victim of a setting and a fingerprint that identifies it (the adversarial-cloud cache key)."""
    bare = f"base|{base.trained.name}|{base.trained.provenance}"
    if setting is Setting.OBLIVIOUS:
        return base.trained.model, bare
    if setting is Setting.TRANSFER:
        assert isinstance(base.surrogate, TrainedBackbone)
        return base.surrogate.model, f"surrogate|{base.surrogate.name}|{base.surrogate.provenance}"
    if setting is Setting.QUERY:
        return ScoreOracle(base.defended), f"query|{bare}|{base.defense_fingerprint()}"
    d = base.defended
    if d.transform is None and d.classify is base.trained.model:
        return d, bare  # the undefended model: adaptive == oblivious, reuse its clouds
    return adaptive_victim(d, base.config.eot_samples), f"adaptive|{bare}|{base.defense_fingerprint()}"


def _generate(base: CellBase, attack: Attack, victim: nn.Module, fingerprint: str
              ) -> tuple[torch.Tensor, dict[str, np.ndarray], float]:
    cfg = base.config
    key = stable_hash({"dataset": base.data.name, "version": base.data.version, "n": base.test_n,
                       "attack": attack.name, "preset": attack.preset, "params": attack.params, "seed": cfg.seed,
                       "batch": cfg.batch_size, "victim": fingerprint})
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
        res = attack(victim, points[sl].to(cfg.device), torch.from_numpy(labels[sl]).to(cfg.device),
                     torch.from_numpy(targets[sl]).to(cfg.device), seed=_batch_seed(cfg.seed, attack.name, b))
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


def _row(base: CellBase, attack: Attack, setting: Setting) -> dict[str, Any]:
    cfg = base.config
    n_points = base.data.split(Split.TEST).num_points
    budget = attack.budget(n_points)
    surrogate = base.surrogate.name if setting is Setting.TRANSFER and isinstance(base.surrogate, TrainedBackbone) \
        else (cfg.surrogate or "" if setting is Setting.TRANSFER else "")
    row: dict[str, Any] = {
        "source": "measured", "dataset": base.data.name, "dataset_version": base.data.version,
        "backbone": base.trained.name, "defense": base.defense.label, "attack": attack.name,
        "preset": attack.preset, "setting": setting.value, "surrogate": surrogate, "targeted": attack.targeted,
        "seed": cfg.seed, "target_policy": attack.target_policy, "suite": cfg.attacks,
        "norm": budget.norm.value, "eps": budget.eps, "n_examples": base.test_n,
        "clean_acc": float(np.mean(base.clean_pred == base.test_arrays()[1])) if base.clean_pred is not None else None,
        "is_control": attack.is_control, "eot_samples": cfg.eot_samples if base.defended.randomized else 1,
        "selection_split": str(base.trained.info.get("selection_split", "val")),
        "weights_provenance": base.trained.provenance,
        "defense_provenance": json.dumps(base.defended.provenance, sort_keys=True, default=str),
        "surrogate_provenance": base.surrogate.provenance if surrogate and isinstance(base.surrogate,
                                                                                        TrainedBackbone) else "",
        "plugins": base.plugins, "robench3d_version": base.version,
        "latency_ms": base.latency, "latency_ratio": base.latency_ratio, "unreliable": False,
        "schema_version": SCHEMA_VERSION, "data_fields": data_fields_json(base.data.row_fields),
    }
    row["config_hash"] = stable_hash({k: row[k] for k in sorted(row) if k not in ("latency_ms", "latency_ratio")}
                                     | {"params": attack.params, "batch": cfg.batch_size,
                                        "defense_params": base.defense.params})
    return row


def run_cell(base: CellBase, attack: Attack, setting: Setting) -> dict[str, Any]:
    """Compute (or reuse) one cell and store it; unsupported cells become ``skipped`` rows."""
    row = _row(base, attack, setting)
    reason = ""
    if setting not in attack.supported_settings:
        reason = f"{attack.name} does not support the {setting.value} setting"
    elif setting is Setting.TRANSFER and not isinstance(base.surrogate, TrainedBackbone):
        reason = base.surrogate if isinstance(base.surrogate, str) else "no surrogate"
    if reason:
        row.update(status="skipped", reason=reason)
        base.store.put(row)
        return row
    if not base.config.force:
        hit = base.store.find(row)
        if hit is not None and hit.get("status") == "ok":
            base.progress(f"{attack.name} [{setting.value}] on {base.defense.label}: reusing finished cell")
            return hit
    base.progress(f"{attack.name} [{setting.value}] on {base.defense.label} ({base.trained.name})")
    victim, fingerprint = _victim(base, setting)
    adv, info, seconds = _generate(base, attack, victim, fingerprint)
    points, labels, targets, ids = base.test_arrays()
    cell_seed = base.config.seed + zlib.crc32(f"{attack.name}|{setting.value}|{base.defense.label}".encode())
    adv_pred = base.predict(adv, cell_seed)
    correct = adv_pred == labels
    success = adv_pred == targets if attack.targeted else ~correct
    lo, hi = wilson_interval(int(correct.sum()), len(correct))
    n_in, n_out = points.shape[1], adv.shape[1]
    row.update(
        status="ok", reason="", robust_acc=float(correct.mean()), robust_acc_ci_low=lo, robust_acc_ci_high=hi,
        attack_success_rate=float(success.mean()), chamfer=float(chamfer(points, adv).mean()),
        hausdorff=float(hausdorff(points, adv).mean()), points_added=float(max(n_out - n_in, 0)),
        points_dropped=float(max(n_in - n_out, 0)), attack_seconds=seconds,
    )
    samples = pd.DataFrame({"example_id": ids, "label": labels, "target": targets, "clean_pred": base.clean_pred,
                            "adv_pred": adv_pred, "correct": correct, "success": success})
    for k, v in info.items():
        if v.shape == (len(ids),):
            samples[k] = v
    base.store.put(row, samples)
    return row


def sanity_accuracy(base: CellBase, attack: Attack) -> float:
    """Accuracy of the defended model under ``attack`` (a huge-budget PGD) in the adaptive setting."""
    victim, fingerprint = _victim(base, Setting.ADAPTIVE)
    adv, _, _ = _generate(base, attack, victim, fingerprint)
    labels = base.test_arrays()[1]
    return float((base.predict(adv, base.config.seed) == labels).mean())
