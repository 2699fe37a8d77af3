"""robench3d-baselines: the baseline defenses of the robench3d protocol (protocol.md section 5), as a plugin.

``srs`` (simple random sampling), ``sor`` (statistical outlier removal), ``dupnet`` (SOR followed by a PU-Net x4
upsampler trained here), ``adv_train`` (PGD adversarial training of the whole backbone) and ``adv_train.head``
(adversarial training of a class head on the frozen backbone). robench3d finds them through the ``robench3d``
entry point; importing this package imports nothing heavy.
"""

from __future__ import annotations

import importlib.metadata

try:
    __version__ = importlib.metadata.version("robench3d-baselines")
except importlib.metadata.PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
