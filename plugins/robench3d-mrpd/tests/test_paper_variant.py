"""``mrpd:paper`` end to end on tiny stand-ins of its weights (official file layouts) found in $ROBENCH3D_WEIGHTS.

The paper configuration (README "mrpd:paper"): a Uni3D-Ti student (``uni3d.ti``) classifying by cosine similarity
to EVA02-E-14-plus text embeddings (``--opt backbone.text_encoder=open_clip``), and the paper code's teachers:
EVA02-E-14-plus's image tower on depth images (``mrpd_image:paper``), its text tower (``mrpd_text:paper``) and
Uni3D-B (``uni3d.b``). Paper-size weights cannot be had here, so the test writes random tiny stand-ins under the
file names the paper variant expects (``uni3d-ti/model.pt``, ``uni3d-b/model.pt``,
``eva02-e-14-plus/open_clip_pytorch_model.bin``), with the real architectures shrunk: the students' sizes through
``--opt backbone.*``, Uni3D-B's through a tiny copy of its ``base`` configuration (a teacher's backbone takes no
``--opt backbone.*`` size), EVA02-E-14-plus through a tiny open_clip config registered for the test.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest
import torch

from robench3d.backbones.base import CosineHead
from robench3d.backbones.uni3d import UNI3D
from robench3d.cache import file_sha256
from robench3d.cli import main
from robench3d_mrpd.image_teacher import DepthImageTeacher
from robench3d_mrpd.mrpd import MRPD
from robench3d_mrpd.text_teacher import PAPER_CLIP, PAPER_CLIP_WEIGHTS, TextTeacher

README = Path(__file__).parents[1] / "README.md"
FILES = ("uni3d-ti/model.pt", "uni3d-b/model.pt", PAPER_CLIP_WEIGHTS)


def _stand_ins() -> ModuleType:
    """The core tests' stand-in builders (tests/backbones/stand_ins.py), loaded by path: one copy of them."""
    path = Path(__file__).resolve().parents[3] / "tests" / "backbones" / "stand_ins.py"
    spec = importlib.util.spec_from_file_location("robench3d_paper_stand_ins", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


S = _stand_ins()


@pytest.fixture()
def models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$ROBENCH3D_WEIGHTS holding the three files of mrpd:paper (tiny random stand-ins), and a fresh cache."""
    folder = tmp_path / "models"
    S.OfficialUni3D("eva02_tiny_patch14_224", embed_dim=S.CLIP_DIM, **S.TINY).save(folder / FILES[0])
    S.OfficialUni3D("eva02_base_patch14_448", embed_dim=S.CLIP_DIM, seed=1, **S.TINY).save(folder / FILES[1])
    S.tiny_clip(folder / FILES[2], monkeypatch)
    monkeypatch.setitem(UNI3D.configs, "tiny_base", {**UNI3D.configs["base"], **S.TINY, "embed_dim": S.CLIP_DIM})
    monkeypatch.setenv("ROBENCH3D_WEIGHTS", str(folder))
    monkeypatch.setenv("ROBENCH3D_CACHE", str(tmp_path / "cache"))
    return folder


def _argv(out: Path, attacks: str = "pgd_l2") -> list[str]:
    """The README's paper command, with tiny sizes, the tiny CLIP and a 1 + 1 epoch schedule."""
    backbone = {**S.TINY, "tokenizer_widths": "8,16,16", "embed_dim": S.CLIP_DIM, "text_encoder": "open_clip",
                "text_model": S.TINY_CLIP_NAME, "text_weights": PAPER_CLIP_WEIGHTS}
    defense = {"clean_epochs": 1, "adv_epochs": 1, "val_limit": 4, "adv_steps": 2, "teacher_3d": "uni3d.b:tiny_base"}
    opts = [f"backbone.{k}={v}" for k, v in backbone.items()] + [f"defense.mrpd.{k}={v}" for k, v in defense.items()]
    opts += [f"teacher.mrpd_image.model={S.TINY_CLIP_NAME}", f"teacher.mrpd_text.model={S.TINY_CLIP_NAME}"]
    opts += ["attack.steps=2"] if attacks == "pgd_l2" else []
    return ["run", "--dataset", "shapes:tiny", "--num-points", "128", "--backbone", "uni3d.ti",
            *[f"--opt={o}" for o in opts], "--defense", "mrpd:paper", "--preset", "mrpd-paper", "--attacks", attacks,
            "--n", "4", "--output", str(out), "-q"]


def test_the_paper_variant_names_the_paper_teachers_files_and_schedule() -> None:
    p = MRPD.variants["paper"]
    assert (p["image_teacher"], p["teacher_3d"], p["text_teacher"]) == ("mrpd_image:paper", "uni3d.b",
                                                                        "mrpd_text:paper")
    assert (p["clean_epochs"], p["adv_epochs"], p["point_prompts"], p["text_context"]) == (50, 50, 10, 3)
    assert p["val_limit"] == 512
    for teacher in (DepthImageTeacher.variants["paper"], TextTeacher.variants["paper"]):
        assert (teacher["encoder"], teacher["model"], teacher["weights"]) == ("open_clip", PAPER_CLIP, FILES[2])
    assert DepthImageTeacher.variants["paper"]["image_size"] == 224  # EVA02-E-14-plus's image size
    section = README.read_text().split("## mrpd:paper", 1)[1].split("\n## ", 1)[0]
    assert "ROBENCH3D_WEIGHTS=/models robench3d run --backbone uni3d.ti --opt backbone.text_encoder=open_clip" in \
        section and "--defense mrpd:paper --preset mrpd-paper" in section
    assert all(f"/models/{name}" in section for name in FILES)


def test_the_paper_path_trains_and_evaluates_on_tiny_stand_ins(models: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(_argv(out)) == 0, capsys.readouterr().err
    rows = pd.read_csv(out / "results.csv")
    assert set(rows["defense"]) == {"none", "mrpd:paper+custom"} and set(rows["status"]) == {"ok"}
    hashes = {name: f"sha256:{file_sha256(models / name)[:12]}" for name in FILES}
    for student in rows["weights_provenance"]:  # the student: its file, and its head's text tower file
        assert hashes[FILES[0]] in student and hashes[FILES[2]] in student and student.count(S.NOTE) == 2
        assert f"cosine head on open_clip {S.TINY_CLIP_NAME} text tower" in student and "(no projection)" in student
    mrpd = rows[rows["defense"] == "mrpd:paper+custom"]
    assert len(mrpd) == 2 and set(mrpd["setting"]) == {"oblivious", "adaptive"}
    teachers = json.loads(mrpd["defense_provenance"].iloc[0])["teacher_provenance"]
    assert set(teachers) == {"image", "3d", "text"}
    for name, files in (("image", [FILES[2]]), ("3d", [FILES[1], FILES[2]]), ("text", [FILES[2]])):
        assert all(hashes[f] in teachers[name] for f in files) and S.NOTE in teachers[name], teachers[name]
    everything = " ".join([*rows["weights_provenance"], *mrpd["defense_provenance"]])
    assert not any(claim in everything for claim in ("pretrained", "EVA02", "Uni3D-B", "Uni3D-Ti"))
    assert "image:mrpd_image:paper+custom" in mrpd["teachers"].iloc[0]

    # MRPD trained 1 + 1 epochs with both cloud teachers gating, and selected on val
    sidecars = [json.loads(f.read_text()) for f in (tmp_path / "cache" / "defenses" / "mrpd").glob("*/model.json")]
    assert len(sidecars) == 1
    history = sidecars[0]["history"]
    assert len(history) == 2 and [h["adv_phase"] for h in history] == [0.0, 1.0]
    assert all(k in history[0] for k in ("L_image", "L_3d", "L_text", "kept_image", "kept_3d", "val_pgd"))


def test_the_student_head_is_the_open_clip_zero_shot_classifier(models: Path, tmp_path: Path) -> None:
    from robench3d.builtin.weights import robench3d_resolve_weights
    from robench3d.config import RunConfig, parse_opts
    from robench3d.evaluation.components import build_backbone
    from robench3d.plugins import build_plugin_manager, build_registries
    from robench3d.text import OpenCLIPTextEncoder

    argv = _argv(tmp_path / "out")
    opts = parse_opts([a.removeprefix("--opt=") for a in argv if a.startswith("--opt=")])
    config = RunConfig(cache_dir=tmp_path / "cache", opts=opts)
    names = ["chair", "table"]
    trained = build_backbone(build_registries(build_plugin_manager()), "uni3d.ti", config=config, train_data=None,
                             num_classes=2, class_names=names,
                             resolver=lambda spec: robench3d_resolve_weights(spec, config.cache_dir))
    head = trained.model.head
    assert isinstance(head, CosineHead) and isinstance(head.proj, torch.nn.Identity)  # 32 = 32: no projection
    expected = OpenCLIPTextEncoder(S.TINY_CLIP_NAME, models / PAPER_CLIP_WEIGHTS).encode(names)
    assert torch.allclose(head.class_embeddings, expected, atol=1e-6)


@pytest.mark.parametrize("missing", FILES)
def test_a_missing_paper_weights_file_says_which_and_where(missing: str, models: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    (models / missing).unlink()
    code = main(_argv(tmp_path / "out", attacks="fgsm"))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if missing == FILES[1]:
        # The 3D teacher is built with the defense, after the run's checks: its cells fail, the others run.
        assert code == 1
        reasons = set(pd.read_csv(tmp_path / "out" / "results.csv").query("status == 'error'")["reason"])
        assert len(reasons) == 1 and missing in reasons.pop() and "$ROBENCH3D_WEIGHTS" in err
    else:
        assert code == 2 and missing in err and "$ROBENCH3D_WEIGHTS" in err
