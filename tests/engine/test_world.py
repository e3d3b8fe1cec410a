"""The world's rollout: what counts as a step taken, including episodes over at reset."""

from __future__ import annotations

import math

import numpy as np

from asfed.agents.storage import AgentStore
from asfed.config import build_config
from asfed.engine.loop import Simulation
from asfed.engine.world import rollout
from asfed.envs.predation import Predation


class HoldingAtReset(Predation):
    """Predation where, in the copies listed, every predator starts on the prey."""

    def __init__(self, *args, over: tuple[int, ...] = (), **kwargs) -> None:
        self.over = list(over)
        super().__init__(*args, **kwargs)

    def _initial_state(self, keys):
        s = super()._initial_state(keys)
        s.holding[self.over] = True
        s.done[self.over] = True
        return s


def test_copies_over_at_reset_take_no_steps_and_the_others_do() -> None:
    sim = Simulation(
        build_config(env="predation", method="ippo", agents=3, episodes=2, seed=0), private_seed=11
    )
    env = HoldingAtReset(num_envs=2, seed=0, num_agents=3, over=(0,))
    traj = rollout(env, sim.method, sim.federation.acting, np.random.default_rng(0))
    assert not traj.valid[0].any() and traj.terminated[0].all()
    taken = np.concatenate([[True], ~traj.terminated[1, :-1]])  # live at reset: until it ends
    np.testing.assert_array_equal(traj.valid[1], taken)
    assert sim.scorer.rewards(traj.features)[0].sum() == 0.0


def test_a_round_in_which_every_episode_is_over_at_reset_learns_nothing_and_does_not_fail(
    tmp_path,
) -> None:
    for method in ("as", "vs", "vps", "ps", "ippo"):
        cfg = build_config(env="predation", method=method, agents=2, episodes=1, seed=0)
        sim = Simulation(cfg, agent_root=tmp_path / method, private_seed=11)
        sim.env = HoldingAtReset(num_envs=1, seed=0, num_agents=2, over=(0,))
        metrics, record = sim.run_round()
        assert metrics["team_return"] == 0.0
        diagnostics = AgentStore(tmp_path / method / "agent_0").read_diagnostics()
        assert "policy_loss" not in diagnostics[0] and math.isnan(
            float(diagnostics[0]["value_loss"])
        )
        assert all(m.payload.size == 0 or m.kind.endswith("params") for m in record)


def test_the_horizon_is_terminal_and_critic_targets_are_monte_carlo_returns() -> None:
    """Eq. 18 on a fixed-horizon env (navigation, t / horizon in the state): the last step of
    every episode is terminal and its target is its last reward; earlier targets are the
    discounted sums of the rewards to the episode's end, with no bootstrap."""
    sim = Simulation(
        build_config(env="navigation", method="ippo", episodes=3, horizon=7, seed=2),
        private_seed=11,
    )
    traj = rollout(sim.env, sim.method, sim.federation.acting, np.random.default_rng(0))
    assert traj.terminated[:, -1].all() and not traj.terminated[:, :-1].any()
    agent = sim.federation.agents[1]
    agent.begin_round(traj.slice_for(1))
    targets = agent.returns().numpy().reshape(3, 7)
    rewards = sim.scorer.rewards(traj.features)[:, :, 1]
    np.testing.assert_allclose(targets[:, -1], rewards[:, -1], rtol=1e-6)
    expected = sum(0.99**k * rewards[:, 3 + k] for k in range(4))
    np.testing.assert_allclose(targets[:, 3], expected, rtol=1e-5)
