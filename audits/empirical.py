"""What a K-way guess says about epsilon: the ceiling DP puts on it, and the lower bound on
epsilon that a measured accuracy implies (auditing the mechanism, Jagielski et al. 2020; Nasr
et al. 2021).

Under (epsilon, delta)-DP with reward-level replace adjacency, any two reward types are
adjacent, so for every guess g and types k, k': P_k(g = k) <= e^eps P_k'(g = k) + delta. With a
uniform prior over K types this bounds the accuracy:

    acc <= (e^eps + delta (K - 1)) / (e^eps + K - 1)          (`accuracy_ceiling`)

and, read backwards, an accuracy of at least `acc` implies

    eps >= ln((K - 1)(acc - delta) / (1 - acc))              (`epsilon_lower_bound`)

applied to a one-sided 95% Clopper-Pearson lower confidence bound on the accuracy, so the bound
holds with 95% confidence when the guesses are independent trials: asfed feeds it one secret a
run (the agents of one run are drawn jointly, and one run's episodes share its secret and its
messages), so a handful of runs certifies little: 9 of 9 right gives at most 1.62.
"""

from __future__ import annotations

import math

from scipy import stats


def accuracy_ceiling(epsilon: float, k: int, delta: float = 0.0) -> float:
    """The most a K-way guess can be right under (epsilon, delta)-DP (uniform prior)."""
    if math.isinf(epsilon):
        return 1.0
    e = math.exp(min(epsilon, 700.0))
    return min(1.0, (e + delta * (k - 1)) / (e + k - 1))


def clopper_pearson_lower(hits: int, n: int, confidence: float = 0.95) -> float:
    """One-sided lower confidence bound on a proportion (exact binomial)."""
    if hits == 0 or n == 0:
        return 0.0
    return float(stats.beta.ppf(1 - confidence, hits, n - hits + 1))


def epsilon_lower_bound(
    hits: int, n: int, k: int, delta: float = 0.0, confidence: float = 0.95
) -> float:
    """The smallest epsilon consistent with `hits` of `n` right K-way guesses (0 at or below
    chance)."""
    acc = clopper_pearson_lower(hits, n, confidence)
    if acc >= 1.0:
        return math.inf
    ratio = (k - 1) * (acc - delta) / (1 - acc)
    return max(0.0, math.log(ratio)) if ratio > 0 else 0.0
