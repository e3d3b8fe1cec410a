"""The method registry: what each method may send, how its agents are built and how it acts."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch

from asfed.agents.base import Agent, AgentSpec, Diverged
from asfed.dealer import AgentSecret
from asfed.registry import Registry

METHODS: Registry[type] = Registry("method")


class Method(ABC):
    """A learning method: one agent class, the message kinds it may send, and how it acts."""

    name: str
    allowed_kinds: frozenset[str] = frozenset()
    hub: int | None = None  # an agent that may receive from anyone (CPPO's learner)

    def check(self, env_name: str, num_agents: int) -> None:
        """Raise an `AsfedError` if the method cannot run this env (default: any)."""
        return None

    @abstractmethod
    def make_agent(self, spec: AgentSpec) -> Agent:
        """Build agent `spec.agent_id` (on the CPU; `build` places it)."""

    def build(self, spec: AgentSpec, secret: AgentSecret | None = None) -> Agent:
        """Agent `spec.agent_id`, on its device, holding its own `secret` (None: an acting copy,
        which acts but cannot learn). Networks are initialised on the CPU and then moved, so the
        same seed gives the same initial weights on any device."""
        agent = self.make_agent(spec)
        if secret is not None:
            agent.hold(secret)
        agent.place()
        return agent

    def sample_actions(
        self, agents: list[Agent], obs: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """Each agent samples from its acting policy. obs `[B, D]` -> actions int64 `[B, N]`."""
        o = torch.as_tensor(obs)
        with torch.no_grad():
            probs = torch.stack([a.acting_probs(o) for a in agents], 1)
        p = probs.double().numpy()
        if not np.isfinite(p).all():  # one check a step; naming the agent only when one fails
            finite_policies(probs, [a.id for a in agents])
        return sample_categorical(p, rng)


def finite_policies(probs: torch.Tensor, ids: list[int]) -> None:
    """Stop the run if an acting policy's probabilities `[B, N, A]` are not finite (a
    diverged network), naming the agent, rather than sample garbage actions."""
    bad = ~torch.isfinite(probs).all(-1).all(0)
    if bool(bad.any()):
        agent = ids[int(bad.nonzero()[0, 0])]
        raise Diverged(
            f"agent {agent}'s acting policy has non-finite probabilities: training diverged "
            "(try smaller learning rates or rho); the last checkpoint is intact"
        )


def sample_categorical(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Inverse-CDF sampling, one draw per row of `probs` `[..., A]`. Returns int64 `[...]`."""
    u = rng.random((*probs.shape[:-1], 1))
    idx = (np.cumsum(probs, -1) < u).sum(-1)
    return np.minimum(idx, probs.shape[-1] - 1)
