"""Statistics over seeds: means with 95% Student-t intervals, and smoothed learning curves.

Seeds are the independent units (rounds of one run are correlated), so every interval is over
seeds: mean +- t_{0.975, n-1} s / sqrt(n). One seed gives no interval (NaN bounds).
"""

from __future__ import annotations

import numpy as np

from asfed.intervals import mean_ci
from asfed.runs import FINAL_WINDOW


def band(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per round mean and 95% t-interval across seeds: `curves` `[S, R]` (NaN where a seed has
    no such round) -> (mean, low, high), each `[R]`."""
    out = np.array([mean_ci(curves[:, r]) for r in range(curves.shape[1])])
    return out[:, 0], out[:, 1], out[:, 2]


def smooth(x: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving mean `[R]` -> `[R]` (the first rounds average what there is)."""
    c = np.cumsum(np.insert(np.asarray(x, float), 0, 0.0))
    r = np.arange(1, len(x) + 1)
    lo = np.maximum(0, r - window)
    return (c[r] - c[lo]) / (r - lo)


def window_for(rounds: int) -> int:
    """The smoothing window for curves of `rounds` rounds: a tenth of them, 1 to 10."""
    return max(1, min(10, rounds // 10))


def final(team: np.ndarray) -> float:
    """A run's final team return: the mean of its last FINAL_WINDOW rounds (`[R]` -> scalar)."""
    return float(np.mean(team[-FINAL_WINDOW:]))


def padded(rows: list[np.ndarray]) -> np.ndarray:
    """Curves of unequal length `[R_s]` -> `[S, max R]`, NaN past each one's end."""
    out = np.full((len(rows), max(len(r) for r in rows)), np.nan)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out
