"""VS, VPS and PS as their cited papers define them: who can register a benefit to others, the
consensus weights, and PS's per-factor trust region."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from asfed.agents.base import AgentSpec, RoundBatch, consensus_into, metropolis_weights
from asfed.agents.hparams import paper_config
from asfed.agents.methods import METHODS
from asfed.agents.ps import factor_surrogate
from asfed.agents.vps import VPSAgent
from asfed.comm.topology import Neighbourhoods, make_topology
from asfed.dealer import AgentSecret

GAMMA = 0.99
OPEN, STAY = 4, 5  # exchange's action indices
S0, S1_OPEN, S1_STAY, END = range(4)  # one-hot state ids


def box_example() -> tuple[list[RoundBatch], list[np.ndarray]]:
    """Exchange's dilemma in two steps. At s0 agent 0 opens agent 1's box (-5 to agent 0) with
    probability 1/2, else stays; if opened, agent 1 eats next step (+10). Episode A opens,
    episode B stays. Returns each agent's slice and its perfect critic on every state
    (`[B, T + 1]`): the expected return to go under that policy."""
    obs = np.zeros((2, 3, 4), np.float32)
    for b, path in enumerate(((S0, S1_OPEN, END), (S0, S1_STAY, END))):
        obs[b, np.arange(3), path] = 1.0
    actions = np.full((2, 2, 3), STAY)
    actions[0, 0, 0] = OPEN
    rewards = np.zeros((3, 2, 2))  # [agent, B, T]
    rewards[0, 0, 0] = -5.0
    rewards[1, 0, 1] = 10.0
    terminated = np.zeros((2, 2), bool)
    terminated[:, -1] = True
    valid = np.ones((2, 2), bool)
    slices, values = [], []
    for j in range(3):
        g_open = rewards[j, 0, 0] + GAMMA * rewards[j, 0, 1]
        v = np.zeros((2, 3))
        v[:, 0] = 0.5 * g_open  # episode B returns 0
        v[0, 1] = rewards[j, 0, 1]
        slices.append(RoundBatch(obs, actions, rewards[j][..., None], terminated, valid))
        values.append(v)
    return slices, values


def make(method: str, i: int) -> object:
    spec = AgentSpec(
        agent_id=i,
        num_agents=3,
        obs_dim=4,
        num_actions=6,
        potential=frozenset({0, 1, 2} - {i}),
        cfg=paper_config("exchange"),
        minibatches=1,
        seed=i,
    )
    agent = METHODS.get(method)().make_agent(spec)
    agent.hold(AgentSecret(i, {}, np.ones(1), noise_seed=i))  # reward = the one feature
    return agent


class TeamQ(nn.Module):
    """The consensus critic at its fixed point: the team-average Q of the box example.
    Input: state one-hot [4] then the joint action one-hot [3 x 6]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        state = x[..., :4].argmax(-1)
        a0 = x[..., 4:10].argmax(-1)
        team_open = (-5.0 + GAMMA * 10.0) / 3
        q = torch.where((state == S0) & (a0 == OPEN), team_open, 0.0)
        q = q + torch.where(state == S1_OPEN, 10.0 / 3, 0.0)
        return q[..., None]


def opening_advantage(method: str) -> float:
    """The advantage agent 0's policy gets for opening agent 1's box (sample 0), with perfect
    critics, everyone a neighbour of everyone."""
    slices, values = box_example()
    agents = [make(method, i) for i in range(3)]
    for agent, batch, v in zip(agents, slices, values, strict=True):
        agent.begin_round(batch)
        agent.values = lambda v=v: v  # perfect critic
    full = make_topology("full", 3).neighbours(0, np.random.default_rng(0))
    if method == "vps":
        agents[0].critic = TeamQ()  # consensus reached (no further averaging here)
        alone = Neighbourhoods([frozenset(), frozenset(), frozenset()])
        return float(agents[0].policy_advantages([], alone)[0])
    if method == "ps":
        # PS ascends, per agent, its own advantage on its copy of the joint policy; consensus
        # averages the copies, so the network ascends the mean of the agents' advantages on
        # agent 0's factor.
        return float(np.mean([float(a.advantages(a.values())[0]) for a in agents]))
    inbox = [m for a in agents[1:] for m in a.outgoing(0, 0, full) if m.receiver == 0]
    return float(agents[0].policy_advantages(inbox, full)[0])


def test_who_registers_the_benefit_of_opening_anothers_box() -> None:
    """Opening costs agent 0 5 and gives agent 1 10: the team gains. Independent learning sees
    only the cost; VS (neighbourhood advantage), VPS (consensus Q, counterfactual baseline) and PS
    (consensus of joint policies) must see the team's gain."""
    team = 0.5 * (-5.0 + GAMMA * 10.0)  # team TD advantage: r + gamma V(s1) - V(s0), summed
    signs = {m: opening_advantage(m) for m in ("ippo", "vs", "vps", "ps")}
    print({m: round(a, 3) for m, a in signs.items()}, "team:", round(team, 3))
    assert signs["ippo"] == pytest.approx(-2.5)  # -5 + 0 - (-2.5): the cost, half of it
    assert signs["vs"] == pytest.approx(team / 3, rel=1e-5)
    assert signs["vps"] > 0
    assert signs["ps"] == pytest.approx(team / 3, rel=1e-5)


