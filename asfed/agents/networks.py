"""ReLU MLPs sized per the paper's Table 2, and AS's two policy layouts.

`SeparatePolicies` is the paper's layout: one actor network for the agent's own policy pi^ii and
one per anticipated neighbour pi^ij. `MultiHeadPolicy` is the paper's proposed remedy for the
N^2 cost: one torso, an own head and one head per anticipated neighbour. Both map observations
`[T, obs_dim]` to logits: own `[T, A]` and, per neighbour j, `[T, A_j]`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn


def relu_stack(sizes: Sequence[int]) -> nn.Sequential:
    """Linear-ReLU layers through `sizes` (input width first)."""
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers)


def mlp(sizes: Sequence[int], out: int) -> nn.Sequential:
    """Linear-ReLU layers through `sizes` (input first), then a linear output of width `out`."""
    return nn.Sequential(*relu_stack(sizes), nn.Linear(sizes[-1], out))


class SeparatePolicies(nn.Module):
    """pi^ii and pi^ij (j in `others`) as separate MLPs of the same hidden sizes."""

    def __init__(
        self, obs_dim: int, hidden: Sequence[int], num_actions: int, others: dict[int, int]
    ) -> None:
        super().__init__()
        self.own = mlp([obs_dim, *hidden], num_actions)
        self.anticipations = nn.ModuleDict(
            {str(j): mlp([obs_dim, *hidden], a) for j, a in others.items()}
        )

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        return self.own(obs), {int(j): net(obs) for j, net in self.anticipations.items()}

    def own_logits(self, obs: torch.Tensor) -> torch.Tensor:
        """Only pi^ii's logits (what acting needs)."""
        return self.own(obs)


class MultiHeadPolicy(nn.Module):
    """One torso shared by the own head and one head per anticipated neighbour."""

    def __init__(
        self, obs_dim: int, hidden: Sequence[int], num_actions: int, others: dict[int, int]
    ) -> None:
        super().__init__()
        sizes = [obs_dim, *hidden]
        self.torso = relu_stack(sizes)
        self.own = nn.Linear(sizes[-1], num_actions)
        self.anticipations = nn.ModuleDict(
            {str(j): nn.Linear(sizes[-1], a) for j, a in others.items()}
        )

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        h = self.torso(obs)
        return self.own(h), {int(j): head(h) for j, head in self.anticipations.items()}

    def own_logits(self, obs: torch.Tensor) -> torch.Tensor:
        return self.own(self.torso(obs))


POLICY_LAYOUTS = {"separate": SeparatePolicies, "multihead": MultiHeadPolicy}
