"""A DP self-check with power: the empirical lower bound on epsilon that the mechanism's own
releases imply, under the strongest test, to set beside the accountant's epsilon.

- **Worst-case canaries.** Two inputs at the sensitivity's extremes: a distribution message of R
  rows that is all action 0 against all action 1 (L2 distance sqrt(2R), the sensitivity the
  mechanism is calibrated to), and a values vector at +C against -C (distance 2C).
- **The optimal test.** Each trial is a fresh release of one of the pair through the mechanism
  (`asfed.comm.dp.gaussian_release`, the Gaussian step before the simplex projection: the
  projection is post-processing and can only make the two harder to tell apart, so auditing before
  it is the stronger audit). For two Gaussians of equal covariance the likelihood ratio is the
  projection onto the pair's difference, so the score is <X - (a + b) / 2, b - a> / ||b - a||.
- **A Gaussian-DP fit** (Nasr et al. 2023; jax_privacy's `CanaryScoreAuditor.epsilon_from_gdp`):
  under the pair, the scores are N(-mu/2, 1) and N(mu/2, 1) in noise units, so one release is
  mu-GDP with mu = (mean_1 - mean_0) / sd. A one-sided 95% lower bound on mu (the standardised
  mean difference's normal-theory standard error) composes exactly over the run's T releases
  (sqrt(T) mu) and converts to epsilon at the run's delta. The fit assumes Gaussian scores, which
  is what a Gaussian mechanism gives; the Clopper-Pearson bound on TPR / FPR at the best
  threshold (`threshold_epsilon`, assumption-free but weak at large epsilons) is the cross-check.

A correct mechanism audits at or below its accountant's epsilon; noise k times too small
multiplies mu by k, and 20,000 trials a hypothesis resolve mu to about 0.01, so a factor of 2 is
caught at every epsilon the trade-off uses (tests/comm/test_dp_audit.py).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import stats

from asfed.comm.dp import (
    DISTRIBUTION_KINDS,
    PARAM_KINDS,
    DPSettings,
    epsilon_from_mu,
    gaussian_release,
    release_update,
)
from asfed.errors import AsfedError
from audits.empirical import clopper_pearson_lower

TRIALS = 20_000


def canaries(kind: str, rows: int, actions: int, clip: float) -> tuple[np.ndarray, np.ndarray]:
    """The worst-case pair: `[R, A]` one-hot rows on action 0 vs action 1, or +C vs -C `[R]`
    (for parameters: two updates of norm C in opposite directions from the last release)."""
    if kind == "values" or kind in PARAM_KINDS:
        a = np.zeros(rows)
        a[0] = clip
        return a, -a
    if actions < 2:
        raise AsfedError(f"a DP check needs at least 2 actions, not {actions}")
    a, b = np.zeros((rows, actions)), np.zeros((rows, actions))
    a[:, 0], b[:, 1] = 1.0, 1.0
    return a, b


def scores(
    kind: str, a: np.ndarray, b: np.ndarray, dp: DPSettings, trials: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The likelihood-ratio score of `trials` fresh releases of a `[trials]` and of b `[trials]`,
    in units of the noise's standard deviation along b - a."""
    rng = np.random.default_rng(seed)
    direction = (b - a).ravel()
    centre = ((a + b) / 2).ravel()
    unit = direction / np.linalg.norm(direction)
    out = []
    for source in (a, b):
        s = [(_mechanism(kind, source, dp, rng).ravel() - centre) @ unit for _ in range(trials)]
        out.append(np.asarray(s))
    sd = math.sqrt((out[0].var(ddof=1) + out[1].var(ddof=1)) / 2)
    return out[0] / sd, out[1] / sd


def _mechanism(kind: str, x: np.ndarray, dp: DPSettings, rng: np.random.Generator) -> np.ndarray:
    """One release of `x` as asfed's agents release it (parameters: an update from a public
    reference of zeros, `release_update`)."""
    if kind in PARAM_KINDS:
        return release_update(x, np.zeros_like(x), dp, rng)
    return gaussian_release(kind, x, dp, rng)


