"""Independent PPO: each agent learns from its own rewards and sends nothing."""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

from asfed.agents import fused, lockstep
from asfed.agents.base import Agent, AgentSpec, Graph, adam, fused_steps
from asfed.agents.methods import METHODS, Method
from asfed.agents.networks import mlp, mlp_forward
from asfed.agents.ppo import clipped_surrogate, old_log_probs
from asfed.comm.messages import Message


class PolicyAgent(Agent):
    """A PPO agent with its own actor pi^ii (used by IPPO, VS and VPS)."""

    def __init__(self, spec: AgentSpec) -> None:
        super().__init__(spec)
        self.actor = mlp([spec.obs_dim, *spec.cfg.actor_hidden], spec.num_actions)
        self.actor_opt = adam(self.actor.parameters(), spec.cfg.actor_lr)

    def acting_logits(self, obs: torch.Tensor) -> torch.Tensor:
        return mlp_forward(self.actor, obs)

    def acting_modules(self) -> dict[str, nn.Module]:
        return {"actor": self.actor}

    def actor_logits(self) -> torch.Tensor:
        """pi^ii's logits on the round's M states, `[M, A]`, memoised until the actor changes."""

        def compute() -> torch.Tensor:
            with torch.no_grad():
                return self.actor(self._obs_all)

        return self.memo("actor_logits", compute)

    def policy_stream(self, adv: torch.Tensor) -> lockstep.Stream:
        """One epoch of clipped-surrogate minibatch steps against the pre-update policy.
        adv `[M]`: the method's advantage of each valid sample."""
        own = self._actions[:, self.id : self.id + 1]
        logp_old = old_log_probs(self.actor_logits()).gather(1, own)[:, 0]

        def step(idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            logp = torch.log_softmax(self.actor(self._obs_all[idx]), -1).gather(1, own[idx])[:, 0]
            loss = clipped_surrogate(logp, logp_old[idx], adv[idx], self.spec.cfg.clip)
            return loss, {"policy_loss": loss}

        batches = self.minibatches()
        steps = [functools.partial(step, idx) for idx in batches]
        loss = fused.Surrogate(own[:, 0], logp_old, adv, self.spec.cfg.clip)
        return lockstep.Stream(
            self.actor_opt,
            [list(self.actor.parameters())],
            steps,
            "policy loss",
            fused=fused_steps(self.actor, self._obs_all, batches, loss),
        )

    def policy_advantages(self, inbox: list[Message], neighbours: Graph) -> torch.Tensor:
        """The advantage the policy ascends, `[M]` (IPPO: GAE of its own reward and critic)."""
        return self.advantages(self.values())

    def plan_update(self, k: int, inbox: list[Message], neighbours: Graph) -> lockstep.Plan:
        policy = self.policy_stream(self.policy_advantages(inbox, neighbours))
        return lockstep.Plan(self, [policy, self.critic_stream()])

    def modules(self) -> dict[str, Any]:
        return {**super().modules(), "actor": self.actor, "actor_opt": self.actor_opt}


@METHODS.register("ippo")
class IPPO(Method):
    """Independent PPO on individual rewards; nothing is shared."""

    name = "ippo"

    def make_agent(self, spec: AgentSpec) -> Agent:
        return PolicyAgent(spec)
