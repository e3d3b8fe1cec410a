"""How the world reaches its agents: the one thing the local and Flower engines do differently.

A federation runs Algorithm 1's sharing steps for the round loop: `begin` hands every agent its
slice and returns the messages of sharing step 0; `update` delivers each agent the messages routed
to it, runs update k and returns the messages of sharing step k (none after the last update).
`acting` are the policies the world acts with: the agents themselves in-process, copies loaded
from what the clients hand the world under Flower. Routing, checking and logging stay in the
round loop's relay, so both engines produce the same message log. Nothing else comes back from
an agent: statistics and checkpoints go to the agent's own storage.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from asfed.agents import lockstep
from asfed.agents.base import Agent, AgentSpec, Graph, RoundBatch
from asfed.agents.methods import Method
from asfed.comm.messages import Message
from asfed.dealer import AgentSecret, read_agent_secret


class Federation(ABC):
    """The agents of one run, reached in-process or over a network."""

    acting: list[Agent]

    @abstractmethod
    def begin(self, round_: int, slices: list[RoundBatch], graph: Graph) -> list[Message]:
        """Hand each agent its slice; return every message of sharing step 0."""

    @abstractmethod
    def update(
        self, k: int, round_: int, inboxes: list[list[Message]], graph: Graph, last: bool
    ) -> list[Message]:
        """Run update k on every agent; return sharing step k's messages. `last`: the round's
        final update (no share follows; the agents close the round and the acting policies
        change)."""

    @abstractmethod
    def checkpoint(self, round_: int) -> None:
        """Every agent saves its state after `round_` rounds to its own storage."""

    @abstractmethod
    def restore(self, round_: int) -> None:
        """Every agent reloads its own checkpoint of `round_`."""

    def close(self) -> None:  # noqa: B027 (optional hook, not abstract)
        """Release what the federation holds (worker processes); default: nothing."""


def own_secret(spec: AgentSpec, handed: list[AgentSecret] | None) -> AgentSecret:
    """The agent's secret: read by the agent from its own storage, or, for an agent without
    storage (in-memory runs), the one the dealer handed it."""
    if handed is None:
        return read_agent_secret(spec.storage, spec.agent_id)
    return handed[spec.agent_id]


class LocalFederation(Federation):
    """All agents in this process; the world acts with the agents themselves. secrets: for
    agents without storage, each agent's own, handed over in memory (else each reads its own)."""

    def __init__(
        self, method: Method, specs: list[AgentSpec], secrets: list[AgentSecret] | None = None
    ) -> None:
        self.agents = [method.build(spec, own_secret(spec, secrets)) for spec in specs]
        self.acting = self.agents

    def begin(self, round_: int, slices: list[RoundBatch], graph: Graph) -> list[Message]:
        out: list[Message] = []
        for agent, batch in zip(self.agents, slices, strict=True):
            agent.begin_round(batch)
            out += agent.share(0, round_, graph)
        return out

    def update(
        self, k: int, round_: int, inboxes: list[list[Message]], graph: Graph, last: bool
    ) -> list[Message]:
        replies = step_agents(self.agents, k, round_, inboxes, graph, last)
        return [m for reply in replies for m in reply]

    def checkpoint(self, round_: int) -> None:
        for agent in self.agents:
            agent.save_private(round_)

    def restore(self, round_: int) -> None:
        for agent in self.agents:
            agent.load_private(round_)


def step_agent(
    agent: Agent, k: int, round_: int, inbox: list[Message], graph: Graph, last: bool
) -> list[Message]:
    """Update k of one agent, then its share for update k + 1 (or, after the last update, the
    close of its round). The same on every engine."""
    agent.update(k, inbox, graph)
    if last:
        agent.end_round(round_)
        return []
    return agent.share(k, round_, graph)


def step_agents(
    agents: list[Agent],
    k: int,
    round_: int,
    inboxes: list[list[Message]],
    graph: Graph,
    last: bool,
) -> list[list[Message]]:
    """`step_agent` for the agents one process holds: their updates in lockstep (one backward
    pass and one Adam call a minibatch step, `asfed.agents.lockstep`: the same numbers as one
    agent at a time), then each one's share, in the agents' order."""
    lockstep.run(
        [agent.plan_update(k, inbox, graph) for agent, inbox in zip(agents, inboxes, strict=True)]
    )
    out = []
    for agent in agents:
        if last:
            agent.end_round(round_)
            out.append([])
        else:
            out.append(agent.share(k, round_, graph))
    return out
