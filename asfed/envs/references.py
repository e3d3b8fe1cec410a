"""Reference team returns: where a learner's curve sits between chance and the best we know.

For an env and its options (agents, horizon, ...), three kinds of reference, each the mean and
standard deviation of the team return per episode of a scripted policy (`asfed.envs.scripted`):

    random    a uniformly random policy (every env)
    optimum   the best scripted policy: exchange's cooperative oracle (+6), navigation's oracle
              (each walks to its own landmark), cleanup's "one cleans, the rest eat", predation's
              better of all-pursue and one-pursuer (one-pursuer from N = 8 up); harvest has none
              (no scripted policy harvests sustainably)
    defect    everyone selfish: exchange all-defect (-9), predation all-defect, cleanup "nobody
              cleans" (greedy eaters), harvest all greedy

Optima read private parameters (they are oracles for ground truth, never learners). Returns are
computed on a fixed seed, so the same options always give the same numbers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from asfed.envs import make_vec_env, scripted
from asfed.envs.base import VecEnv

Policy = Callable[[VecEnv, Any], np.ndarray]
KINDS = ("random", "optimum", "defect")


@dataclasses.dataclass(frozen=True)
class Reference:
    """One reference line: `kind` (random, optimum, defect), what policy `label` names, and the
    team return per episode (mean and standard deviation over episodes)."""

    kind: str
    label: str
    mean: float
    std: float


def _random(seed: int) -> Policy:
    rng = np.random.default_rng(seed)
    return lambda env, state: rng.integers(0, env.num_actions, (env.num_envs, env.num_agents))


def _one_cleans(env: VecEnv, state: Any) -> np.ndarray:
    actions = scripted.ssd_greedy_eater(env, state)
    actions[:, 0] = scripted.cleanup_cleaner(env, state)[:, 0]
    return actions


def _profile(mask: Callable[[int], np.ndarray]) -> Policy:
    return lambda env, state: scripted.predation_profile(env, state, mask(env.num_agents))


# env -> kind -> candidates (label, policy); the best candidate of a kind is its reference.
SCRIPTED: dict[str, dict[str, list[tuple[str, Policy]]]] = {
    "exchange": {
        "optimum": [("cooperative oracle", scripted.exchange_cooperative)],
        "defect": [("all-defect (nobody opens)", scripted.stay_still)],
    },
    "navigation": {"optimum": [("oracle (each to its landmark)", scripted.navigation_oracle)]},
    "cleanup": {
        "optimum": [("one cleans, the rest eat", _one_cleans)],
        "defect": [("nobody cleans (greedy eaters)", scripted.ssd_greedy_eater)],
    },
    "harvest": {"defect": [("all greedy eaters", scripted.ssd_greedy_eater)]},
    "predation": {
        "optimum": [
            ("all pursue", _profile(lambda n: np.ones(n, bool))),
            ("one pursues", _profile(lambda n: np.arange(n) == 0)),
        ],
        "defect": [("all defect", _profile(lambda n: np.zeros(n, bool)))],
    },
}


def _team_return(
    env_name: str, policy: Policy, episodes: int, seed: int, options: dict
) -> tuple[float, float]:
    env = make_vec_env(env_name, episodes, seed=seed, **options)
    totals = scripted.rollout(env, policy).sum(1)  # [B]
    return float(totals.mean()), float(totals.std())


def random_return(
    env: str, options: dict[str, Any] | None = None, episodes: int = 512, seed: int = 0
) -> Reference:
    """A uniformly random policy's team return under `options` (the first of the references)."""
    mean, std = _team_return(env, _random(seed), episodes, seed, dict(options or {}))
    return Reference("random", "uniformly random", mean, std)


def reference_returns(
    env: str, options: dict[str, Any] | None = None, episodes: int = 512, seed: int = 0
) -> dict[str, Reference]:
    """The references of `env` under `options` (make_vec_env's: num_agents, horizon, zap, ...),
    by kind; a kind the env has no scripted policy for is absent."""
    options = dict(options or {})
    out = {"random": random_return(env, options, episodes, seed)}
    for kind, candidates in SCRIPTED.get(env, {}).items():
        scored = [
            Reference(kind, label, *_team_return(env, policy, episodes, seed, options))
            for label, policy in candidates
        ]
        out[kind] = max(scored, key=lambda r: r.mean)
    return out
