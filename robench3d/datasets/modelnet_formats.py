"""The four on-disk layouts of ModelNet: PointNet's HDF5, PointNet++'s resampled text, the original OFF meshes and
the orientation-aligned PLY clouds.

Each ``scan_*`` function lists the files of one layout (checking that every file a split list names exists) and
returns a :class:`~robench3d.datasets.loader.Plan` whose ``load`` reads them. ``classes`` is the label order
of the dataset being built: all 40 ModelNet40 classes, or the ModelNet10 subset, whose labels are remapped to
their position in that subset. Layout details are in ``docs/data-formats.md``.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from robench3d.datasets.formats import (
    basename,
    check_cloud_array,
    check_labels,
    check_not_empty,
    check_same_length,
    numbered_lines,
    read_h5,
    read_id_list,
    read_point_text,
    unique_ids,
    unreadable,
)
from robench3d.datasets.loader import MeshSampler, Plan, RawSplit, per_source
from robench3d.datasets.meshio import read_off, to_y_up
from robench3d.datasets.ply import read_ply
from robench3d.errors import DataError
from robench3d.norms import Split

__all__ = ["MODELNET40_CLASSES", "scan_aligned_ply", "scan_h5", "scan_off", "scan_resampled"]

logger = logging.getLogger(__name__)

MODELNET40_CLASSES: tuple[str, ...] = (
    "airplane", "bathtub", "bed", "bench", "bookshelf", "bottle", "bowl", "car", "chair", "cone", "cup", "curtain",
    "desk", "door", "dresser", "flower_pot", "glass_box", "guitar", "keyboard", "lamp", "laptop", "mantel",
    "monitor", "night_stand", "person", "piano", "plant", "radio", "range_hood", "sink", "sofa", "stairs", "stool",
    "table", "tent", "toilet", "tv_stand", "vase", "wardrobe", "xbox",
)
_SPLITS = (Split.TRAIN, Split.TEST)


def _check_names(path: Path, expected: tuple[str, ...]) -> list[str]:
    """The class names of ``path``, which must be ``expected`` in order; the message names the first wrong line."""
    numbered = numbered_lines(path)
    names = [n for _, n in numbered]
    if tuple(names) == expected:
        return names
    bad = next((i for i, (n, e) in enumerate(zip(names, expected, strict=False)) if n != e), None)
    if bad is not None:
        detail = f", line {numbered[bad][0]}: {names[bad]!r} where the class list has {expected[bad]!r}"
    else:
        detail = f": it lists {len(names)} class names, expected {len(expected)}"
    raise DataError(f"{path}{detail}; expected the canonical class list ({', '.join(expected[:4])}, ...). Is the "
                    f"root pointing at the right dataset? Otherwise replace the file with the original")


def _remap(classes: tuple[str, ...]) -> np.ndarray:
    """ModelNet40 label -> label in ``classes`` (-1 for classes left out)."""
    lut = np.full(len(MODELNET40_CLASSES), -1, dtype=np.int64)
    for i, c in enumerate(classes):
        lut[MODELNET40_CLASSES.index(c)] = i
    return lut


def scan_h5(folder: Path, classes: tuple[str, ...]) -> Plan:
    """``modelnet40_ply_hdf5_2048/``: list files resolved by basename, ``*_<k>_id2file.json`` for ids only."""
    names_file = folder / "shape_names.txt"
    files = []
    if names_file.is_file():
        _check_names(names_file, MODELNET40_CLASSES)
        files.append(names_file)
    else:
        logger.warning("%s is missing; assuming the canonical ModelNet40 label order", names_file)
    per_split: dict[Split, list[Path]] = {}
    for split in _SPLITS:
        lst = folder / f"{split}_files.txt"
        if lst.is_file():
            files.append(lst)
            # The lists hold paths relative to the PointNet repo (or rewritten absolute/Windows paths).
            numbered = [(num, folder / basename(line)) for num, line in numbered_lines(lst)]
            for num, h5 in numbered:
                if not h5.is_file():
                    raise DataError(f"{lst}, line {num} names {h5.name} but {h5} does not exist; the copy is "
                                    f"incomplete: restore the file or remove the line")
            h5s = [h5 for _, h5 in numbered]
        else:
            h5s = sorted(folder.glob(f"ply_data_{split}*.h5"), key=lambda p: (len(p.name), p.name))
        if h5s:
            per_split[split] = h5s
            files += h5s
            files += [j for h in h5s if (j := _json_for(h)) is not None and j.is_file()]
    if not per_split:
        raise DataError(f"{folder} holds no train_files.txt, test_files.txt or ply_data_*.h5; expected the "
                        f"modelnet40_ply_hdf5_2048 folder")
    lut = _remap(classes)

    def load() -> dict[Split, RawSplit]:
        out = {}
        for split, h5s in per_split.items():
            raw = RawSplit()
            listed = (folder / f"{split}_files.txt").is_file()
            for h5 in h5s:
                with per_source():
                    _read_h5(raw, h5, lut, f"remove its line from {split}_files.txt" if listed else "remove it")
            raw.ids = unique_ids(raw.ids)
            out[split] = raw
        return out

    return Plan("h5", folder, files, classes, load)


def _read_h5(raw: RawSplit, h5: Path, lut: np.ndarray, remove: str) -> None:
    arrays = read_h5(h5, ("data", "label"))
    check_not_empty(arrays["data"], source=str(h5), fix=f"download it again or {remove}")
    pts = check_cloud_array(arrays["data"], source=str(h5))
    labels = check_labels(arrays["label"], len(MODELNET40_CLASSES), source=str(h5))
    check_same_length(pts, labels, source=str(h5))
    ids = _ids(h5, len(pts))
    keep = lut[labels] >= 0
    raw.add(pts[keep], lut[labels[keep]], [i for i, k in zip(ids, keep, strict=True) if k], str(h5))


def _json_for(h5: Path) -> Path | None:
    m = re.fullmatch(r"ply_data_(train|test)(\d+)\.h5", h5.name)
    return h5.with_name(f"ply_data_{m.group(1)}_{m.group(2)}_id2file.json") if m else None


def _ids(h5: Path, n: int) -> list[str]:
    """Shape ids from the matching JSON (``airplane/airplane_0627.ply`` -> ``airplane_0627``), else row numbers."""
    js = _json_for(h5)
    if js is None or not js.is_file():
        return [f"{h5.stem}:{i}" for i in range(n)]
    names = read_id_list(js)
    if len(names) != n:
        raise DataError(f"{js} lists {len(names)} shapes but {h5} holds {n}; they must match row for row: download "
                        f"both again (or delete the JSON, which only gives ids)")
    return [Path(basename(s)).stem for s in names]


def _per_file_loader(per_split: dict[Split, list[tuple[Path, int, str]]],
                     read: Callable[[Path, str], np.ndarray]) -> Callable[[], dict[Split, RawSplit]]:
    """A Plan's ``load`` that reads one (K, 3) cloud per listed file with ``read(path, shape_id)``."""

    def load() -> dict[Split, RawSplit]:
        out = {}
        for split, entries in per_split.items():
            raw = RawSplit()
            for path, label, shape_id in entries:
                with per_source():
                    raw.add(read(path, shape_id)[None], [label], [shape_id], str(path))
            out[split] = raw
        return out

    return load


