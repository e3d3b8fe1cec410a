"""Scores with honest uncertainty: Wilson intervals, bootstrap over seeds, correlations.

Confidence intervals come from resampling runs (training seeds) as clusters, never the correlated
rows of one run; with one run the interval is the per-run one (Wilson for accuracies) and says so.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

Z95 = 1.959963984540054


def wilson(hits: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion (95% by default)."""
    if n == 0:
        return (0.0, 1.0)
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def cluster_bootstrap(
    values: list[float], n_boot: int = 2000, seed: int = 0
) -> tuple[float, float] | None:
    """95% percentile interval of the mean over clusters (one value per run); None for < 2."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], float)
    if len(v) < 2:
        return None
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), (n_boot, len(v)))].mean(1)
    return (float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975)))


def _degenerate(x: np.ndarray, y: np.ndarray) -> bool:
    """Too few rows, a constant side, or non-finite values: no correlation to report (0)."""
    if len(x) < 3 or not (np.isfinite(x).all() and np.isfinite(y).all()):
        return True
    return bool(np.std(x) == 0 or np.std(y) == 0)


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    if _degenerate(x, y):
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    if _degenerate(x, y):
        return 0.0
    return float(stats.spearmanr(x, y).statistic)


def calibrated_r2(
    fit_pred: np.ndarray, fit_true: np.ndarray, test_pred: np.ndarray, test_true: np.ndarray
) -> float:
    """R^2 on the test rows after an affine map true ~ a pred + b fitted on separate rows."""
    if len(test_true) < 2 or not (np.isfinite(test_pred).all() and np.isfinite(fit_pred).all()):
        return float("nan")  # nothing to score, or an estimate that is not a number
    if len(fit_pred) < 2 or np.std(fit_pred) == 0:
        a, b = 0.0, float(np.mean(fit_true)) if len(fit_true) else 0.0
    else:
        a, b = np.polyfit(fit_pred, fit_true, 1)
    resid = test_true - (a * test_pred + b)
    sst = float(((test_true - test_true.mean()) ** 2).sum())
    return 1.0 - float(resid @ resid) / sst if sst > 0 else 0.0


def mi_lower_bound(
    fit_scores: np.ndarray, fit_labels: np.ndarray, test_scores: np.ndarray, test_labels: np.ndarray
) -> float:
    """A lower bound on the mutual information (nats) between the guess and the true type:
    log K minus the held-out cross-entropy of p = softmax(lambda * scores), lambda >= 0 chosen on
    separate rows (scores `[E, K]`, labels `[E]`). Any calibrated predictor's cross-entropy bounds
    H(type | evidence) from above, so log K - CE <= I (type prior uniform)."""
    k = test_scores.shape[1]

    def ce(lam: float, s: np.ndarray, y: np.ndarray) -> float:
        z = lam * s
        z = z - z.max(1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(1, keepdims=True))
        return float(-logp[np.arange(len(y)), y].mean())

    grid = np.concatenate([[0.0], np.logspace(-2, 4, 61)])
    lam = min(grid, key=lambda g: ce(g, fit_scores, fit_labels)) if len(fit_labels) else 0.0
    return math.log(k) - ce(lam, test_scores, test_labels) if len(test_labels) else 0.0
