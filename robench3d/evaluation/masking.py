"""Gradient-masking flags (AutoAttack's idea: a white-box number is only credible if weaker attacks don't beat it).

A cell in the ``adaptive`` setting is flagged ``unreliable`` when, for the same defended model,

* the same attack transferred from a surrogate (``transfer``) breaks more samples than the white-box attack, or
  a score-only attack (``query``) breaks more samples than a white-box attack of the same norm: the white-box
  gradients must then be misleading; or
* PGD with a very large budget (linf eps 1.0, i.e. the whole unit sphere) fails to bring accuracy near zero
  (the sanity check of Carlini et al., "On Evaluating Adversarial Robustness", arXiv:1902.06705).

Differences of a single sample are ignored, so the flag is not triggered by ties and rounding.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["SANITY_MAX_ACC", "SANITY_PARAMS", "flag_unreliable"]

#: The sanity attack: pgd_linf with a budget covering the whole unit sphere.
# No random start: with eps 1.0 random noise alone would break the model and hide masked gradients.
SANITY_PARAMS: dict[str, Any] = {"eps": 1.0, "step": 0.25, "steps": 10, "early_stop": True, "random_start": False}
#: Accuracy under the sanity attack above which gradients are considered masked.
SANITY_MAX_ACC = 0.05


def _broken(row: dict[str, Any]) -> float:
    return float(row["n_examples"]) * (1.0 - float(row["robust_acc"]))


def flag_unreliable(rows: Iterable[dict[str, Any]], sanity_acc: float | None = None) -> list[dict[str, Any]]:
    """Set ``unreliable`` / ``unreliable_reason`` on the adaptive rows of one defended model; return changed rows."""
    ok = [r for r in rows if r.get("status") == "ok" and not r.get("is_control")]
    by = {(r["attack"], r["setting"]): r for r in ok}
    changed = []
    for r in ok:
        if r["setting"] != "adaptive":
            continue
        reasons = []
        if sanity_acc is not None and sanity_acc > SANITY_MAX_ACC:
            reasons.append(f"PGD at linf eps 1.0 leaves {100 * sanity_acc:.1f}% accuracy")
        t = by.get((r["attack"], "transfer"))
        if t is not None and _broken(t) > _broken(r) + 1:
            reasons.append(f"transfer from {t['surrogate']} breaks more samples ({100 * (1 - t['robust_acc']):.1f}%"
                           f" vs {100 * (1 - r['robust_acc']):.1f}%)")
        # A score-only attack is compared with the strongest white-box attack of its norm (beating one-step FGSM
        # is no evidence of masking; beating the best gradient attack is).
        peers = [x for x in ok if x["setting"] == "adaptive" and x["norm"] == r["norm"]]
        strongest = max(peers, key=_broken)
        for q in (x for x in ok if x["setting"] == "query" and x["norm"] == r["norm"]):
            if _broken(q) > _broken(strongest) + 1:
                reasons.append(f"query attack {q['attack']} breaks more samples than {strongest['attack']}")
        flagged, reason = bool(reasons), "; ".join(reasons)
        if bool(r.get("unreliable")) != flagged or (r.get("unreliable_reason") or "") != reason:
            r["unreliable"], r["unreliable_reason"] = flagged, reason
            changed.append(r)
    return changed