def scan_resampled(folder: Path, classes: tuple[str, ...], family: str) -> Plan:
    """``modelnet40_normal_resampled/``: ``<class>/<id>.txt`` named by split lists of bare ids."""
    names_file = next((folder / n for n in (f"{family}_shape_names.txt", "modelnet40_shape_names.txt",
                                             "shape_names.txt") if (folder / n).is_file()), None)
    if names_file is None:
        raise DataError(f"{folder} has no modelnet40_shape_names.txt (or shape_names.txt); expected the "
                        f"modelnet40_normal_resampled folder")
    _check_names(names_file, classes if names_file.name.startswith(family) else MODELNET40_CLASSES)
    files, per_split = [names_file], {}
    for split in _SPLITS:
        lst = next((folder / f"{p}_{split}.txt" for p in (family, "modelnet40")
                    if (folder / f"{p}_{split}.txt").is_file()), None)
        if lst is None:
            continue
        files.append(lst)
        entries = []
        for num, line in numbered_lines(lst):
            shape_id = basename(line).removesuffix(".txt")
            cls = shape_id.rsplit("_", 1)[0]  # class names contain "_" too: drop only the final _NNNN
            if cls not in MODELNET40_CLASSES or not re.fullmatch(r"\d+", shape_id.rsplit("_", 1)[-1]):
                raise DataError(f"{lst}, line {num}: {line!r} is not a ModelNet shape id (<class>_<NNNN>) of a known "
                                f"class; fix or remove the line")
            if cls not in classes:
                if lst.name.startswith(family):
                    raise DataError(f"{lst}, line {num}: class {cls!r} is not one of the {len(classes)} {family} "
                                    f"classes; remove the line")
                continue  # a ModelNet40 list read for ModelNet10
            path = folder / cls / f"{shape_id}.txt"
            if not path.is_file():
                raise DataError(f"{lst}, line {num} names {shape_id} but {path} is missing; the copy is incomplete: "
                                f"restore the file or remove the line")
            entries.append((path, classes.index(cls), shape_id))
        per_split[split] = entries
        files += [e[0] for e in entries]
    if not per_split:
        raise DataError(f"{folder} has no split list ({family}_train.txt or {family}_test.txt)")

    load = _per_file_loader(per_split, lambda path, _id: read_point_text(path)[:, :3])

    return Plan("normal_resampled", folder, files, classes, load)


