"""Cosine heads on MiniLM class-name embeddings, selectable with ``--opt backbone.head=cosine``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from robench3d.backbones.text import class_name_embeddings
from robench3d.cli import main
from robench3d.errors import ConfigError


def test_class_name_embeddings_are_unit_rows_with_provenance() -> None:
    emb, source = class_name_embeddings(["chair", "night_stand", "airplane"])
    assert emb.shape == (3, 384) and emb.dtype == torch.float32
    assert torch.allclose(emb.norm(dim=1), torch.ones(3), atol=1e-5)
    assert "all-MiniLM-L6-v2" in source and "sha256:" in source and "a point cloud of a {}." in source
    again, _ = class_name_embeddings(["chair"])
    assert torch.allclose(again[0], emb[0], atol=1e-5)  # padding to the batch does not change an embedding
    assert (emb @ emb.t()).fill_diagonal_(0).max() < 0.99  # distinct classes, distinct embeddings


def test_template_must_have_one_placeholder() -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        class_name_embeddings(["chair"], template="a point cloud")


def test_train_with_cosine_head_through_the_cli(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "--backbone", "pointnet:test", "--dataset", "shapes:tiny", "--num-points", "128",
            "--opt", "train.epochs=1", "-q"]
    assert main([*argv, "--opt", "backbone.head=cosine"]) == 0
    assert "accuracy" in capsys.readouterr().out
    sidecars = {json.loads(p.read_text())["head"]: json.loads(p.read_text())
                for p in (cache / "backbones" / "pointnet").glob("*/model.json")}
    assert "cosine" in sidecars
    assert "all-MiniLM-L6-v2" in sidecars["cosine"]["key"]["class_embeddings"]
    assert main(argv) == 0  # the linear head is a different cache entry
    heads = [json.loads(p.read_text())["head"] for p in (cache / "backbones" / "pointnet").glob("*/model.json")]
    assert {"cosine", "linear"} <= set(heads)


def test_unknown_head_is_a_config_error(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--backbone", "pointnet:test", "--dataset", "shapes:tiny", "--num-points", "128",
                 "--opt", "backbone.head=softmax", "-q"])
    assert code == 2
    assert "unknown head 'softmax'" in capsys.readouterr().err
