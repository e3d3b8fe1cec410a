"""Cooperative navigation: each agent must reach its own landmark without colliding.

A 5 x 5 grid, N agents (2-6, default 3) and N landmarks. At reset the landmarks take N distinct
random cells and the agents N distinct random cells (an agent may start on a landmark). The
observation lists the landmarks in slot order without owners; which slot is whose is each agent's
private reward parameter (`slot_of [N]`, a permutation drawn from the run's seed, fixed for the
run), so only an agent's own rewards tell it where it should go.

Actions: up, down, left, right, stay. Horizon 100. Agents may share a cell.

Reward of agent i per step, after moving: -(Manhattan distance to landmark slot_of[i]) / 8 (8 is
the grid's diameter) - 1 for each other agent on its cell (a collision costs both agents 1).

Observation (float32, the same for every agent), in order: per agent k: row one-hot [5], column
one-hot [5]; per landmark slot: row one-hot [5], column one-hot [5]; t / horizon [1].

`reward_features` = [-distance / 8 to landmark slot 0, ..., slot N-1, collisions]: public, they
depend on no private parameter (one feature candidate, `{}`). `reward_weights[i]` =
[one-hot(slot_of[i]), -1] is private, so an auditor tests hypotheses on the weights, not on the
features: `reward_type_candidates()` gives the K = N vectors [one-hot(k), -1], "agent i owns slot
k" (`candidate_reward_weights` is an error here: the candidates do not fix `slot_of`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from asfed.envs import grid
from asfed.envs.base import EnvState, VecEnv
from asfed.envs.registry import ENVS
from asfed.envs.rng import choose_distinct

SIZE = 5
DIAMETER = 2 * (SIZE - 1)
S_AGENTS, S_LANDMARKS = 0, 1


@dataclasses.dataclass
class NavigationState(EnvState):
    """pos int `[B, N, 2]`, landmarks int `[B, N, 2]` in slot order."""

    pos: np.ndarray
    landmarks: np.ndarray


@ENVS.register("navigation")
class Navigation(VecEnv):
    """Cooperative navigation core: B copies stepped at once. See the module docstring."""

    name = "navigation"
    agents_range = (2, 6)
    default_agents = 3
    default_horizon = 100
    action_names = (*grid.MOVE_NAMES, "stay")

    @property
    def feature_names(self) -> tuple[str, ...]:
        return (*(f"neg_distance_slot_{k}" for k in range(self.num_agents)), "collisions")

    @property
    def obs_dim(self) -> int:
        return 2 * self.num_agents * 2 * SIZE + 1

    def reward_type_candidates(self) -> np.ndarray:
        """`[N, N + 1]`: row k = [one-hot(k), -1], the weights of an agent that owns slot k."""
        return self._weights({"slot_of": np.arange(self.num_agents)})

    def _weights(self, private: dict[str, Any]) -> np.ndarray:
        n = self.num_agents
        w = np.zeros((n, n + 1))
        w[np.arange(n), private["slot_of"]] = 1.0
        w[:, n] = -1.0
        return w

    def _draw_private(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {"slot_of": rng.permutation(self.num_agents)}

    def _initial_state(self, keys: np.ndarray) -> NavigationState:
        n = self.num_agents
        agents = choose_distinct(keys, S_AGENTS, SIZE * SIZE, n)
        marks = choose_distinct(keys, S_LANDMARKS, SIZE * SIZE, n)
        return NavigationState(
            t=0,
            keys=keys,
            done=np.zeros(self.num_envs, bool),
            pos=np.stack(np.divmod(agents, SIZE), axis=-1),
            landmarks=np.stack(np.divmod(marks, SIZE), axis=-1),
        )

    def _transition(
        self, state: NavigationState, actions: np.ndarray, private: dict[str, Any]
    ) -> tuple[NavigationState, np.ndarray]:
        s = state.copy()
        n = self.num_agents
        s.pos = grid.move(s.pos, np.where(actions < 4, actions, -1), SIZE, SIZE)
        feats = np.empty((self.num_envs, n, n + 1))
        feats[..., :n] = (
            -grid.manhattan(s.pos[:, :, None, :], s.landmarks[:, None, :, :]) / DIAMETER
        )
        same = (s.pos[:, :, None, :] == s.pos[:, None, :, :]).all(-1)
        feats[..., n] = same.sum(-1) - 1
        s.t += 1
        return s, feats

    def _observe(self, state: NavigationState) -> np.ndarray:
        n, stride = self.num_agents, 2 * SIZE
        out = np.zeros((self.num_envs, self.obs_dim), np.float32)
        grid.write_positions(out, 0, state.pos, SIZE, SIZE, stride)
        grid.write_positions(out, n * stride, state.landmarks, SIZE, SIZE, stride)
        out[:, -1] = state.t / self.horizon
        return out
