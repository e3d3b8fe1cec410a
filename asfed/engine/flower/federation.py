"""The world's side of the Flower engine: one round trip per sharing step of Algorithm 1.

Which node serves which agent. By default agents take the connected nodes in ascending node-id
order, and each node learns its agent index and spec in the `train.init` message, so the same
apps run on the simulation and deployment engines without per-node configuration. On a
deployment, `nodes` pins agent i to the node id the SuperLink gave agent i's registered key
(`flwr supernode register` prints it): then no other node can take an agent's place, and a run
whose pinned node is not connected waits `node_wait` seconds and fails naming the agent.

No hangs on a deployment: a round trip whose reply has not come `reply_timeout` seconds after it
was sent (the ServerApp's default: 600 s) fails naming the agent, its node and the round (a
SuperNode killed mid-run, or its ClientApp worker), and Flower's own error replies (a node the
SuperLink has marked offline) fail the same way. The run folder keeps every completed round for
`--resume`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import httpx
from flwr.app import ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid

from asfed.agents.base import AgentSpec, Graph, RoundBatch
from asfed.agents.methods import Method
from asfed.comm.messages import Message as AsfedMessage
from asfed.engine.federation import Federation
from asfed.engine.flower import codec
from asfed.errors import AsfedError

NODE_WAIT_S = 120.0
REPLY_TIMEOUT_S = 600.0  # the ServerApp's default (`reply-timeout`); in-process: no limit
# 20 ms, not 50: a round trip of the simulation engine ended on the backoff's schedule (0.115
# or 0.165 s); with 20 ms it is 0.10 s. On a deployment each poll is one request to the
# SuperLink, at most 50 a second while replies are awaited; its round trips measured the same
# (0.36-0.40 s) with either cap (benchmarks/engine_overhead.py --only trips).
POLL_MIN_S, POLL_MAX_S = 0.001, 0.02


class ClientFailure(RuntimeError):
    """A ClientApp raised or did not reply: names the agent, its node and the round (the CLI
    prints it in one line with how to resume, rather than a traceback)."""


class LinkFailure(RuntimeError):
    """The SuperLink stopped answering mid-run (restarted or unreachable): names the round."""


class FlowerFederation(Federation):
    """Agents as Flower ClientApps, reached through `grid`.

    nodes: agent i's node id, for each agent (None: the connected nodes in id order);
    node_wait: seconds to wait for the nodes; reply_timeout: seconds to wait for a reply (None:
    as long as it takes, for the simulation engine, whose clients live in this process);
    pack: send each message's content as one object (`codec.pack`; the deployment engine moves
    every record and array as its own object, an HTTP request each on each hop).
    `trips` records each round trip's kind and wall seconds (the engine-overhead benchmark and
    the ServerApp's closing log line read it).
    """

    def __init__(
        self,
        grid: Grid,
        method: Method,
        specs: list[AgentSpec],
        nodes: Sequence[int] | None = None,
        node_wait: float = NODE_WAIT_S,
        reply_timeout: float | None = None,
        pack: bool = False,
    ) -> None:
        if nodes is not None and len(nodes) != len(specs):
            raise AsfedError(
                f"nodes names {len(nodes)} node ids for {len(specs)} agents: give one per agent"
            )
        if nodes is not None and len(set(nodes)) != len(nodes):
            raise AsfedError(f"nodes names a node twice: {list(nodes)}")
        self.grid = grid
        self.method = method
        self.specs = specs
        self.reply_timeout, self.node_wait = reply_timeout, node_wait
        self.pack = pack
        self.trips: list[tuple[str, float]] = []
        self.nodes = self._wait_for_nodes(len(specs), nodes, node_wait)
        self.acting = [method.build(spec) for spec in specs]  # the world's copies
        self.round = -1
        self._init()

    def _wait_for_nodes(self, n: int, pinned: Sequence[int] | None, wait: float) -> list[int]:
        deadline = time.monotonic() + wait
        while True:
            online = set(self._grid("get_node_ids", "waiting for the SuperNodes"))
            if pinned is None and len(online) >= n:
                return sorted(online)[:n]
            if pinned is not None and online.issuperset(pinned):
                return list(pinned)
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if pinned is None:
            raise AsfedError(
                f"the run needs {n} SuperNodes (one per agent); {len(online)} connected "
                f"within {wait:.0f} s"
            )
        missing = [f"agent {i} (node {n})" for i, n in enumerate(pinned) if n not in online]
        raise AsfedError(
            f"{', '.join(missing)} not connected within {wait:g} s: start that agent's "
            "SuperNode with the key registered for it (`flwr supernode register`); "
            f"{len(online)} node(s) online"
        )

    def _grid(self, call: str, what: str, *args: Any) -> Any:
        """A Grid call; a SuperLink that stops answering becomes one LinkFailure."""
        try:
            return getattr(self.grid, call)(*args)
        except (httpx.HTTPError, OSError) as err:
            raise LinkFailure(
                f"the SuperLink stopped answering during {what} ({type(err).__name__}: {err})"
            ) from err

    def _trip(self, action: str, contents: list[RecordDict], what: str) -> list[RecordDict]:
        """Send one message to every node and return the replies in agent order. The set-up
        waits as long as for the nodes to connect (a node may still be reconnecting to a
        restarted SuperLink); every other trip `reply_timeout`."""
        timeout = self.reply_timeout
        if timeout is not None and action == "init":
            timeout = max(timeout, self.node_wait)
        start = time.perf_counter()
        out = [
            Message(
                codec.pack(content) if self.pack else content,
                dst_node_id=node,
                message_type=f"train.{action}",
            )
            for node, content in zip(self.nodes, contents, strict=True)
        ]
        replies = {r.metadata.src_node_id: r for r in self._send_and_receive(out, what, timeout)}
        silent = [f"agent {i} (node {n})" for i, n in enumerate(self.nodes) if n not in replies]
        if silent:
            raise ClientFailure(
                f"{', '.join(silent)} did not reply to {what} within {timeout:.0f} s (a "
                "SuperNode or its ClientApp worker is down or stalled)"
            )
        ordered = []
        for i, node in enumerate(self.nodes):
            reply = replies[node]
            if reply.has_error():
                raise ClientFailure(
                    f"agent {i} (node {node}) failed in {what}: {reply.error.reason}"
                )
            ordered.append(codec.unpack(reply.content))
        self.trips.append((action, time.perf_counter() - start))
        return ordered

    def _send_and_receive(
        self, messages: list[Message], what: str, timeout: float | None
    ) -> list[Message]:
        """Push, then pull with a short adaptive backoff (1 ms doubling to 20 ms), through the
        Grid's public push/pull API: `send_and_receive` sleeps a fixed 0.1 s between pulls, which
        would cost up to 0.1 s on each of the K + 1 round trips of every round. Returns what
        came back within `timeout` seconds (None: all of them)."""
        pending = set(self._grid("push_messages", what, messages))
        replies: list[Message] = []
        delay = POLL_MIN_S
        deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
        while pending and time.monotonic() < deadline:
            got = list(self._grid("pull_messages", what, pending))
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


def flower_federation(grid: Grid, **options: Any):
    """A federation factory for `Simulation` bound to `grid` (options: `FlowerFederation`'s
    nodes, node_wait, reply_timeout, pack)."""
    return lambda method, specs: FlowerFederation(grid, method, specs, **options)
