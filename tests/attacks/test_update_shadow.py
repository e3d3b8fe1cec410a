"""The update attack, the shadow model and the channels' reading of every share and copy, on
channels with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from asfed.comm.messages import Message
from attacks import shadow, update
from attacks.channels import evidence, reading
from attacks.features import counterfactual
from attacks.view import AttackerView
from tests.attacks.test_attacks import HIDDEN, OPTIONS, records

GAMMA = 0.9


def rtg(recs, env, victim: int) -> dict[int, np.ndarray]:
    """The victim's true discounted return-to-go on each round's rows."""
    out = {}
    for r, rec in recs.items():
        phi = counterfactual(rec, "navigation", OPTIONS, victim, victim, {})
        taken = rec.row_actions()[:, victim]
        rewards = phi[np.arange(len(taken)), taken] @ env.reward_weights[victim]
        out[r] = update.returns_to_go(rewards, rec.row_episodes(), GAMMA)
    return out


def learner(
    recs, env, victim: int, follows: bool, seed: int = 0, share_rows: float = 1.0
) -> tuple[Message, ...]:
    """A victim sharing its policy twice a round (steps 0 and 1) to two receivers, each copy
    with independent noise; between the steps its log-policy at the taken actions rose with its
    return-to-go (`follows`) or with noise unrelated to its reward. With `share_rows` < 1 each
    message carries its own random subset of the rows (AS's `--share-rows`)."""
    rng = np.random.default_rng(seed)
    g = rtg(recs, env, victim)
    out = []
    for r, rec in recs.items():
        m = rec.num_rows
        logits = rng.normal(size=(m, 5))
        signal = g[r] - g[r].mean() if follows else rng.normal(size=m)
        after = logits.copy()
        after[np.arange(m), rec.row_actions()[:, victim]] += 0.5 * signal / signal.std()
        for step, z in ((0, logits), (1, after)):
            p = np.exp(z - z.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            for receiver in (3, 4):
                noisy = np.clip(p + rng.normal(0, 0.02, p.shape), 1e-6, None)
                if share_rows >= 1:
                    out.append(Message(r, step, victim, receiver, "policy_dist", noisy))
                    continue
                rows = np.sort(rng.choice(m, max(1, round(share_rows * m)), replace=False))
                msg = Message(r, step, victim, receiver, "policy_dist", noisy[rows], rows)
                out.append(msg)
    return tuple(out)


def view(recs, victim: int, messages) -> AttackerView:
    return AttackerView("relay", victim, "navigation", OPTIONS, "as", HIDDEN, messages, recs, GAMMA)


def test_returns_to_go_restart_at_each_episode() -> None:
    rewards = np.array([1.0, 0.0, 2.0, 1.0, 1.0])
    episodes = np.array([0, 0, 0, 1, 1])
    assert update.returns_to_go(rewards, episodes, 0.5) == pytest.approx([1.5, 1.0, 2.0, 1.5, 1.0])


def test_every_share_and_copy_is_read_and_copies_are_averaged() -> None:
    recs, env = records(episodes=4, rounds=2)
    msgs = learner(recs, env, 1, follows=True)
    ev = evidence(view(recs, 1, msgs))
    got = reading(view(recs, 1, msgs), ev)
    assert (got.rounds, got.shares, got.messages, got.items) == (2, 4, 8, 4)
    first = [m for m in msgs if m.round == 0 and m.step == 0]
    mean = np.mean([m.payload for m in first], axis=0)
    assert np.allclose(ev[0].prefs, np.log(mean)) and ev[0].copies == 2


def test_the_update_attack_names_a_learner_that_follows_its_return_and_not_one_that_does_not():
    recs, env = records(episodes=16, rounds=3)
    right = wrong = 0
    for victim in range(3):
        truth = env.private_params["slot_of"][victim]
        guess = update.from_messages(view(recs, victim, learner(recs, env, victim, True)))
        right += guess.guess == truth
        assert (guess.episode_guesses == truth).mean() >= 2 / 3  # per round; chance 1/3
        blind = update.from_messages(view(recs, victim, learner(recs, env, victim, False)))
        wrong += abs(blind.scores).max() < 0.1  # no hypothesis explains reward-blind changes
    assert right == 3 and wrong == 3


def test_the_update_attack_reads_a_random_subset_of_rows_where_two_shares_overlap() -> None:
    """With every message on its own random 40% of the rows no two releases carry the same
    rows; the attack compares each row between the first and the last share that carried it,
    and still names every victim (reading only identical row sets, it had nothing to compare)."""
    recs, env = records(episodes=16, rounds=3)
    for victim in range(3):
        truth = env.private_params["slot_of"][victim]
        msgs = learner(recs, env, victim, True, share_rows=0.4)
        assert len({m.rows.tobytes() for m in msgs}) == len(msgs)
        assert update.from_messages(view(recs, victim, msgs)).guess == truth


def test_copies_of_one_step_on_different_rows_are_averaged_row_by_row() -> None:
    """Two neighbours' copies of one release, each on its own rows with its own noise: a row
    both carried is read from the mean of the two (weighted by the copies each already
    averages), a row one carried from that one, a row neither carried is missing."""
    from attacks.channels import Evidence

    p1 = np.array([[0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])
    p2 = np.array([[0.4, 0.6], [0.3, 0.7]])
    one = Evidence(0, np.array([0, 1, 2]), 1, prefs=np.log(p1))
    two = Evidence(0, np.array([1, 3]), 1, prefs=np.log(p2))
    one.step = two.step = 0
    one.copies, two.copies = 1, 3  # `two` already averages three identical-row copies
    ((step, got),) = update._per_step([one, two], 5, 2)
    assert step == 0
    assert np.allclose(np.exp(got[0]), p1[0]) and np.allclose(np.exp(got[2]), p1[2])
    assert np.allclose(np.exp(got[1]), (p1[1] + 3 * p2[0]) / 4)
    assert np.allclose(np.exp(got[3]), p2[1]) and np.isnan(got[4]).all()


def test_the_shadow_model_learns_which_feature_carries_the_type() -> None:
    """Synthetic shadow secrets whose `update` column carries the type and whose others are
    noise: the fitted model weighs `update` most and names held-out secrets; the actions-only
    model, given only noise, stays near chance."""
    rng = np.random.default_rng(0)

    def secrets(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, 3, n)
        feats = rng.normal(0, 1, (n, 3, 3))
        feats[np.arange(n), labels, 0] += 2.0
        return feats, labels

    train, labels = secrets(60)
    model = shadow.fit(train, labels, shadow.MESSAGES)
    assert np.argmax(model.theta) == 0 and model.secrets == 60
    test, truth = secrets(300)
    hits = np.mean([model.guess(f, "shadow").guess == t for f, t in zip(test, truth, strict=True)])
    base = shadow.fit(train, labels, shadow.ACTIONS)
    base_hits = np.mean([base.guess(f, "a").guess == t for f, t in zip(test, truth, strict=True)])
    assert hits > 0.7 and base_hits < 0.45


def test_the_relay_removes_the_consensus_part_of_a_ps_victims_update(tmp_path) -> None:
    """A real PS run's relay view: the victim's inbox and fan-outs are there, and the consensus
    point rebuilt from them is the Metropolis mix the victim computed (full graph of 3: every
    weight 1/3), so the local step is what is left."""
    from asfed.config import build_config
    from asfed.engine.driver import start, train
    from attacks.view import load_view

    cfg = build_config(
        env="exchange", method="ps", rounds=1, episodes=2, horizon=20, log_every=1, seed=1
    )
    sim, run, rows = start(cfg, tmp_path / "ps", private_seed=5)
    train(sim, run, rows)
    v = load_view(run.path, "relay", 0)
    assert {m.sender for m in v.inbox} == {1, 2} and v.degrees[(0, 0, 0)] == 2
    own = next(m.payload for m in v.messages if m.step == 0).astype(np.float64)
    mixed = update._consensus(v, 0, 0, "policy_params", own)
    theirs = [m.payload for m in v.inbox if m.step == 0]
    assert np.allclose(mixed, (own + theirs[0] + theirs[1]) / 3)
    neighbour = load_view(run.path, "agent:1", 0)
    assert neighbour.inbox == () and update._local_steps(neighbour, 0) == []
    assert len(update._local_steps(v, 0)) == 1


@pytest.mark.parametrize("env", ["navigation", "exchange", "predation", "cleanup", "harvest"])
def test_batched_counterfactual_features_equal_the_step_by_step_ones(env: str, monkeypatch) -> None:
    """The audit evaluates every row of a round at once; that must change no feature, on any
    env, under any hypothesis about the private parameter (rows ending early included)."""
    from asfed import dealer
    from asfed.comm.record import PublicRecord
    from asfed.config import build_config
    from asfed.engine.loop import Simulation
    from asfed.engine.world import rollout
    from attacks import features

    cfg = build_config(env=env, method="ippo", episodes=3, horizon=30, seed=2)
    sim = Simulation(cfg, private_seed=3)
    sim.env.set_private(dealer.deal(sim.env, 3).params)
    t = rollout(sim.env, sim.method, sim.federation.acting, np.random.default_rng(2), record=True)
    rec = PublicRecord(0, t.obs, t.actions, t.terminated, t.valid, t.states)
    options = cfg.env_options()
    for private in features.feature_candidates(env, options)[:3]:
        for actor in (0, 1):
            fast = features.counterfactual(rec, env, options, 0, actor, private)
            slow = features.counterfactual_by_step(rec, env, options, 0, actor, private)
            assert fast.shape == slow.shape and np.array_equal(fast, slow)
    monkeypatch.setattr(features, "CHUNK_COPIES", 50)  # many chunks, a short last one
    chunked = features.counterfactual(rec, env, options, 0, 1, private)
    assert np.array_equal(
        chunked, features.counterfactual_by_step(rec, env, options, 0, 1, private)
    )
