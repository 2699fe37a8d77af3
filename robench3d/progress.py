"""Progress for people: today's plain lines when stderr is a log, bars with an ETA when it is a terminal.

Components report progress as one-line messages through ``progress(msg)`` callables (the trainer's ``epoch 3/10
loss ... ETA 12s``, an attack's ``fgsm: batch 2/5 (3s)``, a defense's own lines). :class:`Progress` is the sink the
CLI hands them. When its stream is not a terminal it prints every message as it is, exactly as before (logs and
tests read those lines). On a terminal a message that contains ``epoch N/M`` or ``batch N/M`` advances a tqdm bar
named by the text before it (so wrappers that prefix messages, like ``mrpd: epoch 2/5``, get bars too) and is
printed as a line only when the bar completes; every other message is printed above the bars. The matrix reports
finished cells through :meth:`Progress.on_cell`, which draws the overall ``cells`` bar (and prints nothing when
not on a terminal, so the plain output is unchanged).
"""

from __future__ import annotations

import re
import sys
from typing import IO, Any

__all__ = ["BAR_MESSAGE", "Progress", "report_cell"]

#: A message that advances a bar: ``<what> epoch|batch <n>/<total> <rest>``.
BAR_MESSAGE = re.compile(r"^(?P<what>.*?)\b(?P<unit>epoch|batch) (?P<n>\d+)/(?P<total>\d+)\b[):,]?\s*(?P<rest>.*)$")


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or not a file
        return False


def report_cell(progress: Any, done: int, total: int, label: str) -> None:
    """Tell a progress sink that ``done`` of ``total`` cells are finished (a plain callable ignores it)."""
    on_cell = getattr(progress, "on_cell", None)
    if on_cell is not None:
        on_cell(done, total, label)


class Progress:
    """A ``progress(msg)`` sink: plain lines, or tqdm bars on a terminal (see the module docstring).

    Args:
        stream: where to write (default: ``sys.stderr`` at the time of each call).
        bars: force bars on or off; ``None`` (default) draws them only when the stream is a terminal.
    """

    def __init__(self, stream: IO[str] | None = None, *, bars: bool | None = None) -> None:
        self._stream = stream
        self._force = bars
        self._bars: dict[str, Any] = {}
        self._cells: Any = None

    @property
    def stream(self) -> IO[str]:
        return self._stream if self._stream is not None else sys.stderr

    @property
    def bars(self) -> bool:
        """Whether bars are drawn (a terminal, unless forced)."""
        return self._force if self._force is not None else _is_terminal(self.stream)

    def __call__(self, msg: str) -> None:
        if not self.bars:
            print(msg, file=self.stream, flush=True)
            return
        m = BAR_MESSAGE.match(str(msg))
        if m is None:
            self._write(str(msg))
            return
        n, total = int(m["n"]), int(m["total"])
        key = m["what"].strip(" :") or m["unit"]
        bar = self._bars.get(key)
        if bar is None or bar.total != total or n < bar.n:
            if bar is not None:
                bar.close()
            bar = self._bars[key] = self._new_bar(key, total, m["unit"], initial=n - 1)
        bar.set_postfix_str(m["rest"], refresh=False)
        bar.update(n - bar.n)
        if n >= total:
            bar.close()
            del self._bars[key]
            self._write(str(msg))

    def on_cell(self, done: int, total: int, label: str) -> None:
        """``done`` of ``total`` cells of the matrix are finished, the last one being ``label``."""
        if not self.bars:
            return
        if self._cells is None or self._cells.total != total or done < self._cells.n:
            if self._cells is not None:
                self._cells.close()
            self._cells = self._new_bar("cells", total, "cell", initial=0, leave=True)
        self._cells.set_postfix_str(label, refresh=False)
        self._cells.update(done - self._cells.n)
        if done >= total:
            self.close()

    def close(self) -> None:
        """Close every open bar (an interrupted run leaves none half-drawn)."""
        for bar in [*self._bars.values(), *([self._cells] if self._cells is not None else [])]:
            bar.close()
        self._bars.clear()
        self._cells = None

    def _new_bar(self, desc: str, total: int, unit: str, *, initial: int, leave: bool = False) -> Any:
        from tqdm import tqdm

        return tqdm(total=total, initial=max(initial, 0), desc=desc, unit=unit, file=self.stream, leave=leave,
                    dynamic_ncols=True)

    def _write(self, msg: str) -> None:
        if self._bars or self._cells is not None:
            from tqdm import tqdm

            tqdm.write(msg, file=self.stream)
        else:
            print(msg, file=self.stream, flush=True)
