"""The relay: routes each message to its receiver only, refuses what a method may not send, and
keeps the round's record (for the log) and per-agent byte counts (for the metrics).

The local engine uses it in-process; the Flower engine's ServerApp plays the same role. An agent
sees exactly the messages delivered to it, and the audit reads exactly what the relay recorded.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from asfed.comm.messages import ROW_KINDS, Message, PrivacyViolation
from asfed.comm.topology import Neighbourhoods


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

    def send(self, msg: Message, neighbours: Neighbourhoods) -> None:
        """Deliver `msg` if its kind is allowed, its receiver is a neighbour of its sender and,
        for per-step neighbourhoods, its rows are states where they were neighbours."""
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
        allowed = neighbours.rows_of(msg.sender, msg.receiver) if msg.kind in ROW_KINDS else None
        if allowed is not None and (msg.rows is None or not np.isin(msg.rows, allowed).all()):
            raise PrivacyViolation(
                f"agent {msg.sender} tried to send agent {msg.receiver} {msg.kind!r} on states "
                "where they were not neighbours"
            )
        self._inboxes[msg.receiver].append(msg)
        self.record.append(msg)
        self.bytes_sent[msg.sender] += msg.nbytes

    def collect(self, receiver: int) -> list[Message]:
        """Hand `receiver` what was delivered to it since it last collected."""
        return self._inboxes.pop(receiver, [])