def kinds_to_check(allowed: frozenset[str]) -> list[str]:
    """One kind per mechanism a method's messages go through."""
    out = []
    for group in (DISTRIBUTION_KINDS, frozenset({"values"}), PARAM_KINDS):
        sent = sorted(allowed & group)
        if sent:
            out.append(sent[0])
    return out


def gdp_mu(s0: np.ndarray, s1: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """(mu estimate, one-sided lower confidence bound) from the two score samples."""
    n0, n1 = len(s0), len(s1)
    sd = math.sqrt(((n0 - 1) * s0.var(ddof=1) + (n1 - 1) * s1.var(ddof=1)) / (n0 + n1 - 2))
    mu = float((s1.mean() - s0.mean()) / sd)
    se = math.sqrt(1 / n0 + 1 / n1 + mu**2 / (2 * (n0 + n1)))
    return mu, max(0.0, mu - float(stats.norm.ppf(confidence)) * se)


def threshold_epsilon(
    s0: np.ndarray, s1: np.ndarray, releases: int = 1, delta: float = 1e-5
) -> float:
    """The assumption-free bound for ONE release: max over thresholds of ln((TPR_lo - delta) /
    FPR_hi), each rate a one-sided Clopper-Pearson bound at 97.5% (95% together). It does not
    compose, so it is reported for `releases` = 1 only."""
    if releases != 1:
        raise ValueError("the threshold bound is for one release")
    n0, n1 = len(s0), len(s1)
    best = 0.0
    for t in np.quantile(s0, [0.9, 0.99, 0.999, 0.9999]):
        fp, tp = int((s0 > t).sum()), int((s1 > t).sum())
        fpr_hi = 1 - clopper_pearson_lower(n0 - fp, n0, 0.975)
        tpr_lo = clopper_pearson_lower(tp, n1, 0.975)
        if tpr_lo > delta and fpr_hi > 0:
            best = max(best, math.log((tpr_lo - delta) / fpr_hi))
    return best


@dataclasses.dataclass(frozen=True)
class Check:
    """One kind's audit: the accountant's epsilon over `releases`, and what the releases imply."""

    kind: str
    releases: int
    sigma: float
    accountant: float
    mu: float  # per release, estimated
    mu_lower: float  # per release, one-sided 95%
    empirical: float  # epsilon lower bound over `releases` (95%)
    point: float  # epsilon at the estimated mu

    @property
    def passed(self) -> bool:
        """The mechanism is no leakier than claimed: the lower bound stays at or below it."""
        return self.empirical <= self.accountant * (1 + 1e-9)

    def line(self) -> str:
        verdict = "consistent" if self.passed else "EXCEEDS the accountant: a broken mechanism"
        return (
            f"{self.kind}: accountant epsilon {self.accountant:.4g} over {self.releases} "
            f"releases, empirical lower bound {self.empirical:.4g} (95%; point {self.point:.4g}, "
            f"mu per release {self.mu:.4f} >= {self.mu_lower:.4f}): {verdict}"
        )


def check(
    kind: str,
    dp: DPSettings,
    releases: int,
    rows: int = 16,
    actions: int = 5,
    trials: int = TRIALS,
    seed: int = 0,
    noise_scale: float = 1.0,
) -> Check:
    """Audit the mechanism for `kind` at noise multiplier dp.sigma over `releases` releases.
    noise_scale != 1 runs a deliberately broken mechanism (for the test that shows power)."""
    if releases < 1:
        raise AsfedError(f"releases={releases} is invalid; accepted: an integer >= 1")
    a, b = canaries(kind, rows, actions, dp.clip)
    run_dp = dataclasses.replace(dp, sigma=dp.sigma * noise_scale)
    s0, s1 = scores(kind, a, b, run_dp, trials, seed)
    mu, mu_lo = gdp_mu(s0, s1)
    root = math.sqrt(releases)
    return Check(
        kind,
        releases,
        dp.sigma,
        epsilon_from_mu(root / dp.sigma, dp.delta),
        mu,
        mu_lo,
        epsilon_from_mu(root * mu_lo, dp.delta),
        epsilon_from_mu(root * mu, dp.delta),
    )
