"""MRPD's losses (mrpd.md section 2): symmetric InfoNCE, the confidence-gated contrastive loss and the
uncertainty weighting of the three teachers' losses.

* :func:`info_nce`: symmetric InfoNCE between two batches of embeddings, positives on the diagonal (same sample),
  the other samples of the batch as negatives, divided by a temperature.
* :func:`gated_contrastive` (CGC): InfoNCE restricted to the samples the teacher itself classifies correctly (the
  true label among its top-k classes). This is the paper's class-level gate: the teacher's logits are over the C
  classes (for a CLIP teacher, against the C x D class-text matrix), not against per-sample text embeddings as in the
  released code, whose gate compares a batch index with a class id and keeps almost nothing (mrpd.md section 3,
  problem 1). Fewer than 2 kept samples give a zero loss (InfoNCE needs a negative).
* :func:`uncertainty_weighted`: ``L = sum_k exp(-s_k) L_k + s_k`` with learnable log-variances ``s_k`` clamped from
  below (the paper: -1.0; the released code: -0.8), so no loss can be weighted up without bound.

Shape:
    embeddings (B, D) (normalised inside); labels (B,); teacher logits (B, C).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

__all__ = ["gated_contrastive", "info_nce", "label_contrastive", "uncertainty_weighted"]


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: torch.Tensor | float) -> torch.Tensor:
    """Symmetric InfoNCE: mean of the a->b and b->a cross-entropies over cosine similarities / temperature.

    Shape: (B, D), (B, D) -> scalar.
    """
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    logits = a @ b.t() / temperature
    target = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def gated_contrastive(student: torch.Tensor, teacher: torch.Tensor, teacher_logits: torch.Tensor,
                      labels: torch.Tensor, temperature: torch.Tensor | float, *, top_k: int = 1,
                      gate: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The confidence-gated contrastive loss and the mask of kept samples.

    Args:
        student: the student's embeddings in the teacher's space (B, D).
        teacher: the teacher's embeddings (B, D).
        teacher_logits: the teacher's class logits (B, C); a sample is kept if its label is in the top ``top_k``.
        gate: ``False`` keeps every sample (the ablation "gate off").

    Returns:
        (loss, kept): a scalar (0 with a graph to ``student`` when fewer than 2 samples are kept) and (B,) bool.
    """
    if gate:
        k = min(int(top_k), teacher_logits.shape[1])
        kept = (teacher_logits.topk(k, dim=1).indices == labels.view(-1, 1)).any(dim=1)
    else:
        kept = torch.ones_like(labels, dtype=torch.bool)
    if int(kept.sum()) < 2:
        return student.sum() * 0.0, kept
    return info_nce(student[kept], teacher[kept], temperature), kept


def label_contrastive(student: torch.Tensor, class_embeddings: torch.Tensor, labels: torch.Tensor,
                      temperature: torch.Tensor | float, *, kind: str = "infonce") -> torch.Tensor:
    """The text loss between the student's embeddings and the text embedding of each sample's class.

    ``infonce`` (the released code; mrpd.md section 5): symmetric InfoNCE over the batch with the class embedding of
    each sample as its positive (other samples of the same class act as false negatives). ``ce``: cross-entropy of
    the student over all C class embeddings (our alternative).

    Shape: student (B, D), class_embeddings (C, D), labels (B,) -> scalar.
    """
    if kind == "ce":
        logits = F.normalize(student, dim=-1) @ F.normalize(class_embeddings, dim=-1).t() / temperature
        return F.cross_entropy(logits, labels)
    return info_nce(student, class_embeddings[labels], temperature)


def uncertainty_weighted(losses: Mapping[str, torch.Tensor], log_vars: Mapping[str, torch.Tensor], *,
                         clamp: float = -1.0, learn: bool = True) -> tuple[torch.Tensor, dict[str, float]]:
    """``sum_k exp(-s_k) L_k + s_k`` with ``s_k >= clamp`` (or the plain sum when ``learn`` is False).

    Returns:
        (total loss, the weight exp(-s_k) of each loss, for the logs).
    """
    total = next(iter(losses.values())).new_zeros(())
    weights: dict[str, float] = {}
    for name, loss in losses.items():
        if not learn:
            total = total + loss
            weights[name] = 1.0
            continue
        s = log_vars[name].clamp(min=clamp)
        total = total + torch.exp(-s) * loss + s
        weights[name] = float(torch.exp(-s).detach())
    return total, weights
