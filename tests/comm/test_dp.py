"""DP on shared messages: the accountant against closed-form Gaussian DP, calibration, the simplex
projection, noise that drives an attack to chance, and bad values."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import optimize, stats

from asfed.comm.dp import (
    DPSettings,
    ReleaseAccountant,
    calibrate_sigma,
    epsilon_from_mu,
    project_simplex,
    release,
    release_update,
)
from asfed.comm.messages import Message
from asfed.config import build_config
from asfed.engine.driver import resume, start, train
from asfed.engine.loop import Simulation
from attacks import reward_type
from audits import scoring
from tests.attacks.test_attacks import records, soft_optimal, view_with
from tests.test_simulate_cli import refused


def gdp_epsilon(mu: float, delta: float) -> float:
    """Closed form (Dong, Roth, Su 2022, Cor. 2.13), solved independently of asfed's code."""
    f = lambda e: stats.norm.cdf(-e / mu + mu / 2) - math.exp(e) * stats.norm.cdf(-e / mu - mu / 2)  # noqa: E731
    return optimize.brentq(lambda e: f(e) - delta, 0, 200)


def test_the_accountant_matches_closed_form_gaussian_dp() -> None:
    acc = ReleaseAccountant(1, sigma=1.0, delta=1e-5)
    acc.add([100])  # mu = sqrt(100) / 1
    eps = acc.epsilons()[0]
    assert eps == pytest.approx(gdp_epsilon(10.0, 1e-5), rel=0.01)
    assert eps == pytest.approx(91.8173, abs=1e-3)  # PRIVACY-FACTS' oracle
    assert acc.rdp_epsilon(0) > eps  # RDP is valid but looser
    for mu, expected in ((0.5, 1.9931), (1.0, 4.3772), (2.0, 9.9973)):
        assert epsilon_from_mu(mu, 1e-5) == pytest.approx(expected, abs=1e-3)


def test_calibrated_sigma_meets_its_target_and_agrees_with_opacus_prv() -> None:
    for target in (0.5, 1.0, 4.0, 16.0):
        for releases in (1, 100, 3000):
            sigma = calibrate_sigma(target, 1e-5, releases)
            assert epsilon_from_mu(math.sqrt(releases) / sigma, 1e-5) == pytest.approx(
                target, rel=1e-6
            )
    assert calibrate_sigma(1.0, 1e-5, 100) == pytest.approx(37.306, abs=1e-3)
    from opacus.accountants.utils import get_noise_multiplier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PRV warns at sample rate 1
        prv = get_noise_multiplier(
            target_epsilon=1.0, target_delta=1e-5, sample_rate=1.0, steps=100, accountant="prv"
        )
    assert prv == pytest.approx(calibrate_sigma(1.0, 1e-5, 100), rel=0.02)


def test_projection_is_the_euclidean_projection_onto_the_simplex() -> None:
    rng = np.random.default_rng(0)
    for _ in range(25):
        v = rng.normal(0, 2, 5)
        got = project_simplex(v[None])[0]
        res = optimize.minimize(
            lambda x, v=v: ((x - v) ** 2).sum(),
            np.full(5, 0.2),
            constraints=[{"type": "eq", "fun": lambda x: x.sum() - 1}],
            bounds=[(0, 1)] * 5,
            method="SLSQP",
            options={"ftol": 1e-12},
        )
        assert got.min() >= 0 and got.sum() == pytest.approx(1.0)
        np.testing.assert_allclose(got, res.x, atol=1e-5)


def test_a_released_message_is_noised_valid_and_reproducible() -> None:
    p = np.full((40, 5), 0.2)
    msg = Message(0, 0, 1, 0, "policy_dist", p, np.arange(40))
    dp = DPSettings(sigma=0.05)
    a = release(msg, dp, np.random.default_rng(3))
    b = release(msg, dp, np.random.default_rng(3))
    np.testing.assert_array_equal(a.payload, b.payload)
    assert not np.allclose(a.payload, p) and (a.payload >= 0).all()
    np.testing.assert_allclose(a.payload.sum(1), 1.0, rtol=1e-5)
    assert a.rows is msg.rows or np.array_equal(a.rows, msg.rows)
    step = release_update(
        np.full(10, 3.0), np.ones(10), DPSettings(0.01, 1.0), np.random.default_rng(0)
    )
    assert np.linalg.norm(step - 1.0) == pytest.approx(1.0, abs=0.1)  # the update, clipped to C


