"""How the world reaches its agents: the one thing the local and Flower engines do differently.

A federation runs Algorithm 1's sharing steps for the round loop: `begin` hands every agent its
slice and returns the messages of sharing step 0; `update` delivers each agent the messages routed
to it, runs update k and returns the messages of sharing step k. `acting` are the policies the
world acts with: the agents themselves in-process, copies loaded from what the clients hand the
world under Flower. Routing, checking and logging stay in the round loop's relay, so both
engines produce the same message log.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from asfed.agents.base import Agent, AgentSpec, Graph, RoundBatch
from asfed.agents.methods import Method
from asfed.comm.messages import Message


class Federation(ABC):
    """The agents of one run, reached in-process or over a network."""

    acting: list[Agent]

    @abstractmethod
    def begin(self, round_: int, slices: list[RoundBatch], graph: Graph) -> list[Message]:
        """Hand each agent its slice; return every message of sharing step 0."""

    @abstractmethod
    def update(
        self, k: int, round_: int, inboxes: list[list[Message]], graph: Graph, last: bool
    ) -> tuple[list[Message], list[dict[str, float]]]:
        """Run update k on every agent; return sharing step k's messages and each agent's
        statistics. `last`: the round's final update (acting policies change after it)."""

    @abstractmethod
    def agent_states(self) -> list[dict[str, Any]]:
        """Every agent's full state (for a checkpoint)."""

    @abstractmethod
    def load_agent_states(self, states: list[dict[str, Any]]) -> None:
        """Restore every agent from a checkpoint."""


class LocalFederation(Federation):
    """All agents in this process; the world acts with the agents themselves."""

    def __init__(self, method: Method, specs: list[AgentSpec]) -> None:
        self.agents = [method.make_agent(spec) for spec in specs]
        self.acting = self.agents

    def begin(self, round_: int, slices: list[RoundBatch], graph: Graph) -> list[Message]:
        out: list[Message] = []
        for agent, batch in zip(self.agents, slices, strict=True):
            agent.begin_round(batch)
            out += agent.outgoing(0, round_, graph)
        return out

    def update(
        self, k: int, round_: int, inboxes: list[list[Message]], graph: Graph, last: bool
    ) -> tuple[list[Message], list[dict[str, float]]]:
        out: list[Message] = []
        stats = []
        for agent, inbox in zip(self.agents, inboxes, strict=True):
            stats.append(agent.update(k, inbox, graph))
            out += agent.outgoing(k, round_, graph)
        return out, stats

    def agent_states(self) -> list[dict[str, Any]]:
        return [a.state_dict() for a in self.agents]

    def load_agent_states(self, states: list[dict[str, Any]]) -> None:
        for agent, state in zip(self.agents, states, strict=True):
            agent.load_state_dict(state)
