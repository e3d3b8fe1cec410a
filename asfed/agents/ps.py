"""Policy parameter sharing (PS), after Zhang & Zavlanos 2019.

Each agent keeps a local copy of the joint policy of all agents (one head per agent over a shared
torso, a factorised joint distribution), acts with its own head, and before each update sends the
joint policy's parameters to its neighbours (kind `policy_params`) and takes the consensus step
theta_i <- sum_j c_ij theta_j with Metropolis weights (doubly stochastic, as consensus
optimisation needs). Its local step ascends its own objective (GAE of its own reward and own
critic; critics are learned independently, with no consensus), so the consensus point ascends the
sum of the agents' objectives. The trust region is PPO's per factor: the surrogate is
sum_j min(r_j A_i, clip(r_j) A_i) with r_j = pi(a_j|s) / pi_old(a_j|s), so each agent's component
moves as far as PPO's clip allows one policy (clipping the product of N ratios at 1 +- eps would
shrink each factor's step like (1 + eps)^(1/N) and stall PS at N = 20 or 30 by construction).
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

from asfed.agents import fused, lockstep
from asfed.agents.base import (
    Agent,
    AgentSpec,
    Graph,
    adam,
    consensus_into,
    flat_params,
    fused_steps,
)
from asfed.agents.methods import METHODS, Method
from asfed.agents.networks import mlp
from asfed.comm.messages import Message


def factor_surrogate(
    logp_new: torch.Tensor, logp_old: torch.Tensor, adv: torch.Tensor, clip: float
) -> torch.Tensor:
    """Per-factor clipped surrogate loss (to minimise). logp `[T, N]`, adv `[T]`."""
    ratio = torch.exp(logp_new - logp_old)
    a = adv[:, None]
    return -torch.min(ratio * a, ratio.clamp(1 - clip, 1 + clip) * a).sum(1).mean()


class PSAgent(Agent):
    def __init__(self, spec: AgentSpec) -> None:
        super().__init__(spec)
        n, a = spec.num_agents, spec.num_actions
        self.joint = mlp([spec.obs_dim, *spec.cfg.actor_hidden], n * a)
        self.actor_opt = adam(self.joint.parameters(), spec.cfg.actor_lr)

    def _logp_each(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """log pi(a_j|s) of every factor j under the joint policy. obs `[M, D]` -> `[M, N]`."""
        logits = self.joint(obs).view(obs.shape[0], self.spec.num_agents, self.spec.num_actions)
        return torch.log_softmax(logits, -1).gather(2, actions[:, :, None])[..., 0]

    def acting_logits(self, obs: torch.Tensor) -> torch.Tensor:
        logits = self.joint(obs).view(obs.shape[0], self.spec.num_agents, self.spec.num_actions)
        return logits[:, self.id]

    def acting_modules(self) -> dict[str, nn.Module]:
        return {"joint": self.joint}

    def outgoing(self, step: int, round_: int, neighbours: Graph) -> list[Message]:
        return self.to_neighbours(
            step, round_, neighbours, "policy_params", lambda: flat_params(self.joint)
        )

    def plan_update(self, k: int, inbox: list[Message], neighbours: Graph) -> lockstep.Plan:
        received = {m.sender: m.payload for m in inbox if m.kind == "policy_params"}
        if neighbours[self.id]:
            consensus_into(self.joint, self.id, received, neighbours)
            self.params_changed()
        adv = self.advantages(self.values())
        with torch.no_grad():
            old = self._logp_each(self._obs_all, self._actions)

        def step(idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            return loss_at(self.joint(self._obs_all[idx]), idx)

        def loss_at(
            logits: torch.Tensor, idx: torch.Tensor
        ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            """The factor surrogate from the joint network's logits `[T, N * A]`."""
            shaped = logits.view(logits.shape[0], self.spec.num_agents, self.spec.num_actions)
            logp = torch.log_softmax(shaped, -1).gather(2, self._actions[idx, :, None])[..., 0]
            loss = factor_surrogate(logp, old[idx], adv[idx], self.spec.cfg.clip)
            return loss, {"policy_loss": loss}

        def written_out(
            out: torch.Tensor, idx: torch.Tensor
        ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
            """`loss_at` on the stacked output `[1, T, N * A]` with its gradient written out:
            the factor surrogate is the sum over the N factors of a clipped surrogate, each
            `fused.surrogate`'s on its own `[T, A]` block of the logits."""
            t, n, a = out.shape[1], self.spec.num_agents, self.spec.num_actions
            factors = out[0].view(t, n, a).transpose(0, 1)  # [N, T, A]
            data = [self._actions[idx].T, old[idx].T, adv[idx].expand(n, t)]
            each, grad = fused.surrogate(factors, data, self.spec.cfg.clip)
            loss = each.sum()
            return loss, {"policy_loss": loss}, grad.transpose(0, 1).reshape(1, t, n * a)

        batches = self.minibatches()
        steps = [functools.partial(step, idx) for idx in batches]
        groups = [list(self.joint.parameters())]
        head = fused.Head(written_out, written=True)
        policy = lockstep.Stream(
            self.actor_opt,
            groups,
            steps,
            "policy loss",
            fused=fused_steps(self.joint, self._obs_all, batches, head),
        )
        return lockstep.Plan(self, [policy, self.critic_stream()])

    def modules(self) -> dict[str, Any]:
        return {**super().modules(), "joint": self.joint, "actor_opt": self.actor_opt}


@METHODS.register("ps")
class PolicySharing(Method):
    name = "ps"
    allowed_kinds = frozenset({"policy_params"})

    def make_agent(self, spec: AgentSpec) -> Agent:
        return PSAgent(spec)
