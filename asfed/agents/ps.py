"""Policy parameter sharing (PS, after Zhang & Zavlanos 2019).

Each agent learns a joint policy for all agents (one head per agent over a shared torso, a
factorised joint distribution), acts with its own head, and before each of the K updates sends
the joint policy's parameters to its neighbours (kind `policy_params`) and averages its own with
those received (consensus). Its loss is PPO's clipped surrogate on the joint ratio
prod_j pi(a_j|s) / pi_old(a_j|s) with its own advantage; critics are learned independently.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from asfed.agents.base import Agent, AgentSpec, Graph, average_into, flat_params, mean
from asfed.agents.methods import METHODS, Method
from asfed.agents.networks import mlp
from asfed.agents.ppo import clipped_surrogate
from asfed.comm.messages import Message


class PSAgent(Agent):
    def __init__(self, spec: AgentSpec) -> None:
        super().__init__(spec)
        n, a = spec.num_agents, spec.num_actions
        self.joint = mlp([spec.obs_dim, *spec.cfg.actor_hidden], n * a)
        self.actor_opt = torch.optim.Adam(self.joint.parameters(), lr=spec.cfg.actor_lr)

    def _logp_joint(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Sum over agents of log pi(a_j|s) under the joint policy. obs `[M, D]` -> `[M]`."""
        logits = self.joint(obs).view(obs.shape[0], self.spec.num_agents, self.spec.num_actions)
        return torch.log_softmax(logits, -1).gather(2, actions[:, :, None])[..., 0].sum(1)

    def acting_logits(self, obs: torch.Tensor) -> torch.Tensor:
        logits = self.joint(obs).view(obs.shape[0], self.spec.num_agents, self.spec.num_actions)
        return logits[:, self.id]

    def acting_modules(self) -> dict[str, nn.Module]:
        return {"joint": self.joint}

    def outgoing(self, step: int, round_: int, neighbours: Graph) -> list[Message]:
        return self.to_neighbours(
            step, round_, neighbours, "policy_params", lambda: flat_params(self.joint)
        )

    def update(self, k: int, inbox: list[Message], neighbours: Graph) -> dict[str, float]:
        received = [m.payload for m in inbox if m.kind == "policy_params"]
        if received:
            average_into(self.joint, received)
        values = self.values()
        adv = self.advantages(values)
        with torch.no_grad():
            old = self._logp_joint(self._obs_all, self._actions)
        losses = []
        for idx in self.minibatches():
            logp = self._logp_joint(self._obs_all[idx], self._actions[idx])
            loss = clipped_surrogate(logp, old[idx], adv[idx], self.spec.cfg.clip)
            self._step(self.actor_opt, self.joint, loss)
            losses.append(loss.item())
        return {"policy_loss": mean(losses), "value_loss": self.fit_critic(values)}

    def modules(self) -> dict[str, Any]:
        return {**super().modules(), "joint": self.joint, "actor_opt": self.actor_opt}


@METHODS.register("ps")
class PolicySharing(Method):
    name = "ps"
    allowed_kinds = frozenset({"policy_params"})

    def make_agent(self, spec: AgentSpec) -> Agent:
        return PSAgent(spec)
