"""Scores with honest uncertainty: intervals over independent units, ROC curves, correlations.

A trial is an independent secret (one agent's reward in one run) or a run, never the correlated
episodes or rounds of one run. Accuracies over secrets get exact Clopper-Pearson intervals;
means over runs get t intervals (the percentile bootstrap over 5 runs covers a nominal 95% only
about 83% of the time, so it is not used); a one-vs-rest test on an attack's scores gets its ROC
curve, AUC and TPR at low FPR, as ML Privacy Meter and LiRA report.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from asfed.intervals import mean_ci

Z95 = 1.959963984540054


def wilson(hits: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion (95% by default)."""
    if n == 0:
        return (0.0, 1.0)
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def clopper_pearson(hits: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact two-sided interval for a proportion of `n` independent trials."""
    if n == 0:
        return (0.0, 1.0)
    alpha = 1 - confidence
    lo = float(stats.beta.ppf(alpha / 2, hits, n - hits + 1)) if hits > 0 else 0.0
    hi = float(stats.beta.ppf(1 - alpha / 2, hits + 1, n - hits)) if hits < n else 1.0
    return (lo, hi)


def difference_interval(hits_a: int, n_a: int, hits_b: int, n_b: int) -> tuple[float, float]:
    """A conservative 95% interval for accuracy a minus accuracy b, each over independent
    secrets: the difference of their 97.5% Clopper-Pearson intervals (each covers with 97.5%,
    so both do with at least 95%). Never of zero width, unlike a t interval over a few runs
    whose differences happen to agree (15 of 15 against 15 of 15 is not [0, 0])."""
    a, b = clopper_pearson(hits_a, n_a, 0.975), clopper_pearson(hits_b, n_b, 0.975)
    return (a[0] - b[1], a[1] - b[0])


def t_interval(values: list[float]) -> tuple[float, float] | None:
    """95% t interval of the mean over independent units (one value per run); None for < 2."""
    v = [x for x in values if x is not None and np.isfinite(x)]
    if len(v) < 2:
        return None
    _, lo, hi = mean_ci(v)
    return (lo, hi)


def roc(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) `[P]` of the test "label 1 if score >= threshold" over every threshold,
    from (0, 0) to (1, 1); ties in score move both rates together."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # the end of each tied block
    tp, fp = np.cumsum(y)[last], np.cumsum(~y)[last]
    pos, neg = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    return np.r_[0.0, fp / neg], np.r_[0.0, tp / pos]


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve: P(a positive's score > a negative's), ties counting 1/2."""
    labels = np.asarray(labels, bool)
    if labels.all() or not labels.any():
        return math.nan
    ranks = stats.rankdata(scores)
    pos = int(labels.sum())
    neg = len(labels) - pos
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


def tpr_at_fpr(scores: np.ndarray, labels: np.ndarray, fpr: float) -> float:
    """The highest TPR at a threshold whose FPR is at most `fpr`; NaN with fewer than 1/fpr
    negatives, where no threshold can resolve that FPR (the data cannot say)."""
    negatives = int((~np.asarray(labels, bool)).sum())
    if negatives < 1 / fpr:
        return math.nan
    f, t = roc(scores, labels)
    return float(t[f <= fpr].max())


def one_vs_rest(scores: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A K-way attack as K one-vs-rest membership tests, pooled: each secret's scores `[S, K]`,
    centred over K (only their differences carry evidence), against labels (truth == k).
    Returns (scores, labels) `[S * K]`."""
    s = np.asarray(scores, float)
    s = s - s.mean(1, keepdims=True)
    labels = np.asarray(truth)[:, None] == np.arange(s.shape[1])[None]
    return s.ravel(), labels.ravel()


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


def mi_leave_one_run_out(scores: np.ndarray, labels: np.ndarray, runs: np.ndarray) -> float:
    """The MI lower bound over secrets (scores `[S, K]`, labels `[S]`, each secret's run `[S]`),
    lambda fitted leave-one-run-out: each run's secrets are scored under the lambda fitted on the
    other runs' (NaN with one run: no held-out fit)."""
    runs = np.asarray(runs)
    names = np.unique(runs)
    if len(names) < 2:
        return math.nan
    total = 0.0
    for name in names:
        out = runs == name
        part = mi_lower_bound(scores[~out], labels[~out], scores[out], labels[out])
        total += part * out.sum()
    return total / len(runs)
