"""Bad input raises one clear `AsfedError` naming the bad value and what is accepted."""

from __future__ import annotations

import numpy as np
import pytest

import asfed
from asfed.errors import AsfedError


def test_unknown_env_name_lists_the_accepted_ones() -> None:
    with pytest.raises(AsfedError, match=r"unknown env 'clenup'; accepted: cleanup, exchange"):
        asfed.make_vec_env("clenup", 4)
    with pytest.raises(AsfedError, match="'clenup'"):
        asfed.make_env("clenup")


@pytest.mark.parametrize(
    ("name", "n", "accepted"),
    [
        ("cleanup", 9, "2..8"),
        ("harvest", 1, "2..8"),
        ("navigation", 7, "2..6"),
        ("exchange", 4, "3..3"),
        ("predation", 101, "2..100"),
        ("predation", 0, "2..100"),
    ],
)
def test_agent_count_outside_range(name: str, n: int, accepted: str) -> None:
    with pytest.raises(
        AsfedError, match=rf"num_agents={n} is outside {name}'s range; accepted: {accepted}"
    ):
        asfed.make_env(name, num_agents=n)


def test_unknown_option_lists_the_accepted_ones() -> None:
    with pytest.raises(
        AsfedError,
        match=r"unknown option 'zap' for env 'navigation'; accepted: horizon, num_agents",
    ):
        asfed.make_vec_env("navigation", 2, zap=True)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_horizon_and_batch(bad) -> None:
    with pytest.raises(AsfedError, match="horizon"):
        asfed.make_vec_env("exchange", 2, horizon=bad)
    with pytest.raises(AsfedError, match="num_envs"):
        asfed.make_vec_env("exchange", bad)


def test_wrong_action_shape() -> None:
    env = asfed.make_vec_env("navigation", 4, seed=0)
    env.reset()
    with pytest.raises(
        AsfedError, match=r"shape \(num_envs, num_agents\) = \(4, 3\), got \(4, 2\)"
    ):
        env.step(np.zeros((4, 2), int))


def test_out_of_range_action_names_it_and_the_menu() -> None:
    env = asfed.make_vec_env("exchange", 2, seed=0)
    env.reset()
    with pytest.raises(
        AsfedError, match=r"action 6 is out of range; accepted: 0..5 \(0=up, .*4=open, 5=stay\)"
    ):
        env.step(np.array([[0, 6, 1], [0, 0, 0]]))
    with pytest.raises(AsfedError, match="action -1 is out of range"):
        env.step(np.array([[0, -1, 1], [0, 0, 0]]))


def test_float_actions_are_rejected() -> None:
    env = asfed.make_vec_env("predation", 1, seed=0)
    env.reset()
    with pytest.raises(AsfedError, match="actions must be integers, got dtype float64"):
        env.step(np.zeros((1, 8)))


def test_bad_action_leaves_the_state_untouched() -> None:
    env = asfed.make_vec_env("harvest", 2, seed=0)
    env.reset()
    before = env.get_state()
    with pytest.raises(AsfedError):
        env.step(np.full((2, 4), 9))
    after = env.get_state()
    assert after.t == before.t
    np.testing.assert_array_equal(after.pos, before.pos)


def test_stepping_before_reset_or_after_the_end() -> None:
    env = asfed.make_vec_env("predation", 1, seed=0, horizon=2)
    with pytest.raises(AsfedError, match="before reset"):
        env.step(np.zeros((1, 8), int))
    env.reset()
    env.step(np.zeros((1, 8), int))
    env.step(np.zeros((1, 8), int))
    with pytest.raises(AsfedError, match="episode is over"):
        env.step(np.zeros((1, 8), int))


def test_adapter_rejects_missing_and_unknown_agents() -> None:
    env = asfed.make_env("navigation", num_agents=2)
    env.reset(seed=0)
    with pytest.raises(AsfedError, match=r"no action for \['agent_1'\]"):
        env.step({"agent_0": 0})
    with pytest.raises(
        AsfedError, match=r"unknown agents \['agent_7'\]; accepted: agent_0, agent_1"
    ):
        env.step({"agent_0": 0, "agent_1": 0, "agent_7": 1})
    with pytest.raises(AsfedError, match="action 5 is out of range"):
        env.step({"agent_0": 0, "agent_1": 5})
