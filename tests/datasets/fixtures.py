"""Fixture writers: tiny copies of the real dataset layouts, quirks included (see docs/data-formats.md).

Each writer creates the exact on-disk layout of a real release with small counts and returns the folder a user
would point ``--data-root`` at, plus what the loader should find, so tests can check labels and counts.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import h5py
import numpy as np

MN40 = (
    "airplane", "bathtub", "bed", "bench", "bookshelf", "bottle", "bowl", "car", "chair", "cone", "cup", "curtain",
    "desk", "door", "dresser", "flower_pot", "glass_box", "guitar", "keyboard", "lamp", "laptop", "mantel",
    "monitor", "night_stand", "person", "piano", "plant", "radio", "range_hood", "sink", "sofa", "stairs", "stool",
    "table", "tent", "toilet", "tv_stand", "vase", "wardrobe", "xbox",
)
MN10 = ("bathtub", "bed", "chair", "desk", "dresser", "monitor", "night_stand", "sofa", "table", "toilet")
SONN = ("bag", "bin", "box", "cabinet", "chair", "desk", "display", "door", "shelf", "table", "bed", "pillow", "sink",
        "sofa", "toilet")
#: ModelNet classes the fixtures use: some with "_" in the name, some in ModelNet10, some not.
FIXTURE_CLASSES = ("airplane", "bathtub", "night_stand", "flower_pot")


def clouds(m: int, k: int, seed: int = 0) -> np.ndarray:
    """(m, k, 3) float32 clouds inside the unit sphere, each an ellipsoid of its own proportions."""
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(m, k, 3))
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    pts = d * rng.uniform(0.3, 1.0, size=(m, 1, 3))
    return (pts / np.linalg.norm(pts, axis=-1).max(axis=1)[:, None, None]).astype(np.float32)


# ----------------------------------------------------------------------------------------------- ModelNet h5
def write_modelnet_h5(root: Path, train_sizes: tuple[int, ...] = (6, 4), test_sizes: tuple[int, ...] = (5,),
                      num_points: int = 128, labels: tuple[int, ...] = (0, 1, 23, 15)) -> tuple[Path, dict]:
    """``modelnet40_ply_hdf5_2048/`` with repo-relative, Windows and absolute paths in the file lists.

    Returns:
        (folder, {split: (labels (M,), ids)}) in file order.
    """
    folder = root / "modelnet40_ply_hdf5_2048"
    folder.mkdir(parents=True)
    (folder / "shape_names.txt").write_text("\n".join(MN40) + "\n")
    expect: dict = {}
    for split, sizes in (("train", train_sizes), ("test", test_sizes)):
        all_labels, all_ids, lines = [], [], []
        for k, m in enumerate(sizes):
            lab = np.array([labels[(i + k) % len(labels)] for i in range(m)], dtype=np.uint8)[:, None]
            name = f"ply_data_{split}{k}.h5"
            with h5py.File(folder / name, "w") as f:
                pts = clouds(m, num_points, seed=len(all_labels) + 100 * k)
                f.create_dataset("data", data=pts, compression="gzip", chunks=True)
                f.create_dataset("label", data=lab, compression="gzip", chunks=True)
                f.create_dataset("normal", data=pts, compression="gzip", chunks=True)
                f.create_dataset("faceId", data=np.zeros((m, num_points), dtype=np.int32))
            ids = [f"{MN40[c]}_{1000 + 10 * k + i:04d}" for i, c in enumerate(lab[:, 0])]
            (folder / f"ply_data_{split}_{k}_id2file.json").write_text(
                json.dumps([f"{MN40[c]}/{i}.ply" for c, i in zip(lab[:, 0], ids, strict=True)]))
            # The three path styles seen in the wild; CRLF endings as left by Windows editors.
            style = k % 3
            lines.append([f"data/modelnet40_ply_hdf5_2048/{name}",
                          f"C:\\Users\\me\\pointnet\\data\\modelnet40_ply_hdf5_2048\\{name}",
                          f"/home/me/pointnet/data/modelnet40_ply_hdf5_2048/{name}"][style])
            all_labels += lab[:, 0].tolist()
            all_ids += ids
        (folder / f"{split}_files.txt").write_bytes(("\r\n".join(lines) + "\r\n\r\n").encode())
        expect[split] = (np.array(all_labels), all_ids)
    return folder, expect


# ------------------------------------------------------------------------------------ ModelNet resampled
def write_modelnet_resampled(root: Path, counts: dict[str, tuple[int, int]] | None = None, num_points: int = 100,
                             modelnet10_lists: bool = False) -> Path:
    """``modelnet40_normal_resampled/``: one ``x,y,z,nx,ny,nz`` text per shape, split lists of bare ids."""
    counts = counts or {"airplane": (3, 1), "bathtub": (2, 1), "night_stand": (2, 2), "flower_pot": (2, 1)}
    folder = root / "modelnet40_normal_resampled"
    folder.mkdir(parents=True)
    (folder / "modelnet40_shape_names.txt").write_text("\n".join(MN40) + "\n")
    split_ids: dict[str, list[str]] = {"train": [], "test": []}
    for j, (cls, (n_train, n_test)) in enumerate(counts.items()):
        (folder / cls).mkdir()
        for i in range(1, n_train + n_test + 1):  # train ids first, test ids continue the numbering
            sid = f"{cls}_{i:04d}"
            pts = clouds(1, num_points, seed=37 * j + i)[0]
            rows = np.concatenate([pts, pts / np.linalg.norm(pts, axis=1, keepdims=True)], axis=1)
            (folder / cls / f"{sid}.txt").write_text("\n".join(",".join(f"{v:.6f}" for v in r) for r in rows) + "\n")
            split_ids["train" if i <= n_train else "test"].append(sid)
    for split, ids in split_ids.items():
        (folder / f"modelnet40_{split}.txt").write_text("\n".join(ids) + "\n")
        if modelnet10_lists:
            (folder / f"modelnet10_{split}.txt").write_text(
                "\n".join(i for i in ids if i.rsplit("_", 1)[0] in MN10) + "\n")
    if modelnet10_lists:
        (folder / "modelnet10_shape_names.txt").write_text("\n".join(MN10) + "\n")
    (folder / "filelist.txt").write_text(
        "\n".join(f"{i.rsplit('_', 1)[0]}/{i}.txt" for ids in split_ids.values() for i in ids) + "\n")
    return folder


# ------------------------------------------------------------------------------------------- OFF meshes
def box_mesh(size: tuple[float, float, float], offset: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """A z-up box in raw CAD units: 8 vertices, 6 quads (as (6, 4) faces)."""
    corners = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], dtype=np.float64)
    quads = np.array([(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)])
    return corners * np.asarray(size) + np.asarray(offset), quads


def off_text(vertices: np.ndarray, faces: np.ndarray, *, glued: bool = False, degenerate: bool = True) -> str:
    """OFF text; ``glued`` writes ModelNet's ``OFF<nv> <nf> 0`` first line; ``degenerate`` adds zero-area faces."""
    faces = [list(f) for f in faces]
    if degenerate:  # a collapsed triangle and a triangle with a repeated vertex, as real CAD exports have
        vertices = np.vstack([vertices, vertices[:1]])
        faces += [[0, len(vertices) - 1, 1], [2, 2, 3]]
    head = (f"OFF{len(vertices)} {len(faces)} 0" if glued else f"OFF\n# exported\n{len(vertices)} {len(faces)} 0")
    body = [" ".join(f"{v:.3f}" for v in row) for row in vertices]
    body += [f"{len(f)} " + " ".join(map(str, f)) for f in faces]
    return head + "\n" + "\n".join(body) + "\n"


