"""What every learner shares: its private slice of a round, its critic, PPO's minibatch loop.

An agent holds only its own reward stream, networks and optimiser state. The engine hands it a
`RoundBatch` (the public trajectory plus its own rewards), asks it for the messages it sends at
each sharing step, and gives it the messages delivered to it before each of the K updates
(Algorithm 1: share, update, share again; K updates and K + 1 sharing steps a round).
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from asfed.agents.hparams import PPOConfig
from asfed.agents.networks import mlp
from asfed.agents.ppo import gae, value_loss
from asfed.comm.messages import Message

Graph = list[frozenset[int]]
MAX_GRAD_NORM = 0.5  # PPO's usual global-norm clip; the paper is silent


@dataclasses.dataclass(frozen=True)
class AgentSpec:
    """Everything an agent is built from (nothing about other agents' rewards)."""

    agent_id: int
    num_agents: int
    obs_dim: int
    num_actions: int
    potential: frozenset[int]  # agents it may ever exchange messages with
    cfg: PPOConfig
    minibatches: int
    seed: int
    layout: str = "separate"


@dataclasses.dataclass
class RoundBatch:
    """One agent's view of a round of B episodes of T steps.

    obs float32 `[B, T + 1, D]` (the common state, after each step; the last is the bootstrap
    state), actions int `[B, T, N]` (the public joint actions), rewards float `[B, T]` (this agent's
    own), terminated bool `[B, T]`, valid bool `[B, T]` (the step happened before termination).
    """

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    valid: np.ndarray


class Agent(ABC):
    """Base learner: critic V_i on its own rewards plus a method-specific policy."""

    def __init__(self, spec: AgentSpec) -> None:
        self.spec = spec
        self.id = spec.agent_id
        torch.manual_seed(spec.seed)  # network initialisation, reproducible per agent
        self.gen = torch.Generator().manual_seed(spec.seed + 1)  # minibatch order
        self.critic = mlp([spec.obs_dim, *spec.cfg.critic_hidden], 1)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=spec.cfg.critic_lr)
        self.batch: RoundBatch | None = None

    # ---- what the world and the engine call -------------------------------------------------

    @abstractmethod
    def acting_logits(self, obs: torch.Tensor) -> torch.Tensor:
        """Logits of the acting policy. obs `[B, D]` -> `[B, A]` (CPPO: `[B, A^N]`)."""

    def begin_round(self, batch: RoundBatch) -> None:
        """Take this round's slice and precompute what the K updates reuse."""
        self.batch = batch
        self._obs_all = torch.as_tensor(batch.obs[:, :-1][batch.valid])  # [M, D]
        self._actions = torch.as_tensor(batch.actions[batch.valid])  # [M, N]
        self._obs_seq = torch.as_tensor(batch.obs)  # [B, T + 1, D]

    def outgoing(self, step: int, round_: int, neighbours: Graph) -> list[Message]:
        """Messages this agent sends at sharing step `step` (0..K). Default: none."""
        return []

    def to_neighbours(
        self, step: int, round_: int, neighbours: Graph, kind: str, payload: Callable[[], Any]
    ) -> list[Message]:
        """`payload()` to every current neighbour, at the sharing steps that feed an update
        (0..K-1; a share after the last update would feed nothing). For VS, VPS and PS."""
        peers = sorted(neighbours[self.id])
        if step >= self.spec.cfg.epochs or not peers:
            return []
        data = payload()
        return [Message(round_, step, self.id, j, kind, data) for j in peers]

    @abstractmethod
    def update(self, k: int, inbox: list[Message], neighbours: Graph) -> dict[str, float]:
        """Update k (1..K) with the messages delivered since the previous sharing step."""

    # ---- shared machinery -------------------------------------------------------------------

    def values(self) -> np.ndarray:
        """V_i on every state of the round. Returns float64 `[B, T + 1]`."""
        with torch.no_grad():
            return self.critic(self._obs_seq)[..., 0].double().numpy()

    def advantages(self, values: np.ndarray, rewards: np.ndarray | None = None) -> torch.Tensor:
        """GAE (Eq. 17) of the valid samples under `values` `[B, T + 1]` (own rewards unless
        `rewards` `[B, T]` is given). Returns float32 `[M]`."""
        b = self.batch
        r = b.rewards if rewards is None else rewards
        adv, _ = gae(r, values, b.terminated, self.spec.cfg.gamma, self.spec.cfg.gae_lambda)
        return torch.as_tensor(adv[b.valid], dtype=torch.float32)

    def fit_critic(self, values: np.ndarray, rewards: np.ndarray | None = None) -> float:
        """One epoch of minibatch regression of V_i on discounted returns (Eq. 18), bootstrapped
        at horizon cuts from `values` (this critic's, before the epoch)."""
        b = self.batch
        r = b.rewards if rewards is None else rewards
        _, ret = gae(r, values, b.terminated, self.spec.cfg.gamma, 1.0)
        targets = torch.as_tensor(ret[b.valid], dtype=torch.float32)
        losses = []
        for idx in self.minibatches():
            loss = value_loss(self.critic(self._obs_all[idx])[:, 0], targets[idx])
            self._step(self.critic_opt, self.critic, loss)
            losses.append(loss.item())
        return mean(losses)

    def minibatches(self) -> list[torch.Tensor]:
        """A fresh random split of the M valid samples into `minibatches` index sets."""
        m = self._obs_all.shape[0]
        if m == 0:  # every episode of the round was over at reset: nothing to learn from
            return []
        perm = torch.randperm(m, generator=self.gen)
        return list(torch.tensor_split(perm, min(self.spec.minibatches, m)))

    @staticmethod
    def _step(opt: torch.optim.Optimizer, module: nn.Module, loss: torch.Tensor) -> None:
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(module.parameters(), MAX_GRAD_NORM)
        opt.step()

    # ---- what the world acts with -----------------------------------------------------------

    def acting_modules(self) -> dict[str, nn.Module]:
        """The modules `acting_logits` uses: all the world receives of an agent (default none)."""
        return {}

    def acting_state(self) -> dict[str, torch.Tensor]:
        """The acting modules' parameters as one flat state dict (`module.param` keys)."""
        return {
            f"{name}.{key}": value
            for name, module in self.acting_modules().items()
            for key, value in module.state_dict().items()
        }

    def load_acting_state(self, state: dict[str, torch.Tensor]) -> None:
        for name, module in self.acting_modules().items():
            prefix = f"{name}."
            module.load_state_dict(
                {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            )

    # ---- checkpoints ------------------------------------------------------------------------

    def modules(self) -> dict[str, Any]:
        """Everything with state: networks and optimisers (subclasses add theirs)."""
        return {"critic": self.critic, "critic_opt": self.critic_opt}

    def state_dict(self) -> dict[str, Any]:
        out = {k: m.state_dict() for k, m in self.modules().items()}
        out["gen"] = self.gen.get_state()
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, m in self.modules().items():
            m.load_state_dict(state[k])
        self.gen.set_state(state["gen"])


def mean(values: list[float]) -> float:
    """The mean of a round's per-minibatch statistics (NaN when there were none)."""
    return float(np.mean(values)) if values else float("nan")


def flat_params(module: nn.Module) -> np.ndarray:
    """A module's parameters as one float32 vector (what parameter-sharing methods send)."""
    return torch.nn.utils.parameters_to_vector(module.parameters()).detach().numpy().copy()


def average_into(module: nn.Module, vectors: list[np.ndarray]) -> None:
    """Consensus step: set the module's parameters to the mean of its own and `vectors`."""
    own = torch.nn.utils.parameters_to_vector(module.parameters()).detach()
    mean = torch.stack([own, *(torch.as_tensor(v) for v in vectors)]).mean(0)
    torch.nn.utils.vector_to_parameters(mean, module.parameters())
