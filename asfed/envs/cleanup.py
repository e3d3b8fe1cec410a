"""Cleanup: clean the river so apples grow, or free-ride on others' cleaning.

Map (11 x 18, ours; the paper gives only the size): `R` river (44 cells, where waste lies), `A`
orchard (55 cells, where apples grow), `P` spawn points (10), blanks are open ground. Agents start
at random distinct spawn points, facing up.

    RRRR         AAAAA
    RRRR   P P   AAAAA
    RRRR         AAAAA
    RRRR   P P   AAAAA
    RRRR         AAAAA
    RRRR   P P   AAAAA
    RRRR         AAAAA
    RRRR   P P   AAAAA
    RRRR         AAAAA
    RRRR   P P   AAAAA
    RRRR         AAAAA

Rules (SSD constants, see `asfed.envs.ssd` for the shared ones): waste density d = waste cells /
river cells. Each step every empty orchard cell grows an apple with probability
0.05 * max(0, 1 - d / 0.4), and while d < 0.4 waste appears on one random clean river cell with
probability 0.5. `clean` fires the SSD beam (3 lines, 5 cells ahead in the facing direction):
each line removes the first waste cell it meets, so one clean removes up to 3; no cost, no
reward. Episodes start with no apples and waste on half the river (d = 0.5 >= 0.4), so nothing
grows until somebody cleans: the free-rider dilemma is real.

Actions: up, down, left, right, stay, clean (+ zap with `zap=True`). Horizon 100. Agents 2-8
(default 4).

Observation (float32, the same for every agent), in order:
  waste [44] (river cells, row-major), apples [55] (orchard cells, row-major),
  per agent k: row one-hot [11], column one-hot [18], facing one-hot [4] (up, down, left, right),
  active [1] (all zero while zapped away), then t / horizon [1].

Reward: +apple value per apple eaten (-1 per zap fired, -50 when hit, if zap is on).
`reward_features` = [ate_apple, fired_zap, was_hit], public (the one feature candidate is `{}`);
`reward_weights[i]` = [apple_value_i, -1, -50]; private parameters: `apple_value [N]` (1.0 each
unless `private_weights=True`), so hypotheses are on the weights (see `asfed.envs.ssd`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from asfed.envs import grid
from asfed.envs.registry import ENVS
from asfed.envs.rng import choose_distinct, uniform
from asfed.envs.ssd import S_APPLE, S_WASTE, S_WASTE_CELL, S_WASTE_INIT, SSDEnv, SSDState

APPLE_RESPAWN = 0.05
DEPLETION = 0.4
WASTE_SPAWN = 0.5
INITIAL_WASTE = 0.5
CLEAN_LENGTH = 5

_ODD = "RRRR   P P   AAAAA"
_EVEN = "RRRR         AAAAA"
CLEANUP_MAP = tuple(_ODD if r % 2 else _EVEN for r in range(11))
RIVER_CELLS = grid.cells_of(grid.parse_map(CLEANUP_MAP), "R")
# Flat cell -> river index (-1 elsewhere); a spare last slot maps an off-grid cell (-1) to -1.
CELL_TO_RIVER = np.full(len(CLEANUP_MAP) * len(CLEANUP_MAP[0]) + 1, -1, np.int64)
CELL_TO_RIVER[RIVER_CELLS] = np.arange(len(RIVER_CELLS))


@dataclasses.dataclass
class CleanupState(SSDState):
    """SSD state plus waste bool `[B, C_river]` over the river cells."""

    waste: np.ndarray


@ENVS.register("cleanup")
class Cleanup(SSDEnv):
    """Cleanup core: B copies stepped at once. See the module docstring for the rules."""

    name = "cleanup"
    MAP = CLEANUP_MAP
    BASE_ACTIONS = (*grid.MOVE_NAMES, "stay", "clean")
    STATE = CleanupState

    river_cells = RIVER_CELLS

    def _extra_obs_dim(self) -> int:
        return len(self.river_cells)

    def _initial_apples(self, keys: np.ndarray) -> np.ndarray:
        return np.zeros((self.num_envs, len(self.apple_cells)), bool)

    def _initial_extra(self, keys: np.ndarray) -> dict[str, np.ndarray]:
        r = len(self.river_cells)
        dirty = choose_distinct(keys, S_WASTE_INIT, r, round(INITIAL_WASTE * r))
        waste = np.zeros((self.num_envs, r), bool)
        np.put_along_axis(waste, dirty, True, axis=1)
        return {"waste": waste}

    def _beam_action(self, s: CleanupState, actions: np.ndarray, active: np.ndarray) -> None:
        cleaning = active & (actions == self.action_names.index("clean"))
        if not cleaning.any():
            return
        cells, valid = grid.beam(s.pos, s.facing, CLEAN_LENGTH, self.height, self.width)
        river = CELL_TO_RIVER[cells]  # [B, N, 3, L]
        rows = np.broadcast_to(np.arange(self.num_envs)[:, None, None, None], river.shape)
        dirty = valid & (river >= 0) & cleaning[:, :, None, None]
        dirty &= s.waste[rows, np.maximum(river, 0)]
        hit = grid.first_along(dirty)
        s.waste[rows[hit], river[hit]] = False

    def _spawn(self, s: CleanupState, skeys: np.ndarray, occupied: np.ndarray) -> None:
        r = len(self.river_cells)
        density = s.waste.sum(1) / r  # [B]
        p_apple = APPLE_RESPAWN * np.maximum(0.0, 1.0 - density / DEPLETION)
        grow = uniform(skeys, S_APPLE, len(self.apple_cells)) < p_apple[:, None]
        s.apples |= grow & ~occupied
        spawn = (density < DEPLETION) & (uniform(skeys, S_WASTE, 1)[:, 0] < WASTE_SPAWN)
        pick = np.where(s.waste, -1.0, uniform(skeys, S_WASTE_CELL, r)).argmax(1)
        s.waste[np.flatnonzero(spawn), pick[spawn]] = True

    def _observe_extra(self, state: CleanupState, out: np.ndarray) -> None:
        out[:, : len(self.river_cells)] = state.waste