def write_modelnet_off(root: Path, counts: dict[str, tuple[int, int]] | None = None,
                       top: str = "ModelNet40") -> Path:
    """``ModelNet40/<class>/{train,test}/<class>_<NNNN>.off`` plus macOS strays; tall boxes (z-up, raw units)."""
    counts = counts or {"airplane": (2, 1), "bathtub": (2, 1), "night_stand": (2, 1)}
    folder = root / top
    for j, (cls, (n_train, n_test)) in enumerate(counts.items()):
        for i in range(1, n_train + n_test + 1):
            split = "train" if i <= n_train else "test"
            d = folder / cls / split
            d.mkdir(parents=True, exist_ok=True)
            v, f = box_mesh((100.0 + 10 * i, 50.0 + j, 300.0), (250.0 * j, -40.0, 7.0 * i))
            (d / f"{cls}_{i:04d}.off").write_text(off_text(v, f, glued=(i == 1)))
    strays = folder / "__MACOSX" / next(iter(counts)) / "train"
    strays.mkdir(parents=True)
    (strays / "._junk_0001.off").write_bytes(b"\x00\x05\x16\x07 mac resource fork")
    first = folder / next(iter(counts)) / "train"
    (first / f"._{next(iter(counts))}_0001.off").write_bytes(b"\x00\x05\x16\x07")
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    return folder


