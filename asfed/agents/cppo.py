"""Centralised PPO (CPPO): one learner with the team reward and a joint-action policy.

Agent 0 is the learner: it holds a policy over the A^2 joint actions and a critic of the team
reward. Agent 1 only sends it its rewards at the round's first sharing step (kind `reward`, to
the hub, whatever the topology). As in the paper, only N = 2 is supported: the joint action space
grows as A^N.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch
from torch import nn

from asfed.agents import fused, lockstep
from asfed.agents.base import Agent, AgentSpec, Graph, adam, fused_steps
from asfed.agents.methods import METHODS, Method, finite_policies, sample_categorical
from asfed.agents.networks import mlp
from asfed.agents.ppo import clipped_surrogate
from asfed.comm.messages import Message
from asfed.errors import AsfedError


class CentralLearner(Agent):
    """Agent 0: joint policy over A x A, critic of the team reward."""

    def __init__(self, spec: AgentSpec) -> None:
        super().__init__(spec)
        self.actor = mlp([spec.obs_dim, *spec.cfg.actor_hidden], spec.num_actions**2)
        self.actor_opt = adam(self.actor.parameters(), spec.cfg.actor_lr)
        self.team: np.ndarray | None = None

    def acting_logits(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor(obs)

    def acting_modules(self) -> dict[str, nn.Module]:
        return {"actor": self.actor}

    def plan_update(self, k: int, inbox: list[Message], neighbours: Graph) -> lockstep.Plan:
        others = [m.payload.astype(np.float64) for m in inbox if m.kind == "reward"]
        if k == 1:
            self.team = self.rewards + sum(others)
        joint = self._actions[:, 0] * self.spec.num_actions + self._actions[:, 1]
        adv = self.advantages(self.values(), rewards=self.team)
        with torch.no_grad():
            old = torch.log_softmax(self.actor(self._obs_all), -1).gather(1, joint[:, None])[:, 0]

        def step(idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            logits = self.actor(self._obs_all[idx])
            logp = torch.log_softmax(logits, -1).gather(1, joint[idx, None])[:, 0]
            loss = clipped_surrogate(logp, old[idx], adv[idx], self.spec.cfg.clip)
            return loss, {"policy_loss": loss}

        batches = self.minibatches()
        steps = [functools.partial(step, idx) for idx in batches]
        groups = [list(self.actor.parameters())]
        loss = fused.Surrogate(joint, old, adv, self.spec.cfg.clip)
        policy = lockstep.Stream(
            self.actor_opt,
            groups,
            steps,
            "policy loss",
            fused=fused_steps(self.actor, self._obs_all, batches, loss),
        )
        return lockstep.Plan(self, [policy, self.critic_stream(self.team)])

    def modules(self) -> dict[str, Any]:
        return {**super().modules(), "actor": self.actor, "actor_opt": self.actor_opt}


class RewardSender(Agent):
    """Agent 1: acts through the learner's joint policy and reports its rewards to it."""

    def acting_logits(self, obs: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("CPPO acts through the central learner's joint policy")

    def outgoing(self, step: int, round_: int, neighbours: Graph) -> list[Message]:
        if step:
            return []
        return [Message(round_, step, self.id, 0, "reward", self.rewards)]

    def plan_update(self, k: int, inbox: list[Message], neighbours: Graph) -> lockstep.Plan:
        return lockstep.Plan(self, [])  # it learns nothing


@METHODS.register("cppo")
class CentralisedPPO(Method):
    name = "cppo"
    allowed_kinds = frozenset({"reward"})
    hub = 0

    def check(self, env_name: str, num_agents: int) -> None:
        if num_agents != 2:
            raise AsfedError(
                f"cppo needs exactly 2 agents (its joint action space grows as A^N), got "
                f"{num_agents} for {env_name}; accepted: --agents 2"
            )

    def make_agent(self, spec: AgentSpec) -> Agent:
        return CentralLearner(spec) if spec.agent_id == 0 else RewardSender(spec)

    def sample_actions(
        self, agents: list[Agent], obs: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        with torch.no_grad():
            probs = agents[0].acting_probs(torch.as_tensor(obs))
        finite_policies(probs[:, None], [agents[0].id])
        joint = sample_categorical(probs.double().numpy(), rng)
        return np.stack(np.divmod(joint, agents[0].spec.num_actions), axis=-1)
