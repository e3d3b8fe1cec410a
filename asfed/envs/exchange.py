"""Exchange: agents must open each other's boxes, at a cost, so that the owners can eat.

A 5 x 5 grid with 3 agents and 3 boxes (the paper's setting; the agent count is fixed). At reset
the 3 agents and 3 boxes take 6 distinct random cells. Box slot k holds the food of one agent;
which slot is whose (`box_of [N]`, a permutation drawn from the run's seed, fixed for the run) is
each agent's private reward parameter: the observation lists boxes in slot order without owners.

Actions: up, down, left, right, open, stay. Horizon 300; the episode always runs to the horizon.

Order within a step: moves (agents may share cells and stand on boxes); then `open`: an agent on
or next to (Manhattan distance <= 1) a closed box that is not its own opens the lowest such slot
and pays 5 (opening one's own box, or with no box in reach, does nothing and costs nothing; if
several agents target one box, the lowest-indexed opens it and the others do nothing); then an
owner standing on its open box eats (+10) and the box is emptied. Every agent pays 0.01 every step.

So all-defect gives team return 3 * 300 * -0.01 = -9, and opening all three boxes gives
-9 - 3 * 5 + 3 * 10 = +6, the cooperative optimum.

Observation (float32, the same for every agent), in order: per agent: row one-hot [5], column
one-hot [5]; per box slot: row one-hot [5], column one-hot [5]; per box slot: status one-hot [3]
(closed, open, emptied); t / horizon [1].

`reward_features` = [step (always 1), opened a box, on open full box slot 0, 1, 2];
`reward_weights[i]` = [-0.01, -5, 10 * one-hot(box_of[i])]. Whether an `open` opens a box depends
on `box_of`, so the features are public only given a hypothesis about it: `feature_candidates()`
lists the 6 permutations (itertools.permutations order, candidate c = {"box_of": perm_c}), each
fixing both the features and the weights (`candidate_reward_weights`). `reward_type_candidates()`
gives agent i's K = 3 possible weight vectors, row k: its food is in slot k.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import numpy as np

from asfed.envs import grid
from asfed.envs.base import EnvState, VecEnv
from asfed.envs.registry import ENVS
from asfed.envs.rng import choose_distinct

SIZE = 5
STEP_COST = 0.01
OPEN_COST = 5.0
FOOD = 10.0
CLOSED, OPEN, EMPTY = 0, 1, 2
# Every owner assignment `box_of [3]`, in itertools.permutations order (the candidates' order).
PERMUTATIONS = np.array(list(itertools.permutations(range(3))))


@dataclasses.dataclass
class ExchangeState(EnvState):
    """pos int `[B, 3, 2]`, boxes int `[B, 3, 2]` in slot order, status int `[B, 3]`."""

    pos: np.ndarray
    boxes: np.ndarray
    status: np.ndarray


@ENVS.register("exchange")
class Exchange(VecEnv):
    """Exchange core: B copies stepped at once. See the module docstring for the rules."""

    name = "exchange"
    agents_range = (3, 3)
    default_agents = 3
    default_horizon = 300
    action_names = (*grid.MOVE_NAMES, "open", "stay")
    feature_names = ("step", "opened", "on_open_box_0", "on_open_box_1", "on_open_box_2")
    obs_dim = 3 * 2 * SIZE * 2 + 3 * 3 + 1

    def feature_candidates(self) -> list[dict[str, np.ndarray]]:
        """The 6 owner assignments `{"box_of": perm}`, in itertools.permutations order."""
        return [{"box_of": p.copy()} for p in PERMUTATIONS]

    def reward_type_candidates(self) -> np.ndarray:
        """`[3, 5]`: row k = [-0.01, -5, 10 * one-hot(k)], the weights of an owner of slot k."""
        return self._weights({"box_of": np.arange(3)})

    def _weights(self, private: dict[str, Any]) -> np.ndarray:
        w = np.zeros((3, 5))
        w[:, 0] = -STEP_COST
        w[:, 1] = -OPEN_COST
        w[np.arange(3), 2 + private["box_of"]] = FOOD
        return w

    def _draw_private(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {"box_of": rng.permutation(3)}

    def _initial_state(self, keys: np.ndarray) -> ExchangeState:
        cells = choose_distinct(keys, 0, SIZE * SIZE, 6)
        rc = np.stack(np.divmod(cells, SIZE), axis=-1)
        return ExchangeState(
            t=0,
            keys=keys,
            done=np.zeros(self.num_envs, bool),
            pos=rc[:, :3],
            boxes=rc[:, 3:],
            status=np.zeros((self.num_envs, 3), np.int64),
        )

    def _transition(
        self, state: ExchangeState, actions: np.ndarray, private: dict[str, Any]
    ) -> tuple[ExchangeState, np.ndarray]:
        s = state.copy()
        b = self.num_envs
        box_of = np.asarray(private["box_of"])
        feats = np.zeros((b, 3, 5))
        feats[..., 0] = 1.0
        s.pos = grid.move(s.pos, np.where(actions < 4, actions, -1), SIZE, SIZE)

        # Over the 3 slots and 3 agents the loops are unrolled: numpy's reductions over such
        # short axes cost more than the arithmetic (the attacks' counterfactuals call this on
        # millions of rows).
        closed = s.status == CLOSED  # [B, slot]
        opens = actions == self.action_names.index("open")  # [B, agent]
        dist = [grid.manhattan(s.pos, s.boxes[:, None, k, :]) for k in range(3)]  # [B, agent]
        target = np.full(actions.shape, -1)  # [B, agent]: lowest eligible slot, -1 none
        for k in (2, 1, 0):  # the lowest eligible slot wins
            eligible = opens & (dist[k] <= 1) & (box_of != k)[None, :] & closed[:, k, None]
            target[eligible] = k
        for k in range(3):
            claims = target == k  # [B, agent]
            c0, c1, c2 = claims[:, 0], claims[:, 1], claims[:, 2]
            feats[:, 0, 1] += c0  # the lowest claiming agent opens the slot
            feats[:, 1, 1] += c1 & ~c0
            feats[:, 2, 1] += c2 & ~c0 & ~c1
            s.status[c0 | c1 | c2, k] = OPEN

        for k in range(3):
            on_box = (s.pos[..., 0] == s.boxes[:, None, k, 0]) & (
                s.pos[..., 1] == s.boxes[:, None, k, 1]
            )  # [B, agent]
            on_open = on_box & (s.status[:, k] == OPEN)[:, None]
            feats[..., 2 + k] = on_open
            s.status[on_open[:, box_of == k].any(1), k] = EMPTY  # its owner ate
        s.t += 1
        return s, feats

    def _observe(self, state: ExchangeState) -> np.ndarray:
        stride = 2 * SIZE
        out = np.zeros((self.num_envs, self.obs_dim), np.float32)
        grid.write_positions(out, 0, state.pos, SIZE, SIZE, stride)
        grid.write_positions(out, 3 * stride, state.boxes, SIZE, SIZE, stride)
        off = 6 * stride
        rows = np.arange(self.num_envs)[:, None]
        out[rows, off + np.arange(3)[None, :] * 3 + state.status] = 1.0
        out[:, -1] = state.t / self.horizon
        return out