# ------------------------------------------------------------------------------------ ModelNet40 aligned PLY
#: The ``camera`` element PCL writes after the vertices of the aligned clouds (17 floats, 2 ints, 2 floats).
_CAMERA = ([f"view_p{a}" for a in "xyz"] + [f"{ax}_axis{a}" for ax in "xyz" for a in "xyz"]
           + ["focal", "scalex", "scaley", "centerx", "centery"])


def aligned_ply_bytes(points: np.ndarray, camera: float = 0.0) -> bytes:
    """A binary little-endian PLY as in the aligned ModelNet40 release: float x y z, then one ``camera`` row."""
    head = ["ply", "format binary_little_endian 1.0", "comment PCL generated", f"element vertex {len(points)}",
            "property float x", "property float y", "property float z", "element camera 1"]
    head += [f"property float {n}" for n in _CAMERA]
    head += ["property int viewportx", "property int viewporty", "property float k1", "property float k2",
             "end_header"]
    body = np.ascontiguousarray(points, dtype="<f4").tobytes()
    body += struct.pack(f"<{len(_CAMERA)}f2i2f", *([camera] * len(_CAMERA)), 640, 480, 0.0, 0.0)
    return ("\n".join(head) + "\n").encode() + body


#: (class, split, number) pairs the aligned fixture writes as byte-identical copies of another shape's points.
ALIGNED_COPIES = {("plant", "train", 1): ("flower_pot", "train", 1),  # cross-class, both in train
                  ("dresser", "test", 2): ("night_stand", "train", 1),  # cross-class, train/test: a leak
                  ("airplane", "test", 3): ("airplane", "train", 1)}  # same class, train/test: a leak
ALIGNED_COUNTS = {"airplane": (2, 1), "bathtub": (2, 1), "night_stand": (2, 1), "flower_pot": (2, 1),
                  "plant": (1, 1), "dresser": (1, 1)}


def write_modelnet_aligned(root: Path, counts: dict[str, tuple[int, int]] | None = None, num_points: int = 64,
                           top: str = "modelnet40_aligned_1024") -> tuple[Path, dict[str, np.ndarray]]:
    """``<top>/<class>/{train,test}/<class>_<NNNN>.ply``: z-up clouds (tall along z, not normalised), test ids
    after train ids, with the byte-identical copies of :data:`ALIGNED_COPIES` (whose camera rows differ).

    Returns:
        (folder, {shape id: the raw (num_points, 3) float32 points written}).
    """
    counts = counts or ALIGNED_COUNTS
    folder = root / top
    written: dict[str, np.ndarray] = {}
    todo = []
    for j, (cls, (n_train, n_test)) in enumerate(counts.items()):
        for i in range(1, n_train + n_test + 1):
            todo.append((cls, "train" if i <= n_train else "test", i, j))
    for cls, split, i, j in sorted(todo, key=lambda t: t[:3] in ALIGNED_COPIES):  # originals first
        copy_of = ALIGNED_COPIES.get((cls, split, i))
        if copy_of is not None and f"{copy_of[0]}_{copy_of[2]:04d}" in written:
            pts = written[f"{copy_of[0]}_{copy_of[2]:04d}"]
        else:
            pts = clouds(1, num_points, seed=1000 + 37 * j + i)[0] * np.float32([0.3, 0.2, 0.6]) + np.float32(
                [0.1 * j, 0.0, 0.05 * i])
        d = folder / cls / split
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{cls}_{i:04d}.ply").write_bytes(aligned_ply_bytes(pts, camera=float(i + 10 * j)))
        written[f"{cls}_{i:04d}"] = pts
    return folder, written


