"""The point autoencoder AdvPC attacks through (private helper): a PointNet encoder and a fully connected decoder,
trained with the Chamfer loss on the dataset's train split and cached.

References:
    Achlioptas et al. Learning Representations and Generative Models for 3D Point Clouds. arXiv:1707.02392
    (the architecture family AdvPC uses; ours is a small version that trains in about a minute on a CPU).

Cache: ``<cache_dir>/attacks/advpc/<key>/autoencoder.safetensors`` + ``autoencoder.json`` (configuration,
training loss, time, provenance); ``key`` hashes the full autoencoder configuration, the dataset name and version,
N, the seed and :data:`AE_CODE_VERSION`, so a changed option never reuses a stale model.

Shape:
    PointAutoEncoder: (B, N, 3) -> (B, num_points, 3).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robench3d.cache import atomic_path, read_json, stable_hash, write_json
from robench3d.errors import ConfigError
from robench3d.pointops import nearest_sq_distances

__all__ = ["AE_CODE_VERSION", "PointAutoEncoder", "load_or_train_autoencoder"]

logger = logging.getLogger(__name__)

#: Bump when the architecture or the training loop changes the weights they produce.
AE_CODE_VERSION = 1


class PointAutoEncoder(nn.Module):
    """Shared per-point MLP + max pool -> latent code -> MLP -> ``num_points`` x 3 coordinates.

    No BatchNorm: the attack differentiates the autoencoder in eval mode and batches of any size must behave alike.
    """

    def __init__(self, num_points: int, latent: int = 128, widths: Sequence[int] = (32, 64, 128),
                 hidden: Sequence[int] = (256, 256)) -> None:
        super().__init__()
        self.num_points = num_points
        layers: list[nn.Module] = []
        ch = 3
        for w in (*widths, latent):
            layers += [nn.Conv1d(ch, w, 1), nn.ReLU()]
            ch = w
        self.encoder = nn.Sequential(*layers[:-1])  # no ReLU on the code
        dec: list[nn.Module] = []
        d = latent
        for h in hidden:
            dec += [nn.Linear(d, h), nn.ReLU()]
            d = h
        dec.append(nn.Linear(d, num_points * 3))
        self.decoder = nn.Sequential(*dec)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        code = self.encoder(points.transpose(1, 2)).max(dim=2).values
        return self.decoder(code).view(-1, self.num_points, 3)


def chamfer_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Symmetric Chamfer distance (mean squared nearest-neighbour distance both ways). Shape: -> (B,)."""
    return nearest_sq_distances(a, b).mean(dim=1) + nearest_sq_distances(b, a).mean(dim=1)


def _train(model: PointAutoEncoder, dataset: Any, config: Mapping[str, Any], seed: int, device: str,
           say: Callable[[str], None]) -> dict[str, float]:
    opt = torch.optim.Adam(model.parameters(), lr=float(config["ae_lr"]))
    epochs, batch = int(config["ae_epochs"]), int(config["ae_batch_size"])
    sub = int(config["ae_train_points"])
    gen = torch.Generator().manual_seed(seed)
    t0, loss_value = time.perf_counter(), float("nan")
    model.train()
    for epoch in range(epochs):
        total, count = 0.0, 0
        for b in dataset.batches("train", batch, shuffle=True, seed=seed * 10_007 + epoch):
            x = b.points.to(device)
            if sub < x.shape[1]:
                # A random subset per step: Chamfer costs O(N^2), and the subsets double as density augmentation.
                x = x[:, torch.randperm(x.shape[1], generator=gen)[:sub].to(device)]
            loss = chamfer_loss(model(x), x).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, count = total + float(loss.detach()) * len(x), count + len(x)
        loss_value = total / max(count, 1)
        if epoch % 10 == 9 or epoch == epochs - 1:
            say(f"advpc autoencoder epoch {epoch + 1}/{epochs}: train Chamfer {loss_value:.5f}")
    model.eval()
    return {"train_chamfer": loss_value, "train_seconds": round(time.perf_counter() - t0, 1)}


def load_or_train_autoencoder(dataset: Any, cache_dir: Path, config: Mapping[str, Any], *, seed: int,
                              device: str = "cpu", progress: Callable[[str], None] | None = None
                              ) -> tuple[PointAutoEncoder, str]:
    """The autoencoder for this (configuration, dataset version, seed), trained only if not cached.

    Returns the frozen model in eval mode and a provenance string.
    """
    if not dataset.has("train"):
        raise ConfigError(f"advpc trains its autoencoder on a train split, but dataset {dataset.name!r} has none; "
                          "pass --train-dataset or exclude advpc (--exclude advpc)")
    num_points = dataset.split("train").num_points
    arch = {"num_points": num_points, "latent": int(config["ae_latent"])}
    key_src = {"arch": arch, "train": dict(config), "dataset": dataset.name, "version": dataset.version,
               "seed": seed, "code": AE_CODE_VERSION}
    out = Path(cache_dir) / "attacks" / "advpc" / stable_hash(key_src)
    weights, sidecar = out / "autoencoder.safetensors", out / "autoencoder.json"
    with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's global RNG
        torch.manual_seed(seed)
        model = PointAutoEncoder(num_points, arch["latent"]).to(device)
    from safetensors.torch import load_file, save_file

    if weights.exists() and sidecar.exists():
        model.load_state_dict(load_file(str(weights), device=str(device)))
        info = read_json(sidecar)
    else:
        say = progress or (lambda msg: logger.info("%s", msg))
        say(f"training the advpc autoencoder on {dataset.name}@{dataset.version} (cached afterwards)")
        stats = _train(model, dataset, config, seed, device, say)
        with atomic_path(weights) as tmp:
            save_file({k: v.contiguous().cpu() for k, v in model.state_dict().items()}, str(tmp))
        info = {"provenance": f"trained here on {dataset.name}@{dataset.version} seed {seed}, "
                              f"train Chamfer {stats['train_chamfer']:.5f}", "key": key_src, **stats}
        write_json(sidecar, info)
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)  # attacks differentiate w.r.t. the input only
    return model, str(info["provenance"])
