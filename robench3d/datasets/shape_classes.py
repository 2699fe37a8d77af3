"""The 15 object classes of the embedded ``shapes`` dataset as parametric mesh builders.

Each builder draws one random instance of its class from a :class:`numpy.random.Generator` and returns its parts as
triangle meshes (y up). The classes come in families that share parts (vessels; furniture with legs and slabs;
cones, lamps and tents) and their proportion ranges meet at the tails, so the classification task is hard for
geometric reasons only. Any change to a builder changes the generated data: bump
:data:`robench3d.datasets.shapes.GENERATOR_VERSION`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from robench3d.datasets.meshes import (
    Mesh,
    box,
    merge_meshes,
    revolve,
    rod,
    smooth_profile,
    torus,
    translate,
    vessel,
)

__all__ = ["CLASS_NAMES", "make_mesh"]


def _legs(corners: list[tuple[float, float]], top: float, thick: float, rng: np.random.Generator) -> list[Mesh]:
    """Vertical legs from the floor to height ``top`` at (x, z) ``corners``: square or round, decided once."""
    if rng.random() < 0.5:
        return [box([thick, top, thick], [x, top / 2, z]) for x, z in corners]
    return [rod([x, 0.0, z], [x, top, z], thick / 2) for x, z in corners]


def _corners(w: float, d: float, inset: float) -> list[tuple[float, float]]:
    """The four (x, z) leg positions of a w x d rectangle, ``inset`` from its edges."""
    return [(sx * (w / 2 - inset), sz * (d / 2 - inset)) for sx in (-1, 1) for sz in (-1, 1)]


def _mug(rng: np.random.Generator) -> list[Mesh]:
    h = 2.0 * rng.uniform(0.55, 1.5)
    ys, rs = np.array([0.0, h]), np.array([rng.uniform(0.75, 1.0), 1.0])
    body = vessel(ys, rs, 0.07)
    grip = torus(h * rng.uniform(0.18, 0.36), rng.uniform(0.035, 0.09), 16, 8, (-np.pi / 2, np.pi / 2))
    return [body, translate(grip, [0.97, h * rng.uniform(0.42, 0.58), 0.0])]


def _bottle(rng: np.random.Generator) -> list[Mesh]:
    body, shoulder = 2.0 * rng.uniform(0.8, 1.8), rng.uniform(0.3, 0.9)
    neck_r, neck_h = rng.uniform(0.25, 0.6), rng.uniform(0.3, 1.2)
    belly = rng.uniform(0.8, 1.1)  # straight, waisted or bellied body
    ys, rs = smooth_profile(
        [0.0, body / 2, body, body + shoulder, body + shoulder + neck_h], [1.0, belly, 1.0, neck_r, neck_r]
    )
    if rng.random() < 0.5:  # open mouth: the inside of the neck is part of the surface
        return [vessel(ys, rs, 0.03)]
    return [revolve(np.concatenate([[0.0], rs, [0.0]]), np.concatenate([[0.0], ys, [ys[-1]]]), 28)]


def _vase(rng: np.random.Generator) -> list[Mesh]:
    h, kind = 2.0 * rng.uniform(0.8, 2.0), rng.choice(3, p=[0.3, 0.25, 0.45])
    if kind == 0:  # straight-sided or tapered cylinder vase
        ys, rs = np.array([0.0, h]), np.array([rng.uniform(0.7, 1.0), rng.uniform(0.85, 1.1)])
    elif kind == 1:  # bottle-shaped bud vase with a flared lip
        neck = rng.uniform(0.3, 0.6)
        ctrl_y = [0.0, h * rng.uniform(0.4, 0.6), h * rng.uniform(0.7, 0.8), h * 0.95, h]
        ys, rs = smooth_profile(ctrl_y, [1.0, 1.0, neck, neck, neck * rng.uniform(1.0, 1.5)])
    else:
        ctrl_y = [0.0, h * rng.uniform(0.25, 0.5), h * rng.uniform(0.7, 0.85), h]
        ctrl_r = [rng.uniform(0.4, 0.75), 1.0, rng.uniform(0.3, 0.75), rng.uniform(0.4, 0.95)]
        ys, rs = smooth_profile(ctrl_y, ctrl_r, 8)
    return [vessel(ys, rs, 0.05)]


def _bowl(rng: np.random.Generator) -> list[Mesh]:
    h, foot = 2.0 * rng.uniform(0.25, 0.65), rng.uniform(0.3, 0.7)
    # Exponent 0.5 gives a rounded bowl, 1 a straight flared basin.
    ys = h * np.linspace(0.0, 1.0, 10)
    rs = foot + (1.0 - foot) * (ys / h) ** rng.uniform(0.4, 1.0)
    return [vessel(ys, rs, 0.04)]


def _cone(rng: np.random.Generator) -> list[Mesh]:
    h, tip = 2.0 * rng.uniform(0.5, 1.6), rng.uniform(0.0, 0.4)
    parts = [revolve([0.0, 1.0, tip, 0.0], [0.0, 0.0, h, h], 28)]
    if rng.random() < 0.4:  # traffic-cone base plate
        parts.append(box([2.3, 0.08, 2.3], [0.0, -0.04, 0.0]))
    return parts


def _lamp(rng: np.random.Generator) -> list[Mesh]:
    base_r, pole_h = rng.uniform(0.4, 0.9), rng.uniform(0.8, 4.0)
    shade_b, shade_t, shade_h = rng.uniform(0.6, 1.1), rng.uniform(0.3, 0.7), rng.uniform(0.5, 1.0)
    y0 = pole_h - shade_h * rng.uniform(0.3, 0.8)
    if rng.random() < 0.4:  # table lamp on a ceramic body
        body_h = pole_h * rng.uniform(0.4, 0.7)
        ys, rs = smooth_profile([0.0, body_h / 2, body_h], [base_r * 0.6, base_r, 0.06])
        stand = [
            revolve(np.concatenate([[0.0], rs]), np.concatenate([[0.0], ys]), 24),
            rod([0, body_h, 0], [0, pole_h, 0], 0.03),
        ]
    else:
        stand = [revolve([0.0, base_r, base_r, 0.0], [0.0, 0.0, 0.1, 0.1], 24), rod([0, 0.1, 0], [0, pole_h, 0], 0.04)]
    return stand + [revolve([shade_b, shade_t], [y0, y0 + shade_h], 24)]


def _table(rng: np.random.Generator) -> list[Mesh]:
    kind = rng.choice(3, p=[0.5, 0.25, 0.25])  # dining, coffee, side table
    w = (rng.uniform(1.0, 2.0), rng.uniform(0.8, 1.4), rng.uniform(0.4, 0.7))[kind]
    h = (rng.uniform(0.65, 0.8), rng.uniform(0.35, 0.5), rng.uniform(0.5, 0.75))[kind]
    d, t = w * rng.uniform(0.35 if kind == 1 else 0.45, 1.0), rng.uniform(0.03, 0.06)
    thick = rng.uniform(0.04, 0.08)
    if kind == 2 and rng.random() < 0.5:  # round side table, legs under the inscribed square
        d = w
        parts = [revolve([0.0, w / 2, w / 2, 0.0], [h - t, h - t, h, h], 24)]
        parts += _legs(_corners(w / np.sqrt(2), d / np.sqrt(2), thick), h - t, thick, rng)
    else:
        parts = [box([w, t, d], [0, h - t / 2, 0])]
        parts += _legs(_corners(w, d, thick), h - t, thick, rng)
    if rng.random() < 0.5:  # apron under the top
        a = rng.uniform(0.06, 0.12)
        parts += [box([w - 2 * thick, a, 0.02], [0, h - t - a / 2, s * (d / 2 - thick)]) for s in (-1, 1)]
    if rng.random() < 0.25:  # lower shelf
        parts.append(box([w - 2 * thick, 0.02, d - 2 * thick], [0, h * rng.uniform(0.15, 0.35), 0]))
    return parts


def _desk(rng: np.random.Generator) -> list[Mesh]:
    w, d, h, t = rng.uniform(1.1, 1.8), rng.uniform(0.5, 0.8), rng.uniform(0.7, 0.78), rng.uniform(0.03, 0.05)
    parts = [box([w, t, d], [0, h - t / 2, 0])]
    kind = rng.integers(4)
    if kind == 3:  # four legs and a drawer unit hanging under one end of the top
        parts += _legs(_corners(w, d, 0.04), h - t, 0.05, rng)
        dw, dh = rng.uniform(0.3, 0.45), rng.uniform(0.08, 0.25)
        parts.append(box([dw, dh, d * 0.9], [w / 2 - dw / 2 - 0.06, h - t - dh / 2, 0]))
    elif kind == 0:  # panel sides
        parts += [box([0.04, h - t, d], [s * (w / 2 - 0.02), (h - t) / 2, 0]) for s in (-1, 1)]
    else:  # one or two drawer pedestals, legs elsewhere
        pw = rng.uniform(0.35, 0.5)
        parts.append(box([pw, h - t, d * 0.95], [w / 2 - pw / 2, (h - t) / 2, 0]))
        if kind == 2:
            parts.append(box([pw, h - t, d * 0.95], [-w / 2 + pw / 2, (h - t) / 2, 0]))
        else:
            parts += _legs([(-w / 2 + 0.04, s * (d / 2 - 0.04)) for s in (-1, 1)], h - t, 0.05, rng)
    if rng.random() < 0.5:  # modesty panel at the back
        ph = rng.uniform(0.25, 0.5) * h
        parts.append(box([w * 0.9, ph, 0.02], [0, h - t - ph / 2, d / 2 - 0.05]))
    return parts


def _stool(rng: np.random.Generator) -> list[Mesh]:
    r, h, t, n = rng.uniform(0.15, 0.25), rng.uniform(0.4, 0.8), rng.uniform(0.03, 0.06), int(rng.integers(3, 5))
    segs = 24 if rng.random() < 0.6 else 4  # round or square seat
    parts = [revolve([0.0, r, r, 0.0], [h - t, h - t, h, h], segs)]
    ang = np.arange(n) * 2 * np.pi / n + np.pi / 4
    splay, inner = rng.uniform(1.0, 1.3), rng.uniform(0.7, 0.9) * r
    feet = [[splay * inner * np.cos(a), 0.0, splay * inner * np.sin(a)] for a in ang]
    tops = [[inner * np.cos(a), h - t, inner * np.sin(a)] for a in ang]
    parts += [rod(f, p, rng.uniform(0.015, 0.03)) for f, p in zip(feet, tops, strict=True)]
    if rng.random() < 0.5:  # footrest rungs at a third of the height
        mid = [np.add(f, np.subtract(p, f) * 0.33) for f, p in zip(feet, tops, strict=True)]
        parts += [rod(mid[i], mid[(i + 1) % n], 0.012) for i in range(n)]
    return parts


def _bench(rng: np.random.Generator) -> list[Mesh]:
    w, d, h, t = rng.uniform(0.7, 2.0), rng.uniform(0.3, 0.6), rng.uniform(0.38, 0.5), rng.uniform(0.03, 0.07)
    parts = [box([w, t, d], [0, h - t / 2, 0])]
    if rng.random() < 0.5:
        parts += _legs(_corners(w, d, 0.05), h - t, rng.uniform(0.04, 0.07), rng)
    else:  # slab legs
        parts += [box([0.05, h - t, d * 0.9], [s * (w / 2 - 0.1), (h - t) / 2, 0]) for s in (-1, 1)]
    if rng.random() < 0.4:  # park-bench backrest on posts, sometimes with arm rests
        bh = rng.uniform(0.25, 0.45)
        parts.append(box([w, bh * 0.6, 0.03], [0, h + bh * 0.6, d / 2]))
        parts += [box([0.04, bh, 0.04], [s * (w / 2 - 0.1), h + bh / 2, d / 2]) for s in (-1, 1)]
        if rng.random() < 0.4:
            parts += [box([0.04, 0.03, d], [s * (w / 2 - 0.1), h + 0.22, 0]) for s in (-1, 1)]
    return parts


def _chair(rng: np.random.Generator) -> list[Mesh]:
    w, d, h, t = rng.uniform(0.4, 0.7), rng.uniform(0.4, 0.55), rng.uniform(0.42, 0.5), rng.uniform(0.03, 0.06)
    back_h, tilt = rng.uniform(0.25, 0.6), rng.uniform(0.0, 0.2)
    parts = [box([w, t, d], [0, h - t / 2, 0])]
    if rng.random() < 0.2:  # panel sides instead of legs
        parts += [box([0.03, h - t, d], [s * (w / 2 - 0.015), (h - t) / 2, 0]) for s in (-1, 1)]
    else:
        parts += _legs(_corners(w, d, 0.03), h - t, rng.uniform(0.03, 0.05), rng)
    top = np.array([0.0, h + back_h, d / 2 + back_h * np.tan(tilt)])
    if rng.random() < 0.5:  # solid back
        v, f = box([w, back_h, 0.03], [0, back_h / 2, 0])
        shear = np.array([[1.0, 0, 0], [0, 1, 0], [0, np.tan(tilt), 1]])  # lean back by tilt, keep the height
        parts.append((v @ shear.T + [0, h, d / 2], f))
    else:  # posts, a top rail and slats
        xs = np.linspace(-w / 2 + 0.02, w / 2 - 0.02, int(rng.integers(3, 6)))
        parts += [rod([x, h, d / 2 - 0.02], top + [x, 0, -0.02], 0.015) for x in xs]
        parts.append(box([w, 0.06, 0.03], top + [0, -0.03, -0.02]))
    if rng.random() < 0.3:  # arm rests
        parts += [box([0.04, 0.03, d], [s * w / 2, h + 0.22, 0]) for s in (-1, 1)]
        parts += [box([0.03, 0.22, 0.03], [s * w / 2, h + 0.11, -d / 2 + 0.03]) for s in (-1, 1)]
    return parts


def _sofa(rng: np.random.Generator) -> list[Mesh]:
    w, d, h = rng.uniform(1.4, 2.4), rng.uniform(0.75, 1.0), rng.uniform(0.38, 0.46)
    leg, back_t, back_h = rng.uniform(0.03, 0.2), rng.uniform(0.1, 0.25), rng.uniform(0.6, 0.95)
    parts = [
        box([w, h - leg, d], [0, (h + leg) / 2, 0]),
        box([w, back_h - leg, back_t], [0, (back_h + leg) / 2, d / 2 - back_t / 2]),
    ]
    parts += _legs(_corners(w, d, 0.06), leg, 0.05, rng)
    arms = rng.choice([0, 1, 2], p=[0.2, 0.1, 0.7])
    arm_w, arm_h = rng.uniform(0.1, 0.25), rng.uniform(0.55, 0.7)
    parts += [box([arm_w, arm_h - leg, d], [s * (w / 2 + arm_w / 2), (arm_h + leg) / 2, 0]) for s in (-1, 1)[:arms]]
    k = int(rng.integers(1, 4))  # seat cushions
    parts += [
        box([w / k * 0.96, 0.1, d - back_t], [(i + 0.5) * w / k - w / 2, h + 0.05, -back_t / 2]) for i in range(k)
    ]
    return parts


def _bed(rng: np.random.Generator) -> list[Mesh]:
    w, length, frame = rng.uniform(0.9, 1.9), rng.uniform(1.9, 2.2), rng.uniform(0.2, 0.35)
    mat = rng.uniform(0.15, 0.3)
    parts = [
        box([w, frame - 0.05, length], [0, (frame + 0.05) / 2, 0]),
        box([w * 0.97, mat, length * 0.97], [0, frame + mat / 2, 0]),
        box([w, rng.uniform(0.8, 1.3), 0.05], [0, 0.0, -length / 2]),
    ]
    parts[2] = translate(parts[2], [0, parts[2][0][:, 1].max(), 0])  # headboard stands on the floor
    if rng.random() < 0.4:
        fh = rng.uniform(0.35, 0.9)
        parts.append(box([w, fh, 0.05], [0, fh / 2, length / 2]))
    if rng.random() < 0.15:  # daybed: a low back rail along one long side
        rh = frame + mat + rng.uniform(0.2, 0.45)
        parts.append(box([0.05, rh, length], [w / 2, rh / 2, 0]))
    for i in range(int(rng.integers(0, 3))):  # pillows
        pw = w / 2.3
        parts.append(box([pw, 0.12, 0.35], [(i - 0.5) * w / 2, frame + mat + 0.06, -length / 2 + 0.3]))
    parts += _legs(_corners(w, length, 0.05), 0.05, 0.06, rng)
    return parts


def _shelf(rng: np.random.Generator) -> list[Mesh]:
    w, h, d, t = rng.uniform(0.6, 1.6), rng.uniform(0.5, 2.0), rng.uniform(0.25, 0.4), rng.uniform(0.015, 0.03)
    parts = [box([t, h, d], [s * (w / 2 - t / 2), h / 2, 0]) for s in (-1, 1)]
    levels = np.linspace(t / 2, h - t / 2, int(rng.integers(2, 7)))
    parts += [box([w - 2 * t, t, d], [0, y, 0]) for y in levels]
    if rng.random() < 0.5:  # back panel
        parts.append(box([w, h, 0.01], [0, h / 2, d / 2]))
    return parts


def _tent(rng: np.random.Generator) -> list[Mesh]:
    w, length, h = rng.uniform(1.2, 2.2), rng.uniform(1.2, 2.6), rng.uniform(0.9, 1.8)
    kind = rng.integers(3)
    if kind == 0:  # A-frame ridge tent
        v = np.array([[x, y, z] for z in (-length / 2, length / 2) for x, y in ((-w / 2, 0), (w / 2, 0), (0, h))])
        f = np.array([[0, 1, 2], [3, 5, 4], [0, 2, 5], [0, 5, 3], [1, 4, 5], [1, 5, 2]])
        parts = [(v, f)]
    elif kind == 1:  # pyramid tent
        parts = [revolve([0.0, w / 1.4, 0.0], [0.0, 0.0, h], int(rng.integers(4, 9)))]
    else:  # dome tent: a faceted, squashed hemisphere
        phi = np.linspace(0.0, np.pi / 2, 6)
        radii, heights = np.concatenate([[0.0], w / 2 * np.cos(phi)]), np.concatenate([[0.0], h * 0.8 * np.sin(phi)])
        parts = [revolve(radii, heights, int(rng.integers(5, 9)))]
    if rng.random() < 0.5:  # groundsheet
        parts.append(box([w * 1.1, 0.01, length * 1.1], [0, 0, 0]))
    return parts


# Label order; each name is its builder's name without the underscore.
_BUILDERS: dict[str, Callable[[np.random.Generator], list[Mesh]]] = {
    f.__name__[1:]: f
    for f in (
        _mug,
        _bottle,
        _vase,
        _bowl,
        _cone,
        _lamp,
        _table,
        _desk,
        _stool,
        _bench,
        _chair,
        _sofa,
        _bed,
        _shelf,
        _tent,
    )
}

#: Class names, in label order.
CLASS_NAMES: tuple[str, ...] = tuple(_BUILDERS)


def make_mesh(class_index: int, rng: np.random.Generator) -> Mesh:
    """One random instance of class ``class_index``: (vertices float64 (V, 3), faces int64 (F, 3)), y-up."""
    if not 0 <= class_index < len(CLASS_NAMES):
        raise ValueError(f"class_index must be in [0, {len(CLASS_NAMES)}), got {class_index}")
    vertices, faces = merge_meshes(_BUILDERS[CLASS_NAMES[class_index]](rng))
    # A mild per-axis stretch blurs the proportion boundaries between neighbouring classes.
    return vertices * rng.uniform(0.8, 1.25, size=3), faces
