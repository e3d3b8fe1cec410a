"""Shared rules of the two sequential social dilemmas, cleanup and harvest.

Both follow the SSD rules (Vinitsky's constants, as reused by Christoffersen et al. 2023) on maps of
our own (the paper gives sizes, not maps). What they share lives here:

- Moves up/down/left/right set the agent's facing (we drop the SSD rotate actions); `stay` keeps
  both. Agents may share a cell; walking off the map is clipped.
- An agent standing on an apple after moving eats it (+1 times its private apple value). Several
  agents on one apple: one of them, uniformly at random, eats it.
- Beams (zap, and cleanup's clean) are SSD's: 3 parallel lines (the agent's own and the two beside
  it), each running 5 cells ahead in the facing direction and stopping at the first thing it acts
  on. DESIGN.md gives the length; the width and the stopping are Vinitsky's SSD rules.
- Optional zap (off by default): firing costs the zapper 1; on each beam line the first active
  agent is hit, loses 50 and is removed for 25 steps, then respawns at a random spawn point.
  Removed agents cannot act, eat, be hit or be seen.
- Apples never appear under an active agent.

Order within a step: moves, zaps, the env's beam action (cleanup's `clean`), eating, the env's
spawning rules, the removal countdown and respawns.

Reward features (D = 3): [ate an apple, fired the zap, was hit]; weights per agent
[apple value, -1, -50]. Private parameters: `apple_value [N]` (all 1.0 as in the paper; with
`private_weights=True` each agent's value is drawn from U[0.5, 1.5]). The features are public (one
feature candidate, `{}`); only the apple value is private, so an auditor tests hypotheses on the
weights, not on the features. Without `private_weights` the weights are the public constant
[1, -1, -50] (`candidate_reward_weights` `[1, N, 3]`, `reward_type_candidates` `[1, 3]`); with it
the value is continuous and the reward types are three equal-width bins of U[0.5, 1.5]
(`reward_type_candidates`: the bins' centres 2/3, 1, 4/3; `reward_type_of` bins a true value).
Only the ratio of the apple value to the zap's costs tells the bins apart: with `zap` off, every
candidate is the same reward up to scale, and a reward-type guess can only be at chance.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from asfed.envs import grid
from asfed.envs.base import EnvState, VecEnv
from asfed.envs.rng import choose_distinct, step_keys, uniform

ZAP_LENGTH = 5
ZAP_COST = 1.0
ZAP_PENALTY = 50.0
# Private apple values are drawn from U[0.5, 1.5]; reward types are its three equal bins.
BIN_EDGES = np.array([0.5, 5 / 6, 7 / 6, 1.5])
ZAP_TIMEOUT = 25

# Streams of the counter-based RNG (one purpose each).
S_SPAWN, S_EAT, S_RESPAWN, S_APPLE, S_WASTE, S_WASTE_CELL, S_WASTE_INIT = range(7)


@dataclasses.dataclass
class SSDState(EnvState):
    """State of B copies. pos int `[B, N, 2]`, facing int `[B, N]`, apples bool `[B, C_apple]`
    (over the map's apple cells), removed int `[B, N]` (steps left out; 0 = active)."""

    pos: np.ndarray
    facing: np.ndarray
    apples: np.ndarray
    removed: np.ndarray


class SSDEnv(VecEnv):
    """Base of cleanup and harvest. Subclasses set MAP, BASE_ACTIONS and the spawning rules."""

    MAP: ClassVar[tuple[str, ...]]
    BASE_ACTIONS: ClassVar[tuple[str, ...]]
    STATE: ClassVar[type[SSDState]] = SSDState
    agents_range = (2, 8)
    default_agents = 4
    default_horizon = 100
    feature_names = ("ate_apple", "fired_zap", "was_hit")

    def __init__(
        self,
        num_envs: int = 1,
        seed: int | None = None,
        num_agents: int | None = None,
        horizon: int | None = None,
        zap: bool = False,
        private_weights: bool = False,
    ) -> None:
        self.zap = bool(zap)
        self.private_weights = bool(private_weights)
        self.action_names = self.BASE_ACTIONS + (("zap",) if self.zap else ())
        grid_ = grid.parse_map(self.MAP)
        self.height, self.width = grid_.shape
        self.apple_cells = grid.cells_of(grid_, "A")
        self.spawn_cells = grid.cells_of(grid_, "P")
        self.cell_to_apple = np.full(self.height * self.width, -1, np.int64)
        self.cell_to_apple[self.apple_cells] = np.arange(len(self.apple_cells))
        super().__init__(num_envs, seed, num_agents, horizon)
        self._agent_stride = self.height + self.width + 4 + 1
        self.obs_dim = self._extra_obs_dim() + len(self.apple_cells)
        self.obs_dim += self.num_agents * self._agent_stride + 1

    # ---- hooks for cleanup / harvest --------------------------------------------------------

    def _extra_obs_dim(self) -> int:
        return 0

    def _beam_action(self, state: SSDState, actions: np.ndarray, active: np.ndarray) -> None:
        """The env's own beam action (cleanup's clean), applied in place. Default: none."""

    def _spawn(self, state: SSDState, skeys: np.ndarray, occupied: np.ndarray) -> None:
        """Spawn apples (and waste) in place. occupied: bool `[B, C_apple]` under active agents."""
        raise NotImplementedError

    def _initial_extra(self, keys: np.ndarray) -> dict[str, np.ndarray]:
        return {}

    def _observe_extra(self, state: SSDState, out: np.ndarray) -> None:
        """Write env-specific observation entries at the start of `out` `[B, D]`."""

    # ---- VecEnv -----------------------------------------------------------------------------

    def candidate_reward_weights(self) -> np.ndarray:
        """`[1, N, 3]`: the public weights, when apple values are not private (else an error)."""
        if self.private_weights:
            return super().candidate_reward_weights()
        return self._weights({"apple_value": np.ones(self.num_agents)})[None]

    def reward_type_candidates(self) -> np.ndarray:
        """`[1, 3]`: [1, -1, -50] when apple values are not private; with private weights `[3, 3]`,
        the centres of the three bins of the apple value."""
        if self.private_weights:
            return self._weights({"apple_value": (BIN_EDGES[:-1] + BIN_EDGES[1:]) / 2})
        return self._weights({"apple_value": np.ones(1)})

    def reward_type_of(self, weights: np.ndarray) -> int:
        """The bin of the apple value `weights[0]` (private weights), else the exact match."""
        if not self.private_weights:
            return super().reward_type_of(weights)
        return int(np.clip(np.searchsorted(BIN_EDGES, weights[0], side="right") - 1, 0, 2))

    def _weights(self, private: dict[str, Any]) -> np.ndarray:
        value = np.asarray(private["apple_value"])
        w = np.empty((len(value), 3))
        w[:, 0] = value
        w[:, 1] = -ZAP_COST
        w[:, 2] = -ZAP_PENALTY
        return w

    def _draw_private(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        if self.private_weights:
            return {"apple_value": rng.uniform(BIN_EDGES[0], BIN_EDGES[-1], self.num_agents)}
        return {"apple_value": np.ones(self.num_agents)}

    def _initial_state(self, keys: np.ndarray) -> SSDState:
        b, n = self.num_envs, self.num_agents
        spawn = self.spawn_cells[choose_distinct(keys, S_SPAWN, len(self.spawn_cells), n)]
        return self.STATE(
            t=0,
            keys=keys,
            done=np.zeros(b, bool),
            pos=np.stack(np.divmod(spawn, self.width), axis=-1),
            facing=np.zeros((b, n), np.int64),
            apples=self._initial_apples(keys),
            removed=np.zeros((b, n), np.int64),
            **self._initial_extra(keys),
        )

    def _initial_apples(self, keys: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _transition(
        self, state: SSDState, actions: np.ndarray, private: dict[str, Any]
    ) -> tuple[SSDState, np.ndarray]:
        s = state.copy()
        b, n = self.num_envs, self.num_agents
        skeys = step_keys(s.keys, s.t)
        feats = np.zeros((b, n, 3))
        active = s.removed == 0

        moving = active & (actions < 4)
        s.pos = grid.move(s.pos, np.where(moving, actions, -1), self.height, self.width)
        s.facing = np.where(moving, actions, s.facing)
        cells = s.pos[..., 0] * self.width + s.pos[..., 1]

        hit = np.zeros((b, n), bool)
        if self.zap:
            zapping = active & (actions == self.action_names.index("zap"))
            hit = self._zap_hits(s, cells, zapping, active)
            feats[..., 1] = zapping
            feats[..., 2] = hit
            s.removed[hit] = ZAP_TIMEOUT + 1  # counted down below, so out for 25 full steps

        self._beam_action(s, actions, active)

        can_eat = active & ~hit
        apple_idx = self.cell_to_apple[cells]
        on_apple = can_eat & (apple_idx >= 0)
        on_apple &= np.take_along_axis(s.apples, np.maximum(apple_idx, 0), axis=1)
        priority = uniform(skeys, S_EAT, n)
        same = (cells[:, :, None] == cells[:, None, :]) & on_apple[:, None, :]
        beaten = (same & (priority[:, None, :] > priority[:, :, None])).any(-1)
        eats = on_apple & ~beaten
        feats[..., 0] = eats
        rows = np.broadcast_to(np.arange(b)[:, None], (b, n))
        s.apples[rows[eats], apple_idx[eats]] = False

        occupied = np.zeros_like(s.apples)
        under = active & (apple_idx >= 0)
        occupied[rows[under], apple_idx[under]] = True
        self._spawn(s, skeys, occupied)

        returning = s.removed == 1
        s.removed = np.maximum(s.removed - 1, 0)
        if returning.any():
            choice = (uniform(skeys, S_RESPAWN, n) * len(self.spawn_cells)).astype(np.int64)
            respawn = self.spawn_cells[choice]
            new_pos = np.stack(np.divmod(respawn, self.width), axis=-1)
            s.pos = np.where(returning[..., None], new_pos, s.pos)
        s.t += 1
        return s, feats

    def _zap_hits(
        self, s: SSDState, cells: np.ndarray, zapping: np.ndarray, active: np.ndarray
    ) -> np.ndarray:
        """Agents hit by a zap: the first active agent on each line of each zapper's beam.

        Returns bool `[B, N]`.
        """
        n = self.num_agents
        beam_cells, valid = grid.beam(s.pos, s.facing, ZAP_LENGTH, self.height, self.width)
        target = active[:, None, :] & ~np.eye(n, dtype=bool)[None]  # [B, zapper, target]
        # on_beam [B, zapper, line, step, target]
        on_beam = (beam_cells[..., None] == cells[:, None, None, None, :]) & valid[..., None]
        on_beam &= target[:, :, None, None, :] & zapping[:, :, None, None, None]
        stops = grid.first_along(on_beam.any(-1))  # [B, zapper, line, step]
        return (on_beam & stops[..., None]).any(axis=(1, 2, 3))

    def _observe(self, state: SSDState) -> np.ndarray:
        b = self.num_envs
        out = np.zeros((b, self.obs_dim), np.float32)
        self._observe_extra(state, out)
        off = self._extra_obs_dim()
        out[:, off : off + len(self.apple_cells)] = state.apples
        off += len(self.apple_cells)
        active = state.removed == 0
        grid.write_positions(
            out, off, state.pos, self.height, self.width, self._agent_stride, present=active
        )
        rows = np.arange(b)[:, None]
        agent_base = off + np.arange(self.num_agents)[None, :] * self._agent_stride
        hw = self.height + self.width
        out[rows, agent_base + hw + state.facing] = active
        out[rows, agent_base + hw + 4] = active
        out[:, -1] = state.t / self.horizon
        return out
