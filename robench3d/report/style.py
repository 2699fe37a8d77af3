"""Shared figure helpers: the Agg canvas, colours, PNG bytes and label placement without overlaps.

matplotlib is imported here, lazily (inside the functions), so ``import robench3d.report`` stays cheap; figures are
drawn on :class:`matplotlib.backends.backend_agg.FigureCanvasAgg` without pyplot, so no global backend is touched.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["SETTING_TEXT", "Plot", "colors", "legend_columns", "new_figure", "place_labels", "png_bytes", "rc",
           "wrap"]

#: One line per threat setting, for panel titles.
SETTING_TEXT = {
    "oblivious": "oblivious: clouds crafted on the undefended backbone",
    "adaptive": "adaptive: attacks on the defended model (BPDA/EOT where needed)",
    "transfer": "transfer: clouds crafted on a surrogate backbone",
    "query": "query: score-based black-box attacks",
}
#: Matplotlib's default-free sizes, kept in one place.
FONT = {"font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "xtick.labelsize": 8, "ytick.labelsize": 8,
        "legend.fontsize": 8, "figure.titlesize": 11}


@dataclass
class Plot:
    """A drawn figure with its file stem, title (the figure's own) and a caption for the summary."""

    name: str
    title: str
    figure: Any
    caption: str


def new_figure(width: float, height: float, **subplots: Any) -> tuple[Any, Any]:
    """(figure, axes) on an Agg canvas with constrained layout."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(**subplots) if subplots else fig.subplots()
    return fig, axes


def rc() -> Any:
    """A context with the report's font sizes; draw a whole figure inside it (sizes are read at creation)."""
    import matplotlib

    return matplotlib.rc_context(FONT)


def wrap(text: str, width_in: float, points: float = 11.0) -> str:
    """``text`` broken at " · " separators into lines that fit ``width_in`` inches at a ``points`` font."""
    limit = max(20, int(width_in * 72 / (0.55 * points)))
    lines: list[str] = []
    for part in text.split(" · "):
        if lines and len(lines[-1]) + 3 + len(part) <= limit:
            lines[-1] += " · " + part
        else:
            lines.append(part)
    return "\n".join(lines)


def legend_columns(labels: Sequence[str], width_in: float, points: float = 8.0, most: int = 8) -> int:
    """How many legend columns of these labels fit side by side in ``width_in`` inches."""
    entry = max(len(x) for x in labels) * 0.58 * points / 72 + 0.55  # text plus the handle and padding
    return max(1, min(most, len(labels), int((width_in - 0.3) // entry)))


def colors(names: Sequence[str], palette: str = "tab10") -> dict[str, Any]:
    """A stable colour per name (tab10, or tab20 beyond ten names)."""
    from matplotlib import colormaps

    cmap = colormaps[palette if len(names) <= 10 or palette != "tab10" else "tab20"]
    return {n: cmap(i % cmap.N) for i, n in enumerate(names)}


def png_bytes(fig: Any) -> bytes:
    """The figure as PNG bytes, without the software-version metadata (so re-running gives identical files)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


_OFFSETS = [(8, 4, "left"), (8, -10, "left"), (-8, 4, "right"), (-8, -10, "right"), (0, 10, "center"),
            (0, -17, "center"), (22, 12, "left"), (22, -18, "left"), (-22, 12, "right"), (-22, -18, "right"),
            (30, -3, "left"), (-30, -3, "right"), (36, 22, "left"), (36, -28, "left"), (-36, 22, "right"),
            (-36, -28, "right"), (0, 28, "center"), (0, -34, "center")]


def place_labels(fig: Any, ax: Any, points: Sequence[tuple[float, float, str]]) -> list[Any]:
    """Annotate each (x, y, text) at the first offset whose text box overlaps no earlier label or point, with a
    thin leader line from the text to its point.

    The figure is drawn once first so the layout is final; labels are kept out of the layout computation.
    """
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    dots = [ax.transData.transform((x, y)) for x, y, _ in points]
    placed: list[Any] = []
    boxes: list[Any] = []
    for x, y, text in points:
        best, best_score = None, None
        for dx, dy, ha in _OFFSETS:
            ann = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va="bottom",
                              fontsize=7.5, annotation_clip=False,
                              arrowprops={"arrowstyle": "-", "color": "0.45", "lw": 0.6, "shrinkA": 1,
                                          "shrinkB": 4})
            ann.set_in_layout(False)
            box = ann.get_window_extent(renderer).expanded(1.05, 1.1)
            score = sum(box.overlaps(b) for b in boxes) + sum(box.contains(px, py) for px, py in dots)
            inside = ax.bbox.contains(box.x0, box.y0) and ax.bbox.contains(box.x1, box.y1)
            score += 0 if inside else 0.5
            if best_score is None or score < best_score:
                if best is not None:
                    best[0].remove()
                best, best_score = (ann, box), score
            else:
                ann.remove()
            if score == 0:
                break
        assert best is not None
        placed.append(best[0])
        boxes.append(best[1])
    return placed
