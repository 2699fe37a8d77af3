"""The shared trainer: selection on validation, frozen groups, and resume == uninterrupted."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from robench3d.errors import ConfigError
from robench3d.training.trainer import Trainer, TrainerConfig

X = torch.randn(64, 4, generator=torch.Generator().manual_seed(1))
Y = (X[:, 0] > 0).long()


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 2))


def _batches(epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(epoch)
    idx = torch.randperm(64, generator=g)
    return [(X[idx[i : i + 16]], Y[idx[i : i + 16]]) for i in range(0, 64, 16)]


def _step(m: nn.Module, b: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return nn.functional.cross_entropy(m(b[0]), b[1])


def _val(m: nn.Module) -> float:
    return float((m(X).argmax(1) == Y).float().mean())


def test_resume_reproduces_uninterrupted(tmp_path: Path) -> None:
    full = _model()
    Trainer(TrainerConfig(epochs=4, lr=0.05)).fit(full, _batches, _step, _val, steps_per_epoch=4)

    ckpt = tmp_path / "ckpt.pt"
    part = _model()

    class Stop(Exception):
        pass

    from robench3d.training.trainer import Callback

    class StopAfter2(Callback):
        def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
            if epoch == 1:
                raise Stop

    with pytest.raises(Stop):
        Trainer(TrainerConfig(epochs=4, lr=0.05), checkpoint=ckpt, callbacks=[StopAfter2()]).fit(
            part, _batches, _step, _val, steps_per_epoch=4)
    # epoch 2's checkpoint is written after callbacks; interrupting in epoch 2's callback leaves epoch 1's
    resumed = _model()
    res = Trainer(TrainerConfig(epochs=4, lr=0.05), checkpoint=ckpt).fit(resumed, _batches, _step, _val,
                                                                        steps_per_epoch=4)
    assert res.resumed_from_epoch == 1
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_frozen_parameters_do_not_move() -> None:
    m = _model()
    first = m[0]
    before = first.weight.detach().clone()
    Trainer(TrainerConfig(epochs=2, lr=0.05), frozen=[first]).fit(m, _batches, _step, None, steps_per_epoch=4)
    assert torch.equal(first.weight, before)
    assert first.weight.requires_grad  # restored afterwards


def test_selects_best_validation_epoch() -> None:
    scores = iter([0.1, 0.9, 0.2])
    m = _model()
    res = Trainer(TrainerConfig(epochs=3, lr=0.05)).fit(m, _batches, _step, lambda _m: next(scores),
                                                       steps_per_epoch=4)
    assert res.best_epoch == 2 and res.best_score == 0.9


def test_bad_config() -> None:
    with pytest.raises(ConfigError, match="epochs"):
        Trainer(TrainerConfig(epochs=0))
