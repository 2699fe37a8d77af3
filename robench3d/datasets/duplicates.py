"""Byte-identical clouds in a dataset: find them, report them, and optionally evaluate without the leaked ones.

Identity test: two clouds are duplicates when their points *as read from the source* (after the reader's frame
mapping, before any point picking or normalisation), written as a C-ordered float32 (K, 3) array, are the same
bytes. That is exact (no tolerance: a copy moved by one ulp is a different cloud), cheap (a 128-bit BLAKE2b
digest of each cloud, kept with the prepared data as ``meta["digest"]``) and the same for every format, whatever
file container the points came in (PLY, h5 rows, text, ``.npy``). Mesh formats (``off``, meshes in ``folder``)
are sampled with a per-shape seed, so two identical meshes give different clouds and are not reported.

ModelNet40 itself holds such copies: the same cloud under two classes (flower_pot/plant/vase, mantel/range_hood,
dresser/night_stand, ...) and the same cloud in train and in test. A test cloud with a copy in train (or val,
which is carved from train) is a leak: a model can score it by memory. ``robench3d data info`` and ``data verify``
report the groups; ``--opt dataset.test_duplicates=drop`` evaluates without those test clouds (see
:class:`~robench3d.datasets.loader.FileDataset`).
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from robench3d.datasets.base import SplitData
from robench3d.norms import Split

__all__ = ["DIGEST_KEY", "TEST_DUPLICATES", "DuplicateReport", "cloud_digests", "drop_test_copies",
           "find_duplicates"]

logger = logging.getLogger(__name__)

#: The ``SplitData.meta`` key holding each cloud's digest (a 32-character hex string).
DIGEST_KEY = "digest"
#: Values of the ``test_duplicates`` dataset option.
TEST_DUPLICATES = ("keep", "drop")
_TRAIN_SIDE = (Split.TRAIN, Split.VAL)
_EXAMPLES = 5


def cloud_digests(chunk: np.ndarray) -> np.ndarray:
    """The digest of each cloud of a (m, K, 3) chunk: BLAKE2b-128 of its float32 bytes and its point count.

    Shape:
        chunk (m, K, 3) float -> (m,) str (32 hex characters each).
    """
    arr = np.ascontiguousarray(chunk, dtype=np.float32)
    k = str(arr.shape[1]).encode() if arr.ndim == 3 else b""
    return np.array([hashlib.blake2b(k + c.tobytes(), digest_size=16).hexdigest() for c in arr], dtype="<U32")


@dataclass
class DuplicateReport:
    """Groups of byte-identical clouds across every split of a prepared dataset.

    Attributes:
        groups: groups of two or more identical clouds.
        clouds: clouds in those groups.
        cross_class: groups whose clouds carry more than one label.
        train_test: groups with a cloud in train or val and one in test.
        test_with_train_copy: test clouds that have an identical cloud in train or val (what ``drop`` removes).
        examples: a few groups, leaks and cross-class groups first, as ``id (split, class) = ...``.
    """

    groups: int = 0
    clouds: int = 0
    cross_class: int = 0
    train_test: int = 0
    test_with_train_copy: int = 0
    examples: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The report in a few printable lines."""
        if not self.groups:
            return ["no byte-identical clouds"]
        head = (f"{self.groups} group(s) of byte-identical clouds ({self.clouds} clouds); {self.cross_class} cross "
                f"classes; {self.train_test} span train/val and test, so {self.test_with_train_copy} test cloud(s) "
                f"have an identical copy in train/val")
        if self.test_with_train_copy:
            head += " (--opt dataset.test_duplicates=drop evaluates without them)"
        return [head, *(f"e.g. {e}" for e in self.examples)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


def find_duplicates(splits: Mapping[Split, SplitData], class_names: tuple[str, ...]) -> DuplicateReport | None:
    """Group the clouds of ``splits`` by digest; ``None`` when a split carries no digests (data prepared
    without them, e.g. a generated dataset)."""
    if not splits or any(DIGEST_KEY not in d.meta for d in splits.values()):
        return None
    members: dict[str, list[tuple[Split, int]]] = defaultdict(list)
    for split, data in splits.items():
        for i, digest in enumerate(data.meta[DIGEST_KEY]):
            members[str(digest)].append((split, i))
    report = DuplicateReport()
    ranked = []
    for group in members.values():
        if len(group) < 2:
            continue
        labels = {int(splits[s].labels[i]) for s, i in group}
        sides = {s for s, _ in group}
        leak = Split.TEST in sides and bool(sides & set(_TRAIN_SIDE))
        report.groups += 1
        report.clouds += len(group)
        report.cross_class += len(labels) > 1
        report.train_test += leak
        report.test_with_train_copy += sum(s is Split.TEST for s, _ in group) if leak else 0
        named = sorted(f"{splits[s].ids[i]} ({s}, {class_names[int(splits[s].labels[i])]})" for s, i in group)
        classes = tuple(sorted(class_names[c] for c in labels))
        ranked.append((not leak, len(labels) == 1, named, classes))
    ranked.sort()
    # One example per set of classes first (ModelNet40's copies are mostly dresser/night_stand), then the rest.
    shown: set[tuple[str, ...]] = set()
    firsts, rest = [], []
    for r in ranked:
        (rest if r[3] in shown else firsts).append(r)
        shown.add(r[3])
    report.examples = [" = ".join(r[2]) for r in (firsts + rest)[:_EXAMPLES]]
    return report


def drop_test_copies(splits: dict[Split, SplitData]) -> tuple[dict[Split, SplitData], list[str]]:
    """``splits`` without the test clouds that have a byte-identical copy in train or val; (splits, dropped ids).

    Splits without digests, or data without a test or a train/val split, are returned unchanged.
    """
    test = splits.get(Split.TEST)
    seen = [splits[s].meta.get(DIGEST_KEY) for s in _TRAIN_SIDE if s in splits]
    if test is None or DIGEST_KEY not in test.meta or not seen or any(d is None for d in seen):
        return splits, []
    train_digests = set(np.concatenate([np.asarray(d) for d in seen]).tolist())
    leaked = np.array([str(d) in train_digests for d in test.meta[DIGEST_KEY]], dtype=bool)
    if not leaked.any():
        return splits, []
    return {**splits, Split.TEST: test.subset(~leaked)}, [str(i) for i in test.ids[leaked]]
