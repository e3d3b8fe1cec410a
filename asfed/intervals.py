"""Confidence intervals over independent units (seeds, runs): rounds and episodes of one run are
correlated, so they are never the units. Below every package that reports a number.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def mean_ci(values: np.ndarray | list[float]) -> tuple[float, float, float]:
    """(mean, low, high) of the 95% t-interval over `values` `[S]` (NaNs ignored)."""
    x = np.asarray(values, float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if len(x) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return mean, mean - half, mean + half
