"""Bad command-line input: every case exits 2 without a traceback, names the offending value and says what to do.

The dataset half of the corpus (malformed files in the real layouts) is ``tests/datasets/test_error_corpus.py``.
Each case here gives the fragments its message must contain: the value, what it belongs to, and a hint. A
catch-all wrapper of Python's own exception text must not pass (no exception class names, no ``invalid literal``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import TINY_RUN

from robench3d.cli import main

RUN = ["run", "--dataset", "shapes:tiny", "--backbone", "pointnet:test", "--num-points", "128", "--n", "4",
       "--attacks", "pgd_linf", "-q"]
RAW_PYTHON = ("Traceback", "ValueError", "TypeError", "KeyError", "invalid literal", "could not convert",
              "object has no attribute")

# (id, extra argv after RUN (or a full argv when it starts with a subcommand), fragments the message must contain)
CASES: list[tuple[str, list[str], list[str]]] = [
    ("eps-not-a-number", ["--opt", "attack.pgd_linf.eps=abc"], ["'pgd_linf'", "'eps'", "'abc'", "not a number",
                                                                "e.g. 0.05"]),
    ("eps-negative", ["--opt", "attack.pgd_linf.eps=-1"], ["'pgd_linf'", "'eps'", "-1", "out of range", ">= 0"]),
    ("eps-typo-letter-o", ["--opt", "attack.pgd_linf.eps=0.O5"], ["'eps'", "'0.O5'", "not a number"]),
    ("steps-float", ["--opt", "attack.pgd_linf.steps=2.5"], ["'steps'", "2.5", "not an integer", "e.g. 5"]),
    ("steps-underscore", ["--opt", "attack.pgd_linf.steps=1_0"], ["'steps'", "'1_0'", "not an integer"]),
    ("steps-zero", ["--opt", "attack.pgd_linf.steps=0"], ["'steps'", "0", "out of range", ">= 1"]),
    ("bool-word", ["--opt", "attack.pgd_linf.random_start=maybe"], ["'random_start'", "'maybe'",
                                                                    "not true or false"]),
    ("loss-choice", ["--attacks", "pgd_l2", "--opt", "attack.pgd_l2.loss=mse"], ["'loss'", "'mse'", "choose one of",
                                                                              "cw", "ce"]),
    ("eps-nan", ["--opt", "attack.pgd_linf.eps=nan"], ["'eps'", "'nan'", "not a number"]),
    ("unknown-attack-param", ["--opt", "attack.pgd_linf.epz=1"], ["'pgd_linf'", "'epz'", "valid:", "eps"]),
    ("unscoped-unknown-param", ["--opt", "attack.stepz=3"], ["'stepz'", "attack.NAME.KEY"]),
    ("param-of-absent-attack", ["--opt", "attack.fgsm.eps=1"], ["'fgsm' is not an attack of this run",
                                                                "pgd_linf"]),
    ("param-of-absent-defense", ["--opt", "defense.sor.k=1"], ["'sor' is not a defense of this run"]),
    ("train-epochs-float", ["--opt", "train.epochs=2.5"], ["training recipe", "'epochs'", "2.5", "not an integer"]),
    ("train-lr-zero", ["--opt", "train.lr=0"], ["'lr'", "out of range", "> 0"]),
    ("train-optimizer", ["--opt", "train.optimizer=rmsprop"], ["'optimizer'", "'rmsprop'", "adamw"]),
    ("train-unknown", ["--opt", "train.epoch=3"], ["training recipe", "'epoch'", "valid:", "epochs"]),
    ("backbone-float", ["--opt", "backbone.dropout=abc"], ["backbone 'pointnet'", "'dropout'", "'abc'",
                                                           "not a number"]),
    ("backbone-unknown", ["--opt", "backbone.depth=3"], ["backbone 'pointnet'", "'depth'", "valid:", "widths"]),
    ("backbone-list-item", ["--opt", "backbone.widths=16,abc"], ["'widths'", "'abc'", "not an integer"]),
    ("dataset-option-type", ["--opt", "dataset.data_seed=abc"], ["dataset 'shapes'", "'data_seed'", "'abc'",
                                                                 "not an integer"]),
    ("dataset-option-unknown", ["--opt", "dataset.sampling=fps"], ["dataset 'shapes'", "'sampling'", "valid:"]),
    ("teacher-unknown", ["--opt", "teacher.nope.dim=3"], ["'nope' is not a teacher registered"]),
    ("opt-no-equals", ["--opt", "attack.eps"], ["'attack.eps'", "SCOPE.KEY=VALUE"]),
    ("opt-bad-scope", ["--opt", "atack.eps=1"], ["'atack'", "valid scopes", "attack"]),
    ("num-points-zero", ["--num-points", "0"], ["--num-points", "must be >= 1, got 0"]),
    ("num-points-text", ["--num-points", "many"], ["--num-points", "'many' is not an integer"]),
    ("n-zero", ["--n", "0"], ["--n must be >= 1, got 0"]),
    ("n-text", ["--n", "some"], ["--n", "'some'", "'all' or 'auto'"]),
    ("eot-zero", ["--eot-samples", "0"], ["--eot-samples", "must be >= 1"]),
    ("batch-negative", ["--batch-size", "-3"], ["--batch-size", "must be >= 1, got -3"]),
    ("device-cuda", ["--device", "cuda"], ["--device cuda", "no CUDA GPU", "use --device cpu"]),
    ("device-unknown", ["--device", "tpu"], ["'tpu'", "use cpu, cuda or cuda:N"]),
    ("preset-unknown", ["--preset", "fast"], ["'fast'", "valid presets", "quick"]),
    ("setting-unknown", ["--setting", "whitebox"], ["'whitebox'", "oblivious", "adaptive"]),
    ("attack-typo", ["--attacks", "pgd_lnf"], ["'pgd_lnf'", "did you mean 'pgd_linf'", "robench3d list attacks"]),
    ("attack-glob-empty", ["--attacks", "zz*"], ["'zz*'", "available"]),
    ("defense-typo", ["--defense", "nonee"], ["'nonee'", "did you mean 'none'", "robench3d list defenses"]),
    ("backbone-typo", ["--backbone", "pointnett"], ["'pointnett'", "did you mean 'pointnet'"]),
    ("backbone-config", ["--backbone", "pointnet:huge"], ["'pointnet'", "'huge'", "valid:", "cpu"]),
    ("backbone-tag", ["--backbone", "pointnet.imagenet"], ["'pointnet'", "'imagenet'", "tags"]),
    ("dataset-typo", ["--dataset", "shapez"], ["'shapez'", "did you mean 'shapes'"]),
    ("plugin-flag", ["-p", "yes:x"], ["-p", "'yes:x'"]),
    ("plugin-missing", ["-p", "no_such_plugin_xyz"], ["'no_such_plugin_xyz'", "no installed distribution"]),
    ("train-device", ["train", "--dataset", "shapes:tiny", "--backbone", "pointnet:test", "--device", "cuda:3"],
     ["--device cuda:3", "no CUDA GPU"]),
    ("train-num-points", ["train", "--dataset", "shapes:tiny", "--num-points", "-5"], ["must be >= 1, got -5"]),
]


@pytest.mark.parametrize(("argv", "needles"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_option_is_a_clear_error(argv: list[str], needles: list[str], tmp_path: Path, cache: Path,
                                     capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    full = argv if argv[0] in ("train", "run") else [*RUN, *argv]
    if full[0] == "run":
        full = [*full, "--output", str(tmp_path / "out")]
    code = main(full)
    captured = capsys.readouterr()
    text = captured.err + captured.out
    assert code == 2, text
    for needle in needles:
        assert needle in text, f"{needle!r} missing from: {text}"
    for raw in RAW_PYTHON:
        assert raw not in text, f"raw Python error text {raw!r} in: {text}"
    assert not re.search(r"\ba (attack|option|error|integer|element)\b", text), text  # "an attack", never "a attack"
    assert not (tmp_path / "out" / "results.csv").exists()  # nothing was trained or written


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40


def test_p_accepted_before_and_after_the_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-p", "no:robench3d.builtin.defenses", "list", "defenses"]) == 0
    before = capsys.readouterr().out
    assert main(["list", "defenses", "-p", "no:robench3d.builtin.defenses"]) == 0
    after = capsys.readouterr().out
    assert "none " not in before and "none " not in after and before == after


def test_unwritable_output_fails_before_any_training(tmp_path: Path, cache: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code = main(["run", *TINY_RUN, "--attacks", "fgsm", "--output", str(blocker / "sub"),
                 "--opt", "train.epochs=7", "--backbone", "pointnet:test"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot write results there" in err and str(blocker / "sub") in err
    assert not (cache / "backbones").exists() or not any((cache / "backbones").rglob("*epochs*"))
    assert "Traceback" not in err


def test_one_training_cloud_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "mine"
    import numpy as np

    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        for split, count in (("train", 1 if cls == "a" else 0), ("test", 1)):
            folder = root / cls / split
            folder.mkdir(parents=True)
            for i in range(count):
                np.savetxt(folder / f"{cls}_{i}.xyz", rng.normal(size=(64, 3)))
    code = main(["train", "--dataset", "folder", "--data-root", str(root), "--backbone", "pointnet:test",
                 "--num-points", "64",
                 "--opt", "dataset.val_fraction=0", "--cache-dir", str(tmp_path / "c"), "-q"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "1 training cloud(s)" in err and "at least 2" in err and "Traceback" not in err
