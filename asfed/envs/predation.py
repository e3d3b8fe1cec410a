"""Cooperative predation: pursue the prey together, or defect and let others pay.

A continuous line [0, 30] with one static prey and N predators (2-100, default 8; the paper goes
up to 30); the prey and the predators start uniformly at random in [0, 30]. Each step a predator
moves 1 left or right (clipped to the line): moving toward the prey is *pursuing*, away is
*defecting*. A predator within 1.0 of the prey has caught up and *holds*: it stops moving, counts
as a pursuer, and gets 0 from then on (a predator that starts within 1.0 holds from the start).
The episode terminates when all hold, else it is truncated at the horizon (30).

Per-step reward of each predator still hunting, judged over all predators (holders pursue):
all pursue: -1; none pursue: -3; mixed: pursuers -4, defectors 0. No private parameters: every
predator has the same table (the dilemma is in the table, not in hidden preferences).

Scripted team returns (mean +- std over 4096 episodes, seed 0;
`python benchmarks/scripted_returns.py`):

    N    all-pursue       all-defect        one-pursuer     uniformly random
    2    -19.2 +- 10.5    -156.8 +- 60.3    -36.6 +- 28.2   -81.0 +- 47.3
    8    -75.7 +- 26.0    -415.7 +- 355.7   -38.3 +- 28.1   -370.3 +- 68.6
    20   -189.6 +- 53.9   -472.9 +- 792.2   -38.3 +- 28.1   -947.2 +- 102.9
    30   -284.1 +- 76.1   -371.8 +- 930.4   -38.3 +- 28.1   -1421.1 +- 127.9

All-defect spreads widely at large N: when a predator starts within 1.0 of the prey it holds and
counts as a pursuer, so every defector is in the "mixed" case and pays 0.

Observation (float32, the same for every agent), in order: (x_k - x_prey) / 30 for each predator
[N] (the paper's state), holding flags [N], x_prey / 30 [1] (where the walls are), t / horizon [1].

Actions: left, right (move -1, +1), the paper's section 5 ("A = {-1, +1} represents left and
right movements"). With `action_frame="toward-away"`: away, toward (move 1 away from or toward the
prey), as the paper words the 2-agent task of Fig. 7 ("moving towards the target" and "moving
away from the target"). The frames differ in what a fixed action means: a left-right policy that
ignores the state always goes one way (it pursues only when the prey lies on that side), a
toward-away one always pursues or always defects. `reward_features` = one-hot of the agent's case
[all pursue, none pursue, mixed pursuer, mixed defector, holding], public (one feature candidate,
`{}`); `reward_weights[i]` = [-1, -3, -4, 0, 0] for every agent, public too.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from asfed.envs.base import EnvState, VecEnv
from asfed.envs.registry import ENVS
from asfed.envs.rng import uniform
from asfed.errors import AsfedError, accepted

LENGTH = 30.0
CATCH = 1.0
TABLE = np.array([-1.0, -3.0, -4.0, 0.0, 0.0])
S_START = 0
# action frame -> action names (index 1 moves right / toward the prey)
ACTION_FRAMES = {"left-right": ("left", "right"), "toward-away": ("away", "toward")}


@dataclasses.dataclass
class PredationState(EnvState):
    """x float `[B, N]` predator positions, prey float `[B]`, holding bool `[B, N]`."""

    x: np.ndarray
    prey: np.ndarray
    holding: np.ndarray


@ENVS.register("predation")
class Predation(VecEnv):
    """Cooperative predation core: B copies stepped at once. See the module docstring."""

    name = "predation"
    agents_range = (2, 100)
    default_agents = 8
    default_horizon = 30
    obs_bounds = (-1.0, 1.0)
    action_names = ACTION_FRAMES["left-right"]
    feature_names = ("all_pursue", "none_pursue", "mixed_pursuer", "mixed_defector", "holding")

    def __init__(
        self,
        num_envs: int = 1,
        seed: int | None = None,
        num_agents: int | None = None,
        horizon: int | None = None,
        action_frame: str = "left-right",
    ) -> None:
        if action_frame not in ACTION_FRAMES:
            raise AsfedError(
                f"predation action_frame={action_frame!r} is unknown; "
                f"accepted: {accepted(ACTION_FRAMES)}"
            )
        self.action_frame = action_frame
        self.action_names = ACTION_FRAMES[action_frame]
        super().__init__(num_envs, seed, num_agents, horizon)

    @property
    def obs_dim(self) -> int:
        return 2 * self.num_agents + 2

    def _weights(self, private: dict[str, Any]) -> np.ndarray:
        return np.broadcast_to(TABLE, (self.num_agents, len(TABLE))).copy()

    def _draw_private(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {}

    def _initial_state(self, keys: np.ndarray) -> PredationState:
        u = uniform(keys, S_START, self.num_agents + 1) * LENGTH
        x, prey = u[:, 1:], u[:, 0]
        holding = np.abs(x - prey[:, None]) <= CATCH
        return PredationState(t=0, keys=keys, done=holding.all(1), x=x, prey=prey, holding=holding)

    def agent_positions(self, state: PredationState) -> np.ndarray:
        return state.x

    def toward_action(self, state: PredationState) -> np.ndarray:
        """The action that moves each predator toward the prey, int `[B, N]`: right (1) where
        the prey lies right of it in the left-right frame, always 1 in the toward-away frame."""
        if self.action_frame == "toward-away":
            return np.ones_like(state.x, dtype=np.int64)
        return (state.prey[:, None] > state.x).astype(np.int64)

    def pursuing(self, state: PredationState, actions: np.ndarray) -> np.ndarray:
        """Which predators pursue under `actions` `[B, N]` (holders always do). bool `[B, N]`."""
        return state.holding | (actions == self.toward_action(state))

    def _transition(
        self, state: PredationState, actions: np.ndarray, private: dict[str, Any]
    ) -> tuple[PredationState, np.ndarray]:
        s = state.copy()
        pursue = self.pursuing(state, actions)
        hunting = ~state.holding
        all_p = pursue.all(1, keepdims=True)
        none_p = ~pursue.any(1, keepdims=True)
        mixed = ~all_p & ~none_p
        feats = np.stack(
            [
                hunting & all_p,
                hunting & none_p,
                hunting & mixed & pursue,
                hunting & mixed & ~pursue,
                state.holding,
            ],
            axis=-1,
        ).astype(np.float64)
        step = np.where(actions == 1, 1.0, -1.0)
        if self.action_frame == "toward-away":  # +1 toward the prey, which is where the sign points
            step = step * np.where(state.prey[:, None] > state.x, 1.0, -1.0)
        s.x = np.where(hunting, np.clip(s.x + step, 0.0, LENGTH), s.x)
        s.holding = state.holding | (np.abs(s.x - s.prey[:, None]) <= CATCH)
        s.done = s.holding.all(1)
        s.t += 1
        return s, feats

    def _observe(self, state: PredationState) -> np.ndarray:
        n = self.num_agents
        out = np.empty((self.num_envs, self.obs_dim), np.float32)
        out[:, :n] = (state.x - state.prey[:, None]) / LENGTH
        out[:, n : 2 * n] = state.holding
        out[:, -2] = state.prey / LENGTH
        out[:, -1] = state.t / self.horizon
        return out
