"""PettingZoo `ParallelEnv` over one copy of a batched core.

The adapter adds nothing to the rules: it converts dicts keyed by `agent_i` to and from the core's
`[1, N]` arrays, so the adapter and copy 0 of any batched core from the same seed produce the same
observations, rewards and terminations. All agents leave `agents` together when the episode ends.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from asfed.envs.base import VecEnv
from asfed.errors import AsfedError, accepted


class AsfedParallelEnv(ParallelEnv):
    """One copy of an asfed environment behind PettingZoo's parallel API."""

    def __init__(self, core: VecEnv) -> None:
        if core.num_envs != 1:
            raise AsfedError(f"the PettingZoo adapter wraps one copy, got num_envs={core.num_envs}")
        self.core = core
        self.metadata = {"name": core.name, "render_modes": [], "is_parallelizable": True}
        self.render_mode = None
        self.possible_agents = [f"agent_{i}" for i in range(core.num_agents)]
        self.agents: list[str] = []
        self._index = {a: i for i, a in enumerate(self.possible_agents)}
        self._obs: np.ndarray | None = None

    @functools.cache  # noqa: B019 (one space object per agent, as PettingZoo asks)
    def observation_space(self, agent: str) -> spaces.Box:
        lo, hi = self.core.obs_bounds
        return spaces.Box(lo, hi, shape=(self.core.obs_dim,), dtype=np.float32)

    @functools.cache  # noqa: B019
    def action_space(self, agent: str) -> spaces.Discrete:
        return spaces.Discrete(self.core.num_actions)

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
        obs = self.core.reset(seed=seed)
        self.agents = list(self.possible_agents)
        self._obs = obs[0, 0]
        return self._split(obs), {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        if not self.agents:
            raise AsfedError(f"{self.core.name}: the episode is over; call reset()")
        unknown = set(actions) - set(self.agents)
        if unknown:
            raise AsfedError(
                f"{self.core.name}: actions for unknown agents {sorted(unknown)}; "
                f"accepted: {accepted(self.agents)}"
            )
        missing = [a for a in self.agents if a not in actions]
        if missing:
            raise AsfedError(f"{self.core.name}: no action for {missing}; every live agent acts")
        joint = np.array([[actions[a] for a in self.possible_agents]])
        obs, rew, term, trunc, info = self.core.step(joint)
        self._obs = obs[0, 0]
        agents = self.agents
        out = (
            self._split(obs),
            {a: float(rew[0, self._index[a]]) for a in agents},
            {a: bool(term[0]) for a in agents},
            {a: bool(trunc[0]) for a in agents},
            {a: dict(info) for a in agents},
        )
        if term[0] or trunc[0]:
            self.agents = []
        return out

    def state(self) -> np.ndarray:
        """The global state (every agent's observation is this same vector)."""
        if self._obs is None:
            raise AsfedError(f"{self.core.name}: no state before reset()")
        return self._obs.copy()

    def _split(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        return {a: obs[0, i].copy() for i, a in enumerate(self.agents)}
