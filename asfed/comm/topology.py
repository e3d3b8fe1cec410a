"""Neighbour topologies: who may exchange messages with whom in a round.

Each topology gives, per round, one neighbour set per agent (`list[frozenset[int]]`), always
symmetric (if j is i's neighbour, i is j's: sharing goes both ways) and never containing the agent
itself; and `potential(i)`, everyone i could ever be a neighbour of (AS keeps an anticipation
network for each of them).

- `full`: everyone else.
- `line`: adjacent indices, i - 1 and i + 1 (navigation's adjacent pairs); `ring` wraps around.
- `random-one`: each agent picks one peer uniformly at random each round; links are made mutual,
  so an agent also talks to everyone who picked it.
- `distance`: predators whose normalised distance |x_i - x_j| / 30 is <= 0.1 (paper section 5.1),
  per step: i and j talk this round if they were close on at least one state, and the graph
  records the rows (states) where they were, so a message from j to i carries only those rows and
  AS uses j only there. (A union over the round would make the graph full: with 320 episodes a
  round every pair meets somewhere.)

A graph is a `Neighbourhoods`: the per-round sets, plus per-pair rows where the topology is per
step (`rows_of(i, j)`: indices into the round's M valid states, row-major over [B, T]; None: all).

`every` (k >= 1) communicates only in rounds divisible by k; in other rounds every set is empty,
and AS drops the terms that need peers, as in the paper's scalability study.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from asfed.errors import AsfedError
from asfed.registry import Registry

TOPOLOGIES: Registry[type] = Registry("topology")


class Neighbourhoods(list):
    """One round's neighbour sets (a `list[frozenset[int]]`, agent i's at index i), and for
    per-step topologies the rows where each pair were neighbours.

    rows: `{(i, j): int64 [R]}` sorted indices into the round's M valid states, symmetric, only
    for pairs in the sets; None when every pair of the sets talks on every row. degrees: `[N]`
    each agent's set size (for consensus weights).
    """

    def __init__(
        self,
        sets: list[frozenset[int]],
        rows: dict[tuple[int, int], np.ndarray] | None = None,
        num_rows: int | None = None,
        degrees: list[int] | None = None,
    ) -> None:
        super().__init__(sets)
        self.rows = rows
        self.num_rows = num_rows
        self.degrees = [len(s) for s in sets] if degrees is None else list(degrees)

    def degree(self, i: int) -> int:
        """|N_i| (public: an agent that knows only its own set is told its neighbours' degrees)."""
        return self.degrees[i]

    def rows_of(self, i: int, j: int) -> np.ndarray | None:
        """The rows where i and j were neighbours (None: all rows of the round)."""
        return None if self.rows is None else self.rows[(i, j)]

    def mean_degree(self) -> float:
        """Neighbours per agent, averaged over agents and, per step, over the round's states."""
        n = len(self)
        if not n:
            return 0.0
        if self.rows is None or not self.num_rows:
            return float(np.mean([len(s) for s in self]))
        return sum(len(r) for r in self.rows.values()) / (n * self.num_rows)


Graph = Neighbourhoods


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
    ) -> Neighbourhoods:
        """The neighbourhoods of `round_` (positions: predators' x on the round's M valid
        states, `[M, N]`, for `distance`)."""
        if round_ % self.every:
            return Neighbourhoods([frozenset() for _ in range(self.num_agents)])
        return self._graph(rng, positions)

    def _graph(self, rng: np.random.Generator, positions: np.ndarray | None) -> Neighbourhoods:
        return Neighbourhoods([self.potential(i) for i in range(self.num_agents)])


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

    def _graph(self, rng: np.random.Generator, positions: np.ndarray | None) -> Neighbourhoods:
        n = self.num_agents
        offset = rng.integers(1, n, size=n)  # never oneself
        picks = (np.arange(n) + offset) % n
        links = [set() for _ in range(n)]
        for i, j in enumerate(picks):
            links[i].add(int(j))
            links[int(j)].add(i)
        return Neighbourhoods([frozenset(s) for s in links])


@TOPOLOGIES.register("distance")
class Distance(Topology):
    """Predators within normalised distance 0.1 are neighbours, state by state."""

    needs_positions = True
    RADIUS = 0.1
    LENGTH = 30.0

    def _graph(self, rng: np.random.Generator, positions: np.ndarray | None) -> Neighbourhoods:
        if positions is None:
            raise AsfedError("the distance topology needs agent positions (predation only)")
        n = self.num_agents
        x = np.asarray(positions).reshape(-1, n) / self.LENGTH  # [M, N]
        close = np.abs(x[:, :, None] - x[:, None, :]) <= self.RADIUS  # [M, N, N]
        close[:, np.arange(n), np.arange(n)] = False
        ever = close.any(0)
        rows = {
            (i, j): np.flatnonzero(close[:, i, j])
            for i in range(n)
            for j in np.flatnonzero(ever[i]).tolist()
        }
        sets = [frozenset(np.flatnonzero(row).tolist()) for row in ever]
        return Neighbourhoods(sets, rows, num_rows=x.shape[0])


def make_topology(name: str, num_agents: int, every: int = 1) -> Topology:
    """The topology `name` over `num_agents` agents, communicating every `every` rounds."""
    cls: Callable[..., Topology] = TOPOLOGIES.get(name)
    return cls(num_agents, every)
