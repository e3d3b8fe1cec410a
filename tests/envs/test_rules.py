"""Rule tests: each env's documented rules, checked with scripted policies and built states."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest

import asfed
from asfed.envs import scripted
from asfed.envs.exchange import CLOSED, EMPTY, OPEN
from asfed.envs.harvest import REGROWTH
from asfed.errors import AsfedError


def episode_rewards(env, policy) -> list[np.ndarray]:
    env.reset()
    out = []
    while True:
        _, r, term, trunc, _ = env.step(policy(env, env.state))
        out.append(r)
        if (term | trunc).all():
            return out


# ---- exchange -----------------------------------------------------------------------------


def test_exchange_all_defect_is_exactly_minus_nine() -> None:
    env = asfed.make_vec_env("exchange", 8, seed=0)
    steps = episode_rewards(env, scripted.stay_still)
    assert len(steps) == 300
    for b in range(8):
        assert math.fsum(float(r[b].sum()) for r in steps) == -9.0


def test_exchange_cooperation_reaches_plus_six() -> None:
    env = asfed.make_vec_env("exchange", 64, seed=1)
    totals = np.sum(episode_rewards(env, scripted.exchange_cooperative), axis=(0, 2))
    np.testing.assert_allclose(totals, 6.0, atol=1e-9)
    assert (env.state.status == EMPTY).all()


def _exchange_at(env, pos, boxes, status=(CLOSED, CLOSED, CLOSED)):
    env.reset()
    s = env.get_state()
    s.pos[0] = np.array(pos)
    s.boxes[0] = np.array(boxes)
    s.status[0] = np.array(status)
    env.set_state(s)


def test_exchange_open_costs_five_and_owner_eats_ten() -> None:
    env = asfed.make_vec_env("exchange", 1, seed=4)
    box_of = env.private_params["box_of"]
    boxes = [[0, 0], [0, 4], [4, 4]]
    owner = int(np.flatnonzero(box_of == 0)[0])  # the agent whose food is in slot 0
    opener = (owner + 1) % 3
    pos = [[2, 2]] * 3
    pos[owner] = [0, 0]  # standing on its own closed box
    pos[opener] = [1, 0]  # next to it
    _exchange_at(env, pos, boxes)
    stay, open_ = env.action_names.index("stay"), env.action_names.index("open")
    actions = np.full((1, 3), stay)
    actions[0, opener] = open_
    _, r, *_ = env.step(actions)
    expected = np.full(3, -0.01)
    expected[opener] -= 5.0
    expected[owner] += 10.0
    np.testing.assert_allclose(r[0], expected)
    assert env.state.status[0, 0] == EMPTY


def test_exchange_opening_own_box_does_nothing() -> None:
    env = asfed.make_vec_env("exchange", 1, seed=4)
    box_of = env.private_params["box_of"]
    boxes = [[0, 0], [0, 4], [4, 4]]
    agent = int(np.flatnonzero(box_of == 0)[0])
    pos = [[2, 2]] * 3
    pos[agent] = [0, 1]  # next to its own box only
    _exchange_at(env, pos, boxes)
    actions = np.full((1, 3), env.action_names.index("stay"))
    actions[0, agent] = env.action_names.index("open")
    _, r, *_ = env.step(actions)
    np.testing.assert_allclose(r[0], -0.01)
    assert (env.state.status[0] == CLOSED).all()


def test_exchange_non_owner_on_open_box_does_not_eat() -> None:
    env = asfed.make_vec_env("exchange", 1, seed=4)
    box_of = env.private_params["box_of"]
    stranger = int(np.flatnonzero(box_of != 0)[0])
    pos = [[2, 2]] * 3
    pos[stranger] = [0, 0]
    _exchange_at(env, pos, [[0, 0], [0, 4], [4, 4]], status=(OPEN, CLOSED, CLOSED))
    _, r, *_ = env.step(np.full((1, 3), env.action_names.index("stay")))
    np.testing.assert_allclose(r[0], -0.01)
    assert env.state.status[0, 0] == OPEN


def _exchange_step_by_the_rules(pos, boxes, status, actions, box_of):
    """One copy's step, written from the module docstring in plain loops: moves (clipped), then
    each `open` opens the lowest closed slot in reach that is not the agent's own, the
    lowest-indexed agent winning a contested slot, then owners on their open boxes eat."""
    moves = {0: (-1, 0), 1: (1, 0), 2: (0, -1), 3: (0, 1)}
    pos = [list(p) for p in pos]
    status = list(status)
    feats = np.zeros((3, 5))
    feats[:, 0] = 1.0
    for i, a in enumerate(actions):
        if a in moves:
            pos[i] = [
                min(4, max(0, pos[i][0] + moves[a][0])),
                min(4, max(0, pos[i][1] + moves[a][1])),
            ]
    claimed = set()
    for i, a in enumerate(actions):
        if a != 4:
            continue
        reach = [
            k
            for k in range(3)
            if abs(pos[i][0] - boxes[k][0]) + abs(pos[i][1] - boxes[k][1]) <= 1
            and box_of[i] != k
            and status[k] == CLOSED
        ]
        if reach and reach[0] not in claimed:
            claimed.add(reach[0])
            feats[i, 1] = 1.0
    for k in claimed:
        status[k] = OPEN
    eaten = set()
    for i in range(3):
        for k in range(3):
            if pos[i] == list(boxes[k]) and status[k] == OPEN:
                feats[i, 2 + k] = 1.0
                if box_of[i] == k:
                    eaten.add(k)
    for k in eaten:
        status[k] = EMPTY
    return pos, status, feats


def test_exchange_vectorised_step_matches_the_rules_copy_by_copy() -> None:
    """Crowded random states (agents and boxes on a 2 x 2 corner, most agents opening), so
    contested slots, boxes in reach of several agents and owners on open boxes all occur."""
    rng = np.random.default_rng(7)
    b = 2000
    env = asfed.make_vec_env("exchange", b, seed=0)
    env.reset()
    s = env.get_state()
    s.pos[:] = rng.integers(0, 2, (b, 3, 2))
    s.boxes[:] = rng.integers(0, 2, (b, 3, 2))
    s.status[:] = rng.integers(0, 3, (b, 3))
    actions = rng.choice([0, 1, 2, 3, 4, 4, 4, 5], (b, 3))
    for cand in env.feature_candidates():
        feats = env.reward_features(s, actions, private=cand)
        nxt, _ = env._transition(s, env.check_actions(actions), cand)
        for c in range(b):
            pos, status, want = _exchange_step_by_the_rules(
                s.pos[c], s.boxes[c], s.status[c], actions[c], cand["box_of"]
            )
            assert nxt.pos[c].tolist() == pos and nxt.status[c].tolist() == status, c
            np.testing.assert_array_equal(feats[c], want)
    assert (feats[:, :, 1] == 1).sum(0).min() > 0  # every agent opened somewhere


# ---- cleanup ------------------------------------------------------------------------------


def test_cleanup_free_riding_is_worse_than_one_cleaner() -> None:
    def one_cleans(env, state):
        actions = scripted.ssd_greedy_eater(env, state)
        actions[:, 0] = scripted.cleanup_cleaner(env, state)[:, 0]
        return actions

    env = asfed.make_vec_env("cleanup", 32, seed=3)
    nobody = np.sum(episode_rewards(env, scripted.ssd_greedy_eater), axis=(0, 2))
    one = np.sum(episode_rewards(env, one_cleans), axis=(0, 2))
    assert nobody.max() == 0.0  # waste starts above the threshold: no apple ever grows
    assert one.mean() > nobody.mean() + 20.0


def test_cleanup_clean_removes_first_waste_on_each_beam_line() -> None:
    env = asfed.make_vec_env("cleanup", 1, seed=0, num_agents=2)
    env.reset()
    s = env.get_state()
    # River is columns 0-3. Agent 0 at (5, 4) facing left: its beam lines are rows 4, 5, 6.
    # Rows 0-2 and 8-10 stay dirty so the density stays >= 0.4 and no new waste spawns.
    river = {int(c): k for k, c in enumerate(env.river_cells)}
    rows = np.array([int(c) // env.width for c in env.river_cells])
    s.waste[0] = (rows <= 2) | (rows >= 8)
    for row, col in [(4, 3), (4, 1), (5, 2), (6, 0)]:
        s.waste[0, river[row * env.width + col]] = True
    s.pos[0] = np.array([[5, 4], [0, 10]])
    s.facing[0] = np.array([2, 0])
    env.set_state(s)
    stay, clean = env.action_names.index("stay"), env.action_names.index("clean")
    env.step(np.array([[clean, stay]]))
    dirty = env.river_cells[env.state.waste[0]]
    left = {(int(c) // env.width, int(c) % env.width) for c in dirty}
    assert {cell for cell in left if 3 <= cell[0] <= 7} == {(4, 1)}  # (4, 3) shielded (4, 1)
    assert len(left) == 24 + 1  # nothing else cleaned, nothing spawned


# ---- harvest ------------------------------------------------------------------------------


def test_harvest_regrowth_frequencies() -> None:
    """Empty cells regrow at [0, 0.005, 0.02, 0.05][min(k, 3)], k = apples within radius 2."""
    b = 3000
    env = asfed.make_vec_env("harvest", b, seed=9, num_agents=2)
    env.reset()
    s = env.get_state()
    rng = np.random.default_rng(0)
    density = rng.uniform(0.02, 0.5, (b, 1))
    s.apples = rng.random(s.apples.shape) < density
    env.set_state(s)  # agents stand on spawn points, which are not apple cells
    before = s.apples.copy()
    env.step(np.full((b, 2), env.action_names.index("stay")))
    grown = env.state.apples & ~before

    # Neighbour counts computed here from coordinates, independently of the env's matrix.
    rows, cols = np.divmod(env.apple_cells, env.width)
    d2 = (rows[:, None] - rows[None]) ** 2 + (cols[:, None] - cols[None]) ** 2
    near = (d2 <= 4) & (d2 > 0)
    k = np.minimum((before[:, None, :] & near[None]).sum(-1), 3)
    for level, p in enumerate(REGROWTH):
        trials = ~before & (k == level)
        n, hits = int(trials.sum()), int(grown[trials].sum())
        assert n > 2000, f"too few trials for k={level}: {n}"
        if p == 0:
            assert hits == 0
        else:
            ci = binomtest(hits, n).proportion_ci(confidence_level=0.999)
            assert ci.low <= p <= ci.high, (level, hits / n, p)


# ---- navigation ---------------------------------------------------------------------------


def test_navigation_collision_costs_both_agents_one() -> None:
    env = asfed.make_vec_env("navigation", 1, seed=2)
    env.reset()
    s = env.get_state()
    s.pos[0] = np.array([[2, 1], [2, 3], [0, 0]])
    s.landmarks[0] = np.array([[4, 4], [4, 0], [0, 4]])
    env.set_state(s)
    right, left, stay = 3, 2, 4
    _, r, *_ = env.step(np.array([[right, left, stay]]))
    slot_of = env.private_params["slot_of"]
    pos = np.array([[2, 2], [2, 2], [0, 0]])
    dist = np.abs(pos - s.landmarks[0][slot_of]).sum(1) / 8.0
    np.testing.assert_allclose(r[0], -dist - np.array([1.0, 1.0, 0.0]))


def test_navigation_reward_uses_the_private_landmark() -> None:
    env = asfed.make_vec_env("navigation", 32, seed=5, num_agents=4)
    slot_of = env.private_params["slot_of"]
    env.reset()
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.integers(0, 5, (32, 4))
        _, r, *_ = env.step(a)
        s = env.state
        own = s.landmarks[:, slot_of]  # [B, N, 2]
        dist = np.abs(s.pos - own).sum(-1) / 8.0
        same = (s.pos[:, :, None] == s.pos[:, None]).all(-1).sum(-1) - 1
        np.testing.assert_allclose(r, -dist - same)


# ---- predation ----------------------------------------------------------------------------


def _predation_at(n: int, x, prey: float = 15.0):
    env = asfed.make_vec_env("predation", 1, seed=0, num_agents=n)
    env.reset()
    s = env.get_state()
    s.x[0] = np.array(x, float)
    s.prey[0] = prey
    s.holding[0] = np.abs(s.x[0] - prey) <= 1.0
    s.done[0] = s.holding[0].all()
    env.set_state(s)
    return env


@pytest.mark.parametrize(
    ("pursuers", "expected"),
    [
        ([1, 1, 1, 1], [-1, -1, -1, -1]),
        ([0, 0, 0, 0], [-3, -3, -3, -3]),
        ([1, 0, 1, 0], [-4, 0, -4, 0]),
        ([0, 0, 0, 1], [0, 0, 0, -4]),
    ],
)
def test_predation_per_step_table(pursuers, expected) -> None:
    env = _predation_at(4, [5.0, 25.0, 8.0, 22.0])
    actions = scripted.predation_profile(env, env.state, np.array(pursuers, bool))
    _, r, term, *_ = env.step(actions)
    np.testing.assert_array_equal(r[0], expected)
    assert not term[0]


def test_predation_holders_count_as_pursuers_and_get_zero() -> None:
    env = _predation_at(3, [15.5, 5.0, 25.0])  # agent 0 already holds
    actions = scripted.predation_profile(env, env.state, np.array([False, False, False]))
    _, r, *_ = env.step(actions)
    np.testing.assert_array_equal(r[0], [0, 0, 0])  # mixed: defectors 0, holder 0
    actions = scripted.predation_profile(env, env.state, np.array([False, True, True]))
    _, r, *_ = env.step(actions)
    np.testing.assert_array_equal(r[0], [0, -1, -1])  # all pursue (holder included)


def test_predation_toward_away_moves_relative_to_the_prey() -> None:
    env = asfed.make_vec_env("predation", 1, seed=0, num_agents=3, action_frame="toward-away")
    assert env.action_names == ("away", "toward")
    env.reset()
    s = env.get_state()
    s.x[0], s.prey[0] = np.array([5.0, 25.0, 0.0]), 15.0
    s.holding[0], s.done[0] = False, False
    env.set_state(s)
    _, r, *_ = env.step(np.array([[1, 1, 0]]))  # the left one and the right one pursue
    np.testing.assert_array_equal(env.state.x[0], [6.0, 24.0, 0.0])  # away from 15 at the wall
    np.testing.assert_array_equal(r[0], [-4, -4, 0])


def test_predation_always_toward_is_left_right_all_pursue_step_for_step() -> None:
    """The frames share every draw: the same seed's episodes under "always toward" and under
    left-right's scripted all-pursue are the same episodes."""
    lr = asfed.make_vec_env("predation", 256, seed=3, num_agents=4)
    ta = asfed.make_vec_env("predation", 256, seed=3, num_agents=4, action_frame="toward-away")
    pursue = episode_rewards(lr, lambda e, s: scripted.predation_profile(e, s, np.ones(4, bool)))
    toward = episode_rewards(ta, lambda e, s: np.ones((e.num_envs, e.num_agents), np.int64))
    assert len(pursue) == len(toward)
    for a, b in zip(pursue, toward, strict=True):
        np.testing.assert_array_equal(a, b)
    assert np.sum(pursue) < 0


def test_predation_rejects_an_unknown_action_frame() -> None:
    with pytest.raises(AsfedError, match="accepted: left-right, toward-away"):
        asfed.make_vec_env("predation", 1, action_frame="up-down")


def test_predation_episode_ends_when_all_hold() -> None:
    env = _predation_at(3, [13.5, 16.8, 14.0])  # agent 2 holds; the others are 1.5 and 1.8 away
    actions = scripted.predation_profile(env, env.state, np.ones(3, bool))
    _, _, term, trunc, _ = env.step(actions)
    assert term[0] and not trunc[0]
    assert env.state.t == 1
    assert env.state.holding[0].all()


def test_predation_truncates_at_horizon_when_nobody_catches() -> None:
    env = asfed.make_vec_env("predation", 64, seed=0)
    steps = episode_rewards(env, lambda e, s: scripted.predation_profile(e, s, np.zeros(8, bool)))
    assert len(steps) == env.horizon
