"""Value-function parameter sharing (VPS), as Zhang et al. 2018b (Algorithm 1) define it.

Each agent holds a critic of the joint action, Q(s, a; w_i) (input: the state and the one-hot
joint action), fitted on its own rewards (the discounted return, Eq. 18's target, in place of the
paper's average-reward TD step). Before each update it sends w_i to its neighbours (kind
`value_params`) and takes the consensus step w_i <- sum_j c_ij w_j with Metropolis weights
(doubly stochastic on any undirected graph, as the cited paper requires). Because the local
fit is linear in the reward and the weights keep the network average, the consensus critic
estimates the team-average Q, and the actor ascends the cited paper's advantage

    A_i(s, a) = Q(s, a; w_i) - sum_{a_i'} pi^ii(a_i'|s) Q(s, (a_i', a_-i); w_i)

with PPO's clipped surrogate: no reward of its own enters the actor, so a move that costs i and
pays others is judged by its team value. (The asfed paper's one line says only that each value
update uses the agent's own reward and averages parameters; with own-reward TD in the actor it
would be VS with a shared critic, unable to see a benefit to others.)
"""

from __future__ import annotations

import torch
from torch import nn

from asfed.agents.base import Agent, AgentSpec, Graph, consensus_into, flat_params
from asfed.agents.ippo import PolicyAgent
from asfed.agents.methods import METHODS, Method
from asfed.agents.networks import mlp
from asfed.comm.messages import Message


class VPSAgent(PolicyAgent):
    def make_critic(self) -> nn.Module:
        """Q(s, a; w): `[..., D + N * A]` (state, one-hot joint action) -> `[..., 1]`."""
        width = self.spec.obs_dim + self.spec.num_agents * self.spec.num_actions
        return mlp([width, *self.spec.cfg.critic_hidden], 1)

    def _joint_one_hot(self, actions: torch.Tensor) -> torch.Tensor:
        """actions `[..., N]` -> one-hot `[..., N * A]`."""
        hot = nn.functional.one_hot(actions, self.spec.num_actions).float()
        return hot.flatten(-2)

    def critic_inputs(self) -> torch.Tensor:
        return torch.cat([self._obs_all, self._joint_one_hot(self._actions)], -1)

    def outgoing(self, step: int, round_: int, neighbours: Graph) -> list[Message]:
        return self.to_neighbours(
            step, round_, neighbours, "value_params", lambda: flat_params(self.critic)
        )

    def policy_advantages(self, inbox: list[Message], neighbours: Graph) -> torch.Tensor:
        """Consensus on the critic, then A_i = Q(s, a) - E_{a_i' ~ pi^ii} Q(s, a_i', a_-i),
        `[M]`."""
        received = {m.sender: m.payload for m in inbox if m.kind == "value_params"}
        if neighbours[self.id]:
            consensus_into(self.critic, self.id, received, neighbours)
            self.params_changed()
        a = self.spec.num_actions
        m = self._obs_all.shape[0]
        alternatives = self._actions[:, None, :].repeat(1, a, 1)  # [M, A, N]
        alternatives[:, :, self.id] = torch.arange(a, device=self.device)
        inputs = torch.cat(
            [self._obs_all[:, None].expand(m, a, -1), self._joint_one_hot(alternatives)], -1
        )
        with torch.no_grad():
            q = self.critic(inputs)[..., 0]  # [M, A]: Q with i's action replaced
            probs = torch.softmax(self.actor_logits(), -1)
        taken = q.gather(1, self._actions[:, self.id : self.id + 1])[:, 0]
        return taken - (probs * q).sum(-1)


@METHODS.register("vps")
class ValueParameterSharing(Method):
    name = "vps"
    allowed_kinds = frozenset({"value_params"})

    def make_agent(self, spec: AgentSpec) -> Agent:
        return VPSAgent(spec)
