"""Wall-clock timing shared by the benchmark scripts (run as ``python benchmarks/bench_*.py``)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any


def best_time(fn: Callable[[], Any], repeats: int = 1, *, warmup: bool = True) -> float:
    """Minimum wall time in seconds of ``fn`` over ``repeats`` calls, after one untimed warm-up call by default.

    The minimum (not the mean) is the least noisy estimate on a shared machine: interference only adds time.
    """
    if warmup:
        fn()
    best = math.inf
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best
