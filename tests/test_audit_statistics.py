"""The audit's statistics hold their nominal 95% at the sample sizes the README uses (15 secrets
and 5 runs a method), and the ROC numbers match their definitions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from audits import scoring
from audits.empirical import epsilon_lower_bound

SECRETS = (9, 15, 30)  # 3 or 5 runs of 3 agents, and a larger audit
RUNS = 5


@pytest.mark.parametrize("n", SECRETS)
def test_clopper_pearson_covers_at_least_95_percent_at_every_true_accuracy(n: int) -> None:
    """Exact coverage (the binomial summed over every outcome), not a simulation."""
    for p in (1 / 3, 0.5, 0.7, 0.9, 0.99):
        covered = sum(
            stats.binom.pmf(h, n, p)
            for h in range(n + 1)
            if scoring.clopper_pearson(h, n)[0] <= p <= scoring.clopper_pearson(h, n)[1]
        )
        assert covered >= 0.95, (n, p, covered)


def test_t_intervals_over_5_runs_cover_95_percent_where_the_percentile_bootstrap_does_not() -> None:
    """Per-run means (e.g. inversion r) drawn normal: the t interval covers about 95%; the
    percentile bootstrap over 5 runs, which asfed used to report, covers far less."""
    rng = np.random.default_rng(0)
    trials, t_hits, boot_hits = 2000, 0, 0
    for _ in range(trials):
        x = rng.normal(0.3, 0.1, RUNS)
        lo, hi = scoring.t_interval(list(x))
        t_hits += lo <= 0.3 <= hi
        means = x[rng.integers(0, RUNS, (500, RUNS))].mean(1)
        boot_hits += np.quantile(means, 0.025) <= 0.3 <= np.quantile(means, 0.975)
    assert 0.93 <= t_hits / trials <= 0.97
    assert boot_hits / trials < 0.88


def test_the_epsilon_lower_bound_holds_at_its_confidence_under_a_mechanism_at_the_ceiling() -> None:
    """A K = 3 guesser at exactly epsilon = 1's accuracy ceiling, 15 independent secrets: the
    bound exceeds the true epsilon in at most 5% of audits (computed exactly)."""
    eps, k, n = 1.0, 3, 15
    acc = np.exp(eps) / (np.exp(eps) + k - 1)
    wrong = sum(
        stats.binom.pmf(h, n, acc) for h in range(n + 1) if epsilon_lower_bound(h, n, k) > eps
    )
    assert wrong <= 0.05
    assert epsilon_lower_bound(9, 9, 3) == pytest.approx(1.62, abs=0.01)  # the most 9 can say


def test_roc_auc_and_tpr_at_low_fpr_match_their_definitions() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    labels = np.array([1, 0, 1, 0, 0, 0], bool)
    fpr, tpr = scoring.roc(scores, labels)
    assert list(fpr) == pytest.approx([0, 0, 0.25, 0.25, 0.5, 0.75, 1.0])
    assert list(tpr) == pytest.approx([0, 0.5, 0.5, 1, 1, 1, 1])
    assert scoring.auc(scores, labels) == pytest.approx(7 / 8)  # 7 of 8 pairs ordered right
    assert scoring.tpr_at_fpr(scores, labels, 0.25) == 1.0
    assert np.isnan(scoring.tpr_at_fpr(scores, labels, 0.01))  # 4 negatives cannot resolve 1%
    tied = scoring.auc(np.zeros(4), np.array([1, 0, 1, 0], bool))
    assert tied == 0.5
    s, y = scoring.one_vs_rest(np.array([[3.0, 1.0, 2.0]]), np.array([0]))
    assert list(y) == [True, False, False] and s.sum() == pytest.approx(0.0)


def test_the_mi_lambda_is_fitted_on_other_runs() -> None:
    """Scores that carry the type in runs a and b but are reversed in run c: held-out fitting
    cannot use c's own labels, so c's part is negative and the bound falls below the in-sample
    one."""
    labels = np.array([0, 1, 2] * 3)
    runs = np.repeat(["a", "b", "c"], 3)
    scores = np.eye(3)[labels] * 3.0
    scores[runs == "c"] *= -1
    loo = scoring.mi_leave_one_run_out(scores, labels, runs)
    in_sample = scoring.mi_lower_bound(scores, labels, scores, labels)
    assert loo < in_sample
    assert np.isnan(scoring.mi_leave_one_run_out(scores[:3], labels[:3], runs[:3]))


def test_type_leakage_is_never_of_zero_width_when_every_run_agrees() -> None:
    """15 of 15 secrets named by the attack and by the actions alone, in each of 5 runs: a t
    interval over the runs' differences would be [0, 0], as if 15 secrets proved the messages
    add exactly nothing; the pooled leakage interval is the difference of the two 97.5%
    Clopper-Pearson intervals instead, and its simulated coverage is at least 95%."""
    from audits.audit import VictimScore, pool
    from audits.scoring import clopper_pearson, difference_interval

    rows = [
        VictimScore(
            run=f"r{run}", seed=run, env="exchange", method="as", attack="reward-type",
            attacker="relay", victim=agent, chance=1 / 3, score=1.0, baseline=1.0, extra={},
            scores=[0.0, 0.0, 0.0], baseline_scores=[0.0, 0.0, 0.0], truth=agent,
        )
        for run in range(5)
        for agent in range(3)
    ]  # fmt: skip
    (summary,) = pool(rows)
    lo, hi = summary.leakage_ci
    assert summary.leakage == 0.0 and lo == clopper_pearson(15, 15, 0.975)[0] - 1.0 and hi > 0.2
    rng, (p, q), n, covered = np.random.default_rng(1), (0.9, 0.6), 15, 0
    for _ in range(2000):
        a, b = rng.binomial(n, p), rng.binomial(n, q)
        lo, hi = difference_interval(a, n, b, n)
        covered += lo <= p - q <= hi
    assert covered / 2000 >= 0.95