# ------------------------------------------------------------------------------------------ ScanObjectNN
def write_scanobjectnn(root: Path, sizes: tuple[int, int] = (8, 5), num_points: int = 128,
                       variants: tuple[str, ...] = ("objectdataset_augmentedrot_scale75.h5",),
                       folder_name: str = "main_split", label_shape: str = "flat") -> tuple[Path, dict]:
    """``h5_files/<folder>/{training,test}_<suffix>`` with ``data``, ``label`` and ``mask`` (-1 = background).

    Returns:
        (the ``h5_files`` folder, {"train"/"test": (labels, foreground mask)}).
    """
    folder = root / "h5_files" / folder_name
    folder.mkdir(parents=True)
    expect = {}
    for split, prefix, m in (("train", "training_", sizes[0]), ("test", "test_", sizes[1])):
        labels = ((np.arange(m) // 2) * 4) % len(SONN)  # pairs, so a val split can be carved
        pts = clouds(m, num_points, seed=m)
        mask = np.tile(np.arange(num_points) % 4, (m, 1)).astype(np.int64)  # instance ids, 0 included
        mask[:, ::3] = -1  # every third point is background
        lab = labels.astype(np.int64) if label_shape == "flat" else labels.astype(np.uint8)[:, None]
        for suffix in variants:
            with h5py.File(folder / f"{prefix}{suffix}", "w") as f:
                f.create_dataset("data", data=pts)
                f.create_dataset("label", data=lab)
                f.create_dataset("mask", data=mask)
        expect[split] = (labels, mask != -1)
    return root / "h5_files", expect


# -------------------------------------------------------------------------------------------- ModelNet40-C
def write_modelnet40c(root: Path, m: int = 6, files: dict[str, int] | None = None) -> tuple[Path, np.ndarray]:
    """``modelnet40_c/``: ``label.npy`` (M, 1) uint8 and ``data_<corruption>_<severity>.npy`` (M, N, 3)."""
    files = files or {"gaussian_1": 1024, "cutout_5": 724, "distortion_rbf_inv_2": 1024}
    folder = root / "modelnet40_c"
    folder.mkdir(parents=True)
    labels = ((np.arange(m) * 7) % 40).astype(np.uint8)[:, None]
    np.save(folder / "label.npy", labels)
    for j, (variant, n) in enumerate(files.items()):
        np.save(folder / f"data_{variant}.npy", clouds(m, n, seed=j) * 1.1)  # corruptions may leave the sphere
    return folder, labels[:, 0].astype(np.int64)


# ------------------------------------------------------------------------------------------------ folder / PLY
_PLY_TYPES = {"f": ("float", 4), "d": ("double", 8), "i": ("int", 4), "B": ("uchar", 1)}


def ply_bytes(vertices: np.ndarray, faces: np.ndarray | None = None, *, fmt: str = "binary_little_endian",
              extra_element: bool = True) -> bytes:
    """A PLY file: float xyz + uchar colour per vertex, optional faces, then an 'edge' element to skip."""
    n = len(vertices)
    head = ["ply", f"format {fmt} 1.0", "comment written by the robench3d fixtures", f"element vertex {n}",
            "property float x", "property float y", "property float z", "property uchar red"]
    if faces is not None:
        head += [f"element face {len(faces)}", "property list uchar int vertex_indices"]
    if extra_element:
        head += ["element edge 1", "property int vertex1", "property int vertex2"]
    head.append("end_header")
    out = ("\n".join(head) + "\n").encode()
    if fmt == "ascii":
        rows = [f"{x:.6f} {y:.6f} {z:.6f} 200" for x, y, z in vertices]
        rows += [f"{len(f)} " + " ".join(map(str, f)) for f in (faces if faces is not None else [])]
        rows += ["0 1"] if extra_element else []
        return out + ("\n".join(rows) + "\n").encode()
    e = "<" if fmt == "binary_little_endian" else ">"
    body = b"".join(struct.pack(f"{e}fffB", *map(float, v), 200) for v in vertices)
    for f in faces if faces is not None else []:
        body += struct.pack(f"{e}B{len(f)}i", len(f), *map(int, f))
    if extra_element:
        body += struct.pack(f"{e}ii", 0, 1)
    return out + body


def write_folder(root: Path, num_points: int = 96) -> tuple[Path, dict[str, list[str]]]:
    """``<root>/<class>/{train,test}/<id>.<ext>`` with every supported extension; y is up.

    Returns:
        (root, {split: sorted ids}).
    """
    rng = np.random.default_rng(5)
    pts = lambda s: clouds(1, num_points, seed=s)[0].astype(np.float64)  # noqa: E731
    cube_v, cube_q = box_mesh((1.0, 2.0, 0.5), (-0.5, -1.0, -0.25))
    tris = np.concatenate([cube_q[:, [0, 1, 2]], cube_q[:, [0, 2, 3]]])
    layout = {
        "mug/train": {
            "a.ply": ply_bytes(cube_v, tris),  # binary LE mesh with an element after the faces
            "b.ply": ply_bytes(pts(1), None, fmt="binary_big_endian"),  # big-endian point cloud
            "c.ply": ply_bytes(cube_v, cube_q, fmt="ascii"),  # ASCII mesh of quads
            "d.off": off_text(cube_v, cube_q, glued=True).encode(),
        },
        "mug/test": {"e.obj": _obj_text(cube_v, cube_q).encode(), "f.xyz": _xyz(pts(2), " ").encode()},
        "lamp/train": {
            "g.txt": _xyz(pts(3), ",").encode(), "h.csv": ("x,y,z\n" + _xyz(pts(4), ",")).encode(),
            "i.npy": _npy(pts(5)), "j.npz": _npz(pts(6) + rng.normal(0, 0.01, (num_points, 3))),
        },
        "lamp/test": {"k.npy": _npy(pts(7)), "README.md": b"notes, skipped"},
    }
    ids: dict[str, list[str]] = {"train": [], "test": []}
    for sub, files in layout.items():
        d = root / sub
        d.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (d / name).write_bytes(data)
            if not name.endswith(".md"):
                ids[sub.split("/")[1]].append(f"{sub.split('/')[0]}/{name.rsplit('.', 1)[0]}")
    return root, {k: sorted(v) for k, v in ids.items()}


def _obj_text(vertices: np.ndarray, quads: np.ndarray) -> str:
    rows = ["# obj fixture", "o box"] + [f"v {x} {y} {z}" for x, y, z in vertices] + ["vn 0 0 1"]
    rows += [f"f {a + 1}//1 {b + 1}//1 {c + 1}//1 {d + 1}//1" for a, b, c, d in quads[:-1]]
    a, b, c, d = (int(i) - len(vertices) for i in quads[-1])  # negative (relative) indices
    return "\n".join(rows + [f"f {a} {b} {c} {d}"]) + "\n"


def _xyz(points: np.ndarray, sep: str) -> str:
    return "\n".join(sep.join(f"{v:.6f}" for v in row) for row in points) + "\n"


def _npy(points: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, points.astype(np.float32))
    return buf.getvalue()


def _npz(points: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, points=points.astype(np.float32), normals=points.astype(np.float32))
    return buf.getvalue()
