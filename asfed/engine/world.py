"""The world: the vectorised environment and the acting step, trusted like nature.

The world runs every actuator; each agent hands it its acting policy (never routed to another
agent, never a message). It holds no reward weight and computes no reward: it holds only the
secrets its dynamics read (exchange's box owners; see `asfed.dealer`). It rolls out B episodes at
once and hands each agent its slice of the result (`slice_for`): the public states and joint
actions, and that agent's own row of the reward features, from which the agent computes its own
reward with its own weights.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from asfed.agents.base import Agent, RoundBatch
from asfed.agents.methods import Method
from asfed.comm.record import stack_states
from asfed.envs.base import VecEnv


@dataclasses.dataclass
class Trajectory:
    """B episodes of up to T steps. obs `[B, T + 1, D]`, actions `[B, T, N]`, the true reward
    features `[B, T, N, F]` (zero once a copy is over), terminated `[B, T]` (the episode ended at
    step t, by the rules or at the horizon: the horizon is terminal, Eq. 18), valid `[B, T]` (the
    copy was still running when step t was taken; a copy can be over at reset, e.g. predators
    that all start on the prey), positions `[B, T + 1, N]` (predation only, else None). Recorded
    rounds also keep `states` (the env's state before each step, `{field: [T, B, ...]}`), for
    the audit."""

    obs: np.ndarray
    actions: np.ndarray
    features: np.ndarray
    terminated: np.ndarray
    valid: np.ndarray
    positions: np.ndarray | None
    states: dict[str, np.ndarray] | None = None

    def valid_positions(self) -> np.ndarray | None:
        """Positions on the round's M valid states (row-major over [B, T]), `[M, N]`."""
        return None if self.positions is None else self.positions[:, :-1][self.valid]

    def slice_for(self, i: int) -> RoundBatch:
        """Agent i's view: everything public, and its own row of the features `[B, T, F]`."""
        return RoundBatch(
            obs=self.obs,
            actions=self.actions,
            features=self.features[:, :, i].copy(),
            terminated=self.terminated,
            valid=self.valid,
        )


def rollout(
    env: VecEnv,
    method: Method,
    agents: list[Agent],
    rng: np.random.Generator,
    record: bool = False,
) -> Trajectory:
    """One episode in each of the env's B copies, acting with each agent's acting policy.
    `record`: also keep the states (rounds the message log records)."""
    b, n, t_max = env.num_envs, env.num_agents, env.horizon
    obs = np.zeros((b, t_max + 1, env.obs_dim), np.float32)
    actions = np.zeros((b, t_max, n), np.int64)
    features = np.zeros((b, t_max, n, len(env.feature_names)))
    terminated = np.zeros((b, t_max), bool)
    valid = np.zeros((b, t_max), bool)
    obs[:, 0] = env.reset()[:, 0]
    first = env.agent_positions(env.state)
    track = first is not None
    positions = np.zeros((b, t_max + 1, n)) if track else None
    if track:
        positions[:, 0] = first
    states: list = []
    for t in range(t_max):
        alive = ~env.state.done  # copies already over (even at reset) take no more steps
        if record:
            states.append(env.get_state())
        if not alive.any():
            obs[:, t + 1 :] = obs[:, t : t + 1]
            terminated[:, t:] = True
            if track:
                positions[:, t + 1 :] = positions[:, t : t + 1]
            states += [states[-1]] * (t_max - t - 1) if record else []
            break
        valid[:, t] = alive
        a = method.sample_actions(agents, obs[:, t], rng)
        o, f, term, trunc, _ = env.advance(a)
        features[:, t] = np.where(alive[:, None, None], f, 0.0)
        obs[:, t + 1] = o[:, 0]
        actions[:, t] = np.where(alive[:, None], a, 0)
        terminated[:, t] = term | trunc
        if track:
            positions[:, t + 1] = env.agent_positions(env.state)
    if not record:
        return Trajectory(obs, actions, features, terminated, valid, positions)
    return Trajectory(obs, actions, features, terminated, valid, positions, stack_states(states))
