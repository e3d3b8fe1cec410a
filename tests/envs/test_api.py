"""PettingZoo API and seeding compliance, and the core/adapter lockstep, for every env."""

from __future__ import annotations

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test, parallel_seed_test

import asfed
from asfed.envs import ENVS, names

# Every env at both ends of its agent range.
CASES = sorted({(name, n) for name in names() for n in ENVS.get(name).agents_range})


def test_all_five_envs_are_registered() -> None:
    assert names() == ["cleanup", "exchange", "harvest", "navigation", "predation"]


@pytest.mark.parametrize(("name", "n"), CASES)
def test_parallel_api(name: str, n: int) -> None:
    parallel_api_test(asfed.make_env(name, num_agents=n), num_cycles=1000)


@pytest.mark.parametrize(("name", "n"), CASES)
def test_parallel_seed(name: str, n: int) -> None:
    parallel_seed_test(lambda: asfed.make_env(name, num_agents=n))


@pytest.mark.parametrize("options", [{"zap": True}, {"private_weights": True}])
@pytest.mark.parametrize("name", ["cleanup", "harvest"])
def test_parallel_api_with_options(name: str, options: dict) -> None:
    parallel_api_test(asfed.make_env(name, **options), num_cycles=1000)


@pytest.mark.parametrize("name", names())
def test_core_and_adapter_in_lockstep(name: str) -> None:
    """Copy 0 of a B = 8 core and the adapter, same seed and actions: identical outputs."""
    opts = {"zap": True} if name in ("cleanup", "harvest") else {}
    core = asfed.make_vec_env(name, 8, seed=11, **opts)
    env = asfed.make_env(name, **opts)
    rng = np.random.default_rng(0)
    obs_c = core.reset(seed=5)
    obs_a, _ = env.reset(seed=5)
    for i, agent in enumerate(env.possible_agents):
        np.testing.assert_array_equal(obs_a[agent], obs_c[0, i])
    steps = 0
    while env.agents:
        actions = rng.integers(0, core.num_actions, (8, core.num_agents))
        obs_c, rew_c, term_c, trunc_c, _ = core.step(actions)
        obs_a, rew_a, term_a, trunc_a, _ = env.step(
            {a: int(actions[0, i]) for i, a in enumerate(env.possible_agents)}
        )
        for i, a in enumerate(env.possible_agents):
            np.testing.assert_array_equal(obs_a[a], obs_c[0, i])
            assert rew_a[a] == rew_c[0, i]
            assert term_a[a] == bool(term_c[0])
            assert trunc_a[a] == bool(trunc_c[0])
        steps += 1
    assert steps == core.state.t  # the adapter ended exactly when copy 0 did
    assert term_c[0] or trunc_c[0]


@pytest.mark.parametrize("name", names())
def test_copies_do_not_depend_on_batch_size(name: str) -> None:
    """Copy b behaves the same in a batch of 3 and a batch of 8 (counter-based randomness)."""
    small, large = (asfed.make_vec_env(name, b, seed=3) for b in (3, 8))
    o_s, o_l = small.reset(), large.reset()
    rng = np.random.default_rng(1)
    for _ in range(min(small.horizon, 40)):
        if small.state.done.all() or large.state.done.all():
            break
        a = rng.integers(0, large.num_actions, (8, large.num_agents))
        o_s, r_s, *_ = small.step(a[:3])
        o_l, r_l, *_ = large.step(a)
        np.testing.assert_array_equal(o_s, o_l[:3])
        np.testing.assert_array_equal(r_s, r_l[:3])


@pytest.mark.parametrize("name", names())
def test_same_seed_same_numbers_and_other_seed_differs(name: str) -> None:
    def run(seed: int) -> np.ndarray:
        env = asfed.make_vec_env(name, 4, seed=seed)
        rng = np.random.default_rng(0)
        out = [env.reset().copy()]
        for _ in range(10):
            out.append(env.step(rng.integers(0, env.num_actions, (4, env.num_agents)))[0])
        return np.stack(out)

    np.testing.assert_array_equal(run(7), run(7))
    assert not np.array_equal(run(7), run(8))


@pytest.mark.parametrize("name", names())
def test_observations_fit_the_declared_space(name: str) -> None:
    env = asfed.make_vec_env(name, 16, seed=0)
    lo, hi = env.obs_bounds
    obs = env.reset()
    rng = np.random.default_rng(0)
    for _ in range(20):
        assert obs.shape == (16, env.num_agents, env.obs_dim)
        assert obs.dtype == np.float32
        assert obs.min() >= lo and obs.max() <= hi
        if env.state.done.all():
            break
        obs = env.step(rng.integers(0, env.num_actions, (16, env.num_agents)))[0]


@pytest.mark.parametrize("name", names())
def test_reward_features_are_pure_and_give_the_step_reward(name: str) -> None:
    env = asfed.make_vec_env(name, 8, seed=2)
    env.reset()
    rng = np.random.default_rng(3)
    for _ in range(15):
        if env.state.done.all():
            break
        before = env.get_state()
        a = rng.integers(0, env.num_actions, (8, env.num_agents))
        feats = env.reward_features(before, a)
        assert feats.shape == (8, env.num_agents, len(env.feature_names))
        again = env.reward_features(before, a)
        np.testing.assert_array_equal(feats, again)  # deterministic given the state
        _, rewards, *_ = env.step(a)
        np.testing.assert_allclose(np.einsum("bnd,nd->bn", feats, env.reward_weights), rewards)
