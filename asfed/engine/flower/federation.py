"""The world's side of the Flower engine: one round trip per sharing step of Algorithm 1.

Agents are assigned to nodes in ascending node-id order; each node learns its agent index and
spec in the `train.init` message, so the same apps run on the simulation and deployment engines
without per-node configuration.
"""

from __future__ import annotations

import time
from typing import Any

from flwr.app import ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid

from asfed.agents.base import AgentSpec, Graph, RoundBatch
from asfed.agents.methods import Method
from asfed.comm.messages import Message as AsfedMessage
from asfed.engine.federation import Federation
from asfed.engine.flower import codec
from asfed.errors import AsfedError

NODE_WAIT_S = 120.0
POLL_MIN_S, POLL_MAX_S = 0.001, 0.05


class ClientFailure(RuntimeError):
    """A ClientApp raised: names the agent, its node and the round (the CLI prints it in one
    line with how to resume, rather than a traceback)."""


class FlowerFederation(Federation):
    """Agents as Flower ClientApps, reached through `grid`."""

    def __init__(self, grid: Grid, method: Method, specs: list[AgentSpec]) -> None:
        self.grid = grid
        self.method = method
        self.specs = specs
        self.nodes = self._wait_for_nodes(len(specs))
        self.acting = [method.build(spec) for spec in specs]  # the world's copies
        self.round = -1
        self._init()

    def _wait_for_nodes(self, n: int) -> list[int]:
        deadline = time.monotonic() + NODE_WAIT_S
        while True:
            nodes = sorted(self.grid.get_node_ids())
            if len(nodes) >= n:
                return nodes[:n]
            if time.monotonic() > deadline:
                raise AsfedError(
                    f"the run needs {n} SuperNodes (one per agent); {len(nodes)} connected "
                    f"within {NODE_WAIT_S:.0f} s"
                )
            time.sleep(0.5)

    def _trip(self, action: str, contents: list[RecordDict], what: str) -> list[RecordDict]:
        """Send one message to every node and return the replies in agent order."""
        out = [
            Message(content, dst_node_id=node, message_type=f"train.{action}")
            for node, content in zip(self.nodes, contents, strict=True)
        ]
        replies = {r.metadata.src_node_id: r for r in self._send_and_receive(out)}
        ordered = []
        for i, node in enumerate(self.nodes):
            reply = replies.get(node)
            if reply is None:
                raise ClientFailure(f"agent {i} (node {node}) did not reply to {what}")
            if reply.has_error():
                raise ClientFailure(
                    f"agent {i} (node {node}) failed in {what}: {reply.error.reason}"
                )
            ordered.append(reply.content)
        return ordered

    def _send_and_receive(self, messages: list[Message]) -> list[Message]:
        """Push, then pull with a short adaptive backoff (1 ms doubling to 50 ms), through the
        Grid's public push/pull API: `send_and_receive` sleeps a fixed 0.1 s between pulls, which
        would cost up to 0.1 s on each of the K + 1 round trips of every round."""
        pending = set(self.grid.push_messages(messages))
        replies: list[Message] = []
        delay = POLL_MIN_S
        while pending:
            got = list(self.grid.pull_messages(pending))
            replies += got
            pending -= {r.metadata.reply_to_message_id for r in got}
            if pending:
                time.sleep(delay)
                delay = POLL_MIN_S if got else min(2 * delay, POLL_MAX_S)
        return replies

    def _init(self, resume_round: int | None = None) -> None:
        contents = []
        for spec in self.specs:
            init: dict[str, Any] = {"method": self.method.name, "spec": codec.spec_to_json(spec)}
            if resume_round is not None:
                init["resume_round"] = resume_round
            contents.append(RecordDict({"init": ConfigRecord(init)}))
        for agent, reply in zip(self.acting, self._trip("init", contents, "set-up"), strict=True):
            agent.load_acting_state(reply["acting"].to_torch_state_dict())

    def _content(self, i: int, graph: Graph, **head: Any) -> RecordDict:
        """A round trip's content for agent i: the round head and its own neighbourhood."""
        own, rows = codec.graph_to_records(graph, i)
        return RecordDict(
            {"round": ConfigRecord({"round": self.round, **head}), "graph": own, "rows": rows}
        )

    def begin(self, round_: int, slices: list[RoundBatch], graph: Graph) -> list[AsfedMessage]:
        self.round = round_
        contents = []
        for i, b in enumerate(slices):
            content = self._content(i, graph)
            content["batch"] = codec.batch_to_record(b)
            contents.append(content)
        replies = self._trip("share", contents, f"round {round_}, sharing step 0")
        return [m for r in replies for m in codec.get_messages(r)]

    def update(
        self, k: int, round_: int, inboxes: list[list[AsfedMessage]], graph: Graph, last: bool
    ) -> list[AsfedMessage]:
        contents = []
        for i, inbox in enumerate(inboxes):
            content = self._content(i, graph, k=k, last=last)
            codec.put_messages(content, inbox)
            contents.append(content)
        replies = self._trip("update", contents, f"round {round_}, update {k}")
        out = []
        for agent, reply in zip(self.acting, replies, strict=True):
            out += codec.get_messages(reply)
            if last:
                agent.load_acting_state(reply["acting"].to_torch_state_dict())
        return out

    def checkpoint(self, round_: int) -> None:
        contents = [RecordDict({"round": ConfigRecord({"round": round_})}) for _ in self.nodes]
        self._trip("checkpoint", contents, f"the checkpoint after round {round_}")

    def restore(self, round_: int) -> None:
        self._init(resume_round=round_)


def flower_federation(grid: Grid):
    """A federation factory for `Simulation` bound to `grid`."""
    return lambda method, specs: FlowerFederation(grid, method, specs)
