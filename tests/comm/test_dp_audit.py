"""The audit checks the mechanism: the epsilon that measured guesses imply never exceeds the
accountant's, and a broken mechanism (too little noise) is caught."""

from __future__ import annotations

import math

import numpy as np
import pytest

from asfed.comm.dp import DPSettings, calibrate_sigma, release
from asfed.comm.messages import Message
from attacks import reward_type
from audits.empirical import accuracy_ceiling, epsilon_lower_bound
from tests.attacks.test_attacks import records, soft_optimal, view_with

EPSILON, DELTA, TRIALS = 2.0, 1e-5, 300


def guesses(noise_scale: float) -> int:
    """TRIALS independent releases: each trial draws the victim's type (which agent's
    soft-optimal distribution it shares), releases it once with the mechanism calibrated to
    (EPSILON, DELTA) for one release (noise scaled by `noise_scale`), and guesses the type."""
    recs, env = records(episodes=2, rounds=1, seed=4)
    slots = env.private_params["slot_of"]
    sources = {j: soft_optimal(recs, env, j)[0] for j in range(3)}
    sigma = calibrate_sigma(EPSILON, DELTA, 1) * noise_scale
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(TRIALS):
        j = int(rng.integers(3))
        msg = release(Message(0, 0, 0, 1, "policy_dist", sources[j]), DPSettings(sigma), rng)
        guess = reward_type.from_messages(view_with(recs, 0, {0: msg.payload}))
        hits += int(guess.guess == slots[j])  # the attacker names the slot of the shared reward
    return hits


def test_the_empirical_epsilon_never_exceeds_the_accountants() -> None:
    hits = guesses(1.0)
    assert hits / TRIALS <= accuracy_ceiling(EPSILON, 3, DELTA) + 0.1
    assert epsilon_lower_bound(hits, TRIALS, 3, DELTA) <= EPSILON


def test_a_broken_mechanism_is_caught() -> None:
    """Noise 50x too small for the claimed epsilon: the guesses beat the ceiling that epsilon
    allows, and the implied lower bound exceeds the claim."""
    hits = guesses(0.02)
    assert hits / TRIALS > accuracy_ceiling(EPSILON, 3, DELTA)
    assert epsilon_lower_bound(hits, TRIALS, 3, DELTA) > EPSILON


def test_ceiling_and_bound_are_inverse() -> None:
    for eps in (0.5, 1.0, 4.0):
        acc = accuracy_ceiling(eps, 4)
        assert math.log(3 * acc / (1 - acc)) == pytest.approx(eps)
    assert accuracy_ceiling(0.0, 3) == pytest.approx(1 / 3)
    assert epsilon_lower_bound(10, 30, 3) == 0.0  # at chance: nothing implied


# ---- the self-check with power (audits.dp_check) ------------------------------------------------

from asfed.comm.dp import DPSettings as _Settings  # noqa: E402
from audits import dp_check  # noqa: E402


@pytest.mark.parametrize("kind", ["policy_dist", "values", "policy_params"])
@pytest.mark.parametrize(("epsilon", "releases"), [(1.0, 1), (4.0, 180), (16.0, 360), (64.0, 360)])
def test_the_self_check_passes_the_real_mechanism_and_catches_noise_2x_too_small(
    kind: str, epsilon: float, releases: int
) -> None:
    """At the trade-off's epsilons and release counts: the real mechanism audits at or below
    its accountant's epsilon; with the noise halved (epsilon about twice the claim) the 95%
    lower bound exceeds the claim."""
    dp = _Settings(calibrate_sigma(epsilon, DELTA, releases), clip=1.0, delta=DELTA)
    real = dp_check.check(kind, dp, releases, seed=1)
    assert real.accountant == pytest.approx(epsilon, rel=1e-6)
    assert real.passed and real.empirical > 0.5 * epsilon, real.line()  # tight, not vacuous
    broken = dp_check.check(kind, dp, releases, seed=2, noise_scale=0.5)
    assert not broken.passed, broken.line()


def test_the_gdp_fit_recovers_a_known_mu_and_the_threshold_bound_stays_below_it() -> None:
    rng = np.random.default_rng(0)
    s0, s1 = rng.normal(0, 1, 5000), rng.normal(1, 1, 5000)  # PRIVACY-FACTS' property case
    mu, lower = dp_check.gdp_mu(s0, s1)
    assert abs(mu - 1) < 0.05 and lower < mu
    exact = 4.3772  # mu = 1 at delta 1e-5 (PRIVACY-FACTS)
    assert dp_check.threshold_epsilon(s0, s1) < exact
    from asfed.comm.dp import epsilon_from_mu as eps_of

    assert eps_of(lower, 1e-5) < exact
