"""Helpers shared by the benchmark scripts (imported from the script's own folder, which Python puts on sys.path)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def result(name: str, value: float, unit: str, target: str, ratio: float | None) -> None:
    """The machine-readable line benchmarks/run_all.py collects: name, value, unit, target, ratio (>= 1: met)."""
    r = "-" if ratio is None else f"{ratio:.3g}"
    print(f"RESULT\t{name}\t{value:.4g}\t{unit}\t{target}\t{r}", flush=True)


def best_of(fn: Callable[[], Any], repeats: int) -> float:
    """Smallest wall time of ``repeats`` calls of ``fn`` in seconds (the least disturbed by other work)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best
