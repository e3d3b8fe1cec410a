"""ReLU MLPs sized per the paper's Table 2, and AS's two policy layouts.

`SeparatePolicies` is the paper's layout: one actor network for the agent's own policy pi^ii and
one per anticipated neighbour pi^ij. `MultiHeadPolicy` is the paper's proposed remedy for the
N^2 cost: one torso, an own head and one head per anticipated neighbour. Both map observations
`[T, obs_dim]` to logits: own `[T, A]` and, per neighbour j, `[T, A_j]`.

`logits(obs, peers)` is what training calls: the same networks, evaluated together. When the
networks are small (Table 2's 128-64 MLPs: exchange, navigation, predation), the own and the
listed anticipation MLPs, which share their input and their shapes, run each layer as one batched
matrix product over weights stacked on the fly (`stacked_mlp`): a minibatch step of an agent with
J neighbours then calls 3 matrix products instead of 3 (J + 1), and at 30 rows a step (predation:
a step per episode) those calls, not their arithmetic, are the cost. The parameters stay separate
modules, so checkpoints, clip groups and the acting policy are unchanged. Large networks (the
1024-256 MLPs of cleanup and harvest) run one by one: copying their weights into a stack every
step costs more than the calls it saves (measured: cleanup AS 12% slower stacked). The multi-head
layout always stacks its heads (single Linear layers of a few thousand weights: cheap to copy).
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


def mlp_forward(net: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """`net(x)` for an `mlp` (Linear and ReLU layers only), without nn.Module's call machinery:
    the same operators, so the same bits. Acting calls its policy once an env step for each
    agent, 300 small calls a navigation round, where each module call's Python (six a call)
    costs about as much as the 96-row products. x `[B, in]` -> `[B, out]`."""
    for layer in net:
        if type(layer) is nn.Linear:
            x = nn.functional.linear(x, layer.weight, layer.bias)
        elif type(layer) is nn.ReLU:
            x = torch.relu(x)
        else:
            raise TypeError(f"mlp_forward runs Linear and ReLU layers, not {type(layer).__name__}")
    return x


def stacked_linear(layers: Sequence[nn.Linear], x: torch.Tensor) -> torch.Tensor:
    """J Linear layers of one shape applied to one input: x `[T, in]` -> `[J, T, out]` (each
    layer's own weights: one matrix product over them concatenated)."""
    weight = torch.cat([layer.weight for layer in layers])  # [J * out, in]
    bias = torch.cat([layer.bias for layer in layers])
    out = layers[0].out_features
    return nn.functional.linear(x, weight, bias).view(x.shape[0], len(layers), out).transpose(0, 1)


def stacked_mlp(layers: Sequence[Sequence[nn.Linear]], x: torch.Tensor) -> torch.Tensor:
    """J MLPs of one architecture (`mlp`'s Linear-ReLU layers, given as each net's Linear
    layers) on one input, layer by layer as batched matrix products: x `[T, in]` ->
    `[J, T, out]`, equal to stacking each net's output."""
    h = stacked_linear([group[0] for group in layers], x)
    for depth in range(1, len(layers[0])):
        h = torch.relu(h)
        weight = torch.stack([group[depth].weight for group in layers])  # [J, out, in]
        bias = torch.stack([group[depth].bias for group in layers])  # [J, out]
        h = torch.baddbmm(bias[:, None, :], h, weight.transpose(1, 2))
    return h


STACK_LIMIT = 100_000
"""Networks with at most this many parameters each are evaluated stacked (see the module's
docstring): Table 2's 128-64 MLPs have about 11k-18k, its 1024-256 ones about 500k."""


def _shape(layers: Sequence[nn.Linear]) -> tuple[tuple[int, int], ...]:
    return tuple((layer.in_features, layer.out_features) for layer in layers)


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
        # each network's Linear layers, looked up once (a module walk per step costs more than
        # the step's matrix products on small minibatches)
        self._layers: dict[int | None, list[nn.Linear]] = {
            j: [m for m in net.modules() if isinstance(m, nn.Linear)]
            for j, net in [(None, self.own), *((int(j), n) for j, n in self.anticipations.items())]
        }
        self.stacked = sum(p.numel() for p in self.own.parameters()) <= STACK_LIMIT
        own_shape = _shape(self._layers[None])
        self._own_stacks = all(_shape(layers) == own_shape for layers in self._layers.values())

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        return self.own(obs), {int(j): net(obs) for j, net in self.anticipations.items()}

    def own_logits(self, obs: torch.Tensor) -> torch.Tensor:
        """Only pi^ii's logits (what acting needs)."""
        return mlp_forward(self.own, obs)

    def networks(self, peers: Sequence[int]) -> list[nn.Sequential]:
        """pi^ii's MLP, then pi^ij's for j in `peers`: what `logits` evaluates, in its order."""
        return [self.own, *(self.anticipations[str(j)] for j in peers)]

    def logits(self, obs: torch.Tensor, peers: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """pi^ii's logits `[T, A]` and pi^ij's for j in `peers`, stacked `[P, T, A_j]` (all
        peers' action counts equal): one stacked pass over the P + 1 networks when they are
        small, else each network on its own."""
        if not self.stacked:
            ants = [self.anticipations[str(j)](obs) for j in peers]
            own = self.own(obs)
            return own, torch.stack(ants) if ants else own.new_zeros((0, *own.shape))
        ants = [self._layers[j] for j in peers]
        if not self._own_stacks:  # other action counts than the own: stack the anticipations
            return self.own(obs), stacked_mlp(ants, obs)
        out = stacked_mlp([self._layers[None], *ants], obs)
        return out[0], out[1:]


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
        self._own_stacks = all(a == num_actions for a in others.values())

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        h = self.torso(obs)
        return self.own(h), {int(j): head(h) for j, head in self.anticipations.items()}

    def own_logits(self, obs: torch.Tensor) -> torch.Tensor:
        return self.own(self.torso(obs))

    def networks(self, peers: Sequence[int]) -> list[nn.Sequential]:
        """None as separate MLPs (one torso, heads): the taped steps train it."""
        return []

    def logits(self, obs: torch.Tensor, peers: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """As `SeparatePolicies.logits`: the torso once, then the heads as one stacked layer."""
        ants = [self.anticipations[str(j)] for j in peers]
        h = self.torso(obs)
        if not self._own_stacks:
            return self.own(h), stacked_linear(ants, h)
        out = stacked_linear([self.own, *ants], h)
        return out[0], out[1:]


POLICY_LAYOUTS = {"separate": SeparatePolicies, "multihead": MultiHeadPolicy}
