"""Harvest: apples regrow only near other apples, so over-harvesting a patch kills it.

Map (7 x 38, ours; the paper gives only the size): six diamond patches of 13 apple cells (`A`,
78 in all) and 10 spawn points (`P`) on the top and bottom rows:

           P  A  P     P  A  P     P
       A     AAA         AAA          A
      AAA   AAAAA   A   AAAAA   A    AAA
     AAAAA   AAA   AAA   AAA   AAA  AAAAA
      AAA     A   AAAAA   A   AAAAA  AAA
       A           AAA         AAA    A
           P     P  A  P     P  A  P

Rules (SSD constants; shared ones in `asfed.envs.ssd`): every apple cell starts with an apple. Each
step an empty apple cell regrows with probability [0, 0.005, 0.02, 0.05][min(k, 3)], where k is
the number of apples within Euclidean radius 2 of it (itself excluded), counted after eating.

Actions: up, down, left, right, stay (+ zap with `zap=True`). Horizon 100. Agents 2-8 (default 4).

Observation (float32, the same for every agent), in order: apples [78] (apple cells, row-major),
per agent k: row one-hot [7], column one-hot [38], facing one-hot [4], active [1]; t / horizon [1].

Reward: +apple value per apple eaten (-1 per zap fired, -50 when hit, if zap is on).
`reward_features` = [ate_apple, fired_zap, was_hit], public (the one feature candidate is `{}`);
`reward_weights[i]` = [apple_value_i, -1, -50]; private parameters: `apple_value [N]` (1.0 each
unless `private_weights=True`), so hypotheses are on the weights (see `asfed.envs.ssd`).
"""

from __future__ import annotations

import numpy as np

from asfed.envs import grid
from asfed.envs.registry import ENVS
from asfed.envs.rng import uniform
from asfed.envs.ssd import S_APPLE, SSDEnv, SSDState

REGROWTH = np.array([0.0, 0.005, 0.02, 0.05])
RADIUS = 2

HARVEST_MAP = (
    "       P  A  P     P  A  P     P      ",
    "   A     AAA         AAA          A   ",
    "  AAA   AAAAA   A   AAAAA   A    AAA  ",
    " AAAAA   AAA   AAA   AAA   AAA  AAAAA ",
    "  AAA     A   AAAAA   A   AAAAA  AAA  ",
    "   A           AAA         AAA    A   ",
    "       P     P  A  P     P  A  P      ",
)


def _neighbours(rows: tuple[str, ...]) -> np.ndarray:
    """float32 [C, C]: 1 where two distinct apple cells lie within Euclidean radius 2."""
    cells = grid.cells_of(grid.parse_map(rows), "A")
    rc = np.stack(np.divmod(cells, len(rows[0])), axis=-1)
    d2 = ((rc[:, None, :] - rc[None, :, :]) ** 2).sum(-1)
    return ((d2 <= RADIUS**2) & (d2 > 0)).astype(np.float32)


NEIGHBOURS = _neighbours(HARVEST_MAP)


@ENVS.register("harvest")
class Harvest(SSDEnv):
    """Harvest core: B copies stepped at once. See the module docstring for the rules."""

    name = "harvest"
    MAP = HARVEST_MAP
    BASE_ACTIONS = (*grid.MOVE_NAMES, "stay")

    neighbours = NEIGHBOURS

    def _initial_apples(self, keys: np.ndarray) -> np.ndarray:
        return np.ones((self.num_envs, len(self.apple_cells)), bool)

    def regrowth_probability(self, apples: np.ndarray) -> np.ndarray:
        """Per-cell regrowth probability of empty cells. apples bool `[B, C]` -> float `[B, C]`."""
        k = (apples.astype(np.float32) @ self.neighbours).astype(np.int64)
        return np.where(apples, 0.0, REGROWTH[np.minimum(k, 3)])

    def _spawn(self, s: SSDState, skeys: np.ndarray, occupied: np.ndarray) -> None:
        p = self.regrowth_probability(s.apples)
        s.apples |= (uniform(skeys, S_APPLE, len(self.apple_cells)) < p) & ~occupied