def test_at_a_tiny_epsilon_reward_type_is_at_chance() -> None:
    recs, env = records(episodes=32)
    rng = np.random.default_rng(5)
    hits = total = 0
    for victim in range(3):
        clean = soft_optimal(recs, env, victim)
        dp = DPSettings(sigma=calibrate_sigma(0.01, 1e-5, len(clean)))
        noised = {
            r: release(Message(r, 0, victim, 0, "policy_dist", p), dp, rng).payload
            for r, p in clean.items()
        }
        guess = reward_type.from_messages(view_with(recs, victim, noised))
        truth = env.private_params["slot_of"][victim]
        hits += int((guess.episode_guesses == truth).sum())
        total += len(guess.episode_guesses)
    lo, hi = scoring.wilson(hits, total)
    assert lo <= 1 / 3 <= hi


def test_a_dp_run_logs_what_was_released_and_resumes_its_accountant(tmp_path) -> None:
    common = {
        "env": "navigation",
        "method": "as",
        "episodes": 2,
        "log_every": 1,
        "engine": "local",
        "dp_epsilon": 2.0,
        "checkpoint_every": 1,
    }
    full_cfg = build_config(rounds=3, **common)
    sim, run, rows = start(full_cfg, tmp_path / "full", private_seed=11)
    train(sim, run, rows)
    full = run.read_metrics()
    assert float(full[-1]["epsilon"]) == pytest.approx(2.0, rel=1e-6)  # the bound is reached
    eps = [float(r["epsilon"]) for r in full]
    assert eps == sorted(eps) and eps[0] < eps[-1]
    sim, run, rows = start(full_cfg, tmp_path / "cut", private_seed=11)

    def stop(m):
        if m["round"] == 1:
            raise KeyboardInterrupt  # interrupted after round 2's checkpoint

    with pytest.raises(KeyboardInterrupt):
        train(sim, run, rows, stop)
    sim, run, rows = resume(tmp_path / "cut")
    train(sim, run, rows)
    assert run.read_metrics() == full  # the accountant and the noise continue exactly


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--dp-epsilon", "0"), "dp_epsilon=0.0 is invalid"),
        (("--dp-epsilon", "1", "--dp-delta", "1.5"), "dp_delta=1.5 is invalid"),
        (("--dp-epsilon", "1", "--dp-sigma", "2"), "not both"),
        (("--dp-sigma", "-1"), "dp_sigma=-1.0 is invalid"),
    ],
)
def test_bad_dp_values_get_one_clear_error_and_write_nothing(tmp_path, flags, message) -> None:
    out = tmp_path / "run"
    res = refused("simulate", "--env", "navigation", "--engine", "local", "--out", str(out), *flags)
    assert res.returncode == 2 and message in res.stderr, res.stderr
    assert not out.exists()


def test_rounds_without_messages_release_nothing() -> None:
    """With `every` 2, rounds 0 and 2 of 3 communicate: the noise is calibrated for those two
    rounds' releases (half the every-round bound), and the run ends at its target epsilon."""
    cfg = build_config(env="navigation", method="as", episodes=2, every=2, rounds=3, dp_epsilon=1.0)
    every_round = build_config(env="navigation", method="as", episodes=2, rounds=3)
    assert cfg.release_bound() * 3 == every_round.release_bound() * 2
    sim = Simulation(cfg)
    eps = [sim.run_round()[0]["epsilon"] for _ in range(3)]
    assert eps[0] == eps[1] < eps[2]  # round 1 communicates nothing: epsilon does not move
    assert eps[2] == pytest.approx(1.0, rel=1e-6)  # the bound is exact, not loose


def test_the_per_pair_epsilon_counts_what_one_neighbour_received() -> None:
    """Agent 0 sends 4 releases to each of 2 neighbours: the relay's epsilon covers 8, one
    neighbour's covers 4; a checkpoint keeps the pairs, and an older one without them reads NaN
    rather than a made-up number."""
    from asfed.comm.dp import ReleaseAccountant, epsilon_from_mu

    acc = ReleaseAccountant(3, sigma=2.0, delta=1e-5)
    acc.add(np.array([8, 0, 0]), np.array([[0, 4, 4], [0, 0, 0], [0, 0, 0]]))
    assert acc.epsilons()[0] == pytest.approx(epsilon_from_mu(8**0.5 / 2, 1e-5))
    assert acc.pair_epsilon() == pytest.approx(epsilon_from_mu(4**0.5 / 2, 1e-5))
    again = ReleaseAccountant(3, sigma=2.0, delta=1e-5)
    again.load_state_dict(acc.state_dict())
    assert again.pair_epsilon() == acc.pair_epsilon()
    again.load_state_dict({"releases": [8, 0, 0]})
    assert np.isnan(again.pair_epsilon())