def _class_tree(folder: Path, classes: tuple[str, ...], ext: str) -> tuple[dict[Split, list[tuple[Path, int, str]]],
                                                                          list[str], list[Path]]:
    """``<class>/{train,test}/<class>_<NNNN>.<ext>`` under ``folder``: (entries per split, the ``classes`` with no
    folder, the files of that extension skipped because their name is not an id of their class folder)."""
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        raise unreadable(folder, exc) from exc
    for d in entries:
        if d.is_dir() and not d.name.startswith((".", "__")) and d.name not in MODELNET40_CLASSES:
            close = difflib.get_close_matches(d.name.lower().replace("-", "_").replace(" ", "_"), MODELNET40_CLASSES,
                                              n=1, cutoff=0.6)
            fix = f"rename it to {close[0]!r}" if close else f"move it out of {folder}"
            raise DataError(f"{d} is not a ModelNet class folder; expected only the 40 class folders "
                            f"({', '.join(MODELNET40_CLASSES[:3])}, ...) in {folder}: {fix}")
    per_split: dict[Split, list[tuple[Path, int, str]]] = {s: [] for s in _SPLITS}
    missing, strays = [], []
    for label, cls in enumerate(classes):
        cdir = folder / cls
        if not cdir.is_dir():
            missing.append(cls)  # reported as a class with no shapes
            continue
        if not any((cdir / s).is_dir() for s in _SPLITS):
            raise DataError(f"{cdir} has neither a train/ nor a test/ folder; expected {cdir}/train/*.{ext}")
        pattern = re.compile(rf"{re.escape(cls)}_\d+\.{ext}")
        for split in _SPLITS:
            found = sorted((cdir / split).glob(f"*.{ext}"))
            per_split[split] += [(f, label, f.stem) for f in found if pattern.fullmatch(f.name)]
            strays += [f for f in found if not pattern.fullmatch(f.name) and not f.name.startswith(".")]
    return {s: e for s, e in per_split.items() if e}, missing, strays


def scan_off(folder: Path, classes: tuple[str, ...], sampler: MeshSampler) -> Plan:
    """``ModelNet40/<class>/{train,test}/<class>_<NNNN>.off``; meshes are sampled (and cached) by surface area."""
    per_split, _, _ = _class_tree(folder, classes, "off")  # skips ._* and other strays
    if not per_split:
        raise DataError(f"{folder} holds no <class>/train/*.off or <class>/test/*.off files")

    load = _per_file_loader(per_split, lambda path, shape_id: sampler.sample(path, shape_id, read_off))

    files = [e[0] for entries in per_split.values() for e in entries]
    return Plan("off", folder, files, classes, load,
                tags=[f"mesh{sampler.n_points}", f"ds{sampler.data_seed}"]
                + ([] if sampler.up_axis == "z" else [f"up-{sampler.up_axis}"]))


def scan_aligned_ply(folder: Path, classes: tuple[str, ...], up_axis: str) -> Plan:
    """``<class>/{train,test}/<class>_<NNNN>.ply``: the orientation-aligned clouds (z-up, binary PLY with a
    ``camera`` element after the vertices), rotated to y-up like the OFF meshes."""
    per_split, missing, strays = _class_tree(folder, classes, "ply")
    if not per_split:
        raise DataError(f"{folder} holds no <class>/train/*.ply or <class>/test/*.ply files")
    notes = []
    if missing:
        notes.append(f"{len(missing)} of the {len(classes)} class folders are missing under {folder} (a partial "
                     f"copy: their classes have no shapes): {', '.join(missing)}")
    if strays:
        notes.append(f"{len(strays)} .ply file(s) skipped: their names are not <class>_<NNNN>.ply ids of the "
                     f"folder they are in: " + ", ".join(str(f.relative_to(folder)) for f in strays[:10])
                     + (", ..." if len(strays) > 10 else ""))

    load = _per_file_loader(per_split, lambda path, _id: _read_cloud_ply(path, up_axis))

    files = [e[0] for entries in per_split.values() for e in entries]
    return Plan("aligned_ply", folder, files, classes, load, notes=notes,
                tags=[] if up_axis == "z" else [f"up-{up_axis}"])


def _read_cloud_ply(path: Path, up_axis: str) -> np.ndarray:
    """(K, 3) float32 points of a PLY point cloud, in the y-up frame (the float32 values are kept exactly)."""
    vertices, faces = read_ply(path)
    if len(faces):
        raise DataError(f"{path} is a mesh ({len(faces)} faces), not a point cloud; the aligned_ply layout holds "
                        f"clouds: replace the file, or read meshes with --dataset folder")
    return to_y_up(vertices, up_axis).astype(np.float32)
