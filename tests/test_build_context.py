"""The seams a distillation defense needs: the build context, teachers, teacher-output caching and artifacts.

The end-to-end test installs ``tests/plugins_src/seams_plugin.py`` as a third-party distribution: a teacher and a
defense that builds a second backbone through its context and trains a prompt with per-group learning rates,
logging two named losses.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import TINY_RUN, make_dist
from torch import nn

from robench3d.artifacts import Artifact
from robench3d.cli import main
from robench3d.context import BuildContext
from robench3d.errors import ConfigError
from robench3d.evaluation.results import read_table
from robench3d.plugins import build_plugin_manager, build_registries

SEAMS = (Path(__file__).parent / "plugins_src" / "seams_plugin.py").read_text()


def test_third_party_teacher_and_prompt_distillation_defense(tmp_path: Path, cache: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    make_dist(tmp_path, monkeypatch, "seams-dist", "seams_plugin", SEAMS)
    log = tmp_path / "log.json"
    monkeypatch.setenv("SEAMS_LOG", str(log))
    out = tmp_path / "o"
    code = main(["run", *TINY_RUN, "--defense", "prompt_distill", "--attacks", "fgsm", "--setting", "oblivious",
                 "--opt", "teacher.mean_teacher.dim=6", "--output", str(out)])
    assert code == 0
    rows = read_table(out / "results.csv")
    row = rows[rows["defense"] == "prompt_distill"].iloc[0]
    assert row["status"] == "ok" and row["extra_params"] == 3 and row["trainable_params"] == 3 + 15 * 6 + 6
    assert row["defense_train_seconds"] > 0 and "seams-dist==0.1" in row["plugins"]
    assert row["teachers"] == "mean_teacher+custom"
    info = json.loads(log.read_text())
    assert info["second"] == "pointnet2_ssg:test" and info["second_provenance"].startswith("trained here on shapes")
    assert info["teacher"]["embed_dim"] == 6 and "random init" in info["teacher"]["provenance"]
    assert info["teacher_frozen"] and not info["teacher_training"]
    epochs = info["info"]["epochs"]
    assert len(epochs) == 2 and {"ce", "distill", "n_seen"} <= set(epochs[0])
    assert epochs[0]["n_seen"] == 8 * 15  # counters are summed: every training cloud once per epoch
    assert info["info"]["lrs"][0] == [0.05, 0.005]  # two parameter groups, two learning rates
    # a second run loads the prompt artifact and the cached teacher outputs: same numbers
    monkeypatch.delenv("SEAMS_LOG")
    assert main(["run", *TINY_RUN, "--defense", "prompt_distill", "--attacks", "fgsm", "--setting", "oblivious",
                 "--opt", "teacher.mean_teacher.dim=6", "--output", str(tmp_path / "o2")]) == 0
    again = read_table(tmp_path / "o2" / "results.csv")
    again = again[again["defense"] == "prompt_distill"].iloc[0]
    assert again["robust_acc"] == row["robust_acc"] and again["defense_train_seconds"] == row["defense_train_seconds"]


@pytest.mark.parametrize(("opt", "needle"), [
    ("teacher.mean_teachr.dim=3", "'mean_teachr' is not a teacher registered"),
    ("teacher.mean_teacher.dim=1", "teacher 'mean_teacher' parameter 'dim': 1 is out of range"),
    ("teacher.width=3", "no teacher registered has a parameter 'width'"),
])
def test_teacher_options_are_checked_before_training(opt: str, needle: str, tmp_path: Path, cache: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    make_dist(tmp_path, monkeypatch, "seams-dist", "seams_plugin", SEAMS)
    code = main(["run", *TINY_RUN, "--defense", "prompt_distill", "--attacks", "fgsm", "--opt", opt,
                 "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and "Traceback" not in err


def _ctx(tmp_path: Path, train_data: object = None, **kw: object) -> BuildContext:
    return BuildContext(train_data=train_data, backbone=None, backbone_name="x:cpu",  # type: ignore[arg-type]
                        cache_dir=tmp_path, **kw)  # type: ignore[arg-type]


def test_a_context_without_training_data_says_so(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    with pytest.raises(ConfigError, match="has no train split"):
        _ = ctx.dataset
    with pytest.raises(ConfigError, match="cannot build backbones"):
        ctx.build_backbone("pointnet")
    assert ctx.resolve_weights(object()) is None


def test_builtin_backbone_teacher_is_frozen_and_its_outputs_are_cached(tmp_path: Path, cache: Path) -> None:
    from robench3d.evaluation.components import prepare_dataset
    from robench3d.teachers.base import teacher_outputs

    regs = build_registries(build_plugin_manager(autoload=False))
    assert "backbone" in regs["teachers"]
    data = prepare_dataset(regs, "shapes:tiny", cache_dir=cache, num_points=128)
    model = nn.Sequential(nn.Flatten(), nn.Linear(128 * 3, 4))

    class Trained:
        def __init__(self) -> None:
            self.model = _Net()
            self.name, self.provenance, self.info = "net:test", "random init (test)", {}

    class _Net(nn.Module):
        embed_dim = 4

        def __init__(self) -> None:
            super().__init__()
            self.body, self.head = model, nn.Linear(4, data.num_classes)

        def embed(self, p: torch.Tensor) -> torch.Tensor:
            return self.body(p)

    ctx = _ctx(tmp_path, data, backbone_factory=lambda ref, scope="backbone": Trained())
    teacher = regs["teachers"].get("backbone")(None, {"backbone": "net:test"}).build(ctx)
    assert teacher.embed_dim == 4 and teacher.provenance == "net:test: random init (test)"
    teacher.train()
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    pts = torch.from_numpy(data.split("train").points[:10])
    first = teacher_outputs(teacher, pts, ctx=ctx, key={"split": "train"})
    assert first.embedding.shape == (10, 4) and torch.allclose(first.embedding.norm(dim=1), torch.ones(10))
    assert first.correct(torch.zeros(10, dtype=torch.long), top_k=data.num_classes).all()
    teacher.encode = lambda p: (_ for _ in ()).throw(AssertionError("recomputed"))  # type: ignore[method-assign]
    again = teacher_outputs(teacher, pts, ctx=ctx, key={"split": "train"})
    assert torch.equal(again.embedding, first.embedding) and torch.equal(again.logits, first.logits)


def test_artifact_round_trip_subset_and_corruption(tmp_path: Path) -> None:
    art = Artifact.at(tmp_path, "defenses", "demo", {"a": 1})
    assert not art.exists() and art.load_tensors() is None
    net = nn.Linear(3, 2)
    info = art.save(net, {"config": {"a": 1}}, "demo trained here", train_seconds=1.234)
    assert info["provenance"].startswith("demo trained here, sha256:") and info["train_seconds"] == 1.23
    other = nn.Linear(3, 2)
    assert art.load_into(other)["cache_key"] == art.key and torch.equal(other.weight, net.weight)
    assert Artifact.at(tmp_path, "defenses", "demo", {"a": 2}).directory != art.directory
    partial = Artifact.at(tmp_path, "defenses", "demo", {"a": 3})
    partial.save({"bias": torch.ones(2)}, {}, "bias only")
    assert partial.load_into(nn.Linear(3, 2), strict=False) is not None
    foreign = Artifact.at(tmp_path, "defenses", "demo", {"a": 4})
    foreign.save({"zz": torch.ones(1)}, {}, "x")
    with pytest.raises(ConfigError, match="holds tensors the model lacks"):
        foreign.load_into(nn.Linear(3, 2), strict=False)
    art.weights.write_bytes(b"not safetensors")
    with pytest.raises(ConfigError, match="unreadable"):
        art.load_tensors()
