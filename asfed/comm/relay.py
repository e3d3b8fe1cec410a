"""The relay: routes each message to its receiver only, refuses what a method may not send, and
keeps the round's record (for the log) and per-agent byte counts (for the metrics).

The local engine uses it in-process; the Flower engine's ServerApp plays the same role. An agent
sees exactly the messages delivered to it, and the audit reads exactly what the relay recorded.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from asfed.comm.messages import Message, PrivacyViolation


class Relay:
    """In-memory relay for one round at a time."""

    def __init__(self, num_agents: int, allowed_kinds: frozenset[str], hub: int | None = None):
        self.num_agents = num_agents
        self.allowed_kinds = allowed_kinds
        self.hub = hub  # CPPO's central learner may receive from anyone
        self._inboxes: dict[int, list[Message]] = defaultdict(list)
        self.record: list[Message] = []
        self.bytes_sent = np.zeros(num_agents, np.int64)

    def start_round(self) -> None:
        self.record = []
        self.bytes_sent = np.zeros(self.num_agents, np.int64)

    def send(self, msg: Message, neighbours: list[frozenset[int]]) -> None:
        """Deliver `msg` if its kind is allowed and its receiver is a neighbour of its sender."""
        if msg.kind not in self.allowed_kinds:
            raise PrivacyViolation(
                f"agent {msg.sender} tried to send {msg.kind!r}; this method allows "
                f"{sorted(self.allowed_kinds)}"
            )
        if msg.receiver != self.hub and msg.receiver not in neighbours[msg.sender]:
            raise PrivacyViolation(
                f"agent {msg.sender} tried to send to agent {msg.receiver}, not a neighbour "
                f"this round (neighbours: {sorted(neighbours[msg.sender])})"
            )
        self._inboxes[msg.receiver].append(msg)
        self.record.append(msg)
        self.bytes_sent[msg.sender] += msg.nbytes

    def collect(self, receiver: int) -> list[Message]:
        """Hand `receiver` what was delivered to it since it last collected."""
        return self._inboxes.pop(receiver, [])
