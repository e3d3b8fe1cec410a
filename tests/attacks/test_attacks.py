"""Attacks on channels with known answers: a softmax of a known reward is recovered, a policy
independent of the reward gives chance, and attacks see only the attacker's view."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

from asfed import dealer
from asfed.comm.messages import Message
from asfed.comm.record import PublicRecord
from asfed.config import build_config
from asfed.engine.driver import start, train
from asfed.engine.loop import Simulation
from asfed.engine.world import rollout
from attacks import reward_inversion, reward_type
from attacks.features import counterfactual
from attacks.view import AttackerView, load_view

OPTIONS = {"num_agents": 3, "horizon": 100}
HIDDEN = {"actor": (128, 64), "critic": (128, 64)}


def records(episodes: int = 32, rounds: int = 2, seed: int = 3):
    """Public records of `rounds` rounds of a navigation run, and the env (ground truth)."""
    sim = Simulation(
        build_config(env="navigation", method="ippo", episodes=episodes, seed=seed), private_seed=11
    )
    sim.env.set_private(dealer.deal(sim.env, 11).params)  # the ground truth, for scoring
    rng = np.random.default_rng(seed)
    out = {}
    for r in range(rounds):
        t = rollout(sim.env, sim.method, sim.federation.acting, rng, record=True)
        out[r] = PublicRecord(r, t.obs, t.actions, t.terminated, t.valid, t.states)
    return out, sim.env


def view_with(recs, victim: int, payloads: dict[int, np.ndarray]) -> AttackerView:
    messages = tuple(Message(r, 0, victim, 0, "policy_dist", p) for r, p in payloads.items())
    return AttackerView("relay", victim, "navigation", OPTIONS, "as", HIDDEN, messages, recs)


def soft_optimal(recs, env, victim: int, tau: float = 0.05) -> dict[int, np.ndarray]:
    """What a soft-optimal victim would share: softmax of its immediate reward / tau."""
    w = env.reward_weights[victim]
    out = {}
    for r, rec in recs.items():
        q = counterfactual(rec, "navigation", OPTIONS, victim, victim, {}) @ w  # [M, A]
        z = np.exp((q - q.max(1, keepdims=True)) / tau)
        out[r] = z / z.sum(1, keepdims=True)
    return out


@pytest.fixture(scope="module")
def navigation():
    return records()


def test_a_known_soft_optimal_channel_gives_away_the_reward_type(navigation) -> None:
    recs, env = navigation
    for victim in range(3):
        guess = reward_type.from_messages(view_with(recs, victim, soft_optimal(recs, env, victim)))
        truth = env.private_params["slot_of"][victim]
        assert guess.guess == truth
        assert (guess.episode_guesses == truth).mean() >= 0.9  # chance: 1/3


def test_reward_inversion_recovers_a_known_reward_on_held_out_transitions(navigation) -> None:
    recs, env = navigation
    victim = 2
    view = view_with(recs, victim, soft_optimal(recs, env, victim))
    fit_on = set((0 * 1_000_000 + np.arange(32)).tolist())  # round 0's episodes only
    est = reward_inversion.from_messages(view, fit_on)
    held = set((1 * 1_000_000 + np.arange(32)).tolist())
    rounds, rows, r_hat = reward_inversion.predict(view, est, held)
    assert set(rounds.tolist()) == {1}
    phi = counterfactual(recs[1], "navigation", OPTIONS, victim, victim, {})
    taken = recs[1].row_actions()[rows, victim]
    true_r = phi[rows, taken] @ env.reward_weights[victim]
    assert np.corrcoef(r_hat, true_r)[0, 1] > 0.9


def test_a_policy_independent_of_the_reward_leaks_at_chance(navigation) -> None:
    recs, env = navigation
    rng = np.random.default_rng(0)
    hits, total = 0, 0
    for victim in range(3):
        noise = {r: rng.dirichlet(np.ones(5), rec.num_rows) for r, rec in recs.items()}
        guess = reward_type.from_messages(view_with(recs, victim, noise))
        truth = env.private_params["slot_of"][victim]
        hits += int((guess.episode_guesses == truth).sum())
        total += len(guess.episode_guesses)
    acc = hits / total  # 192 guesses; chance 1/3, standard error about 0.034
    assert abs(acc - 1 / 3) < 0.12


def test_attacks_see_only_the_view_and_say_when_there_is_no_channel(tmp_path) -> None:
    """An attack runs on a run folder stripped of ground truth, checkpoints, metrics and agents'
    storage (load_view reads none of them); IPPO gives the attacker nothing, and says so."""
    fields = {f.name for f in dataclasses.fields(AttackerView)}
    assert fields == {
        "attacker",
        "victim",
        "env",
        "options",
        "method",
        "hidden",
        "messages",
        "records",
        "gamma",
        "inbox",
        "degrees",
        "derived",  # computed from the fields above, once (never passed in: init=False)
    }
    assert not next(f for f in dataclasses.fields(AttackerView) if f.name == "derived").init
    for method in ("as", "ippo"):
        cfg = build_config(env="navigation", method=method, rounds=2, episodes=2, log_every=1)
        sim, run, rows = start(cfg, tmp_path / method, private_seed=11)
        train(sim, run, rows)
        for private in ("ground_truth", "agents"):
            shutil.rmtree(run.path / private)
        for name in ("checkpoint.pt", "metrics.csv"):
            (run.path / name).unlink()
        view = load_view(run.path, "relay", 1)
        out = reward_type.from_messages(view)
        if method == "ippo":
            assert isinstance(out, reward_type.NoEvidence) and "received nothing" in out.reason
        else:
            assert out.scores.shape == (3,)
        assert reward_type.from_actions(view).scores.shape == (3,)


def test_inversion_fits_only_on_the_episodes_it_is_given(navigation) -> None:
    """Fitting and scoring use disjoint transitions: rows outside the fitting episodes, even
    adversarial ones (a reward of the opposite sign), do not move the estimate."""
    recs, env = navigation
    victim = 0
    clean = soft_optimal(recs, env, victim)
    fit_on = set(np.arange(0, 32, 2).tolist())  # round 0, even episodes
    poisoned = {r: p.copy() for r, p in clean.items()}
    w = env.reward_weights[victim]
    for r, rec in recs.items():
        q = -(counterfactual(rec, "navigation", OPTIONS, victim, victim, {}) @ w)
        z = np.exp((q - q.max(1, keepdims=True)) / 0.05)
        outside = ~np.isin(r * 1_000_000 + rec.row_episodes(), list(fit_on))
        poisoned[r][outside] = (z / z.sum(1, keepdims=True))[outside]
    a = reward_inversion.from_messages(view_with(recs, victim, clean), fit_on)
    b = reward_inversion.from_messages(view_with(recs, victim, poisoned), fit_on)
    np.testing.assert_allclose(a.weights, b.weights, rtol=1e-6, atol=1e-9)
