"""``run --executor ray`` on a local Ray instance (loopback) writes the rows the local executor writes."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from helpers import TINY_RUN

from robench3d.cli import main
from robench3d.evaluation.results import read_table

#: Timing columns: measured, so they differ between any two runs.
VOLATILE = ["latency_ms", "latency_ratio", "attack_seconds", "train_seconds", "defense_train_seconds"]
#: Three defenses (none, sor, and srs, which is random: EOT and seeded predictions), two attacks, two settings.
MATRIX = [*TINY_RUN, "--defense", "sor,srs", "--attacks", "fgsm,pgd_linf", "--setting", "oblivious,adaptive"]


def _rows(folder: Path) -> pd.DataFrame:
    frame = read_table(folder / "results.csv").drop(columns=VOLATILE)
    return frame.sort_values(["backbone", "defense", "attack", "setting"]).reset_index(drop=True)


def _samples(folder: Path) -> dict[str, pd.DataFrame]:
    return {p.name: pd.read_csv(p) for p in sorted((folder / "samples").glob("*.csv"))}


def test_ray_executor_writes_the_rows_of_the_local_executor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    # Local run, torch pinned to one thread as every Ray task is; each run trains in a cache of its own.
    monkeypatch.setenv("ROBENCH3D_CACHE", str(tmp_path / "cache-local"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["run", *MATRIX, "--output", str(tmp_path / "local")]) == 0
    finally:
        torch.set_num_threads(threads)
    monkeypatch.setenv("ROBENCH3D_CACHE", str(tmp_path / "cache-ray"))
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 * 2**20, _node_ip_address="127.0.0.1",
             log_to_driver=False, runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}})
    try:
        assert main(["run", *MATRIX, "--executor", "ray", "--output", str(tmp_path / "ray")]) == 0
    finally:
        ray.shutdown()
    local, remote = _rows(tmp_path / "local"), _rows(tmp_path / "ray")
    assert len(local) == 12 and (local["status"] == "ok").all()
    # Same weights (the provenance carries their sha256), clean and robust accuracy, flags: every column but timings.
    pd.testing.assert_frame_equal(local, remote)
    assert local["robust_acc"].nunique() > 1  # the comparison is not between constant columns
    local_samples, remote_samples = _samples(tmp_path / "local"), _samples(tmp_path / "ray")
    assert local_samples.keys() == remote_samples.keys() and len(local_samples) == 12
    for name, frame in local_samples.items():
        pd.testing.assert_frame_equal(frame, remote_samples[name], obj=name)
    # Nothing made twice: the same adversarial cloud sets (one oblivious set per attack, replayed on the three
    # defenses) and one trained backbone in either cache.
    clouds = {p: sorted(x.name for x in (tmp_path / p / "adversarial").glob("*.npz")) for p in ("cache-local",
                                                                                              "cache-ray")}
    assert clouds["cache-local"] == clouds["cache-ray"]
    assert len(list((tmp_path / "cache-ray" / "backbones").glob("*/*/model.safetensors"))) == 1


def test_executor_ray_without_ray_is_a_clear_error(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError, as when it is not installed
    code = main(["run", *TINY_RUN, "--attacks", "fgsm", "--executor", "ray", "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert 'pip install -e ".[ray]"' in err
