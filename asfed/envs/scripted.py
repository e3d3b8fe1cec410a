"""Scripted reference policies: the fixed points that rule tests and baselines are measured by.

Each takes an env core and its current state and returns a joint action `[B, N]`. Some read the
private reward parameters (they are oracles for ground truth, never learners).
"""

from __future__ import annotations

import numpy as np

from asfed.envs import grid
from asfed.envs.base import VecEnv


def _nearest(
    pos: np.ndarray, cells: np.ndarray, present: np.ndarray, width: int, min_dist: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """For each agent, the nearest present cell at least `min_dist` away (Manhattan).

    pos `[B, N, 2]`, cells `[C]` (flat), present `[B, C]`.
    Returns (target `[B, N, 2]`, found `[B, N]`).
    """
    rc = np.stack(np.divmod(cells, width), axis=-1)  # [C, 2]
    d = grid.manhattan(pos[:, :, None, :], rc[None, None]).astype(float)  # [B, N, C]
    d = np.where(present[:, None, :] & (d >= min_dist), d, np.inf)
    idx = d.argmin(-1)
    return rc[idx], np.isfinite(d.min(-1))


def ssd_greedy_eater(env: VecEnv, state) -> np.ndarray:
    """Walk to the nearest apple; stay when there is none (cleanup and harvest)."""
    target, found = _nearest(state.pos, env.apple_cells, state.apples, env.width)
    move = grid.step_toward(state.pos, target)
    return np.where(found & (move >= 0), move, env.action_names.index("stay"))


def cleanup_cleaner(env: VecEnv, state) -> np.ndarray:
    """Clean when waste lies ahead; otherwise walk toward the nearest waste (cleanup only)."""
    from asfed.envs.cleanup import CELL_TO_RIVER

    cells, valid = grid.beam(state.pos, state.facing, 5, env.height, env.width)
    river = CELL_TO_RIVER[cells]
    ahead = valid & (river >= 0)
    rows = np.arange(env.num_envs)[:, None, None, None]
    waste_ahead = (ahead & state.waste[rows, np.maximum(river, 0)]).any(axis=(-2, -1))
    # The beam starts one cell ahead, so standing on waste cannot clean it: aim at least 1 away.
    target, found = _nearest(state.pos, env.river_cells, state.waste, env.width, min_dist=1)
    move = grid.step_toward(state.pos, target)
    stay = env.action_names.index("stay")
    act = np.where(found & (move >= 0), move, stay)
    return np.where(waste_ahead, env.action_names.index("clean"), act)


def exchange_cooperative(env: VecEnv, state) -> np.ndarray:
    """Agent i opens the box of agent (i+1) mod 3, then waits on its own box (an oracle)."""
    from asfed.envs.exchange import CLOSED

    box_of = env.private_params["box_of"]
    give = box_of[(np.arange(3) + 1) % 3]  # slot each agent opens
    b = np.arange(env.num_envs)[:, None]
    give_pos = state.boxes[b, give[None, :]]  # [B, 3, 2]
    own_pos = state.boxes[b, box_of[None, :]]
    still_closed = state.status[b, give[None, :]] == CLOSED
    near = grid.manhattan(state.pos, give_pos) <= 1
    to_give = grid.step_toward(state.pos, give_pos)
    to_own = grid.step_toward(state.pos, own_pos)
    stay, open_ = env.action_names.index("stay"), env.action_names.index("open")
    opening = np.where(near, open_, to_give)
    waiting = np.where(to_own >= 0, to_own, stay)
    return np.where(still_closed, opening, waiting)


def navigation_oracle(env: VecEnv, state) -> np.ndarray:
    """Each agent walks to its own landmark and stays there (an oracle: reads `slot_of`; it
    ignores collisions on the way, so it is a strong reference, not a proven optimum)."""
    own = state.landmarks[:, env.private_params["slot_of"]]  # [B, N, 2]
    move = grid.step_toward(state.pos, own)
    return np.where(move >= 0, move, env.action_names.index("stay"))


def stay_still(env: VecEnv, state) -> np.ndarray:
    """Every agent stays (all-defect in exchange: nobody ever opens a box)."""
    return np.full((env.num_envs, env.num_agents), env.action_names.index("stay"))


def predation_profile(env: VecEnv, state, pursuers: np.ndarray) -> np.ndarray:
    """Agents flagged in `pursuers` `[N]` move toward the prey, the others away (predation)."""
    toward = env.toward_action(state)  # actions are 0/1: the other one moves away
    return np.where(pursuers[None, :], toward, 1 - toward)


def rollout(env: VecEnv, policy, seed: int | None = None) -> np.ndarray:
    """Run one episode of every copy with `policy(env, state) -> [B, N]`.

    Returns each copy's per-agent return, float64 `[B, N]`.
    """
    env.reset(seed=seed)
    total = np.zeros((env.num_envs, env.num_agents))
    while True:
        _, r, term, trunc, _ = env.step(policy(env, env.state))
        total += r
        if (term | trunc).all():
            return total
