"""Neighbour topologies: who may exchange messages with whom in a round.

Each topology gives, per round, one neighbour set per agent (`list[frozenset[int]]`), always
symmetric (if j is i's neighbour, i is j's: sharing goes both ways) and never containing the agent
itself; and `potential(i)`, everyone i could ever be a neighbour of (AS keeps an anticipation
network for each of them).

- `full`: everyone else.
- `line`: adjacent indices, i - 1 and i + 1 (navigation's adjacent pairs); `ring` wraps around.
- `random-one`: each agent picks one peer uniformly at random each round; links are made mutual,
  so an agent also talks to everyone who picked it.
- `distance`: predators whose normalised distance |x_i - x_j| / 30 is <= 0.1 at any step of any
  episode of the round's rollout (paper section 5.1).

`every` (k >= 1) communicates only in rounds divisible by k; in other rounds every set is empty,
and AS drops the terms that need peers, as in the paper's scalability study.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from asfed.errors import AsfedError
from asfed.registry import Registry

Graph = list[frozenset[int]]
TOPOLOGIES: Registry[type] = Registry("topology")


class Topology:
    """Base: a static graph given by `potential`; subclasses may vary it per round."""

    needs_positions = False

    def __init__(self, num_agents: int, every: int = 1) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise AsfedError(f"every={every!r} is invalid; accepted: an integer >= 1")
        self.num_agents = num_agents
        self.every = every

    def potential(self, i: int) -> frozenset[int]:
        return frozenset(j for j in range(self.num_agents) if j != i)

    def neighbours(
        self, round_: int, rng: np.random.Generator, positions: np.ndarray | None = None
    ) -> Graph:
        """The neighbour sets of `round_` (positions: predators' x `[B, T, N]` for `distance`)."""
        if round_ % self.every:
            return [frozenset() for _ in range(self.num_agents)]
        return self._graph(rng, positions)

    def _graph(self, rng: np.random.Generator, positions: np.ndarray | None) -> Graph:
        return [self.potential(i) for i in range(self.num_agents)]


@TOPOLOGIES.register("full")
class Full(Topology):
    """Everyone talks to everyone."""


@TOPOLOGIES.register("line")
class Line(Topology):
    """Adjacent indices only, no wrap-around."""

    def potential(self, i: int) -> frozenset[int]:
        return frozenset(j for j in (i - 1, i + 1) if 0 <= j < self.num_agents)


@TOPOLOGIES.register("ring")
class Ring(Topology):
    """Adjacent indices, wrapping around."""

    def potential(self, i: int) -> frozenset[int]:
        return frozenset({(i - 1) % self.num_agents, (i + 1) % self.num_agents} - {i})


@TOPOLOGIES.register("random-one")
class RandomOne(Topology):
    """Each agent picks one random peer per round; links are mutual."""

    def _graph(self, rng: np.random.Generator, positions: np.ndarray | None) -> Graph:
        n = self.num_agents
        offset = rng.integers(1, n, size=n)  # never oneself
        picks = (np.arange(n) + offset) % n
        links = [set() for _ in range(n)]
        for i, j in enumerate(picks):
            links[i].add(int(j))
            links[int(j)].add(i)
        return [frozenset(s) for s in links]


@TOPOLOGIES.register("distance")
class Distance(Topology):
    """Predators within normalised distance 0.1 at any step of the round are neighbours."""

    needs_positions = True
    RADIUS = 0.1
    LENGTH = 30.0

    def _graph(self, rng: np.random.Generator, positions: np.ndarray | None) -> Graph:
        if positions is None:
            raise AsfedError("the distance topology needs agent positions (predation only)")
        x = positions.reshape(-1, self.num_agents) / self.LENGTH  # [B*T, N]
        close = (np.abs(x[:, :, None] - x[:, None, :]) <= self.RADIUS).any(0)
        np.fill_diagonal(close, False)
        return [frozenset(np.flatnonzero(row).tolist()) for row in close]


def make_topology(name: str, num_agents: int, every: int = 1) -> Topology:
    """The topology `name` over `num_agents` agents, communicating every `every` rounds."""
    cls: Callable[..., Topology] = TOPOLOGIES.get(name)
    return cls(num_agents, every)