@pytest.mark.parametrize("name", ["line", "ring", "random-one", "full"])
def test_metropolis_consensus_weights_are_doubly_stochastic(name: str) -> None:
    for seed in range(4):
        g = make_topology(name, 6).neighbours(0, np.random.default_rng(seed))
        w = np.zeros((6, 6))
        for i in range(6):
            for j, c in metropolis_weights(i, g).items():
                w[i, j] = c
        assert (w >= 0).all()
        np.testing.assert_allclose(w.sum(0), 1.0)
        np.testing.assert_allclose(w.sum(1), 1.0)
        np.testing.assert_allclose(w, w.T)


def test_vps_consensus_moves_critics_to_their_weighted_mean() -> None:
    agents = [make("vps", i) for i in range(3)]
    line = make_topology("line", 3).neighbours(0, np.random.default_rng(0))
    vectors = [nn.utils.parameters_to_vector(a.critic.parameters()).detach() for a in agents]
    received = {0: vectors[0].numpy(), 2: vectors[2].numpy()}
    assert isinstance(agents[1], VPSAgent)
    consensus_into(agents[1].critic, 1, received, line)
    got = nn.utils.parameters_to_vector(agents[1].critic.parameters()).detach()
    expected = (vectors[0] + vectors[1] + vectors[2]) / 3  # Metropolis on a 3-line: 1/3 each
    torch.testing.assert_close(got, expected)


def test_ps_lets_each_factor_move_as_far_as_one_ppo_policy() -> None:
    """20 factors: agent 0's ratio 1.15, the others 1.01 each. The product (1.39) is past 1.2,
    so a joint clip would stop every factor; per factor, agent 0's still has its gradient."""
    logp_old = torch.zeros(1, 20)
    logp_new = torch.log(torch.tensor([[1.15] + [1.01] * 19])).requires_grad_()
    adv = torch.ones(1)
    factor_surrogate(logp_new, logp_old, adv, 0.2).backward()
    assert logp_new.grad[0, 0] < 0  # the loss still pulls agent 0's factor up
    joint = logp_new.detach().sum(1).requires_grad_()
    ratio = torch.exp(joint)
    loss = -torch.min(ratio * adv, ratio.clamp(0.8, 1.2) * adv).mean()
    loss.backward()
    assert joint.grad.abs().item() == 0.0  # the joint clip would have stopped it


def test_gradient_clipping_is_off_by_default_and_per_network_when_on() -> None:
    """The paper clips nothing; with max_grad_norm, pi^ii and each pi^ij are clipped apart, so
    a huge anticipation gradient does not shrink the own policy's step."""
    import dataclasses

    from asfed.agents.as_ import ASAgent

    def grads(max_grad_norm):
        spec = dataclasses.replace(
            make("as", 0).spec, cfg=paper_config("exchange", max_grad_norm=max_grad_norm)
        )
        agent = ASAgent(spec)
        obs = torch.randn(5, 4)
        own, ants = agent.policy(obs)
        loss = 1e-3 * own.square().sum() + 1e4 * ants[1].square().sum()
        loss.backward()
        agent.clip(agent.clip_groups())
        norm = lambda ps: float(torch.cat([p.grad.flatten() for p in ps]).norm())  # noqa: E731
        return [norm(g) for g in agent.clip_groups()[:2]]  # pi^ii, pi^i1 (pi^i2 has no loss)

    own_raw, ant_raw = grads(None)
    assert ant_raw > 100 and own_raw < 0.5  # unclipped by default
    own_c, ant_c = grads(0.5)
    assert ant_c == pytest.approx(0.5, rel=1e-4)
    assert own_c == pytest.approx(own_raw, rel=1e-6)  # untouched by its neighbour's norm


def test_as_stacks_what_its_neighbours_shared_in_peer_order() -> None:
    """AS's inbox becomes `[P, M, A]` blocks in sorted-peer order, uniform off the rows a
    neighbour sent, with a mask only where some neighbour sent part of the states; a neighbour
    that sent one kind only, or a sender that is not a neighbour, is an error."""
    from asfed.comm.messages import Message

    slices, _ = box_example()
    agent = make("as", 0)
    agent.begin_round(slices[0])  # M = 4 states, A = 6
    rng = np.random.default_rng(0)
    dist = lambda m: rng.dirichlet(np.ones(6), m).astype(np.float32)  # noqa: E731
    p1, a1, p2, a2 = dist(4), dist(4), dist(2), dist(2)
    inbox = [
        Message(0, 1, 2, 0, "anticipation", a2, rows=[1, 3]),  # agent 2: two states only
        Message(0, 1, 2, 0, "policy_dist", p2, rows=[1, 3]),
        Message(0, 1, 1, 0, "policy_dist", p1),  # agent 1: every state
        Message(0, 1, 1, 0, "anticipation", a1),
    ]
    shared = agent._shared(inbox, [1, 2])
    assert shared["policy_dist"].shape == (2, 4, 6)
    torch.testing.assert_close(shared["policy_dist"][0], torch.as_tensor(p1))
    torch.testing.assert_close(shared["anticipation"][0], torch.as_tensor(a1))
    torch.testing.assert_close(shared["policy_dist"][1, [1, 3]], torch.as_tensor(p2))
    torch.testing.assert_close(shared["anticipation"][1, [1, 3]], torch.as_tensor(a2))
    assert torch.all(shared["policy_dist"][1, [0, 2]] == 1 / 6)
    assert shared["mask"].tolist() == [[True] * 4, [False, True, False, True]]
    assert agent._shared(inbox[2:], [1])["mask"] is None  # full rows: no mask at all
    with pytest.raises(RuntimeError, match=r"\(2, 'policy_dist'\)"):
        agent._shared([inbox[0], *inbox[2:]], [1, 2])
    with pytest.raises(RuntimeError, match="not a neighbour"):
        agent._shared(inbox, [1])
