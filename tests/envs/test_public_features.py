"""Reward features are public: computable from a candidate of the private parameters alone."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import asfed
from asfed.envs import names
from asfed.errors import AsfedError

# Every env, with the SSD zap on (so all three features occur) and with private apple values.
CASES = [(name, {}) for name in names()] + [
    (name, opts)
    for name in ("cleanup", "harvest")
    for opts in ({"zap": True}, {"zap": True, "private_weights": True})
]


def _random_steps(env, steps: int, seed: int):
    """Yield (state before, joint action) along a random rollout, stepping after each yield."""
    env.reset()
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        if env.state.done.all() or env.state.t >= env.horizon:
            return
        a = rng.integers(0, env.num_actions, (env.num_envs, env.num_agents))
        yield env.get_state(), a


class _Unreadable(dict):
    """Stands in for `private_params`: any read fails the test."""

    def __getitem__(self, key):
        raise AssertionError(f"private_params[{key!r}] was read")

    def __iter__(self):
        raise AssertionError("private_params was read")

    def __contains__(self, key):
        raise AssertionError("private_params was read")


@pytest.mark.parametrize(("name", "opts"), CASES)
def test_true_parameters_give_the_default_features_and_the_step_reward(
    name: str, opts: dict
) -> None:
    env = asfed.make_vec_env(name, 6, seed=4, **opts)
    for state, a in _random_steps(env, 30, seed=5):
        feats = env.reward_features(state, a)
        np.testing.assert_array_equal(env.reward_features(state, a, env.private_params), feats)
        cand = env.candidate_reward_features(state, a)
        c = len(env.feature_candidates())
        assert cand.shape == (c, 6, env.num_agents, len(env.feature_names))
        assert cand.dtype == np.float64
        _, rewards, *_ = env.step(a)
        np.testing.assert_allclose(np.einsum("bnd,nd->bn", feats, env.reward_weights), rewards)


@pytest.mark.parametrize("name", ["navigation", "predation", "cleanup", "harvest"])
def test_features_depending_on_nothing_private_have_one_empty_candidate(name: str) -> None:
    env = asfed.make_vec_env(name, 4, seed=0)
    assert env.feature_candidates() == [{}]
    for state, a in _random_steps(env, 10, seed=1):
        feats = env.reward_features(state, a)
        true_params, env.private_params = env.private_params, _Unreadable()
        np.testing.assert_array_equal(env.reward_features(state, a, {}), feats)
        np.testing.assert_array_equal(env.candidate_reward_features(state, a)[0], feats)
        env.private_params = true_params
        env.step(a)


def test_exchange_candidates_are_the_permutations_in_itertools_order() -> None:
    env = asfed.make_vec_env("exchange", 1, seed=0)
    got = [tuple(c["box_of"]) for c in env.feature_candidates()]
    assert got == list(itertools.permutations(range(3)))


def test_exchange_features_under_a_candidate_never_read_the_private_parameters() -> None:
    env = asfed.make_vec_env("exchange", 16, seed=0)
    true_params = env.private_params
    other = {"box_of": np.roll(true_params["box_of"], 1)}  # a different permutation
    for state, a in _random_steps(env, 300, seed=1):
        expected = [env.reward_features(state, a, c) for c in env.feature_candidates()]
        all_at_once = env.candidate_reward_features(state, a)
        for params in (other, _Unreadable()):
            env.private_params = params
            for c, cand in enumerate(env.feature_candidates()):
                np.testing.assert_array_equal(env.reward_features(state, a, cand), expected[c])
            np.testing.assert_array_equal(env.candidate_reward_features(state, a), all_at_once)
        env.private_params = true_params
        env.step(a)


def test_exchange_only_the_true_candidate_explains_the_rewards() -> None:
    env = asfed.make_vec_env("exchange", 16, seed=0)
    cands = env.feature_candidates()
    true = next(
        c for c, p in enumerate(cands) if np.array_equal(p["box_of"], env.private_params["box_of"])
    )
    weights = env.candidate_reward_weights()
    assert weights.shape == (6, 3, 5)
    np.testing.assert_array_equal(weights[true], env.reward_weights)
    explains = np.ones(len(cands), bool)
    features_differ = np.zeros(len(cands), bool)
    for state, a in _random_steps(env, 300, seed=2):
        feats = env.candidate_reward_features(state, a)
        _, rewards, *_ = env.step(a)
        predicted = np.einsum("cbnd,cnd->cbn", feats, weights)
        np.testing.assert_allclose(predicted[true], rewards)
        explains &= np.isclose(predicted, rewards[None]).all(axis=(1, 2))
        features_differ |= (feats != feats[true]).any(axis=(1, 2, 3))
    assert explains[true] and explains.sum() == 1
    assert features_differ.sum() == len(cands) - 1  # the features themselves test hypotheses


def test_exchange_weights_per_candidate_are_the_reward_types_of_its_owners() -> None:
    env = asfed.make_vec_env("exchange", 1, seed=0)
    types = env.reward_type_candidates()
    np.testing.assert_array_equal(types[:, :2], np.tile([-0.01, -5.0], (3, 1)))
    np.testing.assert_array_equal(types[:, 2:], 10.0 * np.eye(3))
    for cand, w in zip(env.feature_candidates(), env.candidate_reward_weights(), strict=True):
        np.testing.assert_array_equal(w, types[cand["box_of"]])


@pytest.mark.parametrize("n", [2, 6])
def test_navigation_reward_types_are_the_landmark_slots(n: int) -> None:
    env = asfed.make_vec_env("navigation", 1, seed=3, num_agents=n)
    types = env.reward_type_candidates()
    assert types.shape == (n, n + 1)
    np.testing.assert_array_equal(types[:, :n], np.eye(n))
    np.testing.assert_array_equal(types[:, n], -1.0)
    np.testing.assert_array_equal(env.reward_weights, types[env.private_params["slot_of"]])
    with pytest.raises(AsfedError, match="slot_of"):
        env.candidate_reward_weights()


def test_public_weights_have_one_candidate() -> None:
    pred = asfed.make_vec_env("predation", 1, seed=0, num_agents=4)
    np.testing.assert_array_equal(pred.candidate_reward_weights(), pred.reward_weights[None])
    np.testing.assert_array_equal(pred.reward_type_candidates(), [[-1.0, -3.0, -4.0, 0.0, 0.0]])
    for name in ("cleanup", "harvest"):
        env = asfed.make_vec_env(name, 1, seed=0, num_agents=3)
        np.testing.assert_array_equal(env.candidate_reward_weights(), env.reward_weights[None])
        np.testing.assert_array_equal(env.reward_type_candidates(), [[1.0, -1.0, -50.0]])


@pytest.mark.parametrize("name", ["cleanup", "harvest"])
def test_private_apple_values_are_typed_by_bins(name: str) -> None:
    """Feature hypotheses do not fix a continuous apple value; reward types are its three bins,
    and every agent's true value falls in the bin `reward_type_of` names."""
    env = asfed.make_vec_env(name, 1, seed=0, private_weights=True, num_agents=8)
    with pytest.raises(AsfedError, match="apple_value"):
        env.candidate_reward_weights()
    centres = env.reward_type_candidates()
    np.testing.assert_allclose(centres[:, 0], [2 / 3, 1.0, 4 / 3])
    np.testing.assert_allclose(centres[:, 1:], [[-1.0, -50.0]] * 3)
    for w in env.reward_weights:
        k = env.reward_type_of(w)
        assert abs(w[0] - centres[k, 0]) <= 1 / 6 + 1e-12


@pytest.mark.parametrize(
    ("private", "match"),
    [
        ({}, r"keys \['box_of'\]"),
        ({"slot_of": np.arange(3)}, r"keys \['box_of'\]"),
        ({"box_of": np.array([0, 0, 1])}, "not one of feature_candidates"),
        ({"box_of": np.arange(4)}, "not one of feature_candidates"),
        ([0, 1, 2], "must be a dict"),
    ],
)
def test_exchange_rejects_a_private_that_is_not_a_candidate(private, match: str) -> None:
    env = asfed.make_vec_env("exchange", 1, seed=0)
    env.reset()
    with pytest.raises(AsfedError, match=match):
        env.reward_features(env.get_state(), np.zeros((1, 3), np.int64), private)
