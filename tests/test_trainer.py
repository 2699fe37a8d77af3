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


class _Prompted(nn.Module):
    """A frozen 'tower' (with BatchNorm buffers) and a small trainable prompt + head."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.tower = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU())
        self.prompt = nn.Parameter(torch.zeros(8))
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.tower(x) + self.prompt)


def test_param_groups_named_losses_and_frozen_towers(tmp_path: Path) -> None:
    from robench3d.training.trainer import Callback, ParamGroup, trained_state

    m = _Prompted()
    tower_before = {k: v.clone() for k, v in m.tower.state_dict().items()}
    seen: list[dict[str, float]] = []
    epochs: list[dict[str, float]] = []
    lrs: list[tuple[float, float]] = []

    class Watch(Callback):
        def on_step(self, trainer: Trainer, epoch: int, step: int, logs: object) -> None:
            seen.append(dict(logs))  # type: ignore[call-overload]

        def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
            epochs.append(metrics)

    def step(model: nn.Module, b: tuple[torch.Tensor, torch.Tensor]) -> dict[str, object]:
        ce = nn.functional.cross_entropy(model(b[0]), b[1])
        reg = model.prompt.pow(2).sum()
        lrs.append(tuple(g["lr"] for g in opt_groups()))  # type: ignore[arg-type]
        return {"loss": ce + 0.1 * reg, "ce": ce, "reg": reg, "n_kept": 3}

    messages: list[str] = []
    trainer = Trainer(TrainerConfig(epochs=2, lr=0.05, min_lr=0.0, select="val_loss", select_mode="min"),
                      frozen=[m.tower], callbacks=[Watch()], checkpoint=tmp_path / "ck.pt", progress=messages.append)
    captured: dict[str, torch.optim.Optimizer] = {}
    original = trainer._optimizer

    def spy(groups: list[dict[str, object]]) -> torch.optim.Optimizer:
        captured["opt"] = original(groups)
        return captured["opt"]

    trainer._optimizer = spy  # type: ignore[method-assign]

    def opt_groups() -> list[dict[str, object]]:
        return captured["opt"].param_groups

    scores = iter([0.5, 0.2])
    res = trainer.fit(m, _batches, step, lambda _m: {"val_loss": next(scores), "val_acc": 0.5}, steps_per_epoch=4,
                      groups=[ParamGroup([m.prompt], lr=0.5, name="prompt")])
    # the prompt group has its own learning rate, decaying on the same cosine as the default group
    assert lrs[0] == (0.5, 0.05) and lrs[4][0] == pytest.approx(10 * lrs[4][1])
    # named values reach the callbacks, the epoch metrics (counters summed) and the progress line
    assert set(seen[0]) == {"loss", "ce", "reg", "n_kept"} and epochs[0]["n_kept"] == 12
    assert "ce " in messages[0] and "reg " in messages[0]
    # selection on a named metric, lower is better
    assert res.best_epoch == 2 and res.best_score == 0.2
    # the frozen tower (weights and BatchNorm statistics) did not move and is not in the checkpoint
    for k, v in m.tower.state_dict().items():
        assert torch.equal(v, tower_before[k]), k
    ckpt = torch.load(tmp_path / "ck.pt", weights_only=True)
    assert set(ckpt["model"]) == {"prompt", "head.weight", "head.bias"} == set(ckpt["best_state"])
    assert set(trained_state(m, [m.prompt, *m.head.parameters()], [m.tower])) == set(ckpt["model"])


def test_a_plain_model_keeps_every_parameter_and_buffer() -> None:
    from robench3d.training.trainer import trained_state

    m = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8))
    assert set(trained_state(m, list(m.parameters()))) == set(m.state_dict())


def test_selecting_on_a_missing_metric_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="selects on 'val_pgd'"):
        Trainer(TrainerConfig(epochs=1, select="val_pgd")).fit(_model(), _batches, _step, lambda m: {"val": 1.0},
                                                               steps_per_epoch=4)
