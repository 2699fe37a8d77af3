"""The example backbone keeps the Backbone contract, trains and evaluates through the CLI, and loads local weights."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from robench3d.cli import main
from robench3d_example.tinynet import TINYNET

B, N, C = 4, 64, 5


def test_contract_shapes_gradients_and_prompts() -> None:
    assert set(TINYNET.configs) == set(TINYNET.recipes) == {"cpu", "test"}
    torch.manual_seed(0)
    model = TINYNET.build(C, "test").eval()
    x = torch.rand(B, N, 3, requires_grad=True)
    logits = model(x)
    assert logits.shape == (B, C) and model.embed(x).shape == (B, model.embed_dim)
    assert model.forward_features(x).shape == (B, 32, N)
    (grad,) = torch.autograd.grad(logits.logsumexp(dim=1).sum(), x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0  # what every gradient attack needs
    prompts = torch.randn(1, 3, model.prompt_dim, requires_grad=True)  # type: ignore[arg-type]
    prompted = model.embed(x, prompts)
    assert prompted.shape == (B, model.embed_dim) and not torch.allclose(prompted, model.embed(x))
    with pytest.raises(Exception, match="prompts must have shape"):
        model.embed(x, torch.randn(1, 3, model.prompt_dim + 1))  # type: ignore[operator]


def test_trains_and_evaluates_through_the_cli(cache: Path, tmp_path: Path) -> None:
    code = main(["run", "--dataset", "shapes:tiny", "--backbone", "example_tinynet:test", "--num-points", "128",
                 "--n", "8", "--attacks", "fgsm", "--setting", "oblivious", "-q", "--output", str(tmp_path / "out")])
    assert code == 0
    row = pd.read_csv(tmp_path / "out" / "results.csv").iloc[0]
    assert row["status"] == "ok" and row["backbone"] == "example_tinynet:test"
    assert str(row["weights_provenance"]).startswith("trained here on shapes@")
    assert (cache / "backbones" / "example_tinynet").is_dir()  # cached: the next run trains nothing


def test_pretrained_tag_is_found_in_robench3d_weights(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    data = ["--dataset", "shapes:tiny", "--num-points", "128", "-q"]
    run = ["run", *data, "--backbone", "example_tinynet.local", "--n", "8", "--attacks", "fgsm",
           "--setting", "oblivious", "--output", str(tmp_path / "out")]
    assert main(run) == 2  # no file anywhere, and robench3d never downloads
    assert "never downloads them: place the file in $ROBENCH3D_WEIGHTS" in capsys.readouterr().err

    assert main(["train", "--backbone", "example_tinynet:test", *data]) == 0
    trained = next(line.split()[-1] for line in capsys.readouterr().out.splitlines() if line.startswith("file"))
    weights = tmp_path / "weights"
    (weights / "example_tinynet").mkdir(parents=True)
    shutil.copy(trained, weights / "example_tinynet" / "local.safetensors")  # the WeightsSpec's filename
    monkeypatch.setenv("ROBENCH3D_WEIGHTS", str(weights))
    assert main(run) == 0
    row = pd.read_csv(tmp_path / "out" / "results.csv").iloc[0]
    assert row["backbone"] == "example_tinynet.local" and row["status"] == "ok"
    assert str(row["weights_provenance"]).startswith("file local.safetensors sha256:")
