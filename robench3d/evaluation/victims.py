"""Victims: what an attack differentiates (or queries) in each threat setting (protocol.md section 2).

* oblivious: the undefended base backbone;
* adaptive: the defended model itself when its preprocessing is differentiable, else :class:`BPDAVictim`;
* transfer: a surrogate backbone;
* query: :class:`ScoreOracle`, scores only, with a query counter.
"""

from __future__ import annotations

import torch
from torch import nn

from robench3d.defenses.base import DefendedModel

__all__ = ["BPDAVictim", "ScoreOracle", "adaptive_victim", "bpda_pointwise", "bpda_through", "victim_label"]


def bpda_through(transformed: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """Return ``transformed`` in the forward pass with an identity backward pass to the inputs.

    Each output point is tied to its nearest input point (for point removal and padding by duplication that is
    the point it came from); the gradient of an output point flows unchanged to that input point. Removed points
    get no gradient, duplicated points accumulate theirs.

    Shape: transformed (B, M, 3), inputs (B, N, 3) -> (B, M, 3).
    """
    with torch.no_grad():
        idx = torch.cdist(transformed, inputs.detach(), compute_mode="donot_use_mm_for_euclid_dist").argmin(dim=2)
    picked = torch.gather(inputs, 1, idx.unsqueeze(-1).expand(-1, -1, 3))
    return transformed.detach() + (picked - picked.detach())


def bpda_pointwise(transformed: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """``transformed`` forward, identity backward point by point (output point i comes from input point i).

    Shape: transformed (B, N, 3), inputs (B, N, 3) -> (B, N, 3).
    """
    if transformed.shape != inputs.shape:
        raise ValueError(f"a transform declared bpda='pointwise' returned {tuple(transformed.shape)} for inputs "
                         f"{tuple(inputs.shape)}; a pointwise transform must keep every point (declare 'nearest')")
    return inputs + (transformed - inputs).detach()


class BPDAVictim(nn.Module):
    """Adaptive victim for non-differentiable or random preprocessing: BPDA, averaged over EOT samples.

    The forward pass runs the real preprocessing; the backward pass treats it as the identity
    (``DefendedModel.bpda``: a gather of the points a ``select`` transform declares it picks, the same index for a
    ``pointwise`` transform, else each output point's nearest input, :func:`bpda_through`); the differentiable
    rest (``classify``) is differentiated exactly. For randomised preprocessing the logits are averaged over
    ``eot_samples`` independent draws. On an accelerator the draws are stacked into one batch (``max_batch``
    clouds at most per pass); on a CPU stacking is slower than one pass per draw (``benchmarks/bench_defenses.py``:
    12.0x vs 7.1x the bare backbone for SRS), so there each draw is its own pass.
    """

    def __init__(self, defended: DefendedModel, eot_samples: int = 10) -> None:
        super().__init__()
        self.defended = defended
        self.eot_samples = eot_samples if defended.randomized else 1
        self.randomized = defended.randomized

    @property
    def modules_to_freeze(self) -> tuple[nn.Module, ...]:
        return (self.defended,)

    #: EOT draws are stacked into one batch of at most this many clouds (one pass instead of ``eot_samples``).
    max_batch: int = 256
    #: Stack the EOT draws: ``None`` (default) stacks on accelerators only.
    stack: bool | None = None

    @property
    def label(self) -> str:
        """How this victim is built, for the rows' ``victim`` column (``bpda:select+eot10``, ``plain+eot10``)."""
        base = "plain" if self.defended.differentiable else f"bpda:{self.defended.bpda}"
        return base + (f"+eot{self.eot_samples}" if self.randomized else "")

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        assert self.defended.transform is not None
        b = points.shape[0]
        stack = points.device.type != "cpu" if self.stack is None else self.stack
        per_pass = max(1, min(self.eot_samples, self.max_batch // max(1, b))) if stack else 1
        total, done = None, 0
        while done < self.eot_samples:
            copies = min(per_pass, self.eot_samples - done)
            # Independent draws per row: the copies of a cloud see different random preprocessing.
            logits = self._one_pass(points.repeat(copies, 1, 1) if copies > 1 else points)
            summed = logits.view(copies, b, -1).sum(dim=0)
            total = summed if total is None else total + summed
            done += copies
        assert total is not None
        return total / self.eot_samples

    def _one_pass(self, points: torch.Tensor) -> torch.Tensor:
        select = self.defended.select
        if self.defended.differentiable:
            y = self.defended.transform(points)
        elif select is not None:
            with torch.no_grad():
                idx = select(points)
            y = torch.gather(points, 1, idx.unsqueeze(-1).expand(-1, -1, points.shape[-1]))
        else:
            with torch.no_grad():
                y = self.defended.transform(points)
            y = bpda_pointwise(y, points) if self.defended.bpda == "pointwise" else bpda_through(y, points)
        return self.defended.classify(y)


class ScoreOracle(nn.Module):
    """Score-only access to a model: no gradients, and every sample's queries are counted."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.queries = 0
        self.randomized = bool(getattr(model, "randomized", False))

    @property
    def modules_to_freeze(self) -> tuple[nn.Module, ...]:
        return (self.model,)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        self.queries += points.shape[0]
        with torch.no_grad():
            return self.model(points.detach())


def victim_label(victim: nn.Module) -> str:
    """The ``victim`` column of an adaptive or query cell: ``plain``, ``bpda:...``, ``+eot<k>``, ``query``."""
    if isinstance(victim, ScoreOracle):
        return "query"
    return victim.label if isinstance(victim, BPDAVictim) else "plain"


def adaptive_victim(defended: DefendedModel, eot_samples: int) -> nn.Module:
    """The victim of the adaptive setting: the defended model itself when plain gradients are exact (no
    preprocessing, or differentiable deterministic preprocessing), else a :class:`BPDAVictim` (BPDA and/or EOT)."""
    if defended.transform is None or (defended.differentiable and not defended.randomized):
        return defended
    return BPDAVictim(defended, eot_samples)
