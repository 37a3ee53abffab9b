"""The benchmarks' statistics: nearest-rank percentiles, latency summaries, medians of runs."""

from __future__ import annotations

import math
import statistics
from typing import Any


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_summary(seconds: list[float]) -> dict[str, float]:
    total = sum(seconds)
    return {
        "count": len(seconds),
        "per_s": len(seconds) / total if total else math.nan,
        "mean_ms": 1000 * total / len(seconds) if seconds else math.nan,
        "p50_ms": 1000 * percentile(seconds, 50),
        "p99_ms": 1000 * percentile(seconds, 99),
        "max_ms": 1000 * max(seconds) if seconds else math.nan,
    }


def median_summary(reps: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of every numeric figure over the repetitions (other values from the first)."""
    merged: dict[str, Any] = {}
    for key, value in reps[0].items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            merged[key] = statistics.median(r[key] for r in reps)
        elif isinstance(value, dict):
            merged[key] = median_summary([r[key] for r in reps])
        else:
            merged[key] = value
    return merged
